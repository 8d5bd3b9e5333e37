import Foundation
import InferenceBench
import InferenceGraph
import InferenceRuntime
import InferenceTensor

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// The in-process equivalent of `inference serve`: the same batcher and router, no HTTP. A query of n samples is
/// the sample repeated n times; every 8th query's outputs are checked against the sample run alone (LoadGen's
/// TEST01 idea: accuracy under load), per device and batch size.
public final class InProcessTarget: LoadTarget, @unchecked Sendable {
    let batcher: Batcher
    let sample: [Tensor]
    let reference: [Tensor]
    private let lock = NSLock()
    private var inputsBySize: [Int: [Tensor]] = [:]
    private var differences: [String: Double] = [:]

    /// - Throws: a device's session error, or the model's error on the sample.
    public init(model: ServedModel, settings: ServerSettings, sample: [Tensor], metrics: Metrics = Metrics()) throws {
        let first = model.graph.runtimeInputs.first?.dimensions?.first
        let batchable: Bool
        if case .some(.symbolic) = first { batchable = true } else { batchable = false }
        guard let device = model.devices.first else { throw ServeError(500, "no device") }
        let alone = try device.makeSession()
        let names = model.graph.runtimeInputs.map(\.name)
        reference = try alone.run(zip(names, sample).map { NamedTensor(name: $0, tensor: $1) }).outputs.map(\.tensor)
        self.sample = sample
        batcher = Batcher(
            model: model.name, batchable: batchable, maxBatch: settings.maxBatch,
            maxDelayNanoseconds: settings.maxQueueDelayNanoseconds, maxQueue: settings.maxQueue,
            devices: model.devices, router: model.router, metrics: metrics)
        try batcher.start()
    }

    deinit { batcher.drain(seconds: 5) }

    /// Largest difference from the sample run alone, by "device at batch n".
    public var accuracy: [String: Double] { lock.withLock { differences } }

    func inputs(_ samples: Int) throws -> [Tensor] {
        if let cached = lock.withLock({ inputsBySize[samples] }) { return cached }
        let made = try Batcher.concatenate(Array(repeating: sample, count: samples))
        lock.withLock { inputsBySize[samples] = made }
        return made
    }

    public func issue(query: Int, samples: Int, done: @escaping @Sendable (Bool) -> Void) {
        guard let inputs = try? inputs(samples) else {
            done(false)
            return
        }
        let check = query % 8 == 0
        batcher.submit(
            PendingRequest(
                inputs: inputs, samples: samples, enqueued: MonotonicClock.nanoseconds(), deadline: nil,
                completion: { [self] outcome in
                    switch outcome {
                    case .success(let result):
                        if check { record(result) }
                        done(true)
                    case .failure: done(false)
                    }
                }))
    }

    private func record(_ result: BatchResult) {
        var worst = 0.0
        for (output, expected) in zip(result.outputs, reference) {
            guard let got = try? output.tensor.scalars(as: Float.self),
                let want = try? expected.scalars(as: Float.self), !want.isEmpty
            else { continue }
            for (index, value) in got.enumerated() { worst = max(worst, Double(abs(value - want[index % want.count]))) }
        }
        let key = "\(result.device) at batch \(result.batchSize)"
        lock.withLock { differences[key] = max(differences[key] ?? 0, worst) }
    }
}

/// A running `inference serve` (or any Open Inference Protocol v2 server) as a load target: queries are POSTed
/// as JSON from a pool of keep-alive connections, one thread each.
public final class HTTPTarget: LoadTarget, @unchecked Sendable {
    let host: String
    let port: Int
    let path: String
    let sample: [(name: String, tensor: Tensor)]
    private let condition = NSCondition()
    private var jobs: [(Int, @Sendable (Bool) -> Void)] = []
    private var stopping = false
    private var bodies: [Int: [UInt8]] = [:]

    /// `url`: http://HOST:PORT. - Throws: `ServeError` for a URL that is not http://host:port.
    public init(url: String, model: String, sample: [(name: String, tensor: Tensor)], connections: Int) throws {
        guard url.hasPrefix("http://") else { throw ServeError(400, "--url must be http://HOST:PORT") }
        let rest = url.dropFirst("http://".count).split(separator: "/").first.map(String.init) ?? ""
        let parts = rest.split(separator: ":")
        guard parts.count == 2, let port = Int(parts[1]), (1...65535).contains(port) else {
            throw ServeError(400, "--url must be http://HOST:PORT, not \(url)")
        }
        host = String(parts[0])
        self.port = port
        path = "/v2/models/\(model)/infer"
        self.sample = sample
        for index in 0..<max(connections, 1) {
            let thread = Thread { [self] in worker() }
            thread.name = "load-connection-\(index)"
            thread.start()
        }
    }

    deinit { stop() }

