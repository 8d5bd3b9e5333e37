import CPUBackend
import InferenceGraph
import InferenceRuntime
import InferenceTensor
import Testing

/// Bad LSTM/GRU attributes are errors that name the node and the problem (parsed once, for every backend, by
/// `RecurrentAttributes`); none of them traps.
struct RecurrentAttributeTests {
    static func run(_ op: String, _ attributes: [String: AttributeValue]) throws {
        let gates = op == "LSTM" ? 4 : 3
        let graph = Graph(
            name: "recurrent",
            inputs: [ValueInfo(name: "x", dtype: .float32, dimensions: [.fixed(2), .fixed(1), .fixed(3)])],
            outputs: [ValueInfo(name: "y", dtype: .float32, dimensions: nil)],
            nodes: [Node(name: "cell", opType: op, inputs: ["x", "w", "r"], outputs: ["y"], attributes: attributes)],
            initializers: [
                "w": try Tensor(shape: [1, gates * 4, 3], scalars: [Float](repeating: 0.1, count: gates * 12)),
                "r": try Tensor(shape: [1, gates * 4, 4], scalars: [Float](repeating: 0.1, count: gates * 16)),
            ], opsetImports: ["": 17])
        let x = try Tensor(shape: [2, 1, 3], scalars: [Float](repeating: 1, count: 6))
        _ = try Session(graph: graph, backend: CPUBackend(threads: 1)).run([NamedTensor(name: "x", tensor: x)])
    }

    @Test(arguments: [
        ("LSTM", ["hidden_size": AttributeValue.int(4), "input_forget": .int(1)], "input_forget=1"),
        ("GRU", ["hidden_size": .int(4), "direction": .string("sideways")], "direction 'sideways'"),
        ("GRU", ["hidden_size": .int(4), "activations": .strings(["Sigmoid"])], "1 activations given, 2 needed"),
        (
            "LSTM", ["hidden_size": .int(4), "activations": .strings(["Sigmoid", "Gauss", "Tanh"])],
            "activation 'Gauss'"
        ),
    ])
    func badAttributesNameTheNode(_ op: String, _ attributes: [String: AttributeValue], _ detail: String) {
        do {
            try Self.run(op, attributes)
            Issue.record("\(op) \(attributes) accepted")
        } catch {
            let text = "\(error)"
            #expect(text.contains("cell") && text.contains(detail), "\(text)")
        }
    }

    @Test func theDefaultsRun() throws {
        try Self.run("GRU", ["hidden_size": .int(4)])
        try Self.run("LSTM", ["hidden_size": .int(4), "activations": .strings(["HardSigmoid", "Tanh", "Softsign"])])
    }
}
