import CPUBackend
import Foundation
import InferenceGraph
import InferenceRuntime
import InferenceTensor
import Testing

/// The indexing operators (GatherElements, GatherND, ScatterElements, ScatterND, Gather, Trilu, OneHot, TopK,
/// CumSum, Einsum): hand-computed cases beside the ONNX node tests, and indices out of range, which must be
/// errors naming the node, never reads or writes outside a tensor.
struct IndexingTests {
    /// Runs one node whose inputs are float32 data and int64 indices (and float32 updates) on the CPU.
    static func run(
        _ node: Node, data: (Shape, [Float]), indices: (Shape, [Int64]), updates: (Shape, [Float])? = nil,
        opset: Int = 18
    ) throws -> [Float] {
        var inputs = [
            ValueInfo(name: "data", dtype: .float32, dimensions: data.0.dimensions.map { .fixed($0) }),
            ValueInfo(name: "indices", dtype: .int64, dimensions: indices.0.dimensions.map { .fixed($0) }),
        ]
        var feeds = [
            NamedTensor(name: "data", tensor: try Tensor(shape: data.0, scalars: data.1)),
            NamedTensor(name: "indices", tensor: try Tensor(shape: indices.0, scalars: indices.1)),
        ]
        if let updates {
            inputs.append(
                ValueInfo(name: "updates", dtype: .float32, dimensions: updates.0.dimensions.map { .fixed($0) }))
            feeds.append(NamedTensor(name: "updates", tensor: try Tensor(shape: updates.0, scalars: updates.1)))
        }
        let graph = Graph(
            name: "indexing", inputs: inputs, outputs: [ValueInfo(name: "y", dtype: .float32, dimensions: nil)],
            nodes: [node], initializers: [:], opsetImports: ["": opset])
        let session = try Session(graph: graph, backend: CPUBackend())
        return try #require(session.run(feeds).outputs.first).tensor.scalars(as: Float.self)
    }

    static func node(_ op: String, _ inputs: [String], _ attributes: [String: AttributeValue] = [:]) -> Node {
        Node(name: "the_\(op)", opType: op, inputs: inputs, outputs: ["y"], attributes: attributes)
    }

