import CPUBackend
import Foundation
import GPUBackend
import InferenceGraph
import InferenceRuntime
import InferenceTensor
import Testing

/// The GPU's integer GEMM (`integer_gemm`: bytes packed four to an int in the signed domain, dp4a-style sums, the
/// zero points' corrections after) against the CPU bit for bit, and its convolutions (im2col of bytes + the GEMM)
/// against the direct kernel (`INFERENCE_GPU_CONV=direct`): every operand type, zero points per tensor, per row and
/// per column, depths off the 4-byte packing and the 64-deep slices, edges off the 16 x 16 tiles, padding, strides
/// and dilation, batches of images. Runs on every GPU device present.
@Suite(.enabled(if: !GPUTestDevices.all.isEmpty, "no GPU device (install pocl-opencl-icd for OpenCL)"))
struct GPUIntegerGemmTests {
    /// Each GPU device with the default integer convolution (the GEMM) and with the direct kernel.
    static func devicePairs() -> [(gemm: any Backend, direct: any Backend)] {
        GPUTestDevices.pairs(["INFERENCE_GPU_CONV": nil], ["INFERENCE_GPU_CONV": "direct"])
            .map { (gemm: $0.0, direct: $0.1) }
    }

    /// Seeded bytes of `dtype` (int8 or uint8) covering the whole range, ends included.
    static func bytes(_ dtype: DType, _ dims: [Int], seed: UInt64) throws -> Tensor {
        var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        let raw = (0..<dims.reduce(1, *)).map { index -> UInt8 in
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return index % 11 == 5 ? (index % 22 == 5 ? 0 : 255) : UInt8(truncatingIfNeeded: state >> 33)
        }
        return dtype == .int8
            ? try Tensor(shape: Shape(dims), scalars: raw.map { Int8(bitPattern: $0) })
            : try Tensor(shape: Shape(dims), scalars: raw)
    }

    static func floats(_ values: [Float]) throws -> Tensor { try Tensor(shape: Shape([values.count]), scalars: values) }

