/// What a device costs per hour, by device name ("cpu", "opencl:0", "cuda:0").
public struct Prices: Sendable, Equatable, Codable {
    public var dollarsPerHour: [String: Double]

    public init(dollarsPerHour: [String: Double]) { self.dollarsPerHour = dollarsPerHour }

    /// Parses `cpu=0.10,cuda:0=3.20`: device names, then dollars per hour (finite, 0 or more).
    /// - Throws: `PriceError` naming the item that does not parse.
    public static func parse(_ text: String) throws(PriceError) -> Prices {
        var prices: [String: Double] = [:]
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            let parts = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[0].isEmpty else {
                throw PriceError(description: "'\(item)' is not DEVICE=DOLLARS_PER_HOUR (e.g. cpu=0.10,cuda:0=3.20)")
            }
            let device = String(parts[0]).lowercased()
            guard let value = Double(parts[1]), value.isFinite, value >= 0, value <= 1e6 else {
                throw PriceError(
                    description: "'\(parts[1])' for \(device) is not a price in dollars per hour (0 to 1e6)")
            }
            guard prices[device] == nil else { throw PriceError(description: "\(device) is priced twice") }
            prices[device] = value
        }
        return Prices(dollarsPerHour: prices)
    }

    public func price(of device: String) -> Double? { dollarsPerHour[device.lowercased()] }
}

public struct PriceError: Error, CustomStringConvertible, Equatable {
    public var description: String
}

/// Money per inference from a price per hour and a measured throughput.
public enum Cost {
    /// Dollars per million inferences on a device kept busy: its hourly price over the inferences it serves in
    /// an hour at `throughput` per second. nil for a throughput that is not positive.
    public static func perMillion(dollarsPerHour: Double, throughput: Double) -> Double? {
        guard throughput > 0, throughput.isFinite else { return nil }
        return dollarsPerHour / 3600 / throughput * 1e6
    }

    /// The cost at an offered load: enough devices to serve `load` per second (each serving at most
    /// `throughput`), each paid for the whole hour however idle it is.
    public struct AtLoad: Sendable, Equatable, Codable {
        public var dollarsPerMillion: Double
        /// Devices needed to serve the load.
        public var devices: Int
        /// Fraction of the paid device time spent serving.
        public var utilization: Double
    }

    /// nil when the load or throughput is not positive or would need more than a million devices.
    public static func atLoad(dollarsPerHour: Double, throughput: Double, load: Double) -> AtLoad? {
        guard throughput > 0, throughput.isFinite, load > 0, load.isFinite else { return nil }
        let needed = (load / throughput).rounded(.up)
        guard needed <= 1e6 else { return nil }
        let devices = max(Int(needed), 1)
        return AtLoad(
            dollarsPerMillion: Double(devices) * dollarsPerHour / 3600 / load * 1e6, devices: devices,
            utilization: load / (Double(devices) * throughput))
    }

    /// The lowest offered load (per second) from which device B serves more cheaply than device A, each scaled
    /// out to as many devices as the load needs; nil when B is never cheaper up to `maxLoad`. The cost of each
    /// is a step function of the load, changing only where one more device is needed, so only those loads
    /// (just above each multiple of a throughput) are checked.
    public static func cheaperFrom(
        a: (dollarsPerHour: Double, throughput: Double), b: (dollarsPerHour: Double, throughput: Double),
        maxLoad: Double
    ) -> Double? {
        guard a.throughput > 0, b.throughput > 0, maxLoad > 0 else { return nil }
        // Per-device-hour cost comparison: at load L, A costs ceil(L/ta)·pa and B ceil(L/tb)·pb per hour.
        func hourly(_ device: (dollarsPerHour: Double, throughput: Double), _ load: Double) -> Double {
            (load / device.throughput).rounded(.up) * device.dollarsPerHour
        }
        var candidates: [Double] = [min(a.throughput, b.throughput, maxLoad) * 1e-6]
        for device in [a, b] {
            var k = 1.0
            while k * device.throughput < maxLoad && candidates.count < 100_000 {
                candidates.append(k * device.throughput * (1 + 1e-9))
                k += 1
            }
        }
        for load in candidates.sorted() where load <= maxLoad {
            if hourly(b, load) < hourly(a, load) { return load }
        }
        return nil
    }
}

/// Where one device starts to beat another.
public enum Crossover {
    /// The smallest batch from which `mine` stays better than `theirs` at every larger measured batch both have;
    /// nil when it is not better at the largest one.
    public static func firstBatch(
        _ mine: [Int: Double], _ theirs: [Int: Double], better: (Double, Double) -> Bool
    ) -> Int? {
        var candidate: Int?
        for batch in mine.keys.sorted() {
            guard let value = mine[batch], let other = theirs[batch] else { continue }
            if better(value, other) { candidate = candidate ?? batch } else { candidate = nil }
        }
        return candidate
    }

    /// Calls after which a device with a higher cold start but a faster warm run has paid it back:
    /// the smallest n with cold_d + (n - 1)·warm_d <= cold_b + (n - 1)·warm_b. 1 when it is not slower cold;
    /// nil when it is not faster warm (it never pays off).
    public static func breakEvenCalls(cold: Double, warm: Double, baselineCold: Double, baselineWarm: Double) -> Int? {
        if cold <= baselineCold && warm <= baselineWarm { return 1 }
        guard warm < baselineWarm else { return nil }
        let calls = 1 + ((cold - baselineCold) / (baselineWarm - warm)).rounded(.up)
        guard calls.isFinite, calls < Double(Int.max / 2) else { return nil }
        return max(1, Int(calls))
    }
}
