/// A dense, row-major tensor in host memory: a dtype, a shape and an aligned buffer.
///
/// Value semantics: copies share the buffer until one of them is mutated.
public struct Tensor: Sendable {
    public let dtype: DType
    public let shape: Shape
    /// Bytes of the data, row-major; computed once.
    public let byteCount: Int
    @usableFromInline var storage: TensorStorage

    /// A zero-filled tensor.
    /// - Throws: `TensorError` when the size overflows or cannot be allocated.
    public init(zeros dtype: DType, shape: Shape) throws {
        let bytes = try Self.byteCount(dtype: dtype, dimensions: shape.dimensions)
        self.dtype = dtype
        self.shape = shape
        self.byteCount = bytes
        self.storage = try TensorStorage(byteCount: bytes, zeroed: true)
    }

    /// A tensor whose contents the caller fills before reading (the NPY reader, kernels' outputs).
    public init(uninitialized dtype: DType, shape: Shape) throws {
        let bytes = try Self.byteCount(dtype: dtype, dimensions: shape.dimensions)
        self.dtype = dtype
        self.shape = shape
        self.byteCount = bytes
        self.storage = try TensorStorage(byteCount: bytes, zeroed: false)
    }

    /// A tensor holding `scalars` in row-major order.
    /// - Throws: `TensorError.countMismatch` when `scalars.count` is not the shape's element count.
    public init<Element: TensorElement>(shape: Shape, scalars: [Element]) throws {
        guard scalars.count == shape.elementCount else {
            throw TensorError.countMismatch(shape: shape, count: scalars.count)
        }
        try self.init(uninitialized: Element.dtype, shape: shape)
        scalars.withUnsafeBytes { source in
            if let base = source.baseAddress { storage.pointer.copyMemory(from: base, byteCount: source.count) }
        }
    }

    /// Bytes needed for a tensor, checking for overflow.
    public static func byteCount(dtype: DType, dimensions: [Int]) throws -> Int {
        guard let count = Shape.checkedElementCount(dimensions) else {
            throw TensorError.sizeOverflow(dimensions: dimensions)
        }
        let (bytes, overflow) = count.multipliedReportingOverflow(by: dtype.byteSize)
        guard !overflow else { throw TensorError.sizeOverflow(dimensions: dimensions) }
        return bytes
    }

    public var elementCount: Int { shape.elementCount }

    /// Read-only access to the raw bytes, row-major.
    @inlinable
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: storage.pointer, count: byteCount))
    }

    /// Mutable access to the raw bytes; copies the buffer first if another tensor shares it.
    /// - Throws: `TensorError.allocationFailed` when that copy cannot be allocated, or what `body` throws.
    @inlinable
    public mutating func withUnsafeMutableBytes<R>(_ body: (UnsafeMutableRawBufferPointer) throws -> R) throws -> R {
        if !isKnownUniquelyReferenced(&storage) { storage = try storage.copy() }
        return try body(UnsafeMutableRawBufferPointer(start: storage.pointer, count: byteCount))
    }

    /// Typed read-only access. - Throws: `TensorError.dtypeMismatch` when `Element` is not the dtype.
    @inlinable
    public func withUnsafeBufferPointer<Element: TensorElement, R>(
        as type: Element.Type, _ body: (UnsafeBufferPointer<Element>) throws -> R
    ) throws -> R {
        guard Element.dtype == dtype else { throw TensorError.dtypeMismatch(expected: Element.dtype, actual: dtype) }
        let typed = storage.pointer.assumingMemoryBound(to: Element.self)
        return try body(UnsafeBufferPointer(start: typed, count: elementCount))
    }

    /// The elements as an array. - Throws: `TensorError.dtypeMismatch` when `Element` is not the dtype.
    public func scalars<Element: TensorElement>(as type: Element.Type) throws -> [Element] {
        try withUnsafeBufferPointer(as: type) { Array($0) }
    }

    /// The same bytes under another shape with the same element count.
    /// - Throws: `TensorError.countMismatch` when the counts differ.
    public func reshaped(_ newShape: Shape) throws -> Tensor {
        guard newShape.elementCount == elementCount else {
            throw TensorError.countMismatch(shape: newShape, count: elementCount)
        }
        return Tensor(dtype: dtype, shape: newShape, storage: storage)
    }

    init(dtype: DType, shape: Shape, storage: TensorStorage) {
        self.dtype = dtype
        self.shape = shape
        self.byteCount = shape.elementCount * dtype.byteSize
        self.storage = storage
    }

    /// Whether two tensors have the same dtype, shape and bytes (NaNs compare by bit pattern).
    public func bitwiseEqual(_ other: Tensor) -> Bool {
        guard dtype == other.dtype, shape == other.shape else { return false }
        return withUnsafeBytes { a in other.withUnsafeBytes { b in a.elementsEqual(b) } }
    }
}
