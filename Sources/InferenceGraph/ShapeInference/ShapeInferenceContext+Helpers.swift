import InferenceTensor

extension ShapeInferenceContext {
    /// The values of a constant integer input (int64 or int32), or nil when omitted or unknown.
    public func constantInts(_ index: Int) throws -> [Int]? {
        guard index < constants.count, let tensor = constants[index] else { return nil }
        return try tensor.integerValues()
    }

    /// The values of a constant float input, or nil when omitted or unknown.
    public func constantFloats(_ index: Int) throws -> [Float]? {
        guard index < constants.count, let tensor = constants[index] else { return nil }
        switch tensor.dtype {
        case .float32: return try tensor.scalars(as: Float.self)
        case .float64: return try tensor.scalars(as: Double.self).map { Float($0) }
        case .float16: return try tensor.scalars(as: Float16.self).map { Float($0) }
        case .bfloat16: return try tensor.scalars(as: BFloat16.self).map(\.float)
        default: return try tensor.integerValues().map { Float($0) }
        }
    }

    /// Whether optional input `index` is present.
    public func has(_ index: Int) -> Bool { index < inputs.count && inputs[index] != nil }

    /// The values of an input that must be known at plan time (a weight, a folded value or a shape-like
    /// graph input). - Throws: `ShapeError.mismatch` naming what is missing.
    public func requiredInts(_ index: Int, _ what: String) throws -> [Int] {
        guard let values = try constantInts(index) else {
            throw valueNeeded(
                "\(what) (input \(index)) must be known when the model is planned: a constant, or computed from shapes")
        }
        return values
    }

    /// An axis in [-rank, rank) normalized to [0, rank). - Throws: `ShapeError.mismatch` when out of range.
    public func axis(_ value: Int, rank: Int) throws -> Int {
        let normalized = value < 0 ? value + rank : value
        guard normalized >= 0 && normalized < rank else {
            throw mismatch("axis \(value) is out of range for rank \(rank)")
        }
        return normalized
    }
}

extension Tensor {
    /// Integer tensor contents as `Int` (int64, int32, int16, int8, uint8, bool).
    /// - Throws: `TensorError.dtypeMismatch` for float tensors.
    public func integerValues() throws -> [Int] {
        switch dtype {
        case .int64: try scalars(as: Int64.self).map { Int($0) }
        case .int32: try scalars(as: Int32.self).map { Int($0) }
        case .int16: try scalars(as: Int16.self).map { Int($0) }
        case .int8: try scalars(as: Int8.self).map { Int($0) }
        case .uint8: try scalars(as: UInt8.self).map { Int($0) }
        case .uint16: try scalars(as: UInt16.self).map { Int($0) }
        case .uint32: try scalars(as: UInt32.self).map { Int($0) }
        case .uint64: try scalars(as: UInt64.self).map { Int(truncatingIfNeeded: $0) }
        case .bool: try scalars(as: Bool.self).map { $0 ? 1 : 0 }
        default: throw TensorError.dtypeMismatch(expected: .int64, actual: dtype)
        }
    }
}
