import InferenceTensor

/// Reads and writes elements of any dtype as Double: the general (not the fast) path of the elementwise
/// kernels. Exact for every float type and for integers up to 2^53.
struct ElementIO {
    let load: (UnsafeRawPointer, Int) -> Double
    let store: (UnsafeMutableRawPointer, Int, Double) -> Void

    static func `for`(_ dtype: DType) -> ElementIO {
        switch dtype {
        case .float32: typed(Float.self)
        case .float64: typed(Double.self)
        case .float16: typed(Float16.self)
        case .bfloat16: typed(BFloat16.self)
        case .int8: typed(Int8.self)
        case .int16: typed(Int16.self)
        case .int32: typed(Int32.self)
        case .int64: typed(Int64.self)
        case .uint8: typed(UInt8.self)
        case .uint16: typed(UInt16.self)
        case .uint32: typed(UInt32.self)
        case .uint64: typed(UInt64.self)
        case .bool:
            ElementIO(
                load: { $0.load(fromByteOffset: $1, as: UInt8.self) != 0 ? 1 : 0 },
                store: { $0.storeBytes(of: $2 != 0 ? 1 : 0, toByteOffset: $1, as: UInt8.self) })
        }
    }

    private static func typed<T: KernelScalar>(_: T.Type) -> ElementIO {
        let size = MemoryLayout<T>.stride
        return ElementIO(
            load: { $0.load(fromByteOffset: $1 * size, as: T.self).kernelDouble },
            store: { $0.storeBytes(of: T(kernelDouble: $2), toByteOffset: $1 * size, as: T.self) })
    }
}

extension ElementIO {
    /// Bool stores use byte offsets of 1; keep the index scale uniform for callers.
    static func forIndexing(_ dtype: DType) -> ElementIO {
        guard dtype == .bool else { return .for(dtype) }
        return ElementIO(
            load: { $0.load(fromByteOffset: $1, as: UInt8.self) != 0 ? 1 : 0 },
            store: { $0.storeBytes(of: $2 != 0 ? 1 : 0, toByteOffset: $1, as: UInt8.self) })
    }
}
