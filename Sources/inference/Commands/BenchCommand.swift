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

struct BenchCommand: ReportingCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Sweep batch sizes × devices × models: latency percentiles, throughput and the crossover batch size.",
        discussion: """
            Inputs are uniform random floats shaped like each model's input (symbolic batch = the batch size, other
            symbolic dimensions = 1). Each point: 2 warm-up runs, then --repeat timed runs; devices run in turn
            per batch size with the same inputs. The crossover is the smallest batch size from which a device
            beats the first device (cpu) on throughput, and on latency.
            """)

    @Option(
        name: .long, parsing: .upToNextOption,
        help: ArgumentHelp("Models: builtin:NAME or .onnx files.", valueName: "model"))
    var model: [String] = ["builtin:mlp"]

    @Option(
        name: .customLong("batch-sizes"),
        help: ArgumentHelp(
            "Comma-separated; default powers of two up to 1024 within the time budget.", valueName: "list"))
    var batchSizes: String?

    @OptionGroup var deviceList: DeviceListOption
    var devices: String? { deviceList.devices }

    @Option(
        name: .customLong("repeat"), parsing: .unconditional,
        help: ArgumentHelp("Timed runs per point.", valueName: "n"))
    var repeats: Int = 20

    @Option(
        name: .customLong("time-budget"),
        help: ArgumentHelp(
            "Stop growing the default batch sizes once one run takes longer than this many seconds.", valueName: "s"))
    var timeBudget: Double = 0.5

    @Option(name: .long, help: ArgumentHelp("table, json or csv.", valueName: "format"))
    var format: String = "table"

    @Option(
        name: .long,
        help: ArgumentHelp("Write an SVG chart of latency and throughput against batch size.", valueName: "file.svg"))
    var plot: String?

    @OptionGroup var threadsOption: ThreadsOption
    var threads: Int? { threadsOption.threads }

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Comma-separated precisions (fp32, fp16, bf16, int8): every device runs each; the report adds each one's "
                + "parity with fp32 and a verdict.", valueName: "list"))
    var precision: String = "fp32"

    @OptionGroup var calibration: CalibrationDataOption
    var calibrationData: String? { calibration.calibrationData }

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Dollars per hour per device, e.g. cpu=0.10,cuda:0=3.20: adds the cost per million inferences at each "
                + "point and where each device becomes cheaper.", valueName: "device=$/h,..."))
    var price: String?

    func validate() throws {
        guard ["table", "json", "csv"].contains(format) else {
            throw ValidationError("--format must be table, json or csv")
        }
        try OptionChecks.count(repeats, "--repeat", 1...OptionChecks.maxRepeats)
        guard timeBudget.isFinite && timeBudget > 0 && timeBudget <= 86_400 else {
            throw ValidationError("--time-budget must be a number of seconds above 0 and at most 86400")
        }
        if let batchSizes { _ = try OptionChecks.batchSizes(batchSizes) }
        _ = try PrecisionChoice.parse(precision)
        guard !model.isEmpty else { throw ValidationError("--model needs at least one model") }
        for (index, name) in model.enumerated() where model[..<index].contains(name) {
            throw ValidationError("--model: '\(name)' is listed twice")
        }
        if let plot { try OptionChecks.outputTarget(plot, option: "--plot") }
        if let price {
            do { _ = try Prices.parse(price) } catch { throw ValidationError("--price: \(error)") }
        }
    }

    func execute() throws {
        let requests: [DeviceRequest] =
            try devices.map { list in
                try OptionChecks.deviceList(list).map { item in
                    guard let request = DeviceRequest(argument: String(item)) else {
                        throw ValidationError("unknown device '\(item)'; use cpu, gpu, cuda:N or opencl:N")
                    }
                    return request
                }
            }
            ?? ([.cpu] + GPUDiscovery.acceleratorIDs(in: GPUDiscovery.probe()).map { .specific($0) })
        let selections = try requests.map { try DeviceSelection.resolve($0, threads: threads) }
        let explicit = try batchSizes.map { try OptionChecks.batchSizes($0) }
        let sweeps = try Self.sweep(
            models: model, selections: selections, batchSizes: explicit, repeats: repeats, timeBudget: timeBudget,
            threads: threads, precisions: try PrecisionChoice.parse(precision), calibration: calibrationData)
        var report = BenchReport(repeats: repeats, threads: threads ?? CPUInfo.current.logicalCores, models: sweeps)
        if let price {
            let prices: Prices
            do { prices = try Prices.parse(price) } catch { throw ValidationError("--price: \(error)") }
            report.apply(prices)
        }
        // The chart first: a failure to write it must not leave a table on stdout.
        if let plot {
            do { try UserFiles.write(Array(SweepChart.svg(report).utf8), to: plot) } catch {
                throw InputError(description: "cannot write the chart: \(error)")
            }
        }
        switch format {
        case "json":
            let encoder = ReportJSON.encoder(pretty: true)
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        case "csv": print(report.csv, terminator: "")
        default: print(report.table)
        }
        if let plot { printError("wrote \(plot)") }
    }
}

