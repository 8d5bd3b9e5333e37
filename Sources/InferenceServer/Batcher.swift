import Foundation
import InferenceGraph
import InferenceRuntime
import InferenceTensor

/// One device a model runs on: a session made on that device's thread (a session is not shared between
/// threads), its name for metrics and routing.
public struct ServedDevice: Sendable {
    public var name: String
    public var makeSession: @Sendable () throws -> Session

    public init(name: String, makeSession: @escaping @Sendable () throws -> Session) {
        self.name = name
        self.makeSession = makeSession
    }
}

/// Chooses the device for a batch of `size` samples, given each device's queued samples (the router).
public typealias DeviceRouter = @Sendable (_ size: Int, _ queued: [Int]) -> (index: Int, reason: String)

/// A request waiting for its batch.
final class PendingRequest: @unchecked Sendable {
    let inputs: [Tensor]
    /// Samples: the leading dimension of every input.
    let samples: Int
    let enqueued: UInt64
    let deadline: UInt64?
    let completion: @Sendable (Result<BatchResult, ServeError>) -> Void

    init(
        inputs: [Tensor], samples: Int, enqueued: UInt64, deadline: UInt64?,
        completion: @escaping @Sendable (Result<BatchResult, ServeError>) -> Void
    ) {
        self.inputs = inputs
        self.samples = samples
        self.enqueued = enqueued
        self.deadline = deadline
        self.completion = completion
    }

    /// Requests batch together when every input has the same dtype and the same dimensions after the first.
    func batches(with other: PendingRequest) -> Bool {
        zip(inputs, other.inputs).allSatisfy {
            $0.dtype == $1.dtype && Array($0.shape.dimensions.dropFirst()) == Array($1.shape.dimensions.dropFirst())
        }
    }
}

/// What one request gets back: its outputs, and how its batch ran.
struct BatchResult: Sendable {
    var outputs: [NamedTensor]
    var device: String
    var batchSize: Int
    var queueNanoseconds: UInt64
    var computeNanoseconds: UInt64
}

/// The dynamic batcher of one model: concurrent requests coalesce into batches of up to `maxBatch` samples
/// (waiting at most `maxDelay` for more once a request is queued), each batch goes to the device the router
/// picks, and its outputs are split back per request. The queue is bounded: past `maxQueue` requests a new one
/// is refused (503) instead of growing memory. Each device runs on its own thread.
final class Batcher: @unchecked Sendable {
    let model: String
    let batchable: Bool
    let maxBatch: Int
    let maxDelayNanoseconds: UInt64
    let maxQueue: Int
    let metrics: Metrics
    private let devices: [ServedDevice]
    private let router: DeviceRouter
    private let condition = NSCondition()
    private var queue: [PendingRequest] = []
    /// Per device: batches formed for it and not yet run.
    private var assigned: [[[PendingRequest]]]
    private var queuedSamples: [Int]
    private var stopping = false
    private var threads: [Thread] = []
    private var running = 0
    /// The batch former holds requests taken from the queue and not yet assigned to a device.
    private var forming = false
    /// Devices taken out after a failure, with the reason.
    private(set) var failed: [String: String] = [:]

    init(
        model: String, batchable: Bool, maxBatch: Int, maxDelayNanoseconds: UInt64, maxQueue: Int,
        devices: [ServedDevice], router: @escaping DeviceRouter, metrics: Metrics
    ) {
        self.model = model
        self.batchable = batchable
        self.maxBatch = batchable ? max(1, maxBatch) : 1
        self.maxDelayNanoseconds = maxDelayNanoseconds
        self.maxQueue = maxQueue
        self.devices = devices
        self.router = router
        self.metrics = metrics
        assigned = devices.map { _ in [] }
        queuedSamples = devices.map { _ in 0 }
    }

    /// Starts one thread per device (each makes its session and plans the batch sizes on that thread, then
    /// serves; device threads form batches themselves). - Throws: the first device's session error.
    func start() throws {
        let ready = DispatchSemaphore(value: 0)
        let errors = ErrorBox()
        for (index, device) in devices.enumerated() {
            let thread = Thread { [self] in
                let session: Session
                do { session = try device.makeSession() } catch {
                    errors.set("\(device.name): \(error)")
                    ready.signal()
                    return
                }
                warm(session)
                ready.signal()
                deviceLoop(index, session)
            }
            thread.name = "inference-\(device.name)"
            threads.append(thread)
            thread.start()
        }
        for _ in devices { ready.wait() }
        if let message = errors.value {
            stop()
            throw ServeError(500, "cannot load model '\(model)' on \(message)")
        }
    }

