import InferenceTensor

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// The binomial distribution's cumulative probabilities, summed in log space so that large counts (a p50 of
/// 100,000 runs) neither overflow nor underflow term by term.
public enum Binomial {
    /// P(X <= k) for X ~ Binomial(n, q); 0 for k < 0, 1 for k >= n.
    public static func cdf(_ k: Int, trials n: Int, probability q: Double) -> Double {
        if k < 0 { return 0 }
        if k >= n || q <= 0 { return 1 }
        if q >= 1 { return 0 }
        var total = 0.0
        var logTerm = Double(n) * log1p(-q)
        let logOdds = log(q) - log1p(-q)
        for x in 0...k {
            total += exp(logTerm)
            logTerm += log(Double(n - x)) - log(Double(x + 1)) + logOdds
        }
        return min(total, 1)
    }

    /// P(X <= k) for every k in 0..<n+1, built in one pass.
    static func cumulative(trials n: Int, probability q: Double) -> [Double] {
        var result = [Double](repeating: 1, count: n + 1)
        guard q > 0, q < 1 else {
            if q >= 1 { for k in 0..<n { result[k] = 0 } }
            return result
        }
        var total = 0.0
        var logTerm = Double(n) * log1p(-q)
        let logOdds = log(q) - log1p(-q)
        for x in 0...n {
            total += exp(logTerm)
            result[x] = min(total, 1)
            if x < n { logTerm += log(Double(n - x)) - log(Double(x + 1)) + logOdds }
        }
        result[n] = 1
        return result
    }
}

/// A two-sided confidence interval; a side is nil when the sample is too small to bound it at that confidence
/// (a p99 from 20 runs has no upper bound: the slowest of 20 runs is below the true p99 with probability 0.82).
public struct ConfidenceInterval: Sendable, Equatable, Codable {
    public var lower: Double?
    public var upper: Double?
    public var confidence: Double

    public init(lower: Double?, upper: Double?, confidence: Double) {
        self.lower = lower
        self.upper = upper
        self.confidence = confidence
    }
}

extension Statistics {
    /// The distribution-free (order-statistic) confidence interval of the q-th percentile (0...100): the sample
    /// values at the ranks between which the true percentile lies with at least `confidence`, from the binomial
    /// distribution of the count of runs below it. No assumption about the shape of the timing distribution.
    public func percentileInterval(_ q: Double, confidence: Double = 0.95) -> ConfidenceInterval {
        let p = min(max(q / 100, 0), 1)
        let alpha = (1 - confidence) / 2
        let cdf = Binomial.cumulative(trials: count, probability: p)
        // Order statistics x_(l) <= x_(u) (1-based): P(x_(l) <= ξ <= x_(u)) >= P(l <= B <= u - 1) = F(u-1) - F(l-1).
        var lower: Double?
        var l = 0
        while l + 1 <= count && cdf[l] <= alpha { l += 1 }  // the largest l with F(l-1) <= alpha
        if l >= 1 { lower = sortedValue(rank: l) }
        var upper: Double?
        if let u = (1...count).first(where: { cdf[$0 - 1] >= 1 - alpha }) { upper = sortedValue(rank: u) }
        return ConfidenceInterval(lower: lower, upper: upper, confidence: confidence)
    }

    /// Standard deviation over mean; 0 for a zero mean.
    public var coefficientOfVariation: Double { mean == 0 ? 0 : standardDeviation / abs(mean) }
}

/// Bootstrap intervals for quantities of two samples.
public enum Bootstrap {
    /// The percentile-bootstrap interval of median(a) / median(b): both samples resampled with replacement
    /// `resamples` times from a fixed seed (so a report is reproducible), the ratio's quantiles taken.
    /// nil when either sample is empty or a resampled median of `b` is 0.
    public static func ratioOfMedians(
        _ a: [Double], _ b: [Double], confidence: Double = 0.95, resamples: Int = 1000, seed: UInt64 = 0x5EED
    ) -> ConfidenceInterval? {
        guard !a.isEmpty, !b.isEmpty, resamples > 0 else { return nil }
        // Each resample costs a pass over its sample: past 20,000 values, every k-th of the sorted sample (its
        // quantiles, which is what a median's resampling distribution depends on) keeps a run bounded.
        func thinned(_ values: [Double]) -> [Double] {
            let sorted = values.sorted()
            guard sorted.count > 20_000 else { return sorted }
            let step = Double(sorted.count) / 20_000
            return (0..<20_000).map { sorted[Int(Double($0) * step)] }
        }
        let sortedA = thinned(a), sortedB = thinned(b)
        var generator = SplitMix64(seed: seed)
        var ratios: [Double] = []
        ratios.reserveCapacity(resamples)
        var countsA = [Int](repeating: 0, count: sortedA.count)
        var countsB = [Int](repeating: 0, count: sortedB.count)
        for _ in 0..<resamples {
            let x = resampledMedian(sortedA, &countsA, &generator)
            let y = resampledMedian(sortedB, &countsB, &generator)
            guard y != 0 else { return nil }
            ratios.append(x / y)
        }
        let statistics = Statistics(ratios)
        let alpha = (1 - confidence) / 2 * 100
        return ConfidenceInterval(
            lower: statistics.percentile(alpha), upper: statistics.percentile(100 - alpha), confidence: confidence)
    }

