import InferenceRuntime

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// When this process started, on the monotonic clock: the entry of `main` is marked exactly; the time before
/// it (exec, dynamic linking, runtime start-up) is read from /proc/self/schedstat, the time the scheduler has
/// counted for the process so far (on the CPU plus waiting for one), which before `main` is nearly all of it.
public enum ProcessClock {
    nonisolated(unsafe) private static var mainEntered: UInt64?
    nonisolated(unsafe) private static var beforeMain: UInt64?

    /// Call first thing in `main`.
    public static func markMain() {
        mainEntered = MonotonicClock.nanoseconds()
        beforeMain = scheduledNanoseconds()
    }

    /// Nanoseconds between exec and `main`, when /proc says.
    public static var beforeMainNanoseconds: UInt64? { beforeMain }

    /// Nanoseconds from the process's start to `now` (nil before `markMain`).
    public static func sinceStart(_ now: UInt64 = MonotonicClock.nanoseconds()) -> UInt64? {
        guard let mainEntered else { return nil }
        return now &- mainEntered &+ (beforeMain ?? 0)
    }

    /// Run time plus run-queue wait of this process's threads so far, from /proc/self/schedstat.
    static func scheduledNanoseconds() -> UInt64? {
        guard let text = EnergySources.readText("/proc/self/schedstat") else { return nil }
        let fields = text.split(separator: " ").prefix(2).compactMap { UInt64($0) }
        guard fields.count == 2 else { return nil }
        return fields[0] &+ fields[1]
    }
}

/// The whole cold start of one device, phase by phase, from the process's start to its first result.
public struct ColdStart: Sendable, Encodable, Equatable {
    public struct Phase: Sendable, Encodable, Equatable {
        public var name: String
        public var ms: Double
    }

    public var phases: [Phase] = []
    /// From the process's start to the first result, on one clock (close to the phases' sum; the difference is
    /// work between the phases).
    public var sinceProcessStartMs: Double?

    public init() {}

    /// Marks the first result: `sinceProcessStartMs` from the process clock.
    public mutating func finish() {
        sinceProcessStartMs = ProcessClock.sinceStart().map { Double($0) / 1e6 }
    }

    /// The phases' sum.
    public var totalMs: Double { phases.reduce(0) { $0 + $1.ms } }

    /// Only the phases a second device would pay again (everything but the process's start and the model load,
    /// which devices in one process share).
    public func deviceMs(excluding shared: Set<String>) -> Double {
        phases.filter { !shared.contains($0.name) }.reduce(0) { $0 + $1.ms }
    }

    public mutating func record(_ name: String, nanoseconds: UInt64) {
        phases.append(Phase(name: name, ms: Double(nanoseconds) / 1e6))
    }

    /// Runs `body`, recording its duration under `name`.
    public mutating func time<T>(_ name: String, _ body: () throws -> T) rethrows -> T {
        let start = MonotonicClock.nanoseconds()
        let result = try body()
        record(name, nanoseconds: MonotonicClock.nanoseconds() &- start)
        return result
    }

    private enum CodingKeys: String, CodingKey { case phases, totalMs, sinceProcessStartMs }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(phases, forKey: .phases)
        try container.encode(totalMs, forKey: .totalMs)
        try container.encodeIfPresent(sinceProcessStartMs, forKey: .sinceProcessStartMs)
    }
}
