import CPUBackend
import InferenceGraph
import InferenceRuntime
import InferenceTensor
import InferenceTestSupport
import Testing

/// Graphs whose shapes depend on run-time values run in stages (`StagedPlan`): NonZero in the middle of a
/// graph, a Range to a computed length, a Loop reading an outer value; one session across runs whose
/// data-dependent shapes differ, and errors that name the node.
struct StagedPlanTests {
    static func floats(_ values: [Float]) throws -> Tensor { try Tensor(shape: [values.count], scalars: values) }

    @Test func nonZeroInTheMiddleOfAGraphFollowsTheData() throws {
        let session = try Session(graph: try StagedGraphs.positives(), backend: CPUBackend(threads: 1))
        for (x, positives) in [([1, -2, 3, 0.5], [1, 3, 0.5]), ([-1, -2], []), ([4, 5, 6], [4, 5, 6])]
            as [([Float], [Float])]
        {
            let outputs = try session.run([NamedTensor(name: "x", tensor: try Self.floats(x))]).outputs
            #expect(try outputs[0].tensor.scalars(as: Float.self) == positives)
            #expect(try outputs[1].tensor.scalars(as: Float.self) == [positives.reduce(0, +)])
        }
    }

    @Test func aShapeComputedFromDataIsPlannedWhenKnown() throws {
        let session = try Session(graph: try StagedGraphs.rangeToMaximum(), backend: CPUBackend(threads: 1))
        for (x, count) in [([1, 3.5, 2], 3), ([5, 0], 5), ([0], 0)] as [([Float], Int)] {
            let outputs = try session.run([NamedTensor(name: "x", tensor: try Self.floats(x))]).outputs
            #expect(try outputs[0].tensor.scalars(as: Float.self) == (0..<count).map { Float($0) })
        }
    }

