import CPUBackend
import InferenceGraph
import InferenceRuntime
import InferenceTensor
import Testing

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Reshape, Flatten, Squeeze, Unsqueeze and Identity are planned as views: their output shares the input's arena
/// block, the step is dropped, and the block stays live as long as any of them is read, so no later value may
/// take its place while a view of it is still to be read.
struct ViewTests {
    static func graph() throws -> Graph {
        Graph(
            name: "views",
            inputs: [ValueInfo(name: "x", dtype: .float32, dimensions: [.fixed(2), .fixed(6)])],
            outputs: ["y", "v", "flat"].map { ValueInfo(name: $0, dtype: .float32, dimensions: nil) },
            nodes: [
                Node(name: "relu", opType: "Relu", inputs: ["x"], outputs: ["r"]),
                Node(name: "view", opType: "Reshape", inputs: ["r", "shape"], outputs: ["v"]),
                // Values defined after r's last direct reader: they must not take r's block while v lives.
                Node(name: "sigmoid", opType: "Sigmoid", inputs: ["x"], outputs: ["a"]),
                Node(name: "neg", opType: "Neg", inputs: ["a"], outputs: ["b"]),
                Node(name: "same", opType: "Identity", inputs: ["b"], outputs: ["c"]),
                Node(name: "view2", opType: "Reshape", inputs: ["c", "shape"], outputs: ["w"]),
                Node(name: "add", opType: "Add", inputs: ["v", "w"], outputs: ["y"]),
                Node(
                    name: "flatten", opType: "Flatten", inputs: ["y"], outputs: ["flat"], attributes: ["axis": .int(0)]),
            ],
            initializers: ["shape": try Tensor(shape: [2], scalars: [Int64(3), 4])], opsetImports: ["": 17])
    }

    @Test func viewsShareMemoryAndRunNoStep() throws {
        let graph = try Self.graph()
        let plan = try ExecutionPlan(
            graph: graph, inputTypes: ["x": TensorType(dtype: .float32, shape: [2, 6])], evaluator: CPUBackend())
        #expect(plan.steps.map(\.node.opType) == ["Relu", "Sigmoid", "Neg", "Add"])
        #expect(plan.viewCount == 4)
        func offset(_ name: String) -> ValueStorage? { plan.values.first { $0.name == name }?.storage }
        #expect(offset("v") == offset("r") && offset("w") == offset("b") && offset("flat") == offset("y"))
        #expect(offset("r") != offset("b") && offset("r") != offset("a") && offset("r") != offset("y"))

        let x = (0..<12).map { Float($0) - 5.5 }
        let outputs = try Session(graph: graph, backend: CPUBackend(threads: 1)).run([
            NamedTensor(name: "x", tensor: try Tensor(shape: [2, 6], scalars: x))
        ]).outputs
        let expected = x.map { max($0, 0) - 1 / (1 + exp(-$0)) }
        #expect(outputs.map(\.tensor.shape) == [Shape([3, 4]), Shape([3, 4]), Shape([1, 12])])
        let y = try outputs[0].tensor.scalars(as: Float.self)
        #expect(zip(y, expected).allSatisfy { abs($0 - $1) <= 1e-6 })
        #expect(try outputs[1].tensor.scalars(as: Float.self) == x.map { max($0, 0) })
        #expect(try outputs[2].tensor.scalars(as: Float.self) == y)
    }
}

/// Constant folding never materializes a blow-up at plan time: a Range of scalars to a billion elements stays a
/// step (computed at run time, in the arena), while folds that keep the size still happen.
struct PlanTimeFoldingTests {
    @Test func hugeGeneratedValuesAreNotFolded() throws {
        let graph = Graph(
            name: "range",
            inputs: [ValueInfo(name: "x", dtype: .float32, dimensions: [.fixed(4)])],
            outputs: [
                ValueInfo(name: "r", dtype: .int64, dimensions: nil),
                ValueInfo(name: "y", dtype: .float32, dimensions: nil),
            ],
            nodes: [
                Node(name: "range", opType: "Range", inputs: ["start", "limit", "delta"], outputs: ["r"]),
                Node(name: "flip", opType: "Transpose", inputs: ["w"], outputs: ["wt"]),
                Node(name: "add", opType: "Add", inputs: ["x", "wt"], outputs: ["y"]),
            ],
            initializers: [
                "start": try Tensor(shape: [], scalars: [Int64(0)]),
                "limit": try Tensor(shape: [], scalars: [Int64(1_000_000_000)]),
                "delta": try Tensor(shape: [], scalars: [Int64(1)]),
                "w": try Tensor(shape: [1, 4], scalars: [Float](repeating: 1, count: 4)),
            ], opsetImports: ["": 17])
        let plan = try ExecutionPlan(
            graph: graph, inputTypes: ["x": TensorType(dtype: .float32, shape: [4])], evaluator: CPUBackend())
        #expect(plan.steps.map(\.node.opType) == ["Range", "Add"])
        #expect(plan.constants["r"] == nil && plan.constants["wt"] != nil)
    }
}

