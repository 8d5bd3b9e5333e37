import CPUBackend
import Foundation
import InferenceGraph
import InferenceRuntime
import InferenceTensor
import InferenceTestSupport
import Testing

/// Winograd F(2x2, 3x3) convolution against a double-precision direct convolution, within the error bound of
/// float32 sums (its transforms add a few roundings per term), on shapes that exercise padding, odd sizes,
/// partial tiles, several tile blocks, batches, bias and a fused Relu; and the same bits on 1 and 2 threads.
struct WinogradTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var batch: Int, channels: Int, filters: Int, height: Int, width: Int
        var pads: [Int]
        var relu: Bool
        var testDescription: String {
            "\(batch)x\(channels)x\(height)x\(width) → \(filters), pads \(pads)\(relu ? ", Relu" : "")"
        }
    }

    static let cases: [Case] = [
        Case(batch: 1, channels: 32, filters: 64, height: 14, width: 14, pads: [1, 1, 1, 1], relu: true),
        Case(batch: 2, channels: 16, filters: 24, height: 9, width: 7, pads: [1, 1, 1, 1], relu: false),
        Case(batch: 1, channels: 3, filters: 5, height: 6, width: 10, pads: [0, 2, 1, 0], relu: false),
        Case(batch: 3, channels: 20, filters: 17, height: 5, width: 5, pads: [0, 0, 0, 0], relu: true),
        Case(batch: 1, channels: 64, filters: 64, height: 40, width: 38, pads: [1, 1, 1, 1], relu: false),
    ]

    static func graph(_ c: Case, weights: Tensor, bias: Tensor) -> Graph {
        var nodes = [
            Node(
                name: "conv", opType: "Conv", inputs: ["x", "w", "b"], outputs: [c.relu ? "c" : "y"],
                attributes: ["pads": .ints(c.pads), "kernel_shape": .ints([3, 3])])
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
        let w = KernelTests.random(c.filters * c.channels * 9)
        let b = KernelTests.random(c.filters)
        let xs = KernelTests.random(c.batch * c.channels * c.height * c.width)
        let graph = Self.graph(
            c, weights: try Tensor(shape: [c.filters, c.channels, 3, 3], scalars: w),
            bias: try Tensor(shape: [c.filters], scalars: b))
        let x = try Tensor(shape: [c.batch, c.channels, c.height, c.width], scalars: xs)
        let got = try run(graph, x, CPUBackend(threads: 1, convolution: .winograd))
        // Direct convolution in double, and Σ|terms| per output for the error bound.
        let oh = c.height + c.pads[0] + c.pads[2] - 2, ow = c.width + c.pads[1] + c.pads[3] - 2
        var expected: [Double] = [], magnitudes: [Double] = []
        for n in 0..<c.batch {
            for m in 0..<c.filters {
                for oy in 0..<oh {
                    for ox in 0..<ow {
                        var sum = Double(b[m]), magnitude = abs(Double(b[m]))
                        for ch in 0..<c.channels {
                            for ky in 0..<3 {
                                for kx in 0..<3 {
                                    let iy = oy - c.pads[0] + ky, ix = ox - c.pads[1] + kx
                                    guard iy >= 0, iy < c.height, ix >= 0, ix < c.width else { continue }
                                    let term =
                                        Double(xs[((n * c.channels + ch) * c.height + iy) * c.width + ix])
                                        * Double(w[((m * c.channels + ch) * 3 + ky) * 3 + kx])
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
            got, expected, magnitudes: magnitudes.map { $0 * 2 }, terms: 9 * c.channels + 1)
        #expect(report.passed, "\(c): \(report)")
        // Two threads compute the same bits.
        let two = try run(graph, x, CPUBackend(threads: 2, convolution: .winograd))
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
