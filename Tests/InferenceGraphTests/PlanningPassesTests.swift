import CPUBackend
import InferenceGraph
import InferenceTensor
import Testing

/// Each planning pass on its own, on small graphs whose answer is known by hand; the real CPU backend folds.
struct PlanningPassesTests {
    let f32x23 = TensorType(dtype: .float32, shape: [2, 3])

    /// x[2,3] + (w1 + w2) → Relu → Reshape[3,2] → Relu → y; the constant sum and the reshape's shape are known.
    func chain() throws -> Graph {
        Graph(
            name: "chain", inputs: [ValueInfo(name: "x", dtype: .float32, dimensions: [.fixed(2), .fixed(3)])],
            outputs: [ValueInfo(name: "y", dtype: .float32, dimensions: nil)],
            nodes: [
                Node(name: "sum", opType: "Add", inputs: ["w1", "w2"], outputs: ["w"]),
                Node(name: "add", opType: "Add", inputs: ["x", "w"], outputs: ["a"]),
                Node(name: "relu1", opType: "Relu", inputs: ["a"], outputs: ["r"]),
                Node(name: "reshape", opType: "Reshape", inputs: ["r", "s"], outputs: ["v"]),
                Node(name: "relu2", opType: "Relu", inputs: ["v"], outputs: ["y"]),
            ],
            initializers: [
                "w1": try Tensor(shape: [3], scalars: [Float(1), 2, 3]),
                "w2": try Tensor(shape: [3], scalars: [Float(10), 20, 30]),
                "s": try Tensor(shape: [2], scalars: [Int64(3), 2]),
            ])
    }

    @Test func foldingEvaluatesNodesWhoseInputsAreAllKnown() throws {
        let graph = try chain()
        let folding = try PlanningPasses.foldConstants(
            graph: graph, inputTypes: ["x": f32x23], inputValues: [:], evaluator: CPUBackend(threads: 1))
        #expect(folding.foldedCount == 1)
        #expect(folding.live.map(\.node.name) == ["add", "relu1", "reshape", "relu2"])
        #expect(try folding.known["w"]?.scalars(as: Float.self) == [11, 22, 33])
        #expect(folding.types["v"] == TensorType(dtype: .float32, shape: [3, 2]))
        #expect(folding.types["y"] == TensorType(dtype: .float32, shape: [3, 2]))
    }

    @Test func withoutAnEvaluatorNothingIsEvaluated() throws {
        let folding = try PlanningPasses.foldConstants(
            graph: try chain(), inputTypes: ["x": f32x23], inputValues: [:], evaluator: nil)
        #expect(folding.foldedCount == 0)
        #expect(folding.live.count == 5)
    }

