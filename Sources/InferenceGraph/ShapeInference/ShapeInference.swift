import InferenceTensor

/// What a shape function sees of one node: its attributes, the types of its inputs (nil for an omitted
/// optional input) and the values of inputs that are constants.
public struct ShapeInferenceContext {
    public var node: Node
    public var opset: Int
    public var inputs: [TensorType?]
    public var constants: [Tensor?]
    /// Folds constant subgraphs when shape functions plan nested graphs (If branches).
    public var evaluator: (any ConstantEvaluator)?

    public init(
        node: Node, opset: Int, inputs: [TensorType?], constants: [Tensor?], evaluator: (any ConstantEvaluator)? = nil
    ) {
        self.node = node
        self.opset = opset
        self.inputs = inputs
        self.constants = constants
        self.evaluator = evaluator
    }

    /// The type of a required input. - Throws: `ShapeError.missingInput` when it is omitted.
    public func input(_ index: Int) throws(ShapeError) -> TensorType {
        guard index < inputs.count, let type = inputs[index] else {
            throw .missingInput(node: node.displayName, index: index)
        }
        return type
    }

    public func mismatch(_ detail: String) -> ShapeError { .mismatch(node: node.displayName, detail: detail) }

    /// The error for an output shape that depends on the value of an input not known at plan time (a value
    /// computed from data): a session then runs the node when that value exists (see `ShapeError.valueNeeded`).
    public func valueNeeded(_ detail: String) -> ShapeError { .valueNeeded(node: node.displayName, detail: detail) }
}

/// Computes a node's output types from its input types.
public typealias ShapeFunction = @Sendable (ShapeInferenceContext) throws -> [TensorType]

/// A node whose input shapes cannot produce an output.
public enum ShapeError: Error, Equatable, CustomStringConvertible {
    case mismatch(node: String, detail: String)
    case missingInput(node: String, index: Int)
    case noShapeFunction(node: String)
    case attribute(AttributeError)
    /// The output shape depends on values only known when the model runs (NonZero, NonMaxSuppression, Unique,
    /// Compress, Loop, a Reshape to a shape computed from data). Sessions plan such graphs in stages.
    case valueNeeded(node: String, detail: String)

    public var description: String {
        switch self {
        case .mismatch(let node, let detail): "\(node): \(detail)"
        case .missingInput(let node, let index): "\(node): required input \(index) is missing"
        case .noShapeFunction(let node): "\(node): no shape inference for this operator"
        case .attribute(let error): error.description
        case .valueNeeded(let node, let detail): "\(node): \(detail)"
        }
    }
}

/// Shape inference for concrete input shapes, one function per operator, keyed by `domain:opType`.
public enum ShapeInference {
    private static let table: [String: ShapeFunction] = {
        var table: [String: ShapeFunction] = [:]
        ShapeInference.registerElementwise(into: &table)
        ShapeInference.registerLinearAlgebra(into: &table)
        ShapeInference.registerTensorOps(into: &table)
        ShapeInference.registerNeuralNetwork(into: &table)
        ShapeInference.registerReductions(into: &table)
        ShapeInference.registerIndexing(into: &table)
        ShapeInference.registerTransformer(into: &table)
        ShapeInference.registerQuantization(into: &table)
        DataDependentOperators.register(into: &table)
        return table
    }()

    static func key(domain: String, opType: String) -> String {
        "\(domain == "ai.onnx" ? "" : domain):\(opType)"
    }

    public static func function(domain: String, opType: String) -> ShapeFunction? {
        table[key(domain: domain, opType: opType)]
    }

    /// Operators never evaluated at plan time even when their inputs are known.
    public static let neverFolded: Set<String> = []

    /// Inputs (by position) whose values, not only shapes, decide an operator's output shape.
    public static let shapeLikeInputs: [String: Set<Int>] = [
        "Reshape": [1], "Expand": [1], "Tile": [1], "Slice": [1, 2, 3, 4], "Pad": [1, 2, 3], "ConstantOfShape": [0],
        "Range": [0, 1, 2], "Resize": [1, 2, 3], "Split": [1], "Squeeze": [1], "Unsqueeze": [1], "ReduceSum": [1],
        "ReduceMean": [1], "ReduceMax": [1], "ReduceMin": [1], "ReduceProd": [1], "ReduceL2": [1], "Upsample": [1],
        "ReduceSumSquare": [1], "ReduceL1": [1], "ReduceLogSum": [1], "ReduceLogSumExp": [1],
        "TopK": [1], "OneHot": [1], "CumSum": [1], "CumProd": [1],
    ]

