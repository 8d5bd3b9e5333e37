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

    /// Warm-up then timed repetitions, each bounded by a count or a time budget.
    /// - Throws: the first error `body` throws.
    public static func repeatRuns(warmup: Budget, repeats: Budget, _ body: () throws -> RunTimings) throws -> Samples {
        func loop(_ budget: Budget, _ each: (RunTimings) -> Void) throws {
            switch budget {
            case .count(let n):
                for _ in 0..<max(0, n) { each(try body()) }
            case .seconds(let limit):
                let start = MonotonicClock.nanoseconds()
                repeat { each(try body()) } while Double(MonotonicClock.nanoseconds() - start) < limit * 1e9
            }
        }
        try loop(warmup) { _ in }
        var runs: [RunTimings] = []
        try loop(repeats) { runs.append($0) }
        if runs.isEmpty { runs.append(try body()) }
        return Samples(runs: runs)
    }
}
