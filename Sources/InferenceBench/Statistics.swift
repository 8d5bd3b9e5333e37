/// Summary statistics of a sample of durations (or any values), computed once from the sorted sample.
public struct Statistics: Sendable, Equatable {
    public let count: Int
    public let mean: Double
    /// Sample standard deviation (n - 1 in the denominator); 0 for fewer than two values.
    public let standardDeviation: Double
    public let minimum: Double
    public let maximum: Double
    private let sorted: [Double]

    /// - Precondition: `values` is not empty.
    public init(_ values: [Double]) {
        precondition(!values.isEmpty, "statistics of an empty sample")
        sorted = values.sorted()
        count = values.count
        let mean = values.reduce(0, +) / Double(values.count)
        self.mean = mean
        let squares = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) }
        standardDeviation = values.count > 1 ? (squares / Double(values.count - 1)).squareRoot() : 0
        minimum = sorted[0]
        maximum = sorted[sorted.count - 1]
    }

    /// The q-th percentile (0...100), linearly interpolated between closest ranks (NumPy's default method).
    public func percentile(_ q: Double) -> Double {
        let clamped = min(max(q, 0), 100)
        let position = clamped / 100 * Double(count - 1)
        let lower = Int(position.rounded(.down))
        let upper = min(lower + 1, count - 1)
        let fraction = position - Double(lower)
        return sorted[lower] + (sorted[upper] - sorted[lower]) * fraction
    }

    public var median: Double { percentile(50) }

    /// The value of 1-based rank `rank` in ascending order (clamped to the sample).
    public func sortedValue(rank: Int) -> Double { sorted[min(max(rank, 1), count) - 1] }
}
