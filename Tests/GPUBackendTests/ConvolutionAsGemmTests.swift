import CPUBackend
import InferenceGraph
import InferenceRuntime
import InferenceTensor
import InferenceTestSupport
import Testing

@testable import GPUBackend

private let gemmDevice: OpenCLBackend? = try? OpenCLBackend(index: 0, environment: ["INFERENCE_GPU_CONV": "gemm"])

/// Conv as im2col + GEMM (what the CUDA backend runs through cuBLAS) on the OpenCL device, with the kernel
/// source's matmul: 1-D, 2-D and 3-D windows, strides, padding, dilation, with and without bias, and a scratch
/// limit small enough that the images go through in several chunks. Checked against the CPU backend within the
/// float32 bound for sums of products.
@Suite(.serialized, .enabled(if: gemmDevice != nil, "no OpenCL device (install pocl-opencl-icd)"))
struct ConvolutionAsGemmTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var input: [Int]
        var filters: [Int]
        var attributes: [String: AttributeValue]
        var bias: Bool
        var scratchBytes: Int
        var testDescription: String { "x \(input) w \(filters) bias \(bias) scratch \(scratchBytes)" }
    }

    static let cases: [Case] = [
        Case(
            input: [3, 4, 9, 8], filters: [5, 4, 3, 3],
            attributes: ["strides": .ints([2, 1]), "pads": .ints([1, 0, 1, 2]), "dilations": .ints([1, 2])],
            bias: true, scratchBytes: 4096),
        Case(
            input: [2, 3, 11], filters: [4, 3, 3], attributes: ["pads": .ints([1, 1])], bias: false, scratchBytes: 1),
        Case(
            input: [2, 2, 4, 5, 6], filters: [3, 2, 2, 3, 2], attributes: ["pads": .ints([1, 0, 1, 0, 1, 1])],
            bias: true, scratchBytes: 256 << 20),
    ]

    @Test(arguments: cases)
    func matchesTheCPU(_ c: Case) throws {
        guard let device = gemmDevice else { return }
        device.convolution = GPUConvolutionOptions(asGemm: true, scratchBytes: c.scratchBytes)
        let inputs = ["x", "w"] + (c.bias ? ["b"] : [])
        let shapes = [c.input, c.filters] + (c.bias ? [[c.filters[0]]] : [])
        let graph = Graph(
            name: "conv",
            inputs: zip(inputs, shapes).map { ValueInfo(name: $0, dtype: .float32, dimensions: $1.map { .fixed($0) }) },
            outputs: [ValueInfo(name: "y", dtype: .float32, dimensions: nil)],
            nodes: [Node(name: "conv", opType: "Conv", inputs: inputs, outputs: ["y"], attributes: c.attributes)],
            opsetImports: ["": 17])
        let values = shapes.map { shape in (0..<shape.reduce(1, *)).map { _ in Float.random(in: -2...2) } }
        func feeds(_ transform: (Float) -> Float) throws -> [NamedTensor] {
            try zip(zip(inputs, shapes), values).map {
                NamedTensor(name: $0.0, tensor: try Tensor(shape: Shape($0.1), scalars: $1.map(transform)))
            }
        }
        let cpu = try Session(graph: graph, backend: CPUBackend()).run(try feeds { $0 }).outputs[0].tensor
        let magnitudes = try Session(graph: graph, backend: CPUBackend()).run(try feeds(abs)).outputs[0].tensor
        let gpu = try Session(graph: graph, backend: device, evaluator: CPUBackend()).run(try feeds { $0 }).outputs[0]
            .tensor
        #expect(gpu.shape == cpu.shape)
        let report = ToleranceReport.compareSums(
            try gpu.scalars(as: Float.self), try cpu.scalars(as: Float.self).map(Double.init),
            magnitudes: try magnitudes.scalars(as: Float.self).map(Double.init),
            terms: c.filters.dropFirst().reduce(1, *) + 1, computations: 2.01)
        #expect(report.passed, "\(report)")
        #expect(device.configuration.contains("Conv: im2col + the kernel source's GEMM"))
    }

    /// Columns of 2^31 elements or more (the kernels index them with int) send a convolution to the direct kernel
    /// instead of trapping on the launch's Int32 count; products that overflow Int are caught too.
    @Test func oversizedColumnsTakeTheDirectKernel() {
        #expect(GPUKernelTable.imageColumns(channels: 64, extents: [1, 3, 3, 1, 56, 56]) == 64 * 9 * 56 * 56)
        #expect(GPUKernelTable.imageColumns(channels: 1 << 16, extents: [1, 1, 1 << 15, 1, 1, 1]) == nil)
        #expect(GPUKernelTable.imageColumns(channels: Int.max / 2, extents: [4, 1]) == nil)
        #expect(GPUKernelTable.imageColumns(channels: Int(Int32.max), extents: [1, 1]) == Int(Int32.max))
    }
}
