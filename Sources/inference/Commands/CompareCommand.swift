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

    @Option(
        name: .long,
        help: ArgumentHelp("Comma-separated devices; default: cpu and every CUDA and OpenCL device.", valueName: "list")
    )
    var devices: String?

    @Option(
        name: .customLong("repeat"), parsing: .unconditional,
        help: ArgumentHelp("Timed warm runs per device.", valueName: "n"))
    var repeats: Int = 50

    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("CPU threads.", valueName: "n"))
    var threads: Int?

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

    @Option(
        name: .customLong("calibration-data"), help: ArgumentHelp(PrecisionChoice.calibrationHelp, valueName: "folder"))
    var calibrationData: String?

    func validate() throws {
        guard !input.isEmpty else { throw ValidationError("missing --input (a .npy or .npz file)") }
        _ = try PrecisionChoice.parse(precision, single: true)
        try OptionChecks.count(repeats, "--repeat", 1...OptionChecks.maxRepeats)
        if let threads { try OptionChecks.count(threads, "--threads", 1...4096) }
        if let devices { _ = try OptionChecks.deviceList(devices) }
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
    }

    func execute() throws {
        let requests: [DeviceRequest]
        if let devices {
            requests = try OptionChecks.deviceList(devices).map { item in
                guard let request = DeviceRequest(argument: String(item)) else {
                    throw ValidationError("unknown device '\(item)'; use cpu, gpu, cuda:N or opencl:N")
                }
                return request
            }
        } else {
            requests = [.cpu] + GPUDiscovery.acceleratorIDs(in: GPUDiscovery.probe()).map { .specific($0) }
        }
        let written = try ModelSource.load(model)
        let chosen = try PrecisionChoice.parse(precision, single: true).first ?? .fp32
        let (graph, _) = try PrecisionChoice.convert(
            written, to: chosen, model: model, calibration: calibrationData, threads: threads)
        let inputs = try LoadedInputs.load(arguments: input, for: written)
        for note in inputs.notes { printError("note: \(note)") }
        var runs: [DeviceRun] = []
        // Steps: each device's start, the timed rounds, each device's energy window.
        var progress = Progress(total: requests.count * 2 + min(5, repeats))
        var step = 0
        for request in requests {
            step += 1
            progress.update(step, "starting \(request)")
            var coldStart = ColdStart()
            let selection = try coldStart.time("device (runtime library, context, kernel build)") {
                try DeviceSelection.resolve(request, threads: threads)
            }
            let session = try coldStart.time("session (weights, constants)") {
                try Session(graph: graph, backend: selection.backend, evaluator: CPUBackend(threads: threads))
            }
            let first = try session.run(inputs.tensors)
            coldStart.record("plan (first run)", nanoseconds: first.timings.planNanoseconds)
            coldStart.record("first run", nanoseconds: first.timings.totalNanoseconds)
            var cold = first.timings
            cold.computeNanoseconds += cold.planNanoseconds
            runs.append(
                DeviceRun(
                    selection: selection, session: session, cold: cold, coldStart: coldStart, outputs: first.outputs))
        }
        // Warm-up, then interleaved rounds so drift in machine load hits every device alike; with --min-duration,
        // more rounds until every device has run that long.
        for index in runs.indices { for _ in 0..<3 { _ = try runs[index].session.run(inputs.tensors) } }
        let rounds = min(5, repeats)
        let minimumNanoseconds = (minDuration.flatMap(Self.seconds) ?? 0) * 1e9
        var round = 0
        while true {
            let count = max(1, repeats / rounds + (round < repeats % rounds ? 1 : 0))
            for index in runs.indices {
                for _ in 0..<count { runs[index].samples.append(try runs[index].session.run(inputs.tensors).timings) }
            }
            round += 1
            step += 1
            progress.update(min(step, requests.count + min(5, repeats)), "timed round \(round)")
            let shortest = runs.map { $0.samples.reduce(0.0) { $0 + Double($1.totalNanoseconds) } }.min() ?? 0
            if round >= rounds && (shortest >= minimumNanoseconds || runs.contains { $0.samples.count >= 1_000_000 }) {
                break
            }
        }
        // Energy: each device alone for a window, idle power first (only where a counter can be read).
        let powercap = EnergySources.powercap()
        for index in runs.indices {
            var sources = powercap
            let device = runs[index].selection.backend.device
            switch device.kind {
            case .cpu: break
            case .cuda:
                switch NVMLEnergy.reader(index: device.index) {
                case .success(let reader):
                    sources.counters.append(
                        EnergyCounter(
                            name: "\(reader.name) (NVML)", wrapJoules: nil, updateSeconds: 0.1, read: reader.read))
                case .failure(let reason): sources.unavailable.append("GPU energy: \(reason)")
                }
            case .opencl:
                sources.unavailable.append("device energy: OpenCL has no energy counter (NVML reads NVIDIA GPUs' only)")
            }
            let session = runs[index].session
            progress.update(requests.count + min(5, repeats) + index + 1, "energy on \(device)")
            runs[index].energy =
                energySeconds > 0
                ? try EnergyMeter.measure(sources, idleSeconds: min(energySeconds, 1), activeSeconds: energySeconds) {
                    _ = try session.run(inputs.tensors)
                } : .none(["not measured (--energy-seconds 0)"])
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
        var report = CompareReport(
            model: model, batch: inputs.batchSize, runs: runs, idleGap: idleGap.flatMap(Self.seconds),
            prices: prices, load: load.flatMap(Self.rate))
        for warning in report.warnings { printError("warning: \(warning)") }
        report.precision = chosen.rawValue
        if chosen != .fp32 {
            // Each device's outputs against the float32 model's, run once on the CPU.
            let reference = try Session(graph: written, backend: CPUBackend(threads: threads))
            if let expected = try reference.run(inputs.tensors).outputs.first?.tensor {
                for (index, run) in runs.enumerated() {
                    guard let got = run.outputs.first?.tensor else { continue }
                    report.devices[index].parityWithFP32 = try InferenceBench.Parity.compare(got, reference: expected)
                }
            }
            if let first = report.devices.first?.parityWithFP32 {
                if report.verdict.hasSuffix(".") { report.verdict.removeLast() }
                report.verdict += "; \(report.devices[0].device) at \(chosen) against fp32: \(first.summary)."
            }
        }
        if json {
            let encoder = ReportJSON.encoder(pretty: true)
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            print(report.table)
        }
    }
}