    @Test func aShapeFromARuntimeValueStopsPlanningAtThatNode() throws {
        let graph = Graph(
            name: "g",
            inputs: [
                ValueInfo(name: "x", dtype: .float32, dimensions: [.fixed(2), .fixed(3)]),
                ValueInfo(name: "s", dtype: .int64, dimensions: [.fixed(2)]),
            ],
            outputs: [ValueInfo(name: "y", dtype: .float32, dimensions: nil)],
            nodes: [Node(name: "reshape", opType: "Reshape", inputs: ["x", "s"], outputs: ["y"])])
        #expect(throws: DataDependentShape.self) {
            try PlanningPasses.foldConstants(
                graph: graph, inputTypes: ["x": f32x23, "s": TensorType(dtype: .int64, shape: [2])], inputValues: [:],
                evaluator: nil)
        }
        // Given the value at plan time, the same graph plans.
        let folding = try PlanningPasses.foldConstants(
            graph: graph, inputTypes: ["x": f32x23],
            inputValues: ["s": try Tensor(shape: [2], scalars: [Int64(6), 1])], evaluator: nil)
        #expect(folding.types["y"] == TensorType(dtype: .float32, shape: [6, 1]))
    }

    @Test func interningIndexesValuesAndGivesOmittedOutputsAPlaceholder() throws {
        let graph = Graph(
            name: "g", inputs: [ValueInfo(name: "x", dtype: .float32, dimensions: [.fixed(2), .fixed(3)])],
            outputs: [ValueInfo(name: "y", dtype: .float32, dimensions: nil)],
            nodes: [
                Node(name: "split", opType: "Split", inputs: ["x"], outputs: ["y", ""], attributes: ["axis": .int(1)])
            ], opsetImports: ["": 11])
        let folding = try PlanningPasses.foldConstants(
            graph: graph, inputTypes: ["x": f32x23], inputValues: [:], evaluator: nil)
        let interned = try PlanningPasses.intern(
            graph: graph, live: folding.live, known: folding.known, types: folding.types, inputValues: [:])
        #expect(interned.values.map(\.name).prefix(2) == ["x", "y"])
        #expect(interned.steps.count == 1)
        #expect(interned.steps[0].outputs.count == 2)
        let placeholder = interned.values[interned.steps[0].outputs[1]]
        #expect(placeholder.name.hasPrefix("\u{0}"))
        #expect(placeholder.type == TensorType(dtype: .float32, shape: [2, 1]))
        #expect(interned.inputs == [0])
        #expect(interned.outputs == [1])
    }

    func passesUpToViews() throws -> (PlanningPasses.Interned, [PlannedStep], [Int]) {
        let graph = try chain()
        let folding = try PlanningPasses.foldConstants(
            graph: graph, inputTypes: ["x": f32x23], inputValues: [:], evaluator: CPUBackend(threads: 1))
        let interned = try PlanningPasses.intern(
            graph: graph, live: folding.live, known: folding.known, types: folding.types, inputValues: [:])
        let (steps, aliasOf) = PlanningPasses.planViews(steps: interned.steps, values: interned.values)
        return (interned, steps, aliasOf)
    }

    @Test func viewsDropTheReshapeStepAndAliasItsOutput() throws {
        let (interned, steps, aliasOf) = try passesUpToViews()
        #expect(steps.map(\.node.name) == ["add", "relu1", "relu2"])
        let names = interned.values.map(\.name)
        let r = try #require(names.firstIndex(of: "r"))
        let v = try #require(names.firstIndex(of: "v"))
        #expect(aliasOf[v] == r)
        #expect(PlanningPasses.root(v, in: aliasOf) == r)
        #expect(interned.constants.keys.sorted() == ["s", "w"])
    }

    @Test func livenessSpansDefinitionToLastUseThroughViews() throws {
        let (interned, steps, aliasOf) = try passesUpToViews()
        let lifetimes = PlanningPasses.liveness(steps: steps, outputs: interned.outputs, aliasOf: aliasOf)
        let index = Dictionary(uniqueKeysWithValues: interned.values.enumerated().map { ($1.name, $0) })
        func span(_ name: String) -> [Int] {
            guard let i = index[name] else { return [] }
            return [lifetimes.firstDefinition[i], lifetimes.lastUse[i]]
        }
        #expect(span("x") == [-1, 0])  // an input: live before step 0, read by add
        #expect(span("a") == [0, 1])
        #expect(span("r") == [1, 2])  // read through its view v by relu2 (step 2)
        #expect(span("y") == [2, 3])  // a graph output lives to the end
    }

    @Test func memoryGivesViewsTheirRootsOffsetAndSeparatesLiveValues() throws {
        var (interned, steps, aliasOf) = try passesUpToViews()
        let lifetimes = PlanningPasses.liveness(steps: steps, outputs: interned.outputs, aliasOf: aliasOf)
        let allocation = PlanningPasses.assignMemory(values: &interned.values, aliasOf: aliasOf, lifetimes: lifetimes)
        let storage = Dictionary(uniqueKeysWithValues: interned.values.map { ($0.name, $0.storage) })
        #expect(storage["v"] == storage["r"])
        #expect(storage["w"] == .constant)
        // a and r are both live at step 1; r and y at step 2.
        #expect(storage["a"] != storage["r"])
        #expect(storage["r"] != storage["y"])
        // Four 24-byte values (x, a, r, y), each in its own aligned block without sharing; x dies at step 0 and y
        // is born at step 2, so the plan needs no more than three blocks.
        #expect(allocation.unsharedBytes == 4 * MemoryPlanner.alignment)
        #expect(allocation.arenaBytes <= 3 * MemoryPlanner.alignment)
    }

    @Test func stepsCarryTheirOperatorsParametersResolvedOnce() throws {
        let graph = Graph(
            name: "g",
            inputs: [ValueInfo(name: "x", dtype: .float32, dimensions: [.fixed(1), .fixed(2), .fixed(8), .fixed(8)])],
            outputs: [ValueInfo(name: "y", dtype: .float32, dimensions: nil)],
            nodes: [
                Node(
                    name: "pool", opType: "MaxPool", inputs: ["x"], outputs: ["p"],
                    attributes: ["kernel_shape": .ints([3, 3]), "strides": .ints([2, 2]), "ceil_mode": .int(1)]),
                Node(name: "slice", opType: "Slice", inputs: ["p", "starts", "ends", "axes"], outputs: ["s"]),
                Node(
                    name: "leaky", opType: "LeakyRelu", inputs: ["s"], outputs: ["y"],
                    attributes: ["alpha": .float(0.25)]),
            ],
            initializers: [
                "starts": try Tensor(shape: [1], scalars: [Int64(1)]),
                "ends": try Tensor(shape: [1], scalars: [Int64(-1)]),
                "axes": try Tensor(shape: [1], scalars: [Int64(3)]),
            ])
        let folding = try PlanningPasses.foldConstants(
            graph: graph, inputTypes: ["x": TensorType(dtype: .float32, shape: [1, 2, 8, 8])], inputValues: [:],
            evaluator: nil)
        let steps = try PlanningPasses.intern(
            graph: graph, live: folding.live, known: folding.known, types: folding.types, inputValues: [:]
        ).steps
        // (8 - 3) / 2 rounded up, plus 1: 4 with ceil_mode.
        #expect((steps[0].parameters as? ConvGeometry)?.output == [4, 4])
        // Columns 1 to the last but one of 4.
        #expect((steps[1].parameters as? SliceParameters)?.outputDimensions == [1, 2, 4, 2])
        #expect((steps[2].parameters as? UnaryOperator.Parameters)?.alpha == 0.25)
    }
}

