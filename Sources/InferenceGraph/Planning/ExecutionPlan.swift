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

    public init(node: Node, opset: Int, inputs: [Int?], outputs: [Int]) {
        self.node = node
        self.opset = opset
        self.inputs = inputs
        self.outputs = outputs
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
    /// Reshape-family nodes planned as views of their input (no step, no copy).
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

    /// Plans a graph for concrete input types.
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
        let graph = fusion.recognizesQDQ ? QuantizedFusion.rewrite(graph) : graph
        let order = try graph.topologicallySorted()
        self.graph = graph
        var types = inputTypes
        var known = graph.initializers
        for (name, tensor) in inputValues { known[name] = tensor }
        for (name, tensor) in known { types[name] = TensorType(dtype: tensor.dtype, shape: tensor.shape) }

        var live: [(node: Node, outputTypes: [TensorType])] = []
        var folded = 0
        for node in order {
            let opset = graph.opset(for: node)
            if let host = DataDependentOperators.function(opType: node.opType, domain: node.domain),
                node.inputs.allSatisfy({ $0.isEmpty || known[$0] != nil })
            {
                let values = try host(node, opset, node.inputs.map { $0.isEmpty ? nil : known[$0] })
                for (name, value) in zip(node.outputs, values) where !name.isEmpty {
                    known[name] = value
                    types[name] = TensorType(dtype: value.dtype, shape: value.shape)
                }
                folded += 1
                continue
            }
            let outputs: [TensorType]
            do {
                outputs = try ShapeInference.inferNode(
                    node, opset: opset, types: types, known: known, evaluator: evaluator)
            } catch let error as ShapeError {
                guard case .valueNeeded(_, let detail) = error else { throw error }
                throw DataDependentShape(node: node, detail: detail)
            } catch let error as DataDependentShape {
                // A node inside this node's subgraph: the whole node waits for run-time values.
                throw DataDependentShape(node: node, detail: error.description)
            }
            for (name, type) in zip(node.outputs, outputs) where !name.isEmpty { types[name] = type }
            if let direct = try ShapeInference.planTimeValue(node, opset: opset, types: types) {
                known[node.outputs[0]] = direct
                folded += 1
                continue
            }
            let inputsKnown = node.inputs.allSatisfy { $0.isEmpty || known[$0] != nil }
            if inputsKnown, let evaluator, evaluator.canEvaluate(opType: node.opType, domain: node.domain),
                !ShapeInference.neverFolded.contains(node.opType), !Self.blowsUp(node, outputs: outputs, known: known)
            {
                let values = try evaluator.evaluate(
                    node: node, opset: opset, inputs: node.inputs.map { $0.isEmpty ? nil : known[$0] },
                    outputTypes: outputs)
                for (name, value) in zip(node.outputs, values) where !name.isEmpty { known[name] = value }
                folded += 1
                continue
            }
            live.append((node, outputs))
        }
        let fusedPairs: Int
        (live, fusedPairs) = Fusion.apply(
            live, rules: fusion, graphOutputs: Set(graph.outputs.map(\.name)), known: &known, types: &types)

        var index: [String: Int] = [:]
        var values: [PlannedValue] = []
        var constants: [String: Tensor] = [:]
        func intern(_ name: String) throws -> Int {
            if let existing = index[name] { return existing }
            guard let type = types[name] else { throw GraphError.danglingValue(name: name, node: "plan") }
            index[name] = values.count
            if let constant = known[name] {
                constants[name] = constant
                values.append(PlannedValue(name: name, type: type, storage: .constant))
            } else {
                values.append(PlannedValue(name: name, type: type, storage: .arena(offset: 0)))
            }
            return values.count - 1
        }
        var inputs: [Int?] = []
        for input in graph.runtimeInputs {
            inputs.append(inputValues[input.name] == nil ? try intern(input.name) : nil)
        }
        var steps: [PlannedStep] = []
        for (node, outputTypes) in live {
            let ins = try node.inputs.map { name -> Int? in name.isEmpty ? nil : try intern(name) }
            let outs = try node.outputs.enumerated().map { position, name -> Int in
                guard name.isEmpty else { return try intern(name) }
                // An omitted optional output still gets a buffer so kernels see a fixed output count.
                let placeholder = "\u{0}\(node.displayName):output\(position)"
                if position < outputTypes.count { types[placeholder] = outputTypes[position] }
                return try intern(placeholder)
            }
            steps.append(PlannedStep(node: node, opset: graph.opset(for: node), inputs: ins, outputs: outs))
        }
        let outputs = try graph.outputs.map { try intern($0.name) }

        // Views: Reshape and its kin only relabel bytes. Their output shares its input's memory (one arena block,
        // live as long as either is) and the step is dropped, so nothing is copied. Every value is written once,
        // by the step that defines it, so sharing is safe.
        var aliasOf = Array(values.indices)
        func root(_ value: Int) -> Int {
            var r = value
            while aliasOf[r] != r { r = aliasOf[r] }
            return r
        }
        steps = steps.filter { step in
            guard Self.viewOperators.contains(step.node.opType), step.node.domain.isEmpty, step.outputs.count == 1,
                let input = step.inputs.first ?? nil, values[input].storage != .constant,
                values[step.outputs[0]].storage != .constant,
                values[input].type.dtype == values[step.outputs[0]].type.dtype,
                values[input].type.byteCount == values[step.outputs[0]].type.byteCount
            else { return true }
            aliasOf[step.outputs[0]] = root(input)
            return false
        }

        // Liveness: a value is live from the step that defines it (inputs: before step 0) to its last use;
        // graph outputs stay live to the end. A view's uses count for the value it shares memory with.
        var firstDef = [Int](repeating: -1, count: values.count)
        var lastUse = [Int](repeating: -1, count: values.count)
        for (s, step) in steps.enumerated() {
            for o in step.outputs {
                firstDef[o] = s
                lastUse[o] = max(lastUse[o], s)
            }
            for case let i? in step.inputs { lastUse[root(i)] = max(lastUse[root(i)], s) }
        }
        for o in outputs { lastUse[root(o)] = steps.count }
        let allocation = MemoryPlanner.assign(
            sizes: values.indices.map {
                values[$0].storage == .constant || aliasOf[$0] != $0 ? nil : values[$0].type.byteCount
            },
            firstDefinition: firstDef, lastUse: lastUse)
        for i in values.indices {
            if let offset = allocation.offsets[root(i)], values[i].storage != .constant {
                values[i].storage = .arena(offset: offset)
            }
        }
        self.viewCount = values.indices.filter { aliasOf[$0] != $0 }.count
        self.values = values
        self.steps = steps
        self.constants = constants
        self.inputs = inputs
        self.outputs = outputs
        self.arenaBytes = allocation.arenaBytes
        self.unsharedBytes = allocation.unsharedBytes
        self.foldedNodeCount = folded
        self.fusedNodeCount = fusedPairs
    }
}