    /// Runs `graph` on the CPU and on each device both ways; every output must be the CPU's bytes, and the
    /// default way must run `expected` (a kernel name in its profile description).
    func check(_ graph: Graph, _ inputs: [NamedTensor], expected: String) throws {
        let cpu = try Session(graph: graph, backend: CPUBackend()).run(inputs).outputs
        for (gemm, direct) in Self.devicePairs() {
            for (backend, way) in [(gemm, "default"), (direct, "direct")] {
                let session = try Session(graph: graph, backend: backend, evaluator: CPUBackend(), hostFallback: false)
                if way == "default" {
                    let kernels = try session.prepare(inputs).steps.map(\.implementation)
                    #expect(kernels.allSatisfy { $0.contains(expected) }, "\(graph.name): \(kernels)")
                }
                let outputs = try session.run(inputs).outputs
                for (got, want) in zip(outputs, cpu) {
                    #expect(
                        got.tensor.dtype == want.tensor.dtype && got.tensor.bitwiseEqual(want.tensor),
                        "\(graph.name) \(got.name) on \(backend.device) (\(way))")
                }
            }
        }
    }

    @Test(arguments: [(DType.uint8, DType.int8), (.int8, .uint8), (.uint8, .uint8), (.int8, .int8)])
    func matMulIntegerMatchesTheCPU(_ types: (DType, DType)) throws {
        let (aType, bType) = types
        // A [3, 37, 70] with one zero point, B [70, 29] with one per column; and a 2-D A with one per row.
        let graph = Graph(
            name: "matmul-integer",
            inputs: [
                ValueInfo(name: "a", dtype: aType, dimensions: [.fixed(3), .fixed(37), .fixed(70)]),
                ValueInfo(name: "c", dtype: aType, dimensions: [.fixed(21), .fixed(130)]),
            ],
            outputs: [
                ValueInfo(name: "y", dtype: .int32, dimensions: nil),
                ValueInfo(name: "z", dtype: .int32, dimensions: nil),
            ],
            nodes: [
                Node(name: "first", opType: "MatMulInteger", inputs: ["a", "b", "az", "bz"], outputs: ["y"]),
                Node(name: "second", opType: "MatMulInteger", inputs: ["c", "d", "cz", "dz"], outputs: ["z"]),
            ],
            initializers: [
                "b": try Self.bytes(bType, [70, 29], seed: 1), "bz": try Self.bytes(bType, [29], seed: 2),
                "az": try Self.bytes(aType, [], seed: 3), "d": try Self.bytes(bType, [130, 17], seed: 4),
                "cz": try Self.bytes(aType, [21], seed: 5), "dz": try Self.bytes(bType, [], seed: 6),
            ])
        let inputs = [
            NamedTensor(name: "a", tensor: try Self.bytes(aType, [3, 37, 70], seed: 7)),
            NamedTensor(name: "c", tensor: try Self.bytes(aType, [21, 130], seed: 8)),
        ]
        try check(graph, inputs, expected: "integer_gemm")
    }

    @Test(arguments: [(DType.uint8, DType.int8, DType.uint8), (.int8, .uint8, .int8)])
    func qlinearMatMulMatchesTheCPU(_ types: (DType, DType, DType)) throws {
        let (aType, bType, yType) = types
        let graph = Graph(
            name: "qlinear-matmul",
            inputs: [ValueInfo(name: "a", dtype: aType, dimensions: [.fixed(19), .fixed(67)])],
            outputs: [ValueInfo(name: "y", dtype: yType, dimensions: nil)],
            nodes: [
                Node(
                    name: "q", opType: "QLinearMatMul", inputs: ["a", "as", "az", "b", "bs", "bz", "ys", "yz"],
                    outputs: ["y"])
            ],
            initializers: [
                "as": try Tensor(shape: [], scalars: [Float(0.021)]), "az": try Self.bytes(aType, [], seed: 1),
                "b": try Self.bytes(bType, [67, 35], seed: 2),
                "bs": try Self.floats((0..<35).map { 0.003 + Float($0) * 0.0007 }),
                "bz": try Self.bytes(bType, [35], seed: 3), "ys": try Tensor(shape: [], scalars: [Float(0.37)]),
                "yz": try Self.bytes(yType, [], seed: 4),
            ])
        try check(
            graph, [NamedTensor(name: "a", tensor: try Self.bytes(aType, [19, 67], seed: 5))], expected: "integer_gemm")
    }

    @Test(arguments: [(DType.uint8, DType.int8), (.int8, .uint8)])
    func integerConvolutionsMatchTheCPUAndTheDirectKernel(_ types: (DType, DType)) throws {
        let (xType, wType) = types
        let yType: DType = xType == .uint8 ? .uint8 : .int8
        let graph = Graph(
            name: "integer-conv",
            inputs: [ValueInfo(name: "x", dtype: xType, dimensions: [.fixed(2), .fixed(6), .fixed(9), .fixed(11)])],
            outputs: [
                ValueInfo(name: "y", dtype: .int32, dimensions: nil),
                ValueInfo(name: "q", dtype: yType, dimensions: nil),
            ],
            nodes: [
                Node(
                    name: "conv-integer", opType: "ConvInteger", inputs: ["x", "w", "xz", "wz"], outputs: ["y"],
                    attributes: ["pads": .ints([1, 1, 1, 1]), "strides": .ints([2, 1])]),
                Node(
                    name: "qlinear-conv", opType: "QLinearConv",
                    inputs: ["x", "xs", "xz", "v", "vs", "vz", "ys", "yz", "bias"], outputs: ["q"],
                    attributes: ["pads": .ints([2, 1, 2, 0]), "dilations": .ints([2, 1])]),
            ],
            initializers: [
                "w": try Self.bytes(wType, [7, 6, 3, 3], seed: 1), "wz": try Self.bytes(wType, [7], seed: 2),
                "xz": try Self.bytes(xType, [], seed: 3), "xs": try Tensor(shape: [], scalars: [Float(0.05)]),
                "v": try Self.bytes(wType, [9, 6, 3, 2], seed: 4), "vz": try Self.bytes(wType, [9], seed: 5),
                "vs": try Self.floats((0..<9).map { 0.002 + Float($0) * 0.0011 }),
                "ys": try Tensor(shape: [], scalars: [Float(0.9)]), "yz": try Self.bytes(yType, [], seed: 6),
                "bias": try Tensor(shape: [9], scalars: (0..<9).map { Int32($0 * 977 - 4000) }),
            ])
        let inputs = [NamedTensor(name: "x", tensor: try Self.bytes(xType, [2, 6, 9, 11], seed: 7))]
        try check(graph, inputs, expected: "kernel im2col3d_bytes + kernel integer_gemm")
    }

    /// A QLinearConv whose input zero point has several values (the kernels read one; the integer GEMM would read
    /// one per output position, past the tensor) is refused on the GPU, naming the node, on either path.
    @Test func severalInputZeroPointsAreRefused() throws {
        let graph = Graph(
            name: "zero-points",
            inputs: [ValueInfo(name: "x", dtype: .uint8, dimensions: [.fixed(1), .fixed(2), .fixed(5), .fixed(5)])],
            outputs: [ValueInfo(name: "y", dtype: .uint8, dimensions: nil)],
            nodes: [
                Node(
                    name: "wide-zero", opType: "QLinearConv", inputs: ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz"],
                    outputs: ["y"])
            ],
            initializers: [
                "xs": try Tensor(shape: [], scalars: [Float(0.05)]), "xz": try Self.bytes(.uint8, [2], seed: 1),
                "w": try Self.bytes(.int8, [3, 2, 3, 3], seed: 2), "ws": try Tensor(shape: [], scalars: [Float(0.01)]),
                "wz": try Self.bytes(.int8, [], seed: 3), "ys": try Tensor(shape: [], scalars: [Float(0.2)]),
                "yz": try Self.bytes(.uint8, [], seed: 4),
            ])
        let inputs = [NamedTensor(name: "x", tensor: try Self.bytes(.uint8, [1, 2, 5, 5], seed: 5))]
        for (gemm, direct) in Self.devicePairs() {
            for backend in [gemm, direct] {
                #expect {
                    _ = try Session(graph: graph, backend: backend, evaluator: CPUBackend(), hostFallback: false)
                        .run(inputs)
                } throws: { String(describing: $0).contains("wide-zero") }
            }
        }
    }
}
