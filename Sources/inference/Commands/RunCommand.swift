import ArgumentParser
import CPUBackend
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

struct RunCommand: ReportingCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run one inference and print the prediction and the warm inference time.",
        discussion: """
            Prints three lines on stdout:
              Processing input on CPU...        (or: Processing batch input on GPU...)
              Prediction: 0.87                  (or: Predictions: [0.87, 0.45, ...])
              Inference time: 0.004 ms          (median warm forward pass, copies to and from the device included)
            Diagnostics go to stderr. The exit code is non-zero on any error, and then stdout stays empty.
            """)

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Input data: a .npy file, an .npz with arrays named like the model's inputs, or name=file.npy (repeat for several inputs).",
            valueName: "file"))
    var input: [String] = []

    @Option(
        name: .long, help: ArgumentHelp("The model: builtin:NAME (linear, mlp) or an .onnx file.", valueName: "model"))
    var model: String = "builtin:linear"

    @Option(
        name: .long,
        help: ArgumentHelp(
            "cpu, gpu, auto, cuda:N or opencl:N. gpu fails when no GPU exists; auto falls back to the CPU and says why.",
            valueName: "device"))
    var device: String = "cpu"

    @Option(
        name: .long,
        help: ArgumentHelp("Write the outputs: .npy (one output) or .npz (all outputs).", valueName: "file"))
    var output: String?

    @Flag(name: .long, help: "Print one JSON object (device, shapes, outputs, timings) instead of the text lines.")
    var json = false

    @Flag(
        name: .shortAndLong,
        help: "Also report model load, plan, first (cold) run and the warm copy/compute split on stderr.")
    var verbose = false

    @Option(
        name: .customLong("repeat"), parsing: .unconditional,
        help: ArgumentHelp("Timed warm runs; the reported time is their median.", valueName: "n"))
    var repeats: Int = 20

    @Option(
        name: .long, parsing: .unconditional,
        help: ArgumentHelp("Untimed runs after the first (cold) run and before the timed ones.", valueName: "n"))
    var warmup: Int = 2

    @OptionGroup var threadsOption: ThreadsOption
    var threads: Int? { threadsOption.threads }

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Routing profile for --device auto (default: the one `inference calibrate` wrote for this model).",
            valueName: "file"))
    var profile: String?

    @Option(name: .long, help: ArgumentHelp(PrecisionChoice.help, valueName: "fp32|fp16|bf16|int8"))
    var precision: String = "fp32"

    @OptionGroup var calibration: CalibrationDataOption
    var calibrationData: String? { calibration.calibrationData }

    /// Words after the options: with `run` as the default command, a mistyped command name lands here.
    @Argument(help: .hidden)
    var stray: [String] = []

    func validate() throws {
        if let word = stray.first {
            throw ValidationError(
                "unknown command or argument '\(word)'; the commands are run, compare, bench, calibrate, devices, "
                    + "inspect, profile, serve, load (see inference --help)")
        }
        _ = try PrecisionChoice.parse(precision, single: true)
        guard !input.isEmpty else { throw ValidationError("missing --input (a .npy or .npz file)") }
        guard DeviceRequest(argument: device) != nil else {
            throw ValidationError("unknown device '\(device)'; use cpu, gpu, auto, cuda:N or opencl:N")
        }
        try OptionChecks.count(repeats, "--repeat", 1...OptionChecks.maxRepeats)
        try OptionChecks.count(warmup, "--warmup", 0...OptionChecks.maxWarmup)
        if let output {
            guard output.hasSuffix(".npy") || output.hasSuffix(".npz") else {
                throw ValidationError("--output must end in .npy or .npz")
            }
            try OptionChecks.outputTarget(output, option: "--output")
        }
    }

    func execute() throws {
        guard let request = DeviceRequest(argument: device) else { throw ExitCode.validationFailure }
        var cold = ColdStart()
        if let startUp = ProcessClock.sinceStart() {
            cold.record("process start-up (exec, libraries, arguments)", nanoseconds: startUp)
        }
        let loadStart = MonotonicClock.nanoseconds()
        let written = try cold.time("model load") { try ModelSource.load(model) }
        let chosen = try PrecisionChoice.parse(precision, single: true).first ?? .fp32
        let (graph, conversion) = try cold.time("precision conversion") {
            try PrecisionChoice.convert(
                written, to: chosen, model: model, calibration: calibrationData, threads: threads)
        }
        if conversion == nil { cold.phases.removeLast() }
        let loadNanoseconds = MonotonicClock.nanoseconds() - loadStart

        let inputs = try cold.time("inputs") { try LoadedInputs.load(arguments: input, for: graph) }
        for note in inputs.notes { printError("note: \(note)") }

        let selection: DeviceSelection = try cold.time("device (runtime library, context, kernel build)") {
            if request == .auto {
                return try DeviceSelection.resolveAuto(
                    model: model, graph: graph, batch: inputs.batchSize, profilePath: profile, threads: threads)
            }
            return try DeviceSelection.resolve(request, threads: threads)
        }
        if let reason = selection.reason {
            printError("note: --device \(request) chose \(selection.backend.device): \(reason)")
        }

        let session = try cold.time("session (weights, constants)") {
            try selection.session(graph)
        }
        let first = try session.run(inputs.tensors)
        cold.record("plan (first run)", nanoseconds: first.timings.planNanoseconds)
        cold.record("first run", nanoseconds: first.timings.totalNanoseconds)
        cold.finish()
        let samples = try Measurement.repeatRuns(warmup: warmup, repeats: repeats) {
            try session.run(inputs.tensors).timings
        }
        let result = try session.run(inputs.tensors)
        let warm = samples.total

        let comparison = try precisionComparison(
            conversion, written: written, precision: chosen, selection: selection, inputs: inputs, result: result,
            warm: warm)
        if let output {
            try NumPyFile.write(result.outputs, path: output)
        }
        let run = Measured(
            graph: graph, inputs: inputs, selection: selection, cold: cold, loadNanoseconds: loadNanoseconds,
            first: first, samples: samples, result: result)
        if json {
            try printJSON(run, request: request, precision: chosen, comparison: comparison)
        } else {
            try printSeedLines(run)
        }
        if verbose { printVerbose(run) }
    }

    /// What one `run` measured, for the printers.
    struct Measured {
        var graph: Graph
        var inputs: LoadedInputs
        var selection: DeviceSelection
        var cold: ColdStart
        var loadNanoseconds: UInt64
        var first: RunResult
        var samples: Measurement.Samples
        var result: RunResult
        var warm: Statistics { samples.total }
    }

    /// At another precision: the float32 model on the same device and inputs, for parity and speed.
    func precisionComparison(
        _ conversion: PrecisionConversionReport?, written: Graph, precision chosen: Precision,
        selection: DeviceSelection, inputs: LoadedInputs, result: RunResult, warm: Statistics
    ) throws -> RunReport.PrecisionComparison? {
        guard let conversion else { return nil }
        let reference = try selection.session(written)
        let expected = try reference.run(inputs.tensors)
        let referenceSamples = try Measurement.repeatRuns(warmup: warmup, repeats: repeats) {
            try reference.run(inputs.tensors).timings
        }
        guard let mine = result.outputs.first?.tensor, let theirs = expected.outputs.first?.tensor else {
            throw InputError(description: "the model produced no outputs")
        }
        let parity = try Parity.compare(mine, reference: theirs)
        let referenceP50 = referenceSamples.total.median
        let comparison = RunReport.PrecisionComparison(
            precision: chosen.rawValue, conversion: conversion, parity: parity,
            fp32WarmP50Ms: referenceP50 / 1e6, speedup: referenceP50 / max(warm.median, 1))
        printError(
            "note: \(chosen) vs fp32 on \(selection.backend.device): \(Formatting.milliseconds(nanoseconds: warm.median)) ms "
                + "vs \(Formatting.milliseconds(nanoseconds: referenceP50)) ms; \(parity.summary)")
        return comparison
    }

    func printJSON(
        _ run: Measured, request: DeviceRequest, precision chosen: Precision,
        comparison: RunReport.PrecisionComparison?
    ) throws {
        let (inputs, selection, first, samples, result, warm, cold, loadNanoseconds) = (
            run.inputs, run.selection, run.first, run.samples, run.result, run.warm, run.cold, run.loadNanoseconds
        )
        let timings = RunReport.Timings(
            modelLoad: Double(loadNanoseconds) / 1e6,
            plan: Double(first.timings.planNanoseconds) / 1e6,
            firstRun: Double(first.timings.planNanoseconds + first.timings.totalNanoseconds) / 1e6,
            warmP50: warm.median / 1e6,
            warmP90: warm.percentile(90) / 1e6,
            warmP99: warm.percentile(99) / 1e6,
            warmMin: warm.minimum / 1e6,
            copyInP50: samples.copyIn.median / 1e6,
            computeP50: samples.compute.median / 1e6,
            copyOutP50: samples.copyOut.median / 1e6,
            repeats: warm.count)
        let inputInfo = inputs.tensors.map {
            RunReport.TensorInfo(name: $0.name, dtype: $0.tensor.dtype.rawValue, shape: $0.tensor.shape.dimensions)
        }
        var outputInfo: [RunReport.OutputInfo] = []
        for output in result.outputs {
            outputInfo.append(
                RunReport.OutputInfo(
                    name: output.name, dtype: output.tensor.dtype.rawValue, shape: output.tensor.shape.dimensions,
                    values: try OutputValues(output.tensor)))
        }
        let elapsed = ProcessClock.sinceStart().map { Double($0) / 1e6 }
        let report = RunReport(
            model: model, requestedDevice: request.description, device: selection.backend.device.description,
            deviceName: selection.backend.deviceName, deviceReason: selection.reason, batchSize: inputs.batchSize,
            inputs: inputInfo, outputs: outputInfo, timingsMs: timings, coldStart: cold,
            precision: chosen.rawValue, precisionComparison: comparison, processElapsedMs: elapsed)
        print(String(decoding: try ReportJSON.encoder(pretty: false).encode(report), as: UTF8.self))
    }

    /// The seed's lines: what ran where, the prediction(s), the warm p50.
    func printSeedLines(_ run: Measured) throws {
        let (inputs, result, warm, deviceClass) = (run.inputs, run.result, run.warm, run.selection.displayClass)
        guard let primary = result.outputs.first else {
            throw InputError(description: "the model produced no outputs")
        }
        let values = try OutputValues(primary.tensor)
        let count = values.count
        let perSample = inputs.batchSize > 0 ? count / max(inputs.batchSize, 1) : count
        func list(_ range: Range<Int>) -> String { "[" + values.text(range).joined(separator: ", ") + "]" }
        var lines: [String] = []
        lines.append(
            inputs.batchSize > 1
                ? "Processing batch input on \(deviceClass)..." : "Processing input on \(deviceClass)...")
        if count > OutputSummary.limit {
            // Larger than a screen: shape, range and the first values; the whole tensor goes to a file.
            let summary = OutputSummary(primary.tensor, values: values)
            lines.append((inputs.batchSize > 1 ? "Predictions: " : "Prediction: ") + summary.text)
            printError(
                "note: output '\(primary.name)' has \(Formatting.grouped(count)) values, summarized; "
                    + "for all of them use --output FILE.npy (or .npz) or --json")
        } else if count == 1 {
            lines.append("Prediction: \(values.text(0..<1)[0])")
        } else if inputs.batchSize > 1 && perSample == 1 {
            lines.append("Predictions: \(list(0..<count))")
        } else if inputs.batchSize > 1 && perSample > 1 {
            let rows = stride(from: 0, to: count, by: perSample).map { list($0..<min($0 + perSample, count)) }
            lines.append("Predictions: [" + rows.joined(separator: ", ") + "]")
        } else {
            lines.append("Prediction: \(list(0..<count))")
        }
        lines.append("Inference time: \(Formatting.milliseconds(nanoseconds: warm.median)) ms")
        print(lines.joined(separator: "\n"))
        if result.outputs.count > 1 {
            let others = result.outputs.dropFirst().map(\.name).joined(separator: ", ")
            printError(
                "note: printed output '\(primary.name)'; the model has \(result.outputs.count - 1) more (\(others)): use --json or --output file.npz"
            )
        }
    }

    /// --verbose: load, plan, cold start by phase, warm percentiles and the copy/compute split, on stderr.
    func printVerbose(_ run: Measured) {
        let (graph, selection, cold, first, samples, result, warm, loadNanoseconds) = (
            run.graph, run.selection, run.cold, run.first, run.samples, run.result, run.warm, run.loadNanoseconds
        )
        let ms = { (ns: Double) in Formatting.milliseconds(nanoseconds: ns) + " ms" }
        printError(
            "model: \(graph.name) (\(graph.nodes.count) nodes), built/loaded in \(ms(Double(loadNanoseconds)))")
        printError("device: \(selection.backend.device) (\(selection.backend.deviceName))")
        for line in selection.backend.configuration { printError("  \(line)") }
        printError("plan: \(ms(Double(first.timings.planNanoseconds)))")
        printError(
            "first run (cold, plan included): \(ms(Double(first.timings.planNanoseconds + first.timings.totalNanoseconds)))"
        )
        printError(
            "cold start, process start to first result: \(ms(cold.totalMs * 1e6))"
                + (cold.sinceProcessStartMs.map { " (process clock: \(ms($0 * 1e6)))" } ?? ""))
        for phase in cold.phases { printError("  \(phase.name): \(ms(phase.ms * 1e6))") }
        printError(
            """
            warm over \(warm.count) runs: p50 \(ms(warm.median)), p90 \(ms(warm.percentile(90))), \
            p99 \(ms(warm.percentile(99))), min \(ms(warm.minimum))
            """)
        printError(
            """
            warm p50 split: copy in \(ms(samples.copyIn.median)), compute \(ms(samples.compute.median)), \
            copy out \(ms(samples.copyOut.median))
            """)
        switch result.timings.replay {
        case .recorded: printError("warm runs: the plan's kernels replayed as one recorded graph")
        case .unavailable(let reason): printError("warm runs: kernels launched one by one (\(reason))")
        case .pending, .notOffered: break
        }
        if let device = samples.device {
            printError(
                """
                device events p50: copy in \(ms(device.copyIn.median)), compute \(ms(device.compute.median)), \
                copy out \(ms(device.copyOut.median))
                """)
        }
    }
}

