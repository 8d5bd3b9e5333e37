import InferenceTensor

/// How far a model's outputs at one precision are from the float32 model's on the same inputs: the numbers a
/// user weighs against the speed a lower precision buys.
public struct Parity: Sendable, Codable, Equatable {
    /// Largest |converted - reference| over every element of the first output.
    public var maxAbsDifference: Double
    /// The same divided by the reference's largest magnitude.
    public var maxRelativeDifference: Double
    /// Predictions compared: rows of the first output (its last axis is the classes) or its elements when the last
    /// axis has one value per row.
    public var predictions: Int
    /// Predictions that changed: a different argmax over the last axis, or a single score on the other side of 0.5.
    public var flipped: Int

    public var summary: String {
        "max |difference| \(Self.format(maxAbsDifference)) (\(Self.format(maxRelativeDifference * 100))% of the largest output), "
            + "\(flipped) of \(predictions) predictions flipped"
    }

    static func format(_ value: Double) -> String {
        guard value.isFinite else { return String(describing: value) }
        if value == 0 { return "0" }
        let magnitude = abs(value)
        var digits = 3
        var scaled = magnitude
        while scaled < 100 && digits < 9 {
            scaled *= 10
            digits += 1
        }
        let factor = (0..<(digits - 2)).reduce(1.0) { value, _ in value * 10 }
        return String((value * factor).rounded() / factor)
    }

    /// Compares the first output of two runs of the same inputs.
    /// - Throws: `TensorError` when the outputs differ in shape or are not float tensors.
    public static func compare(_ converted: Tensor, reference: Tensor) throws -> Parity {
        guard converted.shape == reference.shape else {
            throw TensorError.countMismatch(shape: reference.shape, count: converted.elementCount)
        }
        let a = try floats(converted), b = try floats(reference)
        var largest = 0.0, difference = 0.0
        for (x, y) in zip(a, b) {
            largest = max(largest, abs(y))
            let d = abs(x - y)
            if d > difference || d.isNaN { difference = d.isNaN ? .infinity : d }
        }
        let width = reference.shape.rank > 0 ? max(reference.shape[reference.shape.rank - 1], 1) : 1
        var flipped = 0, predictions = 0
        if width == 1 {
            predictions = b.count
            for (x, y) in zip(a, b) where (x > 0.5) != (y > 0.5) { flipped += 1 }
        } else {
            predictions = b.count / width
            for row in 0..<predictions {
                let slice = (row * width)..<((row + 1) * width)
                if argmax(a[slice]) != argmax(b[slice]) { flipped += 1 }
            }
        }
        return Parity(
            maxAbsDifference: difference, maxRelativeDifference: largest > 0 ? difference / largest : difference,
            predictions: predictions, flipped: flipped)
    }

    static func argmax(_ values: ArraySlice<Double>) -> Int {
        var best = values.startIndex
        for index in values.indices where values[index] > values[best] { best = index }
        return best
    }

    static func floats(_ tensor: Tensor) throws -> [Double] {
        switch tensor.dtype {
        case .float32: try tensor.scalars(as: Float.self).map { Double($0) }
        case .float16: try tensor.scalars(as: Float16.self).map { Double($0) }
        case .bfloat16: try tensor.scalars(as: BFloat16.self).map { Double($0.float) }
        case .float64: try tensor.scalars(as: Double.self)
        default: throw TensorError.dtypeMismatch(expected: .float32, actual: tensor.dtype)
        }
    }
}