extension BenchCommand {
    /// Measures every model at every batch size on every device (default sizes: powers of two from 1,
    /// growing while one run stays under `timeBudget` seconds, up to 1024).
    /// - Throws: model loading, planning and device errors.
    static func sweep(
        models: [String], selections: [DeviceSelection], batchSizes explicit: [Int]?, repeats: Int, timeBudget: Double,
        threads: Int?, precisions: [Precision] = [.fp32], calibration: String? = nil
    ) throws -> [BenchSweep] {
        var progress = Progress(
            total: explicit.map { $0.count * models.count * selections.count * precisions.count })
        var sweeps: [BenchSweep] = []
        var step = 0
        for name in models {
            let graph = try ModelSource.load(name)
            guard let input = graph.runtimeInputs.first, graph.runtimeInputs.count == 1, input.dtype == .float32 else {
                throw ValidationError("\(name): bench needs a model with one float32 input")
            }
            // Every device runs every precision: one labelled variant each ("cpu int8"; the device alone at fp32 only).
            let converted = try precisions.map {
                try PrecisionChoice.convert(
                    graph, to: $0, model: name, calibration: $0 == .int8 ? calibration : nil, threads: threads
                ).0
            }
            var variants: [BenchVariant] = []
            for selection in selections {
                for (precision, variantGraph) in zip(precisions, converted) {
                    let device = selection.backend.device.description
                    variants.append(
                        BenchVariant(
                            label: precisions == [.fp32] ? device : "\(device) \(precision)", precision: precision,
                            selection: selection,
                            session: try selection.session(variantGraph)))
                }
            }
            var points: [BenchPoint] = []
            var sizes = explicit ?? [1]
            var index = 0
            while index < sizes.count {
                let batch = sizes[index]
                index += 1
                guard let dims = try inputDimensions(input, batch: batch, model: name) else { continue }
                let x = try randomInput(shape: dims)
                let feeds = [NamedTensor(name: input.name, tensor: x)]
                var slowest = 0.0
                for variant in variants {
                    step += 1
                    progress.update(step, "\(name) batch \(batch) on \(variant.label)")
                    // The first run at a new batch size plans anew (and on a GPU may build kernels): kept apart.
                    let first = try variant.session.run(feeds).timings
                    let samples = try Measurement.repeatRuns(warmup: 1, repeats: repeats) {
                        try variant.session.run(feeds).timings
                    }
                    let total = samples.total
                    let copies = samples.copyIn.median + samples.copyOut.median
                    points.append(
                        BenchPoint(
                            device: variant.label, batch: batch, p50Ms: total.median / 1e6,
                            p90Ms: total.percentile(90) / 1e6, p99Ms: total.percentile(99) / 1e6,
                            meanMs: total.mean / 1e6,
                            throughputPerS: Double(batch) / (total.median / 1e9),
                            copyShare: copies / max(total.median, 1),
                            firstRunMs: Double(first.planNanoseconds + first.totalNanoseconds) / 1e6,
                            coefficientOfVariation: total.coefficientOfVariation))
                    slowest = max(slowest, total.median / 1e9)
                }
                if explicit == nil && slowest < timeBudget && batch < 1024 { sizes.append(batch * 2) }
            }
            guard !points.isEmpty else {
                throw InputError(
                    description: "\(name): none of the batch sizes \(sizes) fits the model's input '\(input.name)' "
                        + "(\(input.shapeDescription))")
            }
            var sweep = BenchSweep(model: name, devices: variants.map(\.label), points: points)
            if precisions != [.fp32] {
                sweep.precisions = precisions.map(\.rawValue)
                sweep.parity = try parity(
                    of: variants, reference: graph, input: input, model: name, selection: selections[0],
                    threads: threads)
            }
            sweeps.append(sweep)
        }
        progress.finish()
        return sweeps
    }