    /// Runtime inputs of a graph whose values reach a shape-like input slot (through any chain of nodes
    /// other than Shape and Size, which read only shapes): plans take their values at plan time and are
    /// cached per value, so output shapes that depend on them are known.
    public static func valueKeyedInputs(of graph: Graph) -> Set<String> {
        var producer: [String: Node] = [:]
        for node in graph.nodes { for output in node.outputs where !output.isEmpty { producer[output] = node } }
        var needed: [String] = []
        for node in graph.nodes {
            if node.opType == "If", case .graph(let thenBranch)? = node.attributes["then_branch"],
                case .graph(let elseBranch)? = node.attributes["else_branch"]
            {
                // The branch taken, and captured values that decide shapes inside either branch.
                let inner = valueKeyedInputs(of: thenBranch).union(valueKeyedInputs(of: elseBranch))
                needed.append(node.inputs[0])
                needed.append(contentsOf: node.inputs.dropFirst().filter { inner.contains($0) })
            }
            guard let slots = shapeLikeInputs[node.opType] else { continue }
            for slot in slots where slot < node.inputs.count && !node.inputs[slot].isEmpty {
                needed.append(node.inputs[slot])
            }
        }
        var seen: Set<String> = []
        while let name = needed.popLast() {
            guard seen.insert(name).inserted, let node = producer[name] else { continue }
            if node.opType == "Shape" || node.opType == "Size" { continue }
            needed.append(contentsOf: node.inputs.filter { !$0.isEmpty })
        }
        return seen.intersection(graph.runtimeInputs.map(\.name))
    }

    /// Output types of one node.
    /// - Throws: `ShapeError` naming the node when its inputs do not fit, or it has no shape function.
    public static func inferNode(
        _ node: Node, opset: Int, types: [String: TensorType], known: [String: Tensor],
        evaluator: (any ConstantEvaluator)? = nil
    ) throws -> [TensorType] {
        guard let function = function(domain: node.domain, opType: node.opType) else {
            throw ShapeError.noShapeFunction(node: node.displayName)
        }
        for name in node.inputs where !name.isEmpty && types[name] == nil {
            throw GraphError.danglingValue(name: name, node: node.displayName)
        }
        let context = ShapeInferenceContext(
            node: node, opset: opset,
            inputs: node.inputs.map { $0.isEmpty ? nil : types[$0] },
            constants: node.inputs.map { $0.isEmpty ? nil : known[$0] }, evaluator: evaluator)
        let outputs = try function(context)
        for output in outputs {
            let bytes = Shape.checkedElementCount(output.shape.dimensions)?.multipliedReportingOverflow(
                by: output.dtype.byteSize)
            guard output.shape.isValid, let bytes, !bytes.overflow, bytes.partialValue <= 1 << 42 else {
                throw context.mismatch("the output shape \(output.shape.dimensions) is invalid or too large")
            }
        }
        return outputs
    }

    /// Values computable from types alone (Shape, Size), without running a kernel.
    public static func planTimeValue(_ node: Node, opset: Int, types: [String: TensorType]) throws -> Tensor? {
        guard node.domain.isEmpty, let first = node.inputs.first, let type = types[first] else { return nil }
        switch node.opType {
        case "Shape":
            let rank = type.shape.rank
            func clamp(_ axis: Int) -> Int { min(max(axis < 0 ? axis + rank : axis, 0), rank) }
            let start = clamp(try node.int("start", default: 0))
            let end = clamp(try node.int("end", default: rank))
            let dims = start < end ? Array(type.shape.dimensions[start..<end]) : []
            return try Tensor(shape: [dims.count], scalars: dims.map { Int64($0) })
        case "Size":
            return try Tensor(shape: [], scalars: [Int64(type.shape.elementCount)])
        default:
            return nil
        }
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
