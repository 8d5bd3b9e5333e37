/// The dimensions of a dense tensor, outermost first. Row-major (C order) strides follow from it.
public struct Shape: Hashable, Sendable, Codable, ExpressibleByArrayLiteral, CustomStringConvertible {
    public var dimensions: [Int]

    /// Shapes are not validated here: planning checks every inferred shape (`isValid`) and tensor
    /// creation checks sizes, so a bad model is an error, never a trap.
    public init(_ dimensions: [Int]) {
        self.dimensions = dimensions
    }

    /// Whether every dimension is non-negative and the element count fits comfortably in memory arithmetic.
    public var isValid: Bool {
        dimensions.allSatisfy { $0 >= 0 } && Shape.checkedElementCount(dimensions).map { $0 <= 1 << 48 } == true
    }

    public init(arrayLiteral elements: Int...) { self.init(elements) }

    public var rank: Int { dimensions.count }

    /// Number of elements; 1 for a scalar (rank 0), 0 when any dimension is 0.
    public var elementCount: Int {
        var count = 1
        for dimension in dimensions { count &*= dimension }
        return count
    }

    /// The element count, or nil when it overflows `Int`.
    public static func checkedElementCount(_ dimensions: [Int]) -> Int? {
        var count = 1
        for d in dimensions {
            guard d >= 0 else { return nil }
            let (product, overflow) = count.multipliedReportingOverflow(by: d)
            if overflow { return nil }
            count = product
        }
        return count
    }

    /// Row-major strides in elements.
    public var strides: [Int] {
        var strides = [Int](repeating: 1, count: rank)
        var running = 1
        for axis in stride(from: rank - 1, through: 0, by: -1) {
            strides[axis] = running
            running *= dimensions[axis]
        }
        return strides
    }

    public subscript(axis: Int) -> Int { dimensions[axis] }

    /// `(4, 10)`, `(10,)`, `()`: the way NumPy prints shapes.
    public var description: String {
        switch rank {
        case 0: "()"
        case 1: "(\(dimensions[0]),)"
        default: "(" + dimensions.map(String.init).joined(separator: ", ") + ")"
        }
    }
}
