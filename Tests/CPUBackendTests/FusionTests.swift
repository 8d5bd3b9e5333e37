import CPUBackend
import Foundation
import InferenceGraph
import InferenceRuntime
import InferenceTensor
import InferenceTestSupport
import Testing

/// Plan-time fusion: which pairs merge, which must not, and that fused kernels compute what the nodes did.
struct FusionTests {
    static func tensor(_ shape: Shape, in range: ClosedRange<Float> = -1...1) throws -> Tensor {
        try Tensor(shape: shape, scalars: KernelTests.random(shape.elementCount, in: range))
    }

    /// x → Conv → BatchNormalization → Relu (→ extra readers of `observed`), plus a Gemm → Relu head.
    static func graph(outputs: [String] = ["y"], extraNodes: [Node] = []) throws -> Graph {
        let nodes =
            [
                Node(
                    name: "conv", opType: "Conv", inputs: ["x", "w", "b"], outputs: ["c"],
                    attributes: ["pads": .ints([1, 1, 1, 1])]),
                Node(name: "bn", opType: "BatchNormalization", inputs: ["c", "s", "o", "m", "v"], outputs: ["n"]),
                Node(name: "relu", opType: "Relu", inputs: ["n"], outputs: ["r"]),
                Node(name: "flat", opType: "Flatten", inputs: ["r"], outputs: ["f"]),
                Node(
                    name: "fc", opType: "Gemm", inputs: ["f", "fw", "fb"], outputs: ["g"],
                    attributes: ["transB": .int(1)]),
                Node(name: "act", opType: "Relu", inputs: ["g"], outputs: ["y"]),
            ] + extraNodes
        return Graph(
            name: "fusion",
            inputs: [ValueInfo(name: "x", dtype: .float32, dimensions: [.fixed(2), .fixed(3), .fixed(6), .fixed(6)])],
            outputs: outputs.map { ValueInfo(name: $0, dtype: .float32, dimensions: nil) }, nodes: nodes,
            initializers: [
                "w": try tensor([4, 3, 3, 3]), "b": try tensor([4]), "s": try tensor([4], in: 0.5...2),
                "o": try tensor([4]), "m": try tensor([4]), "v": try tensor([4], in: 0.1...2),
                "fw": try tensor([5, 144]), "fb": try tensor([5]),
            ], opsetImports: ["": 17])
    }

    func plan(_ graph: Graph) throws -> ExecutionPlan {
        try ExecutionPlan(
            graph: graph, inputTypes: ["x": TensorType(dtype: .float32, shape: [2, 3, 6, 6])], evaluator: CPUBackend(),
            fusion: CPUBackend().fusion)
    }

    @Test func convBatchNormReluAndGemmReluBecomeTwoKernels() throws {
        let plan = try plan(try Self.graph())
        #expect(plan.fusedNodeCount == 3)
        // Flatten is planned as a view of the Conv output: no step.
        #expect(plan.steps.map(\.node.opType) == ["Conv", "Gemm"])
        #expect(plan.viewCount == 1)
        #expect(try plan.steps[0].node.string(FusionRules.activationAttribute, default: "") == "Relu")
    }

    @Test func observableValuesAreNeverFusedAway() throws {
        // The Conv output is a graph output, and the Gemm output has a second reader: neither may merge with its
        // consumer. Only BatchNormalization + Relu, whose intermediate nobody else reads, becomes one kernel.
        let graph = try Self.graph(
            outputs: ["y", "c", "z"],
            extraNodes: [Node(name: "other", opType: "Sigmoid", inputs: ["g"], outputs: ["z"])])
        let plan = try plan(graph)
        #expect(plan.steps.map(\.node.opType) == ["Conv", "BatchNormalization", "Gemm", "Relu", "Sigmoid"])
        #expect(plan.fusedNodeCount == 1)
        #expect(try plan.steps[1].node.string(FusionRules.activationAttribute, default: "") == "Relu")
    }

