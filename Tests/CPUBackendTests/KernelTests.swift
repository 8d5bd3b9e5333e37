import CKernels
import CPUBackend
import Foundation
import InferenceGraph
import InferenceRuntime
import InferenceTensor
import InferenceTestSupport
import Testing

/// Random inputs, fresh per run (never zeros), compared against plain double-precision references.
struct KernelTests {
    static func random(_ count: Int, in range: ClosedRange<Float> = -2...2) -> [Float] {
        (0..<count).map { _ in Float.random(in: range) }
    }

    /// Runs a one-node graph on the CPU backend.
    static func run(
        _ node: Node, inputs: [(String, Shape, [Float])], constants: [String: Tensor] = [:], opset: Int = 17
    ) throws -> Tensor {
        let graph = Graph(
            name: "test",
            inputs: inputs.map {
                ValueInfo(name: $0.0, dtype: .float32, dimensions: $0.1.dimensions.map { .fixed($0) })
            },
            outputs: [ValueInfo(name: node.outputs[0], dtype: .float32, dimensions: nil)],
            nodes: [node], initializers: constants, opsetImports: ["": opset])
        let session = try Session(graph: graph, backend: CPUBackend())
        let feeds = try inputs.map { NamedTensor(name: $0.0, tensor: try Tensor(shape: $0.1, scalars: $0.2)) }
        return try #require(session.run(feeds).outputs.first).tensor
    }

    /// A·B in double precision, with Σ|a||b| per element for the float32 error bound.
    static func referenceGemm(_ a: [Float], _ b: [Float], m: Int, n: Int, k: Int, transA: Bool, transB: Bool)
        -> (values: [Double], magnitudes: [Double])
    {
        var out = [Double](repeating: 0, count: m * n)
        var magnitudes = [Double](repeating: 0, count: m * n)
        for i in 0..<m {
            for j in 0..<n {
                var sum = 0.0, magnitude = 0.0
                for p in 0..<k {
                    let av = transA ? a[p * m + i] : a[i * k + p]
                    let bv = transB ? b[j * k + p] : b[p * n + j]
                    sum += Double(av) * Double(bv)
                    magnitude += abs(Double(av) * Double(bv))
                }
                out[i * n + j] = sum
                magnitudes[i * n + j] = magnitude
            }
        }
        return (out, magnitudes)
    }

    struct GemmCase: Sendable, CustomTestStringConvertible {
        var m: Int, n: Int, k: Int
        var transA: Bool, transB: Bool
        var constantB: Bool
        var bias: [Int]?  // shape of C, nil for none
        var alpha: Float, beta: Float
        var testDescription: String {
            "m\(m) n\(n) k\(k) tA\(transA ? 1 : 0) tB\(transB ? 1 : 0) \(constantB ? "const" : "input")B C\(bias.map { "\($0)" } ?? "-") a\(alpha) b\(beta)"
        }
    }

    static let gemmCases: [GemmCase] = [
        GemmCase(m: 1, n: 1, k: 10, transA: false, transB: true, constantB: true, bias: [1], alpha: 1, beta: 1),
        GemmCase(m: 4, n: 1, k: 10, transA: false, transB: true, constantB: true, bias: [1], alpha: 1, beta: 1),
        GemmCase(m: 3, n: 37, k: 29, transA: false, transB: false, constantB: true, bias: [37], alpha: 0.5, beta: 2),
        GemmCase(m: 5, n: 64, k: 70, transA: true, transB: true, constantB: false, bias: [5, 1], alpha: 1, beta: 1),
        GemmCase(
            m: 8, n: 15, k: 33, transA: true, transB: false, constantB: false, bias: [8, 15], alpha: -1, beta: 0.25),
        GemmCase(m: 2, n: 100, k: 17, transA: false, transB: true, constantB: false, bias: nil, alpha: 1, beta: 1),
        GemmCase(m: 7, n: 3, k: 1, transA: false, transB: false, constantB: true, bias: [1, 3], alpha: 1, beta: 0),
        GemmCase(m: 33, n: 130, k: 257, transA: false, transB: true, constantB: true, bias: [130], alpha: 1, beta: 1),
    ]

