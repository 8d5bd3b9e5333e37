import InferenceRuntime

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// A cumulative energy counter of one power domain (a CPU package, DRAM, a GPU): joules since some origin,
/// wrapping to 0 after `wrapJoules` when the hardware counter is narrow.
public struct EnergyCounter: Sendable {
    public var name: String
    /// The counter wraps to 0 after this many joules (nil: it does not wrap in practice).
    public var wrapJoules: Double?
    /// How often the source updates (NVML: 20-100 ms); a measurement window should be many times longer.
    public var updateSeconds: Double
    public var read: @Sendable () -> Double?

    public init(
        name: String, wrapJoules: Double?, updateSeconds: Double, read: @escaping @Sendable () -> Double?
    ) {
        self.name = name
        self.wrapJoules = wrapJoules
        self.updateSeconds = updateSeconds
        self.read = read
    }

    /// Joules between two readings, a wrap in between accounted for.
    public func difference(from start: Double, to end: Double) -> Double {
        if end >= start { return end - start }
        return (wrapJoules ?? 0) - start + end
    }
}

/// The counters this process can read, and a reason for each it cannot.
public struct EnergySources: Sendable {
    public var counters: [EnergyCounter]
    public var unavailable: [String]

    public init(counters: [EnergyCounter] = [], unavailable: [String] = []) {
        self.counters = counters
        self.unavailable = unavailable
    }

    /// The Linux powercap (RAPL) zones: each package zone and each DRAM subzone (cores and uncore are inside
    /// their package's count; psys, the whole platform, would count the package twice). `root` defaults to
    /// /sys/class/powercap; INFERENCE_POWERCAP_ROOT replaces it (tests give a tree of their own).
    public static func powercap(root: String? = nil) -> EnergySources {
        let folder = root ?? RuntimeSettings.environment("INFERENCE_POWERCAP_ROOT") ?? "/sys/class/powercap"
        guard let entries = listDirectory(folder) else {
            return EnergySources(
                unavailable: [
                    "CPU energy: \(folder) does not exist (no RAPL powercap driver: usual in VMs and containers)"
                ])
        }
        var sources = EnergySources()
        let zones = entries.filter { $0.hasSuffix("-rapl") == false && $0.contains("-rapl:") }.sorted()
        for zone in zones {
            let path = folder + "/" + zone
            let depth = zone.split(separator: ":").count
            guard let name = readText(path + "/name")?.trimmed else { continue }
            let counted = (depth == 2 && !name.hasPrefix("psys")) || (depth == 3 && name == "dram")
            guard counted else { continue }
            guard readText(path + "/energy_uj") != nil else {
                sources.unavailable.append(
                    "CPU energy: \(path)/energy_uj is not readable (\(String(cString: strerror(errno)))); "
                        + "the kernel lets only root read RAPL counters unless an administrator grants read access")
                continue
            }
            let wrap = readText(path + "/max_energy_range_uj").flatMap { Double($0.trimmed) }.map { $0 / 1e6 }
            let file = path + "/energy_uj"
            sources.counters.append(
                EnergyCounter(name: "\(name) (\(zone))", wrapJoules: wrap, updateSeconds: 0.001) {
                    readText(file).flatMap { Double($0.trimmed) }.map { $0 / 1e6 }
                })
        }
        if sources.counters.isEmpty && sources.unavailable.isEmpty {
            sources.unavailable.append("CPU energy: \(folder) has no RAPL package zone")
        }
        return sources
    }

    static func listDirectory(_ path: String) -> [String]? {
        guard let directory = opendir(path) else { return nil }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// A small sysfs file's text (at most 256 bytes); nil when it cannot be read.
    static func readText(_ path: String) -> String? {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        var buffer = [UInt8](repeating: 0, count: 256)
        let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
        guard count >= 0 else { return nil }
        return String(decoding: buffer[0..<count], as: UTF8.self)
    }
}

extension String {
    fileprivate var trimmed: String {
        var text = Substring(self)
        while let last = text.last, last.isWhitespace { text.removeLast() }
        while let first = text.first, first.isWhitespace { text.removeFirst() }
        return String(text)
    }
}

/// Energy per inference from cumulative counters: the idle power measured first and subtracted, the run long
/// enough for the slowest counter to update many times.
public enum EnergyMeter {
    /// What a measurement found: joules per inference above idle (summed over every domain, with each domain's
    /// share), or why there is no value.
    public struct Result: Sendable, Equatable, Codable {
        public var joulesPerInference: Double?
        public var idleWatts: Double?
        public var activeWatts: Double?
        public var domains: [Domain]
        public var runs: Int
        public var seconds: Double
        /// Why some or all domains are missing (empty when every counter was read).
        public var unavailable: [String]

        public struct Domain: Sendable, Equatable, Codable {
            public var name: String
            public var joulesPerInference: Double
        }

        public static func none(_ reasons: [String]) -> Result {
            Result(
                joulesPerInference: nil, idleWatts: nil, activeWatts: nil, domains: [], runs: 0, seconds: 0,
                unavailable: reasons)
        }
    }

    /// Reads every counter over `idleSeconds` of sleep, then over a loop of `body` lasting at least
    /// `activeSeconds` (and 50 counter updates); the result is the active energy minus idle power × duration,
    /// per run. `sleep` is the idle wait (replaceable in tests).
    public static func measure(
        _ sources: EnergySources, idleSeconds: Double, activeSeconds: Double,
        sleep: (Double) -> Void = { usleep(UInt32(min($0, 60) * 1e6)) }, _ body: () throws -> Void
    ) rethrows -> Result {
        let counters = sources.counters
        guard !counters.isEmpty else { return .none(sources.unavailable) }
        let slowest = counters.map(\.updateSeconds).max() ?? 0
        let window = max(activeSeconds, 50 * slowest)
        func readAll() -> [Double?] { counters.map { $0.read() } }

        let idleStart = readAll()
        let idleClock = MonotonicClock.nanoseconds()
        sleep(max(idleSeconds, 10 * slowest))
        let idleEnd = readAll()
        let idleDuration = Double(MonotonicClock.nanoseconds() - idleClock) / 1e9

        let activeStart = readAll()
        let activeClock = MonotonicClock.nanoseconds()
        var runs = 0
        repeat {
            try body()
            runs += 1
        } while Double(MonotonicClock.nanoseconds() - activeClock) / 1e9 < window
        let activeEnd = readAll()
        let activeDuration = Double(MonotonicClock.nanoseconds() - activeClock) / 1e9

        var unavailable = sources.unavailable
        var domains: [Result.Domain] = []
        var idleWatts = 0.0, activeWatts = 0.0
        for (index, counter) in counters.enumerated() {
            guard let a = idleStart[index], let b = idleEnd[index], let c = activeStart[index],
                let d = activeEnd[index]
            else {
                unavailable.append("\(counter.name): a reading failed during the measurement")
                continue
            }
            let idle = counter.difference(from: a, to: b) / max(idleDuration, 1e-9)
            let active = counter.difference(from: c, to: d)
            idleWatts += idle
            activeWatts += active / max(activeDuration, 1e-9)
            domains.append(
                Result.Domain(
                    name: counter.name, joulesPerInference: max(active - idle * activeDuration, 0) / Double(runs)))
        }
        guard !domains.isEmpty else { return .none(unavailable) }
        return Result(
            joulesPerInference: domains.reduce(0) { $0 + $1.joulesPerInference }, idleWatts: idleWatts,
            activeWatts: activeWatts, domains: domains, runs: runs, seconds: activeDuration, unavailable: unavailable)
    }
}