/// The `--json` record of one run. Field names are snake_case in the output; see docs/ARCHITECTURE.md.
struct RunReport: Encodable {
    struct TensorInfo: Encodable {
        var name: String
        var dtype: String
        var shape: [Int]
    }

    struct OutputInfo: Encodable {
        var name: String
        var dtype: String
        var shape: [Int]
        var values: OutputValues
    }

    struct Timings: Encodable {
        var modelLoad: Double
        var plan: Double
        var firstRun: Double
        var warmP50: Double
        var warmP90: Double
        var warmP99: Double
        var warmMin: Double
        var copyInP50: Double
        var computeP50: Double
        var copyOutP50: Double
        var repeats: Int
    }

    var model: String
    var requestedDevice: String
    var device: String
    var deviceName: String
    var deviceReason: String?
    var batchSize: Int
    var inputs: [TensorInfo]
    var outputs: [OutputInfo]
    var timingsMs: Timings
    /// Every phase from the process's start to the first result.
    var coldStart: ColdStart
    var precision: String
    /// With --precision other than fp32: the conversion, and the float32 model's speed and outputs beside it.
    var precisionComparison: PrecisionComparison?
    /// From the process's start to this report (the process then only prints it and exits).
    var processElapsedMs: Double?

    struct PrecisionComparison: Encodable {
        var precision: String
        var conversion: PrecisionConversionReport
        var parity: Parity
        var fp32WarmP50Ms: Double
        /// fp32 warm p50 / this precision's warm p50.
        var speedup: Double
    }
}