    public func stop() {
        condition.lock()
        stopping = true
        condition.broadcast()
        condition.unlock()
    }

    public func issue(query: Int, samples: Int, done: @escaping @Sendable (Bool) -> Void) {
        condition.lock()
        jobs.append((samples, done))
        condition.signal()
        condition.unlock()
    }

    func body(_ samples: Int) -> [UInt8] {
        condition.lock()
        defer { condition.unlock() }
        if let cached = bodies[samples] { return cached }
        var inputs: [String] = []
        for (name, tensor) in sample {
            let values = (try? OIP.AnyValues(tensor)).flatMap { try? JSONEncoder().encode($0) } ?? Data("[]".utf8)
            let text = String(decoding: values, as: UTF8.self)
            let repeated = Array(repeating: String(text.dropFirst().dropLast()), count: samples).joined(separator: ",")
            var shape = tensor.shape.dimensions
            if shape.isEmpty { shape = [1] }
            shape[0] = samples * shape[0]
            inputs.append(
                "{\"name\":\"\(name)\",\"shape\":\(shape),\"datatype\":\"\(OIP.datatype(tensor.dtype))\",\"data\":[\(repeated)]}"
            )
        }
        let made = Array("{\"inputs\":[\(inputs.joined(separator: ","))]}".utf8)
        bodies[samples] = made
        return made
    }

    private func worker() {
        var connection: Int32 = -1
        defer { if connection >= 0 { close(connection) } }
        while true {
            condition.lock()
            while jobs.isEmpty && !stopping { condition.wait() }
            if jobs.isEmpty {
                condition.unlock()
                return
            }
            let (samples, done) = jobs.removeFirst()
            condition.unlock()
            let payload = body(samples)
            var ok = false
            for _ in 0..<2 {
                if connection < 0 { connection = Self.connect(host, port) }
                if connection < 0 { break }
                if let status = Self.post(connection, host: host, path: path, body: payload) {
                    ok = status == 200
                    break
                }
                close(connection)
                connection = -1
            }
            done(ok)
        }
    }

    static func connect(_ host: String, _ port: Int) -> Int32 {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &result) == 0, let first = result else { return -1 }
        defer { freeaddrinfo(result) }
        var entry: UnsafeMutablePointer<addrinfo>? = first
        while let info = entry {
            let fd = socket(info.pointee.ai_family, info.pointee.ai_socktype, info.pointee.ai_protocol)
            if fd >= 0 {
                if systemConnect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 {
                    var one: Int32 = 1
                    setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
                    return fd
                }
                close(fd)
            }
            entry = info.pointee.ai_next
        }
        return -1
    }

    /// One request on a keep-alive connection; the status, or nil when the connection failed.
    static func post(_ fd: Int32, host: String, path: String, body: [UInt8]) -> Int? {
        let head = Array(
            "POST \(path) HTTP/1.1\r\nHost: \(host)\r\nContent-Type: application/json\r\nContent-Length: \(body.count)\r\n\r\n"
                .utf8)
        guard writeAll(fd, head), writeAll(fd, body) else { return nil }
        var buffer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        var headerEnd: Int?
        while headerEnd == nil {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            guard n > 0 else { return nil }
            buffer.append(contentsOf: chunk[0..<n])
            if let range = findHeaderEnd(buffer) { headerEnd = range }
            if buffer.count > 1 << 20 && headerEnd == nil { return nil }
        }
        guard let end = headerEnd else { return nil }
        let header = String(decoding: buffer[0..<end], as: UTF8.self)
        let lines = header.split(separator: "\r\n")
        guard let statusLine = lines.first, statusLine.split(separator: " ").count >= 2,
            let status = Int(statusLine.split(separator: " ")[1])
        else { return nil }
        var length = 0
        for line in lines.dropFirst() where line.lowercased().hasPrefix("content-length:") {
            length = Int(line.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) ?? 0
        }
        var remaining = length - (buffer.count - end - 4)
        while remaining > 0 {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, min($0.count, remaining)) }
            guard n > 0 else { return nil }
            remaining -= n
        }
        return status
    }

    static func findHeaderEnd(_ bytes: [UInt8]) -> Int? {
        guard bytes.count >= 4 else { return nil }
        for i in 0...(bytes.count - 4)
        where bytes[i] == 13 && bytes[i + 1] == 10 && bytes[i + 2] == 13 && bytes[i + 3] == 10 {
            return i
        }
        return nil
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes {
                send(fd, $0.baseAddress.map { $0 + done }, bytes.count - done, Int32(MSG_NOSIGNAL))
            }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return false }
            done += n
        }
        return true
    }
}

/// The C library's connect, under a name the connection type's own `connect` does not shadow.
private func systemConnect(_ fd: Int32, _ address: UnsafePointer<sockaddr>?, _ length: socklen_t) -> Int32 {
    connect(fd, address, length)
}