/// Large float32 Add/Sub/Mul/Div split their elements across threads (cutting rows anywhere): the same bits as
/// one thread, and the exact elementwise result, for every broadcast form.
struct SplitBinaryTests {
    @Test(arguments: [
        ([3, 50_001], [50_001]), ([300, 701], [300, 1]), ([2, 1, 70_000], [1, 3, 1]), ([140_000], [1]),
    ])
    func splitMatchesOneThread(_ shapes: ([Int], [Int])) throws {
        let (sa, sb) = shapes
        let a = (0..<sa.reduce(1, *)).map { _ in Float.random(in: -2...2) }
        let b = (0..<sb.reduce(1, *)).map { _ in Float.random(in: 0.5...2) }
        for op in ["Add", "Sub", "Mul", "Div"] {
            let graph = Graph(
                name: op,
                inputs: [
                    ValueInfo(name: "a", dtype: .float32, dimensions: sa.map { .fixed($0) }),
                    ValueInfo(name: "b", dtype: .float32, dimensions: sb.map { .fixed($0) }),
                ],
                outputs: [ValueInfo(name: "y", dtype: .float32, dimensions: nil)],
                nodes: [Node(name: op, opType: op, inputs: ["a", "b"], outputs: ["y"])], opsetImports: ["": 17])
            let feeds = [
                NamedTensor(name: "a", tensor: try Tensor(shape: Shape(sa), scalars: a)),
                NamedTensor(name: "b", tensor: try Tensor(shape: Shape(sb), scalars: b)),
            ]
            let one = try Session(graph: graph, backend: CPUBackend(threads: 1)).run(feeds).outputs[0].tensor
            let two = try Session(graph: graph, backend: CPUBackend(threads: 2)).run(feeds).outputs[0].tensor
            #expect(one.bitwiseEqual(two), "\(op) \(sa) \(sb)")
        }
    }

    /// Concat in place: the producers of a channel Concat's inputs write straight into their block of its output
    /// (one after the other, 64-byte aligned) and the Concat runs no step; the result is the same as copying.
    @Test(arguments: [1, 2])
    func channelConcatIsWrittenInPlace(batch: Int) throws {
        let graph = Graph(
            name: "concat",
            inputs: [
                ValueInfo(name: "x", dtype: .float32, dimensions: [.fixed(batch), .fixed(16), .fixed(2), .fixed(2)])
            ],
            outputs: [ValueInfo(name: "y", dtype: .float32, dimensions: nil)],
            nodes: [
                Node(name: "relu", opType: "Relu", inputs: ["x"], outputs: ["a"]),
                Node(name: "neg", opType: "Neg", inputs: ["x"], outputs: ["b"]),
                Node(name: "cat", opType: "Concat", inputs: ["a", "b"], outputs: ["c"], attributes: ["axis": .int(1)]),
                Node(name: "double", opType: "Add", inputs: ["c", "c"], outputs: ["y"]),
            ], opsetImports: ["": 17])
        let type = TensorType(dtype: .float32, shape: [batch, 16, 2, 2])
        let plan = try ExecutionPlan(graph: graph, inputTypes: ["x": type], evaluator: CPUBackend())
        func offset(_ name: String) -> Int? {
            guard case .arena(let offset)? = plan.values.first(where: { $0.name == name })?.storage else { return nil }
            return offset
        }
        if batch == 1 {
            // Both inputs are whole channel ranges of the one image: blocks of c, no Concat step.
            #expect(plan.steps.map(\.node.opType) == ["Relu", "Neg", "Add"])
            #expect(offset("a") == offset("c") && offset("b") == offset("c").map { $0 + 16 * 4 * 4 })
        } else {
            // Two images: each input is two separate ranges of c, so the Concat copies.
            #expect(plan.steps.map(\.node.opType) == ["Relu", "Neg", "Concat", "Add"])
        }
        let x = (0..<(batch * 64)).map { Float($0 % 7) - 3 }
        let y = try Session(graph: graph, backend: CPUBackend(threads: 1)).run([
            NamedTensor(name: "x", tensor: try Tensor(shape: type.shape, scalars: x))
        ]).outputs[0].tensor.scalars(as: Float.self)
        var expected: [Float] = []
        for n in 0..<batch {
            let image = x[(n * 64)..<((n + 1) * 64)]
            expected += image.map { 2 * max($0, 0) } + image.map { -2 * $0 }
        }
        #expect(y == expected)
    }

