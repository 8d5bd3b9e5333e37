import ArgumentParser
import CPUBackend
import Dispatch
import InferenceBench
import InferenceGraph
import InferenceRuntime
import InferenceServer

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

struct ServeCommand: ReportingCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve models over HTTP (the Open Inference Protocol v2, as Triton and KServe speak it).",
        discussion: """
            Endpoints: GET /v2, /v2/health/live, /v2/health/ready, /v2/models/NAME[/versions/1], .../ready,
            POST .../infer (JSON tensors or Triton's binary tensor extension), GET /metrics (Prometheus).
            Concurrent requests are batched (up to --max-batch samples, waiting at most --max-queue-delay) and
            each batch goes to the device that wins it: with two devices, by the routing profile `inference
            calibrate` wrote (--profile), the larger batches to the accelerator. Listens on 127.0.0.1 unless
            --host says otherwise; SIGINT or SIGTERM finish the requests in flight, then exit.
            """)

    @Option(
        name: .long,
        help: ArgumentHelp(
            "A model to serve: NAME=FILE.onnx, FILE.onnx (named by its file) or builtin:NAME; repeatable.",
            valueName: "model"))
    var model: [String] = ["builtin:linear"]

    @Option(name: .long, help: ArgumentHelp("Address to listen on (0.0.0.0: every interface).", valueName: "host"))
    var host: String = "127.0.0.1"

    @Option(name: .long, help: ArgumentHelp("Port (0: any free port, printed on stderr).", valueName: "port"))
    var port: Int = 8000

    @Option(
        name: .long,
        help: ArgumentHelp(
            "cpu, opencl:N, cuda:N, gpu, or two of them (cpu,opencl:0) to route between.", valueName: "list"))
    var device: String = "cpu"

    @Option(name: .customLong("max-batch"), help: ArgumentHelp("Most samples per batch.", valueName: "n"))
    var maxBatch: Int = 8

    @Option(
        name: .customLong("max-queue-delay"),
        help: ArgumentHelp("Longest a request waits for others to batch with (e.g. 2ms; default 0).", valueName: "time")
    )
    var maxQueueDelay: String = "0ms"

    @Option(
        name: .customLong("max-queue"),
        help: ArgumentHelp("Requests queued per model before new ones get 503.", valueName: "n"))
    var maxQueue: Int = 256

    @Option(
        name: .customLong("max-body-mb"), help: ArgumentHelp("Largest request body in MiB.", valueName: "n"))
    var maxBodyMB: Int = 64

    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("CPU threads per CPU device.", valueName: "n"))
    var threads: Int?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Routing profile for two devices (default: the one `inference calibrate` wrote for the model).",
            valueName: "file"))
    var profile: String?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Dollars per hour per device (cpu=0.10,opencl:0=3.20): /metrics adds the cost per million samples served.",
            valueName: "device=$/h,..."))
    var price: String?

    func validate() throws {
        if let price {
            do { _ = try Prices.parse(price) } catch { throw ValidationError("--price: \(error)") }
        }
        try OptionChecks.count(port, "--port", 0...65535)
        try OptionChecks.count(maxBatch, "--max-batch", 1...4096)
        try OptionChecks.count(maxQueue, "--max-queue", 1...1_000_000)
        try OptionChecks.count(maxBodyMB, "--max-body-mb", 1...4096)
        if let threads { try OptionChecks.count(threads, "--threads", 1...4096) }
        guard Self.delay(maxQueueDelay) != nil else {
            throw ValidationError("--max-queue-delay takes a time up to 10 s, e.g. 2ms, 500us or 0")
        }
        let devices = try OptionChecks.deviceList(device)
        guard devices.count <= 2 else { throw ValidationError("--device: serve routes between at most two devices") }
        for item in devices where DeviceRequest(argument: String(item)) == nil || item == "auto" {
            throw ValidationError("unknown device '\(item)' for --device; use cpu, gpu, cuda:N or opencl:N")
        }
        guard !model.isEmpty else { throw ValidationError("--model needs at least one model") }
    }

    /// `2ms`, `500us`, `0.002s` or `0` as nanoseconds (at most 10 s).
    static func delay(_ text: String) -> UInt64? {
        let units: [(String, Double)] = [("us", 1e3), ("ms", 1e6), ("s", 1e9)]
        var value = Double(text)
        var scale = 1e6
        for (suffix, factor) in units where text.hasSuffix(suffix) {
            value = Double(text.dropLast(suffix.count))
            scale = factor
            break
        }
        guard let value, value.isFinite, value >= 0, value * scale <= 10e9 else { return nil }
        return UInt64(value * scale)
    }

    /// `NAME=FILE`, `FILE.onnx` or `builtin:NAME` as (name, source).
    static func named(_ argument: String) -> (String, String) {
        if argument.hasPrefix("builtin:") { return (String(argument.dropFirst("builtin:".count)), argument) }
        if let equals = argument.firstIndex(of: "="), !argument[..<equals].contains("/") {
            return (String(argument[..<equals]), String(argument[argument.index(after: equals)...]))
        }
        let file = argument.split(separator: "/").last.map(String.init) ?? argument
        return (file.hasSuffix(".onnx") ? String(file.dropLast(5)) : file, argument)
    }

    func execute() throws {
        let requests = try OptionChecks.deviceList(device).compactMap { DeviceRequest(argument: String($0)) }
        var served: [ServedModel] = []
        for argument in model {
            let (name, source) = Self.named(argument)
            guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || "_-.".contains($0) }) else {
                throw ValidationError("--model: '\(name)' is not a model name (letters, digits, _ - .)")
            }
            guard !served.contains(where: { $0.name == name }) else {
                throw ValidationError("--model: two models are named '\(name)'")
            }
            let graph = try ModelSource.load(source)
            let threads = threads
            let devices = requests.map { request in
                ServedDevice(name: request.description) {
                    let selection = try DeviceSelection.resolve(request, threads: threads)
                    return try selection.session(graph)
                }
            }
            served.append(
                ServedModel(
                    name: name, graph: graph, devices: devices,
                    router: try Self.router(model: source, devices: requests.map(\.description), profilePath: profile)))
        }
        var settings = ServerSettings()
        settings.host = host
        settings.port = port
        settings.maxBatch = maxBatch
        settings.maxQueueDelayNanoseconds = Self.delay(maxQueueDelay) ?? 0
        settings.maxQueue = maxQueue
        settings.maxBodyBytes = maxBodyMB << 20
        if let price, let prices = try? Prices.parse(price) { settings.prices = prices.dollarsPerHour }
        let server: InferenceHTTPServer
        do { server = try InferenceHTTPServer(models: served, settings: settings) } catch let error as ServeError {
            throw InputError(description: error.description)
        }
        let done = DispatchSemaphore(value: 0)
        let failure = ServeFailure()
        let host = host
        let names = served.map(\.name).joined(separator: ", ")
        let deviceText = device
        Task {
            do {
                try await server.run { port in
                    printError("serving \(names) on http://\(host):\(port) (devices: \(deviceText))")
                }
            } catch {
                failure.set("\(error)")
            }
            done.signal()
        }
        done.wait()
        if let message = failure.message {
            throw InputError(description: "cannot serve on \(host):\(port): \(message)")
        }
    }

    /// One device: everything goes there. Two: the routing profile's crossover batch (the calibrated one for
    /// the model, or --profile); from it on the second device, below it the first, and a batch whose device is
    /// busy with more than twice its samples goes to the other one.
    static func router(model: String, devices: [String], profilePath: String?) throws -> DeviceRouter {
        guard devices.count == 2 else { return { _, _ in (0, "only device") } }
        var crossover: Int?
        var loaded = false
        if let path = profilePath
            ?? (try? RoutingProfile.defaultPath(
                model: model, digest: ModelDigest.of(model: model), machine: CPUInfo.current.modelName))
        {
            if let profile = try? RoutingProfile.load(path: path) {
                crossover = profile.crossoverBatch
                loaded = true
            } else if profilePath != nil {
                throw InputError(description: "\(path): cannot read the routing profile")
            }
        }
        let found = crossover
        let fromProfile = loaded
        if found == nil && loaded {
            printError("note: the routing profile for \(model) has \(devices[0]) winning at every measured batch size")
        } else if found == nil {
            printError(
                "note: no routing profile for \(model) (run `inference calibrate --model \(model) --device \(devices[1])`); "
                    + "every batch goes to \(devices[0])")
        }
        return { size, queued in
            guard let crossover = found else { return (0, fromProfile ? "profile: no crossover" : "no profile") }
            let preferred = size >= crossover ? 1 : 0
            let other = 1 - preferred
            if queued.count == 2, queued[preferred] > 2 * max(size, 1), queued[other] == 0 {
                return (other, "overflow: \(devices[preferred]) busy")
            }
            return (
                preferred,
                size >= crossover
                    ? "profile: batch \(size) at or above the crossover \(crossover)"
                    : "profile: batch \(size) below the crossover \(crossover)"
            )
        }
    }
}

/// The server task's failure, written before the semaphore is signalled and read after it is waited on.
final class ServeFailure: @unchecked Sendable {
    private(set) var message: String?
    func set(_ value: String) { message = value }
}