    /// Plans every batch size a batch can have before serving (on a GPU each new size also builds kernels,
    /// which would otherwise land on the first request of that size): 1 ... maxBatch, or powers of two past 64
    /// sizes. Only for models whose inputs are fixed after the batch dimension (others plan as requests come).
    private func warm(_ session: Session) {
        guard batchable else { return }
        let inputs = session.graph.runtimeInputs
        var rows: [(DType, [Int])] = []
        for input in inputs {
            guard let dims = input.dimensions, !dims.isEmpty else { return }
            var fixed: [Int] = []
            for dim in dims.dropFirst() {
                guard case .fixed(let n) = dim else { return }
                fixed.append(n)
            }
            rows.append((input.dtype, fixed))
        }
        let sizes = maxBatch <= 64 ? Array(1...maxBatch) : (0...12).map { 1 << $0 }.filter { $0 <= maxBatch }
        let rowBytes = rows.reduce(0) { total, row in
            total + row.0.byteSize
                * row.1.reduce(1) { $0.multipliedReportingOverflow(by: $1).overflow ? Int.max / 2 : $0 * $1 }
        }
        // Sizes whose zero inputs would exceed 256 MiB plan when a request of that size first comes.
        for size in sizes where rowBytes <= (256 << 20) / size {
            guard
                let feeds = try? zip(inputs, rows).map({ input, row in
                    NamedTensor(name: input.name, tensor: try Tensor(zeros: row.0, shape: Shape([size] + row.1)))
                })
            else { return }
            _ = try? session.run(feeds)
        }
    }

    /// Queues a request; `completion` is called once, from a device thread (or at once when refused).
    func submit(_ request: PendingRequest) {
        condition.lock()
        if stopping {
            condition.unlock()
            request.completion(.failure(ServeError(503, "the server is shutting down")))
            return
        }
        if queue.count >= maxQueue {
            condition.unlock()
            metrics.rejected(model: model)
            request.completion(
                .failure(ServeError(503, "model '\(model)' has \(maxQueue) requests queued (--max-queue); retry later"))
            )
            return
        }
        queue.append(request)
        metrics.queueDepth(model: model, queue.count)
        condition.broadcast()
        condition.unlock()
    }

    /// Finishes every queued request, then stops the threads.
    func stop() {
        condition.lock()
        stopping = true
        condition.broadcast()
        condition.unlock()
    }

    /// Waits until every queued and running batch is done (graceful shutdown), at most `seconds`.
    func drain(seconds: Double) {
        let limit = Date(timeIntervalSinceNow: seconds)
        condition.lock()
        while (!queue.isEmpty || forming || running > 0 || assigned.contains { !$0.isEmpty }) && Date() < limit {
            _ = condition.wait(until: min(limit, Date(timeIntervalSinceNow: 0.01)))
        }
        condition.unlock()
        stop()
    }

    /// Forms one batch from the queue (called with the lock held, the queue not empty, no other thread
    /// forming): the first request, then compatible ones up to `maxBatch` samples, waiting at most until the first
    /// request's `maxDelay` has passed. Expired requests are answered; the rest go to the device the router picks.
    /// Returns the device index the batch was assigned to, or nil when nothing was left to run.
    private func formBatch() -> Int? {
        let first = queue.removeFirst()
        forming = true
        defer { forming = false }
        var batch = [first]
        var samples = first.samples
        let deadline = first.enqueued &+ maxDelayNanoseconds
        while batchable && samples < maxBatch {
            if let index = queue.firstIndex(where: { $0.batches(with: first) && samples + $0.samples <= maxBatch }) {
                let next = queue.remove(at: index)
                batch.append(next)
                samples += next.samples
                continue
            }
            let now = MonotonicClock.nanoseconds()
            if now >= deadline || stopping { break }
            _ = condition.wait(until: Date(timeIntervalSinceNow: Double(deadline - now) / 1e9))
        }
        metrics.queueDepth(model: model, queue.count)
        let now = MonotonicClock.nanoseconds()
        var live: [PendingRequest] = []
        for request in batch {
            if let limit = request.deadline, now > limit {
                request.completion(.failure(ServeError(503, "the request's timeout expired in the queue")))
            } else {
                live.append(request)
            }
        }
        guard !live.isEmpty else { return nil }
        let size = live.reduce(0) { $0 + $1.samples }
        let available = devices.indices.filter { failed[devices[$0].name] == nil }
        guard !available.isEmpty else {
            for request in live {
                request.completion(.failure(ServeError(503, "no device can serve '\(model)': \(failed)")))
            }
            return nil
        }
        var (choice, reason) = router(size, queuedSamples)
        if !available.contains(choice) {
            choice = available[0]
            reason = "\(devices[choice].name): the routed device failed"
        }
        metrics.routed(model: model, device: devices[choice].name, reason: reason)
        assigned[choice].append(live)
        queuedSamples[choice] += size
        condition.broadcast()
        return choice
    }

