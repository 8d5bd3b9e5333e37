import CPUBackend
import Foundation
import GPUBackend
import InferenceGraph
import InferenceRuntime
import InferenceTensor
import Testing

/// float16 and bfloat16 nodes on the GPU's own storage kernels (`gemm_tiled_f16`, `unary_bf16`, `im2col3d_u16`, …: half values
/// read and written as such, float32 arithmetic) against the same nodes widened to the float32 kernels between
/// device casts (`INFERENCE_GPU_HALF=0`): the same bits, since both compute the same float32 values and round them
/// once to the narrow type; and within two narrow steps of the CPU. Runs on every GPU device present.
@Suite(.enabled(if: !GPUTestDevices.all.isEmpty, "no GPU device (install pocl-opencl-icd for OpenCL)"))
struct GPUHalfStorageTests {
    /// Each GPU device twice: with the narrow kernels (forced on, as PoCL's CPU device does not default to them)
    /// and with every narrow node widened; convolutions as im2col + GEMM both ways (the narrow ones have no direct
    /// kernel of their own).
    static func devicePairs() -> [(native: any Backend, widened: any Backend)] {
        GPUTestDevices.pairs(
            ["INFERENCE_GPU_HALF": "1", "INFERENCE_GPU_CONV": "gemm"],
            ["INFERENCE_GPU_HALF": "0", "INFERENCE_GPU_CONV": "gemm"]
        ).map { (native: $0.0, widened: $0.1) }
    }

