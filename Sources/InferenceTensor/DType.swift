/// The element types a tensor can hold. A closed set: kernels dispatch on it once, then call generic code.
public enum DType: String, Sendable, CaseIterable, Codable, CustomStringConvertible {
    case float16, float32, float64
    /// Brain floating point: float32's sign and exponent with 7 mantissa bits (the upper half of a float32).
    case bfloat16
    case int8, int16, int32, int64
    case uint8, uint16, uint32, uint64
    case bool

    /// Bytes per element.
    public var byteSize: Int {
        switch self {
        case .int8, .uint8, .bool: 1
        case .float16, .bfloat16, .int16, .uint16: 2
        case .float32, .int32, .uint32: 4
        case .float64, .int64, .uint64: 8
        }
    }

    public var isFloatingPoint: Bool {
        switch self {
        case .float16, .bfloat16, .float32, .float64: true
        default: false
        }
    }

    public var description: String { rawValue }
}

/// A Swift type that is the element type of one `DType`.
public protocol TensorElement: Sendable {
    static var dtype: DType { get }
}

extension Float: TensorElement { public static var dtype: DType { .float32 } }
extension Double: TensorElement { public static var dtype: DType { .float64 } }
extension Float16: TensorElement { public static var dtype: DType { .float16 } }
extension Int8: TensorElement { public static var dtype: DType { .int8 } }
extension Int16: TensorElement { public static var dtype: DType { .int16 } }
extension Int32: TensorElement { public static var dtype: DType { .int32 } }
extension Int64: TensorElement { public static var dtype: DType { .int64 } }
extension UInt8: TensorElement { public static var dtype: DType { .uint8 } }
extension UInt16: TensorElement { public static var dtype: DType { .uint16 } }
extension UInt32: TensorElement { public static var dtype: DType { .uint32 } }
extension UInt64: TensorElement { public static var dtype: DType { .uint64 } }
extension Bool: TensorElement { public static var dtype: DType { .bool } }

/// A bfloat16 value (the upper 16 bits of a float32). Conversions round to nearest even; NaN stays NaN.
public struct BFloat16: TensorElement, Equatable, Hashable {
    public static var dtype: DType { .bfloat16 }
    public var bitPattern: UInt16

    public init(bitPattern: UInt16) { self.bitPattern = bitPattern }

    public init(_ value: Float) {
        let bits = value.bitPattern
        if value.isNaN {
            bitPattern = UInt16(truncatingIfNeeded: bits >> 16) | 0x40  // keep it a quiet NaN
        } else {
            // Round half to even on the 16 bits dropped (a carry into the exponent is still right).
            let rounding: UInt32 = 0x7FFF &+ ((bits >> 16) & 1)
            bitPattern = UInt16(truncatingIfNeeded: (bits &+ rounding) >> 16)
        }
    }

    public var float: Float { Float(bitPattern: UInt32(bitPattern) << 16) }
}

extension Tensor {
    /// The tensor as NumPy can hold it: bfloat16 widened to float32 (exactly), anything else unchanged.
    public var numpyCompatible: Tensor {
        guard dtype == .bfloat16,
            let bits = try? scalars(as: BFloat16.self),
            let widened = try? Tensor(shape: shape, scalars: bits.map(\.float))
        else { return self }
        return widened
    }
}
