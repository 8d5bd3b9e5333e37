import InferenceRuntime
import InferenceTensor

/// What one device measured for a comparison: the input of `ComparisonReport`.
public struct DeviceResult {
    /// The device as options name it (`cpu`, `opencl:0`) and its model name.
    public var device: String
    public var deviceName: String
    /// The timed warm runs.
    public var samples: [RunTimings]
    /// The device's whole cold start: runtime and context, session, plan, first run.
    public var coldStart: ColdStart
    public var energy: EnergyMeter.Result?
    /// One run after an idle gap, when one was timed.
    public var afterIdle: RunTimings?
    /// The outputs of the first run (for parity against the first device).
    public var outputs: [NamedTensor]

    public init(
        device: String, deviceName: String, samples: [RunTimings], coldStart: ColdStart,
        energy: EnergyMeter.Result? = nil, afterIdle: RunTimings? = nil, outputs: [NamedTensor] = []
    ) {
        self.device = device
        self.deviceName = deviceName
        self.samples = samples
        self.coldStart = coldStart
        self.energy = energy
        self.afterIdle = afterIdle
        self.outputs = outputs
    }
}

/// What `inference compare` reports (its `--json` record: keys in snake_case, documented in docs/cli.md): per
/// device the cold start, warm percentiles with intervals, the copy/compute split, output parity, energy and
/// cost; across devices the speedups with bootstrap intervals, the break-even call counts and a verdict in words.
/// Built from `DeviceResult`s, whatever measured them; `table` renders it as text.
public struct ComparisonReport: Encodable {
    public struct Warm: Encodable {
        public var p50Ms: Double, p90Ms: Double, p99Ms: Double, meanMs: Double, minMs: Double, runs: Int
        /// 95% order-statistic intervals of the p50 and p99 (a side is null when the runs cannot bound it).
        public var p50IntervalMs: ConfidenceInterval
        public var p99IntervalMs: ConfidenceInterval
        /// Standard deviation / mean of the warm runs.
        public var coefficientOfVariation: Double
        /// LoadGen's early-stopping estimate of the p99 (null value: too few runs, with the count needed).
        public var p99EarlyStopping: EarlyStopping.Estimate
    }

    /// Money per inference at this device's price (from --price).
    public struct DeviceCost: Encodable {
        public var dollarsPerHour: Double
        /// Flat out, one request in flight at this batch size.
        public var dollarsPerMillion: Double?
        /// At --load: as many devices as the load needs, idle time paid.
        public var atLoad: Cost.AtLoad?
    }

    /// How much faster the winner is than another device, with a bootstrap interval.
    public struct Ratio: Encodable {
        public var device: String
        public var baseline: String
        /// baseline p50 / device p50.
        public var speedup: Double
        public var interval: ConfidenceInterval?
    }

    public struct Split: Encodable {
        public var copyInP50Ms: Double, computeP50Ms: Double, copyOutP50Ms: Double
        public var copyShare: Double
    }

    /// The same phases as the device's own events timed them (GPU backends).
    public struct DeviceSplit: Encodable {
        public var copyInP50Ms: Double, computeP50Ms: Double, copyOutP50Ms: Double
    }

    public struct Parity: Encodable {
        public var reference: String
        public var maxAbsDiff: Double, maxRelDiff: Double
        public var flippedPredictions: Int, predictions: Int
        public var withinTolerance: Bool
        /// The likely reason for any difference, in words.
        public var likelyCause: String
    }

    public struct Device: Encodable {
        public var device: String, deviceName: String
        /// The whole cold start of the device in this process (runtime and context, session, plan, first run).
        public var coldStartMs: Double
        public var coldStart: ColdStart
        /// Joules per inference above idle, or why there is none (`unavailable`).
        public var energy: EnergyMeter.Result?
        public var cost: DeviceCost?
        public var throughputPerS: Double
        /// One run after `idle_gap_s` seconds idle (nil without --idle-gap).
        public var afterIdleMs: Double?
        public var warm: Warm
        public var split: Split
        /// Absent on the CPU, whose host clock is the device's.
        public var deviceSplit: DeviceSplit?
        public var parity: Parity
        /// With --precision other than fp32: this device's outputs against the float32 model's (on the CPU).
        public var parityWithFP32: InferenceBench.Parity?
    }