    /// Conv + Clip(0, 6) (Relu6) runs as one Conv on every convolution algorithm (im2col and the direct kernel clip
    /// in their stores, Winograd over its output), with the unfused values; a Clip with run-time bounds stays apart.
    @Test(arguments: [
        (16, 16, 1, 3), (1, 8, 1, 3), (32, 32, 1, 3), (24, 24, 24, 3), (8, 16, 1, 1),
    ])
    func convClipIsFused(_ channels: Int, _ filters: Int, _ groups: Int, _ kernel: Int) throws {
        let w = try Self.tensor([filters, channels / groups, kernel, kernel], in: -1...1)
        let b = try Self.tensor([filters], in: -1...1)
        func graph(constantBounds: Bool) throws -> Graph {
            Graph(
                name: "relu6",
                inputs: [ValueInfo(name: "x", dtype: .float32, dimensions: nil)]
                    + (constantBounds ? [] : [ValueInfo(name: "hi", dtype: .float32, dimensions: [])]),
                outputs: [ValueInfo(name: "y", dtype: .float32, dimensions: nil)],
                nodes: [
                    Node(
                        opType: "Conv", inputs: ["x", "w", "b"], outputs: ["c"],
                        attributes: [
                            "group": .int(groups), "pads": .ints([kernel / 2, kernel / 2, kernel / 2, kernel / 2]),
                        ]),
                    Node(opType: "Clip", inputs: ["c", "lo", "hi"], outputs: ["y"]),
                ],
                initializers: ["w": w, "b": b, "lo": try Tensor(shape: [], scalars: [Float(0)])]
                    .merging(constantBounds ? ["hi": try Tensor(shape: [], scalars: [Float(6)])] : [:]) { $1 },
                opsetImports: ["": 13])
        }
        let x = try Self.tensor([1, channels, 12, 12], in: -3...3)
        let backend = CPUBackend()
        let fusedGraph = try graph(constantBounds: true)
        let plan = try ExecutionPlan(
            graph: fusedGraph, inputTypes: ["x": TensorType(dtype: .float32, shape: x.shape)], evaluator: backend,
            fusion: backend.fusion)
        #expect(plan.steps.map(\.node.opType) == ["Conv"])
        let fused = try Session(graph: fusedGraph, backend: backend).run([NamedTensor(name: "x", tensor: x)])
            .outputs[0].tensor
        let plain = try Session(graph: fusedGraph, backend: CPUBackend(fuses: false))
            .run([NamedTensor(name: "x", tensor: x)]).outputs[0].tensor
        let report = ToleranceReport.compare(
            try fused.scalars(as: Float.self), try plain.scalars(as: Float.self), relative: 1e-5, absolute: 1e-6)
        #expect(report.passed, "\(report)")
        #expect(try fused.scalars(as: Float.self).allSatisfy { $0 >= 0 && $0 <= 6 })
        let runtimeBounds = try graph(constantBounds: false)
        let unfusedPlan = try ExecutionPlan(
            graph: runtimeBounds,
            inputTypes: [
                "x": TensorType(dtype: .float32, shape: x.shape), "hi": TensorType(dtype: .float32, shape: []),
            ],
            evaluator: backend, fusion: backend.fusion)
        #expect(unfusedPlan.steps.map(\.node.opType) == ["Conv", "Clip"])
    }

    /// Conv + SiLU (Sigmoid·x) runs as one Conv with Swish in its store, on im2col, depthwise, Winograd and direct
    /// kernels; with a following 2x2 max pool (which does not commute with Swish) the pool stays a separate node.
    @Test(arguments: [(16, 16, 1, 3, false), (24, 24, 24, 3, false), (32, 32, 1, 3, true), (1, 8, 1, 3, true)])
    func convSwishIsFused(_ channels: Int, _ filters: Int, _ groups: Int, _ kernel: Int, _ pooled: Bool) throws {
        let w = try Self.tensor([filters, channels / groups, kernel, kernel], in: -1...1)
        let b = try Self.tensor([filters], in: -1...1)
        var nodes = [
            Node(
                opType: "Conv", inputs: ["x", "w", "b"], outputs: ["c"],
                attributes: ["group": .int(groups), "pads": .ints([1, 1, 1, 1])]),
            Node(opType: "Sigmoid", inputs: ["c"], outputs: ["s"]),
            Node(opType: "Mul", inputs: ["c", "s"], outputs: [pooled ? "m" : "y"]),
        ]
        if pooled {
            nodes.append(
                Node(
                    opType: "MaxPool", inputs: ["m"], outputs: ["y"],
                    attributes: ["kernel_shape": .ints([2, 2]), "strides": .ints([2, 2])]))
        }
        let graph = Graph(
            name: "silu", inputs: [ValueInfo(name: "x", dtype: .float32, dimensions: nil)],
            outputs: [ValueInfo(name: "y", dtype: .float32, dimensions: nil)], nodes: nodes,
            initializers: ["w": w, "b": b], opsetImports: ["": 13])
        let x = try Self.tensor([1, channels, 12, 12], in: -3...3)
        let backend = CPUBackend()
        let plan = try ExecutionPlan(
            graph: graph, inputTypes: ["x": TensorType(dtype: .float32, shape: x.shape)], evaluator: backend,
            fusion: backend.fusion)
        #expect(plan.steps.map(\.node.opType) == (pooled ? ["Conv", "MaxPool"] : ["Conv"]))
        let fused = try Session(graph: graph, backend: backend).run([NamedTensor(name: "x", tensor: x)])
            .outputs[0].tensor
        let plain = try Session(graph: graph, backend: CPUBackend(fuses: false))
            .run([NamedTensor(name: "x", tensor: x)]).outputs[0].tensor
        let report = ToleranceReport.compare(
            try fused.scalars(as: Float.self), try plain.scalars(as: Float.self), relative: 1e-5, absolute: 1e-6)
        #expect(report.passed, "\(report)")
    }

