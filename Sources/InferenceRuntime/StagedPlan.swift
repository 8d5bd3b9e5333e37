import InferenceGraph
import InferenceTensor

/// A graph run in three stages around one node whose output shapes depend on run-time values (NonZero,
/// NonMaxSuppression, Unique, Compress, Loop, Scan, a Reshape to a computed shape): the nodes that do not depend
/// on it (a session of their own on the backend), then the node itself on host tensors, then the nodes that read
/// its outputs (a session planned once per set of shapes the node produced). Later stages may split again.
/// Values cross between stages as host tensors: the price of shapes that only the data decides.
final class StagedPlan {
    private let graph: Graph
    let node: Node
    private let opset: Int
    private let backend: any Backend
    private let evaluator: (any ConstantEvaluator)?
    /// The nodes independent of `node`, with the values later stages and the graph's outputs read as outputs.
    private let before: Session?
    /// The nodes that read `node`'s outputs; typed and made at the first run.
    private let afterGraph: Graph?
    private var after: Session?
    /// Values `afterGraph` reads from earlier stages, besides the graph's runtime inputs.
    private let boundary: [String]
    private var controlFlow: ControlFlowRunner?
    /// The stage depth of the sessions this plan makes.
    private let depth: Int

    init(
        graph: Graph, splittingAt node: Node, backend: any Backend, evaluator: (any ConstantEvaluator)?, depth: Int
    ) throws {
        let order = try graph.topologicallySorted()
        var dependent = Set(node.outputs.filter { !$0.isEmpty })
        var beforeNodes: [Node] = []
        var afterNodes: [Node] = []
        var found = false
        for candidate in order {
            if !found && candidate.opType == node.opType && candidate.inputs == node.inputs
                && candidate.outputs == node.outputs
            {
                found = true
                continue
            }
            if candidate.inputs.contains(where: { dependent.contains($0) }) {
                afterNodes.append(candidate)
                dependent.formUnion(candidate.outputs.filter { !$0.isEmpty })
            } else {
                beforeNodes.append(candidate)
            }
        }
        guard found else { throw RuntimeError.invalidNode(node: node.displayName, detail: "not in the graph") }
        let produced = Set(beforeNodes.flatMap(\.outputs).filter { !$0.isEmpty })
        var needed: [String] = []
        for name in node.inputs + afterNodes.flatMap(\.inputs) + graph.outputs.map(\.name)
        where produced.contains(name) && !needed.contains(name) {
            needed.append(name)
        }
        func placeholder(_ name: String) -> ValueInfo { ValueInfo(name: name, dtype: .float32, dimensions: nil) }
        if needed.isEmpty {
            before = nil
        } else {
            var first = graph
            first.nodes = beforeNodes
            first.outputs = needed.map(placeholder)
            let session = try Session(graph: first, backend: backend, evaluator: evaluator)
            session.stageDepth = depth
            before = session
        }
        if afterNodes.isEmpty {
            afterGraph = nil
            boundary = []
        } else {
            let afterInputs = Set(afterNodes.flatMap(\.inputs))
            let crossing = needed + node.outputs.filter { !$0.isEmpty }
            boundary = crossing.filter { afterInputs.contains($0) }
            var rest = graph
            rest.nodes = afterNodes
            rest.outputs = graph.outputs.filter { dependent.contains($0.name) && !node.outputs.contains($0.name) }
            afterGraph = rest
        }
        self.graph = graph
        self.node = node
        self.opset = graph.opset(for: node)
        self.backend = backend
        self.evaluator = evaluator
        self.depth = depth
    }