    /// Each non-fp32 variant's outputs against the float32 model's (on the first device) for one batch of random
    /// inputs: up to 1000 rows when the batch is symbolic (at most 64 MiB of input), else the model's fixed batch.
    static func parity(
        of variants: [BenchVariant], reference graph: Graph, input: ValueInfo, model: String,
        selection: DeviceSelection, threads: Int?
    ) throws -> [VariantParity] {
        var rows = 1000
        if let first = input.dimensions?.first, case .fixed(let fixed) = first { rows = fixed }
        guard let single = try inputDimensions(input, batch: rows, model: model) else { return [] }
        let rowElements = max(single.dropFirst().reduce(1, *), 1)
        rows = max(1, min(rows, (64 << 20) / 4 / rowElements))
        guard let dims = try inputDimensions(input, batch: rows, model: model) else { return [] }
        let feeds = [NamedTensor(name: input.name, tensor: try randomInput(shape: dims))]
        let reference = try selection.session(graph)
        guard let expected = try reference.run(feeds).outputs.first?.tensor else { return [] }
        return try variants.filter { $0.precision != .fp32 }.compactMap { variant in
            guard let got = try variant.session.run(feeds).outputs.first?.tensor else { return nil }
            return VariantParity(
                device: variant.label, precision: variant.precision.rawValue,
                parity: try Parity.compare(got, reference: expected))
        }
    }

    /// The input shape for one batch size: symbolic leading dimension = the batch, other symbolic ones = 1. A
    /// model whose leading dimension is fixed takes only that batch size: others are skipped (nil) with a note.
    /// - Throws: `InputError` when the input would not fit the generated-input limit.
    static func inputDimensions(_ input: ValueInfo, batch: Int, model: String) throws -> [Int]? {
        let declared = input.dimensions ?? []
        if let first = declared.first, case .fixed(let fixed) = first, fixed != batch {
            printError("note: \(model): input '\(input.name)' has a fixed batch of \(fixed); batch \(batch) skipped")
            return nil
        }
        let dims = declared.enumerated().map { position, dim -> Int in
            if case .fixed(let n) = dim { return n }
            return position == 0 ? batch : 1
        }
        guard let count = Shape.checkedElementCount(dims), count <= OptionChecks.maxGeneratedInputBytes / 4 else {
            throw InputError(
                description: "\(model): an input of shape \(dims) at batch \(batch) would exceed the "
                    + "\(OptionChecks.maxGeneratedInputBytes >> 30) GiB limit for generated inputs; use smaller batch sizes"
            )
        }
        return dims
    }

    /// Uniform floats in [0, 1) from SplitMix64 (the system generator costs a system call per draw, which a
    /// sweep at large batch sizes would notice); the shape's size is checked by `inputDimensions` first.
    static func randomInput(shape dims: [Int]) throws -> Tensor {
        let count = Shape.checkedElementCount(dims) ?? 0
        var generator = SplitMix64(seed: UInt64.random(in: 0...UInt64.max))
        return try Tensor(
            shape: Shape(dims), scalars: (0..<count).map { _ in Float(generator.next() >> 40) / Float(1 << 24) })
    }
}

/// One device at one precision, with its session.
struct BenchVariant {
    var label: String
    var precision: Precision
    var selection: DeviceSelection
    var session: Session
}