    /// Gemm (C broadcast, B transposed, alpha and beta), a batched MatMul with a shared right operand, a Conv with
    /// bias (im2col + GEMM, padding and strides), a depthwise Conv (the direct kernel), Softmax over a middle axis, LogSoftmax, LayerNormalization, max pooling
    /// (with its indices), average and global pooling, BatchNormalization, unary
    /// operators of several op codes and broadcasting binary ones, every edge of a 16 x 16 tile crossed.
    static func graph(_ dtype: DType) throws -> Graph {
        func input(_ name: String, _ dims: [Int]) -> ValueInfo {
            ValueInfo(name: name, dtype: dtype, dimensions: dims.map { .fixed($0) })
        }
        let unary = ["Sigmoid", "Tanh", "Erf", "Exp", "Softplus", "HardSwish", "Relu", "Sqrt", "Reciprocal"]
        let binary = ["Add", "Sub", "Mul", "Div", "Pow", "PRelu"]
        var nodes = [
            Node(
                name: "gemm", opType: "Gemm", inputs: ["a", "b", "c"], outputs: ["gemm"],
                attributes: ["transB": .int(1), "alpha": .float(0.5), "beta": .float(2)]),
            Node(name: "matmul", opType: "MatMul", inputs: ["x", "w"], outputs: ["matmul"]),
            Node(
                name: "conv", opType: "Conv", inputs: ["image", "filters", "bias"], outputs: ["conv"],
                attributes: ["pads": .ints([1, 0, 1, 2]), "strides": .ints([2, 1])]),
            Node(
                name: "leaky", opType: "LeakyRelu", inputs: ["a"], outputs: ["leaky"],
                attributes: ["alpha": .float(0.1)]),
            Node(
                name: "softmax", opType: "Softmax", inputs: ["x"], outputs: ["softmax"], attributes: ["axis": .int(2)]),
            Node(name: "logsoftmax", opType: "LogSoftmax", inputs: ["a"], outputs: ["logsoftmax"]),
            Node(
                name: "maxpool", opType: "MaxPool", inputs: ["image"], outputs: ["maxpool", "argmax"],
                attributes: ["kernel_shape": .ints([3, 2]), "strides": .ints([2, 2]), "pads": .ints([1, 0, 1, 1])]),
            Node(
                name: "averagepool", opType: "AveragePool", inputs: ["image"], outputs: ["averagepool"],
                attributes: ["kernel_shape": .ints([3, 3]), "pads": .ints([1, 1, 1, 1])]),
            Node(name: "gap", opType: "GlobalAveragePool", inputs: ["image"], outputs: ["gap"]),
            Node(
                name: "depthwise", opType: "Conv", inputs: ["image", "dwFilters", "dwBias"], outputs: ["depthwise"],
                attributes: ["group": .int(5), "pads": .ints([1, 1, 1, 1]), "strides": .ints([1, 2])]),
            Node(
                name: "batchnorm", opType: "BatchNormalization",
                inputs: ["image", "bnScale", "bnBias", "bnMean", "bnVar"], outputs: ["batchnorm"]),
            Node(
                name: "layernorm", opType: "LayerNormalization", inputs: ["a", "gamma", "beta"], outputs: ["layernorm"],
                attributes: ["epsilon": .float(1e-3)]),
        ]
        nodes += unary.map { Node(name: $0, opType: $0, inputs: ["p"], outputs: [$0]) }
        nodes += binary.map { Node(name: $0, opType: $0, inputs: ["p", "q"], outputs: [$0]) }
        let outputs =
            ["gemm", "matmul", "conv", "depthwise", "leaky", "softmax", "maxpool", "averagepool", "gap", "batchnorm"]
            + ["logsoftmax"]
            + ["layernorm"] + unary + binary
        return Graph(
            name: "narrow",
            inputs: [
                input("a", [37, 45]), input("x", [2, 3, 17, 19]), input("p", [4, 1, 5]), input("image", [2, 5, 9, 8]),
            ],
            outputs: outputs.map { ValueInfo(name: $0, dtype: dtype, dimensions: nil) }, nodes: nodes,
            initializers: [
                "b": try tensor(dtype, [29, 45], seed: 1, in: -1...1),
                "c": try tensor(dtype, [29], seed: 2, in: -1...1),
                "w": try tensor(dtype, [19, 23], seed: 3, in: -1...1),
                "q": try tensor(dtype, [3, 1], seed: 4, in: 0.25...2),
                "filters": try tensor(dtype, [7, 5, 3, 3], seed: 8, in: -0.5...0.5),
                "bias": try tensor(dtype, [7], seed: 9, in: -1...1),
                "gamma": try tensor(dtype, [45], seed: 11, in: 0.5...1.5),
                "bnScale": try tensor(dtype, [5], seed: 13, in: 0.5...1.5),
                "dwFilters": try tensor(dtype, [5, 1, 3, 3], seed: 17, in: -0.5...0.5),
                "dwBias": try tensor(dtype, [5], seed: 18, in: -1...1),
                "bnBias": try tensor(dtype, [5], seed: 14, in: -0.5...0.5),
                "bnMean": try tensor(dtype, [5], seed: 15, in: -0.5...0.5),
                "bnVar": try tensor(dtype, [5], seed: 16, in: 0.25...2),
                "beta": try tensor(dtype, [45], seed: 12, in: -0.5...0.5),
            ])
    }

    static func tensor(_ dtype: DType, _ dims: [Int], seed: UInt64, in range: ClosedRange<Float>) throws -> Tensor {
        var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        let count = dims.reduce(1, *)
        let values = (0..<count).map { _ -> Float in
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return range.lowerBound + (range.upperBound - range.lowerBound) * Float(state >> 40) / Float(1 << 24)
        }
        return dtype == .bfloat16
            ? try Tensor(shape: Shape(dims), scalars: values.map { BFloat16($0) })
            : try Tensor(shape: Shape(dims), scalars: values.map { Float16($0) })
    }

    static func feeds(_ dtype: DType) throws -> [NamedTensor] {
        [
            NamedTensor(name: "a", tensor: try tensor(dtype, [37, 45], seed: 5, in: -2...2)),
            NamedTensor(name: "x", tensor: try tensor(dtype, [2, 3, 17, 19], seed: 6, in: -2...2)),
            // Positive, so Pow, Sqrt and Softplus stay finite and the CPU comparison needs no NaN rule.
            NamedTensor(name: "p", tensor: try tensor(dtype, [4, 1, 5], seed: 7, in: 0.125...3)),
            NamedTensor(name: "image", tensor: try tensor(dtype, [2, 5, 9, 8], seed: 10, in: -2...2)),
        ]
    }