    @Test(arguments: gemmCases)
    func gemmMatchesReference(_ c: GemmCase) throws {
        let a = Self.random(c.m * c.k)
        let b = Self.random(c.k * c.n)
        let aShape: Shape = c.transA ? [c.k, c.m] : [c.m, c.k]
        let bShape: Shape = c.transB ? [c.n, c.k] : [c.k, c.n]
        var inputs: [(String, Shape, [Float])] = [("a", aShape, a)]
        var constants: [String: Tensor] = [:]
        if c.constantB {
            constants["b"] = try Tensor(shape: bShape, scalars: b)
        } else {
            inputs.append(("b", bShape, b))
        }
        var nodeInputs = ["a", "b"]
        var biasValues: [Float] = []
        if let biasShape = c.bias {
            biasValues = Self.random(biasShape.reduce(1, *))
            constants["c"] = try Tensor(shape: Shape(biasShape), scalars: biasValues)
            nodeInputs.append("c")
        }
        let node = Node(
            opType: "Gemm", inputs: nodeInputs, outputs: ["y"],
            attributes: [
                "transA": .int(c.transA ? 1 : 0), "transB": .int(c.transB ? 1 : 0), "alpha": .float(c.alpha),
                "beta": .float(c.beta),
            ])
        let y = try Self.run(node, inputs: inputs, constants: constants)
        #expect(y.shape == [c.m, c.n])
        let product = Self.referenceGemm(a, b, m: c.m, n: c.n, k: c.k, transA: c.transA, transB: c.transB)
        var expected = [Double](repeating: 0, count: c.m * c.n)
        var magnitudes = [Double](repeating: 0, count: c.m * c.n)
        for i in 0..<c.m {
            for j in 0..<c.n {
                let alpha = Double(c.alpha), beta = Double(c.beta)
                var v = alpha * product.values[i * c.n + j]
                var magnitude = abs(alpha) * product.magnitudes[i * c.n + j]
                if let biasShape = c.bias {
                    let rows = biasShape.count == 2 ? biasShape[0] : 1
                    let cols = biasShape.last ?? 1
                    let bias = beta * Double(biasValues[(rows == 1 ? 0 : i) * cols + (cols == 1 ? 0 : j)])
                    v += bias
                    magnitude += abs(bias)
                }
                expected[i * c.n + j] = v
                magnitudes[i * c.n + j] = magnitude
            }
        }
        // α and β scale the sum and the bias: two more roundings.
        let report = ToleranceReport.compareSums(
            try y.scalars(as: Float.self), expected, magnitudes: magnitudes, terms: c.k + 2)
        #expect(report.passed, "\(report)")
    }

    struct MatMulCase: Sendable, CustomTestStringConvertible {
        var a: [Int], b: [Int], y: [Int]
        var testDescription: String { "\(a) x \(b)" }
    }

    static let matMulCases: [MatMulCase] = [
        MatMulCase(a: [3, 4], b: [4, 5], y: [3, 5]),
        MatMulCase(a: [2, 3, 4], b: [4, 6], y: [2, 3, 6]),
        MatMulCase(a: [2, 3, 4], b: [2, 4, 6], y: [2, 3, 6]),
        MatMulCase(a: [1, 3, 4], b: [5, 4, 2], y: [5, 3, 2]),
        MatMulCase(a: [4], b: [4, 3], y: [3]),
        MatMulCase(a: [2, 3, 4], b: [4], y: [2, 3]),
        MatMulCase(a: [2, 1, 3, 4], b: [3, 4, 5], y: [2, 3, 3, 5]),
        MatMulCase(a: [2, 40, 64], b: [2, 64, 48], y: [2, 40, 48]),
        MatMulCase(a: [3, 1, 50, 33], b: [1, 33, 70], y: [3, 1, 50, 70]),
    ]

    @Test(arguments: matMulCases)
    func matMulFollowsNumpy(_ c: MatMulCase) throws {
        let a = Self.random(c.a.reduce(1, *))
        let b = Self.random(c.b.reduce(1, *))
        let y = try Self.run(
            Node(opType: "MatMul", inputs: ["a", "b"], outputs: ["y"]),
            inputs: [("a", Shape(c.a), a), ("b", Shape(c.b), b)])
        #expect(y.shape.dimensions == c.y)
        // Reference: promote 1-D operands, broadcast batch dims, then squeeze the promoted axes.
        let aDims = c.a.count == 1 ? [1, c.a[0]] : c.a
        let bDims = c.b.count == 1 ? [c.b[0], 1] : c.b
        let (m, k, n) = (aDims[aDims.count - 2], aDims[aDims.count - 1], bDims[bDims.count - 1])
        let aBatch = Array(aDims.dropLast(2)), bBatch = Array(bDims.dropLast(2))
        let rank = max(aBatch.count, bBatch.count)
        let pa = [Int](repeating: 1, count: rank - aBatch.count) + aBatch
        let pb = [Int](repeating: 1, count: rank - bBatch.count) + bBatch
        let batch = zip(pa, pb).map { max($0, $1) }
        var expected: [Double] = []
        var magnitudes: [Double] = []
        for flat in 0..<batch.reduce(1, *) {
            var rest = flat, ia = 0, ib = 0, sa = 1, sb = 1
            for axis in stride(from: rank - 1, through: 0, by: -1) {
                let i = rest % batch[axis]
                rest /= batch[axis]
                ia += (pa[axis] == 1 ? 0 : i) * sa
                ib += (pb[axis] == 1 ? 0 : i) * sb
                sa *= pa[axis]
                sb *= pb[axis]
            }
            let block = Self.referenceGemm(
                Array(a[(ia * m * k)..<((ia + 1) * m * k)]), Array(b[(ib * k * n)..<((ib + 1) * k * n)]),
                m: m, n: n, k: k, transA: false, transB: false)
            expected += block.values
            magnitudes += block.magnitudes
        }
        let report = ToleranceReport.compareSums(
            try y.scalars(as: Float.self), expected, magnitudes: magnitudes, terms: k)
        #expect(report.passed, "\(report)")
    }

