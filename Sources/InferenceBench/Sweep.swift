/// The `bench` record: per model, a sweep of batch sizes on every device (and precision), the crossover batch
/// sizes, parity of each precision with fp32, a verdict; rendered as a table, CSV or JSON here and as an SVG chart
/// by `SweepChart`. The JSON keys are snake_case (documented in docs/cli.md).

/// A variant's outputs against the float32 model's.
public struct VariantParity: Encodable {
    public init(device: String, precision: String, parity: Parity) {
        (self.device, self.precision, self.parity) = (device, precision, parity)
    }

    public var device: String
    public var precision: String
    public var parity: Parity
}

/// One measured point of a sweep.
public struct BenchPoint: Encodable {
    public init(
        device: String, batch: Int, p50Ms: Double, p90Ms: Double, p99Ms: Double, meanMs: Double,
        throughputPerS: Double, copyShare: Double, firstRunMs: Double, coefficientOfVariation: Double,
        dollarsPerMillion: Double? = nil
    ) {
        (self.device, self.batch, self.p50Ms, self.p90Ms, self.p99Ms) = (device, batch, p50Ms, p90Ms, p99Ms)
        (self.meanMs, self.throughputPerS, self.copyShare, self.firstRunMs) = (
            meanMs, throughputPerS, copyShare, firstRunMs
        )
        (self.coefficientOfVariation, self.dollarsPerMillion) = (coefficientOfVariation, dollarsPerMillion)
    }

    public var device: String
    public var batch: Int
    public var p50Ms: Double, p90Ms: Double, p99Ms: Double, meanMs: Double
    public var throughputPerS: Double
    public var copyShare: Double
    /// The first run at this batch size (a new plan; on a GPU also new kernels), before any warm-up.
    public var firstRunMs: Double
    public var coefficientOfVariation: Double
    /// With --price: dollars per million inferences at this point's throughput.
    public var dollarsPerMillion: Double?
}

/// Where a device starts to beat the baseline (the first device).
public struct BenchCrossover: Encodable {
    public var device: String
    public var baseline: String
    /// Smallest batch from which the device's throughput stays above the baseline's; nil if never.
    public var throughputBatch: Int?
    /// Smallest batch from which its p50 latency stays below the baseline's; nil if never.
    public var latencyBatch: Int?
    /// With --price: smallest batch from which its cost per inference stays below the baseline's.
    public var costBatch: Int?
    /// With --price: the offered load (per second) from which it serves more cheaply than the baseline, each
    /// at its best measured throughput and scaled out to as many devices as the load needs.
    public var cheaperFromLoadPerS: Double?
}

public struct BenchSweep: Encodable {
    public init(model: String, devices: [String], points: [BenchPoint]) {
        (self.model, self.devices, self.points) = (model, devices, points)
    }

    public var model: String
    public var devices: [String]
    public var points: [BenchPoint]
    /// With --precision: the precisions each device ran, and each non-fp32 variant's parity with fp32.
    public var precisions: [String]?
    public var parity: [VariantParity]?

    /// One line for a precision sweep: the fastest variant at the smallest batch with its parity, and where other
    /// variants overtake the baseline on throughput.
    public var verdict: String? {
        guard precisions != nil, let baseline = devices.first,
            let smallest = points.map(\.batch).min()
        else { return nil }
        let atSmallest = points.filter { $0.batch == smallest }
        guard let fastest = atSmallest.min(by: { $0.p50Ms < $1.p50Ms }),
            let base = atSmallest.first(where: { $0.device == baseline })
        else { return nil }
        let ms = { (v: Double) in TextFormat.milliseconds(nanoseconds: v * 1e6) }
        var text = "\(fastest.device) serves batch \(smallest) in \(ms(fastest.p50Ms)) ms"
        if fastest.device != baseline {
            text += " (\(baseline): \(ms(base.p50Ms)) ms)"
        } else if devices.count > 1 {
            text += ", faster than every other variant"
        }
        if let p = parity?.first(where: { $0.device == fastest.device })?.parity {
            text += " with \(p.flipped) of \(p.predictions) predictions flipped"
        }
        for crossover in crossovers where crossover.device != fastest.device {
            if let batch = crossover.throughputBatch, batch > smallest {
                text += "; \(crossover.device) wins on throughput from batch \(batch)"
            }
        }
        return text
    }

    public var crossovers: [BenchCrossover] {
        guard let baseline = devices.first else { return [] }
        let base = Dictionary(uniqueKeysWithValues: points.filter { $0.device == baseline }.map { ($0.batch, $0) })
        return devices.dropFirst().map { device in
            let mine = points.filter { $0.device == device }
            func axis(_ value: (BenchPoint) -> Double?) -> ([Int: Double], [Int: Double]) {
                (
                    Dictionary(
                        mine.compactMap { p in value(p).map { (p.batch, $0) } }, uniquingKeysWith: { a, _ in a }),
                    base.compactMapValues(value)
                )
            }
            let throughput = axis { $0.throughputPerS }, latency = axis { $0.p50Ms },
                cost = axis { $0.dollarsPerMillion }
            var crossover = BenchCrossover(
                device: device, baseline: baseline,
                throughputBatch: Crossover.firstBatch(throughput.0, throughput.1, better: >),
                latencyBatch: Crossover.firstBatch(latency.0, latency.1, better: <))
            if !cost.0.isEmpty && !cost.1.isEmpty {
                crossover.costBatch = Crossover.firstBatch(cost.0, cost.1, better: <)
                if let mineBest = mine.max(by: { $0.throughputPerS < $1.throughputPerS }),
                    let baseBest = base.values.max(by: { $0.throughputPerS < $1.throughputPerS }),
                    let minePrice = prices?.price(of: Self.deviceName(device)),
                    let basePrice = prices?.price(of: Self.deviceName(baseline))
                {
                    crossover.cheaperFromLoadPerS = Cost.cheaperFrom(
                        a: (basePrice, baseBest.throughputPerS), b: (minePrice, mineBest.throughputPerS), maxLoad: 1e9)
                }
            }
            return crossover
        }
    }

