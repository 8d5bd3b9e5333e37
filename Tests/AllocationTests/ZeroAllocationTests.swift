import BuiltinModels
import CMallocCounter
import CPUBackend
import Foundation
import InferenceGraph
import InferenceRuntime
import InferenceTensor
import InferenceTestSupport
import ONNXImport
import Testing

#if DEBUG
    private let optimizedBuild = false
#else
    private let optimizedBuild = true
#endif

/// A prepared run does no heap allocation: planning, packing and buffers all happen before it.
/// (This test binary replaces malloc with a counting wrapper; see Sources/CMallocCounter.)
/// Checked on optimized builds only: unoptimized generic code allocates where release code does not.
/// scripts/test runs this suite again with `-c release`.
@Suite(
    .serialized,
    .enabled(if: optimizedBuild, "needs an optimized build: swift test -c release --filter AllocationTests"))
struct ZeroAllocationTests {
    static let models = TestModels()

    struct TestModels {
        let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("ONNXImportTests/Fixtures/models")
    }

    func allocations(graph: InferenceGraphType, input: Tensor, threads: Int) throws -> UInt64 {
        let session = try Session(graph: graph, backend: CPUBackend(threads: threads))
        let prepared = try session.prepare([NamedTensor(name: graph.runtimeInputs[0].name, tensor: input)])
        let inputs = [input]
        for _ in 0..<3 { _ = try prepared.run(inputs) }
        return try Self.fewest { for _ in 0..<50 { _ = try prepared.run(inputs) } }
    }

    /// The fewest allocations counted over three measurements of `body`. The counter sees the whole process, so a
    /// test-runner thread allocating at the same moment can add to one measurement; a kernel that allocates adds
    /// to every one of them.
    static func fewest(_ body: () throws -> Void) rethrows -> UInt64 {
        var fewest = UInt64.max
        for _ in 0..<3 {
            malloc_counter_start()
            try body()
            fewest = min(fewest, malloc_counter_stop())
            if fewest == 0 { break }
        }
        return fewest
    }

    typealias InferenceGraphType = InferenceGraph.Graph

    @Test(arguments: ["mlp", "cnn", "encoder"])
    func preparedRunsDoNotAllocate(_ name: String) throws {
        let graph = try ONNXModelLoader.load(path: Self.models.directory.appendingPathComponent("\(name).onnx").path)
        let input = try NumPyFile.readNPZ(
            path: Self.models.directory.appendingPathComponent("\(name).inputs.npz").path)[0].tensor
        let count = try allocations(graph: graph, input: input, threads: 1)
        #expect(count == 0, "\(name): \(count) allocations in 50 runs")
    }

    /// Split runs too: the thread pool takes task objects made when kernels are built, not closures.
    @Test(arguments: ["mlp", "cnn", "encoder"])
    func splitRunsOnTwoThreadsDoNotAllocate(_ name: String) throws {
        let graph = try BuiltinModels.graph(named: name)
        let dims =
            graph.runtimeInputs[0].dimensions?.enumerated().map { index, dim -> Int in
                if case .fixed(let n) = dim { return n }
                return index == 0 ? 8 : 64
            } ?? []
        let count = dims.reduce(1, *)
        let input = try Tensor(shape: Shape(dims), scalars: (0..<count).map { Float($0 % 97) / 97 })
        let allocations = try allocations(graph: graph, input: input, threads: 2)
        #expect(allocations == 0, "\(name) on 2 threads: \(allocations) allocations in 50 runs")
    }

    /// The precision fixtures (float16, dynamic int8, QDQ planned into integer kernels) on one and two threads.
    @Test(arguments: ["mlp-fp16", "cnn-fp16", "mlp-dynamic", "encoder-dynamic", "cnn-qdq", "mlp-qdq"])
    func lowerPrecisionRunsDoNotAllocate(_ name: String) throws {
        let directory = Self.models.directory.deletingLastPathComponent().appendingPathComponent("precision")
        let graph = try ONNXModelLoader.load(path: directory.appendingPathComponent("\(name).onnx").path)
        let input = try NumPyFile.readNPZ(path: directory.appendingPathComponent("\(name).inputs.npz").path)[0].tensor
        for threads in [1, 2] {
            let count = try allocations(graph: graph, input: input, threads: threads)
            #expect(count == 0, "\(name) on \(threads) threads: \(count) allocations in 50 runs")
        }
    }