    @Test func loopReadsOuterValuesAndFeedsLaterNodes() throws {
        let session = try Session(graph: try StagedGraphs.accumulatingLoop(), backend: CPUBackend(threads: 1))
        for m in [3, 0, 1] {
            let outputs = try session.run([
                NamedTensor(name: "m", tensor: try Tensor(shape: [], scalars: [Int64(m)])),
                NamedTensor(name: "w", tensor: try Self.floats([1, 10])),
            ]).outputs
            #expect(try outputs[0].tensor.scalars(as: Float.self) == [Float(2 * m), Float(20 * m)])
            #expect(outputs[1].tensor.shape == Shape([m, 2]))
            #expect(
                try outputs[1].tensor.scalars(as: Float.self)
                    == (1...max(m, 1)).prefix(m).flatMap { [Float($0), Float(10 * $0)] })
        }
    }

    @Test func preparedRunsOfAStagedModelGiveEachRunsResult() throws {
        let session = try Session(graph: try StagedGraphs.positives(), backend: CPUBackend(threads: 1))
        let prepared = try session.prepare([NamedTensor(name: "x", tensor: try Self.floats([1, -1, 2]))])
        _ = try prepared.run([try Self.floats([-3, 7, 8])])
        #expect(try prepared.outputs[0].tensor.scalars(as: Float.self) == [7, 8])
        #expect(prepared.steps.count == 1)
    }

    @Test func dataDependentErrorsNameTheNode() throws {
        // Compress whose condition selects past the end of the axis.
        let compress = Graph(
            name: "compress",
            inputs: [
                ValueInfo(name: "x", dtype: .float32, dimensions: [.fixed(2)]),
                ValueInfo(name: "c", dtype: .bool, dimensions: [.fixed(3)]),
            ],
            outputs: [ValueInfo(name: "y", dtype: .float32, dimensions: nil)],
            nodes: [
                Node(
                    name: "pick", opType: "Compress", inputs: ["x", "c"], outputs: ["y"], attributes: ["axis": .int(0)])
            ],
            opsetImports: ["": 13])
        let session = try Session(graph: compress, backend: CPUBackend(threads: 1))
        let x = NamedTensor(name: "x", tensor: try Self.floats([1, 2]))
        #expect(
            try session.run([x, NamedTensor(name: "c", tensor: try Tensor(shape: [3], scalars: [false, true, false]))])
                .outputs[0].tensor.scalars(as: Float.self) == [2])
        #expect {
            _ = try session.run([
                x, NamedTensor(name: "c", tensor: try Tensor(shape: [3], scalars: [false, false, true])),
            ])
        } throws: { "\($0)".contains("Compress node 'pick'") }

        // A Loop with neither a trip count nor a condition would never end.
        var endless = try StagedGraphs.accumulatingLoop()
        endless.nodes[0].inputs[0] = ""
        let loop = try Session(graph: endless, backend: CPUBackend(threads: 1))
        #expect {
            _ = try loop.run([
                NamedTensor(name: "m", tensor: try Tensor(shape: [], scalars: [Int64(1)])),
                NamedTensor(name: "w", tensor: try Self.floats([1, 1])),
            ])
        } throws: { "\($0)".contains("Loop node 'loop'") && "\($0)".contains("never ends") }
    }

    /// Hundreds of chained data-dependent nodes (each keeps the positive elements of the previous result) would
    /// nest a stage each: bounded, an error rather than a crash.
    @Test func stagesAreBounded() throws {
        func chain(_ count: Int) throws -> Graph {
            var nodes: [Node] = []
            for i in 0..<count {
                let source = i == 0 ? "x" : "p\(i - 1)"
                nodes += [
                    Node(name: "mask\(i)", opType: "Greater", inputs: [source, "zero"], outputs: ["m\(i)"]),
                    Node(name: "where\(i)", opType: "NonZero", inputs: ["m\(i)"], outputs: ["w\(i)"]),
                    Node(name: "flat\(i)", opType: "Reshape", inputs: ["w\(i)", "minus_one"], outputs: ["f\(i)"]),
                    Node(name: "keep\(i)", opType: "Gather", inputs: [source, "f\(i)"], outputs: ["p\(i)"]),
                ]
            }
            return Graph(
                name: "chain", inputs: [ValueInfo(name: "x", dtype: .float32, dimensions: [.fixed(4)])],
                outputs: [ValueInfo(name: "p\(count - 1)", dtype: .float32, dimensions: nil)], nodes: nodes,
                initializers: [
                    "zero": try Tensor(shape: [], scalars: [Float(0)]),
                    "minus_one": try Tensor(shape: [1], scalars: [Int64(-1)]),
                ], opsetImports: ["": 13])
        }
        let x = [NamedTensor(name: "x", tensor: try Tensor(shape: [4], scalars: [Float(1), -2, 3, 0]))]
        let long = try Session(graph: try chain(Session.stageLimit + 10), backend: CPUBackend(threads: 1))
        #expect { _ = try long.run(x) } throws: { "\($0)".contains("stages") }
        let short = try Session(graph: try chain(20), backend: CPUBackend(threads: 1))
        #expect(try short.run(x).outputs[0].tensor.scalars(as: Float.self) == [1, 3])
    }

    /// Bad attributes, shapes and indices of the detection operators are errors naming the node.
    @Test func detectionOperatorErrorsNameTheNode() throws {
        let x = try Tensor(shape: [2, 3], scalars: [Float](repeating: 1, count: 6))
        #expect {
            _ = try DataDependentOperators.unique(
                Node(name: "u", opType: "Unique", inputs: ["x"], outputs: ["y"], attributes: ["axis": .int(2)]), 11,
                [x])
        } throws: { "\($0)".contains("Unique node 'u'") && "\($0)".contains("axis 2") }
        #expect {
            _ = try DataDependentOperators.nonMaxSuppression(
                Node(name: "nms", opType: "NonMaxSuppression", inputs: [], outputs: ["s"]), 11,
                [x, try Tensor(shape: [1, 1, 3], scalars: [Float(1), 1, 1])])
        } throws: { "\($0)".contains("NonMaxSuppression node 'nms'") }

        // RoiAlign: a batch index past the batch, and a region whose sampling grid would be enormous.
        func roiAlign(batchIndex: Int64, box: [Float]) throws -> [NamedTensor] {
            let graph = Graph(
                name: "roi",
                inputs: [
                    ValueInfo(name: "x", dtype: .float32, dimensions: [.fixed(1), .fixed(1), .fixed(4), .fixed(4)]),
                    ValueInfo(name: "rois", dtype: .float32, dimensions: [.fixed(1), .fixed(4)]),
                    ValueInfo(name: "b", dtype: .int64, dimensions: [.fixed(1)]),
                ],
                outputs: [ValueInfo(name: "y", dtype: .float32, dimensions: nil)],
                nodes: [
                    Node(
                        name: "align", opType: "RoiAlign", inputs: ["x", "rois", "b"], outputs: ["y"],
                        attributes: ["output_height": .int(2), "output_width": .int(2)])
                ], opsetImports: ["": 16])
            return try Session(graph: graph, backend: CPUBackend(threads: 1)).run([
                NamedTensor(name: "x", tensor: try Tensor(shape: [1, 1, 4, 4], scalars: (0..<16).map { Float($0) })),
                NamedTensor(name: "rois", tensor: try Tensor(shape: [1, 4], scalars: box)),
                NamedTensor(name: "b", tensor: try Tensor(shape: [1], scalars: [batchIndex])),
            ]).outputs
        }
        #expect(try roiAlign(batchIndex: 0, box: [0, 0, 3, 3])[0].tensor.shape == [1, 1, 2, 2])
        #expect { _ = try roiAlign(batchIndex: 1, box: [0, 0, 3, 3]) } throws: {
            "\($0)".contains("RoiAlign node 'align'") && "\($0)".contains("out of range")
        }
        #expect { _ = try roiAlign(batchIndex: 0, box: [0, 0, 1e9, 1e9]) } throws: {
            "\($0)".contains("RoiAlign node 'align'") && "\($0)".contains("samples")
        }
        #expect { _ = try roiAlign(batchIndex: 0, box: [.nan, 0, 3, 3]) } throws: { "\($0)".contains("not finite") }
    }

    @Test func uniqueAndNonMaxSuppressionByHand() throws {
        let x = try Tensor(shape: [6], scalars: [Float(2), 1, 2, -0.0, 0, 3])
        let unique = try DataDependentOperators.unique(
            Node(opType: "Unique", inputs: ["x"], outputs: ["y", "i", "inv", "c"], attributes: ["sorted": .int(0)]), 11,
            [x])
        #expect(try unique[0].scalars(as: Float.self) == [2, 1, 0, 3])
        #expect(try unique[1].scalars(as: Int64.self) == [0, 1, 3, 5])
        #expect(try unique[2].scalars(as: Int64.self) == [0, 1, 0, 2, 2, 3])
        #expect(try unique[3].scalars(as: Int64.self) == [2, 1, 2, 1])
        // Two overlapping boxes (IoU 0.81) and one apart; the weaker overlapping box is suppressed.
        let boxes = try Tensor(shape: [1, 3, 4], scalars: [Float(0), 0, 1, 1, 0, 0, 0.9, 0.9, 5, 5, 6, 6])
        let scores = try Tensor(shape: [1, 1, 3], scalars: [Float(0.9), 0.95, 0.1])
        let selected = try DataDependentOperators.nonMaxSuppression(
            Node(opType: "NonMaxSuppression", inputs: [], outputs: ["s"]), 11,
            [
                boxes, scores, try Tensor(shape: [1], scalars: [Int64(10)]),
                try Tensor(shape: [1], scalars: [Float(0.5)]),
            ])
        #expect(try selected[0].scalars(as: Int64.self) == [0, 0, 1, 0, 0, 2])
    }
}