    @Test func gatherElementsAndScatterElementsByHand() throws {
        let data: (Shape, [Float]) = (Shape([2, 3]), [1, 2, 3, 4, 5, 6])
        // torch.gather(data, 1, [[2, 0], [1, -1]]) with a negative index counting from the end.
        #expect(
            try Self.run(
                Self.node("GatherElements", ["data", "indices"], ["axis": .int(1)]), data: data,
                indices: (Shape([2, 2]), [2, 0, 1, -1])) == [3, 1, 5, 6])
        #expect(
            try Self.run(
                Self.node(
                    "ScatterElements", ["data", "indices", "updates"], ["axis": .int(1), "reduction": .string("add")]),
                data: data, indices: (Shape([2, 2]), [0, 0, 2, 1]), updates: (Shape([2, 2]), [10, 20, 30, 40]))
                == [31, 2, 3, 4, 45, 36])
    }

    @Test func gatherNDAndScatterNDByHand() throws {
        let data: (Shape, [Float]) = (Shape([2, 2, 2]), [0, 1, 2, 3, 4, 5, 6, 7])
        #expect(
            try Self.run(
                Self.node("GatherND", ["data", "indices"]), data: data, indices: (Shape([2, 2]), [1, 0, 0, 1]))
                == [4, 5, 2, 3])
        // batch_dims 1: one index per batch entry.
        #expect(
            try Self.run(
                Self.node("GatherND", ["data", "indices"], ["batch_dims": .int(1)]), data: data,
                indices: (Shape([2, 1]), [1, 0])) == [2, 3, 4, 5])
        #expect(
            try Self.run(
                Self.node("ScatterND", ["data", "indices", "updates"]), data: data, indices: (Shape([1, 2]), [1, 1]),
                updates: (Shape([1, 2]), [-1, -2])) == [0, 1, 2, 3, 4, 5, -1, -2])
    }

    /// Every index far outside the tensor (including the int64 extremes, whose conversion through a
    /// floating-point path would trap) is refused by name, and a scatter leaves no partial output behind.
    @Test(arguments: [Int64(2), 3, -3, 1 << 40, .max, .min])
    func indicesOutOfRangeAreErrorsNamingTheNode(_ bad: Int64) throws {
        let data: (Shape, [Float]) = (Shape([2, 2]), [1, 2, 3, 4])
        let cases: [(Node, (Shape, [Int64]), (Shape, [Float])?)] = [
            (Self.node("Gather", ["data", "indices"]), (Shape([1]), [bad]), nil),
            (Self.node("GatherElements", ["data", "indices"]), (Shape([1, 2]), [0, bad]), nil),
            (Self.node("GatherND", ["data", "indices"]), (Shape([1, 2]), [0, bad]), nil),
            (
                Self.node("ScatterElements", ["data", "indices", "updates"]), (Shape([1, 2]), [bad, 0]),
                (Shape([1, 2]), [9, 9])
            ),
            (
                Self.node("ScatterND", ["data", "indices", "updates"]), (Shape([1, 1]), [bad]),
                (Shape([1, 2]), [9, 9])
            ),
        ]
        for (node, indices, updates) in cases {
            #expect {
                _ = try Self.run(node, data: data, indices: indices, updates: updates)
            } throws: { error in
                guard case RuntimeError.invalidNode(let name, let detail) = error else { return false }
                return name.contains(node.name) && detail.contains("out of range")
            }
        }
    }

    @Test func triluOneHotTopKCumSumAndEinsumByHand() throws {
        func run(_ node: Node, _ x: (Shape, [Float]), constants: [String: Tensor] = [:], outputs: Int = 1) throws
            -> [Tensor]
        {
            let graph = Graph(
                name: "t",
                inputs: [ValueInfo(name: "x", dtype: .float32, dimensions: x.0.dimensions.map { .fixed($0) })],
                outputs: node.outputs.map { ValueInfo(name: $0, dtype: .float32, dimensions: nil) }, nodes: [node],
                initializers: constants, opsetImports: ["": 18])
            let session = try Session(graph: graph, backend: CPUBackend())
            return try session.run([NamedTensor(name: "x", tensor: try Tensor(shape: x.0, scalars: x.1))]).outputs.map(
                \.tensor)
        }
        let matrix: (Shape, [Float]) = (Shape([3, 3]), [1, 2, 3, 4, 5, 6, 7, 8, 9])
        let lower = try run(
            Node(name: "tril", opType: "Trilu", inputs: ["x", "k"], outputs: ["y"], attributes: ["upper": .int(0)]),
            matrix, constants: ["k": try Tensor(shape: [], scalars: [Int64(-1)])])
        #expect(try lower[0].scalars(as: Float.self) == [0, 0, 0, 4, 0, 0, 7, 8, 0])
        // k far outside the matrix keeps everything (upper with k = int64.min) without overflow.
        let all = try run(
            Node(name: "triu", opType: "Trilu", inputs: ["x", "k"], outputs: ["y"]), matrix,
            constants: ["k": try Tensor(shape: [], scalars: [Int64.min])])
        #expect(try all[0].scalars(as: Float.self) == matrix.1)
        let top = try run(
            Node(name: "top", opType: "TopK", inputs: ["x", "k"], outputs: ["v", "i"]),
            (Shape([1, 5]), [3, 1, 3, 7, -2]), constants: ["k": try Tensor(shape: [1], scalars: [Int64(3)])])
        #expect(try top[0].scalars(as: Float.self) == [7, 3, 3])
        #expect(try top[1].scalars(as: Int64.self) == [3, 0, 2])
        let sums = try run(
            Node(
                name: "cumsum", opType: "CumSum", inputs: ["x", "axis"], outputs: ["y"],
                attributes: ["exclusive": .int(1), "reverse": .int(1)]),
            (Shape([4]), [1, 2, 3, 4]), constants: ["axis": try Tensor(shape: [], scalars: [Int64(0)])])
        #expect(try sums[0].scalars(as: Float.self) == [9, 7, 4, 0])
        let trace = try run(
            Node(
                name: "trace", opType: "Einsum", inputs: ["x"], outputs: ["y"], attributes: ["equation": .string("ii")]),
            matrix)
        #expect(try trace[0].scalars(as: Float.self) == [15])
        let transposedProduct = try run(
            Node(
                name: "gram", opType: "Einsum", inputs: ["x", "x"], outputs: ["y"],
                attributes: ["equation": .string("ij,kj->ik")]), (Shape([2, 2]), [1, 2, 3, 4]))
        #expect(try transposedProduct[0].scalars(as: Float.self) == [5, 11, 11, 25])
    }
}