    @Test func defaultModelDoesNotAllocate() throws {
        let graph = try BuiltinModels.graph(named: "linear")
        let input = try Tensor(shape: [4, 10], scalars: [Float](repeating: 0.25, count: 40))
        let count = try allocations(graph: graph, input: input, threads: 1)
        #expect(count == 0, "linear: \(count) allocations in 50 runs")
    }

    @Test func theCounterCounts() {
        malloc_counter_start()
        let array = [Int](repeating: 1, count: 1000)
        let count = malloc_counter_stop()
        #expect(array.count == 1000 && count >= 1)
    }
}

/// The kernels real models added (packed LSTM/GRU, depthwise convolution with a fused Relu6, Swish, max pooling,
/// global pooling, separable Resize) allocate nothing in a prepared run, on one thread and split on two. In the
/// same serialized suite: the malloc counter is process-wide, so no other test may run beside these.
extension ZeroAllocationTests {
    static func random(_ shape: [Int]) throws -> Tensor {
        let count = shape.reduce(1, *)
        return try Tensor(shape: Shape(shape), scalars: (0..<count).map { Float(($0 * 37) % 101) / 101 - 0.5 })
    }

    func allocations(_ graph: InferenceGraphType, _ input: Tensor, threads: Int) throws -> UInt64 {
        let session = try Session(graph: graph, backend: CPUBackend(threads: threads))
        let prepared = try session.prepare([NamedTensor(name: "x", tensor: input)])
        for _ in 0..<3 { _ = try prepared.run([input]) }
        return try Self.fewest { for _ in 0..<20 { _ = try prepared.run([input]) } }
    }

    @Test(arguments: [1, 2]) func recurrentLayers(_ threads: Int) throws {
        let (hidden, input) = (64, 16)
        let graph = InferenceGraphType(
            name: "rnn", inputs: [ValueInfo(name: "x", dtype: .float32, dimensions: nil)],
            outputs: [ValueInfo(name: "y", dtype: .float32, dimensions: nil)],
            nodes: [
                Node(
                    opType: "LSTM", inputs: ["x", "W", "R", "B"], outputs: ["h"],
                    attributes: ["hidden_size": .int(hidden), "direction": .string("bidirectional")]),
                Node(opType: "Transpose", inputs: ["h"], outputs: ["t"], attributes: ["perm": .ints([0, 2, 1, 3])]),
                Node(opType: "Reshape", inputs: ["t", "shape"], outputs: ["u"]),
                Node(
                    opType: "GRU", inputs: ["u", "GW", "GR", "GB"], outputs: ["y"],
                    attributes: ["hidden_size": .int(hidden), "linear_before_reset": .int(0)]),
            ],
            initializers: [
                "W": try Self.random([2, 4 * hidden, input]), "R": try Self.random([2, 4 * hidden, hidden]),
                "B": try Self.random([2, 8 * hidden]),
                "shape": try Tensor(shape: [3], scalars: [Int64(0), 0, Int64(2 * hidden)]),
                "GW": try Self.random([1, 3 * hidden, 2 * hidden]), "GR": try Self.random([1, 3 * hidden, hidden]),
                "GB": try Self.random([1, 6 * hidden]),
            ], opsetImports: ["": 14])
        let count = try allocations(graph, try Self.random([30, 1, input]), threads: threads)
        #expect(count == 0, "\(count) allocations in 20 runs on \(threads) threads")
    }

