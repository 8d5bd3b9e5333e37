import CPUBackend
import Foundation
import InferenceGraph
import InferenceRuntime
import InferenceTensor
import InferenceTestSupport
import Testing

/// The depthwise convolution kernel against a double-precision direct convolution (strides, dilations, padding,
/// bias, fused Relu, batches), the same bits on 1 and 2 threads; the vectorized piecewise-linear activations
/// against their double definitions, at the edges too; on the ISA path this run uses.
struct DepthwiseAndActivationTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var batch: Int, channels: Int, height: Int, width: Int, kernel: Int
        var stride: Int, dilation: Int, pads: [Int], relu: Bool
        /// A Clip [low, high] after the convolution (fused into the kernel's store), instead of Relu.
        var clip: [Float]? = nil
        /// x·sigmoid(x) after the convolution, as exporters write SiLU (Sigmoid and Mul), fused into the kernel.
        var swish = false
        var testDescription: String {
            "\(batch)x\(channels)x\(height)x\(width) k\(kernel) s\(stride) d\(dilation) pads \(pads)\(relu ? " Relu" : "")"
                + (clip.map { " Clip \($0)" } ?? "") + (swish ? " Swish" : "")
        }
    }

    static let cases: [Case] = [
        Case(
            batch: 1, channels: 32, height: 14, width: 14, kernel: 3, stride: 1, dilation: 1, pads: [1, 1, 1, 1],
            relu: true),
        Case(
            batch: 2, channels: 16, height: 15, width: 13, kernel: 3, stride: 2, dilation: 1, pads: [1, 1, 1, 1],
            relu: false),
        Case(
            batch: 1, channels: 24, height: 9, width: 11, kernel: 5, stride: 2, dilation: 1, pads: [2, 2, 2, 2],
            relu: false),
        Case(
            batch: 3, channels: 5, height: 8, width: 8, kernel: 3, stride: 1, dilation: 2, pads: [2, 0, 1, 3],
            relu: true),
        Case(
            batch: 1, channels: 7, height: 3, width: 40, kernel: 3, stride: 3, dilation: 1, pads: [0, 0, 0, 0],
            relu: false),
        Case(
            batch: 1, channels: 4, height: 6, width: 6, kernel: 7, stride: 1, dilation: 1, pads: [3, 3, 3, 3],
            relu: false),
        Case(
            batch: 2, channels: 9, height: 17, width: 19, kernel: 7, stride: 2, dilation: 1, pads: [3, 3, 3, 3],
            relu: true),
        // Whole channel blocks and a partial one, rows whose last group of four outputs is partial (7 = 4 + 3,
        // 14 = 12 + 2): the weights' transposed loads and the padding columns.
        Case(
            batch: 1, channels: 20, height: 7, width: 7, kernel: 7, stride: 1, dilation: 1, pads: [3, 3, 3, 3],
            relu: false),
        Case(
            batch: 1, channels: 35, height: 14, width: 14, kernel: 5, stride: 1, dilation: 1, pads: [2, 2, 2, 2],
            relu: true),
        Case(
            batch: 1, channels: 3, height: 5, width: 4, kernel: 3, stride: 1, dilation: 3, pads: [2, 2, 2, 2],
            relu: false),
        // Whole vectors only (no tail) in the per-plane kernel's rows.
        Case(
            batch: 1, channels: 3, height: 6, width: 64, kernel: 3, stride: 1, dilation: 1, pads: [1, 1, 1, 1],
            relu: false, clip: [0, 6]),
        // Rows wide enough for the four- and two-vector blocks of every ISA, then a masked tail.
        Case(
            batch: 1, channels: 3, height: 6, width: 150, kernel: 3, stride: 1, dilation: 1, pads: [1, 1, 1, 1],
            relu: true),
        Case(
            batch: 1, channels: 2, height: 7, width: 161, kernel: 5, stride: 2, dilation: 1, pads: [2, 2, 2, 2],
            relu: false),
        Case(
            batch: 1, channels: 2, height: 9, width: 200, kernel: 7, stride: 2, dilation: 1, pads: [3, 3, 3, 3],
            relu: false),
        Case(
            batch: 1, channels: 3, height: 5, width: 135, kernel: 3, stride: 2, dilation: 1, pads: [0, 1, 1, 0],
            relu: true),
        Case(
            batch: 2, channels: 6, height: 7, width: 90, kernel: 3, stride: 1, dilation: 1, pads: [1, 1, 1, 1],
            relu: false, clip: [-0.5, 0.7]),
        Case(
            batch: 1, channels: 5, height: 9, width: 9, kernel: 5, stride: 2, dilation: 1, pads: [2, 2, 2, 2],
            relu: false, clip: [0, 6]),
        Case(
            batch: 1, channels: 4, height: 6, width: 70, kernel: 5, stride: 1, dilation: 1, pads: [2, 2, 2, 2],
            relu: false, swish: true),
        Case(
            batch: 2, channels: 3, height: 5, width: 11, kernel: 3, stride: 2, dilation: 2, pads: [1, 1, 1, 1],
            relu: false, swish: true),
        // Fewer channel blocks than threads with AVX-512 (one block of 16 lanes): two threads split output rows,
        // with strips of 8 rows cut at the split; with AVX2 (two blocks, one part-filled) they split blocks.
        Case(
            batch: 1, channels: 12, height: 40, width: 37, kernel: 3, stride: 1, dilation: 1, pads: [1, 1, 1, 1],
            relu: true),
        Case(
            batch: 1, channels: 16, height: 57, width: 61, kernel: 3, stride: 2, dilation: 1, pads: [1, 1, 1, 1],
            relu: false, swish: true),
        // Whole blocks of channels in lanes (16 channels and 16 columns at a time, no per-lane conditions), then
        // a partial block of each.
        Case(
            batch: 1, channels: 40, height: 11, width: 50, kernel: 3, stride: 1, dilation: 1, pads: [1, 1, 1, 1],
            relu: false, clip: [0, 6]),
        Case(
            batch: 1, channels: 32, height: 21, width: 67, kernel: 5, stride: 2, dilation: 1, pads: [2, 2, 2, 2],
            relu: true),
        // The per-channel kernel (3x3, stride 1, rows of 48 and more): no padding, padding on one side of each axis
        // only, and one block of channels whose output rows two threads split (strips cut at the split).
        Case(
            batch: 1, channels: 5, height: 19, width: 50, kernel: 3, stride: 1, dilation: 1, pads: [0, 0, 0, 0],
            relu: false, swish: true),
        Case(
            batch: 1, channels: 3, height: 12, width: 60, kernel: 3, stride: 1, dilation: 1, pads: [1, 0, 0, 2],
            relu: true),
        Case(
            batch: 1, channels: 4, height: 40, width: 57, kernel: 3, stride: 1, dilation: 1, pads: [1, 1, 1, 1],
            relu: false, clip: [-0.25, 0.5]),
    ]

    static func random(_ count: Int) -> [Float] { (0..<count).map { _ in Float.random(in: -1...1) } }

    @Test(arguments: cases) func depthwiseMatchesDirectConvolution(_ c: Case) throws {
        let w = Self.random(c.channels * c.kernel * c.kernel), b = Self.random(c.channels)
        let x = Self.random(c.batch * c.channels * c.height * c.width)
        var nodes = [
            Node(
                opType: "Conv", inputs: ["x", "w", "b"], outputs: [c.relu || c.clip != nil || c.swish ? "c" : "y"],
                attributes: [
                    "group": .int(c.channels), "strides": .ints([c.stride, c.stride]),
                    "dilations": .ints([c.dilation, c.dilation]), "pads": .ints(c.pads),
                ])
        ]
        if c.relu { nodes.append(Node(opType: "Relu", inputs: ["c"], outputs: ["y"])) }
        var initializers = [
            "w": try Tensor(shape: [c.channels, 1, c.kernel, c.kernel], scalars: w),
            "b": try Tensor(shape: [c.channels], scalars: b),
        ]
        if c.swish {
            nodes.append(Node(opType: "Sigmoid", inputs: ["c"], outputs: ["s"]))
            nodes.append(Node(opType: "Mul", inputs: ["c", "s"], outputs: ["y"]))
        }
        if let clip = c.clip {
            nodes.append(Node(opType: "Clip", inputs: ["c", "lo", "hi"], outputs: ["y"]))
            initializers["lo"] = try Tensor(shape: [], scalars: [clip[0]])
            initializers["hi"] = try Tensor(shape: [], scalars: [clip[1]])
        }
        let graph = Graph(
            name: "dw", inputs: [ValueInfo(name: "x", dtype: .float32, dimensions: nil)],
            outputs: [ValueInfo(name: "y", dtype: .float32, dimensions: nil)], nodes: nodes,
            initializers: initializers)
        let feeds = [
            NamedTensor(name: "x", tensor: try Tensor(shape: [c.batch, c.channels, c.height, c.width], scalars: x))
        ]
        let one = try Session(graph: graph, backend: CPUBackend(threads: 1)).run(feeds).outputs[0].tensor
        let two = try Session(graph: graph, backend: CPUBackend(threads: 2)).run(feeds).outputs[0].tensor
        #expect(try one.scalars(as: Float.self) == two.scalars(as: Float.self))
        let span = c.dilation * (c.kernel - 1) + 1
        let oh = (c.height + c.pads[0] + c.pads[2] - span) / c.stride + 1
        let ow = (c.width + c.pads[1] + c.pads[3] - span) / c.stride + 1
        #expect(one.shape == [c.batch, c.channels, oh, ow])
        var expected: [Double] = [], magnitudes: [Double] = []
        for n in 0..<c.batch {
            for ch in 0..<c.channels {
                for i in 0..<oh {
                    for j in 0..<ow {
                        var sum = Double(b[ch]), magnitude = abs(Double(b[ch]))
                        for ki in 0..<c.kernel {
                            for kj in 0..<c.kernel {
                                let ih = i * c.stride - c.pads[0] + ki * c.dilation
                                let iw = j * c.stride - c.pads[1] + kj * c.dilation
                                guard ih >= 0 && ih < c.height && iw >= 0 && iw < c.width else { continue }
                                let term =
                                    Double(w[(ch * c.kernel + ki) * c.kernel + kj])
                                    * Double(x[((n * c.channels + ch) * c.height + ih) * c.width + iw])
                                sum += term
                                magnitude += abs(term)
                            }
                        }
                        if c.swish {
                            expected.append(sum / (1 + exp(-sum)))
                        } else if let clip = c.clip {
                            expected.append(min(max(sum, Double(clip[0])), Double(clip[1])))
                        } else {
                            expected.append(c.relu ? max(sum, 0) : sum)
                        }
                        magnitudes.append(magnitude)
                    }
                }
            }
        }
        let report = ToleranceReport.compareSums(
            try one.scalars(as: Float.self), expected, magnitudes: magnitudes, terms: c.kernel * c.kernel + 1)
        #expect(report.passed, "\(c.testDescription): \(report)")
    }

    @Test func piecewiseLinearActivations() throws {
        var x = Self.random(3000).map { $0 * 10 }
        x += [0, -0, 3, -3, 2.5, -2.5, 6, -6, 1e-30, .infinity, -.infinity, .nan, .greatestFiniteMagnitude]
        let cases: [(Node, (Double) -> Double)] = [
            (
                Node(
                    opType: "HardSigmoid", inputs: ["x"], outputs: ["y"],
                    attributes: ["alpha": .float(0.3), "beta": .float(0.4)]),
                { max(0, min(1, Double(Float(0.3)) * $0 + Double(Float(0.4)))) }
            ),
            (Node(opType: "HardSwish", inputs: ["x"], outputs: ["y"]), { $0 * max(0, min(1, $0 / 6 + 0.5)) }),
            (
                Node(opType: "LeakyRelu", inputs: ["x"], outputs: ["y"], attributes: ["alpha": .float(0.1)]),
                { $0 >= 0 ? $0 : Double(Float(0.1)) * $0 }
            ),
        ]
        for (node, reference) in cases {
            let graph = Graph(
                name: "act", inputs: [ValueInfo(name: "x", dtype: .float32, dimensions: nil)],
                outputs: [ValueInfo(name: "y", dtype: .float32, dimensions: nil)], nodes: [node])
            let y = try Session(graph: graph, backend: CPUBackend())
                .run([NamedTensor(name: "x", tensor: try Tensor(shape: [x.count], scalars: x))]).outputs[0].tensor
            for (v, got) in zip(x, try y.scalars(as: Float.self)) {
                let want = v.isNaN ? Float.nan : Float(reference(Double(v)))  // NaN propagates
                if want.isNaN {
                    #expect(got.isNaN, "\(node.opType)(\(v)) = \(got), expected nan")
                } else {
                    #expect(
                        abs(got - want) <= 2 * want.ulp || got == want,
                        "\(node.opType)(\(v)) = \(got), expected \(want)")
                }
            }
        }
        // Swish (SiLU) in float: within a few ulp of x·sigmoid(alpha·x) in double. The kernel takes a shorter exp
        // for vectors (blocks of 256 without AVX2) whose alpha·x are all at least -87: values entirely near that
        // edge (one of them touching it from above), then values reaching into the far tail where exp overflows.
        x += (0..<512).map { Float(-86.99 + Double($0) * 0.34) }
        x += (0..<512).map { Float(-180 + Double($0) * 0.7) }
        for alpha in [Float(1), 0.5] {
            let graph = Graph(
                name: "swish", inputs: [ValueInfo(name: "x", dtype: .float32, dimensions: nil)],
                outputs: [ValueInfo(name: "y", dtype: .float32, dimensions: nil)],
                nodes: [Node(opType: "Swish", inputs: ["x"], outputs: ["y"], attributes: ["alpha": .float(alpha)])],
                opsetImports: ["": 24])
            let y = try Session(graph: graph, backend: CPUBackend())
                .run([NamedTensor(name: "x", tensor: try Tensor(shape: [x.count], scalars: x))]).outputs[0].tensor
            for (v, got) in zip(x, try y.scalars(as: Float.self)) where v.isFinite {
                let d = Double(v)
                let want = Float(d / (1 + Foundation.exp(-Double(alpha) * d)))
                #expect(abs(got - want) <= 4 * want.ulp, "Swish(\(v)) = \(got), expected \(want)")
            }
        }
        // Clip (Relu6, and low > high where high wins) against min(max(x, low), high).
        for (low, high) in [(Float(0), Float(6)), (2, -1)] {
            let graph = Graph(
                name: "clip", inputs: [ValueInfo(name: "x", dtype: .float32, dimensions: nil)],
                outputs: [ValueInfo(name: "y", dtype: .float32, dimensions: nil)],
                nodes: [Node(opType: "Clip", inputs: ["x", "lo", "hi"], outputs: ["y"])],
                initializers: [
                    "lo": try Tensor(shape: [], scalars: [low]), "hi": try Tensor(shape: [], scalars: [high]),
                ])
            let y = try Session(graph: graph, backend: CPUBackend())
                .run([NamedTensor(name: "x", tensor: try Tensor(shape: [x.count], scalars: x))]).outputs[0].tensor
            for (v, got) in zip(x, try y.scalars(as: Float.self)) where !v.isNaN {
                #expect(got == min(max(v, low), high), "Clip(\(v), \(low), \(high)) = \(got)")
            }
        }
    }
}

