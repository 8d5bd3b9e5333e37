import ArgumentParser
import CPUBackend
import InferenceBench
import InferenceGraph
import InferenceRuntime
import InferenceTensor

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

struct ProfileCommand: ReportingCommand {
    static let configuration = CommandConfiguration(
        commandName: "profile",
        abstract: "Time every node of a model: per operator type and the slowest nodes, as a table, JSON or a trace.",
        discussion: """
            After warm-up runs, --repeat profiled runs time each kernel alone (the device is synchronized after every
            node, so a GPU's times are complete; the sum is a little above an unprofiled run's compute time, which
            is printed beside it). Per node: mean time, share, GFLOP/s where FLOPs are counted, and the kernel that
            ran it (e.g. WinogradConvKernel, DepthwiseConvKernel, ConvKernel for im2col + GEMM). Fused nodes show
            under the first node's name. --trace writes the mean run as a Chrome trace (open it in Perfetto).
            Without --input, a model with one float32 input gets uniform random data (symbolic dimensions = 1).
            """)

    @Option(
        name: .long,
        help: ArgumentHelp("Input data (.npy, .npz, or name=file.npy; repeatable); default: random.", valueName: "file")
    )
    var input: [String] = []

    @Option(name: .long, help: ArgumentHelp("The model: builtin:NAME or an .onnx file.", valueName: "model"))
    var model: String = "builtin:linear"

    @Option(name: .long, help: ArgumentHelp("cpu, gpu, cuda:N or opencl:N.", valueName: "device"))
    var device: String = "cpu"