    /// QDQ residual additions planned into `_QLinearAdd`: same shapes (split across threads) and a broadcast input.
    @Test(arguments: [1, 2]) func quantizedAdditions(_ threads: Int) throws {
        let graph = InferenceGraphType(
            name: "qadd", inputs: [ValueInfo(name: "x", dtype: .float32, dimensions: nil)],
            outputs: [ValueInfo(name: "y", dtype: .float32, dimensions: nil)],
            nodes: [
                Node(opType: "QuantizeLinear", inputs: ["x", "s", "z"], outputs: ["q"]),
                Node(opType: "DequantizeLinear", inputs: ["q", "s", "z"], outputs: ["fa"]),
                Node(opType: "DequantizeLinear", inputs: ["q", "s", "z"], outputs: ["fb"]),
                Node(opType: "Add", inputs: ["fa", "fb"], outputs: ["sum"]),
                Node(opType: "Relu", inputs: ["sum"], outputs: ["r"]),
                Node(opType: "QuantizeLinear", inputs: ["r", "s", "z"], outputs: ["rq"]),
                Node(opType: "DequantizeLinear", inputs: ["rq", "s", "z"], outputs: ["fr"]),
                Node(opType: "DequantizeLinear", inputs: ["p", "s", "z"], outputs: ["fp"]),
                Node(opType: "Add", inputs: ["fr", "fp"], outputs: ["sum2"]),
                Node(opType: "QuantizeLinear", inputs: ["sum2", "s", "z"], outputs: ["yq"]),
                Node(opType: "DequantizeLinear", inputs: ["yq", "s", "z"], outputs: ["y"]),
            ],
            initializers: [
                "s": try Tensor(shape: [], scalars: [Float(0.02)]), "z": try Tensor(shape: [], scalars: [UInt8(120)]),
                "p": try Tensor(shape: [1, 8, 1, 1], scalars: (0..<8).map { UInt8(100 + 5 * $0) }),
            ], opsetImports: ["": 13])
        let count = try allocations(graph, try Self.random([1, 8, 64, 160]), threads: threads)
        #expect(count == 0, "\(count) allocations in 20 runs on \(threads) threads")
    }

    /// QLinearConv with one filter per channel (`IntegerDepthwiseKernel`, channels in lanes where AVX2 runs), split
    /// by channel blocks and, with fewer blocks than threads, by output rows.
    @Test(arguments: [1, 2]) func integerDepthwise(_ threads: Int) throws {
        for channels in [40, 8] {
            let graph = InferenceGraphType(
                name: "qdw", inputs: [ValueInfo(name: "x", dtype: .float32, dimensions: nil)],
                outputs: [ValueInfo(name: "y", dtype: .float32, dimensions: nil)],
                nodes: [
                    Node(opType: "QuantizeLinear", inputs: ["x", "s", "z"], outputs: ["q"]),
                    Node(
                        opType: "QLinearConv", inputs: ["q", "s", "z", "w", "ws", "wz", "s", "z"], outputs: ["c"],
                        attributes: ["group": .int(channels), "pads": .ints([1, 1, 1, 1])]),
                    Node(opType: "DequantizeLinear", inputs: ["c", "s", "z"], outputs: ["y"]),
                ],
                initializers: [
                    "s": try Tensor(shape: [], scalars: [Float(0.02)]),
                    "z": try Tensor(shape: [], scalars: [UInt8(120)]),
                    "w": try Tensor(
                        shape: [channels, 1, 3, 3], scalars: (0..<channels * 9).map { Int8(truncatingIfNeeded: $0 * 7) }
                    ),
                    "ws": try Tensor(shape: [], scalars: [Float(0.01)]),
                    "wz": try Tensor(shape: [], scalars: [Int8(0)]),
                ], opsetImports: ["": 13])
            let count = try allocations(graph, try Self.random([1, channels, 56, 56]), threads: threads)
            #expect(count == 0, "\(count) allocations in 20 runs on \(threads) threads, \(channels) channels")
        }
    }