/// The separable float32 Resize against the general N-d kernel (which float64 data runs), over modes, coordinate
/// transformations, up- and downscaling.
struct SeparableResizeTests {
    @Test func matchesTheGeneralKernel() throws {
        let x = (0..<(2 * 3 * 7 * 5)).map { _ in Double.random(in: -1...1) }
        for mode in ["nearest", "linear"] {
            for transform in ["half_pixel", "align_corners", "asymmetric", "pytorch_half_pixel"] {
                for sizes in [[2, 3, 14, 10], [2, 3, 4, 3], [2, 3, 7, 16], [2, 3, 1, 1]] {
                    func run(_ dtype: DType) throws -> [Double] {
                        let graph = Graph(
                            name: "resize", inputs: [ValueInfo(name: "x", dtype: dtype, dimensions: nil)],
                            outputs: [ValueInfo(name: "y", dtype: dtype, dimensions: nil)],
                            nodes: [
                                Node(
                                    opType: "Resize", inputs: ["x", "", "", "sizes"], outputs: ["y"],
                                    attributes: [
                                        "mode": .string(mode), "coordinate_transformation_mode": .string(transform),
                                    ])
                            ],
                            initializers: ["sizes": try Tensor(shape: [4], scalars: sizes.map { Int64($0) })],
                            opsetImports: ["": 13])
                        let input =
                            dtype == .float32
                            ? try Tensor(shape: [2, 3, 7, 5], scalars: x.map { Float($0) })
                            : try Tensor(shape: [2, 3, 7, 5], scalars: x.map { Double(Float($0)) })
                        let y = try Session(graph: graph, backend: CPUBackend(threads: 2))
                            .run([NamedTensor(name: "x", tensor: input)]).outputs[0].tensor
                        #expect(y.shape.dimensions == sizes)
                        return dtype == .float32
                            ? try y.scalars(as: Float.self).map { Double($0) } : try y.scalars(as: Double.self)
                    }
                    let fast = try run(.float32), general = try run(.float64)
                    let worst = zip(fast, general).map { abs($0 - $1) }.max() ?? 0
                    // Blends of values in [-1, 1] with weights in [0, 1]: a few float roundings at most.
                    #expect(worst <= 1e-6, "\(mode) \(transform) \(sizes): worst difference \(worst)")
                }
            }
        }
    }
}

