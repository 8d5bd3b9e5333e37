import CPUBackend
import Foundation
import InferenceGraph
import InferenceRuntime
import InferenceTensor
import InferenceTestSupport
import Testing

/// The packed LSTM/GRU/RNN kernel (constant weights: GEMMs plus vectorized gates) against the scalar reference kernel
/// (the same node with its weights fed as inputs), over layouts, directions, both GRU forms, clip, peepholes,
/// initial states and sequence lengths, on the ISA path this run uses.
struct PackedRecurrentTests {
    struct Case: CustomStringConvertible, Sendable {
        var op: String
        var direction: String
        var layout: Int
        var seq: Int, batch: Int, input: Int, hidden: Int
        var linearBeforeReset = 0
        var clip: Float?
        var peepholes = false
        var initialStates = false
        var lengths: [Int32]?
        var description: String {
            "\(op) \(direction) layout \(layout) seq \(seq) batch \(batch) in \(input) h \(hidden) lbr \(linearBeforeReset) "
                + "clip \(clip.map { "\($0)" } ?? "-") peep \(peepholes) init \(initialStates) lens \(lengths ?? [])"
        }
    }

    static let cases: [Case] = [
        Case(op: "LSTM", direction: "forward", layout: 0, seq: 7, batch: 3, input: 5, hidden: 9),
        Case(
            op: "LSTM", direction: "bidirectional", layout: 1, seq: 6, batch: 2, input: 4, hidden: 17, peepholes: true,
            initialStates: true),
        Case(
            op: "LSTM", direction: "reverse", layout: 0, seq: 5, batch: 4, input: 3, hidden: 33, clip: 0.7,
            lengths: [5, 2, 0, 4]),
        Case(op: "GRU", direction: "forward", layout: 0, seq: 8, batch: 1, input: 6, hidden: 40),
        Case(
            op: "GRU", direction: "bidirectional", layout: 0, seq: 6, batch: 3, input: 5, hidden: 16,
            linearBeforeReset: 1, initialStates: true, lengths: [6, 3, 1]),
        Case(op: "GRU", direction: "reverse", layout: 1, seq: 4, batch: 2, input: 7, hidden: 12, clip: 1.5),
        Case(
            op: "GRU", direction: "bidirectional", layout: 1, seq: 5, batch: 2, input: 4, hidden: 65,
            linearBeforeReset: 1),
        Case(op: "RNN", direction: "forward", layout: 0, seq: 9, batch: 3, input: 5, hidden: 20),
        Case(
            op: "RNN", direction: "bidirectional", layout: 1, seq: 6, batch: 2, input: 4, hidden: 33, clip: 0.9,
            initialStates: true, lengths: [6, 2]),
    ]

    static func random(_ count: Int, scale: Float = 1) -> [Float] {
        (0..<count).map { _ in Float.random(in: -scale...scale) }
    }

    @Test(arguments: cases) func packedMatchesReference(_ c: Case) throws {
        let gates = c.op == "LSTM" ? 4 : (c.op == "RNN" ? 1 : 3)
        let directions = c.direction == "bidirectional" ? 2 : 1
        let scale = 1 / Float(c.hidden).squareRoot()
        var tensors: [String: Tensor] = [
            "W": try Tensor(
                shape: [directions, gates * c.hidden, c.input],
                scalars: Self.random(directions * gates * c.hidden * c.input, scale: scale)),
            "R": try Tensor(
                shape: [directions, gates * c.hidden, c.hidden],
                scalars: Self.random(directions * gates * c.hidden * c.hidden, scale: scale)),
            "B": try Tensor(
                shape: [directions, 2 * gates * c.hidden], scalars: Self.random(directions * 2 * gates * c.hidden)),
        ]
        if c.peepholes {
            tensors["P"] = try Tensor(
                shape: [directions, 3 * c.hidden], scalars: Self.random(directions * 3 * c.hidden))
        }
        let stateShape = c.layout == 0 ? [directions, c.batch, c.hidden] : [c.batch, directions, c.hidden]
        var feeds = [
            NamedTensor(
                name: "X",
                tensor: try Tensor(
                    shape: Shape(c.layout == 0 ? [c.seq, c.batch, c.input] : [c.batch, c.seq, c.input]),
                    scalars: Self.random(c.seq * c.batch * c.input, scale: 2)))
        ]
        if c.initialStates {
            let count = directions * c.batch * c.hidden
            feeds.append(
                NamedTensor(name: "H0", tensor: try Tensor(shape: Shape(stateShape), scalars: Self.random(count))))
            if c.op == "LSTM" {
                feeds.append(
                    NamedTensor(name: "C0", tensor: try Tensor(shape: Shape(stateShape), scalars: Self.random(count))))
            }
        }
        if let lengths = c.lengths {
            feeds.append(NamedTensor(name: "L", tensor: try Tensor(shape: [c.batch], scalars: lengths)))
        }
        var inputs = ["X", "W", "R", "B", c.lengths == nil ? "" : "L", c.initialStates ? "H0" : ""]
        if c.op == "LSTM" { inputs += [c.initialStates ? "C0" : "", c.peepholes ? "P" : ""] }
        var attributes: [String: AttributeValue] = [
            "hidden_size": .int(c.hidden), "direction": .string(c.direction), "layout": .int(c.layout),
        ]
        if c.op == "GRU" { attributes["linear_before_reset"] = .int(c.linearBeforeReset) }
        if let clip = c.clip { attributes["clip"] = .float(clip) }
        let outputs = c.op == "LSTM" ? ["Y", "Y_h", "Y_c"] : ["Y", "Y_h"]
        let node = Node(opType: c.op, inputs: inputs, outputs: outputs, attributes: attributes)
        func graph(constantWeights: Bool) -> Graph {
            var declared = feeds.map { ValueInfo(name: $0.name, dtype: $0.tensor.dtype, dimensions: nil) }
            if !constantWeights {
                declared += tensors.map { ValueInfo(name: $0.key, dtype: .float32, dimensions: nil) }
            }
            return Graph(
                name: "rnn", inputs: declared,
                outputs: outputs.map { ValueInfo(name: $0, dtype: .float32, dimensions: nil) }, nodes: [node],
                initializers: constantWeights ? tensors : [:], opsetImports: ["": 14])
        }
        let packed = try Session(graph: graph(constantWeights: true), backend: CPUBackend(threads: 2))
            .run(feeds).outputs
        let reference = try Session(graph: graph(constantWeights: false), backend: CPUBackend(threads: 1))
            .run(feeds + tensors.map { NamedTensor(name: $0.key, tensor: $0.value) }).outputs
        #expect(packed.count == reference.count)
        for (p, r) in zip(packed, reference) {
            #expect(p.tensor.shape == r.tensor.shape, "\(c) \(p.name)")
            // Both are float32 computations of the same recurrence in different summation orders: the gates
            // saturate, so differences stay near float rounding, compounded over the steps.
            let report = ToleranceReport.compare(
                try p.tensor.scalars(as: Float.self), try r.tensor.scalars(as: Float.self), relative: 1e-4,
                absolute: 1e-5)
            #expect(report.passed, "\(c) \(p.name): \(report)")
        }
    }
}
