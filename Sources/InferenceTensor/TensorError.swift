/// Errors from building or converting tensors.
public enum TensorError: Error, Equatable, CustomStringConvertible {
    case allocationFailed(bytes: Int)
    case countMismatch(shape: Shape, count: Int)
    case dtypeMismatch(expected: DType, actual: DType)
    case sizeOverflow(dimensions: [Int])

    public var description: String {
        switch self {
        case .allocationFailed(let bytes): "cannot allocate \(bytes) bytes for a tensor"
        case .countMismatch(let shape, let count): "shape \(shape) needs \(shape.elementCount) elements, got \(count)"
        case .dtypeMismatch(let expected, let actual): "expected a \(expected) tensor, got \(actual)"
        case .sizeOverflow(let dimensions): "tensor of shape \(dimensions) is too large to address"
        }
    }
}