    /// DenseNet's pattern: each Concat repeats the inputs of the one before and adds one. The earlier Concat's
    /// output becomes the leading block of the later one, so every layer's output is written once.
    @Test func growingConcatsArePrefixesOfTheLast() throws {
        let graph = Graph(
            name: "dense",
            inputs: [ValueInfo(name: "x", dtype: .float32, dimensions: [.fixed(1), .fixed(16), .fixed(2), .fixed(2)])],
            outputs: ["y", "z"].map { ValueInfo(name: $0, dtype: .float32, dimensions: nil) },
            nodes: [
                Node(name: "t", opType: "Relu", inputs: ["x"], outputs: ["t"]),
                Node(name: "a", opType: "Neg", inputs: ["t"], outputs: ["a"]),
                Node(name: "c1", opType: "Concat", inputs: ["t", "a"], outputs: ["c1"], attributes: ["axis": .int(1)]),
                Node(name: "z", opType: "Add", inputs: ["c1", "c1"], outputs: ["z"]),
                Node(name: "b", opType: "Sigmoid", inputs: ["a"], outputs: ["b"]),
                Node(
                    name: "c2", opType: "Concat", inputs: ["t", "a", "b"], outputs: ["c2"],
                    attributes: ["axis": .int(1)]),
                Node(name: "y", opType: "Add", inputs: ["c2", "c2"], outputs: ["y"]),
            ], opsetImports: ["": 17])
        let type = TensorType(dtype: .float32, shape: [1, 16, 2, 2])
        let plan = try ExecutionPlan(graph: graph, inputTypes: ["x": type], evaluator: CPUBackend())
        #expect(plan.steps.map(\.node.name) == ["t", "a", "z", "b", "y"])
        func offset(_ name: String) -> Int? {
            guard case .arena(let offset)? = plan.values.first(where: { $0.name == name })?.storage else { return nil }
            return offset
        }
        let base = try #require(offset("c2"))
        #expect([offset("t"), offset("c1"), offset("a"), offset("b")] == [base, base, base + 256, base + 512])
        let x = (0..<64).map { Float($0 % 5) - 2 }
        let outputs = try Session(graph: graph, backend: CPUBackend(threads: 1)).run([
            NamedTensor(name: "x", tensor: try Tensor(shape: type.shape, scalars: x))
        ]).outputs
        let t = x.map { max($0, 0) }, a = t.map { -$0 }, b = a.map { 1 / (1 + exp(-$0)) }
        #expect(try outputs[1].tensor.scalars(as: Float.self) == (t + a).map { 2 * $0 })
        let y = try outputs[0].tensor.scalars(as: Float.self)
        #expect(zip(y, (t + a + b).map { 2 * $0 }).allSatisfy { abs($0 - $1) <= 1e-6 })
    }

    /// A Concat whose input is a graph input (copied in by the session) or that repeats an input keeps its copy.
    @Test func concatsThatCannotBeWrittenInPlaceCopy() throws {
        let type = TensorType(dtype: .float32, shape: [1, 16, 2, 2])
        for inputs in [["x", "a"], ["a", "a"]] {
            let graph = Graph(
                name: "concat",
                inputs: [ValueInfo(name: "x", dtype: .float32, dimensions: type.shape.dimensions.map { .fixed($0) })],
                outputs: [ValueInfo(name: "y", dtype: .float32, dimensions: nil)],
                nodes: [
                    Node(name: "relu", opType: "Relu", inputs: ["x"], outputs: ["a"]),
                    Node(name: "cat", opType: "Concat", inputs: inputs, outputs: ["y"], attributes: ["axis": .int(1)]),
                ], opsetImports: ["": 17])
            let plan = try ExecutionPlan(graph: graph, inputTypes: ["x": type], evaluator: CPUBackend())
            #expect(plan.steps.map(\.node.opType) == ["Relu", "Concat"], "\(inputs)")
            let x = (0..<64).map { Float($0) - 30 }
            let y = try Session(graph: graph, backend: CPUBackend(threads: 1)).run([
                NamedTensor(name: "x", tensor: try Tensor(shape: type.shape, scalars: x))
            ]).outputs[0].tensor.scalars(as: Float.self)
            let relu = x.map { max($0, 0) }
            #expect(y == (inputs[0] == "x" ? x : relu) + relu, "\(inputs)")
        }
    }

    /// A recurrent node whose X is not 3-D is an error naming the node, not a run over zero sizes.
    @Test func recurrentSizesNeedAThreeDimensionalInput() throws {
        let node = Node(
            name: "gru", opType: "GRU", inputs: ["x", "w", "r"], outputs: ["y"], attributes: ["hidden_size": .int(4)])
        let attributes = try RecurrentAttributes(node)
        #expect(try attributes.sizes(of: [5, 2, 3], node: "gru") == (5, 2, 3))
        #expect(throws: RuntimeError.self) { try attributes.sizes(of: [5, 3], node: "gru") }
    }
}