/// The `compare --json` record (keys in snake_case; documented in docs/cli.md).
struct CompareReport: Encodable {
    struct Warm: Encodable {
        var p50Ms: Double, p90Ms: Double, p99Ms: Double, meanMs: Double, minMs: Double, runs: Int
        /// 95% order-statistic intervals of the p50 and p99 (a side is null when the runs cannot bound it).
        var p50IntervalMs: ConfidenceInterval
        var p99IntervalMs: ConfidenceInterval
        /// Standard deviation / mean of the warm runs.
        var coefficientOfVariation: Double
        /// LoadGen's early-stopping estimate of the p99 (null value: too few runs, with the count needed).
        var p99EarlyStopping: EarlyStopping.Estimate
    }

    /// Money per inference at this device's price (from --price).
    struct DeviceCost: Encodable {
        var dollarsPerHour: Double
        /// Flat out, one request in flight at this batch size.
        var dollarsPerMillion: Double?
        /// At --load: as many devices as the load needs, idle time paid.
        var atLoad: Cost.AtLoad?
    }

    /// How much faster the winner is than another device, with a bootstrap interval.
    struct Ratio: Encodable {
        var device: String
        var baseline: String
        /// baseline p50 / device p50.
        var speedup: Double
        var interval: ConfidenceInterval?
    }

    struct Split: Encodable {
        var copyInP50Ms: Double, computeP50Ms: Double, copyOutP50Ms: Double
        var copyShare: Double
    }

    /// The same phases as the device's own events timed them (GPU backends).
    struct DeviceSplit: Encodable {
        var copyInP50Ms: Double, computeP50Ms: Double, copyOutP50Ms: Double
    }