    /// The median of a resample drawn with replacement: draws are counted per rank of the sorted sample, so the
    /// median is found in one pass without sorting the resample.
    private static func resampledMedian(_ sorted: [Double], _ counts: inout [Int], _ generator: inout SplitMix64)
        -> Double
    {
        let n = sorted.count
        for index in counts.indices { counts[index] = 0 }
        for _ in 0..<n { counts[Int(generator.next() % UInt64(n))] += 1 }
        // The lower and upper middle ranks (equal for odd n), averaged as `Statistics.median` does.
        let lowRank = (n - 1) / 2, highRank = n / 2
        var seen = 0
        var low: Double?
        for (index, count) in counts.enumerated() where count > 0 {
            seen += count
            if low == nil && seen > lowRank { low = sorted[index] }
            if seen > highRank { return ((low ?? sorted[index]) + sorted[index]) / 2 }
        }
        return sorted[n - 1]
    }
}

/// MLPerf LoadGen's early-stopping rule: how many runs a tail-percentile claim needs, and the estimate it
/// supports. With `h` runs under a latency and `t` over it, the claim "the q-th percentile is at most that latency"
/// holds with confidence `c` when P(at most t overshoots in h + t runs | the true percentile is that latency) < 1 - c,
/// i.e. Binomial(h + t, 1 - q).cdf(t) < 1 - c. LoadGen uses c = 0.99 and no tolerance.
public enum EarlyStopping {
    public static let confidence = 0.99

    /// The smallest number of runs under the latency `h` that supports the claim with `overshoots` runs over it.
    public static func minimumPassing(overshoots t: Int, percentile q: Double, confidence c: Double = confidence)
        -> Int
    {
        let p = q / 100
        func passes(_ h: Int) -> Bool {
            let (total, overflow) = h.addingReportingOverflow(t)
            return overflow || Binomial.cdf(t, trials: total, probability: 1 - p) < 1 - c
        }
        var high = max(1, t)
        while !passes(high) {
            let (doubled, overflow) = high.multipliedReportingOverflow(by: 2)
            if overflow { return Int.max / 2 }
            high = doubled
        }
        var low = 0
        while low < high {
            let middle = low + (high - low) / 2
            if passes(middle) { high = middle } else { low = middle + 1 }
        }
        return low
    }

    /// The fewest runs that support any claim about the q-th percentile: LoadGen's minimum, one overshoot
    /// allowed (64 for a p90, 662 for a p99) or none (459 for a p99 with every run under the bound).
    public static func minimumRuns(percentile q: Double, overshoots: Int = 1, confidence c: Double = confidence) -> Int
    {
        minimumPassing(overshoots: overshoots, percentile: q, confidence: c) + overshoots
    }

    /// The early-stopping estimate of the q-th percentile from a sample, as LoadGen's SingleStream and
    /// MultiStream scenarios compute it: the t-th largest value for the largest t whose claim the run count
    /// supports; nil (with the runs needed) when the sample is too small for any claim.
    public static func estimate(_ values: [Double], percentile q: Double, confidence c: Double = confidence)
        -> Estimate
    {
        let n = values.count
        let needed = minimumRuns(percentile: q, overshoots: 1, confidence: c)
        guard n >= needed else { return Estimate(value: nil, overshoots: 0, runs: n, runsNeeded: needed) }
        // h(t) + t grows with t: bisect for the largest t with h(t) + t <= n.
        var low = 1, high = n
        while low < high {
            let middle = low + (high - low + 1) / 2
            if minimumPassing(overshoots: middle, percentile: q, confidence: c) + middle <= n {
                low = middle
            } else {
                high = middle - 1
            }
        }
        let sorted = values.sorted()
        return Estimate(value: sorted[n - low], overshoots: low, runs: n, runsNeeded: needed)
    }

    public struct Estimate: Sendable, Equatable, Codable {
        /// The bound on the percentile this sample supports; nil when it has too few runs.
        public var value: Double?
        /// Runs at or above the estimate (the estimate is the `overshoots`-th largest value).
        public var overshoots: Int
        public var runs: Int
        /// The fewest runs that support a claim (LoadGen: one overshoot allowed).
        public var runsNeeded: Int
    }
}
