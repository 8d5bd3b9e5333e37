/// Compares float arrays with a relative and an absolute tolerance, NumPy's `allclose` rule:
/// |actual - expected| <= absolute + relative * |expected|; NaNs must match NaNs.
public struct ToleranceReport: CustomStringConvertible, Sendable {
    public var count: Int
    public var maxAbsoluteError: Double
    public var maxRelativeError: Double
    /// The first index outside tolerance, with both values, if any.
    public var firstMismatch: (index: Int, actual: Float, expected: Float)?
    public var countMismatch: String?

    public var passed: Bool { firstMismatch == nil && countMismatch == nil }

    public var description: String {
        if let countMismatch { return countMismatch }
        var text = "\(count) values, max abs error \(maxAbsoluteError), max rel error \(maxRelativeError)"
        if let m = firstMismatch {
            text += "; first mismatch at index \(m.index): got \(m.actual), expected \(m.expected)"
        }
        return text
    }

    public static func compare(
        _ actual: [Float], _ expected: [Float], relative: Double = 1e-4, absolute: Double = 1e-6
    ) -> ToleranceReport {
        var report = ToleranceReport(count: actual.count, maxAbsoluteError: 0, maxRelativeError: 0)
        guard actual.count == expected.count else {
            report.countMismatch = "count mismatch: got \(actual.count) values, expected \(expected.count)"
            return report
        }
        for i in actual.indices {
            let a = Double(actual[i])
            let e = Double(expected[i])
            if a.isNaN || e.isNaN {
                if a.isNaN != e.isNaN && report.firstMismatch == nil {
                    report.firstMismatch = (i, actual[i], expected[i])
                }
                continue
            }
            if a == e { continue }
            let error = abs(a - e)
            report.maxAbsoluteError = max(report.maxAbsoluteError, error)
            if e != 0 { report.maxRelativeError = max(report.maxRelativeError, error / abs(e)) }
            if error > absolute + relative * abs(e) && report.firstMismatch == nil {
                report.firstMismatch = (i, actual[i], expected[i])
            }
        }
        return report
    }

    /// Compares float32 sums of products (dot products, GEMM, convolution) with their exact value under the
    /// forward error bound that holds for every summation order, with or without FMA (Higham, *Accuracy and
    /// Stability of Numerical Algorithms*, 2nd ed., §3.1): |computed − exact| ≤ γₙ · Σ|terms|, where
    /// γₙ = n·u / (1 − n·u), u = 2⁻²⁴ and n is the number of terms. `magnitudes[i]` is Σ|terms| of element i.
    /// `computations` is 2 when `expected` is itself a float32 result rather than the exact sum.
    /// A wrong index or a dropped term moves a result by about one term, far outside the bound.
    public static func compareSums(
        _ actual: [Float], _ expected: [Double], magnitudes: [Double], terms: Int, computations: Double = 1
    ) -> ToleranceReport {
        var report = ToleranceReport(count: actual.count, maxAbsoluteError: 0, maxRelativeError: 0)
        guard actual.count == expected.count, actual.count == magnitudes.count else {
            report.countMismatch =
                "count mismatch: got \(actual.count) values, expected \(expected.count), \(magnitudes.count) magnitudes"
            return report
        }
        let u = 0x1p-24
        let n = Double(terms + 1)  // one more rounding: the result stored as float32
        let gamma = n * u / (1 - n * u)
        for i in actual.indices {
            let a = Double(actual[i]), e = expected[i]
            if a.isNaN || e.isNaN {
                if a.isNaN != e.isNaN && report.firstMismatch == nil { report.firstMismatch = (i, actual[i], Float(e)) }
                continue
            }
            let error = abs(a - e)
            report.maxAbsoluteError = max(report.maxAbsoluteError, error)
            if e != 0 { report.maxRelativeError = max(report.maxRelativeError, error / abs(e)) }
            let bound = computations * gamma * magnitudes[i] + Double(Float.leastNormalMagnitude)
            if error > bound && report.firstMismatch == nil { report.firstMismatch = (i, actual[i], Float(e)) }
        }
        return report
    }

    private init(count: Int, maxAbsoluteError: Double, maxRelativeError: Double) {
        self.count = count
        self.maxAbsoluteError = maxAbsoluteError
        self.maxRelativeError = maxRelativeError
    }
}