/// float32 reductions over adjacent axes take one C pass (ck_reduce_axis): every mode and axis layout against a
/// double-precision reference, NaN propagating through max and min.
struct AdjacentReductionTests {
    @Test(arguments: ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceSumSquare"])
    func matchesDoubleReference(_ op: String) throws {
        let dims = [3, 4, 5, 6]
        var x = (0..<dims.reduce(1, *)).map { _ in Float.random(in: -2...2) }
        x[17] = .nan
        for axes in [[3], [2, 3], [1, 2], [0], [1], [0, 1, 2, 3]] {
            let graph = Graph(
                name: "r", inputs: [ValueInfo(name: "x", dtype: .float32, dimensions: dims.map { .fixed($0) })],
                outputs: [ValueInfo(name: "y", dtype: .float32, dimensions: nil)],
                nodes: [Node(opType: op, inputs: ["x", "axes"], outputs: ["y"], attributes: ["keepdims": .int(0)])],
                initializers: ["axes": try Tensor(shape: [axes.count], scalars: axes.map { Int64($0) })],
                opsetImports: ["": 18])
            let got = try Session(graph: graph, backend: CPUBackend()).run([
                NamedTensor(name: "x", tensor: try Tensor(shape: Shape(dims), scalars: x))
            ]).outputs[0].tensor.scalars(as: Float.self)
            // Reference: every element's output slot from its kept coordinates.
            let kept = (0..<4).filter { !axes.contains($0) }
            let outCount = kept.map { dims[$0] }.reduce(1, *)
            var sums = [Double](repeating: 0, count: outCount), counts = [Int](repeating: 0, count: outCount)
            var extremes = [Double?](repeating: nil, count: outCount)
            for flat in 0..<x.count {
                var rest = flat, coordinates = [Int](repeating: 0, count: 4)
                for axis in stride(from: 3, through: 0, by: -1) {
                    coordinates[axis] = rest % dims[axis]
                    rest /= dims[axis]
                }
                let slot = kept.reduce(0) { $0 * dims[$1] + coordinates[$1] }
                let v = Double(x[flat])
                sums[slot] += op == "ReduceSumSquare" ? v * v : v
                counts[slot] += 1
                if let e = extremes[slot] {
                    extremes[slot] = e.isNaN || v.isNaN ? .nan : (op == "ReduceMax" ? max(e, v) : min(e, v))
                } else {
                    extremes[slot] = v
                }
            }
            for slot in 0..<outCount {
                let want: Double =
                    switch op {
                    case "ReduceMax", "ReduceMin": extremes[slot] ?? .nan
                    case "ReduceMean": sums[slot] / Double(counts[slot])
                    default: sums[slot]
                    }
                if want.isNaN {
                    #expect(got[slot].isNaN, "\(op) \(axes) slot \(slot)")
                } else {
                    #expect(abs(Double(got[slot]) - want) <= 1e-5 * max(1, abs(want)), "\(op) \(axes) slot \(slot)")
                }
            }
        }
    }
}

/// Bad operands of the new operators are errors naming the node (planning or running), never a trap: Einsum
/// equations that do not fit, ReverseSequence lengths past the sequence, RotaryEmbedding positions past the cache,
/// GatherND batch_dims out of range, and an int64 OneHot depth read exactly.
struct OperatorErrorTests {
    static func session(_ node: Node, inputs: [ValueInfo], constants: [String: Tensor] = [:]) throws -> Session {
        let graph = Graph(
            name: "errors", inputs: inputs,
            outputs: node.outputs.map { ValueInfo(name: $0, dtype: .float32, dimensions: nil) }, nodes: [node],
            initializers: constants, opsetImports: ["": 23])
        return try Session(graph: graph, backend: CPUBackend())
    }

