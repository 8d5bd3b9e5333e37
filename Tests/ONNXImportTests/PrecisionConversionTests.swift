import CPUBackend
import Foundation
import InferenceBench
import InferenceGraph
import InferenceRuntime
import InferenceTensor
import InferenceTestSupport
import ONNXImport
import Testing

/// `PrecisionConversion` on the float32 fixtures (MLP, CNN, transformer encoder): the converted models plan, keep
/// their float32 inputs and outputs, store what they should in the new type, and stay close to the float32 model.
struct PrecisionConversionTests {
    static let directory = Bundle.module.bundleURL.appendingPathComponent("Fixtures/models")

    static func load(_ name: String) throws -> (Graph, [NamedTensor]) {
        let graph = try ONNXModelLoader.load(path: directory.appendingPathComponent("\(name).onnx").path)
        let inputs = try NumPyFile.readNPZ(path: directory.appendingPathComponent("\(name).inputs.npz").path)
        return (graph, inputs)
    }

    static func outputs(_ graph: Graph, _ inputs: [NamedTensor]) throws -> [[Float]] {
        let session = try Session(graph: graph, backend: CPUBackend(threads: 2))
        return try session.run(inputs).outputs.map { try $0.tensor.scalars(as: Float.self) }
    }

    /// Largest difference relative to the reference's largest magnitude.
    static func relativeError(_ a: [Float], _ b: [Float]) -> Float {
        let scale = b.map(abs).max() ?? 1
        return (zip(a, b).map { abs($0 - $1) }.max() ?? .infinity) / max(scale, 1e-6)
    }

    @Test(arguments: ["mlp", "cnn", "encoder"])
    func float16StaysCloseToFloat32(_ name: String) throws {
        let (graph, inputs) = try Self.load(name)
        let (half, report) = try PrecisionConversion.convert(graph, to: .fp16)
        #expect(report.convertedInitializers > 0)
        #expect(report.weightBytesAfter < report.weightBytesBefore * 6 / 10, "\(report.summary)")
        #expect(half.outputs.map(\.dtype) == graph.outputs.map(\.dtype))
        #expect(half.initializers.values.filter { $0.dtype == .float16 }.count == report.convertedInitializers)
        let reference = try Self.outputs(graph, inputs), converted = try Self.outputs(half, inputs)
        for (a, b) in zip(converted, reference) {
            // float16 keeps 11 significant bits: a few thousandths after a handful of layers.
            #expect(Self.relativeError(a, b) < 1e-2, "\(name): \(Self.relativeError(a, b))")
        }
    }

    @Test(arguments: ["mlp", "cnn", "encoder"])
    func dynamicInt8StaysCloseToFloat32(_ name: String) throws {
        let (graph, inputs) = try Self.load(name)
        let (quantized, report) = try PrecisionConversion.convert(graph, to: .int8)
        let matmuls = graph.nodes.filter { ($0.opType == "MatMul" || $0.opType == "Gemm") }.count
        #expect(report.quantizedNodes > 0 && report.quantizedNodes <= matmuls, "\(report.summary)")
        #expect(quantized.nodes.filter { $0.opType == "MatMulInteger" }.count == report.quantizedNodes)
        #expect(quantized.initializers.values.contains { $0.dtype == .int8 })
        let reference = try Self.outputs(graph, inputs), converted = try Self.outputs(quantized, inputs)
        for (a, b) in zip(converted, reference) {
            // 8-bit weights and activations: a few percent of the output's range.
            #expect(Self.relativeError(a, b) < 0.08, "\(name): \(Self.relativeError(a, b))")
        }
    }

    /// Static int8: calibrated on inputs near the fixture's, written as QDQ, planned into integer kernels, and
    /// close to float32 on the fixture's own input.
    @Test(arguments: ["mlp", "cnn", "encoder"])
    func staticInt8StaysCloseToFloat32(_ name: String) throws {
        let (graph, inputs) = try Self.load(name)
        var generator = SystemRandomNumberGenerator()
        let calibration = try (0..<8).map { _ in
            try inputs.map { input -> NamedTensor in
                guard input.tensor.dtype == .float32 else { return input }
                let values = try input.tensor.scalars(as: Float.self).map {
                    $0 * Float.random(in: 0.8...1.2, using: &generator)
                }
                return NamedTensor(name: input.name, tensor: try Tensor(shape: input.tensor.shape, scalars: values))
            }
        }
        let ranges = try Calibration.ranges(graph, inputs: calibration, backend: CPUBackend())
        #expect(Set(ranges.keys) == Set(StaticQuantization.calibrationTargets(graph)))
        var report = PrecisionConversionReport(precision: .int8)
        let quantized = try StaticQuantization.quantize(graph, ranges: ranges, report: &report)
        #expect(report.quantizedNodes > 0)
        let types = Dictionary(
            uniqueKeysWithValues: inputs.map { ($0.name, TensorType(dtype: $0.tensor.dtype, shape: $0.tensor.shape)) })
        let backend = CPUBackend()
        let plan = try ExecutionPlan(graph: quantized, inputTypes: types, evaluator: backend, fusion: backend.fusion)
        let integer = plan.steps.filter { $0.node.opType == "QLinearConv" || $0.node.opType == "QLinearMatMul" }
        #expect(integer.count == report.quantizedNodes, "\(name): \(plan.steps.map { $0.node.opType })")
        let reference = try Self.outputs(graph, inputs), converted = try Self.outputs(quantized, inputs)
        for (a, b) in zip(converted, reference) {
            #expect(Self.relativeError(a, b) < 0.1, "\(name): \(Self.relativeError(a, b))")
        }
    }