    /// Each device's thread runs the batches assigned to it and, when it has none, forms the next batch itself
    /// (so a request reaches a device in one hand-over, not two); a batch routed to another device is handed on.
    private func deviceLoop(_ index: Int, _ session: Session) {
        let name = devices[index].name
        while true {
            condition.lock()
            while assigned[index].isEmpty {
                if !queue.isEmpty && !forming {
                    _ = formBatch()
                    continue
                }
                if stopping && queue.isEmpty && !forming && assigned[index].isEmpty {
                    condition.unlock()
                    return
                }
                condition.wait()
            }
            let batch = assigned[index].removeFirst()
            running += 1
            condition.unlock()
            run(batch, on: session, device: name, index: index)
            condition.lock()
            running -= 1
            queuedSamples[index] -= batch.reduce(0) { $0 + $1.samples }
            condition.broadcast()
            condition.unlock()
        }
    }

    private func run(_ batch: [PendingRequest], on session: Session, device: String, index: Int) {
        let start = MonotonicClock.nanoseconds()
        let size = batch.reduce(0) { $0 + $1.samples }
        do {
            let inputs = try Self.concatenate(batch.map(\.inputs))
            let names = session.graph.runtimeInputs.map(\.name)
            let result = try session.run(zip(names, inputs).map { NamedTensor(name: $0, tensor: $1) })
            let compute = MonotonicClock.nanoseconds() - start
            metrics.batch(model: model, device: device, size: size, computeNanoseconds: compute)
            var offset = 0
            for request in batch {
                var outputs: [NamedTensor] = []
                for output in result.outputs {
                    outputs.append(
                        NamedTensor(
                            name: output.name,
                            tensor: try Self.slice(
                                output.tensor, from: offset, count: request.samples, batch: size, output: output.name)))
                }
                offset += request.samples
                request.completion(
                    .success(
                        BatchResult(
                            outputs: outputs, device: device, batchSize: size,
                            queueNanoseconds: start &- request.enqueued, computeNanoseconds: compute)))
            }
        } catch let error as ServeError {
            for request in batch { request.completion(.failure(error)) }
        } catch let error as RuntimeError {
            // Input shapes the model does not take are the client's mistake; anything else is the device's.
            for request in batch { request.completion(.failure(ServeError.badRequest("\(error)"))) }
        } catch {
            condition.lock()
            failed[device] = "\(error)"
            condition.unlock()
            metrics.deviceFailed(model: model, device: device)
            for request in batch {
                request.completion(.failure(ServeError(500, "\(device) failed: \(error)")))
            }
        }
    }

    /// Joins requests' inputs along the leading axis (row-major: their bytes one after another).
    static func concatenate(_ requests: [[Tensor]]) throws -> [Tensor] {
        guard let first = requests.first else { return [] }
        if requests.count == 1 { return first }
        return try first.indices.map { position in
            let parts = requests.map { $0[position] }
            let leading = parts.reduce(0) { $0 + ($1.shape.dimensions.first ?? 1) }
            var dims = parts[0].shape.dimensions
            guard !dims.isEmpty else { throw ServeError.badRequest("a scalar input cannot be batched") }
            dims[0] = leading
            var joined = try Tensor(uninitialized: parts[0].dtype, shape: Shape(dims))
            try joined.withUnsafeMutableBytes { target in
                var offset = 0
                for part in parts {
                    part.withUnsafeBytes { source in
                        if let base = source.baseAddress, let to = target.baseAddress {
                            (to + offset).copyMemory(from: base, byteCount: source.count)
                        }
                        offset += source.count
                    }
                }
            }
            return joined
        }
    }

    /// Rows [from, from + count) of an output whose leading dimension is the batch.
    static func slice(_ tensor: Tensor, from: Int, count: Int, batch: Int, output: String) throws -> Tensor {
        let dims = tensor.shape.dimensions
        if from == 0 && count == batch { return tensor }
        guard let leading = dims.first, leading == batch, batch > 0 else {
            throw ServeError(500, "output '\(output)' has no batch dimension to split (shape \(dims))")
        }
        let rowBytes = tensor.byteCount / batch
        var rows = dims
        rows[0] = count
        var part = try Tensor(uninitialized: tensor.dtype, shape: Shape(rows))
        try part.withUnsafeMutableBytes { target in
            tensor.withUnsafeBytes { source in
                if let base = source.baseAddress, let to = target.baseAddress {
                    to.copyMemory(from: base + from * rowBytes, byteCount: count * rowBytes)
                }
            }
        }
        return part
    }
}

/// An error message set by one thread and read by another.
final class ErrorBox: @unchecked Sendable {
    private let lock = NSLock()
    private var message: String?
    var value: String? { lock.withLock { message } }
    func set(_ text: String) { lock.withLock { if message == nil { message = text } } }
}