    /// Calls after which a device that is faster warm has paid back its higher cold start.
    public struct BreakEven: Encodable {
        public var device: String
        public var baseline: String
        /// nil when the device is not faster warm (it never pays off).
        public var calls: Int?
    }

    public var model: String
    public var batchSize: Int
    public var idleGapS: Double?
    public var devices: [Device]
    public var breakEven: [BreakEven]
    public var winner: String
    public var verdict: String
    public var precision = "fp32"
    public var speedups: [Ratio] = []
    public var loadPerS: Double?
    /// Cautions about the measurement itself (high variation, tails with too few runs).
    public var warnings: [String] = []

    /// Warm runs varying more than this (coefficient of variation) get a warning.
    public static let variationThreshold = 0.10

    /// - Parameters:
    ///   - runs: each device's measurements; the first is the parity reference and the break-even baseline.
    ///   - idleGap: seconds idle before each `DeviceResult.afterIdle` run, when one was timed.
    ///   - prices: dollars per hour per device, for the cost columns.
    ///   - load: an offered load per second, for the cost at that load.
    public init(
        model: String, batch: Int, runs: [DeviceResult], idleGap: Double? = nil, prices: Prices? = nil,
        load: Double? = nil
    ) {
        self.model = model
        self.batchSize = batch
        self.idleGapS = idleGap
        self.loadPerS = load
        let reference = runs.first
        devices = runs.map { Self.record($0, reference: reference, batch: batch, prices: prices, load: load) }
        warnings = Self.warnings(devices)
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
            runs.map { ($0.device, $0.samples.map { Double($0.totalNanoseconds) }) },
            uniquingKeysWith: { first, _ in first })
        speedups = ranked.dropFirst().map { other in
            Ratio(
                device: best.device, baseline: other.device, speedup: other.warm.p50Ms / max(best.warm.p50Ms, 1e-12),
                interval: Bootstrap.ratioOfMedians(
                    samplesByDevice[other.device] ?? [], samplesByDevice[best.device] ?? []))
        }
        let money = Self.moneyClause(devices, load: load)
        if let runnerUp = ranked.dropFirst().first {
            let factor = runnerUp.warm.p50Ms / max(best.warm.p50Ms, 1e-12)
            var text =
                "\(best.device) wins at batch \(batch): warm p50 \(TextFormat.milliseconds(nanoseconds: best.warm.p50Ms * 1e6)) ms"
                + " vs \(TextFormat.milliseconds(nanoseconds: runnerUp.warm.p50Ms * 1e6)) ms on \(runnerUp.device)"
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
                            + " s idle: \(TextFormat.milliseconds(nanoseconds: idle * 1e6)) ms"
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
                "\(best.device) is the only device: warm p50 \(TextFormat.milliseconds(nanoseconds: best.warm.p50Ms * 1e6)) ms"
                + money + "."
        }
    }

    /// One device's record: percentiles and intervals, the split, parity against `reference`, cost.
    static func record(
        _ run: DeviceResult, reference: DeviceResult?, batch: Int, prices: Prices?, load: Double?
    ) -> Device {
        let total = Statistics(run.samples.map { Double($0.totalNanoseconds) })
        let milliseconds = run.samples.map { Double($0.totalNanoseconds) / 1e6 }
        let throughput = Double(max(batch, 1)) / max(total.median / 1e9, 1e-12)
        let device = run.device
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
            device: device, deviceName: run.deviceName,
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
                reference: reference?.device ?? "", maxAbsDiff: parity.abs,
                maxRelDiff: parity.rel,
                flippedPredictions: parity.flips, predictions: parity.predictions,
                withinTolerance: parity.abs <= 1e-5 || parity.rel <= 1e-4,
                likelyCause: Self.cause(
                    parity.abs, parity.rel,
                    isReference: run.device == reference?.device)))
    }

    /// Cautions about the measurement: warm runs that vary, p99 claims from too few runs.
    static func warnings(_ devices: [Device]) -> [String] {
        var warnings: [String] = []
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
        return warnings
    }

    /// The verdict's money and energy clause: the cheapest device flat out, the load from which another is
    /// cheaper, the cheapest at `load`, the device with the least energy per inference.
    static func moneyClause(_ devices: [Device], load: Double?) -> String {
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
        return money
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

    /// The report as the text table `compare` prints.
    public var table: String {
        let ms = { (v: Double) in TextFormat.milliseconds(nanoseconds: v * 1e6) }
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
