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

    private init(count: Int, maxAbsoluteError: Double, maxRelativeError: Double) {
        self.count = count
        self.maxAbsoluteError = maxAbsoluteError
        self.maxRelativeError = maxRelativeError
    }
}
