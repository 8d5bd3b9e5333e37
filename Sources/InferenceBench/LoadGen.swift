import InferenceRuntime
import InferenceTensor

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// What a load run drives: an in-process runtime behind a batcher, or a server over HTTP. `issue` returns at
/// once; `done` is called exactly once, from any thread, with whether the query succeeded.
public protocol LoadTarget: Sendable {
    func issue(query: Int, samples: Int, done: @escaping @Sendable (Bool) -> Void)
}

/// MLPerf LoadGen's scenarios.
public enum LoadScenario: String, Sendable, Codable, CaseIterable {
    /// One sample per query, the next issued when the previous completes; metric: the p90 (early stopping).
    case singleStream = "single-stream"
    /// `samplesPerQuery` (8) samples per query, the next when the previous completes; metric: the p99.
    case multiStream = "multi-stream"
    /// Queries arrive on a schedule (Poisson by default) whatever the system's progress; valid when the p99
    /// (early-stopping bound) is within the latency bound; metric: the scheduled queries per second.
    case server
    /// Every sample at once; metric: samples per second.
    case offline
}

/// How arrivals are spaced in the server scenario.
public enum Arrivals: Sendable, Equatable {
    case poisson
    case constant
    /// Gamma-distributed gaps with this coefficient of variation (1 is Poisson; above 1 bursty).
    case gamma(cv: Double)
    /// Explicit times (seconds from the start) and samples per query, e.g. a production trace.
    case trace([(seconds: Double, samples: Int)])

    public static func == (a: Arrivals, b: Arrivals) -> Bool {
        switch (a, b) {
        case (.poisson, .poisson), (.constant, .constant): true
        case (.gamma(let x), .gamma(let y)): x == y
        case (.trace(let x), .trace(let y)):
            x.map(\.seconds) == y.map(\.seconds) && x.map(\.samples) == y.map(\.samples)
        default: false
        }
    }
}

public struct LoadSettings: Sendable {
    public var scenario: LoadScenario = .singleStream
    /// Target queries per second (server scenario).
    public var rate = 10.0
    public var arrivals: Arrivals = .poisson
    /// Run at least this long and at least `minQueries` queries (LoadGen: both must be met).
    public var minDurationSeconds = 1.0
    public var minQueries = 100
    /// Stop here even if the duration is not reached (bounds a test).
    public var maxQueries = 1_000_000
    /// The server scenario's p99 bound, in seconds.
    public var latencyBoundSeconds = 0.01
    public var samplesPerQuery = 8
    public var offlineSamples = 1024
    public var seed: UInt64 = 1
    /// Waiting for stragglers after the last query is issued (a run always stops by itself).
    public var drainSeconds = 60.0

    public init() {}
}

/// A load run's summary, like LoadGen's: latency percentiles from each query's scheduled time, the metric, the
/// early-stopping bound, and VALID/INVALID with the reasons.
public struct LoadResult: Sendable, Codable, Equatable {
    public var scenario: String
    public var queries: Int
    public var samples: Int
    public var failed: Int
    public var durationSeconds: Double
    /// Milliseconds: min, mean, max and the percentiles 50, 90, 95, 97, 99, 99.9.
    public var latencyMs: [String: Double]
    /// The scenario's tail percentile (90 single-stream, 99 otherwise) and LoadGen's early-stopping bound of it.
    public var tailPercentile: Double
    public var earlyStopping: EarlyStopping.Estimate
    public var scheduledQPS: Double?
    public var achievedQPS: Double
    public var samplesPerSecond: Double
    /// Queries issued more than 1 ms (or a tenth of the latency bound) after their scheduled time, and the worst
    /// delay; past 5% of the queries the run is INVALID (the generator could not keep its schedule).
    public var lateIssues: Int
    public var worstLateMs: Double
    public var valid: Bool
    public var reasons: [String]
    /// The scenario's metric in words, e.g. "p90 2.31 ms" or "120 queries/s".
    public var metric: String
}