/// Pointwise (1x1) convolutions read their input rows in place (or pack a partial panel); 3x3 max pools with strides and padding run the
/// vectorized kernel: both against double-precision references.
struct PointwiseAndPoolTests {
    @Test(arguments: [
        (1, 16, 24, 7, 9), (2, 5, 33, 4, 4), (1, 64, 8, 14, 14), (1, 96, 40, 7, 7), (3, 40, 96, 28, 28),
        (1, 40, 300, 7, 7),
        // The transposed form with both transposes large enough to split across the two threads.
        (1, 360, 512, 7, 7),
        // Panels that divide unevenly between 2 threads: the split gives each thread rows instead.
        (1, 96, 144, 14, 14), (1, 24, 64, 9, 9),
        // Full panels read in place (a partial last one copied): two filters; K past one 384-row block.
        (1, 24, 2, 13, 13), (1, 32, 16, 40, 40), (1, 400, 20, 30, 30),
    ])
    func pointwiseConvolution(_ batch: Int, _ channels: Int, _ filters: Int, _ height: Int, _ width: Int) throws {
        let x = DepthwiseAndActivationTests.random(batch * channels * height * width)
        let w = DepthwiseAndActivationTests.random(filters * channels)
        let b = DepthwiseAndActivationTests.random(filters)
        let graph = Graph(
            name: "pw", inputs: [ValueInfo(name: "x", dtype: .float32, dimensions: nil)],
            outputs: [ValueInfo(name: "y", dtype: .float32, dimensions: nil)],
            nodes: [Node(opType: "Conv", inputs: ["x", "w", "b"], outputs: ["y"])],
            initializers: [
                "w": try Tensor(shape: [filters, channels, 1, 1], scalars: w),
                "b": try Tensor(shape: [filters], scalars: b),
            ])
        let y = try Session(graph: graph, backend: CPUBackend(threads: 2))
            .run([NamedTensor(name: "x", tensor: try Tensor(shape: [batch, channels, height, width], scalars: x))])
            .outputs[0].tensor
        let plane = height * width
        var expected: [Double] = [], magnitudes: [Double] = []
        for n in 0..<batch {
            for f in 0..<filters {
                for p in 0..<plane {
                    var sum = Double(b[f]), magnitude = abs(Double(b[f]))
                    for c in 0..<channels {
                        let term = Double(w[f * channels + c]) * Double(x[(n * channels + c) * plane + p])
                        sum += term
                        magnitude += abs(term)
                    }
                    expected.append(sum)
                    magnitudes.append(magnitude)
                }
            }
        }
        let report = ToleranceReport.compareSums(
            try y.scalars(as: Float.self), expected, magnitudes: magnitudes, terms: channels + 1)
        #expect(report.passed, "\(report)")
    }