    /// The prices the points were costed with (set by `BenchReport.apply`).
    public var prices: Prices?

    /// The device of a variant label ("cpu int8" -> "cpu").
    public static func deviceName(_ label: String) -> String { String(label.split(separator: " ").first ?? "") }

    private enum CodingKeys: String, CodingKey { case model, devices, points, crossovers, precisions, parity, verdict }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(model, forKey: .model)
        try container.encode(devices, forKey: .devices)
        try container.encode(points, forKey: .points)
        try container.encode(crossovers, forKey: .crossovers)
        try container.encodeIfPresent(precisions, forKey: .precisions)
        try container.encodeIfPresent(parity, forKey: .parity)
        try container.encodeIfPresent(verdict, forKey: .verdict)
    }
}

/// The `bench` report; the JSON keys are snake_case (documented in docs/cli.md).
public struct BenchReport: Encodable {
    public init(repeats: Int, threads: Int, models: [BenchSweep]) {
        (self.repeats, self.threads, self.models) = (repeats, threads, models)
    }

    public var repeats: Int
    public var threads: Int
    public var models: [BenchSweep]

    /// Costs every point whose device has a price.
    public mutating func apply(_ prices: Prices) {
        for index in models.indices {
            models[index].prices = prices
            for p in models[index].points.indices {
                let point = models[index].points[p]
                guard let perHour = prices.price(of: BenchSweep.deviceName(point.device)) else { continue }
                models[index].points[p].dollarsPerMillion = Cost.perMillion(
                    dollarsPerHour: perHour, throughput: point.throughputPerS)
            }
        }
    }

    public static let csvHeader =
        "model,device,batch,p50_ms,p90_ms,p99_ms,mean_ms,throughput_per_s,copy_share,first_run_ms,"
        + "coefficient_of_variation,dollars_per_million"

    public var csv: String {
        var lines = [Self.csvHeader]
        for sweep in models {
            for p in sweep.points {
                lines.append(
                    "\(sweep.model),\(p.device),\(p.batch),\(p.p50Ms),\(p.p90Ms),\(p.p99Ms),\(p.meanMs),\(p.throughputPerS),\(p.copyShare),"
                        + "\(p.firstRunMs),\(p.coefficientOfVariation),\(p.dollarsPerMillion.map { "\($0)" } ?? "")"
                )
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    public var table: String {
        var lines: [String] = []
        let ms = { (v: Double) in TextFormat.milliseconds(nanoseconds: v * 1e6) }
        for sweep in models {
            lines.append("\(sweep.model) (\(repeats) runs per point, \(threads) CPU threads)")
            let priced = sweep.points.contains { $0.dollarsPerMillion != nil }
            lines.append(
                "  batch  device            p50 ms      p99 ms    samples/s   copy %    first ms"
                    + (priced ? "   $/million" : ""))
            for p in sweep.points.sorted(by: { ($0.batch, $0.device) < ($1.batch, $1.device) }) {
                lines.append(
                    "  " + String(p.batch).leftPad(5) + "  "
                        + p.device.rightPad(14)
                        + ms(p.p50Ms).leftPad(10) + "  " + ms(p.p99Ms).leftPad(10) + "  "
                        + cFormat("%11.0f", p.throughputPerS) + "  " + cFormat("%6.1f", p.copyShare * 100) + "  "
                        + ms(p.firstRunMs).leftPad(10)
                        + (priced ? "  " + (p.dollarsPerMillion.map { cFormat("%10.4g", $0) } ?? "-".leftPad(10)) : "")
                )
            }
            let noisy = sweep.points.filter { $0.coefficientOfVariation > ComparisonReport.variationThreshold }
            if !noisy.isEmpty {
                lines.append(
                    "  note: \(noisy.count) of \(sweep.points.count) points vary by more than "
                        + cFormat("%.0f", ComparisonReport.variationThreshold * 100)
                        + "% between runs (coefficient of variation); p99 from \(repeats) runs is the "
                        + (repeats >= EarlyStopping.minimumRuns(percentile: 99)
                            ? "early-stopping bound"
                            : "slowest-run range, not a p99 claim (LoadGen needs \(EarlyStopping.minimumRuns(percentile: 99)) runs)")
                )
            }
            for c in sweep.crossovers {
                let throughput = c.throughputBatch.map { "from batch \($0)" } ?? "at no measured batch size"
                let latency = c.latencyBatch.map { "from batch \($0)" } ?? "at no measured batch size"
                var line =
                    "  crossover: \(c.device) beats \(c.baseline) on throughput \(throughput), on latency \(latency)"
                if sweep.prices != nil {
                    line +=
                        ", on cost per inference "
                        + (c.costBatch.map { "from batch \($0)" } ?? "at no measured batch size")
                    line +=
                        c.cheaperFromLoadPerS.map { "; cheaper to serve from " + cFormat("%.4g", $0) + "/s of load" }
                        ?? "; never cheaper to serve at any load"
                }
                lines.append(line)
            }
            for p in sweep.parity ?? [] {
                lines.append("  parity: \(p.device) against fp32: \(p.parity.summary)")
            }
            if let verdict = sweep.verdict { lines.append("  verdict: \(verdict)") }
            lines.append("")
        }
        return lines.joined(separator: "\n")
    }
}