    /// Conv + HardSwish runs as one Conv on every kernel family: im2col (3x3 over 5 channels), pointwise (1x1 read in
    /// place), depthwise (channels in lanes), direct (3x3 over 3 channels) and Winograd (3x3 over 32 channels), with
    /// and without a bias, on one and two threads: bit for bit the unfused pair (the same formula, in registers or
    /// per row). A following 2x2 max pool stays separate (HardSwish dips below zero, so it does not commute).
    @Test(arguments: [
        (5, 8, 1, 3), (24, 40, 1, 1), (32, 32, 32, 3), (3, 16, 1, 3), (32, 32, 1, 3),
    ])
    func convHardSwishIsFused(_ channels: Int, _ filters: Int, _ groups: Int, _ kernel: Int) throws {
        let w = try Self.tensor([filters, channels / groups, kernel, kernel], in: -1...1)
        let b = try Self.tensor([filters], in: -1...1)
        for (biased, pooled) in [(true, false), (false, false), (true, true)] {
            var nodes = [
                Node(
                    opType: "Conv", inputs: biased ? ["x", "w", "b"] : ["x", "w"], outputs: ["c"],
                    attributes: ["group": .int(groups), "pads": .ints(Array(repeating: kernel / 2, count: 4))]),
                Node(opType: "HardSwish", inputs: ["c"], outputs: [pooled ? "h" : "y"]),
            ]
            if pooled {
                nodes.append(
                    Node(
                        opType: "MaxPool", inputs: ["h"], outputs: ["y"],
                        attributes: ["kernel_shape": .ints([2, 2]), "strides": .ints([2, 2])]))
            }
            let graph = Graph(
                name: "hardswish", inputs: [ValueInfo(name: "x", dtype: .float32, dimensions: nil)],
                outputs: [ValueInfo(name: "y", dtype: .float32, dimensions: nil)], nodes: nodes,
                initializers: ["w": w, "b": b], opsetImports: ["": 14])
            // Values around the kinks at -3 and 3 as well as between them.
            let x = try Self.tensor([1, channels, 13, 11], in: -6...6)
            for threads in [1, 2] {
                let backend = CPUBackend(threads: threads)
                let plan = try ExecutionPlan(
                    graph: graph, inputTypes: ["x": TensorType(dtype: .float32, shape: x.shape)], evaluator: backend,
                    fusion: backend.fusion)
                #expect(plan.steps.map(\.node.opType) == (pooled ? ["Conv", "MaxPool"] : ["Conv"]))
                let fused = try Session(graph: graph, backend: backend).run([NamedTensor(name: "x", tensor: x)])
                    .outputs[0].tensor.scalars(as: Float.self)
                let plain = try Session(graph: graph, backend: CPUBackend(threads: threads, fuses: false))
                    .run([NamedTensor(name: "x", tensor: x)]).outputs[0].tensor.scalars(as: Float.self)
                let differing = zip(fused, plain).filter { $0.bitPattern != $1.bitPattern }.count
                #expect(
                    fused.count == plain.count && differing == 0,
                    "\(channels)->\(filters) group \(groups) \(kernel)x\(kernel) bias \(biased): \(differing) differ")
            }
        }
    }

    /// The GEMM epilogue's bias and Swish in one pass: integer images and weights make every pre-activation exact,
    /// and biases put whole rows and parts of rows into Swish's far tail (below -87, where exp overflows and
    /// results are subnormal or zero) beside ordinary values in the same vectors; 9x7 pixels leave partial
    /// vectors at the end of each row; a NaN pixel stays NaN through every filter. Each value within 4 ulp of
    /// x·sigmoid(x) in double, on one and two threads.
    @Test func convBiasSwishEpilogueIsExactToTheTail() throws {
        let (channels, filters, height, width) = (24, 20, 9, 7)
        let w = (0..<filters * channels).map { Float(($0 * 7 + 3) % 5 - 2) }
        let biases: [Float] = [-150, -95.5, -88, -87.5, -86.5, -60.25, -20, -3.5, -0.5, 0, 0.5, 3, 20, 50, 87.5, 100]
        let b = (0..<filters).map { biases[$0 % biases.count] }
        var x = (0..<channels * height * width).map { Float(($0 * 11 + 5) % 7 - 3) }
        x[2 * height * width + 17] = .nan
        let graph = Graph(
            name: "silu", inputs: [ValueInfo(name: "x", dtype: .float32, dimensions: nil)],
            outputs: [ValueInfo(name: "y", dtype: .float32, dimensions: nil)],
            nodes: [
                Node(opType: "Conv", inputs: ["x", "w", "b"], outputs: ["c"]),
                Node(opType: "Sigmoid", inputs: ["c"], outputs: ["s"]),
                Node(opType: "Mul", inputs: ["c", "s"], outputs: ["y"]),
            ],
            initializers: [
                "w": try Tensor(shape: [filters, channels, 1, 1], scalars: w),
                "b": try Tensor(shape: [filters], scalars: b),
            ], opsetImports: ["": 13])
        let image = try Tensor(shape: [1, channels, height, width], scalars: x)
        let pixels = height * width
        for threads in [1, 2] {
            let backend = CPUBackend(threads: threads)
            let plan = try ExecutionPlan(
                graph: graph, inputTypes: ["x": TensorType(dtype: .float32, shape: image.shape)],
                evaluator: backend, fusion: backend.fusion)
            #expect(plan.steps.map(\.node.opType) == ["Conv"])
            let y = try Session(graph: graph, backend: backend).run([NamedTensor(name: "x", tensor: image)])
                .outputs[0].tensor.scalars(as: Float.self)
            for f in 0..<filters {
                for p in 0..<pixels {
                    var sum = Double(b[f])
                    for c in 0..<channels { sum += Double(w[f * channels + c]) * Double(x[c * pixels + p]) }
                    let got = y[f * pixels + p]
                    if sum.isNaN {
                        #expect(got.isNaN, "filter \(f), pixel \(p): \(got) for NaN")
                        continue
                    }
                    let want = Float(sum / (1 + Foundation.exp(-sum)))
                    #expect(
                        abs(got - want) <= 4 * want.ulp,
                        "filter \(f), pixel \(p), \(threads) threads: swish(\(sum)) = \(got), expected \(want)")
                }
            }
        }
    }

    /// Mul(x, Sigmoid(x)), either operand order, becomes one Swish; a Mul by another value's sigmoid, or a sigmoid
    /// someone else also reads, stays as written.
    @Test(arguments: [("x", "s", true), ("s", "x", true), ("s", "z", false)])
    func siluIsRecognized(_ left: String, _ right: String, _ fuses: Bool) throws {
        let graph = Graph(
            name: "silu",
            inputs: [
                ValueInfo(name: "x", dtype: .float32, dimensions: [.fixed(4), .fixed(8)]),
                ValueInfo(name: "z", dtype: .float32, dimensions: [.fixed(4), .fixed(8)]),
            ],
            outputs: [ValueInfo(name: "y", dtype: .float32, dimensions: nil)],
            nodes: [
                Node(name: "s", opType: "Sigmoid", inputs: ["x"], outputs: ["s"]),
                Node(name: "m", opType: "Mul", inputs: [left, right], outputs: ["y"]),
            ], opsetImports: ["": 17])
        let backend = CPUBackend()
        let plan = try ExecutionPlan(
            graph: graph,
            inputTypes: [
                "x": TensorType(dtype: .float32, shape: [4, 8]), "z": TensorType(dtype: .float32, shape: [4, 8]),
            ], evaluator: backend, fusion: backend.fusion)
        #expect(plan.steps.map(\.node.opType) == (fuses ? ["Swish"] : ["Sigmoid", "Mul"]))
        let x = try Self.tensor([4, 8], in: -6...6), z = try Self.tensor([4, 8], in: -6...6)
        let feeds = [NamedTensor(name: "x", tensor: x), NamedTensor(name: "z", tensor: z)]
        let fused = try Session(graph: graph, backend: backend).run(feeds).outputs[0].tensor
        let plain = try Session(graph: graph, backend: CPUBackend(fuses: false)).run(feeds).outputs[0].tensor
        let report = ToleranceReport.compare(
            try fused.scalars(as: Float.self), try plain.scalars(as: Float.self), relative: 1e-6, absolute: 1e-7)
        #expect(report.passed, "\(report)")
    }

    /// x·½·(1 + erf(x/√2)) becomes one Gelu; the same chain with another divisor is a different function and
    /// stays as written.
    @Test(arguments: [(2.0.squareRoot(), true), (2.0, false)])
    func geluChainIsRecognizedOnlyWithTheRightConstants(_ divisor: Double, _ fuses: Bool) throws {
        func scalar(_ v: Float) throws -> Tensor { try Tensor(shape: [], scalars: [v]) }
        let graph = Graph(
            name: "gelu", inputs: [ValueInfo(name: "x", dtype: .float32, dimensions: [.fixed(4), .fixed(8)])],
            outputs: [ValueInfo(name: "y", dtype: .float32, dimensions: nil)],
            nodes: [
                Node(name: "d", opType: "Div", inputs: ["x", "c"], outputs: ["t"]),
                Node(name: "e", opType: "Erf", inputs: ["t"], outputs: ["u"]),
                Node(name: "a", opType: "Add", inputs: ["u", "one"], outputs: ["v"]),
                Node(name: "m", opType: "Mul", inputs: ["x", "v"], outputs: ["w"]),
                Node(name: "h", opType: "Mul", inputs: ["w", "half"], outputs: ["y"]),
            ],
            initializers: ["c": try scalar(Float(divisor)), "one": try scalar(1), "half": try scalar(0.5)],
            opsetImports: ["": 17])
        let backend = CPUBackend()
        let plan = try ExecutionPlan(
            graph: graph, inputTypes: ["x": TensorType(dtype: .float32, shape: [4, 8])], evaluator: backend,
            fusion: backend.fusion)
        #expect(plan.steps.map(\.node.opType) == (fuses ? ["Gelu"] : ["Div", "Erf", "Add", "Mul", "Mul"]))
        // Either way the values are the chain's.
        let x = try Self.tensor([4, 8], in: -4...4)
        let y = try Session(graph: graph, backend: backend).run([NamedTensor(name: "x", tensor: x)]).outputs[0].tensor
        let expected = try x.scalars(as: Float.self).map { v -> Float in
            let t = Double(v) / Double(Float(divisor))
            return Float(Double(v) * 0.5 * (1 + Foundation.erf(t)))
        }
        let report = ToleranceReport.compare(try y.scalars(as: Float.self), expected, relative: 2e-6, absolute: 1e-7)
        #expect(report.passed, "\(report)")
    }

    /// The attention chain PyTorch exports (Q and Kᵀ each scaled by √scale, an optional mask Add, Softmax,
    /// MatMul with V) becomes one Attention node; its values are the chain's.
    @Test(arguments: [(4, false), (3, false), (4, true)])
    func exportedAttentionChainIsOneNode(_ rank: Int, _ masked: Bool) throws {
        let dims = rank == 4 ? [2, 3, 5, 8] : [6, 5, 8]
        let info = { (name: String) in ValueInfo(name: name, dtype: .float32, dimensions: dims.map { .fixed($0) }) }
        let perm = rank == 4 ? [0, 1, 3, 2] : [0, 2, 1]
        var nodes = [
            Node(name: "qs", opType: "Mul", inputs: ["q", "root"], outputs: ["q2"]),
            Node(name: "kt", opType: "Transpose", inputs: ["k"], outputs: ["kt"], attributes: ["perm": .ints(perm)]),
            Node(name: "ks", opType: "Mul", inputs: ["kt", "root"], outputs: ["kt2"]),
            Node(name: "qk", opType: "MatMul", inputs: ["q2", "kt2"], outputs: ["s"]),
            Node(
                name: "p", opType: "Softmax", inputs: [masked ? "sm" : "s"], outputs: ["p"],
                attributes: ["axis": .int(-1)]),
            Node(name: "pv", opType: "MatMul", inputs: ["p", "v"], outputs: ["y"]),
        ]
        var initializers = ["root": try Tensor(shape: [], scalars: [Float(0.125).squareRoot()])]
        if masked {
            nodes.insert(Node(name: "mask", opType: "Add", inputs: ["s", "m"], outputs: ["sm"]), at: 4)
            initializers["m"] = try Self.tensor([1, 5, 5], in: -3...0)
        }
        let graph = Graph(
            name: "attention", inputs: ["q", "k", "v"].map(info),
            outputs: [ValueInfo(name: "y", dtype: .float32, dimensions: nil)], nodes: nodes,
            initializers: initializers, opsetImports: ["": 17])
        let backend = CPUBackend()
        let types = Dictionary(
            uniqueKeysWithValues: ["q", "k", "v"].map { ($0, TensorType(dtype: .float32, shape: Shape(dims))) })
        let plan = try ExecutionPlan(graph: graph, inputTypes: types, evaluator: backend, fusion: backend.fusion)
        #expect(plan.steps.map(\.node.opType) == ["Attention"])
        let inputs = try ["q", "k", "v"].map { NamedTensor(name: $0, tensor: try Self.tensor(Shape(dims))) }
        let fused = try Session(graph: graph, backend: backend).run(inputs).outputs[0].tensor
        let plain = try Session(graph: graph, backend: CPUBackend(fuses: false)).run(inputs).outputs[0].tensor
        let report = ToleranceReport.compare(
            try fused.scalars(as: Float.self), try plain.scalars(as: Float.self), relative: 1e-5, absolute: 1e-6)
        #expect(report.passed, "\(report)")
    }

    @Test func fusedAndUnfusedRunsAgree() throws {
        let graph = try Self.graph(outputs: ["y"])
        let x = [NamedTensor(name: "x", tensor: try Self.tensor([2, 3, 6, 6]))]
        let fused = try Session(graph: graph, backend: CPUBackend()).run(x).outputs[0].tensor
        let plain = try Session(graph: graph, backend: CPUBackend(fuses: false)).run(x).outputs[0].tensor
        #expect(fused.shape == [2, 5])
        // Folding BatchNormalization into the weights rounds each weight once more, and the Gemm then sums 144
        // such products: agree to 1e-5 of the largest output (a missing bias, Relu or scale is off by far more).
        let reference = try plain.scalars(as: Float.self)
        let scale = Double(reference.map { abs($0) }.max() ?? 1)
        let report = ToleranceReport.compare(
            try fused.scalars(as: Float.self), reference, relative: 1e-5, absolute: 1e-5 * max(scale, 1))
        #expect(report.passed, "\(report)")
    }
}