    struct Parity: Encodable {
        var reference: String
        var maxAbsDiff: Double, maxRelDiff: Double
        var flippedPredictions: Int, predictions: Int
        var withinTolerance: Bool
        /// The likely reason for any difference, in words.
        var likelyCause: String
    }

    struct Device: Encodable {
        var device: String, deviceName: String
        /// The whole cold start of the device in this process (runtime and context, session, plan, first run).
        var coldStartMs: Double
        var coldStart: ColdStart
        /// Joules per inference above idle, or why there is none (`unavailable`).
        var energy: EnergyMeter.Result?
        var cost: DeviceCost?
        var throughputPerS: Double
        /// One run after `idle_gap_s` seconds idle (nil without --idle-gap).
        var afterIdleMs: Double?
        var warm: Warm
        var split: Split
        /// Absent on the CPU, whose host clock is the device's.
        var deviceSplit: DeviceSplit?
        var parity: Parity
        /// With --precision other than fp32: this device's outputs against the float32 model's (on the CPU).
        var parityWithFP32: InferenceBench.Parity?
    }

    /// Calls after which a device that is faster warm has paid back its higher cold start.
    struct BreakEven: Encodable {
        var device: String
        var baseline: String
        /// nil when the device is not faster warm (it never pays off).
        var calls: Int?
    }

    var model: String
    var batchSize: Int
    var idleGapS: Double?
    var devices: [Device]
    var breakEven: [BreakEven]
    var winner: String
    var verdict: String
    var precision = "fp32"
    var speedups: [Ratio] = []
    var loadPerS: Double?
    /// Cautions about the measurement itself (high variation, tails with too few runs).
    var warnings: [String] = []

    static let variationThreshold = 0.10