    static func float(_ name: String, _ shape: [Int]) -> ValueInfo {
        ValueInfo(name: name, dtype: .float32, dimensions: shape.map { .fixed($0) })
    }

    static func namesNode(_ error: any Error, _ node: String, _ text: String) -> Bool {
        "\(error)".contains(node) && "\(error)".contains(text)
    }

    @Test func malformedEinsumEquations() throws {
        let fitting = [[2, 3], [3, 5]]
        for (equation, shapes, text) in [
            ("ij,jk", [[2, 3], [4, 5]], "sizes 3 and 4"), ("ij,jk->ik", [[2, 3]], "names 2 operands"),
            ("ij,jk->iq", fitting, "not an input label"), ("i1,jk", fitting, "not a letter"),
            ("ij,jk->ii", fitting, "repeats a label"), ("ijk,jk", fitting, "does not fit"),
        ] {
            let inputs = shapes.enumerated().map { Self.float("x\($0.offset)", $0.element) }
            #expect {
                _ = try Self.session(
                    Node(
                        name: "the_einsum", opType: "Einsum", inputs: inputs.map(\.name), outputs: ["y"],
                        attributes: ["equation": .string(equation)]), inputs: inputs
                ).run(
                    try zip(inputs, shapes).map {
                        NamedTensor(name: $0.0.name, tensor: try Tensor(zeros: .float32, shape: Shape($0.1)))
                    })
            } throws: { Self.namesNode($0, "the_einsum", text) }
        }
    }

    @Test func reverseSequenceLengthsPastTheSequence() throws {
        let session = try Self.session(
            Node(
                name: "the_reverse", opType: "ReverseSequence", inputs: ["x", "lengths"], outputs: ["y"],
                attributes: ["time_axis": .int(0), "batch_axis": .int(1)]),
            inputs: [
                Self.float("x", [3, 2]), ValueInfo(name: "lengths", dtype: .int64, dimensions: [.fixed(2)]),
            ])
        for lengths in [[Int64(4), 1], [-1, 2], [.max, 0]] {
            #expect {
                _ = try session.run([
                    NamedTensor(
                        name: "x", tensor: try Tensor(shape: [3, 2], scalars: [Float](repeating: 1, count: 6))),
                    NamedTensor(name: "lengths", tensor: try Tensor(shape: [2], scalars: lengths)),
                ])
            } throws: { Self.namesNode($0, "the_reverse", "outside") }
        }
    }

    @Test func rotaryPositionsPastTheCache() throws {
        let session = try Self.session(
            Node(
                name: "the_rotary", opType: "RotaryEmbedding", inputs: ["x", "cos", "sin", "positions"], outputs: ["y"]),
            inputs: [
                Self.float("x", [1, 1, 2, 4]),
                ValueInfo(name: "positions", dtype: .int64, dimensions: [.fixed(1), .fixed(2)]),
            ],
            constants: [
                "cos": try Tensor(shape: [3, 2], scalars: [Float](repeating: 1, count: 6)),
                "sin": try Tensor(shape: [3, 2], scalars: [Float](repeating: 0, count: 6)),
            ])
        for positions in [[Int64(0), 3], [-4, 0], [.min, 1]] {
            #expect {
                _ = try session.run([
                    NamedTensor(
                        name: "x", tensor: try Tensor(shape: [1, 1, 2, 4], scalars: [Float](repeating: 1, count: 8))),
                    NamedTensor(name: "positions", tensor: try Tensor(shape: [1, 2], scalars: positions)),
                ])
            } throws: { Self.namesNode($0, "the_rotary", "out of range") }
        }
    }

    @Test func gatherNDBatchDimsOutOfRange() throws {
        for batchDims in [-1, 2, 5] {
            #expect {
                _ = try Self.session(
                    Node(
                        name: "the_gather", opType: "GatherND", inputs: ["x", "i"], outputs: ["y"],
                        attributes: ["batch_dims": .int(batchDims)]),
                    inputs: [
                        Self.float("x", [2, 3]),
                        ValueInfo(name: "i", dtype: .int64, dimensions: [.fixed(2), .fixed(1)]),
                    ]
                ).run([
                    NamedTensor(name: "x", tensor: try Tensor(zeros: .float32, shape: [2, 3])),
                    NamedTensor(name: "i", tensor: try Tensor(shape: [2, 1], scalars: [Int64(0), 1])),
                ])
            } throws: { Self.namesNode($0, "the_gather", "batch_dims") }
        }
    }

    @Test func oneHotDepthIsReadExactly() throws {
        let graph = Graph(
            name: "onehot", inputs: [ValueInfo(name: "i", dtype: .int64, dimensions: [.fixed(1)])],
            outputs: [ValueInfo(name: "y", dtype: .float32, dimensions: nil)],
            nodes: [Node(name: "the_onehot", opType: "OneHot", inputs: ["i", "d", "v"], outputs: ["y"])],
            initializers: [
                "d": try Tensor(shape: [], scalars: [Int64(16_777_217)]),
                "v": try Tensor(shape: [2], scalars: [Float(0), 1]),
            ], opsetImports: ["": 13])
        let y = try Session(graph: graph, backend: CPUBackend()).run([
            NamedTensor(name: "i", tensor: try Tensor(shape: [1], scalars: [Int64(-1)]))
        ]).outputs[0].tensor
        // 2^24 + 1 is not a float: through Float it became 2^24 and the index -1 landed one slot early.
        #expect(y.shape == [1, 16_777_217])
        #expect(try y.scalars(as: Float.self).last == 1)
    }
}

