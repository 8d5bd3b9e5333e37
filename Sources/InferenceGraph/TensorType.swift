import InferenceTensor

/// The concrete type of a value in one plan: element type and shape.
public struct TensorType: Hashable, Sendable, CustomStringConvertible {
    public var dtype: DType
    public var shape: Shape

    public init(dtype: DType, shape: Shape) {
        self.dtype = dtype
        self.shape = shape
    }

    public var byteCount: Int { shape.elementCount * dtype.byteSize }
    public var description: String { "\(dtype)\(shape)" }
}
