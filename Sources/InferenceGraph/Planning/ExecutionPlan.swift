import InferenceTensor

/// Planning stopped at a node whose output shapes depend on values only known when the model runs. A session
/// catches it and runs the graph in stages around that node (`Session`).
public struct DataDependentShape: Error, CustomStringConvertible {
    public var node: Node
    public var detail: String

    public init(node: Node, detail: String) {
        self.node = node
        self.detail = detail
    }

    public var description: String { "\(node.displayName): \(detail)" }
}

/// Where a value of a plan lives.
public enum ValueStorage: Sendable, Equatable {
    /// A constant (weight), uploaded to the device once per plan.
    case constant
    /// A region of the plan's arena, shared with values whose lifetimes do not overlap.
    case arena(offset: Int)
}

/// One value of a plan with its concrete type and storage.
public struct PlannedValue: Sendable {
    public var name: String
    public var type: TensorType
    public var storage: ValueStorage
}

/// One node of a plan, with its inputs and outputs as indices into `ExecutionPlan.values`.
public struct PlannedStep: Sendable {
    public var node: Node
    public var opset: Int
    /// Index into `values` per node input; nil for an omitted optional input.
    public var inputs: [Int?]
    public var outputs: [Int]
    /// The operator's attributes and operands resolved at plan time (`OperatorDefinitions`); nil for operators
    /// without a definition there, which kernels parse themselves.
    public var parameters: (any OperatorParameters)?

    public init(
        node: Node, opset: Int, inputs: [Int?], outputs: [Int], parameters: (any OperatorParameters)? = nil
    ) {
        self.node = node
        self.opset = opset
        self.inputs = inputs
        self.outputs = outputs
        self.parameters = parameters
    }
}

/// A graph specialised to concrete input shapes: nodes in execution order, every value's type, and a
/// memory plan. Backend-independent; a backend binds it to buffers and kernels once, then runs it many times.
///
/// Nodes whose inputs are all known at plan time (weights, folded values, the shapes of inputs, and the
/// values of small shape-like inputs) are evaluated once here and their outputs become constants.
public struct ExecutionPlan: Sendable {
    public var graph: Graph
    public var values: [PlannedValue]
    public var steps: [PlannedStep]
    /// Constant tensors by value name: initializers and folded values that the steps or outputs read.
    public var constants: [String: Tensor]
    /// Per graph runtime input, in declaration order: the value it is copied into, or nil when the plan
    /// took its value at plan time (shape-like inputs; the plan is then specific to that value).
    public var inputs: [Int?]
    public var outputs: [Int]
    /// Bytes of the arena holding inputs, intermediates and outputs.
    public var arenaBytes: Int
    /// Bytes all non-constant values would need without reuse (for reporting the memory plan's saving).
    public var unsharedBytes: Int
    /// Nodes evaluated at plan time.
    public var foldedNodeCount: Int
    /// Nodes merged into the node before them by `FusionRules` (an activation, a folded BatchNormalization).
    public var fusedNodeCount: Int
    /// Values planned inside another value's memory, with no step and no copy: Reshape-family views of their
    /// input, and Concat inputs their producers write straight into the Concat's output.
    public var viewCount: Int

    /// Whether folding `node` would materialize far more than it reads (a Range, ConstantOfShape, Expand or Tile
    /// to a huge size): such values are computed at run time instead, in the arena, rather than held as
    /// constants in the plan. Folds that keep the size (a Transpose or Cast of a weight) always happen.
    static func blowsUp(_ node: Node, outputs: [TensorType], known: [String: Tensor]) -> Bool {
        let produced = outputs.reduce(0) { $0 &+ $1.byteCount }
        let read = node.inputs.reduce(0) { $0 &+ (known[$1]?.byteCount ?? 0) }
        return produced > 64 << 20 && produced / 16 > read
    }

    /// Operators whose output is its input's bytes under another shape.
    static let viewOperators: Set<String> = ["Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity"]

    /// Plans a graph for concrete input types: `PlanningPasses` in order (folding, fusion, interning, views,
    /// liveness, memory).
    /// - Parameters:
    ///   - inputValues: values of runtime inputs known at plan time (see `ShapeInference.valueKeyedInputs`).
    ///   - evaluator: evaluates nodes whose inputs are all known; without one, nothing is folded.
    ///   - fusion: the node pairs the backend runs as one kernel.
    /// - Throws: `GraphError` for bad structure, `ShapeError` when the inputs do not fit the graph, or what
    ///   the evaluator throws.
    public init(
        graph: Graph, inputTypes: [String: TensorType], inputValues: [String: Tensor] = [:],
        evaluator: (any ConstantEvaluator)? = nil, fusion: FusionRules = .none
    ) throws {
        let graph =
            fusion.recognizesQDQ
            ? QuantizedFusion.rewrite(graph, standardOperatorsOnly: fusion.qdqStandardOperatorsOnly) : graph
        var folding = try PlanningPasses.foldConstants(
            graph: graph, inputTypes: inputTypes, inputValues: inputValues, evaluator: evaluator)
        let (live, fused) = Fusion.apply(
            folding.live, rules: fusion, graphOutputs: Set(graph.outputs.map(\.name)), known: &folding.known,
            types: &folding.types)
        var interned = try PlanningPasses.intern(
            graph: graph, live: live, known: folding.known, types: folding.types, inputValues: inputValues)
        var (steps, aliasOf) = PlanningPasses.planViews(steps: interned.steps, values: interned.values)
        let offsets: [Int]
        (steps, offsets) = PlanningPasses.planConcatInPlace(steps: steps, values: interned.values, aliasOf: &aliasOf)
        let lifetimes = PlanningPasses.liveness(steps: steps, outputs: interned.outputs, aliasOf: aliasOf)
        let allocation = PlanningPasses.assignMemory(
            values: &interned.values, aliasOf: aliasOf, offsets: offsets, lifetimes: lifetimes)
        self.graph = graph
        self.viewCount = aliasOf.indices.filter { aliasOf[$0] != $0 }.count
        self.values = interned.values
        self.steps = steps
        self.constants = interned.constants
        self.inputs = interned.inputs
        self.outputs = interned.outputs
        self.arenaBytes = allocation.arenaBytes
        self.unsharedBytes = allocation.unsharedBytes
        self.foldedNodeCount = folding.foldedCount
        self.fusedNodeCount = fused
    }
}
