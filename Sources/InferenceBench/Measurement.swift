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
    }

    /// Runs `body` `warmup` times untimed, then `repeats` times (at least once), keeping each run's timings.
    /// - Throws: the first error `body` throws.
    public static func repeatRuns(warmup: Int, repeats: Int, _ body: () throws -> RunTimings) throws -> Samples {
        for _ in 0..<max(0, warmup) { _ = try body() }
        var runs: [RunTimings] = []
        runs.reserveCapacity(max(1, repeats))
        for _ in 0..<max(1, repeats) { runs.append(try body()) }
        return Samples(runs: runs)
    }
}
