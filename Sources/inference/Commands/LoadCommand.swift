import ArgumentParser
import CPUBackend
import InferenceBench
import InferenceGraph
import InferenceRuntime
import InferenceServer
import InferenceTensor

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

struct LoadCommand: ReportingCommand {
    static let configuration = CommandConfiguration(
        commandName: "load",
        abstract: "Drive a model with MLPerf LoadGen's scenarios and find the highest load each device policy holds.",
        discussion: """
            Scenarios (LoadGen's): single-stream (one sample per query, the next when the previous completes; metric
            p90), multi-stream (8 samples per query; p99), server (queries on a seeded schedule whatever the system's
            progress, latency counted from each query's scheduled time; valid when the p99 stays under
            --latency-bound), offline (every sample at once; samples/s). Targets: the model in process behind the
            same batcher and router as `serve`, or a running server (--url). --find-peak searches the highest server
            rate that holds the bound (doubling, then bisection) for each policy: each device alone and, with two
            devices, routed between them. A run stops by itself at its duration or query limit.
            """)

    @Option(name: .long, help: ArgumentHelp("The model: builtin:NAME or an .onnx file.", valueName: "model"))
    var model: String = "builtin:mlp"

    @Option(
        name: .long,
        help: ArgumentHelp("One sample (.npy, leading dimension 1); default: uniform random floats.", valueName: "file")
    )
    var input: String?

    @Option(name: .long, help: ArgumentHelp("single-stream, multi-stream, server or offline.", valueName: "name"))
    var scenario: String = "single-stream"

    @Option(
        name: .long,
        help: ArgumentHelp("cpu, opencl:N, cuda:N, or two (cpu,opencl:0) routed as `serve` routes.", valueName: "list"))
    var device: String = "cpu"

    @Option(
        name: .long, help: ArgumentHelp("A running server: http://HOST:PORT (instead of in process).", valueName: "url")
    )
    var url: String?

    @Option(
        name: .customLong("model-name"), help: ArgumentHelp("The model's name on --url's server.", valueName: "name"))
    var modelName: String?

    @Option(name: .long, help: ArgumentHelp("Server scenario: queries per second (e.g. 200/s).", valueName: "rate"))
    var rate: String = "100/s"

    @Option(
        name: .long,
        help: ArgumentHelp(
            "poisson, constant, gamma:CV (CV > 1 is burstier than Poisson) or trace:FILE (CSV or JSONL of "
                + "seconds and samples per query).", valueName: "kind"))
    var arrivals: String = "poisson"

    @Option(
        name: .customLong("latency-bound"),
        help: ArgumentHelp("Server scenario: p99 bound (e.g. 10ms).", valueName: "time"))
    var latencyBound: String = "10ms"

    @Option(name: .customLong("min-duration"), help: ArgumentHelp("Shortest run (e.g. 2s).", valueName: "time"))
    var minDuration: String = "1s"

    @Option(name: .customLong("min-queries"), help: ArgumentHelp("Fewest queries per run.", valueName: "n"))
    var minQueries: Int = 100

    @Option(name: .customLong("max-queries"), help: ArgumentHelp("Most queries per run (a bound).", valueName: "n"))
    var maxQueries: Int = 200_000

    @Option(
        name: .customLong("samples-per-query"), help: ArgumentHelp("Multi-stream samples per query.", valueName: "n"))
    var samplesPerQuery: Int = 8

    @Option(
        name: .customLong("offline-samples"), help: ArgumentHelp("Offline: samples in the one query.", valueName: "n"))
    var offlineSamples: Int = 1024

    @Option(name: .long, help: ArgumentHelp("Seed of the arrival schedule.", valueName: "n"))
    var seed: UInt64 = 1

    @Flag(name: .customLong("find-peak"), help: "Search the highest server rate within the bound, per policy.")
    var findPeak = false

    @Option(name: .customLong("max-batch"), help: ArgumentHelp("In process: most samples per batch.", valueName: "n"))
    var maxBatch: Int = 8

    @Option(
        name: .customLong("max-queue-delay"),
        help: ArgumentHelp("In process: longest wait for a batch to fill (e.g. 1ms).", valueName: "time"))
    var maxQueueDelay: String = "0"

    @Option(name: .long, help: ArgumentHelp("--url: concurrent connections.", valueName: "n"))
    var connections: Int = 16

    @OptionGroup var threadsOption: ThreadsOption
    var threads: Int? { threadsOption.threads }

