import Foundation
import InferenceBench
import InferenceRuntime
import Testing

/// A server whose capacity is known: one worker that spends exactly `service` seconds per sample (busy waiting on
/// the monotonic clock, not sleeping, so the cost does not depend on timer slack), queries served in order.
final class FixedCostTarget: LoadTarget, @unchecked Sendable {
    let service: UInt64
    private let condition = NSCondition()
    private var queue: [(Int, @Sendable (Bool) -> Void)] = []
    private var stopping = false

    init(serviceSeconds: Double) {
        service = UInt64(serviceSeconds * 1e9)
        let thread = Thread { [self] in
            while true {
                condition.lock()
                while queue.isEmpty && !stopping { condition.wait() }
                if queue.isEmpty {
                    condition.unlock()
                    return
                }
                let (samples, done) = queue.removeFirst()
                condition.unlock()
                let until = MonotonicClock.nanoseconds() + service * UInt64(samples)
                while MonotonicClock.nanoseconds() < until {}
                done(true)
            }
        }
        thread.start()
    }

    func stop() {
        condition.lock()
        stopping = true
        condition.broadcast()
        condition.unlock()
    }

    func issue(query: Int, samples: Int, done: @escaping @Sendable (Bool) -> Void) {
        condition.lock()
        queue.append((samples, done))
        condition.signal()
        condition.unlock()
    }
}

struct LoadGenTests {
    @Test func schedulesHaveTheirRateAndShape() {
        let poisson = LoadGen.schedule(count: 20_000, rate: 1000, arrivals: .poisson, seed: 3)
        let span = Double(poisson.last?.0 ?? 0) / 1e9
        #expect(abs(span - 20) < 0.6)  // 20,000 arrivals at 1000/s: 20 s, within 3%
        func gaps(_ s: [(UInt64, Int)]) -> [Double] { zip(s.dropFirst(), s).map { Double($0.0 - $1.0) / 1e9 } }
        let poissonGaps = Statistics(gaps(poisson))
        #expect(abs(poissonGaps.coefficientOfVariation - 1) < 0.05)  // exponential gaps: CV 1
        let bursty = Statistics(gaps(LoadGen.schedule(count: 20_000, rate: 1000, arrivals: .gamma(cv: 3), seed: 3)))
        #expect(abs(bursty.coefficientOfVariation - 3) < 0.3)
        #expect(abs(bursty.mean - 0.001) < 0.0001)
        let constant = gaps(LoadGen.schedule(count: 100, rate: 50, arrivals: .constant, seed: 3))
        #expect(constant.allSatisfy { abs($0 - 0.02) < 1e-6 })
        // Seeded: the same schedule twice.
        #expect(
            LoadGen.schedule(count: 50, rate: 10, arrivals: .poisson, seed: 9).map(\.0)
                == LoadGen.schedule(count: 50, rate: 10, arrivals: .poisson, seed: 9).map(\.0))
        let trace = LoadGen.schedule(count: 10, rate: 1, arrivals: .trace([(0, 1), (0.5, 4)]), seed: 1)
        #expect(trace.map(\.0) == [0, 500_000_000] && trace.map(\.1) == [1, 4])
    }

    /// The peak search on a server of known capacity (1 ms per query: 1000/s): it finds a rate that holds a p99 of
    /// 20 ms, not far above the capacity (a half-second run lets a slightly overloaded server pass before its
    /// queue has grown: why LoadGen's real runs last minutes), and every run well past the capacity is invalid
    /// for its latency. How far below the capacity the peak lands depends on what else shares the two cores
    /// (on an idle machine 450-1050/s), so the test does not bound it from below.
    @Test func findsThePeakOfAKnownCapacity() {
        let target = FixedCostTarget(serviceSeconds: 0.001)
        defer { target.stop() }
        var settings = LoadSettings()
        settings.latencyBoundSeconds = 0.02
        settings.minDurationSeconds = 0.3
        settings.minQueries = 500
        settings.drainSeconds = 10
        let (peak, runs) = LoadGen.findPeak(target, settings, start: 200, steps: 4)
        let rate = peak ?? 0
        let tried = runs.map { "\($0.scheduledQPS ?? 0): \($0.valid) p99 \($0.latencyMs["p99"] ?? -1)" }
        #expect(rate > 0 && rate <= 1150, "peak \(rate) over \(tried)")
        // Runs past the capacity are invalid because of the bound, with the reason.
        let overloaded = runs.filter { ($0.scheduledQPS ?? 0) > 1100 }
        #expect(overloaded.allSatisfy { !$0.valid && $0.reasons.contains { $0.contains("exceeds the latency bound") } })
    }

    @Test func singleStreamAndOfflineMetrics() {
        let target = FixedCostTarget(serviceSeconds: 0.0002)
        defer { target.stop() }
        var settings = LoadSettings()
        settings.minDurationSeconds = 0.05
        settings.minQueries = 100
        let single = LoadGen.run(target, settings)
        #expect(single.queries >= 100 && single.failed == 0)
        #expect(single.valid == (single.queries >= EarlyStopping.minimumRuns(percentile: 90)))
        #expect((single.latencyMs["p50"] ?? 0) >= 0.2)
        settings.scenario = .offline
        settings.offlineSamples = 200
        let offline = LoadGen.run(target, settings)
        #expect(offline.samples == 200 && offline.valid)
        #expect(offline.samplesPerSecond <= 5000 * 1.01)  // 0.2 ms per sample: at most 5000/s
        settings.scenario = .multiStream
        settings.minQueries = 20
        let multi = LoadGen.run(target, settings)
        #expect(multi.samples == multi.queries * 8)
        #expect(!multi.valid && multi.reasons.contains { $0.contains("662") })  // LoadGen's MultiStream minimum
    }
}