    /// bfloat16: the weights become bfloat16 (float32's range, 8 significant bits), the interface stays float32.
    @Test(arguments: ["mlp", "cnn", "encoder"])
    func bfloat16StaysCloseToFloat32(_ name: String) throws {
        let (graph, inputs) = try Self.load(name)
        let (brain, report) = try PrecisionConversion.convert(graph, to: .bf16)
        #expect(report.convertedInitializers > 0 && report.clampedValues == 0)
        #expect(brain.initializers.values.filter { $0.dtype == .bfloat16 }.count == report.convertedInitializers)
        #expect(brain.outputs.map(\.dtype) == graph.outputs.map(\.dtype))
        let reference = try Self.outputs(graph, inputs), converted = try Self.outputs(brain, inputs)
        for (a, b) in zip(converted, reference) {
            // 8 significant bits (2^-8 relative per rounding) over a handful of layers.
            #expect(Self.relativeError(a, b) < 5e-2, "\(name): \(Self.relativeError(a, b))")
        }
    }

    /// bfloat16 rounds to nearest even on the 16 dropped bits, keeps NaN a NaN and infinities infinite.
    @Test func bfloat16Rounding() {
        #expect(BFloat16(Float(1)).bitPattern == 0x3F80)
        #expect(BFloat16(Float(bitPattern: 0x3F80_8000)).bitPattern == 0x3F80)  // tie: to even
        #expect(BFloat16(Float(bitPattern: 0x3F81_8000)).bitPattern == 0x3F82)  // tie: to even (up)
        #expect(BFloat16(Float(bitPattern: 0x3F80_8001)).bitPattern == 0x3F81)
        #expect(BFloat16(Float.infinity).float == .infinity)
        #expect(BFloat16(Float.nan).float.isNaN)
        #expect(BFloat16(Float.greatestFiniteMagnitude).float == .infinity)  // rounds up past the largest
        #expect(BFloat16(Float(-2.5)).float == -2.5)
    }

    /// Symmetric per-column int8: each column's largest magnitude maps to ±127, zeros stay zero.
    @Test func weightsQuantizePerColumn() throws {
        let weights = try Tensor(shape: Shape([2, 3]), scalars: [Float(1), -4, 0, 0.5, 2, 0])
        let (q, scales) = try PrecisionConversion.quantizeColumns(weights, transposed: false)
        #expect(try scales.scalars(as: Float.self) == [1 / 127, 4 / 127, 1])
        #expect(try q.scalars(as: Int8.self) == [127, -127, 0, 64, 64, 0])
        let (qt, st) = try PrecisionConversion.quantizeColumns(
            try Tensor(shape: Shape([3, 2]), scalars: [Float(1), 0.5, -4, 2, 0, 0]), transposed: true)
        #expect(try qt.scalars(as: Int8.self) == [127, -127, 0, 64, 64, 0])
        #expect(try st.scalars(as: Float.self) == [1 / 127, 4 / 127, 1])
    }

    /// One weight read by two layers through Identity nodes (how exporters share weights): converted once, so the
    /// float16 model holds one half-size copy, not one per reader; and a bfloat16 constant subgraph (a scale
    /// computed from a shape, as attention's sqrt of the head size) folds at plan time through the widened
    /// float32 kernel. Both models give the float32 model's values within the narrow type's rounding.
    @Test(arguments: [Precision.fp16, .bf16])
    func sharedWeightsConvertOnceAndConstantsFold(_ precision: Precision) throws {
        let weights = try Tensor(shape: [64, 64], scalars: (0..<4096).map { Float(($0 * 37) % 101) / 101 - 0.5 })
        let graph = Graph(
            name: "shared", inputs: [ValueInfo(name: "x", dtype: .float32, dimensions: [.fixed(2), .fixed(64)])],
            outputs: [ValueInfo(name: "y", dtype: .float32, dimensions: nil)],
            nodes: [
                Node(name: "first", opType: "Identity", inputs: ["w"], outputs: ["w1"]),
                Node(name: "second", opType: "Identity", inputs: ["w"], outputs: ["w2"]),
                Node(name: "m1", opType: "MatMul", inputs: ["x", "w1"], outputs: ["h"]),
                Node(name: "m2", opType: "MatMul", inputs: ["h", "w2"], outputs: ["g"]),
                Node(name: "shape", opType: "Shape", inputs: ["g"], outputs: ["s"]),
                Node(
                    name: "last", opType: "Gather", inputs: ["s", "i"], outputs: ["d"], attributes: ["axis": .int(0)]),
                Node(name: "float", opType: "Cast", inputs: ["d"], outputs: ["f"], attributes: ["to": .int(1)]),
                Node(name: "sqrt", opType: "Sqrt", inputs: ["f"], outputs: ["r"]),
                Node(name: "scale", opType: "Div", inputs: ["g", "r"], outputs: ["y"]),
            ],
            initializers: ["w": weights, "i": try Tensor(shape: [], scalars: [Int64(1)])])
        let (narrow, report) = try PrecisionConversion.convert(graph, to: precision)
        #expect(narrow.initializers.values.filter { $0.shape == weights.shape }.count == 1, "\(report.summary)")
        #expect(report.weightBytesAfter < report.weightBytesBefore * 6 / 10, "\(report.summary)")
        #expect(!narrow.nodes.contains { $0.opType == "Identity" })
        let x = try Tensor(shape: [2, 64], scalars: (0..<128).map { Float($0 % 13) / 13 - 0.4 })
        let inputs = [NamedTensor(name: "x", tensor: x)]
        let reference = try Self.outputs(graph, inputs), converted = try Self.outputs(narrow, inputs)
        for (a, b) in zip(converted, reference) {
            let bound: Float = precision == .bf16 ? 5e-2 : 1e-2
            #expect(Self.relativeError(a, b) < bound, "\(precision): \(Self.relativeError(a, b))")
        }
    }
}