    @Test(arguments: [(3, 2, 1, 0), (3, 2, 0, 1), (2, 1, 0, 0), (3, 1, 1, 0), (4, 3, 1, 1), (5, 3, 2, 1), (2, 2, 0, 1)])
    func maxPool(_ kernel: Int, _ stride: Int, _ pad: Int, _ ceil: Int) throws {
        let (planes, height, width) = (6, 13, 11)
        let x = DepthwiseAndActivationTests.random(planes * height * width)
        let graph = Graph(
            name: "pool", inputs: [ValueInfo(name: "x", dtype: .float32, dimensions: nil)],
            outputs: [ValueInfo(name: "y", dtype: .float32, dimensions: nil)],
            nodes: [
                Node(
                    opType: "MaxPool", inputs: ["x"], outputs: ["y"],
                    attributes: [
                        "kernel_shape": .ints([kernel, kernel]), "strides": .ints([stride, stride]),
                        "pads": .ints([pad, pad, pad, pad]), "ceil_mode": .int(ceil),
                    ])
            ])
        let y = try Session(graph: graph, backend: CPUBackend())
            .run([NamedTensor(name: "x", tensor: try Tensor(shape: [2, 3, height, width], scalars: x))])
            .outputs[0].tensor
        let (oh, ow) = (y.shape[2], y.shape[3])
        let values = try y.scalars(as: Float.self)
        for p in 0..<planes {
            for i in 0..<oh {
                for j in 0..<ow {
                    var best = -Float.infinity
                    for ki in 0..<kernel {
                        for kj in 0..<kernel {
                            let (r, c) = (i * stride - pad + ki, j * stride - pad + kj)
                            if r >= 0 && r < height && c >= 0 && c < width {
                                best = max(best, x[(p * height + r) * width + c])
                            }
                        }
                    }
                    #expect(
                        values[(p * oh + i) * ow + j] == best,
                        "k\(kernel) s\(stride) p\(pad) ceil\(ceil) at \(p),\(i),\(j)")
                }
            }
        }
    }
}

