import InferenceTensor

extension Graph {
    /// Names the graph reads but does not define (no node output, input or initializer): values a
    /// subgraph captures from the enclosing graph, in first-use order.
    public var freeVariables: [String] {
        var defined = Set(inputs.map(\.name)).union(initializers.keys)
        for node in nodes { for output in node.outputs where !output.isEmpty { defined.insert(output) } }
        var seen: Set<String> = []
        var free: [String] = []
        for node in nodes {
            for input in node.inputs where !input.isEmpty && !defined.contains(input) && seen.insert(input).inserted {
                free.append(input)
            }
        }
        return free
    }

    /// The same graph where every If node lists the outer values its branches read as extra inputs
    /// (after the condition) and names them in a `captures` attribute, so planning sees the dependency
    /// and keeps those values alive. Nested subgraphs are processed first. Idempotent: an If that already has
    /// its `captures` (a branch planned from a rewritten graph) is left as it is, since its branches now list
    /// the captured values as inputs and would otherwise appear to capture nothing.
    public func capturingOuterValues() -> Graph {
        var graph = self
        graph.nodes = nodes.map { node in
            if (node.opType == "Loop" || node.opType == "Scan"), node.domain.isEmpty,
                node.attributes["captures"] == nil,
                case .graph(let bodyGraph)? = node.attributes["body"]
            {
                // The body's own inputs stay first; captured outer values follow, after the node's inputs too.
                let body = bodyGraph.capturingOuterValues()
                let captures = body.freeVariables
                var rewritten = node
                rewritten.inputs = node.inputs + captures
                var typedBody = body
                typedBody.inputs += captures.map { ValueInfo(name: $0, dtype: .float32, dimensions: nil) }
                rewritten.attributes["body"] = .graph(typedBody)
                rewritten.attributes["captures"] = .strings(captures)
                return rewritten
            }
            guard node.opType == "If", node.domain.isEmpty, node.attributes["captures"] == nil,
                case .graph(let thenGraph)? = node.attributes["then_branch"],
                case .graph(let elseGraph)? = node.attributes["else_branch"]
            else { return node }
            let thenBranch = thenGraph.capturingOuterValues()
            let elseBranch = elseGraph.capturingOuterValues()
            var captures: [String] = []
            for name in thenBranch.freeVariables + elseBranch.freeVariables where !captures.contains(name) {
                captures.append(name)
            }
            var rewritten = node
            rewritten.inputs = [node.inputs.first ?? ""] + captures
            rewritten.attributes["then_branch"] = .graph(thenBranch.withInputs(captures))
            rewritten.attributes["else_branch"] = .graph(elseBranch.withInputs(captures))
            rewritten.attributes["captures"] = .strings(captures)
            return rewritten
        }
        return graph
    }

    /// The graph with `names` as its (only) inputs; their types are set when it is planned.
    func withInputs(_ names: [String]) -> Graph {
        var graph = self
        graph.inputs = names.map { ValueInfo(name: $0, dtype: .float32, dimensions: nil) }
        return graph
    }

    /// Output types of a graph for given input types and known values (type inference only, no folding).
    /// - Throws: `ShapeError` or `GraphError` from the first node that does not fit.
    public func inferOutputTypes(
        inputTypes: [String: TensorType], known: [String: Tensor], evaluator: (any ConstantEvaluator)? = nil
    ) throws -> [TensorType] {
        if let evaluator {
            // Plan the subgraph with folding, so shapes computed from known values resolve.
            var graph = self
            graph.inputs = inputs.map {
                ValueInfo(name: $0.name, dtype: inputTypes[$0.name]?.dtype ?? $0.dtype, dimensions: nil)
            }
            let plan = try ExecutionPlan(
                graph: graph, inputTypes: inputTypes.filter { known[$0.key] == nil },
                inputValues: known.filter { name, _ in inputs.contains { $0.name == name } }, evaluator: evaluator)
            return plan.outputs.map { plan.values[$0].type }
        }
        var types = inputTypes
        var values = known.merging(initializers) { $1 }
        for (name, tensor) in initializers { types[name] = TensorType(dtype: tensor.dtype, shape: tensor.shape) }
        for node in try topologicallySorted() {
            let opset = opset(for: node)
            let outputs = try ShapeInference.inferNode(node, opset: opset, types: types, known: values)
            for (name, type) in zip(node.outputs, outputs) where !name.isEmpty { types[name] = type }
            if let value = try ShapeInference.planTimeValue(node, opset: opset, types: types) {
                values[node.outputs[0]] = value
            }
        }
        return try outputs.map { output in
            guard let type = types[output.name] else {
                throw GraphError.danglingValue(name: output.name, node: "subgraph output")
            }
            return type
        }
    }
}