public enum LoadGen {
    /// Gaps between arrivals for `count` queries at `rate` per second, from a seeded generator.
    public static func schedule(count: Int, rate: Double, arrivals: Arrivals, seed: UInt64) -> [(UInt64, Int)] {
        var generator = SplitMix64(seed: seed)
        func uniform() -> Double { (Double(generator.next() >> 11) + 0.5) / Double(1 << 53) }
        func standardGamma(_ shape: Double) -> Double {
            // Marsaglia and Tsang; shape < 1 boosted by U^(1/shape).
            if shape < 1 { return standardGamma(shape + 1) * pow(uniform(), 1 / shape) }
            let d = shape - 1.0 / 3, c = 1 / (9 * d).squareRoot()
            while true {
                var x = 0.0, v = 0.0
                repeat {
                    // Box-Muller normal.
                    x = (-2 * log(uniform())).squareRoot() * cos(2 * Double.pi * uniform())
                    v = 1 + c * x
                } while v <= 0
                v = v * v * v
                let u = uniform()
                if u < 1 - 0.0331 * x * x * x * x || log(u) < 0.5 * x * x + d * (1 - v + log(v)) { return d * v }
            }
        }
        var times: [(UInt64, Int)] = []
        times.reserveCapacity(count)
        var t = 0.0
        switch arrivals {
        case .trace(let entries):
            for entry in entries.prefix(count) {
                times.append((UInt64(max(entry.seconds, 0) * 1e9), max(entry.samples, 1)))
            }
            return times
        default: break
        }
        let mean = 1 / rate
        for _ in 0..<count {
            times.append((UInt64(t * 1e9), 1))
            switch arrivals {
            case .constant: t += mean
            case .poisson: t += -log(uniform()) * mean
            case .gamma(let cv):
                let shape = 1 / max(cv * cv, 1e-6)
                t += standardGamma(shape) * mean / shape
            case .trace: break
            }
        }
        return times
    }

    /// Runs one scenario against `target`.
    public static func run(_ target: any LoadTarget, _ settings: LoadSettings) -> LoadResult {
        let recorder = Recorder()
        let start = MonotonicClock.nanoseconds()
        var issued = 0, samples = 0
        var late = 0
        var worstLate: UInt64 = 0
        let minimum = UInt64(settings.minDurationSeconds * 1e9)
        switch settings.scenario {
        case .singleStream, .multiStream:
            let perQuery = settings.scenario == .singleStream ? 1 : max(settings.samplesPerQuery, 1)
            while issued < settings.maxQueries
                && (issued < settings.minQueries || MonotonicClock.nanoseconds() - start < minimum)
            {
                let semaphore = Semaphore()
                let scheduled = MonotonicClock.nanoseconds()
                target.issue(query: issued, samples: perQuery) { ok in
                    recorder.record(scheduled: scheduled, ok: ok)
                    semaphore.signal()
                }
                semaphore.wait()
                issued += 1
                samples += perQuery
            }
        case .offline:
            let total = max(settings.offlineSamples, 1)
            let group = Semaphore()
            target.issue(query: 0, samples: total) { ok in
                recorder.record(scheduled: start, ok: ok)
                group.signal()
            }
            group.wait()
            issued = 1
            samples = total
        case .server:
            var count = min(
                settings.maxQueries,
                max(settings.minQueries, Int((settings.rate * settings.minDurationSeconds).rounded(.up))))
            // A trace replays whole (up to --max-queries): its length, not the rate, sets the count.
            if case .trace(let entries) = settings.arrivals { count = min(settings.maxQueries, entries.count) }
            let times = schedule(count: count, rate: settings.rate, arrivals: settings.arrivals, seed: settings.seed)
            let origin = MonotonicClock.nanoseconds() + 1_000_000
            // Late: issued more than 1 ms, or a tenth of the latency bound, after its scheduled time.
            let lateness = UInt64(max(1e-3, settings.latencyBoundSeconds / 10) * 1e9)
            for (index, (offset, perQuery)) in times.enumerated() {
                let scheduled = origin + offset
                sleepUntil(scheduled)
                let now = MonotonicClock.nanoseconds()
                if now > scheduled + lateness {
                    late += 1
                    worstLate = max(worstLate, now - scheduled)
                }
                target.issue(query: index, samples: perQuery) { ok in recorder.record(scheduled: scheduled, ok: ok) }
                issued += 1
                samples += perQuery
            }
            recorder.waitFor(issued, seconds: settings.drainSeconds)
        }
        let end = MonotonicClock.nanoseconds()
        return summarize(
            settings, recorder: recorder, issued: issued, samples: samples, seconds: Double(end - start) / 1e9,
            late: late, worstLate: worstLate)
    }