/// The direct kernel's stride-2 stems (1 to 4 input channels, 3x3 to 7x7, even/odd column halves), 3x3 stride-1
/// convolutions of few channels, and grouped convolutions (up to 16 channels per group, stride 1 or 2; RegNet, ResNeXt): against a double-precision
/// convolution, over odd and even sizes, asymmetric padding, batches, fused Relu and widths that reach every vector
/// block.
struct DirectConvolutionTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var batch: Int, channels: Int, filters: Int, height: Int, width: Int, kernel: Int, pads: [Int], relu: Bool
        var stride = 2, groups = 1
        var testDescription: String {
            "\(batch)x\(channels)x\(height)x\(width) -> \(filters) k\(kernel) s\(stride) g\(groups) pads \(pads)"
                + (relu ? " Relu" : "")
        }
    }

    static let cases: [Case] = [
        Case(batch: 1, channels: 3, filters: 8, height: 33, width: 150, kernel: 3, pads: [1, 1, 1, 1], relu: true),
        Case(batch: 2, channels: 3, filters: 5, height: 20, width: 21, kernel: 7, pads: [3, 3, 3, 3], relu: false),
        Case(batch: 1, channels: 1, filters: 4, height: 9, width: 70, kernel: 5, pads: [2, 1, 0, 2], relu: false),
        Case(batch: 1, channels: 4, filters: 6, height: 12, width: 300, kernel: 3, pads: [0, 0, 1, 1], relu: true),
        Case(
            batch: 1, channels: 24, filters: 24, height: 14, width: 70, kernel: 3, pads: [1, 1, 1, 1], relu: true,
            stride: 1, groups: 3),
        Case(
            batch: 2, channels: 32, filters: 16, height: 15, width: 15, kernel: 3, pads: [1, 1, 1, 1], relu: false,
            stride: 2, groups: 4),
        Case(
            batch: 1, channels: 12, filters: 18, height: 8, width: 9, kernel: 5, pads: [2, 2, 2, 2], relu: false,
            stride: 1, groups: 6),
        // 3x3 at stride 1 over up to 16 channels (SqueezeNet's expand layers): filters split across threads in
        // blocks of whole tiles, 40 filters leaving a partial block.
        Case(
            batch: 1, channels: 16, filters: 40, height: 29, width: 31, kernel: 3, pads: [1, 1, 1, 1], relu: true,
            stride: 1),
        Case(
            batch: 2, channels: 5, filters: 7, height: 6, width: 50, kernel: 3, pads: [0, 1, 1, 0], relu: false,
            stride: 1),
    ]

    @Test(arguments: cases) func matchesDoubleReference(_ c: Case) throws {
        let random = { (n: Int) in (0..<n).map { _ in Float.random(in: -1...1) } }
        let perGroup = c.channels / c.groups, filtersPerGroup = c.filters / c.groups
        let x = random(c.batch * c.channels * c.height * c.width)
        let w = random(c.filters * perGroup * c.kernel * c.kernel), b = random(c.filters)
        var nodes = [
            Node(
                opType: "Conv", inputs: ["x", "w", "b"], outputs: [c.relu ? "c" : "y"],
                attributes: [
                    "strides": .ints([c.stride, c.stride]), "pads": .ints(c.pads), "group": .int(c.groups),
                ])
        ]
        if c.relu { nodes.append(Node(opType: "Relu", inputs: ["c"], outputs: ["y"])) }
        let graph = Graph(
            name: "direct", inputs: [ValueInfo(name: "x", dtype: .float32, dimensions: nil)],
            outputs: [ValueInfo(name: "y", dtype: .float32, dimensions: nil)], nodes: nodes,
            initializers: [
                "w": try Tensor(shape: [c.filters, perGroup, c.kernel, c.kernel], scalars: w),
                "b": try Tensor(shape: [c.filters], scalars: b),
            ])
        let feeds = [
            NamedTensor(name: "x", tensor: try Tensor(shape: [c.batch, c.channels, c.height, c.width], scalars: x))
        ]
        for threads in [1, 2] {
            let session = try Session(graph: graph, backend: CPUBackend(threads: threads))
            let kernels = try session.prepare(feeds).steps.map(\.implementation)
            #expect(kernels.contains { $0.hasPrefix("DirectConvKernel") }, "\(kernels)")
            let got = try session.run(feeds).outputs[0].tensor
            let oh = (c.height + c.pads[0] + c.pads[2] - c.kernel) / c.stride + 1
            let ow = (c.width + c.pads[1] + c.pads[3] - c.kernel) / c.stride + 1
            #expect(got.shape == [c.batch, c.filters, oh, ow])
            var expected: [Double] = [], magnitudes: [Double] = []
            for n in 0..<c.batch {
                for f in 0..<c.filters {
                    let group = f / filtersPerGroup
                    for i in 0..<oh {
                        for j in 0..<ow {
                            var sum = Double(b[f]), magnitude = abs(Double(b[f]))
                            for cg in 0..<perGroup {
                                let ch = group * perGroup + cg
                                for ki in 0..<c.kernel {
                                    for kj in 0..<c.kernel {
                                        let ih = i * c.stride - c.pads[0] + ki, iw = j * c.stride - c.pads[1] + kj
                                        guard ih >= 0 && ih < c.height && iw >= 0 && iw < c.width else { continue }
                                        let term =
                                            Double(w[((f * perGroup + cg) * c.kernel + ki) * c.kernel + kj])
                                            * Double(x[((n * c.channels + ch) * c.height + ih) * c.width + iw])
                                        sum += term
                                        magnitude += abs(term)
                                    }
                                }
                            }
                            expected.append(c.relu ? max(sum, 0) : sum)
                            magnitudes.append(magnitude)
                        }
                    }
                }
            }
            let report = ToleranceReport.compareSums(
                try got.scalars(as: Float.self), expected, magnitudes: magnitudes,
                terms: perGroup * c.kernel * c.kernel + 1)
            #expect(report.passed, "\(c.testDescription), \(threads) threads: \(report)")
        }
    }
}

