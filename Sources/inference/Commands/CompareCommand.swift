import ArgumentParser
import CPUBackend
import GPUBackend
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

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

struct CompareCommand: ReportingCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare",
        abstract: "Run the same input on every available device, side by side, and say which to use and why.",
        discussion: """
            Reports per device: cold start (first run, plan included), warm latency percentiles, the split into
            copy in / compute / copy out, and output parity against the first device (max absolute and relative
            difference, predictions that flip). Warm runs are interleaved across devices in rounds.
            """)

    @Option(
        name: .long, help: ArgumentHelp("Input data (.npy, .npz, or name=file.npy; repeatable).", valueName: "file"))
    var input: [String] = []

    @Option(name: .long, help: ArgumentHelp("The model: builtin:NAME or an .onnx file.", valueName: "model"))
    var model: String = "builtin:linear"

    @OptionGroup var deviceList: DeviceListOption
    var devices: String? { deviceList.devices }

    @Option(
        name: .customLong("repeat"), parsing: .unconditional,
        help: ArgumentHelp("Timed warm runs per device.", valueName: "n"))
    var repeats: Int = 50

    @OptionGroup var threadsOption: ThreadsOption
    var threads: Int? { threadsOption.threads }

    @Option(
        name: .customLong("idle-gap"),
        help: ArgumentHelp("Also time one run after this many seconds idle (e.g. 2 or 2s).", valueName: "seconds"))
    var idleGap: String?

    @Flag(name: .long, help: "Print one JSON object instead of the table.")
    var json = false

    @Option(
        name: .customLong("min-duration"),
        help: ArgumentHelp(
            "Keep running rounds until each device has spent at least this long in timed runs (e.g. 2 or 500ms).",
            valueName: "seconds"))
    var minDuration: String?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Dollars per hour per device, e.g. cpu=0.10,cuda:0=3.20: adds the cost per million inferences.",
            valueName: "device=$/h,..."))
    var price: String?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "An offered load (e.g. 50/s) for the cost: each device scaled to serve it, idle time paid.",
            valueName: "rate/s"))
    var load: String?

    @Option(
        name: .customLong("energy-seconds"),
        help: ArgumentHelp(
            "Seconds of runs per device for the energy reading where counters are readable (0: skip).",
            valueName: "seconds"))
    var energySeconds: Double = 1

    @Option(
        name: .long,
        help: ArgumentHelp(
            PrecisionChoice.help + " Every device runs that precision; each also gets its parity with fp32.",
            valueName: "fp32|fp16|bf16|int8"))
    var precision: String = "fp32"

    @OptionGroup var calibration: CalibrationDataOption
    var calibrationData: String? { calibration.calibrationData }

    func validate() throws {
        guard !input.isEmpty else { throw ValidationError("missing --input (a .npy or .npz file)") }
        _ = try PrecisionChoice.parse(precision, single: true)
        try OptionChecks.count(repeats, "--repeat", 1...OptionChecks.maxRepeats)
        if let idleGap, Self.seconds(idleGap) == nil {
            throw ValidationError("--idle-gap takes seconds, e.g. 2 or 0.5s")
        }
        if let minDuration, Self.seconds(minDuration) == nil {
            throw ValidationError("--min-duration takes seconds up to 600, e.g. 2 or 500ms")
        }
        if let price {
            do { _ = try Prices.parse(price) } catch { throw ValidationError("--price: \(error)") }
        }
        if let load, Self.rate(load) == nil {
            throw ValidationError("--load takes a rate per second above 0, e.g. 50/s")
        }
        guard energySeconds.isFinite, energySeconds >= 0, energySeconds <= 60 else {
            throw ValidationError("--energy-seconds must be between 0 and 60")
        }
    }

    /// `50/s`, `50` or `3000/min` as a rate per second.
    static func rate(_ text: String) -> Double? {
        var body = Substring(text)
        var scale = 1.0
        if body.hasSuffix("/s") {
            body = body.dropLast(2)
        } else if body.hasSuffix("/min") {
            body = body.dropLast(4)
            scale = 1.0 / 60
        }
        guard let value = Double(body), value.isFinite, value > 0, value <= 1e12 else { return nil }
        return value * scale
    }

    static func seconds(_ text: String) -> Double? {
        let trimmed =
            text.hasSuffix("ms") ? String(text.dropLast(2)) : (text.hasSuffix("s") ? String(text.dropLast()) : text)
        guard let value = Double(trimmed), value >= 0, value <= 600 else { return nil }
        return text.hasSuffix("ms") ? value / 1000 : value
    }

    struct DeviceRun {
        var selection: DeviceSelection
        var session: Session
        var cold: RunTimings
        /// The device's whole cold start: runtime and context, session, plan, first run.
        var coldStart: ColdStart
        var energy: EnergyMeter.Result?
        var samples: [RunTimings] = []
        var outputs: [NamedTensor] = []
        var afterIdle: RunTimings?

        /// What the report reads.
        var result: DeviceResult {
            DeviceResult(
                device: selection.backend.device.description, deviceName: selection.backend.deviceName,
                samples: samples, coldStart: coldStart, energy: energy, afterIdle: afterIdle, outputs: outputs)
        }
    }

    func execute() throws {
        let requests = try deviceRequests()
        let written = try ModelSource.load(model)
        let chosen = try PrecisionChoice.parse(precision, single: true).first ?? .fp32
        let (graph, _) = try PrecisionChoice.convert(
            written, to: chosen, model: model, calibration: calibrationData, threads: threads)
        let inputs = try LoadedInputs.load(arguments: input, for: written)
        for note in inputs.notes { printError("note: \(note)") }
        // Steps: each device's start, the timed rounds, each device's energy window.
        var progress = Progress(total: requests.count * 2 + min(5, repeats))
        var runs = try requests.enumerated().map { index, request in
            progress.update(index + 1, "starting \(request)")
            return try start(request, graph: graph, inputs: inputs)
        }
        // Warm-up, then interleaved rounds so drift in machine load hits every device alike; with --min-duration,
        // more rounds until every device has run that long.
        let rounds = min(5, repeats)
        let sessions = runs.map(\.session)
        let samples = try Measurement.interleaved(
            sessions.map { session in { try session.run(inputs.tensors).timings } }, warmup: 3, repeats: repeats,
            rounds: rounds, minimumSeconds: minDuration.flatMap(Self.seconds) ?? 0
        ) { round in
            progress.update(min(requests.count + round, requests.count + rounds), "timed round \(round)")
        }
        for index in runs.indices {
            runs[index].samples = samples[index].runs
            progress.update(requests.count + rounds + index + 1, "energy on \(runs[index].selection.backend.device)")
            runs[index].energy = try energy(of: runs[index].session, on: runs[index].selection, inputs: inputs)
        }
        progress.finish()
        if let gap = idleGap.flatMap(Self.seconds) {
            for index in runs.indices {
                usleep(UInt32(gap * 1_000_000))
                runs[index].afterIdle = try runs[index].session.run(inputs.tensors).timings
            }
        }
        let prices = try price.map { text in
            do { return try Prices.parse(text) } catch { throw ValidationError("--price: \(error)") }
        }
        var report = ComparisonReport(
            model: model, batch: inputs.batchSize, runs: runs.map(\.result), idleGap: idleGap.flatMap(Self.seconds),
            prices: prices, load: load.flatMap(Self.rate))
        for warning in report.warnings { printError("warning: \(warning)") }
        report.precision = chosen.rawValue
        if chosen != .fp32 { try addParityWithFP32(&report, runs: runs, written: written, precision: chosen, inputs) }
        if json {
            let encoder = ReportJSON.encoder(pretty: true)
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            print(report.table)
        }
    }

    /// --devices, or the CPU and every accelerator found.
    func deviceRequests() throws -> [DeviceRequest] {
        guard let devices else {
            return [.cpu] + GPUDiscovery.acceleratorIDs(in: GPUDiscovery.probe()).map { .specific($0) }
        }
        return try OptionChecks.deviceList(devices).map { item in
            guard let request = DeviceRequest(argument: String(item)) else {
                throw ValidationError("unknown device '\(item)'; use cpu, gpu, cuda:N or opencl:N")
            }
            return request
        }
    }

    /// Starts a device and runs the model once, timing each phase of the cold start.
    func start(_ request: DeviceRequest, graph: Graph, inputs: LoadedInputs) throws -> DeviceRun {
        var coldStart = ColdStart()
        let selection = try coldStart.time("device (runtime library, context, kernel build)") {
            try DeviceSelection.resolve(request, threads: threads)
        }
        let session = try coldStart.time("session (weights, constants)") {
            try selection.session(graph)
        }
        let first = try session.run(inputs.tensors)
        coldStart.record("plan (first run)", nanoseconds: first.timings.planNanoseconds)
        coldStart.record("first run", nanoseconds: first.timings.totalNanoseconds)
        var cold = first.timings
        cold.computeNanoseconds += cold.planNanoseconds
        return DeviceRun(
            selection: selection, session: session, cold: cold, coldStart: coldStart, outputs: first.outputs)
    }

    /// Energy: the device alone for a window, idle power first (only where a counter can be read).
    func energy(of session: Session, on selection: DeviceSelection, inputs: LoadedInputs) throws -> EnergyMeter.Result {
        var sources = EnergySources.powercap()
        let device = selection.backend.device
        switch device.kind {
        case .cpu: break
        case .cuda:
            switch NVMLEnergy.reader(index: device.index) {
            case .success(let reader):
                sources.counters.append(
                    EnergyCounter(name: "\(reader.name) (NVML)", wrapJoules: nil, updateSeconds: 0.1, read: reader.read)
                )
            case .failure(let reason): sources.unavailable.append("GPU energy: \(reason)")
            }
        case .opencl:
            sources.unavailable.append("device energy: OpenCL has no energy counter (NVML reads NVIDIA GPUs' only)")
        }
        guard energySeconds > 0 else { return .none(["not measured (--energy-seconds 0)"]) }
        return try EnergyMeter.measure(sources, idleSeconds: min(energySeconds, 1), activeSeconds: energySeconds) {
            _ = try session.run(inputs.tensors)
        }
    }

    /// Each device's outputs against the float32 model's, run once on the CPU; the first device's in the verdict.
    func addParityWithFP32(
        _ report: inout ComparisonReport, runs: [DeviceRun], written: Graph, precision: Precision,
        _ inputs: LoadedInputs
    ) throws {
        let reference = try Session(graph: written, backend: CPUBackend(threads: threads))
        if let expected = try reference.run(inputs.tensors).outputs.first?.tensor {
            for (index, run) in runs.enumerated() {
                guard let got = run.outputs.first?.tensor else { continue }
                report.devices[index].parityWithFP32 = try InferenceBench.Parity.compare(got, reference: expected)
            }
        }
        if let first = report.devices.first?.parityWithFP32 {
            if report.verdict.hasSuffix(".") { report.verdict.removeLast() }
            report.verdict += "; \(report.devices[0].device) at \(precision) against fp32: \(first.summary)."
        }
    }
}