    static func summarize(
        _ settings: LoadSettings, recorder: Recorder, issued: Int, samples: Int, seconds: Double, late: Int,
        worstLate: UInt64
    ) -> LoadResult {
        let (latencies, failed) = recorder.snapshot()
        let ms = latencies.map { Double($0) / 1e6 }
        var table: [String: Double] = [:]
        if !ms.isEmpty {
            let s = Statistics(ms)
            table = ["min": s.minimum, "max": s.maximum, "mean": s.mean]
            // LoadGen's percentile: the value at index floor(n · q) of the sorted latencies.
            let sorted = ms.sorted()
            for q in [50.0, 90, 95, 97, 99, 99.9] {
                table["p\(q == 99.9 ? "99.9" : String(Int(q)))"] =
                    sorted[min(sorted.count - 1, Int(Double(sorted.count) * q / 100))]
            }
        }
        let tail = settings.scenario == .singleStream ? 90.0 : 99.0
        let early = EarlyStopping.estimate(ms, percentile: tail)
        var reasons: [String] = []
        let completed = ms.count
        if completed + failed < issued {
            reasons.append("\(issued - completed - failed) queries did not complete within \(settings.drainSeconds) s")
        }
        if failed > 0 { reasons.append("\(failed) queries failed") }
        if settings.scenario != .offline {
            if seconds < settings.minDurationSeconds && issued < settings.maxQueries {
                reasons.append("ran \(seconds) s, under the minimum duration")
            }
            if issued < settings.minQueries {
                reasons.append("\(issued) queries, under the minimum of \(settings.minQueries)")
            }
            if early.value == nil && settings.scenario != .server {
                reasons.append(
                    "the p\(Int(tail)) claim needs at least \(early.runsNeeded) queries (LoadGen's early stopping); "
                        + "ran \(completed)")
            }
        }
        var scheduledQPS: Double?
        var metric: String
        switch settings.scenario {
        case .singleStream, .multiStream:
            metric =
                early.value.map { "p\(Int(tail)) \(format($0)) ms (early-stopping bound)" } ?? "no p\(Int(tail)) claim"
        case .server:
            scheduledQPS = settings.rate
            let bound = settings.latencyBoundSeconds * 1e3
            // LoadGen: the p99 (the value at index floor(0.99 n)) within the bound, and early stopping: with t
            // queries over the bound, at least h(t) + t queries.
            if let p99 = table["p99"], p99 > bound {
                reasons.append("p99 \(format(p99)) ms exceeds the latency bound \(format(bound)) ms")
            }
            let overshoots = ms.filter { $0 > bound }.count
            let needed = EarlyStopping.minimumPassing(overshoots: overshoots, percentile: 99) + overshoots
            if completed < needed {
                reasons.append(
                    "\(overshoots) queries over the bound need \(needed) queries for a p99 claim (LoadGen); ran \(completed)"
                )
            }
            if late > max(1, issued / 20) {
                reasons.append(
                    "the load generator fell behind its schedule: \(late) queries issued late (worst "
                        + "\(format(Double(worstLate) / 1e6)) ms); this machine cannot issue \(format(settings.rate))/s"
                )
            }
            metric = "\(format(settings.rate)) scheduled queries/s"
        case .offline:
            metric = "\(format(Double(samples) / max(seconds, 1e-9))) samples/s"
        }
        return LoadResult(
            scenario: settings.scenario.rawValue, queries: issued, samples: samples, failed: failed,
            durationSeconds: seconds, latencyMs: table, tailPercentile: tail, earlyStopping: early,
            scheduledQPS: scheduledQPS, achievedQPS: Double(completed) / max(seconds, 1e-9),
            samplesPerSecond: Double(samples) / max(seconds, 1e-9), lateIssues: late,
            worstLateMs: Double(worstLate) / 1e6, valid: reasons.isEmpty, reasons: reasons, metric: metric)
    }