/// Depthwise convolutions with fewer channels than threads split their output rows across every thread: float
/// (Conv, group = channels) and integer (QLinearConv) results on four threads equal one thread's.
struct DepthwiseFewChannelsTests {
    @Test(arguments: [false, true]) func fourThreadsMatchOne(_ quantized: Bool) throws {
        let (channels, size) = (2, 128)
        var rng = SplitMix64(seed: 7)
        let attributes: [String: AttributeValue] = ["group": .int(channels), "pads": .ints([1, 1, 1, 1])]
        let graph: Graph
        let input: Tensor
        if quantized {
            let w = (0..<channels * 9).map { _ in Int8(truncatingIfNeeded: rng.next() % 255) }
            graph = Graph(
                name: "qdw", inputs: [ValueInfo(name: "x", dtype: .uint8, dimensions: nil)],
                outputs: [ValueInfo(name: "y", dtype: .uint8, dimensions: nil)],
                nodes: [
                    Node(
                        opType: "QLinearConv", inputs: ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz"], outputs: ["y"],
                        attributes: attributes)
                ],
                initializers: [
                    "xs": try Tensor(shape: [], scalars: [Float(0.02)]),
                    "xz": try Tensor(shape: [], scalars: [UInt8(100)]),
                    "w": try Tensor(shape: [channels, 1, 3, 3], scalars: w),
                    "ws": try Tensor(shape: [], scalars: [Float(0.01)]),
                    "wz": try Tensor(shape: [], scalars: [Int8(0)]),
                    "ys": try Tensor(shape: [], scalars: [Float(0.03)]),
                    "yz": try Tensor(shape: [], scalars: [UInt8(128)]),
                ])
            input = try Tensor(
                shape: [1, channels, size, size],
                scalars: (0..<channels * size * size).map { _ in UInt8(truncatingIfNeeded: rng.next()) })
        } else {
            let w = (0..<channels * 9).map { _ in Float.random(in: -1...1) }
            graph = Graph(
                name: "dw", inputs: [ValueInfo(name: "x", dtype: .float32, dimensions: nil)],
                outputs: [ValueInfo(name: "y", dtype: .float32, dimensions: nil)],
                nodes: [Node(opType: "Conv", inputs: ["x", "w"], outputs: ["y"], attributes: attributes)],
                initializers: ["w": try Tensor(shape: [channels, 1, 3, 3], scalars: w)])
            input = try Tensor(
                shape: [1, channels, size, size],
                scalars: (0..<channels * size * size).map { _ in Float.random(in: -1...1) })
        }
        let feeds = [NamedTensor(name: "x", tensor: input)]
        let one = try Session(graph: graph, backend: CPUBackend(threads: 1)).run(feeds).outputs[0].tensor
        let four = try Session(graph: graph, backend: CPUBackend(threads: 4)).run(feeds).outputs[0].tensor
        if quantized {
            #expect(try one.scalars(as: UInt8.self) == four.scalars(as: UInt8.self))
        } else {
            #expect(try one.scalars(as: Float.self).map(\.bitPattern) == four.scalars(as: Float.self).map(\.bitPattern))
        }
    }
}

/// The integer depthwise kernel forms its float weights and multipliers once when they come from constants, and on
/// every run when a scale is computed by the model: two runs with different weight scales fed as an input give the
/// results of sessions with those scales as constants.
struct IntegerDepthwiseRuntimeScaleTests {
    @Test func scalesFedPerRunAreReadEveryRun() throws {
        let (channels, size) = (20, 16)
        var rng = SplitMix64(seed: 11)
        let w = (0..<channels * 9).map { _ in Int8(truncatingIfNeeded: rng.next() % 255) }
        let x = try Tensor(
            shape: [1, channels, size, size],
            scalars: (0..<channels * size * size).map { _ in UInt8(truncatingIfNeeded: rng.next()) })
        func graph(scaleInput: Bool, scale: Float) throws -> Graph {
            var initializers: [String: Tensor] = [
                "xs": try Tensor(shape: [], scalars: [Float(0.02)]), "xz": try Tensor(shape: [], scalars: [UInt8(100)]),
                "w": try Tensor(shape: [channels, 1, 3, 3], scalars: w),
                "wz": try Tensor(shape: [], scalars: [Int8(0)]), "ys": try Tensor(shape: [], scalars: [Float(0.03)]),
                "yz": try Tensor(shape: [], scalars: [UInt8(128)]),
            ]
            var inputs = [ValueInfo(name: "x", dtype: .uint8, dimensions: nil)]
            if scaleInput {
                inputs.append(ValueInfo(name: "ws", dtype: .float32, dimensions: []))
            } else {
                initializers["ws"] = try Tensor(shape: [], scalars: [scale])
            }
            return Graph(
                name: "qdw", inputs: inputs, outputs: [ValueInfo(name: "y", dtype: .uint8, dimensions: nil)],
                nodes: [
                    Node(
                        opType: "QLinearConv", inputs: ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz"], outputs: ["y"],
                        attributes: ["group": .int(channels), "pads": .ints([1, 1, 1, 1])])
                ],
                initializers: initializers)
        }
        let fed = try Session(graph: graph(scaleInput: true, scale: 0), backend: CPUBackend(threads: 1))
        for scale in [Float(0.01), 0.004] {
            let feeds = [
                NamedTensor(name: "x", tensor: x),
                NamedTensor(name: "ws", tensor: try Tensor(shape: [], scalars: [scale])),
            ]
            let kernels = try fed.prepare(feeds).steps.map(\.implementation)
            #expect(kernels.contains { $0.hasPrefix("IntegerDepthwiseKernel") }, "\(kernels)")
            let got = try fed.run(feeds).outputs[0].tensor.scalars(as: UInt8.self)
            let constant = try Session(graph: graph(scaleInput: false, scale: scale), backend: CPUBackend(threads: 1))
            let want = try constant.run([NamedTensor(name: "x", tensor: x)]).outputs[0].tensor.scalars(as: UInt8.self)
            let wrong = zip(got, want).filter { $0 != $1 }.count
            #expect(got.count == want.count && wrong == 0, "weight scale \(scale): \(wrong) of \(want.count) differ")
        }
    }
}