    static func floats(_ tensor: Tensor) throws -> [Double] {
        tensor.dtype == .bfloat16
            ? try tensor.scalars(as: BFloat16.self).map { Double($0.float) }
            : try tensor.scalars(as: Float16.self).map { Double($0) }
    }

    @Test(arguments: [DType.float16, .bfloat16])
    func narrowKernelsGiveTheWidenedBits(_ dtype: DType) throws {
        let graph = try Self.graph(dtype), feeds = try Self.feeds(dtype)
        let cpu = try Session(graph: graph, backend: CPUBackend()).run(feeds).outputs
        // A narrow step: 2^-10 of the value for float16, 2^-7 for bfloat16.
        let step = dtype == .bfloat16 ? 1.0 / 128 : 1.0 / 1024
        for (native, widened) in Self.devicePairs() {
            let label = "\(dtype) on \(native.device)"
            let fast = try Session(graph: graph, backend: native, evaluator: CPUBackend(), hostFallback: false)
            let slow = try Session(graph: graph, backend: widened, evaluator: CPUBackend(), hostFallback: false)
            for step in try fast.prepare(feeds).steps {
                #expect(!step.implementation.contains("widened"), "\(label): \(step.name) \(step.implementation)")
            }
            for step in try slow.prepare(feeds).steps {
                #expect(step.implementation.contains("widened"), "\(label): \(step.name) \(step.implementation)")
            }
            let got = try fast.run(feeds).outputs, want = try slow.run(feeds).outputs
            #expect(got.count == graph.outputs.count && want.count == graph.outputs.count)
            for ((a, b), c) in zip(zip(got, want), cpu) {
                #expect(a.tensor.dtype == dtype && a.tensor.shape == b.tensor.shape, "\(label) \(a.name)")
                #expect(a.tensor.bitwiseEqual(b.tensor), "\(label) \(a.name): not the widened kernel's bits")
                let x = try Self.floats(a.tensor), y = try Self.floats(c.tensor)
                let scale = max(y.map(abs).max() ?? 1, 1e-3)
                let difference = zip(x, y).map { abs($0 - $1) }.max() ?? .infinity
                #expect(difference <= 2 * step * scale, "\(label) \(a.name): \(difference) from the CPU's")
            }
        }
    }

    /// A node mixing float types (a float16 base raised to a float32 exponent) is not the narrow kernels': it runs
    /// widened, and gives the CPU's values.
    @Test func mixedTypesRunWidened() throws {
        let graph = Graph(
            name: "mixed",
            inputs: [ValueInfo(name: "p", dtype: .float16, dimensions: [.fixed(4), .fixed(1), .fixed(5)])],
            outputs: [ValueInfo(name: "y", dtype: .float16, dimensions: nil)],
            nodes: [Node(name: "pow", opType: "Pow", inputs: ["p", "e"], outputs: ["y"])],
            initializers: ["e": try Tensor(shape: [3, 1], scalars: [Float(0.5), 2, -1])])
        let feeds = [try Self.feeds(.float16)[2]]
        let cpu = try Session(graph: graph, backend: CPUBackend()).run(feeds).outputs[0].tensor
        for (native, _) in Self.devicePairs() {
            let session = try Session(graph: graph, backend: native, evaluator: CPUBackend(), hostFallback: false)
            #expect(try session.prepare(feeds).steps.allSatisfy { $0.implementation.contains("widened") })
            let got = try session.run(feeds).outputs[0].tensor
            let x = try Self.floats(got), y = try Self.floats(cpu)
            let difference = zip(x, y).map { abs($0 - $1) / max(abs($1), 1e-3) }.max() ?? .infinity
            #expect(got.shape == cpu.shape && difference <= 2.0 / 1024, "\(native.device): \(difference)")
        }
    }