    init(
        model: String, batch: Int, runs: [CompareCommand.DeviceRun], idleGap: Double? = nil, prices: Prices? = nil,
        load: Double? = nil
    ) {
        self.model = model
        self.batchSize = batch
        self.idleGapS = idleGap
        self.loadPerS = load
        let reference = runs.first
        devices = runs.map { run in
            let total = Statistics(run.samples.map { Double($0.totalNanoseconds) })
            let milliseconds = run.samples.map { Double($0.totalNanoseconds) / 1e6 }
            let throughput = Double(max(batch, 1)) / max(total.median / 1e9, 1e-12)
            let device = run.selection.backend.device.description
            let cost = prices?.price(of: device).map { perHour in
                DeviceCost(
                    dollarsPerHour: perHour,
                    dollarsPerMillion: Cost.perMillion(dollarsPerHour: perHour, throughput: throughput),
                    atLoad: load.flatMap { Cost.atLoad(dollarsPerHour: perHour, throughput: throughput, load: $0) })
            }
            func scaled(_ interval: ConfidenceInterval) -> ConfidenceInterval {
                ConfidenceInterval(
                    lower: interval.lower.map { $0 / 1e6 }, upper: interval.upper.map { $0 / 1e6 },
                    confidence: interval.confidence)
            }
            let copyIn = Statistics(run.samples.map { Double($0.copyInNanoseconds) }).median
            let compute = Statistics(run.samples.map { Double($0.computeNanoseconds) }).median
            let copyOut = Statistics(run.samples.map { Double($0.copyOutNanoseconds) }).median
            let parity = Self.parity(run.outputs, reference?.outputs ?? [], batch: batch)
            let events = run.samples.compactMap(\.device)
            let deviceSplit =
                events.isEmpty || events.count != run.samples.count
                ? nil
                : DeviceSplit(
                    copyInP50Ms: Statistics(events.map { Double($0.copyInNanoseconds) }).median / 1e6,
                    computeP50Ms: Statistics(events.map { Double($0.computeNanoseconds) }).median / 1e6,
                    copyOutP50Ms: Statistics(events.map { Double($0.copyOutNanoseconds) }).median / 1e6)
            return Device(
                device: device, deviceName: run.selection.backend.deviceName,
                coldStartMs: run.coldStart.totalMs, coldStart: run.coldStart, energy: run.energy, cost: cost,
                throughputPerS: throughput,
                afterIdleMs: run.afterIdle.map { Double($0.totalNanoseconds) / 1e6 },
                warm: Warm(
                    p50Ms: total.median / 1e6, p90Ms: total.percentile(90) / 1e6, p99Ms: total.percentile(99) / 1e6,
                    meanMs: total.mean / 1e6, minMs: total.minimum / 1e6, runs: total.count,
                    p50IntervalMs: scaled(total.percentileInterval(50)),
                    p99IntervalMs: scaled(total.percentileInterval(99)),
                    coefficientOfVariation: total.coefficientOfVariation,
                    p99EarlyStopping: EarlyStopping.estimate(milliseconds, percentile: 99)),
                split: Split(
                    copyInP50Ms: copyIn / 1e6, computeP50Ms: compute / 1e6, copyOutP50Ms: copyOut / 1e6,
                    copyShare: (copyIn + copyOut) / max(copyIn + compute + copyOut, 1)),
                deviceSplit: deviceSplit,
                parity: Parity(
                    reference: reference?.selection.backend.device.description ?? "", maxAbsDiff: parity.abs,
                    maxRelDiff: parity.rel,
                    flippedPredictions: parity.flips, predictions: parity.predictions,
                    withinTolerance: parity.abs <= 1e-5 || parity.rel <= 1e-4,
                    likelyCause: Self.cause(
                        parity.abs, parity.rel,
                        isReference: run.selection.backend.device == reference?.selection.backend.device)))
        }
        for device in devices {
            if device.warm.coefficientOfVariation > Self.variationThreshold {
                warnings.append(
                    "\(device.device): warm runs vary by " + cFormat("%.0f", device.warm.coefficientOfVariation * 100)
                        + "% (coefficient of variation); other work on this machine is likely: close it, pin the "
                        + "process (taskset), or raise --repeat/--min-duration")
            }
            let early = device.warm.p99EarlyStopping
            if early.value == nil {
                warnings.append(
                    "\(device.device): p99 from \(early.runs) runs is not a p99 claim: LoadGen's early-stopping rule "
                        + "needs at least \(early.runsNeeded) runs (--repeat or --min-duration)")
            }
        }
        let base = devices.first
        breakEven = devices.dropFirst().map { device in
            guard let base else { return BreakEven(device: device.device, baseline: "", calls: nil) }
            return BreakEven(
                device: device.device, baseline: base.device,
                calls: Crossover.breakEvenCalls(
                    cold: device.coldStartMs, warm: device.warm.p50Ms, baselineCold: base.coldStartMs,
                    baselineWarm: base.warm.p50Ms))
        }
        let ranked = devices.sorted { $0.warm.p50Ms < $1.warm.p50Ms }
        guard let best = ranked.first else {
            winner = ""
            verdict = "no device ran"
            return
        }
        winner = best.device
        let samplesByDevice = Dictionary(
            runs.map { ($0.selection.backend.device.description, $0.samples.map { Double($0.totalNanoseconds) }) },
            uniquingKeysWith: { first, _ in first })
        speedups = ranked.dropFirst().map { other in
            Ratio(
                device: best.device, baseline: other.device, speedup: other.warm.p50Ms / max(best.warm.p50Ms, 1e-12),
                interval: Bootstrap.ratioOfMedians(
                    samplesByDevice[other.device] ?? [], samplesByDevice[best.device] ?? []))
        }
        var money = ""
        let priced = devices.filter { $0.cost?.dollarsPerMillion != nil }
        if let cheapest = priced.min(by: { ($0.cost?.dollarsPerMillion ?? 0) < ($1.cost?.dollarsPerMillion ?? 0) }) {
            money +=
                "; cheapest flat out: \(cheapest.device) at $"
                + cFormat("%.4g", cheapest.cost?.dollarsPerMillion ?? 0) + " per million"
            for other in priced where other.device != cheapest.device {
                guard let a = cheapest.cost, let b = other.cost,
                    let from = Cost.cheaperFrom(
                        a: (a.dollarsPerHour, cheapest.throughputPerS), b: (b.dollarsPerHour, other.throughputPerS),
                        maxLoad: 1e9)
                else { continue }
                money += "; \(other.device) is cheaper from " + cFormat("%.4g", from) + "/s of load"
            }
            if let load {
                let atLoad = priced.compactMap { d in d.cost?.atLoad.map { (d.device, $0) } }
                if let best = atLoad.min(by: { $0.1.dollarsPerMillion < $1.1.dollarsPerMillion }) {
                    money +=
                        "; at " + cFormat("%.4g", load) + "/s: \(best.0) at $"
                        + cFormat("%.4g", best.1.dollarsPerMillion) + " per million (\(best.1.devices) device"
                        + (best.1.devices == 1 ? "" : "s") + ", " + cFormat("%.0f", best.1.utilization * 100)
                        + "% busy)"
                }
            }
        }
        let measuredEnergy = devices.filter { $0.energy?.joulesPerInference != nil }
        if measuredEnergy.count == devices.count,
            let frugal = measuredEnergy.min(by: {
                ($0.energy?.joulesPerInference ?? 0) < ($1.energy?.joulesPerInference ?? 0)
            })
        {
            money +=
                "; least energy: \(frugal.device) at " + cFormat("%.4g", frugal.energy?.joulesPerInference ?? 0)
                + " J per inference"
        }
        if let runnerUp = ranked.dropFirst().first {
            let factor = runnerUp.warm.p50Ms / max(best.warm.p50Ms, 1e-12)
            var text =
                "\(best.device) wins at batch \(batch): warm p50 \(Formatting.milliseconds(nanoseconds: best.warm.p50Ms * 1e6)) ms"
                + " vs \(Formatting.milliseconds(nanoseconds: runnerUp.warm.p50Ms * 1e6)) ms on \(runnerUp.device)"
                + cFormat(" (%.2fx", factor)
            if let interval = speedups.first?.interval, let low = interval.lower, let high = interval.upper {
                text += cFormat(", 95%% interval %.2f", low) + cFormat("-%.2f", high)
            }
            text += ")"
            if runnerUp.split.copyShare > 0.3 {
                text +=
                    "; \(runnerUp.device) spends " + cFormat("%.0f", runnerUp.split.copyShare * 100)
                    + "% of its time copying"
            }
            for entry in breakEven {
                if let calls = entry.calls {
                    text +=
                        "; \(entry.device) pays off after \(calls) call\(calls == 1 ? "" : "s") (cold start included)"
                }
            }
            if let idleGap {
                for d in devices {
                    if let idle = d.afterIdleMs {
                        text +=
                            "; \(d.device) after " + cFormat("%.1f", idleGap)
                            + " s idle: \(Formatting.milliseconds(nanoseconds: idle * 1e6)) ms"
                    }
                }
            }
            text += money
            let flips = devices.filter { $0.parity.flippedPredictions > 0 }
            if !flips.isEmpty {
                text +=
                    "; predictions flip on "
                    + flips.map { "\($0.device) (\($0.parity.flippedPredictions))" }.joined(separator: ", ")
            }
            verdict = text + "."
        } else {
            verdict =
                "\(best.device) is the only device: warm p50 \(Formatting.milliseconds(nanoseconds: best.warm.p50Ms * 1e6)) ms"
                + money + "."
        }
    }