    /// LoadGen's FindPeakPerformance for the server scenario: the highest rate whose run is valid (p99 within
    /// the bound), found by doubling from `start` until a run fails, then bisecting `steps` times. Returns the
    /// peak (nil when even `start` fails) and every run made.
    public static func findPeak(
        _ target: any LoadTarget, _ settings: LoadSettings, start: Double, steps: Int = 6, maxRate: Double = 1e6,
        progress: (LoadResult) -> Void = { _ in }
    ) -> (peak: Double?, runs: [LoadResult]) {
        var runs: [LoadResult] = []
        func attempt(_ rate: Double) -> Bool {
            var s = settings
            s.scenario = .server
            s.rate = rate
            let result = run(target, s)
            runs.append(result)
            progress(result)
            return result.valid
        }
        // Bounds: double from `start` while runs hold; if `start` fails, halve until one holds (down to 1/1000).
        var low = 0.0, high = 0.0
        if attempt(start) {
            low = start
            high = start * 2
            while high <= maxRate && attempt(high) {
                low = high
                high *= 2
            }
        } else {
            high = start
            var rate = start / 2
            while rate >= start / 1024 {
                if attempt(rate) {
                    low = rate
                    break
                }
                high = rate
                rate /= 2
            }
        }
        guard low > 0 else { return (nil, runs) }
        // Bisection between the last rate that held and the first that did not.
        for _ in 0..<steps {
            let middle = (low + high) / 2
            if attempt(middle) { low = middle } else { high = middle }
        }
        return (low > 0 ? low : nil, runs)
    }

    static func sleepUntil(_ deadline: UInt64) {
        var spec = timespec(tv_sec: Int(deadline / 1_000_000_000), tv_nsec: Int(deadline % 1_000_000_000))
        while clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &spec, nil) == EINTR {}
    }

    public static func format(_ value: Double) -> String {
        var text = String((value * 1000).rounded() / 1000)
        if text.hasSuffix(".0") { text.removeLast(2) }
        return text
    }
}

/// A pthread mutex and condition variable at fixed addresses (a stored property passed with `&` has no
/// guaranteed stable address), shared by the recorder and the semaphore.
final class Monitor: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let cond = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    init() {
        mutex.initialize(to: pthread_mutex_t())
        cond.initialize(to: pthread_cond_t())
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(cond, nil)
    }

    deinit {
        pthread_cond_destroy(cond)
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        cond.deallocate()
    }

    /// Runs `body` holding the mutex; `body` may call `wait`.
    func locked<T>(_ body: () -> T) -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return body()
    }

    /// Waits on the condition (the mutex held), at most until `deadline` (CLOCK_REALTIME) when given.
    func wait(until deadline: timespec? = nil) {
        if var until = deadline {
            pthread_cond_timedwait(cond, mutex, &until)
        } else {
            pthread_cond_wait(cond, mutex)
        }
    }

    func signal() { pthread_cond_signal(cond) }
    func broadcast() { pthread_cond_broadcast(cond) }
}

/// Latencies recorded from completion threads.
final class Recorder: @unchecked Sendable {
    private let monitor = Monitor()
    private var latencies: [UInt64] = []
    private var failures = 0

    func record(scheduled: UInt64, ok: Bool) {
        let now = MonotonicClock.nanoseconds()
        monitor.locked {
            if ok { latencies.append(now &- scheduled) } else { failures += 1 }
            monitor.broadcast()
        }
    }

    func snapshot() -> ([UInt64], Int) { monitor.locked { (latencies, failures) } }

    /// Waits until `count` queries have completed or failed, at most `seconds`.
    func waitFor(_ count: Int, seconds: Double) {
        let deadline = MonotonicClock.nanoseconds() + UInt64(max(seconds, 0) * 1e9)
        monitor.locked {
            while latencies.count + failures < count && MonotonicClock.nanoseconds() < deadline {
                var until = timespec()
                clock_gettime(CLOCK_REALTIME, &until)
                until.tv_nsec += 10_000_000
                if until.tv_nsec >= 1_000_000_000 {
                    until.tv_sec += 1
                    until.tv_nsec -= 1_000_000_000
                }
                monitor.wait(until: until)
            }
        }
    }
}

/// A counting semaphore on pthreads (no Foundation here).
final class Semaphore: @unchecked Sendable {
    private let monitor = Monitor()
    private var count = 0

    func signal() {
        monitor.locked {
            count += 1
            monitor.signal()
        }
    }

    func wait() {
        monitor.locked {
            while count == 0 { monitor.wait() }
            count -= 1
        }
    }
}