    @Option(name: .long, help: ArgumentHelp("Routing profile for two devices.", valueName: "file"))
    var profile: String?

    @Flag(name: .long, help: "Print one JSON object instead of the summary.")
    var json = false

    @Option(
        name: .long,
        help: ArgumentHelp(
            "With --find-peak: an SVG of p99 latency against offered load per policy.", valueName: "file.svg"))
    var plot: String?

    func validate() throws {
        guard LoadScenario(rawValue: scenario) != nil else {
            throw ValidationError("--scenario must be single-stream, multi-stream, server or offline")
        }
        guard let value = CompareCommand.rate(rate), value <= 1e6 else {
            throw ValidationError("--rate takes queries per second up to 1e6, e.g. 200/s")
        }
        _ = value
        guard Self.seconds(latencyBound) != nil else {
            throw ValidationError("--latency-bound takes a time, e.g. 10ms")
        }
        guard let duration = Self.seconds(minDuration), duration <= 3600 else {
            throw ValidationError("--min-duration takes a time up to 1 hour, e.g. 2s")
        }
        _ = duration
        guard ServeCommand.delay(maxQueueDelay) != nil else {
            throw ValidationError("--max-queue-delay takes e.g. 1ms")
        }
        try OptionChecks.count(minQueries, "--min-queries", 1...10_000_000)
        try OptionChecks.count(maxQueries, "--max-queries", 1...10_000_000)
        try OptionChecks.count(samplesPerQuery, "--samples-per-query", 1...4096)
        try OptionChecks.count(offlineSamples, "--offline-samples", 1...1_000_000)
        try OptionChecks.count(maxBatch, "--max-batch", 1...4096)
        try OptionChecks.count(connections, "--connections", 1...1024)
        _ = try parsedArrivals()
        let devices = try OptionChecks.deviceList(device)
        guard devices.count <= 2 else { throw ValidationError("--device: at most two devices") }
        for item in devices where DeviceRequest(argument: String(item)) == nil || item == "auto" {
            throw ValidationError("unknown device '\(item)' for --device; use cpu, gpu, cuda:N or opencl:N")
        }
        if let plot {
            guard findPeak else { throw ValidationError("--plot draws the --find-peak search; add --find-peak") }
            try OptionChecks.outputTarget(plot, option: "--plot")
        }
        if url != nil && modelName == nil { throw ValidationError("--url needs --model-name (the model's name there)") }
        if let url,
            !(url.hasPrefix("http://127.0.0.1:") || url.hasPrefix("http://localhost:") || url.hasPrefix("http://"))
        {
            throw ValidationError("--url must be http://HOST:PORT")
        }
    }

    /// `10ms`, `500us`, `2s`, `1.5` (seconds) as seconds.
    static func seconds(_ text: String) -> Double? {
        guard
            let nanoseconds = ServeCommand.delay(text.hasSuffix("s") || text.hasSuffix("us") ? text : text + "s")
                ?? (Double(text).map { UInt64(max($0, 0) * 1e9) })
        else { return nil }
        return Double(nanoseconds) / 1e9
    }

    func parsedArrivals() throws -> Arrivals {
        if arrivals == "poisson" { return .poisson }
        if arrivals == "constant" { return .constant }
        if arrivals.hasPrefix("gamma:") {
            guard let cv = Double(arrivals.dropFirst(6)), cv > 0, cv <= 100 else {
                throw ValidationError("--arrivals gamma:CV needs a coefficient of variation above 0, e.g. gamma:2")
            }
            return .gamma(cv: cv)
        }
        if arrivals.hasPrefix("trace:") {
            let path = String(arrivals.dropFirst(6))
            let bytes: [UInt8]
            do { bytes = try UserFiles.readAll(path, limit: 64 << 20) } catch {
                throw ValidationError("--arrivals trace: cannot read \(path): \(error)")
            }
            var entries: [(seconds: Double, samples: Int)] = []
            for (number, raw) in String(decoding: bytes, as: UTF8.self).split(separator: "\n").enumerated() {
                let line = raw.trimmingCharacters(in: .whitespaces)
                if line.isEmpty || line.hasPrefix("#") || line.lowercased().hasPrefix("seconds") { continue }
                var fields: [Substring] = []
                if line.hasPrefix("{") {
                    // JSONL: {"seconds": 0.5, "samples": 4}
                    struct Entry: Decodable {
                        var seconds: Double
                        var samples: Int?
                    }
                    guard let entry = try? JSONDecoder().decode(Entry.self, from: Data(line.utf8)),
                        entry.seconds >= 0, entry.seconds < 1e6, (1...4096).contains(entry.samples ?? 1)
                    else { throw ValidationError("\(path):\(number + 1): expected {\"seconds\": S, \"samples\": N}") }
                    entries.append((entry.seconds, entry.samples ?? 1))
                    continue
                }
                fields = line.split(separator: ",")
                guard let t = fields.first.flatMap({ Double($0.trimmingCharacters(in: .whitespaces)) }), t >= 0, t < 1e6
                else { throw ValidationError("\(path):\(number + 1): expected SECONDS[,SAMPLES]") }
                let samples = fields.count > 1 ? Int(fields[1].trimmingCharacters(in: .whitespaces)) ?? 1 : 1
                guard (1...4096).contains(samples) else {
                    throw ValidationError("\(path):\(number + 1): samples per query must be 1 to 4096")
                }
                entries.append((t, samples))
            }
            guard !entries.isEmpty else { throw ValidationError("\(path): the trace has no queries") }
            return .trace(entries.sorted { $0.seconds < $1.seconds })
        }
        throw ValidationError("--arrivals must be poisson, constant, gamma:CV or trace:FILE")
    }

