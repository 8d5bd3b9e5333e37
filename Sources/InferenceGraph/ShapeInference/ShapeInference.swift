import InferenceTensor

/// What a shape function sees of one node: its attributes, the types of its inputs (nil for an omitted
/// optional input) and the values of inputs that are constants.
public struct ShapeInferenceContext {
    public var node: Node
    public var opset: Int
    public var inputs: [TensorType?]
    public var constants: [Tensor?]

    /// The type of a required input. - Throws: `ShapeError.missingInput` when it is omitted.
    public func input(_ index: Int) throws(ShapeError) -> TensorType {
        guard index < inputs.count, let type = inputs[index] else {
            throw .missingInput(node: node.displayName, index: index)
        }
        return type
    }

    public func mismatch(_ detail: String) -> ShapeError { .mismatch(node: node.displayName, detail: detail) }
}

/// Computes a node's output types from its input types.
public typealias ShapeFunction = @Sendable (ShapeInferenceContext) throws -> [TensorType]

/// A node whose input shapes cannot produce an output.
public enum ShapeError: Error, Equatable, CustomStringConvertible {
    case mismatch(node: String, detail: String)
    case missingInput(node: String, index: Int)
    case noShapeFunction(node: String)
    case attribute(AttributeError)

    public var description: String {
        switch self {
        case .mismatch(let node, let detail): "\(node): \(detail)"
        case .missingInput(let node, let index): "\(node): required input \(index) is missing"
        case .noShapeFunction(let node): "\(node): no shape inference for this operator"
        case .attribute(let error): error.description
        }
    }
}

/// Shape inference for concrete input shapes, one function per operator, keyed by `domain:opType`.
public enum ShapeInference {
    private static let table: [String: ShapeFunction] = {
        var table: [String: ShapeFunction] = [:]
        ShapeInference.registerElementwise(into: &table)
        ShapeInference.registerLinearAlgebra(into: &table)
        return table
    }()

    static func key(domain: String, opType: String) -> String {
        "\(domain == "ai.onnx" ? "" : domain):\(opType)"
    }

    public static func function(domain: String, opType: String) -> ShapeFunction? {
        table[key(domain: domain, opType: opType)]
    }

    /// Infers the type of every value in a graph, given concrete types for its runtime inputs.
    /// - Throws: `ShapeError` naming the first node whose inputs do not fit, `GraphError` for bad structure.
    public static func infer(graph: Graph, order: [Node], inputs: [String: TensorType]) throws -> [String: TensorType] {
        var types = inputs
        for (name, tensor) in graph.initializers { types[name] = TensorType(dtype: tensor.dtype, shape: tensor.shape) }
        for node in order {
            guard let function = function(domain: node.domain, opType: node.opType) else {
                throw ShapeError.noShapeFunction(node: node.displayName)
            }
            let context = ShapeInferenceContext(
                node: node, opset: graph.opset(for: node),
                inputs: node.inputs.map { $0.isEmpty ? nil : types[$0] },
                constants: node.inputs.map { $0.isEmpty ? nil : graph.initializers[$0] })
            let outputs = try function(context)
            for (name, type) in zip(node.outputs, outputs) where !name.isEmpty { types[name] = type }
        }
        return types
    }

    /// NumPy broadcasting of two shapes. Returns nil when they are incompatible.
    public static func broadcast(_ a: Shape, _ b: Shape) -> Shape? {
        let rank = max(a.rank, b.rank)
        var result = [Int](repeating: 1, count: rank)
        for axis in 0..<rank {
            let da = axis < rank - a.rank ? 1 : a[axis - (rank - a.rank)]
            let db = axis < rank - b.rank ? 1 : b[axis - (rank - b.rank)]
            guard da == db || da == 1 || db == 1 else { return nil }
            result[axis] = da == 1 ? db : da
        }
        return Shape(result)
    }
}
