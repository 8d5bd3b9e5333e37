import Foundation
import HTTPTypes
import Hummingbird
import InferenceGraph
import InferenceRuntime
import InferenceTensor
import Logging
import NIOCore
import ServiceLifecycle

/// A model the server serves: its name, graph (for metadata) and the devices it runs on.
public struct ServedModel: Sendable {
    public var name: String
    public var graph: Graph
    public var devices: [ServedDevice]
    public var router: DeviceRouter

    public init(name: String, graph: Graph, devices: [ServedDevice], router: @escaping DeviceRouter) {
        self.name = name
        self.graph = graph
        self.devices = devices
        self.router = router
    }
}

/// How the server batches, bounds and listens.
public struct ServerSettings: Sendable {
    public var host = "127.0.0.1"
    public var port = 8000
    public var maxBatch = 8
    public var maxQueueDelayNanoseconds: UInt64 = 0
    public var maxQueue = 256
    public var maxBodyBytes = 64 << 20
    public var maxElements = 1 << 26
    public var version = "0.1.0"
    /// Dollars per hour per device, for the cost metric.
    public var prices: [String: Double] = [:]

    public init() {}
}

/// The Open Inference Protocol v2 REST server: health, server and model metadata, infer (JSON and Triton's
/// binary tensor extension), /metrics; every model behind a dynamic batcher.
public final class InferenceHTTPServer: Sendable {
    let settings: ServerSettings
    let models: [String: ServedModel]
    let batchers: [String: Batcher]
    public let metrics = Metrics()

    /// Loads every model on its devices (a session per device thread).
    /// - Throws: `ServeError` naming the model and device that failed to load.
    public init(models: [ServedModel], settings: ServerSettings) throws {
        self.settings = settings
        var byName: [String: ServedModel] = [:]
        var batchers: [String: Batcher] = [:]
        let metrics = self.metrics
        metrics.prices = settings.prices
        for model in models {
            let first = model.graph.runtimeInputs.first?.dimensions?.first
            let batchable: Bool
            if case .some(.symbolic) = first { batchable = true } else { batchable = false }
            let batcher = Batcher(
                model: model.name, batchable: batchable, maxBatch: settings.maxBatch,
                maxDelayNanoseconds: settings.maxQueueDelayNanoseconds, maxQueue: settings.maxQueue,
                devices: model.devices, router: model.router, metrics: metrics)
            try batcher.start()
            byName[model.name] = model
            batchers[model.name] = batcher
        }
        self.models = byName
        self.batchers = batchers
    }

    /// Serves until SIGINT or SIGTERM, then finishes the requests in flight and queued (graceful shutdown).
    /// `onListening` gets the bound port (useful with port 0).
    public func run(onListening: @escaping @Sendable (Int) -> Void) async throws {
        let router = Router()
        routes(router)
        var logger = Logger(label: "inference.serve")
        logger.logLevel = .warning
        let app = Application(
            router: router,
            configuration: .init(address: .hostname(settings.host, port: settings.port), serverName: "inference"),
            onServerRunning: { channel in onListening(channel.localAddress?.port ?? -1) },
            logger: logger)
        try await app.runService(gracefulShutdownSignals: [.sigterm, .sigint])
        for batcher in batchers.values { batcher.drain(seconds: 30) }
    }

    // MARK: routes

    func routes(_ router: Router<BasicRequestContext>) {
        router.get("/v2") { _, _ in
            self.json(
                OIP.ServerMetadata(
                    name: "inference", version: self.settings.version, extensions: ["binary_tensor_data"]))
        }
        router.get("/v2/health/live") { _, _ in Response(status: .ok) }
        router.get("/v2/health/ready") { _, _ in
            Response(
                status: self.batchers.values.allSatisfy { $0.failed.count < self.deviceCount($0.model) }
                    ? .ok : .serviceUnavailable)
        }
        router.get("/metrics") { _, _ in
            var buffer = ByteBuffer()
            buffer.writeString(self.metrics.render())
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4"], body: .init(byteBuffer: buffer))
        }
        for prefix in ["/v2/models/:name", "/v2/models/:name/versions/:version"] {
            router.get(RouterPath(prefix)) { _, context in
                guard let model = self.model(context) else { return self.unknown(context) }
                return self.json(
                    OIP.ModelMetadata(
                        name: model.name, versions: ["1"], platform: "onnx",
                        inputs: model.graph.runtimeInputs.map(OIP.metadata),
                        outputs: model.graph.outputs.map(OIP.metadata)))
            }
            router.get(RouterPath(prefix + "/ready")) { _, context in
                guard let model = self.model(context), let batcher = self.batchers[model.name] else {
                    return self.unknown(context)
                }
                return Response(status: batcher.failed.count < model.devices.count ? .ok : .serviceUnavailable)
            }
            router.post(RouterPath(prefix + "/infer")) { request, context in
                await self.infer(request, context)
            }
        }
    }