    static func cause(_ abs: Double, _ rel: Double, isReference: Bool) -> String {
        if isReference { return "reference" }
        if abs == 0 { return "identical" }
        if abs <= 1e-5 || rel <= 1e-4 { return "float32 rounding (a different summation order)" }
        return "beyond float32 rounding: reduced precision on the device (TF32, fp16) or a kernel fault"
    }

    /// Largest differences against the reference outputs, and predictions that change: the argmax of each
    /// sample's values, or which side of 0.5 a single value per sample falls on.
    static func parity(_ outputs: [NamedTensor], _ reference: [NamedTensor], batch: Int) -> (
        abs: Double, rel: Double, flips: Int, predictions: Int
    ) {
        var maxAbs = 0.0, maxRel = 0.0, flips = 0, predictions = 0
        for (a, b) in zip(outputs, reference) {
            guard let x = try? a.tensor.scalars(as: Float.self), let y = try? b.tensor.scalars(as: Float.self),
                x.count == y.count
            else { continue }
            for (u, v) in zip(x, y) {
                let d = Double(abs(u - v))
                maxAbs = max(maxAbs, d)
                if v != 0 { maxRel = max(maxRel, d / Double(abs(v))) }
            }
            let perSample = batch > 0 ? x.count / batch : x.count
            guard perSample > 0 else { continue }
            for s in 0..<(x.count / perSample) {
                let xs = x[(s * perSample)..<((s + 1) * perSample)], ys = y[(s * perSample)..<((s + 1) * perSample)]
                predictions += 1
                if perSample == 1 {
                    if (xs.first ?? 0 >= 0.5) != (ys.first ?? 0 >= 0.5) { flips += 1 }
                } else if xs.indices.max(by: { xs[$0] < xs[$1] }) != ys.indices.max(by: { ys[$0] < ys[$1] }) {
                    flips += 1
                }
            }
        }
        return (maxAbs, maxRel, flips, predictions)
    }

