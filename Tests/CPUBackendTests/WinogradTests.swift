import CPUBackend
import Foundation
import InferenceGraph
import InferenceRuntime
import InferenceTensor
import InferenceTestSupport
import Testing

/// The CPU's convolution algorithms (Winograd F(2x2, 3x3), the direct kernel for few channels) against a
/// double-precision direct convolution, within the error bound of float32 sums (Winograd's transforms add a few
/// roundings per term), on shapes that exercise padding, odd sizes, partial tiles, several tile blocks, batches,
/// bias and a fused Relu; and the same bits on 1 and 2 threads.
struct WinogradTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var batch: Int, channels: Int, filters: Int, height: Int, width: Int
        var pads: [Int]
        var relu: Bool
        var kernel = 3
        var algorithm = ConvolutionAlgorithm.winograd
        var stride = 1
        var testDescription: String {
            "\(algorithm) \(batch)x\(channels)x\(height)x\(width) → \(filters), \(kernel)x\(kernel), pads \(pads)"
                + (stride > 1 ? ", stride \(stride)" : "") + (relu ? ", Relu" : "")
        }
    }

    static let cases: [Case] = [
        Case(batch: 1, channels: 32, filters: 64, height: 14, width: 14, pads: [1, 1, 1, 1], relu: true),
        Case(batch: 2, channels: 16, filters: 24, height: 9, width: 7, pads: [1, 1, 1, 1], relu: false),
        Case(batch: 1, channels: 3, filters: 5, height: 6, width: 10, pads: [0, 2, 1, 0], relu: false),
        Case(batch: 3, channels: 20, filters: 17, height: 5, width: 5, pads: [0, 0, 0, 0], relu: true),
        Case(batch: 1, channels: 64, filters: 64, height: 40, width: 38, pads: [1, 1, 1, 1], relu: false),
        // Transformed filters above 1 MB: two threads split the filter panels (many panels) or the 16 points (one
        // panel) instead of the tiles.
        Case(batch: 1, channels: 128, filters: 160, height: 6, width: 7, pads: [1, 1, 1, 1], relu: true),
        Case(batch: 1, channels: 1040, filters: 16, height: 4, width: 5, pads: [1, 1, 1, 1], relu: false),
        Case(
            batch: 1, channels: 1, filters: 32, height: 28, width: 28, pads: [1, 1, 1, 1], relu: true,
            algorithm: .direct),
        Case(
            batch: 3, channels: 2, filters: 7, height: 7, width: 9, pads: [0, 2, 1, 0], relu: false, algorithm: .direct),
        Case(
            batch: 2, channels: 3, filters: 4, height: 6, width: 5, pads: [2, 0, 1, 3], relu: true, kernel: 5,
            algorithm: .direct),
        Case(
            batch: 1, channels: 1, filters: 3, height: 4, width: 40, pads: [0, 0, 0, 0], relu: false, algorithm: .direct
        ),
        // The stems of ResNets and MobileNets: stride 2 over 3 channels, filters in blocks of 6 (AVX2) and 4, rows
        // of whole vectors and a partial one.
        Case(
            batch: 1, channels: 3, filters: 16, height: 37, width: 53, pads: [3, 3, 3, 3], relu: true, kernel: 7,
            algorithm: .direct, stride: 2),
        Case(
            batch: 2, channels: 3, filters: 11, height: 32, width: 32, pads: [1, 1, 1, 1], relu: false,
            algorithm: .direct, stride: 2),
        // Large enough at batch 1 for two threads to split the output rows; no left padding (the even and odd
        // halves of each padded row start at different image columns than with one) and an odd width.
        Case(
            batch: 1, channels: 3, filters: 16, height: 161, width: 151, pads: [1, 0, 0, 1], relu: true,
            algorithm: .direct, stride: 2),
        // im2col's stride-2 rows gathered in vectors: runs of whole vectors, a tail, and reads that stop at the end
        // of an input row (no right padding, an even and an odd width).
        Case(
            batch: 1, channels: 5, filters: 7, height: 20, width: 75, pads: [1, 1, 1, 1], relu: false,
            algorithm: .im2col, stride: 2),
        Case(
            batch: 2, channels: 4, filters: 9, height: 9, width: 70, pads: [0, 0, 0, 0], relu: true,
            algorithm: .im2col, stride: 2),
        // im2col matrices beyond 1 MB at batch 1, built and multiplied a chunk of panels at a time (a partial last
        // chunk and panel): stride 2 with an odd height, and stride 1.
        Case(
            batch: 1, channels: 16, filters: 20, height: 131, width: 127, pads: [1, 1, 1, 1], relu: true,
            algorithm: .im2col, stride: 2),
        Case(
            batch: 1, channels: 8, filters: 13, height: 66, width: 63, pads: [0, 1, 0, 1], relu: false,
            algorithm: .im2col),
    ]

    static func graph(_ c: Case, weights: Tensor, bias: Tensor) -> Graph {
        var nodes = [
            Node(
                name: "conv", opType: "Conv", inputs: ["x", "w", "b"], outputs: [c.relu ? "c" : "y"],
                attributes: [
                    "pads": .ints(c.pads), "kernel_shape": .ints([c.kernel, c.kernel]),
                    "strides": .ints([c.stride, c.stride]),
                ])
        ]
        if c.relu { nodes.append(Node(name: "relu", opType: "Relu", inputs: ["c"], outputs: ["y"])) }
        let dims = [c.batch, c.channels, c.height, c.width].map { Dimension.fixed($0) }
        return Graph(
            name: "winograd", inputs: [ValueInfo(name: "x", dtype: .float32, dimensions: dims)],
            outputs: [ValueInfo(name: "y", dtype: .float32, dimensions: nil)], nodes: nodes,
            initializers: ["w": weights, "b": bias], opsetImports: ["": 17])
    }

    func run(_ graph: Graph, _ x: Tensor, _ backend: CPUBackend) throws -> [Float] {
        let session = try Session(graph: graph, backend: backend)
        return try session.run([NamedTensor(name: "x", tensor: x)]).outputs[0].tensor.scalars(as: Float.self)
    }

    @Test(arguments: cases)
    func matchesDirectConvolution(_ c: Case) throws {
        let k = c.kernel
        let w = KernelTests.random(c.filters * c.channels * k * k)
        let b = KernelTests.random(c.filters)
        let xs = KernelTests.random(c.batch * c.channels * c.height * c.width)
        let graph = Self.graph(
            c, weights: try Tensor(shape: [c.filters, c.channels, k, k], scalars: w),
            bias: try Tensor(shape: [c.filters], scalars: b))
        let x = try Tensor(shape: [c.batch, c.channels, c.height, c.width], scalars: xs)
        let got = try run(graph, x, CPUBackend(threads: 1, convolution: c.algorithm))
        // Direct convolution in double, and Σ|terms| per output for the error bound.
        let oh = (c.height + c.pads[0] + c.pads[2] - k) / c.stride + 1
        let ow = (c.width + c.pads[1] + c.pads[3] - k) / c.stride + 1
        var expected: [Double] = [], magnitudes: [Double] = []
        for n in 0..<c.batch {
            for m in 0..<c.filters {
                for oy in 0..<oh {
                    for ox in 0..<ow {
                        var sum = Double(b[m]), magnitude = abs(Double(b[m]))
                        for ch in 0..<c.channels {
                            for ky in 0..<k {
                                for kx in 0..<k {
                                    let iy = oy * c.stride - c.pads[0] + ky, ix = ox * c.stride - c.pads[1] + kx
                                    guard iy >= 0, iy < c.height, ix >= 0, ix < c.width else { continue }
                                    let term =
                                        Double(xs[((n * c.channels + ch) * c.height + iy) * c.width + ix])
                                        * Double(w[((m * c.channels + ch) * k + ky) * k + kx])
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
        // The bound of a direct float32 sum of the same terms, doubled for the transforms' extra additions
        // (measured: the largest error is hundreds of times below it).
        let report = ToleranceReport.compareSums(
            got, expected, magnitudes: magnitudes.map { $0 * 2 }, terms: k * k * c.channels + 1)
        #expect(report.passed, "\(c): \(report)")
        // Two threads compute the same bits.
        let two = try run(graph, x, CPUBackend(threads: 2, convolution: c.algorithm))
        #expect(two.map(\.bitPattern) == got.map(\.bitPattern))
    }

    /// The automatic choice takes Winograd only where channels and filters make its GEMMs efficient.
    @Test func automaticChoiceMatchesIm2col() throws {
        let c = Case(batch: 1, channels: 32, filters: 64, height: 14, width: 14, pads: [1, 1, 1, 1], relu: true)
        let graph = Self.graph(
            c, weights: try Tensor(shape: [64, 32, 3, 3], scalars: KernelTests.random(64 * 32 * 9)),
            bias: try Tensor(shape: [64], scalars: KernelTests.random(64)))
        let x = try Tensor(shape: [1, 32, 14, 14], scalars: KernelTests.random(32 * 14 * 14))
        let automatic = try run(graph, x, CPUBackend(threads: 1))
        let winograd = try run(graph, x, CPUBackend(threads: 1, convolution: .winograd))
        let im2col = try run(graph, x, CPUBackend(threads: 1, convolution: .im2col))
        #expect(automatic.map(\.bitPattern) == winograd.map(\.bitPattern))
        // Both are float32 sums of 289 terms of magnitude about 1, rounded differently: absolute agreement.
        let report = ToleranceReport.compare(im2col, winograd, relative: 0, absolute: 5e-4)
        #expect(report.passed, "\(report)")
    }
}