/// A direct convolution with a fused HardSwish applies it to each chunk of output rows as the rows are computed
/// (64 filters over 300-wide rows: three rows per chunk, and on two threads each its share of the rows): the bits
/// of the convolution alone followed by a HardSwish node.
struct DirectConvActivationChunkTests {
    @Test func chunkedHardSwishMatchesTheUnfusedNodes() throws {
        let (channels, filters, height, width) = (8, 64, 40, 300)
        let x = (0..<channels * height * width).map { _ in Float.random(in: -1...1) }
        let w = (0..<filters * channels * 9).map { _ in Float.random(in: -0.5...0.5) }
        let b = (0..<filters).map { _ in Float.random(in: -1...1) }
        func graph(_ nodes: [Node]) throws -> Graph {
            Graph(
                name: "direct", inputs: [ValueInfo(name: "x", dtype: .float32, dimensions: nil)],
                outputs: [ValueInfo(name: "y", dtype: .float32, dimensions: nil)], nodes: nodes,
                initializers: [
                    "w": try Tensor(shape: [filters, channels, 3, 3], scalars: w),
                    "b": try Tensor(shape: [filters], scalars: b),
                ])
        }
        let conv = { (output: String) in
            Node(
                opType: "Conv", inputs: ["x", "w", "b"], outputs: [output],
                attributes: ["pads": .ints([1, 1, 1, 1])])
        }
        let fused = try graph([conv("c"), Node(opType: "HardSwish", inputs: ["c"], outputs: ["y"])])
        let plain = try graph([conv("y")])
        let activation = Graph(
            name: "hardswish", inputs: [ValueInfo(name: "c", dtype: .float32, dimensions: nil)],
            outputs: [ValueInfo(name: "y", dtype: .float32, dimensions: nil)],
            nodes: [Node(opType: "HardSwish", inputs: ["c"], outputs: ["y"])])
        let feeds = [NamedTensor(name: "x", tensor: try Tensor(shape: [1, channels, height, width], scalars: x))]
        for threads in [1, 2] {
            let session = try Session(graph: fused, backend: CPUBackend(threads: threads))
            let kernels = try session.prepare(feeds).steps.map(\.implementation)
            #expect(kernels.count == 1 && kernels[0].hasPrefix("DirectConvKernel"), "\(kernels)")
            let got = try session.run(feeds).outputs[0].tensor.scalars(as: Float.self)
            let sums = try Session(graph: plain, backend: CPUBackend(threads: threads)).run(feeds).outputs[0].tensor
            let want = try Session(graph: activation, backend: CPUBackend(threads: 1))
                .run([NamedTensor(name: "c", tensor: sums)]).outputs[0].tensor.scalars(as: Float.self)
            #expect(got.map(\.bitPattern) == want.map(\.bitPattern), "\(threads) threads")
        }
    }
}

/// ConvTranspose splits its product rows and output channels across threads above a size: the split, constant
/// weights (transposed once) and run-time weights (transposed per run) all give the unsplit result, and a double
/// reference within the summation bound.
struct ConvTransposeSplitTests {
    @Test func splitAndWeightFormsAgree() throws {
        let (n, c, m, h, w, k) = (1, 16, 12, 20, 24, 3)
        let random = { (count: Int) in (0..<count).map { _ in Float.random(in: -1...1) } }
        let x = random(n * c * h * w), weights = random(c * m * k * k), bias = random(m)
        func graph(constant: Bool) throws -> Graph {
            Graph(
                name: "deconv",
                inputs: [ValueInfo(name: "x", dtype: .float32, dimensions: nil)]
                    + (constant ? [] : [ValueInfo(name: "w", dtype: .float32, dimensions: nil)]),
                outputs: [ValueInfo(name: "y", dtype: .float32, dimensions: nil)],
                nodes: [
                    Node(
                        opType: "ConvTranspose", inputs: ["x", "w", "b"], outputs: ["y"],
                        attributes: ["strides": .ints([2, 2]), "pads": .ints([1, 1, 1, 1])])
                ],
                initializers: [
                    "b": try Tensor(shape: [m], scalars: bias)
                ].merging(constant ? ["w": try Tensor(shape: [c, m, k, k], scalars: weights)] : [:]) { a, _ in a })
        }
        var feeds = [NamedTensor(name: "x", tensor: try Tensor(shape: [n, c, h, w], scalars: x))]
        let one = try Session(graph: try graph(constant: true), backend: CPUBackend(threads: 1)).run(feeds)
            .outputs[0].tensor
        let two = try Session(graph: try graph(constant: true), backend: CPUBackend(threads: 2)).run(feeds)
            .outputs[0].tensor
        feeds.append(NamedTensor(name: "w", tensor: try Tensor(shape: [c, m, k, k], scalars: weights)))
        let runtime = try Session(graph: try graph(constant: false), backend: CPUBackend(threads: 2))
        _ = try runtime.run(feeds)
        let late = try runtime.run(feeds).outputs[0].tensor
        #expect(try one.scalars(as: Float.self) == two.scalars(as: Float.self))
        #expect(try one.scalars(as: Float.self) == late.scalars(as: Float.self))
        let (oh, ow) = ((h - 1) * 2 - 2 + k, (w - 1) * 2 - 2 + k)
        #expect(one.shape == [n, m, oh, ow])
        var expected = [Double](repeating: 0, count: m * oh * ow), magnitudes = expected
        for f in 0..<m {
            for i in 0..<(oh * ow) { expected[f * oh * ow + i] = Double(bias[f]) }
            for ch in 0..<c {
                for iy in 0..<h {
                    for ix in 0..<w {
                        for ky in 0..<k {
                            for kx in 0..<k {
                                let oy = iy * 2 - 1 + ky, ox = ix * 2 - 1 + kx
                                guard oy >= 0 && oy < oh && ox >= 0 && ox < ow else { continue }
                                let term =
                                    Double(x[(ch * h + iy) * w + ix])
                                    * Double(weights[((ch * m + f) * k + ky) * k + kx])
                                expected[(f * oh + oy) * ow + ox] += term
                                magnitudes[(f * oh + oy) * ow + ox] += abs(term)
                            }
                        }
                    }
                }
            }
        }
        let report = ToleranceReport.compareSums(
            try one.scalars(as: Float.self), expected, magnitudes: magnitudes, terms: c * k * k + 1)
        #expect(report.passed, "\(report)")
    }
}