/// Conv (+ Relu) + a 2x2, stride-2 MaxPool run as one kernel: Winograd pools in its output transform, the other
/// convolutions pool from a scratch output. Same bits as the nodes run one by one; other pools stay separate.
struct MaxPoolFusionTests {
    static func graph(channels: Int, filters: Int, size: (Int, Int), pool: [String: AttributeValue]) throws -> Graph {
        Graph(
            name: "pool",
            inputs: [
                ValueInfo(
                    name: "x", dtype: .float32,
                    dimensions: [.fixed(2), .fixed(channels), .fixed(size.0), .fixed(size.1)])
            ],
            outputs: [ValueInfo(name: "y", dtype: .float32, dimensions: nil)],
            nodes: [
                Node(
                    name: "conv", opType: "Conv", inputs: ["x", "w", "b"], outputs: ["c"],
                    attributes: ["pads": .ints([1, 1, 1, 1])]),
                Node(name: "relu", opType: "Relu", inputs: ["c"], outputs: ["r"]),
                Node(name: "pool", opType: "MaxPool", inputs: ["r"], outputs: ["y"], attributes: pool),
            ],
            initializers: [
                "w": try FusionTests.tensor([filters, channels, 3, 3]), "b": try FusionTests.tensor([filters]),
            ], opsetImports: ["": 17])
    }

