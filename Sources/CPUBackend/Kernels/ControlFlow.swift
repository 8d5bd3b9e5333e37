import InferenceGraph
import InferenceRuntime
import InferenceTensor

/// If: runs one of two subgraph sessions, chosen by the condition at run time. The branches read outer
/// values through the node's capture inputs (see `Graph.capturingOuterValues`).
final class IfKernel: Kernel {
    private let condition: UnsafePointer<UInt8>
    private let captures: [(name: String, value: BoundValue)]
    private let thenSession: Session
    private let elseSession: Session
    private let outputs: [BoundValue]
    private let backend: any Backend
    private let name: String

    init(node: BoundNode, backend: any Backend) throws {
        guard case .graph(let thenBranch)? = node.attributes.attributes["then_branch"],
            case .graph(let elseBranch)? = node.attributes.attributes["else_branch"]
        else { throw node.fail("If needs then_branch and else_branch graphs") }
        condition = UnsafePointer(try node.input(0).pointer(UInt8.self))
        let captures = try thenBranch.inputs.enumerated().map { position, info in
            (name: info.name, value: try node.input(position + 1))
        }
        self.captures = captures
        func typed(_ graph: Graph) -> Graph {
            var graph = graph
            graph.inputs = zip(graph.inputs, captures).map { info, capture in
                ValueInfo(
                    name: info.name, dtype: capture.value.type.dtype,
                    dimensions: capture.value.shape.dimensions.map { .fixed($0) })
            }
            return graph
        }
        thenSession = try Session(graph: typed(thenBranch), backend: backend)
        elseSession = try Session(graph: typed(elseBranch), backend: backend)
        outputs = node.outputs
        self.backend = backend
        name = node.name
    }

    func run() throws {
        var inputs: [NamedTensor] = []
        inputs.reserveCapacity(captures.count)
        for capture in captures {
            var tensor = try Tensor(uninitialized: capture.value.type.dtype, shape: capture.value.shape)
            try tensor.withUnsafeMutableBytes { try backend.copy(from: capture.value.slice, to: $0) }
            inputs.append(NamedTensor(name: capture.name, tensor: tensor))
        }
        let session = condition.pointee != 0 ? thenSession : elseSession
        let results = try session.run(inputs).outputs
        guard results.count == outputs.count else {
            throw RuntimeError.invalidNode(
                node: name, detail: "the branch produced \(results.count) outputs, expected \(outputs.count)")
        }
        for (result, output) in zip(results, outputs) {
            guard result.tensor.shape == output.shape else {
                throw RuntimeError.invalidNode(
                    node: name, detail: "the branch produced shape \(result.tensor.shape), planned \(output.shape)")
            }
            try result.tensor.withUnsafeBytes { try backend.copy(from: $0, to: output.slice) }
        }
    }
}