    var table: String {
        let ms = { (v: Double) in Formatting.milliseconds(nanoseconds: v * 1e6) }
        let showEnergy = devices.contains { $0.energy?.joulesPerInference != nil }
        let showCost = devices.contains { $0.cost != nil }
        var header = [
            "device", "cold ms", "p50 ms", "p50 95% interval", "p99 ms", "after idle", "copy in", "compute", "copy out",
            "max abs diff", "flips",
        ]
        if showEnergy { header.append("J/inference") }
        if showCost { header.append("$/million") }
        var rows: [[String]] = [header]
        for d in devices {
            let interval =
                (d.warm.p50IntervalMs.lower.map(ms) ?? "?") + "-" + (d.warm.p50IntervalMs.upper.map(ms) ?? "?")
            var row = [
                d.device, ms(d.coldStartMs), ms(d.warm.p50Ms), interval, ms(d.warm.p99Ms),
                d.afterIdleMs.map(ms) ?? "-", ms(d.split.copyInP50Ms), ms(d.split.computeP50Ms),
                ms(d.split.copyOutP50Ms), cFormat("%.3g", d.parity.maxAbsDiff),
                "\(d.parity.flippedPredictions)/\(d.parity.predictions)",
            ]
            if showEnergy { row.append(d.energy?.joulesPerInference.map { cFormat("%.4g", $0) } ?? "-") }
            if showCost { row.append(d.cost?.dollarsPerMillion.map { cFormat("%.4g", $0) } ?? "-") }
            rows.append(row)
        }
        let widths = (0..<rows[0].count).map { column in rows.map { $0[column].count }.max() ?? 0 }
        var lines = rows.map { row in
            zip(row, widths).enumerated().map { index, pair in
                index == 0
                    ? pair.0.rightPad(pair.1)
                    : String(repeating: " ", count: pair.1 - pair.0.count) + pair.0
            }.joined(separator: "  ")
        }
        lines.insert(
            "model \(model), batch \(batchSize); same inputs on every device, one request in flight, warm runs interleaved"
                + " in rounds; parity against \(devices.first?.device ?? "-")", at: 0)
        lines.append("")
        for d in devices {
            let phases = d.coldStart.phases.map { "\($0.name) \(ms($0.ms))" }.joined(separator: ", ")
            lines.append("cold start \(d.device): \(ms(d.coldStartMs)) ms = \(phases)")
        }
        for d in devices {
            if let energy = d.energy, energy.joulesPerInference == nil, let reason = energy.unavailable.first {
                lines.append("energy \(d.device): not measured: \(reason)")
            }
        }
        lines.append("")
        lines.append("Verdict: \(verdict)")
        return lines.joined(separator: "\n")
    }
}
