import InferenceTensor

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
}

/// A graph specialised to concrete input shapes: nodes in execution order, every value's type, and a
/// memory plan. Backend-independent; a backend binds it to buffers and kernels once, then runs it many times.
public struct ExecutionPlan: Sendable {
    public var graph: Graph
    public var values: [PlannedValue]
    public var steps: [PlannedStep]
    /// Indices into `values` of the graph's runtime inputs and outputs, in declaration order.
    public var inputs: [Int]
    public var outputs: [Int]
    /// Bytes of the arena holding inputs, intermediates and outputs.
    public var arenaBytes: Int
    /// Bytes all non-constant values would need without reuse (for reporting the memory plan's saving).
    public var unsharedBytes: Int

    /// Plans a graph for concrete input types.
    /// - Throws: `GraphError` for bad structure, `ShapeError` when the inputs do not fit the graph.
    public init(graph: Graph, inputTypes: [String: TensorType]) throws {
        let order = try graph.topologicallySorted()
        let types = try ShapeInference.infer(graph: graph, order: order, inputs: inputTypes)
        self.graph = graph

        var index: [String: Int] = [:]
        var values: [PlannedValue] = []
        func intern(_ name: String, constant: Bool) -> Int? {
            if let existing = index[name] { return existing }
            guard let type = types[name] else { return nil }
            index[name] = values.count
            values.append(PlannedValue(name: name, type: type, storage: constant ? .constant : .arena(offset: 0)))
            return values.count - 1
        }
        var inputs: [Int] = []
        for input in graph.runtimeInputs {
            if let i = intern(input.name, constant: false) { inputs.append(i) }
        }
        var steps: [PlannedStep] = []
        for node in order {
            let ins = node.inputs.map { name -> Int? in
                name.isEmpty ? nil : intern(name, constant: graph.initializers[name] != nil)
            }
            let outs = node.outputs.compactMap { name in name.isEmpty ? nil : intern(name, constant: false) }
            steps.append(PlannedStep(node: node, opset: graph.opset(for: node), inputs: ins, outputs: outs))
        }
        let outputs = graph.outputs.compactMap { index[$0.name] }

        // Liveness: a value is live from the step that defines it (inputs: before step 0) to its last use;
        // graph outputs stay live to the end.
        var firstDef = [Int](repeating: -1, count: values.count)
        var lastUse = [Int](repeating: -1, count: values.count)
        for (s, step) in steps.enumerated() {
            for o in step.outputs { firstDef[o] = s; lastUse[o] = max(lastUse[o], s) }
            for case let i? in step.inputs { lastUse[i] = max(lastUse[i], s) }
        }
        for o in outputs { lastUse[o] = steps.count }
        let allocation = MemoryPlanner.assign(
            sizes: values.map { $0.storage == .constant ? nil : $0.type.byteCount },
            firstDefinition: firstDef, lastUse: lastUse)
        for (i, offset) in allocation.offsets.enumerated() {
            if let offset { values[i].storage = .arena(offset: offset) }
        }
        self.values = values
        self.steps = steps
        self.inputs = inputs
        self.outputs = outputs
        self.arenaBytes = allocation.arenaBytes
        self.unsharedBytes = allocation.unsharedBytes
    }
}
