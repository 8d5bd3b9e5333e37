import InferenceGraph
import InferenceTensor
import Testing

struct GraphTests {
    func graph(_ nodes: [Node], outputs: [String] = ["y"]) -> Graph {
        Graph(
            name: "g", inputs: [ValueInfo(name: "x", dtype: .float32, dimensions: [.fixed(2)])],
            outputs: outputs.map { ValueInfo(name: $0, dtype: .float32, dimensions: nil) }, nodes: nodes)
    }

    @Test func sortsNodesByDependencies() throws {
        let g = graph([
            Node(name: "b", opType: "Relu", inputs: ["t"], outputs: ["y"]),
            Node(name: "a", opType: "Sigmoid", inputs: ["x"], outputs: ["t"]),
        ])
        #expect(try g.topologicallySorted().map(\.name) == ["a", "b"])
    }

    @Test func danglingValueNamesTheNode() {
        let g = graph([Node(name: "n", opType: "Relu", inputs: ["missing"], outputs: ["y"])])
        #expect(throws: GraphError.danglingValue(name: "missing", node: "Relu node 'n'")) {
            try g.topologicallySorted()
        }
    }

    @Test func cycleIsReported() {
        let g = graph([
            Node(name: "a", opType: "Add", inputs: ["x", "q"], outputs: ["p"]),
            Node(name: "b", opType: "Relu", inputs: ["p"], outputs: ["q"]),
            Node(name: "c", opType: "Relu", inputs: ["q"], outputs: ["y"]),
        ])
        #expect(throws: GraphError.cycle(nodes: ["Add node 'a'", "Relu node 'b'", "Relu node 'c'"])) {
            try g.topologicallySorted()
        }
    }

    @Test func duplicateOutputIsReported() {
        let g = graph([
            Node(name: "a", opType: "Relu", inputs: ["x"], outputs: ["y"]),
            Node(name: "b", opType: "Relu", inputs: ["x"], outputs: ["y"]),
        ])
        #expect(throws: GraphError.duplicateValue(name: "y", node: "Relu node 'b'")) { try g.topologicallySorted() }
    }

    @Test func broadcastRules() {
        #expect(ShapeInference.broadcast([4, 1], [1, 5]) == [4, 5])
        #expect(ShapeInference.broadcast([], [3]) == [3])
        #expect(ShapeInference.broadcast([2, 3, 4], [3, 1]) == [2, 3, 4])
        #expect(ShapeInference.broadcast([0, 3], [1, 3]) == [0, 3])
        #expect(ShapeInference.broadcast([2, 3], [4]) == nil)
    }

    @Test func memoryPlanReusesDeadBuffersAndNeverOverlapsLiveOnes() {
        // A chain x -> a -> b -> c -> y: each value dies after the next step.
        let sizes: [Int?] = [256, 256, 256, 256, 256, nil]
        let first = [-1, 0, 1, 2, 3, -1]
        let last = [0, 1, 2, 3, 4, 0]
        let plan = MemoryPlanner.assign(sizes: sizes, firstDefinition: first, lastUse: last)
        #expect(plan.arenaBytes == 512)
        #expect(plan.unsharedBytes == 1280)
        #expect(plan.offsets[5] == nil)
        for i in 0..<5 {
            for j in (i + 1)..<5 where first[j] <= last[i] && first[i] <= last[j] {
                #expect(plan.offsets[i] != plan.offsets[j], "live values \(i) and \(j) share memory")
            }
        }
    }

    @Test func gemmShapeInferenceChecksInnerDimension() throws {
        let g = Graph(
            name: "g", inputs: [ValueInfo(name: "x", dtype: .float32, dimensions: [.symbolic("n"), .fixed(3)])],
            outputs: [ValueInfo(name: "y", dtype: .float32, dimensions: nil)],
            nodes: [
                Node(name: "fc", opType: "Gemm", inputs: ["x", "w"], outputs: ["y"], attributes: ["transB": .int(1)])
            ],
            initializers: ["w": try Tensor(shape: [5, 4], scalars: [Float](repeating: 0, count: 20))])
        #expect(throws: ShapeError.self) {
            try ExecutionPlan(graph: g, inputTypes: ["x": TensorType(dtype: .float32, shape: [2, 3])])
        }
    }
}