    /// What stays widened with the half kernels on: a dense convolution on the direct kernel (it would convert both
    /// operands of every product), a LayerNormalization with its float32 statistics outputs, a BatchNormalization
    /// whose statistics are float32 beside float16 data; a depthwise convolution on the direct kernel runs on half
    /// storage. Either way the bytes are the widened path's.
    @Test func denseDirectConvolutionsAndMixedNormalizationsRunWidened() throws {
        let half = DType.float16
        func input(_ name: String, _ dims: [Int]) -> ValueInfo {
            ValueInfo(name: name, dtype: half, dimensions: dims.map { .fixed($0) })
        }
        let graph = Graph(
            name: "widened",
            inputs: [input("image", [2, 5, 9, 8]), input("a", [37, 45])],
            outputs: ["dense", "depthwise", "batchnorm", "layernorm"].map {
                ValueInfo(name: $0, dtype: half, dimensions: nil)
            } + ["mean", "invstd"].map { ValueInfo(name: $0, dtype: .float32, dimensions: nil) },
            nodes: [
                Node(
                    name: "dense", opType: "Conv", inputs: ["image", "filters"], outputs: ["dense"],
                    attributes: ["pads": .ints([1, 1, 1, 1])]),
                Node(
                    name: "depthwise", opType: "Conv", inputs: ["image", "dwFilters"], outputs: ["depthwise"],
                    attributes: ["group": .int(5)]),
                Node(
                    name: "batchnorm", opType: "BatchNormalization", inputs: ["image", "s", "b", "m", "v"],
                    outputs: ["batchnorm"]),
                Node(
                    name: "layernorm", opType: "LayerNormalization", inputs: ["a", "gamma"],
                    outputs: ["layernorm", "mean", "invstd"]),
            ],
            initializers: [
                "filters": try Self.tensor(half, [4, 5, 3, 3], seed: 1, in: -0.5...0.5),
                "dwFilters": try Self.tensor(half, [5, 1, 3, 3], seed: 2, in: -0.5...0.5),
                "gamma": try Self.tensor(half, [45], seed: 3, in: 0.5...1.5),
                "s": try Tensor(shape: [5], scalars: [Float](repeating: 1.25, count: 5)),
                "b": try Tensor(shape: [5], scalars: [Float](repeating: -0.5, count: 5)),
                "m": try Tensor(shape: [5], scalars: [Float](repeating: 0.125, count: 5)),
                "v": try Tensor(shape: [5], scalars: [Float](repeating: 2, count: 5)),
            ])
        let feeds = [
            NamedTensor(name: "image", tensor: try Self.tensor(half, [2, 5, 9, 8], seed: 4, in: -2...2)),
            NamedTensor(name: "a", tensor: try Self.tensor(half, [37, 45], seed: 5, in: -2...2)),
        ]
        let pairs = GPUTestDevices.pairs(
            ["INFERENCE_GPU_HALF": "1", "INFERENCE_GPU_CONV": "direct"],
            ["INFERENCE_GPU_HALF": "0", "INFERENCE_GPU_CONV": "direct"])
        for (native, widened) in pairs {
            let session = try Session(graph: graph, backend: native, evaluator: CPUBackend(), hostFallback: false)
            let kernels = Dictionary(
                uniqueKeysWithValues: try session.prepare(feeds).steps.map { ($0.name, $0.implementation) })
            for name in ["dense", "batchnorm", "layernorm"] {
                #expect(kernels[name]?.contains("widened") == true, "\(name): \(kernels[name] ?? "-")")
            }
            #expect(kernels["depthwise"] == "kernel conv3d_f16", "\(kernels["depthwise"] ?? "-")")
            let reference = try Session(graph: graph, backend: widened, evaluator: CPUBackend(), hostFallback: false)
            for (got, want) in zip(try session.run(feeds).outputs, try reference.run(feeds).outputs) {
                #expect(got.tensor.bitwiseEqual(want.tensor), "\(got.name) on \(native.device)")
            }
        }
    }
}