    static let pool2x2: [String: AttributeValue] = ["kernel_shape": .ints([2, 2]), "strides": .ints([2, 2])]

    @Test(arguments: [
        (16, 24, ConvolutionAlgorithm.automatic), (1, 8, .automatic), (3, 5, .im2col), (16, 16, .winograd),
    ])
    func pooledConvolutionMatchesSeparateNodes(_ c: (Int, Int, ConvolutionAlgorithm)) throws {
        for size in [(9, 7), (8, 10)] {
            let graph = try Self.graph(channels: c.0, filters: c.1, size: size, pool: Self.pool2x2)
            let types = ["x": TensorType(dtype: .float32, shape: [2, c.0, size.0, size.1])]
            let plan = try ExecutionPlan(
                graph: graph, inputTypes: types, evaluator: CPUBackend(), fusion: CPUBackend().fusion)
            #expect(plan.steps.map(\.node.opType) == ["Conv"], "\(c) \(size)")
            let x = [NamedTensor(name: "x", tensor: try FusionTests.tensor([2, c.0, size.0, size.1]))]
            let fused = try Session(graph: graph, backend: CPUBackend(threads: 2, convolution: c.2)).run(x)
            let plain = try Session(graph: graph, backend: CPUBackend(fuses: false, convolution: c.2)).run(x)
            #expect(fused.outputs[0].tensor.shape == [2, c.1, size.0 / 2, size.1 / 2])
            #expect(fused.outputs[0].tensor.bitwiseEqual(plain.outputs[0].tensor), "\(c) \(size)")
        }
    }