/// A 1x1 convolution of a 1x1 image (squeeze-and-excitation layers) is a matrix-vector product with bias and
/// the fused activation: against a double reference within the summation bound, on one and two threads.
struct SqueezeExcitationConvTests {
    @Test(arguments: ["", "Relu", "Swish"]) func matchesDoubleReference(_ activation: String) throws {
        // 69,000 weights: two threads split the filters (from 65,536).
        let (c, m) = (300, 230)
        let random = { (count: Int) in (0..<count).map { _ in Float.random(in: -1...1) } }
        let x = random(c), w = random(m * c), b = random(m)
        var nodes = [Node(opType: "Conv", inputs: ["x", "w", "b"], outputs: [activation.isEmpty ? "y" : "c"])]
        if activation == "Relu" { nodes.append(Node(opType: "Relu", inputs: ["c"], outputs: ["y"])) }
        if activation == "Swish" {
            nodes.append(Node(opType: "Sigmoid", inputs: ["c"], outputs: ["s"]))
            nodes.append(Node(opType: "Mul", inputs: ["c", "s"], outputs: ["y"]))
        }
        let graph = Graph(
            name: "se", inputs: [ValueInfo(name: "x", dtype: .float32, dimensions: nil)],
            outputs: [ValueInfo(name: "y", dtype: .float32, dimensions: nil)], nodes: nodes,
            initializers: [
                "w": try Tensor(shape: [m, c, 1, 1], scalars: w), "b": try Tensor(shape: [m], scalars: b),
            ])
        let feeds = [NamedTensor(name: "x", tensor: try Tensor(shape: [1, c, 1, 1], scalars: x))]
        var expected: [Double] = [], magnitudes: [Double] = []
        for f in 0..<m {
            var sum = Double(b[f]), magnitude = abs(Double(b[f]))
            for i in 0..<c {
                sum += Double(w[f * c + i]) * Double(x[i])
                magnitude += abs(Double(w[f * c + i]) * Double(x[i]))
            }
            switch activation {
            case "Relu": expected.append(max(sum, 0))
            case "Swish": expected.append(sum / (1 + exp(-sum)))
            default: expected.append(sum)
            }
            magnitudes.append(magnitude)
        }
        var results: [[Float]] = []
        for threads in [1, 2] {
            let got = try Session(graph: graph, backend: CPUBackend(threads: threads)).run(feeds).outputs[0].tensor
            results.append(try got.scalars(as: Float.self))
            #expect(got.shape == [1, m, 1, 1])
            let report = ToleranceReport.compareSums(
                try got.scalars(as: Float.self), expected, magnitudes: magnitudes, terms: c + 1)
            #expect(report.passed, "\(activation), \(threads) threads: \(report)")
        }
        #expect(results[0] == results[1], "\(activation): one and two threads differ")
    }
}

/// The direct convolution's padded copy is zeroed once, at creation: each run copies the image's positions only.
/// A session run on one image and then another gives what a fresh session gives the second (pads still zero, no
/// value of the first left behind), with stride 1 and 2, asymmetric pads, one image and two.
struct DirectConvPaddedCopyTests {
    @Test(arguments: [(1, 1), (2, 1), (1, 2), (2, 2)])
    func repeatedRunsMatchFreshSessions(stride: Int, batch: Int) throws {
        let (channels, filters, height, width) = (3, 16, 37, 45)
        let w = (0..<filters * channels * 9).map { _ in Float.random(in: -0.5...0.5) }
        let graph = Graph(
            name: "stem", inputs: [ValueInfo(name: "x", dtype: .float32, dimensions: nil)],
            outputs: [ValueInfo(name: "y", dtype: .float32, dimensions: nil)],
            nodes: [
                Node(
                    opType: "Conv", inputs: ["x", "w"], outputs: ["y"],
                    attributes: ["pads": .ints([1, 2, 2, 1]), "strides": .ints([stride, stride])])
            ],
            initializers: ["w": try Tensor(shape: [filters, channels, 3, 3], scalars: w)])
        let count = batch * channels * height * width
        // Large values first, so a leftover in a pad would show.
        let first = try Tensor(
            shape: [batch, channels, height, width], scalars: [Float](repeating: 1000, count: count))
        let second = try Tensor(
            shape: [batch, channels, height, width], scalars: (0..<count).map { _ in Float.random(in: -1...1) })
        for threads in [1, 2] {
            let session = try Session(graph: graph, backend: CPUBackend(threads: threads))
            let kernels = try session.prepare([NamedTensor(name: "x", tensor: first)]).steps.map(\.implementation)
            #expect(kernels.count == 1 && kernels[0].hasPrefix("DirectConvKernel"), "\(kernels)")
            _ = try session.run([NamedTensor(name: "x", tensor: first)])
            let got = try session.run([NamedTensor(name: "x", tensor: second)]).outputs[0].tensor.scalars(
                as: Float.self)
            let want = try Session(graph: graph, backend: CPUBackend(threads: threads))
                .run([NamedTensor(name: "x", tensor: second)]).outputs[0].tensor.scalars(as: Float.self)
            #expect(
                got.map(\.bitPattern) == want.map(\.bitPattern), "stride \(stride), batch \(batch), \(threads) threads")
            // And both what a double-precision sum over the taps inside the image gives, within the float32 bound.
            let xs = try second.scalars(as: Float.self)
            let (oh, ow) = ((height + 3 - 3) / stride + 1, (width + 3 - 3) / stride + 1)
            #expect(got.count == batch * filters * oh * ow)
            var worst = 0.0
            for n in 0..<batch {
                for f in 0..<filters {
                    for oy in 0..<oh {
                        for ox in 0..<ow {
                            var sum = 0.0, magnitude = 0.0
                            for c in 0..<channels {
                                for ky in 0..<3 {
                                    for kx in 0..<3 {
                                        let iy = oy * stride + ky - 1, ix = ox * stride + kx - 2
                                        guard iy >= 0, iy < height, ix >= 0, ix < width else { continue }
                                        let term =
                                            Double(xs[((n * channels + c) * height + iy) * width + ix])
                                            * Double(w[(f * channels + c) * 9 + ky * 3 + kx])
                                        sum += term
                                        magnitude += abs(term)
                                    }
                                }
                            }
                            let value = Double(got[((n * filters + f) * oh + oy) * ow + ox])
                            worst = max(worst, abs(value - sum) / max(magnitude * 28 * 0x1p-24, .leastNormalMagnitude))
                        }
                    }
                }
            }
            #expect(worst <= 1, "stride \(stride), batch \(batch), \(threads) threads: \(worst) of the bound")
        }
    }
}