    struct BroadcastCase: Sendable, CustomTestStringConvertible {
        var op: String, a: [Int], b: [Int]
        var testDescription: String { "\(op) \(a) \(b)" }
    }

    static let broadcastCases: [BroadcastCase] = ["Add", "Sub", "Mul", "Div"].flatMap { op in
        [
            BroadcastCase(op: op, a: [2, 3], b: [2, 3]),
            BroadcastCase(op: op, a: [4, 5], b: [5]),
            BroadcastCase(op: op, a: [4, 1], b: [1, 5]),
            BroadcastCase(op: op, a: [], b: [3, 2]),
            BroadcastCase(op: op, a: [2, 3, 4], b: [3, 1]),
            BroadcastCase(op: op, a: [2, 1, 4], b: [1, 3, 1]),
            BroadcastCase(op: op, a: [3, 1, 2, 1], b: [4, 1, 5]),
        ]
    }

    @Test(arguments: broadcastCases)
    func binaryBroadcastsLikeNumpy(_ c: BroadcastCase) throws {
        let a = Self.random(c.a.reduce(1, *), in: 0.5...2)
        let b = Self.random(c.b.reduce(1, *), in: 0.5...2)
        let y = try Self.run(
            Node(opType: c.op, inputs: ["a", "b"], outputs: ["y"]),
            inputs: [("a", Shape(c.a), a), ("b", Shape(c.b), b)])
        let outShape = try #require(ShapeInference.broadcast(Shape(c.a), Shape(c.b)))
        #expect(y.shape == outShape)
        func index(_ flat: Int, into dims: [Int]) -> Int {
            // Map an output index to an operand index under right-aligned broadcasting.
            let rank = outShape.rank
            let padded = [Int](repeating: 1, count: rank - dims.count) + dims
            var rest = flat, result = 0, stride = 1
            for axis in (0..<rank).reversed() {
                let i = rest % outShape[axis]
                rest /= outShape[axis]
                result += (padded[axis] == 1 ? 0 : i) * stride
                stride *= padded[axis]
            }
            return result
        }
        let expected: [Float] = (0..<outShape.elementCount).map { i in
            let x = a[index(i, into: c.a)], z = b[index(i, into: c.b)]
            switch c.op {
            case "Add": return x + z
            case "Sub": return x - z
            case "Mul": return x * z
            default: return x / z
            }
        }
        #expect(try y.scalars(as: Float.self) == expected)
    }

