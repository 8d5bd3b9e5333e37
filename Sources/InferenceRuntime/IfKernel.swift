import InferenceGraph
import InferenceTensor

/// If on any backend: runs one of two subgraph sessions on the node's backend, chosen by the condition read back
/// at run time (a synchronizing one-byte copy on a GPU). The branches read outer values through the node's
/// capture inputs (see `Graph.capturingOuterValues`); constant subgraphs of a branch fold with the evaluator of
/// the session that planned the node.
public final class IfKernel: Kernel {
    private let condition: BufferSlice
    private let captures: [(name: String, value: BoundValue)]
    private let thenSession: Session
    private let elseSession: Session
    private let outputs: [BoundValue]
    private let backend: any Backend
    private let name: String

    public init(node: BoundNode, backend: any Backend) throws {
        let name = node.step.node.displayName
        guard case .graph(let thenBranch)? = node.step.node.attributes["then_branch"],
            case .graph(let elseBranch)? = node.step.node.attributes["else_branch"]
        else { throw RuntimeError.invalidNode(node: name, detail: "If needs then_branch and else_branch graphs") }
        guard let condition = node.inputs.first ?? nil, condition.type.shape.elementCount == 1 else {
            throw RuntimeError.invalidNode(node: name, detail: "the condition must be one boolean")
        }
        guard node.inputs.count == thenBranch.inputs.count + 1 else {
            throw RuntimeError.invalidNode(
                node: name, detail: "\(node.inputs.count - 1) captured values for \(thenBranch.inputs.count) inputs")
        }
        let captures = try thenBranch.inputs.enumerated().map { position, info in
            guard let value = node.inputs[position + 1] else {
                throw RuntimeError.invalidNode(node: name, detail: "captured value '\(info.name)' is missing")
            }
            return (name: info.name, value: value)
        }
        self.captures = captures
        func typed(_ graph: Graph) -> Graph {
            var graph = graph
            graph.inputs = zip(graph.inputs, captures).map { info, capture in
                ValueInfo(
                    name: info.name, dtype: capture.value.type.dtype,
                    dimensions: capture.value.type.shape.dimensions.map { .fixed($0) })
            }
            return graph
        }
        self.condition = condition.slice
        thenSession = try Session(graph: typed(thenBranch), backend: backend, evaluator: node.evaluator)
        elseSession = try Session(graph: typed(elseBranch), backend: backend, evaluator: node.evaluator)
        outputs = node.outputs
        self.backend = backend
        self.name = name
    }

    /// The branch is chosen on the host at run time, so the node cannot be recorded.
    public var replayable: Bool { false }

    public func run() throws {
        var flag: UInt8 = 0
        try withUnsafeMutableBytes(of: &flag) { try backend.copy(from: condition, to: $0) }
        var inputs: [NamedTensor] = []
        inputs.reserveCapacity(captures.count)
        for capture in captures {
            var tensor = try Tensor(uninitialized: capture.value.type.dtype, shape: capture.value.type.shape)
            try tensor.withUnsafeMutableBytes { try backend.copy(from: capture.value.slice, to: $0) }
            inputs.append(NamedTensor(name: capture.name, tensor: tensor))
        }
        let session = flag != 0 ? thenSession : elseSession
        let results = try session.run(inputs).outputs
        guard results.count == outputs.count else {
            throw RuntimeError.invalidNode(
                node: name, detail: "the branch produced \(results.count) outputs, expected \(outputs.count)")
        }
        for (result, output) in zip(results, outputs) {
            guard result.tensor.shape == output.type.shape else {
                throw RuntimeError.invalidNode(
                    node: name, detail: "the branch produced shape \(result.tensor.shape), planned \(output.type.shape)"
                )
            }
            try result.tensor.withUnsafeBytes { try backend.copy(from: $0, to: output.slice) }
        }
    }
}