    @Test func otherPoolsStaySeparate() throws {
        for pool: [String: AttributeValue] in [
            ["kernel_shape": .ints([3, 3]), "strides": .ints([2, 2])],
            ["kernel_shape": .ints([2, 2]), "strides": .ints([2, 2]), "pads": .ints([1, 1, 0, 0])],
            ["kernel_shape": .ints([2, 2]), "strides": .ints([2, 2]), "ceil_mode": .int(1)],
            ["kernel_shape": .ints([2, 2])],
        ] {
            let graph = try Self.graph(channels: 16, filters: 16, size: (8, 8), pool: pool)
            let plan = try ExecutionPlan(
                graph: graph, inputTypes: ["x": TensorType(dtype: .float32, shape: [2, 16, 8, 8])],
                evaluator: CPUBackend(),
                fusion: CPUBackend().fusion)
            #expect(plan.steps.map(\.node.opType) == ["Conv", "MaxPool"], "\(pool)")
        }
    }
}

/// Pooling splits its planes across threads when there is enough work; the split gives the same bits.
struct PoolingSplitTests {
    @Test(arguments: ["MaxPool", "AveragePool"])
    func twoThreadsGiveTheSameBits(_ op: String) throws {
        let graph = Graph(
            name: "pool",
            inputs: [
                ValueInfo(name: "x", dtype: .float32, dimensions: [.fixed(2), .fixed(16), .fixed(32), .fixed(32)])
            ],
            outputs: [ValueInfo(name: "y", dtype: .float32, dimensions: nil)],
            nodes: [
                Node(
                    name: "pool", opType: op, inputs: ["x"], outputs: ["y"],
                    attributes: [
                        "kernel_shape": .ints([3, 3]), "strides": .ints([2, 2]), "pads": .ints([1, 1, 1, 1]),
                    ])
            ], opsetImports: ["": 17])
        let x = [NamedTensor(name: "x", tensor: try FusionTests.tensor([2, 16, 32, 32]))]
        let one = try Session(graph: graph, backend: CPUBackend(threads: 1)).run(x).outputs[0].tensor
        let two = try Session(graph: graph, backend: CPUBackend(threads: 2)).run(x).outputs[0].tensor
        #expect(one.shape == [2, 16, 16, 16])
        #expect(one.bitwiseEqual(two))
    }
}

