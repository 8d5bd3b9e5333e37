import ArgumentParser
import InferenceTensor

/// Checks for the numbers, lists and paths users pass as options: one place for the limits, each message naming
/// the option and the limit. Runs in `validate()`, before any model is loaded or measured.
enum OptionChecks {
    /// Most timed runs per measurement: every run's timings are kept in memory.
    static let maxRepeats = 1_000_000
    /// Most untimed warm-up runs.
    static let maxWarmup = 100_000
    /// Largest batch size a sweep accepts (the generated inputs must also fit in `maxGeneratedInputBytes`).
    static let maxBatch = 1 << 20
    /// Largest input tensor `bench`, `calibrate` and `profile` generate for one point.
    static let maxGeneratedInputBytes = 1 << 30

    /// - Throws: `ValidationError` naming the option when `value` lies outside `range`.
    static func count(_ value: Int, _ option: String, _ range: ClosedRange<Int>) throws {
        guard range.contains(value) else {
            throw ValidationError("\(option) must be between \(range.lowerBound) and \(range.upperBound); got \(value)")
        }
    }

    /// A comma-separated list of batch sizes: positive integers up to `maxBatch`, no duplicates, not empty.
    /// - Throws: `ValidationError` naming the option and the bad entry.
    static func batchSizes(_ text: String, option: String = "--batch-sizes") throws -> [Int] {
        let items = text.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        guard !text.isEmpty, !items.isEmpty else {
            throw ValidationError("\(option) is empty; give positive integers, e.g. 1,8,64")
        }
        var sizes: [Int] = []
        for item in items {
            guard let value = Int(item), value >= 1, value <= maxBatch else {
                throw ValidationError(
                    "\(option): '\(item)' is not a batch size; give integers from 1 to \(maxBatch), e.g. 1,8,64")
            }
            guard !sizes.contains(value) else {
                throw ValidationError("\(option): batch size \(value) is listed twice")
            }
            sizes.append(value)
        }
        return sizes
    }

    /// A comma-separated list of device names: not empty, no empty or repeated entries.
    /// - Throws: `ValidationError` naming the option.
    static func deviceList(_ text: String, option: String = "--devices") throws -> [String] {
        let items = text.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        guard !text.isEmpty, items.allSatisfy({ !$0.isEmpty }) else {
            throw ValidationError("\(option) is empty or has an empty entry; give e.g. cpu,opencl:0")
        }
        for (index, item) in items.enumerated() where items[..<index].contains(item) {
            throw ValidationError("\(option): device '\(item)' is listed twice")
        }
        return items
    }

    /// An output path that a run will write: checked before the run, so a folder, a device or a FIFO in the way
    /// (or a missing folder) fails at once instead of after the measurement.
    /// - Throws: `ValidationError` naming the option and the problem.
    static func outputTarget(_ path: String, option: String) throws {
        do { try UserFiles.checkOutputTarget(path) } catch {
            throw ValidationError("\(option) \(error)")
        }
    }
}
