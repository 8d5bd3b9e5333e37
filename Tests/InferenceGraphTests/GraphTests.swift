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

/// Slice and Range arithmetic on values straight from a model file: the integer limits give shapes, never traps.
struct ShapeArithmeticTests {
    @Test func sliceAtTheIntegerLimits() throws {
        let shape: Shape = [5]
        let extremes = [Int.min, Int.min + 1, -6, -5, -1, 0, 1, 4, 5, 6, Int.max - 1, Int.max]
        for start in extremes {
            for end in extremes {
                for step in [Int.min, Int.min + 1, -3, -1, 1, 2, Int.max - 1, Int.max] {
                    let p = try #require(
                        SliceParameters.resolve(shape: shape, starts: [start], ends: [end], axes: nil, steps: [step]))
                    // numpy's rule, computed with Python's unbounded integers in mind: indices visited stay in range.
                    let count = p.outputDimensions[0]
                    #expect(count >= 0 && count <= 5, "\(start):\(end):\(step) -> \(count)")
                    if count > 0 {
                        let last = p.starts[0] + (count - 1) * p.steps[0]
                        #expect(p.starts[0] >= 0 && p.starts[0] < 5 && last >= 0 && last < 5, "\(start):\(end):\(step)")
                    }
                }
            }
        }
        // Spot checks against numpy: x[0:MAX:MAX] has one element, x[4:MIN:MIN] one, x[::2] three, x[::-2] three.
        #expect(
            SliceParameters.resolve(shape: shape, starts: [0], ends: [Int.max], axes: nil, steps: [Int.max])?
                .outputDimensions == [1])
        #expect(
            SliceParameters.resolve(shape: shape, starts: [-1], ends: [Int.min], axes: nil, steps: [Int.min])?
                .outputDimensions == [1])
        #expect(
            SliceParameters.resolve(shape: shape, starts: [0], ends: [5], axes: nil, steps: [2])?.outputDimensions == [
                3
            ])
        #expect(
            SliceParameters.resolve(shape: shape, starts: [-1], ends: [Int.min], axes: nil, steps: [-2])?
                .outputDimensions == [3])
    }

    @Test func integerRangeCountsExactly() {
        #expect(ShapeInference.rangeCount(start: 0, limit: 10, delta: 3) == 4)
        #expect(ShapeInference.rangeCount(start: 10, limit: 0, delta: -3) == 4)
        #expect(ShapeInference.rangeCount(start: 0, limit: 10, delta: -1) == 0)
        #expect(ShapeInference.rangeCount(start: (1 << 53) + 1, limit: (1 << 53) + 4, delta: 1) == 3)
        #expect(ShapeInference.rangeCount(start: Int.min, limit: Int.max, delta: Int.max) == 3)
        #expect(ShapeInference.rangeCount(start: Int.min, limit: Int.max, delta: 1) == Int.max)
    }
}