    private func deviceCount(_ model: String) -> Int { models[model]?.devices.count ?? 0 }

    private func model(_ context: BasicRequestContext) -> ServedModel? {
        guard let name = context.parameters.get("name"), let model = models[name] else { return nil }
        if let version = context.parameters.get("version"), version != "1" { return nil }
        return model
    }

    private func unknown(_ context: BasicRequestContext) -> Response {
        let name = context.parameters.get("name") ?? ""
        let version = context.parameters.get("version").map { " version \($0)" } ?? ""
        return error(
            ServeError(
                404, "unknown model '\(name)'\(version); served: \(models.keys.sorted().joined(separator: ", "))"))
    }

    func json<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok) -> Response {
        let encoder = JSONEncoder()
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        let data = (try? encoder.encode(value)) ?? Data("{\"error\":\"cannot encode the response\"}".utf8)
        var buffer = ByteBuffer()
        buffer.writeBytes(data)
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: buffer))
    }

    func error(_ error: ServeError) -> Response {
        json(OIP.ErrorBody(error: error.description), status: HTTPResponse.Status(code: error.status))
    }

    /// Triton's binary-extension header (a valid token, so the name always exists; the fallback is never used).
    static let headerLength = HTTPField.Name("Inference-Header-Content-Length") ?? .contentLength

    // MARK: infer

    private func infer(_ request: Request, _ context: BasicRequestContext) async -> Response {
        let arrived = MonotonicClock.nanoseconds()
        guard let model = model(context), let batcher = batchers[model.name] else { return unknown(context) }
        metrics.started(model: model.name)
        var status = 200
        var queued: UInt64?
        defer {
            metrics.finished(
                model: model.name, status: status, requestNanoseconds: MonotonicClock.nanoseconds() - arrived,
                queueNanoseconds: queued)
        }
        do {
            var request = request
            let body: ByteBuffer
            do { body = try await request.collectBody(upTo: settings.maxBodyBytes) } catch {
                throw ServeError.badRequest(
                    "the request body exceeds \(settings.maxBodyBytes) bytes (or was cut short)")
            }
            let bytes = body.readableBytesView
            // Triton's binary extension: the JSON header's length, then the tensors' bytes.
            var jsonCount = bytes.count
            if let text = request.headers[Self.headerLength] {
                guard let length = Int(text), length >= 0, length <= bytes.count else {
                    throw ServeError.badRequest(
                        "Inference-Header-Content-Length '\(text)' does not fit a body of \(bytes.count) bytes")
                }
                jsonCount = length
            }
            let header = Array(bytes.prefix(jsonCount))
            var binary = ArraySlice(bytes.dropFirst(jsonCount))
            let parsed: OIP.Request
            do { parsed = try JSONDecoder().decode(OIP.Request.self, from: Data(header)) } catch {
                throw ServeError.badRequest("the request is not an inference request in JSON: \(Self.reason(error))")
            }
            let (inputs, samples) = try tensors(for: parsed, model: model, binary: &binary)
            guard binary.isEmpty else {
                throw ServeError.badRequest("\(binary.count) bytes of binary data follow the inputs' declared sizes")
            }
            var deadline: UInt64?
            if let timeout = parsed.parameters?["timeout"]?.number, timeout > 0, timeout < 3.6e9 {
                deadline = arrived &+ UInt64(timeout * 1000)  // microseconds, as Triton's timeout parameter
            }
            let result: BatchResult = try await withCheckedThrowingContinuation { continuation in
                batcher.submit(
                    PendingRequest(
                        inputs: inputs, samples: samples, enqueued: arrived, deadline: deadline,
                        completion: { outcome in continuation.resume(with: outcome.mapError { $0 as any Error }) }))
            }
            queued = result.queueNanoseconds
            return try response(parsed, model: model, result: result)
        } catch let failure as ServeError {
            status = failure.status
            return error(failure)
        } catch {
            status = 500
            return self.error(ServeError(500, "\(error)"))
        }
    }

    static func reason(_ error: any Error) -> String {
        switch error {
        case DecodingError.dataCorrupted(let context): context.debugDescription
        case DecodingError.keyNotFound(let key, _): "missing \"\(key.stringValue)\""
        case DecodingError.typeMismatch(_, let context):
            "wrong type at \(context.codingPath.map(\.stringValue).joined(separator: "."))"
        case DecodingError.valueNotFound(_, let context):
            "missing value at \(context.codingPath.map(\.stringValue).joined(separator: "."))"
        default: "\(error)"
        }
    }

    /// The request's inputs in the model's order, checked against the model's inputs.
    private func tensors(for request: OIP.Request, model: ServedModel, binary: inout ArraySlice<UInt8>) throws -> (
        [Tensor], Int
    ) {
        let expected = model.graph.runtimeInputs
        var byName: [String: Tensor] = [:]
        for input in request.inputs {
            guard let info = expected.first(where: { $0.name == input.name }) else {
                throw ServeError.badRequest(
                    "unknown input '\(input.name)'; model '\(model.name)' takes \(expected.map(\.name).joined(separator: ", "))"
                )
            }
            guard byName[input.name] == nil else { throw ServeError.badRequest("input '\(input.name)' is given twice") }
            var bytes: ArraySlice<UInt8>?
            if let size = input.parameters?["binary_data_size"]?.number {
                guard size >= 0, size <= Double(binary.count), let count = Int(exactly: size) else {
                    throw ServeError.badRequest(
                        "input '\(input.name)': binary_data_size \(size) but \(binary.count) bytes of binary data remain"
                    )
                }
                bytes = binary.prefix(count)
                binary = binary.dropFirst(count)
            }
            let tensor = try OIP.tensor(input, binary: bytes, maxElements: settings.maxElements)
            guard tensor.dtype == info.dtype else {
                throw ServeError.badRequest(
                    "input '\(input.name)': datatype \(input.datatype); the model takes \(OIP.datatype(info.dtype))")
            }
            if let dims = info.dimensions {
                let got = tensor.shape.dimensions
                let fits =
                    dims.count == got.count
                    && zip(dims, got).allSatisfy { dim, value in
                        if case .fixed(let n) = dim { return n == value }
                        return true
                    }
                guard fits else {
                    throw ServeError.badRequest(
                        "input '\(input.name)': shape \(got); the model takes \(OIP.metadata(of: info).shape) (-1: any)"
                    )
                }
            }
            byName[input.name] = tensor
        }
        let ordered = try expected.map { info -> Tensor in
            guard let tensor = byName[info.name] else {
                throw ServeError.badRequest("missing input '\(info.name)'")
            }
            return tensor
        }
        let leading = ordered.map { $0.shape.dimensions.first ?? 1 }
        guard let samples = leading.first, leading.allSatisfy({ $0 == samples }) else {
            throw ServeError.badRequest("inputs disagree on the batch size (leading dimensions \(leading))")
        }
        guard samples >= 1 else { throw ServeError.badRequest("an empty batch (leading dimension 0)") }
        return (ordered, samples)
    }

    private func response(_ request: OIP.Request, model: ServedModel, result: BatchResult) throws -> Response {
        let wanted = request.outputs?.map(\.name)
        if let wanted {
            for name in wanted where !result.outputs.contains(where: { $0.name == name }) {
                throw ServeError.badRequest(
                    "unknown output '\(name)'; model '\(model.name)' has \(result.outputs.map(\.name).joined(separator: ", "))"
                )
            }
        }
        let allBinary = request.parameters?["binary_data_output"]?.flag ?? false
        var outputs: [OIP.ResponseOutput] = []
        var binary: [UInt8] = []
        for output in result.outputs where wanted?.contains(output.name) ?? true {
            let asked = request.outputs?.first { $0.name == output.name }
            let asBinary = asked?.parameters?["binary_data"]?.flag ?? allBinary
            let tensor = output.tensor
            var entry = OIP.ResponseOutput(
                name: output.name, datatype: OIP.datatype(tensor.dtype), shape: tensor.shape.dimensions,
                parameters: nil, data: nil)
            if asBinary {
                tensor.withUnsafeBytes { binary.append(contentsOf: $0) }
                entry.parameters = ["binary_data_size": tensor.byteCount]
            } else {
                entry.data = try OIP.AnyValues(tensor)
            }
            outputs.append(entry)
        }
        let body = OIP.Response(modelName: model.name, modelVersion: "1", id: request.id, outputs: outputs)
        guard !binary.isEmpty else { return json(body) }
        let encoder = JSONEncoder()
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        let header = try encoder.encode(body)
        var buffer = ByteBuffer()
        buffer.reserveCapacity(header.count + binary.count)
        buffer.writeBytes(header)
        buffer.writeBytes(binary)
        return Response(
            status: .ok,
            headers: [.contentType: "application/octet-stream", Self.headerLength: "\(header.count)"],
            body: .init(byteBuffer: buffer))
    }
}