    @Test func incompatibleBroadcastIsAShapeError() {
        #expect(throws: ShapeError.self) {
            try Self.run(
                Node(opType: "Add", inputs: ["a", "b"], outputs: ["y"]),
                inputs: [("a", [2, 3], Self.random(6)), ("b", [4], Self.random(4))])
        }
    }

    @Test func unaryActivations() throws {
        var x = Self.random(1000, in: -100...100)
        x += [0, -0, .infinity, -.infinity, .nan, 88.8, -88.8, -104]
        let relu = try Self.run(Node(opType: "Relu", inputs: ["x"], outputs: ["y"]), inputs: [("x", [x.count], x)])
        let sigmoid = try Self.run(
            Node(opType: "Sigmoid", inputs: ["x"], outputs: ["y"]), inputs: [("x", [x.count], x)])
        let r = try relu.scalars(as: Float.self)
        let s = try sigmoid.scalars(as: Float.self)
        for (i, v) in x.enumerated() {
            if v.isNaN {
                #expect(r[i].isNaN && s[i].isNaN)
                continue
            }
            #expect(r[i] == max(v, 0))
            // The vectorized exp is within 2.5e-7 relative; sigmoid adds a division and, below zero, a product.
            let reference = 1 / (1 + exp(-Double(v)))
            #expect(
                abs(Double(s[i]) - reference) <= 4e-7 * reference + Double(Float.leastNonzeroMagnitude),
                "sigmoid(\(v)) = \(s[i]), expected \(reference)")
            #expect(s[i] >= 0 && s[i] <= 1)
        }
    }

    /// The packed, blocked kernel against the scalar reference, over tile edges (M, N not multiples of the
    /// register tile) and K blocks (K above the 384 block), accumulating and not.
    @Test func packedGemmMatchesScalarReference() {
        // (30, 260, 2100): rows 2048+ floats long, so A is packed per block.
        for (m, n, k) in [
            (1, 8, 3), (13, 33, 17), (12, 32, 384), (25, 70, 800), (3, 100, 5), (97, 65, 129), (30, 260, 2100),
        ] {
            for transposed in [false, true] {
                let a = Self.random(m * k), b = Self.random(k * n), c0 = Self.random(m * n)
                let bRowMajor: [Float] = transposed ? (0..<(k * n)).map { b[($0 % n) * k + $0 / n] } : b
                var packed = [Float](repeating: .nan, count: ck_packed_b_floats(k, n))
                ck_pack_b(k, n, b, transposed ? k : n, transposed ? 1 : 0, &packed)
                let panels = (n + ck_gemm_panel_width() - 1) / ck_gemm_panel_width()
                for accumulate in [false, true] {
                    var fast = c0, reference = c0
                    ck_sgemm_packed(m, n, k, a, k, packed, accumulate ? 1 : 0, &fast, n, 0, panels)
                    ck_sgemm_nn_reference(m, n, k, 1, a, k, bRowMajor, n, accumulate ? 1 : 0, &reference, n)
                    // Both sides are float32 sums of the same terms: twice the bound apart at most.
                    let product = Self.referenceGemm(a, bRowMajor, m: m, n: n, k: k, transA: false, transB: false)
                    let magnitudes = zip(product.magnitudes, c0).map { $0 + (accumulate ? abs(Double($1)) : 0) }
                    let report = ToleranceReport.compareSums(
                        fast, reference.map(Double.init), magnitudes: magnitudes, terms: k + 1, computations: 2)
                    #expect(
                        report.passed,
                        "\(m)x\(n)x\(k) t\(transposed) acc\(accumulate) (\(String(cString: ck_kernel_isa()))): \(report)"
                    )
                }
            }
        }
    }

    /// Epilogues that run over the stored product (column and row bias, then GELU or Swish) give the bits of the
    /// plain product followed by the flat kernels, whatever the panels' grouping: several groups of panels and a
    /// partial last panel, the whole range and two ranges (as threads split it), rows from one tile to several.
    @Test func groupedEpiloguesMatchTheFlatKernels() {
        for (m, n, k) in [(13, 300, 50), (100, 70, 20), (1, 40, 7)] {
            let a = Self.random(m * k, in: -1...1), b = Self.random(k * n, in: -1...1)
            let rowBias = Self.random(m, in: -1...1), colBias = Self.random(n, in: -1...1)
            var packed = [Float](repeating: .nan, count: ck_packed_b_floats(k, n))
            ck_pack_b(k, n, b, n, 0, &packed)
            let panels = (n + ck_gemm_panel_width() - 1) / ck_gemm_panel_width()
            var plain = [Float](repeating: 0, count: m * n)
            ck_sgemm_packed_epilogue(m, n, k, a, k, packed, 0, &plain, n, 0, panels, nil)
            for i in 0..<m { for j in 0..<n { plain[i * n + j] = (plain[i * n + j] + colBias[j]) + rowBias[i] } }
            for activation in [ck_activation_gelu, ck_activation_swish] {
                var expected = plain
                if activation == ck_activation_gelu {
                    ck_gelu(plain, &expected, m * n)
                } else {
                    ck_swish(plain, &expected, m * n, 1)
                }
                for split in [panels, panels / 2] {
                    var c = [Float](repeating: .nan, count: m * n)
                    rowBias.withUnsafeBufferPointer { rb in
                        colBias.withUnsafeBufferPointer { cb in
                            var e = ck_epilogue(
                                row_bias: rb.baseAddress, col_bias: cb.baseAddress, activation: activation, low: 0,
                                high: 0)
                            for (begin, end) in [(0, split), (split, panels)] where begin < end {
                                ck_sgemm_packed_epilogue(m, n, k, a, k, packed, 0, &c, n, begin, end, &e)
                            }
                        }
                    }
                    #expect(
                        c.map(\.bitPattern) == expected.map(\.bitPattern),
                        "\(m)x\(n)x\(k) \(activation) split \(split) (\(String(cString: ck_kernel_isa())))")
                }
            }
        }
    }

    /// The row-major-B GEMM (pointwise convolutions) over weights large enough that it packs several panels of B at
    /// a time (A of 1 MB and more), with a last panel partly filled (with AVX2, at most 8 of 16 columns: the
    /// one-vector tiles), over the whole range of panels and split in two ranges (as threads split it), with a row
    /// bias and Relu, accumulating or not: within the float32 summation bound of a double product.
    @Test func rowMajorGemmGroupsPanels() {
        let (m, n, k) = (260, 70, 1024)
        let nr = ck_gemm_panel_width(), panels = (n + nr - 1) / nr
        let group = ck_sgemm_rowmajor_b_group(m, n, k)
        #expect(group >= 2 || nr == 32, "\(group) panels at a time")
        let a = Self.random(m * k, in: -1...1), b = Self.random(k * n, in: -1...1), c0 = Self.random(m * n)
        let bias = Self.random(m)
        let product = Self.referenceGemm(a, b, m: m, n: n, k: k, transA: false, transB: false)
        var scratch = [Float](repeating: .nan, count: k * nr * group)
        for accumulate in [false, true] {
            for split in [panels, 1] {
                var c = c0
                bias.withUnsafeBufferPointer { rb in
                    var e = ck_epilogue(
                        row_bias: rb.baseAddress, col_bias: nil, activation: ck_activation_relu, low: 0, high: 0)
                    for (begin, end) in [(0, split), (split, panels)] where begin < end {
                        ck_sgemm_rowmajor_b_epilogue(
                            m, n, k, a, k, b, n, accumulate ? 1 : 0, &c, n, begin, end, &e, &scratch, group)
                    }
                }
                var worst = 0.0
                for i in 0..<m {
                    for j in 0..<n {
                        let start = accumulate ? Double(c0[i * n + j]) : 0
                        let exact = max(product.values[i * n + j] + start + Double(bias[i]), 0)
                        let bound =
                            Double(k + 2) * Double(Float.ulpOfOne)
                            * (product.magnitudes[i * n + j] + abs(start) + abs(Double(bias[i])))
                        worst = max(worst, abs(Double(c[i * n + j]) - exact) / max(bound, .leastNonzeroMagnitude))
                    }
                }
                #expect(
                    worst <= 1,
                    "acc \(accumulate) split \(split) (\(String(cString: ck_kernel_isa()))): \(worst) of the bound")
            }
        }
    }

    /// Global average and max pools large enough to split their planes across threads: each plane's mean within the
    /// float32 summation bound of a double sum, its maximum exact, the same on one and two threads.
    @Test(arguments: ["GlobalAveragePool", "GlobalMaxPool"]) func globalPoolsSplitAcrossThreads(_ op: String) throws {
        let (n, c, h, w) = (2, 37, 31, 29)
        let x = Self.random(n * c * h * w, in: -3...3)
        let graph = Graph(
            name: "pool", inputs: [ValueInfo(name: "x", dtype: .float32, dimensions: nil)],
            outputs: [ValueInfo(name: "y", dtype: .float32, dimensions: nil)],
            nodes: [Node(opType: op, inputs: ["x"], outputs: ["y"])], opsetImports: ["": 17])
        let feeds = [NamedTensor(name: "x", tensor: try Tensor(shape: [n, c, h, w], scalars: x))]
        var results: [[Float]] = []
        for threads in [1, 2] {
            let y = try Session(graph: graph, backend: CPUBackend(threads: threads)).run(feeds).outputs[0].tensor
            #expect(y.shape == [n, c, 1, 1])
            let got = try y.scalars(as: Float.self)
            for plane in 0..<(n * c) {
                let values = x[(plane * h * w)..<((plane + 1) * h * w)]
                if op == "GlobalMaxPool" {
                    #expect(got[plane] == values.max())
                } else {
                    let mean = values.reduce(0.0) { $0 + Double($1) } / Double(h * w)
                    // |error of a float32 sum of k terms| <= k·u·Σ|x| (u = 2^-24), divided by k; plus the division's.
                    let magnitude = values.reduce(0.0) { $0 + abs(Double($1)) }
                    let bound = magnitude * 0x1p-24 + abs(mean) * 0x1p-23
                    #expect(abs(Double(got[plane]) - mean) <= bound, "plane \(plane): \(got[plane]) against \(mean)")
                }
            }
            results.append(got)
        }
        #expect(results[0] == results[1])
    }

    /// Inference BatchNormalization (+ Relu, as DenseNet's pre-activation layers) large enough to split its planes
    /// across threads: x·a + b per channel with a = scale/√(var + ε), b = bias − mean·a, within a few ulp of the
    /// terms' magnitude of that formula in double, the same on one and two threads.
    @Test(arguments: [false, true]) func batchNormalizationSplitsAcrossThreads(_ relu: Bool) throws {
        let (n, c, h, w) = (2, 19, 31, 29)
        let x = Self.random(n * c * h * w, in: -3...3)
        let scale = Self.random(c), bias = Self.random(c), mean = Self.random(c)
        let variance = Self.random(c, in: 0.1...2)
        var nodes = [
            Node(
                opType: "BatchNormalization", inputs: ["x", "s", "b", "m", "v"], outputs: [relu ? "t" : "y"],
                attributes: ["epsilon": .float(1e-3)])
        ]
        if relu { nodes.append(Node(opType: "Relu", inputs: ["t"], outputs: ["y"])) }
        let graph = Graph(
            name: "bn", inputs: [ValueInfo(name: "x", dtype: .float32, dimensions: nil)],
            outputs: [ValueInfo(name: "y", dtype: .float32, dimensions: nil)], nodes: nodes,
            initializers: [
                "s": try Tensor(shape: [c], scalars: scale), "b": try Tensor(shape: [c], scalars: bias),
                "m": try Tensor(shape: [c], scalars: mean), "v": try Tensor(shape: [c], scalars: variance),
            ], opsetImports: ["": 15])
        let feeds = [NamedTensor(name: "x", tensor: try Tensor(shape: [n, c, h, w], scalars: x))]
        var results: [[Float]] = []
        for threads in [1, 2] {
            let got = try Session(graph: graph, backend: CPUBackend(threads: threads)).run(feeds).outputs[0].tensor
                .scalars(as: Float.self)
            var worst = 0.0
            for (i, v) in x.enumerated() {
                let ch = (i / (h * w)) % c
                let a = Double(scale[ch]) / (Double(variance[ch]) + 1e-3).squareRoot()
                var want = Double(v) * a + (Double(bias[ch]) - Double(mean[ch]) * a)
                if relu { want = max(want, 0) }
                // Relative to the terms' magnitude, not the result's: x·a and b cancel (results near zero from terms
                // near 10 carry their terms' rounding, which a bound on |want| alone failed 1 run in ~50; against
                // the magnitude the worst of 20 runs was 1.8e-7).
                let magnitude = abs(Double(v) * a) + abs(Double(mean[ch]) * a) + abs(Double(bias[ch]))
                worst = max(worst, abs(Double(got[i]) - want) / max(magnitude, 1))
            }
            #expect(worst <= 1e-6, "\(threads) threads: worst error \(worst)")
            results.append(got)
        }
        #expect(results[0] == results[1])
    }

    /// Swish's result for a value does not depend on its neighbours: a tensor split anywhere (as threads and GEMM
    /// tiles split it) gets the same bits as in one call, with far-tail values (exp overflowing) and NaN mixed in.
    @Test func swishIsTheSameWhateverTheSplit() {
        var x = (0..<1000).map { _ in Float.random(in: -120...40) }
        x[3] = .nan
        x[517] = -.infinity
        var whole = [Float](repeating: 0, count: x.count)
        ck_swish(x, &whole, x.count, 1)
        for split in [1, 5, 7, 8, 13, 256, 333, 999] {
            var parts = [Float](repeating: 0, count: x.count)
            x.withUnsafeBufferPointer { source in
                parts.withUnsafeMutableBufferPointer { target in
                    guard let s = source.baseAddress, let t = target.baseAddress else { return }
                    ck_swish(s, t, split, 1)
                    ck_swish(s + split, t + split, x.count - split, 1)
                }
            }
            let differing = zip(whole, parts).filter { $0.bitPattern != $1.bitPattern }.count
            #expect(differing == 0, "split at \(split): \(differing) values differ")
        }
    }

    /// The vectorized float math against double-precision references over the whole useful range.
    @Test func simdMathIsAccurate() {
        var x = (0..<20000).map { _ in Float.random(in: -12...12) }
        x += (0..<2000).map { _ in Float.random(in: -1e-3...1e-3) } + [0, -0, 1e-30, -87, 88, 0.5, -0.5, 0.49999997]
        var y = [Float](repeating: 0, count: x.count)
        let cases: [(String, ([Float], inout [Float]) -> Void, (Double) -> Double)] = [
            ("exp", { ck_exp($0, &$1, $0.count) }, { Foundation.exp($0) }),
            ("erf", { ck_erf($0, &$1, $0.count) }, { Foundation.erf($0) }),
            ("tanh", { ck_tanh($0, &$1, $0.count) }, { Foundation.tanh($0) }),
            ("gelu", { ck_gelu($0, &$1, $0.count) }, { 0.5 * $0 * (1 + Foundation.erf($0 / 2.0.squareRoot())) }),
        ]
        for (name, simd, reference) in cases {
            simd(x, &y)
            var worst = 0.0
            for (v, got) in zip(x, y) {
                let want = reference(Double(v))
                // Relative error, with an absolute floor of one float epsilon for results near zero.
                worst = max(worst, abs(Double(got) - want) / max(abs(want), 1.2e-7))
            }
            #expect(worst < 8e-7, "\(name): worst relative error \(worst)")
        }
        ck_exp([Float.nan, -200, 200], &y, 3)
        #expect(y[0].isNaN && y[1] == 0 && y[2] == .infinity)
        // Subnormal results: within one subnormal step (plus the usual relative error) of exp in double.
        let tiny = stride(from: Float(-103.9), through: -87.4, by: 0.01).map { $0 }
        var tinyOut = [Float](repeating: 0, count: tiny.count)
        ck_exp(tiny, &tinyOut, tiny.count)
        for (v, got) in zip(tiny, tinyOut) {
            let want = Foundation.exp(Double(v))
            #expect(
                abs(Double(got) - want) <= Double(Float.leastNonzeroMagnitude) + 3e-7 * want,
                "exp(\(v)) = \(got), expected \(want)")
        }
        ck_gelu([Float.infinity, -Float.infinity, .nan, 40, -40], &y, 5)
        #expect(y[0] == .infinity && y[1] == 0 && y[2].isNaN && y[3] == 40 && y[4] == 0)
    }

    /// The GEMM's epilogues that run in the tile's registers (row bias, then Relu or a clamp) give the bits of
    /// the scalar definitions applied to the plain product: NaN kept, a clamp whose low is above its high gives
    /// the high; over full and partial tiles, several K blocks, accumulating or not. Row 2's products are all -0:
    /// the vector tiles (which start from the first product) sum them to -0, so Relu(-0) = +0 is checked there;
    /// the generic kernel starts from +0 and checks the plain case.
    @Test func inTileEpiloguesMatchTheScalarDefinitions() {
        for (m, n, k) in [(13, 37, 5), (25, 70, 400), (1, 16, 3), (7, 32, 9)] {
            var a = (0..<(m * k)).map { _ in Float.random(in: -1...1) }
            let b = (0..<(k * n)).map { _ in Float.random(in: 0.1...1) }
            a[0] = .nan  // row 0 is NaN throughout
            if m > 2 { for j in 0..<k { a[2 * k + j] = -0.0 } }  // row 2: every product -0
            var bias = (0..<m).map { _ in Float.random(in: -0.5...0.5) }
            if m > 2 { bias[2] = -0.0 }
            var packed = [Float](repeating: .nan, count: ck_packed_b_floats(k, n))
            ck_pack_b(k, n, b, n, 0, &packed)
            let start = (0..<(m * n)).map { _ in Float.random(in: -1...1) }
            for accumulate in [false, true] {
                var plain = start
                ck_sgemm_packed_epilogue(
                    m, n, k, a, k, packed, accumulate ? 1 : 0, &plain, n, 0,
                    (n + ck_gemm_panel_width() - 1)
                        / ck_gemm_panel_width(), nil)
                if m > 2 && !accumulate && String(cString: ck_kernel_isa()) != "generic" {
                    // The -0 row reaches the epilogue as -0 (so Relu's sign handling is exercised).
                    #expect(plain[(2 * n)..<(3 * n)].allSatisfy { $0 == 0 && $0.sign == .minus })
                }
                let cases: [(ck_activation, Float, Float, (Float) -> Float)] = [
                    (ck_activation_none, 0, 0, { $0 }),
                    (ck_activation_relu, 0, 0, { $0 > 0 ? $0 : ($0.isNaN ? $0 : 0) }),
                    (ck_activation_clip, -0.2, 0.3, { v in v.isNaN ? v : min(max(v, -0.2), 0.3) }),
                    (ck_activation_clip, 0.4, -0.1, { v in v.isNaN ? v : (max(v, 0.4) > -0.1 ? -0.1 : v) }),
                ]
                for (activation, low, high, scalar) in cases {
                    var c = start
                    bias.withUnsafeBufferPointer { rb in
                        var e = ck_epilogue(
                            row_bias: rb.baseAddress, col_bias: nil, activation: activation, low: low, high: high)
                        ck_sgemm_packed_epilogue(
                            m, n, k, a, k, packed, accumulate ? 1 : 0, &c, n, 0,
                            (n + ck_gemm_panel_width() - 1) / ck_gemm_panel_width(), &e)
                    }
                    let expected = (0..<(m * n)).map { scalar(plain[$0] + bias[$0 / n]) }
                    #expect(
                        c.map(\.bitPattern) == expected.map(\.bitPattern),
                        "\(m)x\(n)x\(k) \(activation) acc \(accumulate) on \(String(cString: ck_kernel_isa()))")
                }
            }
        }
    }

    /// GELU's two paths: blocks at or above -13 (every intermediate normal) over a dense sweep of [-13, 13] and
    /// just past both ends, blocks reaching below it (subnormal results) through the careful path; the tile
    /// form (rows `ldc` apart, as GEMM epilogues call it) gives the same bits, and so does Swish's.
    @Test func geluPathsAndTileForm() {
        let dense = stride(from: Float(-13), through: 13, by: 1.0 / 4096).map { $0 }
        let tail = stride(from: Float(-14.5), through: -12.5, by: 1.0 / 1024).map { $0 }
        for (label, x) in [("dense", dense), ("tail", tail)] {
            var y = [Float](repeating: 0, count: x.count)
            ck_gelu(x, &y, x.count)
            var worst = 0.0
            for (v, got) in zip(x, y) {
                let want = Float(0.5 * Double(v) * Foundation.erfc(-Double(v) / 2.0.squareRoot()))
                let error = abs(Double(got) - Double(want))
                worst = max(worst, error / max(abs(Double(want)), Double(Float.leastNormalMagnitude)))
                // Subnormal results (x below about -13.2) come from a subnormal erfc scaled by x/2: a few
                // subnormal steps (each 1.4e-45) off.
                #expect(
                    error <= 8e-7 * abs(Double(want)) + 8 * Double(Float.leastNonzeroMagnitude),
                    "gelu(\(v)) = \(got), expected \(want) (\(label))")
            }
            if label == "dense" { #expect(worst < 8e-7, "worst relative error \(worst)") }
        }
        let rows = 5, cols = 37, ldc = 41
        let x = (0..<(rows * ldc)).map { _ in Float.random(in: -14...9) }
        for activation in ["gelu", "swish"] {
            var tile = x, expected = x
            for r in 0..<rows {
                var row = Array(x[(r * ldc)..<(r * ldc + cols)])
                if activation == "gelu" { ck_gelu(row, &row, cols) } else { ck_swish(row, &row, cols, 1) }
                expected.replaceSubrange((r * ldc)..<(r * ldc + cols), with: row)
            }
            if activation == "gelu" {
                ck_gelu_rows(&tile, ldc, rows, cols)
            } else {
                ck_swish_rows(&tile, ldc, rows, cols, 1)
            }
            #expect(tile == expected, "\(activation) over a tile")
        }
    }

    /// Every vectorized function at the edges of its domain (±0, subnormals, the overflow and underflow thresholds,
    /// ±infinity, NaN) and densely up to exp's overflow, against double references, on the ISA path this run uses.
    @Test func simdMathEdgesOfTheDomain() {
        let overflow = Float(88.72283)  // the largest float whose exp is finite is just above this
        var x: [Float] = [
            0, -0, Float.leastNonzeroMagnitude, -Float.leastNonzeroMagnitude, Float.leastNormalMagnitude,
            Float.leastNormalMagnitude / 3, -Float.leastNormalMagnitude / 3, overflow, overflow.nextUp, 88.7, 88.72,
            88.73, 89, 100, 1000, .greatestFiniteMagnitude,
            -87.33, -87.34, -103.27, -103.28, -103.97, -104, -110, -1000, -.greatestFiniteMagnitude,
            .infinity, -.infinity, .nan,
        ]
        x += stride(from: Float(80), through: 88.7228, by: 0.0007).map { $0 }
        var y = [Float](repeating: 0, count: x.count)
        let cases: [(String, ([Float], inout [Float]) -> Void, (Double) -> Double)] = [
            ("exp", { ck_exp($0, &$1, $0.count) }, { Foundation.exp($0) }),
            ("sigmoid", { ck_sigmoid($0, &$1, $0.count) }, { 1 / (1 + Foundation.exp(-$0)) }),
            ("erf", { ck_erf($0, &$1, $0.count) }, { Foundation.erf($0) }),
            ("tanh", { ck_tanh($0, &$1, $0.count) }, { Foundation.tanh($0) }),
            (
                "gelu", { ck_gelu($0, &$1, $0.count) },
                { $0.isInfinite ? max($0, 0) : 0.5 * $0 * Foundation.erfc(-$0 / 2.0.squareRoot()) }
            ),
        ]
        let isa = String(cString: ck_kernel_isa())
        for (name, simd, reference) in cases {
            simd(x, &y)
            for (v, got) in zip(x, y) {
                let want = Float(reference(Double(v)))  // the correctly rounded float result (to within double's error)
                if want.isNaN || v.isNaN {
                    #expect(got.isNaN == v.isNaN, "\(name)(\(v)) = \(got) on \(isa)")
                    continue
                }
                if want.isInfinite || got.isInfinite {
                    #expect(got == want, "\(name)(\(v)) = \(got), expected \(want) on \(isa)")
                    continue
                }
                let error = abs(Double(got) - Double(want))
                let bound = 8e-7 * abs(Double(want)) + Double(Float.leastNonzeroMagnitude)
                #expect(error <= bound, "\(name)(\(v)) = \(got), expected \(want) on \(isa)")
            }
        }
    }

    @Test func simdGemmMatchesScalarReference() {
        for (m, n, k) in [(1, 1, 1), (3, 17, 5), (16, 33, 64), (2, 1, 300), (9, 130, 7)] {
            let a = Self.random(m * k), b = Self.random(k * n), c0 = Self.random(m * n)
            var fast = c0, reference = c0
            ck_sgemm_nn(m, n, k, 0.75, a, k, b, n, 0.5, &fast, n)
            ck_sgemm_nn_reference(m, n, k, 0.75, a, k, b, n, 0.5, &reference, n)
            let product = Self.referenceGemm(a, b, m: m, n: n, k: k, transA: false, transB: false)
            let magnitudes = zip(product.magnitudes, c0).map { 0.75 * $0 + 0.5 * abs(Double($1)) }
            let report = ToleranceReport.compareSums(
                fast, reference.map(Double.init), magnitudes: magnitudes, terms: k + 2, computations: 2)
            #expect(report.passed, "\(m)x\(n)x\(k) (\(String(cString: ck_kernel_isa()))): \(report)")
        }
    }
}