/// Concat of tensors large enough that two threads split the copy (at 64 KiB chunks of the output, which cut
/// through rows and blocks): every element in its place, along the first, a middle and the last axis.
struct LargeConcatTests {
    @Test(arguments: [0, 1, 3])
    func splitCopiesMatchTheDefinition(_ axis: Int) throws {
        let shapeA = [2, 3, 97, 301]
        var shapeB = shapeA
        shapeB[axis] += axis == 1 ? 2 : 1
        let xa = (0..<shapeA.reduce(1, *)).map { Float($0) }
        let xb = (0..<shapeB.reduce(1, *)).map { -Float($0) - 1 }
        let graph = Graph(
            name: "concat",
            inputs: [
                ValueInfo(name: "a", dtype: .float32, dimensions: nil),
                ValueInfo(name: "b", dtype: .float32, dimensions: nil),
            ],
            outputs: [ValueInfo(name: "y", dtype: .float32, dimensions: nil)],
            nodes: [Node(opType: "Concat", inputs: ["a", "b"], outputs: ["y"], attributes: ["axis": .int(axis)])])
        let feeds = [
            NamedTensor(name: "a", tensor: try Tensor(shape: Shape(shapeA), scalars: xa)),
            NamedTensor(name: "b", tensor: try Tensor(shape: Shape(shapeB), scalars: xb)),
        ]
        let y = try Session(graph: graph, backend: CPUBackend(threads: 2)).run(feeds).outputs[0].tensor
        let outer = shapeA[..<axis].reduce(1, *)
        let rowA = shapeA[axis...].reduce(1, *), rowB = shapeB[axis...].reduce(1, *)
        var expected: [Float] = []
        for o in 0..<outer {
            expected += xa[(o * rowA)..<((o + 1) * rowA)]
            expected += xb[(o * rowB)..<((o + 1) * rowB)]
        }
        #expect(y.shape.dimensions.reduce(1, *) * 4 >= 1 << 20)
        #expect(try y.scalars(as: Float.self) == expected)
    }
}