    @Option(
        name: .customLong("repeat"), parsing: .unconditional,
        help: ArgumentHelp("Profiled runs (and as many unprofiled ones).", valueName: "n"))
    var repeats: Int = 20

    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("Untimed runs first.", valueName: "n"))
    var warmup: Int = 3

    @OptionGroup var threadsOption: ThreadsOption
    var threads: Int? { threadsOption.threads }

    @Option(name: .long, help: ArgumentHelp(PrecisionChoice.help, valueName: "fp32|fp16|bf16|int8"))
    var precision: String = "fp32"

    @OptionGroup var calibration: CalibrationDataOption
    var calibrationData: String? { calibration.calibrationData }

    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("Nodes in the table.", valueName: "n"))
    var top: Int = 15

    @Flag(name: .long, help: "Print one JSON object instead of the tables.")
    var json = false

    @Option(name: .long, help: ArgumentHelp("Write a Chrome trace of the mean run.", valueName: "trace.json"))
    var trace: String?

    func validate() throws {
        try OptionChecks.count(repeats, "--repeat", 1...OptionChecks.maxRepeats)
        try OptionChecks.count(warmup, "--warmup", 0...OptionChecks.maxWarmup)
        try OptionChecks.count(top, "--top", 1...100_000)
        guard let request = DeviceRequest(argument: device), request != .auto else {
            throw ValidationError("unknown device '\(device)'; use cpu, gpu, cuda:N or opencl:N")
        }
        if let trace { try OptionChecks.outputTarget(trace, option: "--trace") }
    }

    func execute() throws {
        guard let request = DeviceRequest(argument: device) else { throw ExitCode.validationFailure }
        let (graph, _) = try PrecisionChoice.convert(
            try ModelSource.load(model), to: try PrecisionChoice.parse(precision, single: true).first ?? .fp32,
            model: model, calibration: calibrationData, threads: threads)
        let feeds: [NamedTensor]
        if input.isEmpty {
            guard let only = graph.runtimeInputs.first, graph.runtimeInputs.count == 1, only.dtype == .float32 else {
                throw InputError(description: "\(model): give --input (random data needs one float32 input)")
            }
            guard let dims = try BenchCommand.inputDimensions(only, batch: 1, model: model) else {
                throw InputError(description: "\(model): input '\(only.name)' does not take batch 1; give --input")
            }
            feeds = [NamedTensor(name: only.name, tensor: try BenchCommand.randomInput(shape: dims))]
        } else {
            let loaded = try LoadedInputs.load(arguments: input, for: graph)
            for note in loaded.notes { printError("note: \(note)") }
            feeds = loaded.tensors
        }
        let selection = try DeviceSelection.resolve(request, threads: threads)
        let session = try selection.session(graph)
        let prepared = try session.prepare(feeds)
        let tensors = feeds.map(\.tensor)
        let plain = try Measurement.repeatRuns(warmup: warmup, repeats: repeats) { try prepared.run(tensors) }
        let steps = prepared.steps
        var nodeNanoseconds = [Double](repeating: 0, count: steps.count)
        let profiled = try Measurement.repeatRuns(warmup: 0, repeats: repeats) {
            try prepared.runProfiled(tensors, nodeNanoseconds: &nodeNanoseconds)
        }
        let profile = Profile(
            steps: steps, nodeNanoseconds: nodeNanoseconds,
            computeNanoseconds: profiled.runs.reduce(0.0) { $0 + Double($1.computeNanoseconds) },
            runs: profiled.runs.count)
        let deviceName = selection.backend.device.description
        if let trace {
            let data = try ReportJSON.encoder(pretty: false, snakeCase: false).encode(
                profile.chromeTrace(process: "\(model) on \(deviceName)"))
            do { try UserFiles.write(Array(data), to: trace) } catch {
                throw InputError(description: "cannot write the trace: \(error)")
            }
        }
        let unprofiledMs = plain.compute.median / 1e6
        if json {
            let report = ProfileReport(
                model: model, device: deviceName, runs: repeats, computeP50Ms: unprofiledMs,
                profiledComputeMs: profile.profiledComputeMs, nodeSumMs: profile.nodeSumMs,
                operators: profile.operators, nodes: profile.nodes)
            print(String(decoding: try ReportJSON.encoder(pretty: true).encode(report), as: UTF8.self))
        } else {
            print(table(profile, device: deviceName, unprofiledMs: unprofiledMs))
        }
        if let trace { printError("wrote \(trace)") }
    }

    private func table(_ profile: Profile, device: String, unprofiledMs: Double) -> String {
        func ms(_ value: Double) -> String { Formatting.milliseconds(nanoseconds: value * 1e6) }
        func rate(_ value: Double?) -> String { value.map { cFormat("%8.1f", $0) } ?? "       -" }
        var lines = [
            "\(model) on \(device): \(profile.nodes.count) kernels, \(profile.runs) profiled runs",
            "compute p50 \(ms(unprofiledMs)) ms unprofiled; profiled \(ms(profile.profiledComputeMs)) ms "
                + "(nodes sum to \(ms(profile.nodeSumMs)) ms)",
            "",
            "operator".rightPad(24) + "ms".leftPad(10) + "share".leftPad(8) + "calls".leftPad(7) + "GFLOP/s".leftPad(9),
        ]
        for op in profile.operators {
            lines.append(
                op.opType.rightPad(24) + ms(op.meanMs).leftPad(10) + cFormat("%7.1f%%", op.share * 100)
                    + String(op.calls).leftPad(7) + " " + rate(op.gflops))
        }
        lines.append("")
        lines.append(
            "slowest nodes".rightPad(32) + "operator".rightPad(20) + "kernel".rightPad(24) + "ms".leftPad(10)
                + "share".leftPad(8) + "GFLOP/s".leftPad(9))
        for node in profile.nodes.sorted(by: { $0.meanMs > $1.meanMs }).prefix(top) {
            lines.append(
                String(node.name.prefix(31)).rightPad(32) + node.opType.rightPad(20)
                    + String(node.implementation.prefix(23)).rightPad(24) + ms(node.meanMs).leftPad(10)
                    + cFormat("%7.1f%%", node.share * 100) + " " + rate(node.gflops))
        }
        return lines.joined(separator: "\n")
    }
}

/// The `profile --json` record (snake_case keys).
struct ProfileReport: Encodable {
    var model: String
    var device: String
    var runs: Int
    var computeP50Ms: Double
    var profiledComputeMs: Double
    var nodeSumMs: Double
    var operators: [Profile.Operator]
    var nodes: [Profile.Node]
}