    /// Runs the stages on tensors in the order of the graph's runtime inputs; the timings add the stages' phases,
    /// the host node counting as compute.
    func run(_ inputs: [Tensor]) throws -> (outputs: [NamedTensor], timings: RunTimings) {
        var values: [String: Tensor] = [:]
        let runtimeInputs = graph.runtimeInputs
        for (info, tensor) in zip(runtimeInputs, inputs) { values[info.name] = tensor }
        func value(_ name: String) -> Tensor? { values[name] ?? graph.initializers[name] }
        var timings = RunTimings(copyInNanoseconds: 0, computeNanoseconds: 0, copyOutNanoseconds: 0, planNanoseconds: 0)
        func add(_ stage: RunTimings) {
            timings.copyInNanoseconds += stage.copyInNanoseconds
            timings.computeNanoseconds += stage.computeNanoseconds
            timings.copyOutNanoseconds += stage.copyOutNanoseconds
            timings.planNanoseconds += stage.planNanoseconds
        }
        let named = zip(runtimeInputs, inputs).map { NamedTensor(name: $0.name, tensor: $1) }
        if let before {
            let result = try before.run(named)
            for output in result.outputs { values[output.name] = output.tensor }
            add(result.timings)
        }
        let start = MonotonicClock.nanoseconds()
        let hostInputs = try node.inputs.map { name -> Tensor? in
            guard !name.isEmpty else { return nil }
            guard let tensor = value(name) else {
                throw RuntimeError.invalidNode(node: node.displayName, detail: "input '\(name)' was not computed")
            }
            return tensor
        }
        let results = try runHost(hostInputs)
        for (name, tensor) in zip(node.outputs, results) where !name.isEmpty { values[name] = tensor }
        timings.computeNanoseconds += MonotonicClock.nanoseconds() - start
        if let afterGraph {
            if after == nil {
                var typed = afterGraph
                typed.inputs =
                    graph.inputs
                    + (try boundary.map { name in
                        guard let tensor = values[name] else {
                            throw RuntimeError.invalidNode(node: node.displayName, detail: "value '\(name)' is missing")
                        }
                        return ValueInfo(name: name, dtype: tensor.dtype, dimensions: nil)
                    })
                let session = try Session(graph: typed, backend: backend, evaluator: evaluator)
                session.stageDepth = depth
                after = session
            }
            if let after {
                var afterInputs = named
                for name in boundary {
                    guard let tensor = values[name] else {
                        throw RuntimeError.invalidNode(node: node.displayName, detail: "value '\(name)' is missing")
                    }
                    afterInputs.append(NamedTensor(name: name, tensor: tensor))
                }
                let result = try after.run(afterInputs)
                for output in result.outputs { values[output.name] = output.tensor }
                add(result.timings)
            }
        }
        let outputs = try graph.outputs.map { info in
            guard let tensor = value(info.name) else {
                throw RuntimeError.invalidNode(
                    node: node.displayName, detail: "graph output '\(info.name)' was not computed")
            }
            return NamedTensor(name: info.name, tensor: tensor)
        }
        return (outputs, timings)
    }

    /// The split node on host tensors: a data-dependent operator's host function, a loop's iterations, or the
    /// evaluator's kernel once the known inputs give the output shapes.
    private func runHost(_ inputs: [Tensor?]) throws -> [Tensor] {
        if let function = DataDependentOperators.function(opType: node.opType, domain: node.domain) {
            return try function(node, opset, inputs)
        }
        if node.domain.isEmpty && (node.opType == "Loop" || node.opType == "Scan") {
            if controlFlow == nil {
                controlFlow = try ControlFlowRunner(
                    node: node, opset: opset, backend: (evaluator as? any Backend) ?? backend, evaluator: evaluator)
            }
            guard let controlFlow else { throw RuntimeError.invalidNode(node: node.displayName, detail: "no body") }
            return try controlFlow.run(inputs)
        }
        guard let evaluator, evaluator.canEvaluate(opType: node.opType, domain: node.domain) else {
            throw RuntimeError.invalidNode(
                node: node.displayName,
                detail: "its output shape depends on values computed when the model runs, and no host kernel runs it")
        }
        var types: [String: TensorType] = [:]
        var known: [String: Tensor] = [:]
        for (name, tensor) in zip(node.inputs, inputs) {
            guard let tensor else { continue }
            types[name] = TensorType(dtype: tensor.dtype, shape: tensor.shape)
            known[name] = tensor
        }
        let outputTypes = try ShapeInference.inferNode(
            node, opset: opset, types: types, known: known, evaluator: evaluator)
        return try evaluator.evaluate(node: node, opset: opset, inputs: inputs, outputTypes: outputTypes)
    }
}
