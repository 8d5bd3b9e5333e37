import InferenceRuntime

/// Repeated timing of a run: warm-up first, then timed repetitions, each timing kept apart.
public enum Measurement {
    /// The samples of one measured loop.
    public struct Samples: Sendable {
        /// Per-repetition timings, in nanoseconds, as the body reported them.
        public var runs: [RunTimings]

        public var total: Statistics { Statistics(runs.map { Double($0.totalNanoseconds) }) }
        public var copyIn: Statistics { Statistics(runs.map { Double($0.copyInNanoseconds) }) }
        public var compute: Statistics { Statistics(runs.map { Double($0.computeNanoseconds) }) }
        public var copyOut: Statistics { Statistics(runs.map { Double($0.copyOutNanoseconds) }) }
        /// The phases as device events timed them (copy in, compute, copy out); nil unless every run has them.
        public var device: (copyIn: Statistics, compute: Statistics, copyOut: Statistics)? {
            let timings = runs.compactMap(\.device)
            guard !timings.isEmpty, timings.count == runs.count else { return nil }
            return (
                Statistics(timings.map { Double($0.copyInNanoseconds) }),
                Statistics(timings.map { Double($0.computeNanoseconds) }),
                Statistics(timings.map { Double($0.copyOutNanoseconds) })
            )
        }
    }

    /// Runs `body` `warmup` times untimed, then `repeats` times (at least once), keeping each run's timings.
    /// - Throws: the first error `body` throws.
    public static func repeatRuns(warmup: Int, repeats: Int, _ body: () throws -> RunTimings) throws -> Samples {
        try repeatRuns(warmup: .count(warmup), repeats: .count(repeats), body)
    }

    /// How long a phase lasts: a number of runs, or runs until a time has passed (at least one run).
    public enum Budget: Sendable, Equatable {
        case count(Int)
        case seconds(Double)
    }

    /// Warm-up then timed repetitions, each bounded by a count or a time budget; a time budget keeps going to
    /// `minimumRuns` timed runs and stops at `maximumRuns`.
    /// - Throws: the first error `body` throws.
    public static func repeatRuns(
        warmup: Budget, repeats: Budget, minimumRuns: Int = 1, maximumRuns: Int = .max,
        _ body: () throws -> RunTimings
    ) throws -> Samples {
        func loop(_ budget: Budget, floor: Int, _ each: (RunTimings) -> Void) throws {
            switch budget {
            case .count(let n):
                for _ in 0..<max(0, n) { each(try body()) }
            case .seconds(let limit):
                let start = MonotonicClock.nanoseconds()
                var made = 0
                repeat {
                    each(try body())
                    made += 1
                } while made < maximumRuns
                    && (made < floor || Double(MonotonicClock.nanoseconds() - start) < limit * 1e9)
            }
        }
        try loop(warmup, floor: 0) { _ in }
        var runs: [RunTimings] = []
        try loop(repeats, floor: minimumRuns) { runs.append($0) }
        if runs.isEmpty { runs.append(try body()) }
        return Samples(runs: runs)
    }

    /// The wall time of `body` as a run's total (all of it counted as compute): for timing what returns no
    /// `RunTimings` of its own, or timing a run from outside as another runtime's harness does.
    public static func wallTime(_ body: () throws -> Void) rethrows -> RunTimings {
        let start = MonotonicClock.nanoseconds()
        try body()
        return RunTimings(
            copyInNanoseconds: 0, computeNanoseconds: MonotonicClock.nanoseconds() - start, copyOutNanoseconds: 0,
            planNanoseconds: 0)
    }
}

extension Measurement {
    /// Several bodies (one per device) measured in interleaved rounds, so drift in the machine's load hits every
    /// body alike: `warmup` untimed runs each, then `rounds` rounds that split `repeats` runs per body, then more
    /// rounds until every body has spent `minimumSeconds` in timed runs (or one has made `maximumRuns`).
    /// `onRound` is told each finished round's number.
    /// - Throws: the first error a body throws.
    public static func interleaved(
        _ bodies: [() throws -> RunTimings], warmup: Int, repeats: Int, rounds: Int, minimumSeconds: Double = 0,
        maximumRuns: Int = 1_000_000, onRound: (Int) -> Void = { _ in }
    ) throws -> [Samples] {
        for body in bodies { for _ in 0..<max(0, warmup) { _ = try body() } }
        let rounds = max(1, rounds)
        var runs = [[RunTimings]](repeating: [], count: bodies.count)
        var round = 0
        while true {
            let count = max(1, repeats / rounds + (round < repeats % rounds ? 1 : 0))
            for (index, body) in bodies.enumerated() {
                for _ in 0..<count { runs[index].append(try body()) }
            }
            round += 1
            onRound(round)
            let shortest = runs.map { $0.reduce(0.0) { $0 + Double($1.totalNanoseconds) } }.min() ?? 0
            if round >= rounds && (shortest >= minimumSeconds * 1e9 || runs.contains { $0.count >= maximumRuns }) {
                break
            }
        }
        return runs.map { Samples(runs: $0) }
    }
}
