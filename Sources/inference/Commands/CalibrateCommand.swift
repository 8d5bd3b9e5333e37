import ArgumentParser
import CPUBackend
import GPUBackend
import InferenceBench
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

struct CalibrateCommand: ReportingCommand {
    static let configuration = CommandConfiguration(
        commandName: "calibrate",
        abstract: "Measure where another device starts to beat the CPU for a model, and store it for --device auto.",
        discussion: """
            Runs the bench sweep for the model on the CPU and the accelerator (default: the first OpenCL device) and
            writes a routing profile: below the crossover batch size --device auto runs on the CPU, from it on on the
            accelerator. Default location: $XDG_CACHE_HOME/inference/profiles (or ~/.cache/inference/profiles).
            """)

    @Option(name: .long, help: ArgumentHelp("The model: builtin:NAME or an .onnx file.", valueName: "model"))
    var model: String = "builtin:mlp"

    @Option(
        name: .long,
        help: ArgumentHelp("The device to compare with the CPU, e.g. opencl:0 or gpu.", valueName: "device"))
    var device: String?

    @Option(
        name: .customLong("batch-sizes"),
        help: ArgumentHelp("Comma-separated; default powers of two.", valueName: "list"))
    var batchSizes: String?

    @Option(
        name: .customLong("repeat"), parsing: .unconditional,
        help: ArgumentHelp("Timed runs per point.", valueName: "n"))
    var repeats: Int = 20

    @Option(
        name: .long,
        help: ArgumentHelp("Where to write the profile (default: the per-model cache file).", valueName: "file"))
    var output: String?

    @OptionGroup var threadsOption: ThreadsOption
    var threads: Int? { threadsOption.threads }

    func validate() throws {
        try OptionChecks.count(repeats, "--repeat", 1...OptionChecks.maxRepeats)
        if let batchSizes { _ = try OptionChecks.batchSizes(batchSizes) }
        if let output { try OptionChecks.outputTarget(output, option: "--output") }
    }

    func execute() throws {
        // The destination is settled before the sweep, so a bad one fails in a second, not after minutes.
        let digest = try ModelDigest.of(model: model)
        let path =
            try output
            ?? RoutingProfile.defaultPath(model: model, digest: digest, machine: CPUInfo.current.modelName)
        if output == nil { try CacheFolder.createFolders(for: path) }
        try UserFiles.checkOutputTarget(path)
        let accelerator: DeviceRequest
        if let device {
            guard let request = DeviceRequest(argument: device), request != .cpu, request != .auto else {
                throw ValidationError("--device must name a non-CPU device (gpu, opencl:N, cuda:N)")
            }
            accelerator = request
        } else if let first = GPUDiscovery.acceleratorIDs(in: GPUDiscovery.probe()).first {
            accelerator = .specific(first)
        } else {
            throw DeviceSelectionError(
                description: "no device besides the CPU to calibrate against (`inference devices` lists what was found)"
            )
        }
        let selections = try [
            DeviceSelection.resolve(.cpu, threads: threads), DeviceSelection.resolve(accelerator, threads: threads),
        ]
        let sizes = try batchSizes.map { try OptionChecks.batchSizes($0) }
        guard
            let sweep = try BenchCommand.sweep(
                models: [model], selections: selections, batchSizes: sizes, repeats: repeats, timeBudget: 0.5,
                threads: threads
            ).first
        else { throw ValidationError("nothing measured") }
        let crossover = sweep.crossovers.first
        let profile = RoutingProfile(
            model: model, modelDigest: digest, machine: CPUInfo.current.modelName, created: Date().formatted(.iso8601),
            baseline: selections[0].backend.device.description, accelerator: selections[1].backend.device.description,
            crossoverBatch: crossover?.throughputBatch, measuredBatches: Array(Set(sweep.points.map(\.batch))).sorted())
        try profile.write(path: path)
        print(BenchReport(repeats: repeats, threads: threads ?? CPUInfo.current.logicalCores, models: [sweep]).table)
        print(
            "wrote \(path): "
                + (profile.crossoverBatch.map { "\(profile.accelerator) from batch \($0), \(profile.baseline) below" }
                    ?? "\(profile.baseline) at every measured batch size"))
    }
}