/// A large output in one line: element type and shape, the first values, min/max/mean over the finite values
/// (and how many are not), and for a [batch, classes] output each sample's argmax (first 16 samples).
struct OutputSummary {
    static let limit = 100
    static let shown = 8

    var text: String

    init(_ tensor: Tensor, values: OutputValues) {
        let dims = tensor.shape.dimensions
        var parts = ["\(tensor.dtype.rawValue) [" + dims.map(String.init).joined(separator: ", ") + "]"]
        parts.append("first [" + values.text(0..<min(Self.shown, values.count)).joined(separator: ", ") + ", ...]")
        let numbers: [Double]
        switch values {
        case .float32(let v): numbers = v.map(Double.init)
        case .float64(let v): numbers = v
        case .signed(let v): numbers = v.map(Double.init)
        case .unsigned(let v): numbers = v.map(Double.init)
        }
        var low = Double.infinity, high = -Double.infinity, sum = 0.0, finite = 0
        for x in numbers where x.isFinite {
            low = min(low, x)
            high = max(high, x)
            sum += x
            finite += 1
        }
        if finite > 0 {
            parts.append(
                "min \(Self.short(low)), max \(Self.short(high)), mean \(Self.short(sum / Double(finite)))")
        }
        if finite < numbers.count { parts.append("\(numbers.count - finite) not finite") }
        if dims.count == 2, dims[1] > 1, dims[0] >= 1 {
            let classes = dims[1]
            let samples = min(dims[0], 16)
            let argmax = (0..<samples).map { row -> String in
                let slice = numbers[(row * classes)..<((row + 1) * classes)]
                return String((slice.indices.max { slice[$0] < slice[$1] } ?? row * classes) - row * classes)
            }
            parts.append("argmax [" + argmax.joined(separator: ", ") + (dims[0] > samples ? ", ...]" : "]"))
        }
        text = parts.joined(separator: "; ")
    }

    static func short(_ value: Double) -> String { cFormat("%.6g", value) }
}