/// An attn_mask's broadcast to [batch, query heads, query length, keys], and the masks that do not fit.
struct AttentionMaskLayoutTests {
    /// Batch 2, 4 heads, 3 queries, 5 new and 2 past keys of size 8.
    func geometry() throws -> AttentionGeometry {
        try AttentionGeometry.resolve(
            query: [2, 4, 3, 8], key: [2, 4, 5, 8], value: [2, 4, 5, 8], pastKey: [2, 4, 2, 8],
            pastValue: [2, 4, 2, 8],
            queryHeads: nil, keyValueHeads: nil)
    }

    @Test func aMaskBroadcastsWithZeroStridesOnItsUnitAxes() throws {
        // [query length, keys covered]: the same mask for every batch and head, 6 of the 7 keys covered.
        let g = try geometry()
        let layout = try g.maskLayout([3, 6])
        #expect(layout.length == 6)
        #expect(layout.strides == [0, 0, 6, 1])
        let full = try g.maskLayout([2, 4, 3, 7])
        #expect(full.strides == [84, 21, 7, 1])
    }

    @Test func masksThatDoNotFitAreRefused() throws {
        let g = try geometry()
        #expect(throws: ShapeError.Detail.self) { try g.maskLayout([7]) }  // rank 1
        #expect(throws: ShapeError.Detail.self) { try g.maskLayout([5, 7]) }  // 5 query rows, there are 3
        #expect(throws: ShapeError.Detail.self) { try g.maskLayout([3, 8]) }  // 8 keys, there are 7
    }

    @Test func operatorsWithoutADefinitionHaveNoParameters() throws {
        let context = ShapeInferenceContext(
            node: Node(name: "t", opType: "Transpose", inputs: ["x"], outputs: ["y"]), opset: 17,
            inputs: [TensorType(dtype: .float32, shape: [2, 3])], constants: [nil])
        #expect(try OperatorDefinitions.parameters(for: context) == nil)
    }
}
