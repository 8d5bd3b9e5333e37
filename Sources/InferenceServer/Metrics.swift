import Foundation

/// The server's counters, gauges and histograms, rendered in the Prometheus text format at /metrics. Names
/// follow Triton's `nv_inference_*` where the meaning is the same (cumulative microseconds, counts), plus
/// histograms of request, queue and compute time and of batch size, and the router's decisions per device.
public final class Metrics: @unchecked Sendable {
    private let lock = NSLock()

    struct Key: Hashable, Comparable {
        var model: String
        var device: String
        static func < (a: Key, b: Key) -> Bool { (a.model, a.device) < (b.model, b.device) }
    }

    struct Histogram {
        let bounds: [Double]
        var counts: [UInt64]
        var sum = 0.0
        var count: UInt64 = 0
        init(bounds: [Double]) {
            self.bounds = bounds
            counts = [UInt64](repeating: 0, count: bounds.count)
        }
        mutating func observe(_ value: Double) {
            for (index, bound) in bounds.enumerated() where value <= bound { counts[index] += 1 }
            sum += value
            count += 1
        }
    }

    static let secondsBounds: [Double] = [
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
    ]
    static let batchBounds: [Double] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]

    private var success: [String: UInt64] = [:]
    private var failure: [String: [Int: UInt64]] = [:]
    private var inferences: [Key: UInt64] = [:]
    private var executions: [Key: UInt64] = [:]
    private var requestMicroseconds: [String: UInt64] = [:]
    private var queueMicroseconds: [String: UInt64] = [:]
    private var computeMicroseconds: [Key: UInt64] = [:]
    private var requestSeconds: [String: Histogram] = [:]
    private var queueSeconds: [String: Histogram] = [:]
    private var computeSeconds: [Key: Histogram] = [:]
    private var batchSizes: [Key: Histogram] = [:]
    private var routes: [Key: [String: UInt64]] = [:]
    private var depth: [String: Int] = [:]
    private var inflight: [String: Int] = [:]
    private var rejections: [String: UInt64] = [:]
    private var deviceFailures: [Key: UInt64] = [:]

    /// Dollars per hour per device (`serve --price`), for the cost per inference actually served.
    public var prices: [String: Double] = [:]
    private let started = Date()

    public init() {}

    func started(model: String) { lock.withLock { inflight[model, default: 0] += 1 } }

    func finished(model: String, status: Int, requestNanoseconds: UInt64, queueNanoseconds: UInt64?) {
        lock.withLock {
            inflight[model, default: 0] -= 1
            if status == 200 {
                success[model, default: 0] += 1
            } else {
                failure[model, default: [:]][status, default: 0] += 1
            }
            requestMicroseconds[model, default: 0] += requestNanoseconds / 1000
            requestSeconds[model, default: Histogram(bounds: Self.secondsBounds)].observe(
                Double(requestNanoseconds) / 1e9)
            if let queueNanoseconds {
                queueMicroseconds[model, default: 0] += queueNanoseconds / 1000
                queueSeconds[model, default: Histogram(bounds: Self.secondsBounds)].observe(
                    Double(queueNanoseconds) / 1e9)
            }
        }
    }

    func batch(model: String, device: String, size: Int, computeNanoseconds: UInt64) {
        let key = Key(model: model, device: device)
        lock.withLock {
            inferences[key, default: 0] += UInt64(size)
            executions[key, default: 0] += 1
            computeMicroseconds[key, default: 0] += computeNanoseconds / 1000
            computeSeconds[key, default: Histogram(bounds: Self.secondsBounds)].observe(
                Double(computeNanoseconds) / 1e9)
            batchSizes[key, default: Histogram(bounds: Self.batchBounds)].observe(Double(size))
        }
    }

    func routed(model: String, device: String, reason: String) {
        // The reason's kind (before any colon) keeps the label set small.
        let kind = String(reason.split(separator: ":").first ?? "")
        lock.withLock { routes[Key(model: model, device: device), default: [:]][kind, default: 0] += 1 }
    }

    func queueDepth(model: String, _ value: Int) { lock.withLock { depth[model] = value } }
    func rejected(model: String) { lock.withLock { rejections[model, default: 0] += 1 } }
    func deviceFailed(model: String, device: String) {
        lock.withLock { deviceFailures[Key(model: model, device: device), default: 0] += 1 }
    }

    /// Batches run per batch size, for one model (tests and the load report read it).
    func batchSizeCounts(model: String) -> [String: UInt64] {
        lock.withLock {
            var result: [String: UInt64] = [:]
            for (key, value) in executions where key.model == model { result[key.device, default: 0] += value }
            return result
        }
    }

    /// The Prometheus text exposition.
    public func render() -> String {
        lock.withLock {
            var out = Exposition()
            let models = Set(success.keys).union(failure.keys).union(inflight.keys).union(depth.keys).sorted()
            renderTritonFamilies(&out, models: models)
            renderServerFamilies(&out, models: models)
            renderHistograms(&out, models: models)
            return out.text
        }
    }

    /// Prometheus families in text form: HELP and TYPE lines, samples with escaped labels, histograms.
    struct Exposition {
        var text = ""

        mutating func family(_ name: String, _ type: String, _ help: String) {
            text += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
        }

        static func labels(_ pairs: [(String, String)]) -> String {
            "{" + pairs.map { "\($0.0)=\"\(escape($0.1))\"" }.joined(separator: ",") + "}"
        }

        static func escape(_ text: String) -> String {
            text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
                .replacingOccurrences(of: "\n", with: "\\n")
        }

        mutating func sample(_ name: String, _ pairs: [(String, String)], _ value: some CustomStringConvertible) {
            text += "\(name)\(Self.labels(pairs)) \(value)\n"
        }

        /// One sample per model, labelled with the model (and Triton's version 1).
        mutating func perModel(
            _ name: String, _ models: [String], version: Bool = true, _ value: (String) -> some CustomStringConvertible
        ) {
            for model in models { sample(name, [("model", model)] + (version ? [("version", "1")] : []), value(model)) }
        }

        mutating func histogram(_ name: String, _ h: Histogram, _ pairs: [(String, String)]) {
            for (bound, count) in zip(h.bounds, h.counts) {
                sample(name + "_bucket", pairs + [("le", "\(bound)")], count)
            }
            sample(name + "_bucket", pairs + [("le", "+Inf")], h.count)
            sample(name + "_sum", pairs, h.sum)
            sample(name + "_count", pairs, h.count)
        }
    }

    /// The families Triton's server exports, under its names (nv_*), so its dashboards work.
    private func renderTritonFamilies(_ out: inout Exposition, models: [String]) {
        out.family("nv_inference_request_success", "counter", "Successful inference requests")
        out.perModel("nv_inference_request_success", models) { self.success[$0] ?? 0 }
        out.family("nv_inference_request_failure", "counter", "Failed inference requests, by HTTP status")
        for model in models {
            for (status, count) in (failure[model] ?? [:]).sorted(by: { $0.key < $1.key }) {
                out.sample(
                    "nv_inference_request_failure", [("model", model), ("version", "1"), ("status", "\(status)")], count
                )
            }
        }
        out.family("nv_inference_count", "counter", "Samples inferred (a batch of n counts n)")
        for (key, value) in inferences.sorted(by: { $0.key < $1.key }) {
            out.sample("nv_inference_count", [("model", key.model), ("version", "1"), ("device", key.device)], value)
        }
        out.family("nv_inference_exec_count", "counter", "Batches run")
        for (key, value) in executions.sorted(by: { $0.key < $1.key }) {
            out.sample(
                "nv_inference_exec_count", [("model", key.model), ("version", "1"), ("device", key.device)], value)
        }
        out.family("nv_inference_request_duration_us", "counter", "Cumulative request time, arrival to response")
        out.perModel("nv_inference_request_duration_us", models) { self.requestMicroseconds[$0] ?? 0 }
        out.family("nv_inference_queue_duration_us", "counter", "Cumulative time requests waited for their batch")
        out.perModel("nv_inference_queue_duration_us", models) { self.queueMicroseconds[$0] ?? 0 }
        out.family("nv_inference_compute_infer_duration_us", "counter", "Cumulative time batches ran on a device")
        for (key, value) in computeMicroseconds.sorted(by: { $0.key < $1.key }) {
            out.sample(
                "nv_inference_compute_infer_duration_us",
                [("model", key.model), ("version", "1"), ("device", key.device)],
                value)
        }
        out.family("nv_inference_pending_request_count", "gauge", "Requests queued for a batch")
        out.perModel("nv_inference_pending_request_count", models) { self.depth[$0] ?? 0 }
    }

    /// This server's own families: in flight, rejected, routing, device failures, cost.
    private func renderServerFamilies(_ out: inout Exposition, models: [String]) {
        out.family("inference_inflight_requests", "gauge", "Requests received and not yet answered")
        out.perModel("inference_inflight_requests", models, version: false) { self.inflight[$0] ?? 0 }
        out.family("inference_rejected_requests_total", "counter", "Requests refused because the queue was full")
        out.perModel("inference_rejected_requests_total", models, version: false) { self.rejections[$0] ?? 0 }
        out.family("inference_route_decisions_total", "counter", "Batches the router sent to each device, by reason")
        for (key, reasons) in routes.sorted(by: { $0.key < $1.key }) {
            for (reason, count) in reasons.sorted(by: { $0.key < $1.key }) {
                out.sample(
                    "inference_route_decisions_total",
                    [("model", key.model), ("device", key.device), ("reason", reason)],
                    count)
            }
        }
        out.family(
            "inference_device_failures_total", "counter", "Batches that failed on a device (the device is taken out)")
        for (key, count) in deviceFailures.sorted(by: { $0.key < $1.key }) {
            out.sample("inference_device_failures_total", [("model", key.model), ("device", key.device)], count)
        }
        guard !prices.isEmpty else { return }
        // What the samples served so far cost: each priced device's hours since start (idle time included, as a
        // rented machine is paid) over the samples it inferred.
        let hours = Date().timeIntervalSince(started) / 3600
        out.family(
            "inference_cost_dollars_per_million", "gauge",
            "Dollars per million samples served so far (device price x uptime / samples)")
        for (key, value) in inferences.sorted(by: { $0.key < $1.key }) where value > 0 {
            guard let price = prices[key.device] else { continue }
            out.sample(
                "inference_cost_dollars_per_million", [("model", key.model), ("device", key.device)],
                price * hours / Double(value) * 1e6)
        }
    }

    private func renderHistograms(_ out: inout Exposition, models: [String]) {
        out.family("inference_request_duration_seconds", "histogram", "Request time, arrival to response")
        for model in models {
            if let h = requestSeconds[model] {
                out.histogram("inference_request_duration_seconds", h, [("model", model)])
            }
        }
        out.family("inference_queue_duration_seconds", "histogram", "Time a request waited for its batch")
        for model in models {
            if let h = queueSeconds[model] { out.histogram("inference_queue_duration_seconds", h, [("model", model)]) }
        }
        out.family("inference_compute_duration_seconds", "histogram", "Time a batch ran on a device")
        for (key, h) in computeSeconds.sorted(by: { $0.key < $1.key }) {
            out.histogram("inference_compute_duration_seconds", h, [("model", key.model), ("device", key.device)])
        }
        out.family("inference_batch_size", "histogram", "Samples per batch run")
        for (key, h) in batchSizes.sorted(by: { $0.key < $1.key }) {
            out.histogram("inference_batch_size", h, [("model", key.model), ("device", key.device)])
        }
    }

}