    func execute() throws {
        let graph = try ModelSource.load(model)
        guard let first = graph.runtimeInputs.first, graph.runtimeInputs.count == 1 else {
            throw ValidationError("\(model): load needs a model with one input")
        }
        let sample: Tensor
        if let input {
            sample = try LoadedInputs.load(arguments: [input], for: graph).tensors[0].tensor
        } else {
            guard first.dtype == .float32, let dims = try BenchCommand.inputDimensions(first, batch: 1, model: model)
            else { throw ValidationError("\(model): give --input (random inputs are float32 only)") }
            sample = try BenchCommand.randomInput(shape: dims)
        }
        // One query's inputs are the sample repeated: bound what the largest query allocates (1 GiB).
        let largest = max(offlineSamples, samplesPerQuery, maxBatch)
        guard sample.byteCount <= (1 << 30) / largest else {
            throw ValidationError(
                "a query of \(largest) samples of \(sample.byteCount) bytes would exceed 1 GiB; lower --offline-samples, "
                    + "--samples-per-query or --max-batch")
        }
        var settings = LoadSettings()
        settings.scenario = LoadScenario(rawValue: scenario) ?? .singleStream
        settings.rate = CompareCommand.rate(rate) ?? 100
        settings.arrivals = try parsedArrivals()
        settings.latencyBoundSeconds = Self.seconds(latencyBound) ?? 0.01
        settings.minDurationSeconds = Self.seconds(minDuration) ?? 1
        settings.minQueries = minQueries
        settings.maxQueries = maxQueries
        settings.samplesPerQuery = samplesPerQuery
        settings.offlineSamples = offlineSamples
        settings.seed = seed

        let requests = try OptionChecks.deviceList(device).compactMap { DeviceRequest(argument: String($0)) }
        var policies: [(name: String, devices: [DeviceRequest])] = [
            (requests.map(\.description).joined(separator: "+"), requests)
        ]
        if findPeak && requests.count == 2 {
            policies = requests.map { ($0.description, [$0]) } + [("routed", requests)]
        }
        var report = LoadReport(model: model, scenario: settings.scenario.rawValue, policies: [])
        for policy in policies {
            let (target, inProcess) = try makeTarget(
                policy.devices, graph: graph, sample: sample, inputName: first.name)
            var entry = measure(target, policy: policy.name, settings: settings)
            if let http = target as? HTTPTarget { http.stop() }
            entry.accuracy = inProcess?.accuracy ?? [:]
            report.policies.append(entry)
        }
        if let plot {
            do {
                try UserFiles.write(
                    Array(LoadChart.svg(report, boundMs: settings.latencyBoundSeconds * 1e3).utf8), to: plot)
            } catch {
                throw InputError(description: "cannot write the chart: \(error)")
            }
        }
        if json {
            print(String(decoding: try ReportJSON.encoder(pretty: true).encode(report), as: UTF8.self))
        } else {
            print(report.text(boundMs: settings.latencyBoundSeconds * 1e3))
        }
        if let plot { printError("wrote \(plot)") }
    }