    /// A QDQ depthwise layer (DequantizeLinear → depthwise Conv → Relu → QuantizeLinear) planned into
    /// `_QDQDepthwiseConv`: 3x3 over wide rows (one channel at a time), stride 2 (channels in lanes), and few channels
    /// (rows split across threads).
    @Test(arguments: [1, 2]) func qdqDepthwise(_ threads: Int) throws {
        for (channels, stride) in [(40, 1), (40, 2), (8, 1)] {
            let graph = InferenceGraphType(
                name: "qdqdw", inputs: [ValueInfo(name: "x", dtype: .float32, dimensions: nil)],
                outputs: [ValueInfo(name: "y", dtype: .float32, dimensions: nil)],
                nodes: [
                    Node(opType: "QuantizeLinear", inputs: ["x", "s", "z"], outputs: ["q"]),
                    Node(opType: "DequantizeLinear", inputs: ["q", "s", "z"], outputs: ["f"]),
                    Node(opType: "DequantizeLinear", inputs: ["w", "ws", "wz"], outputs: ["wf"]),
                    Node(
                        opType: "Conv", inputs: ["f", "wf", "b"], outputs: ["c"],
                        attributes: [
                            "group": .int(channels), "pads": .ints([1, 1, 1, 1]), "strides": .ints([stride, stride]),
                        ]),
                    Node(opType: "Relu", inputs: ["c"], outputs: ["r"]),
                    Node(opType: "QuantizeLinear", inputs: ["r", "s", "z"], outputs: ["rq"]),
                    Node(opType: "DequantizeLinear", inputs: ["rq", "s", "z"], outputs: ["y"]),
                ],
                initializers: [
                    "s": try Tensor(shape: [], scalars: [Float(0.02)]),
                    "z": try Tensor(shape: [], scalars: [UInt8(120)]),
                    "w": try Tensor(
                        shape: [channels, 1, 3, 3], scalars: (0..<channels * 9).map { Int8(truncatingIfNeeded: $0 * 7) }
                    ),
                    "ws": try Tensor(shape: [], scalars: [Float(0.01)]),
                    "wz": try Tensor(shape: [], scalars: [Int8(0)]),
                    "b": try Tensor(shape: [channels], scalars: (0..<channels).map { Float($0) / 10 }),
                ], opsetImports: ["": 13])
            let count = try allocations(graph, try Self.random([1, channels, 56, 56]), threads: threads)
            #expect(count == 0, "\(count) allocations in 20 runs on \(threads) threads, \(channels) channels")
        }
    }

    /// int8 networks passed channels last (`QuantizedChannelsLast`, where AVX-512 VNNI runs; planes elsewhere): QDQ
    /// inverted-residual blocks (in-place windows reading and writing channels last, channels-last depthwise layers
    /// at strides 1 and 2, a residual addition), positions split across threads.
    @Test(arguments: [1, 2]) func quantizedChannelsLast(_ threads: Int) throws {
        for stride in [1, 2] {
            let graph = try QDQNetwork.invertedResiduals(cin: 3, c: 16, out: 24, stride: stride)
            let x = try Tensor(shape: [1, 3, 40, 40], scalars: (0..<4800).map { UInt8(truncatingIfNeeded: $0 * 37) })
            let count = try allocations(graph, x, threads: threads)
            #expect(count == 0, "\(count) allocations in 20 runs on \(threads) threads, stride \(stride)")
        }
    }