/// Edge, reflect and wrap padding of an empty axis into a non-empty output is a clear error, not a trap.
struct PadEmptyAxisTests {
    @Test(arguments: ["edge", "reflect", "wrap"])
    func nonConstantPaddingOfAnEmptyAxisIsAnError(_ mode: String) throws {
        let graph = Graph(
            name: "pad", inputs: [ValueInfo(name: "x", dtype: .float32, dimensions: [.fixed(2), .fixed(0)])],
            outputs: [ValueInfo(name: "y", dtype: .float32, dimensions: nil)],
            nodes: [
                Node(
                    name: "pad", opType: "Pad", inputs: ["x", "pads"], outputs: ["y"],
                    attributes: ["mode": .string(mode)])
            ],
            initializers: ["pads": try Tensor(shape: [4], scalars: [Int64(0), 1, 0, 1])], opsetImports: ["": 18])
        let x = [NamedTensor(name: "x", tensor: try Tensor(zeros: .float32, shape: [2, 0]))]
        do {
            _ = try Session(graph: graph, backend: CPUBackend()).run(x)
            Issue.record("\(mode) padding of an empty axis was accepted")
        } catch let error as RuntimeError {
            #expect(error.description.contains("empty axis 1"), "\(error)")
        }
    }
}

/// Pre-activation BatchNormalization + Relu/Clip (DenseNet) and a residual Add + Relu (ResNet) run as one kernel
/// each, with the same values as the unfused nodes (NaN and broadcasting included).
struct NormalizationAndResidualFusionTests {
    @Test func fusedValuesMatchTheUnfusedNodes() throws {
        func tensor(_ shape: [Int], in range: ClosedRange<Float> = -2...2) throws -> Tensor {
            try Tensor(shape: Shape(shape), scalars: (0..<shape.reduce(1, *)).map { _ in Float.random(in: range) })
        }
        let graph = Graph(
            name: "pre-activation",
            inputs: [
                ValueInfo(name: "x", dtype: .float32, dimensions: [.fixed(2), .fixed(3), .fixed(5), .fixed(7)]),
                ValueInfo(name: "r", dtype: .float32, dimensions: [.fixed(3), .fixed(1), .fixed(7)]),
            ],
            outputs: [
                ValueInfo(name: "relu", dtype: .float32, dimensions: nil),
                ValueInfo(name: "clipped", dtype: .float32, dimensions: nil),
                ValueInfo(name: "residual", dtype: .float32, dimensions: nil),
            ],
            nodes: [
                Node(opType: "BatchNormalization", inputs: ["x", "s", "o", "m", "v"], outputs: ["n"]),
                Node(opType: "Relu", inputs: ["n"], outputs: ["relu"]),
                Node(opType: "BatchNormalization", inputs: ["x", "s", "o", "m", "v"], outputs: ["n2"]),
                Node(opType: "Clip", inputs: ["n2", "lo", "hi"], outputs: ["clipped"]),
                Node(opType: "Add", inputs: ["x", "r"], outputs: ["sum"]),
                Node(opType: "Relu", inputs: ["sum"], outputs: ["residual"]),
            ],
            initializers: [
                "s": try tensor([3], in: 0.5...2), "o": try tensor([3]), "m": try tensor([3]),
                "v": try tensor([3], in: 0.1...2), "lo": try Tensor(shape: [], scalars: [Float(-0.5)]),
                "hi": try Tensor(shape: [], scalars: [Float(1)]),
            ], opsetImports: ["": 17])
        var x = try tensor([2, 3, 5, 7]).scalars(as: Float.self)
        x[3] = .nan
        let feeds = [
            NamedTensor(name: "x", tensor: try Tensor(shape: [2, 3, 5, 7], scalars: x)),
            NamedTensor(name: "r", tensor: try tensor([3, 1, 7])),
        ]
        let fusedSession = try Session(graph: graph, backend: CPUBackend())
        let fused = try fusedSession.run(feeds).outputs
        let plain = try Session(graph: graph, backend: CPUBackend(fuses: false)).run(feeds).outputs
        for (a, b) in zip(fused, plain) {
            let u = try a.tensor.scalars(as: Float.self), v = try b.tensor.scalars(as: Float.self)
            #expect(u.count == v.count)
            for (p, q) in zip(u, v) { #expect(p == q || (p.isNaN && q.isNaN), "\(a.name): \(p) vs \(q)") }
        }
        let plan = try ExecutionPlan(
            graph: graph,
            inputTypes: [
                "x": TensorType(dtype: .float32, shape: [2, 3, 5, 7]),
                "r": TensorType(dtype: .float32, shape: [3, 1, 7]),
            ], evaluator: CPUBackend(), fusion: CPUBackend().fusion)
        #expect(plan.steps.map(\.node.opType) == ["BatchNormalization", "BatchNormalization", "Add"])
    }
}