    /// The policy's target: the running server at --url, or the model in process behind `serve`'s batcher.
    func makeTarget(_ policyDevices: [DeviceRequest], graph: Graph, sample: Tensor, inputName: String) throws -> (
        any LoadTarget, InProcessTarget?
    ) {
        if let url, let modelName {
            do {
                let http = try HTTPTarget(
                    url: url, model: modelName, sample: [(inputName, sample)], connections: connections)
                return (http, nil)
            } catch let error as ServeError { throw ValidationError(error.description) }
        } else {
            let threads = threads
            let devices = policyDevices.map { request in
                ServedDevice(name: request.description) {
                    let selection = try DeviceSelection.resolve(request, threads: threads)
                    return try selection.session(graph)
                }
            }
            var serverSettings = ServerSettings()
            serverSettings.maxBatch = maxBatch
            serverSettings.maxQueueDelayNanoseconds = ServeCommand.delay(maxQueueDelay) ?? 0
            serverSettings.maxQueue = 1_000_000
            let served = ServedModel(
                name: "model", graph: graph, devices: devices,
                router: try ServeCommand.router(
                    model: model, devices: policyDevices.map(\.description), profilePath: profile))
            do {
                let made = try InProcessTarget(model: served, settings: serverSettings, sample: [sample])
                return (made, made)
            } catch let error as ServeError { throw InputError(description: error.description) }
        }
    }

    /// One policy's runs: the scenario once, or (--find-peak) the search for the highest rate that holds the bound.
    func measure(_ target: any LoadTarget, policy: String, settings: LoadSettings) -> LoadReport.Policy {
        var entry = LoadReport.Policy(name: policy, runs: [], peakQPS: nil, accuracy: [:])
        if findPeak {
            // A start near what one device serves one query at a time.
            var probe = settings
            probe.scenario = .singleStream
            probe.minDurationSeconds = 0.2
            probe.minQueries = 20
            let single = LoadGen.run(target, probe)
            let p50 = (single.latencyMs["p50"] ?? 1) / 1e3
            let start = max(1, (0.5 / max(p50, 1e-6)).rounded())
            let name = policy
            let found = LoadGen.findPeak(target, settings, start: start) { run in
                printError(
                    "\(name) at \(LoadGen.format(run.scheduledQPS ?? 0))/s: \(run.valid ? "VALID" : "INVALID")"
                        + (run.latencyMs["p99"].map { ", p99 \(LoadGen.format($0)) ms" } ?? ""))
            }
            entry.peakQPS = found.peak
            entry.runs = found.runs
        } else {
            entry.runs = [LoadGen.run(target, settings)]
        }
        return entry
    }
}

/// The `load --json` record.
struct LoadReport: Encodable {
    struct Policy: Encodable {
        var name: String
        var runs: [LoadResult]
        /// --find-peak: the highest valid server rate.
        var peakQPS: Double?
        /// Accuracy under load: the largest difference from the sample run alone, by device and batch size.
        var accuracy: [String: Double]
    }

    var model: String
    var scenario: String
    var policies: [Policy]

    func text(boundMs: Double) -> String {
        var lines: [String] = []
        for policy in policies {
            if let peak = policy.peakQPS {
                lines.append(
                    "\(policy.name): peak \(LoadGen.format(peak)) queries/s within p99 \(LoadGen.format(boundMs)) ms")
            } else if policy.runs.count > 1 {
                lines.append("\(policy.name): no rate tried holds p99 \(LoadGen.format(boundMs)) ms")
            }
            for run in policy.runs {
                let percentiles = ["p50", "p90", "p99", "max"].compactMap { key in
                    run.latencyMs[key].map { "\(key) \(LoadGen.format($0))" }
                }.joined(separator: ", ")
                lines.append(
                    "  \(run.scenario)\(run.scheduledQPS.map { " at \(LoadGen.format($0))/s" } ?? ""): "
                        + "\(run.valid ? "VALID" : "INVALID"), \(run.metric); \(run.queries) queries in "
                        + "\(LoadGen.format(run.durationSeconds)) s; latency ms \(percentiles)")
                for reason in run.reasons { lines.append("    - \(reason)") }
            }
            for (key, difference) in policy.accuracy.sorted(by: { $0.key < $1.key }) {
                lines.append("  accuracy under load, \(key): max |difference| from the sample alone \(difference)")
            }
        }
        return lines.joined(separator: "\n")
    }
}