    /// Depthwise chains passed channels last (`ChannelsLastChains`): a whole inverted-residual block, then one with a
    /// squeeze-and-excitation block (its 1x1 layers over the pooled image split across threads).
    @Test(arguments: [1, 2]) func channelsLastChains(_ threads: Int) throws {
        let graph = InferenceGraphType(
            name: "chains", inputs: [ValueInfo(name: "x", dtype: .float32, dimensions: nil)],
            outputs: [ValueInfo(name: "y", dtype: .float32, dimensions: nil)],
            nodes: [
                Node(opType: "Conv", inputs: ["x", "w1", "b1"], outputs: ["a"]),
                Node(opType: "Clip", inputs: ["a", "lo", "hi"], outputs: ["b"]),
                Node(
                    opType: "Conv", inputs: ["b", "w2", "b2"], outputs: ["c"],
                    attributes: ["group": .int(96), "pads": .ints([1, 1, 1, 1])]),
                Node(opType: "Clip", inputs: ["c", "lo", "hi"], outputs: ["d"]),
                Node(opType: "Conv", inputs: ["d", "w3", "b3"], outputs: ["e"]),
                Node(opType: "Conv", inputs: ["e", "w4", "b4"], outputs: ["f"]),
                Node(
                    opType: "Conv", inputs: ["f", "w5", "b5"], outputs: ["g"],
                    attributes: ["group": .int(144), "pads": .ints([2, 2, 2, 2]), "strides": .ints([2, 2])]),
                Node(opType: "GlobalAveragePool", inputs: ["g"], outputs: ["h"]),
                // The excitation's 1x1 layers over a 1x1 image, large enough to split across two threads.
                Node(opType: "Conv", inputs: ["h", "w7"], outputs: ["h1"]),
                Node(opType: "Relu", inputs: ["h1"], outputs: ["h2"]),
                Node(opType: "Conv", inputs: ["h2", "w8"], outputs: ["h3"]),
                Node(opType: "Sigmoid", inputs: ["h3"], outputs: ["i"]),
                Node(opType: "Mul", inputs: ["g", "i"], outputs: ["j"]),
                Node(opType: "Conv", inputs: ["j", "w6", "b6"], outputs: ["y"]),
            ],
            initializers: [
                "w1": try Self.random([96, 16, 1, 1]), "b1": try Self.random([96]),
                "w2": try Self.random([96, 1, 3, 3]), "b2": try Self.random([96]),
                "w3": try Self.random([24, 96, 1, 1]), "b3": try Self.random([24]),
                "w4": try Self.random([144, 24, 1, 1]), "b4": try Self.random([144]),
                "w5": try Self.random([144, 1, 5, 5]), "b5": try Self.random([144]),
                "w6": try Self.random([24, 144, 1, 1]), "b6": try Self.random([24]),
                "w7": try Self.random([512, 144, 1, 1]), "w8": try Self.random([144, 512, 1, 1]),
                "lo": try Tensor(shape: [], scalars: [Float(0)]), "hi": try Tensor(shape: [], scalars: [Float(6)]),
            ], opsetImports: ["": 13])
        let count = try allocations(graph, try Self.random([1, 16, 14, 14]), threads: threads)
        #expect(count == 0, "\(count) allocations in 20 runs on \(threads) threads")
    }

    @Test(arguments: [1, 2]) func mobileNetStyleBlock(_ threads: Int) throws {
        let c = 32
        let graph = InferenceGraphType(
            name: "block", inputs: [ValueInfo(name: "x", dtype: .float32, dimensions: nil)],
            outputs: [ValueInfo(name: "y", dtype: .float32, dimensions: nil)],
            nodes: [
                Node(opType: "Conv", inputs: ["x", "pw", "pb"], outputs: ["a"]),
                Node(opType: "Clip", inputs: ["a", "lo", "hi"], outputs: ["b"]),
                Node(
                    opType: "Conv", inputs: ["b", "dw", "db"], outputs: ["c"],
                    attributes: ["group": .int(c), "pads": .ints([1, 1, 1, 1]), "strides": .ints([2, 2])]),
                Node(opType: "Sigmoid", inputs: ["c"], outputs: ["d"]),
                Node(opType: "Mul", inputs: ["c", "d"], outputs: ["e"]),
                Node(
                    opType: "MaxPool", inputs: ["e"], outputs: ["f"],
                    attributes: ["kernel_shape": .ints([3, 3]), "strides": .ints([2, 2]), "ceil_mode": .int(1)]),
                Node(
                    opType: "Resize", inputs: ["f", "", "scales"], outputs: ["g"],
                    attributes: ["mode": .string("linear")]),
                Node(opType: "GlobalAveragePool", inputs: ["g"], outputs: ["y"]),
            ],
            initializers: [
                "pw": try Self.random([c, 8, 1, 1]), "pb": try Self.random([c]), "dw": try Self.random([c, 1, 3, 3]),
                "db": try Self.random([c]), "lo": try Tensor(shape: [], scalars: [Float(0)]),
                "hi": try Tensor(shape: [], scalars: [Float(6)]),
                "scales": try Tensor(shape: [4], scalars: [Float(1), 1, 2, 2]),
            ], opsetImports: ["": 13])
        let count = try allocations(graph, try Self.random([1, 8, 56, 56]), threads: threads)
        #expect(count == 0, "\(count) allocations in 20 runs on \(threads) threads")
    }
}