/// The SLO search as an SVG: p99 latency against offered load (log-log), one line per policy, the latency bound
/// dashed, each policy's peak marked.
enum LoadChart {
    static func svg(_ report: LoadReport, boundMs: Double) -> String {
        let width = 640.0, height = 420.0, margin = 70.0
        let points = report.policies.flatMap { policy in
            policy.runs.compactMap { run in run.scheduledQPS.flatMap { q in run.latencyMs["p99"].map { (q, $0) } } }
        }
        let xs = points.map(\.0), ys = points.map(\.1) + [boundMs]
        guard let xMin = xs.min(), let xMax = xs.max(), let yMin = ys.min(), let yMax = ys.max(), xMin > 0, yMin > 0
        else { return "<svg xmlns=\"http://www.w3.org/2000/svg\"/>\n" }
        let lx0: Double = log10(xMin) - 0.05
        let lx1: Double = log10(xMax) + 0.05
        let ly0: Double = log10(yMin) - 0.1
        let ly1: Double = log10(yMax) + 0.1
        func px(_ x: Double) -> Double {
            let fraction: Double = (log10(x) - lx0) / max(lx1 - lx0, 1e-9)
            return margin + fraction * (width - 2 * margin)
        }
        func py(_ y: Double) -> Double {
            let fraction: Double = (log10(y) - ly0) / max(ly1 - ly0, 1e-9)
            return height - margin - fraction * (height - 2 * margin)
        }
        func f(_ v: Double) -> String { cFormat("%.1f", v) }
        var out = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" \
            font-family="Helvetica, Arial, sans-serif" font-size="12">
            <rect width="100%" height="100%" fill="white"/>
            <text x="\(f(margin))" y="30" font-size="15" font-weight="bold">p99 latency against offered load: \
            \(SweepChart.escape(report.model))</text>
            <line x1="\(f(margin))" y1="\(f(height - margin))" x2="\(f(width - margin))" y2="\(f(height - margin))" stroke="black"/>
            <line x1="\(f(margin))" y1="\(f(margin))" x2="\(f(margin))" y2="\(f(height - margin))" stroke="black"/>
            <text x="\(f(width / 2 - 60))" y="\(f(height - 25))">offered load (queries/s)</text>
            <text x="15" y="\(f(height / 2))" transform="rotate(-90 15 \(f(height / 2)))">p99 (ms)</text>
            <line x1="\(f(margin))" y1="\(f(py(boundMs)))" x2="\(f(width - margin))" y2="\(f(py(boundMs)))" \
            stroke="gray" stroke-dasharray="6,4"/>
            <text x="\(f(width - margin - 120))" y="\(f(py(boundMs) - 6))" fill="gray">bound \(LoadGen.format(boundMs)) ms</text>

            """
        for tick in [xMin, (xMin * xMax).squareRoot(), xMax] {
            out +=
                "<text x=\"\(f(px(tick) - 15))\" y=\"\(f(height - margin + 18))\">\(LoadGen.format(tick.rounded()))</text>\n"
        }
        for tick in [yMin, (yMin * yMax).squareRoot(), yMax] {
            out += "<text x=\"\(f(margin - 55))\" y=\"\(f(py(tick) + 4))\">\(cFormat("%.3g", tick))</text>\n"
        }
        for (index, policy) in report.policies.enumerated() {
            let color = SweepChart.colors[index % SweepChart.colors.count]
            let series = policy.runs.compactMap { run in
                run.scheduledQPS.flatMap { q in run.latencyMs["p99"].map { (q, $0) } }
            }.sorted { $0.0 < $1.0 }
            let path = series.map { "\(f(px($0.0))),\(f(py($0.1)))" }.joined(separator: " ")
            out += "<polyline points=\"\(path)\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\"/>\n"
            for point in series {
                out += "<circle cx=\"\(f(px(point.0)))\" cy=\"\(f(py(point.1)))\" r=\"3\" fill=\"\(color)\"/>\n"
            }
            if let peak = policy.peakQPS {
                out +=
                    "<line x1=\"\(f(px(peak)))\" y1=\"\(f(margin))\" x2=\"\(f(px(peak)))\" y2=\"\(f(height - margin))\" "
                    + "stroke=\"\(color)\" stroke-dasharray=\"2,3\"/>\n"
            }
            let label = policy.name + (policy.peakQPS.map { ": peak \(LoadGen.format($0.rounded()))/s" } ?? ": no peak")
            out +=
                "<text x=\"\(f(margin + 10))\" y=\"\(f(margin + 16 * Double(index + 1)))\" fill=\"\(color)\">"
                + "\(SweepChart.escape(label))</text>\n"
        }
        return out + "</svg>\n"
    }
}
