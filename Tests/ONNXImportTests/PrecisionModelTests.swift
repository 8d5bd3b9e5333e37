import CPUBackend
import Foundation
import InferenceGraph
import InferenceRuntime
import InferenceTensor
import InferenceTestSupport
import ONNXImport
import Testing

/// The MLP, CNN and encoder fixtures as users get them from onnxruntime's own tools
/// (scripts/make-precision-fixtures.py): float16 (`convert_float_to_float16`), int8 dynamic (`quantize_dynamic`:
/// DynamicQuantizeLinear + MatMulInteger/ConvInteger) and int8 static QDQ (`quantize_static`). Tolerances:
/// - float16: two float16 steps at the output's largest magnitude (2^-9 · max|y|). Each node computes in float32
///   and rounds its outputs to float16, as onnxruntime's CPU provider does, so the two differ only by float32
///   summation order before a rounding, at most a step per node that propagates.
/// - dynamic int8: the integer sums are exact on both sides, the rest is float32 arithmetic: rtol 1e-4.
/// - QDQ: exactly what onnxruntime computes with its graph optimizations off (the ONNX semantics of every
///   QuantizeLinear and DequantizeLinear, 1e-6); its optimized session's fused integer kernels round some outputs
///   to a neighbouring quantization step, so against it: two steps of the output's scale.
struct PrecisionModelTests {
    static let directory = Bundle.module.bundleURL.appendingPathComponent("Fixtures/precision")
    static let models = ["mlp", "cnn", "encoder"]

    static func run(_ name: String, threads: Int = 1) throws -> (outputs: [NamedTensor], directory: URL) {
        let graph = try ONNXModelLoader.load(path: directory.appendingPathComponent("\(name).onnx").path)
        let inputs = try NumPyFile.readNPZ(path: directory.appendingPathComponent("\(name).inputs.npz").path)
        let session = try Session(graph: graph, backend: CPUBackend(threads: threads))
        _ = try session.run(inputs)
        return (try session.run(inputs).outputs, directory)
    }

    static func expected(_ name: String, _ suffix: String = "outputs") throws -> [NamedTensor] {
        try NumPyFile.readNPZ(path: directory.appendingPathComponent("\(name).\(suffix).npz").path)
    }

    static func doubles(_ tensor: Tensor) throws -> [Double] {
        switch tensor.dtype {
        case .float16: try tensor.scalars(as: Float16.self).map { Double($0) }
        case .float32: try tensor.scalars(as: Float.self).map { Double($0) }
        default: []
        }
    }

    static func maxDifference(_ got: NamedTensor, _ want: NamedTensor) throws -> (difference: Double, scale: Double) {
        #expect(got.tensor.dtype == want.tensor.dtype && got.tensor.shape == want.tensor.shape, "\(got.name)")
        let a = try doubles(got.tensor), b = try doubles(want.tensor)
        #expect(a.count == b.count && !a.isEmpty)
        let difference = zip(a, b).map { abs($0 - $1) }.max() ?? .infinity
        return (difference, b.map(abs).max() ?? 0)
    }

    @Test(arguments: models)
    func float16MatchesOnnxruntime(_ model: String) throws {
        let name = "\(model)-fp16"
        for threads in [1, 2] {
            let (outputs, _) = try Self.run(name, threads: threads)
            for (got, want) in zip(outputs, try Self.expected(name)) {
                #expect(got.tensor.dtype == .float16)
                let (difference, scale) = try Self.maxDifference(got, want)
                #expect(difference <= scale / 512, "\(name) \(got.name): \(difference) against max |y| \(scale)")
            }
        }
    }

    @Test(arguments: models)
    func dynamicInt8MatchesOnnxruntime(_ model: String) throws {
        let name = "\(model)-dynamic"
        let (outputs, _) = try Self.run(name, threads: 2)
        for (got, want) in zip(outputs, try Self.expected(name)) {
            let (difference, scale) = try Self.maxDifference(got, want)
            #expect(difference <= 1e-4 * max(scale, 1), "\(name) \(got.name): \(difference)")
        }
    }

    @Test(arguments: models)
    func qdqInt8MatchesOnnxruntime(_ model: String) throws {
        let name = "\(model)-qdq"
        let graph = try ONNXModelLoader.load(path: Self.directory.appendingPathComponent("\(name).onnx").path)
        // The output's quantization step: the scale of the last DequantizeLinear.
        let last = try #require(graph.nodes.last { $0.opType == "DequantizeLinear" })
        let step = Double(try #require(graph.initializers[last.inputs[1]]?.scalars(as: Float.self).first))
        for threads in [1, 2] {
            let (outputs, _) = try Self.run(name, threads: threads)
            for (got, want) in zip(outputs, try Self.expected(name, "reference")) {
                let (difference, _) = try Self.maxDifference(got, want)
                #expect(difference <= 1e-6, "\(name) \(got.name) against the unoptimized reference: \(difference)")
            }
            for (got, want) in zip(outputs, try Self.expected(name)) {
                let (difference, _) = try Self.maxDifference(got, want)
                #expect(difference <= 2 * step + 1e-6, "\(name) \(got.name): \(difference), step \(step)")
            }
        }
    }

    /// `inspect` names the weights' element types and the form of quantization, and finds every operator supported.
    @Test func inspectReportsPrecision() throws {
        for (name, type, quantization) in [
            ("cnn-qdq", "int8", "QDQ"), ("mlp-dynamic", "int8", "dynamic int8"), ("encoder-fp16", "float16", nil),
        ] {
            let result = try ProcessRunner.run(
                TestEnvironment.inferenceBinary,
                ["inspect", "--json", "--model", Self.directory.appendingPathComponent("\(name).onnx").path])
            #expect(result.status == 0, "\(name): \(result.stderr)")
            let object = try #require(
                try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
            #expect(((object["weight_types"] as? [String: Int])?[type] ?? 0) > 0, "\(name): \(object)")
            if let quantization {
                #expect((object["quantization"] as? String ?? "").hasPrefix(quantization), "\(name)")
            } else {
                #expect(object["quantization"] is NSNull, "\(name)")
            }
            #expect((object["unsupported_operators"] as? [String])?.isEmpty == true)
        }
    }

    /// The QDQ patterns run as integer kernels: no float Conv (but the depthwise one)/MatMul/Gemm is left in the CNN
    /// and MLP plans, and the weights' DequantizeLinear nodes are gone.
    @Test func qdqModelsPlanIntoIntegerKernels() throws {
        for (model, integerOps) in [("cnn", ["QLinearConv", "QLinearMatMul"]), ("mlp", ["QLinearMatMul"])] {
            let name = "\(model)-qdq"
            let fixture = try FixtureModel(Self.directory, name, expected: "reference")
            let backend = CPUBackend()
            let plan = try ExecutionPlan(
                graph: fixture.graph, inputTypes: fixture.inputTypes, evaluator: backend, fusion: backend.fusion)
            let ops = plan.steps.map(\.node.opType)
            for op in integerOps { #expect(ops.contains(op), "\(name): \(ops)") }
            // Grouped (depthwise) convolutions stay on the float path by design (QuantizedFusion).
            let floatConvolutions = plan.steps.filter {
                $0.node.opType == "Conv" && ((try? $0.node.int("group", default: 1)) ?? 1) == 1
            }
            #expect(floatConvolutions.isEmpty && !ops.contains("Gemm"), "\(name): \(ops)")
            let planned = ops.filter { $0 == "DequantizeLinear" }.count
            let written = fixture.graph.nodes.filter { $0.opType == "DequantizeLinear" }.count
            #expect(planned < written / 2, "\(name): \(planned) of \(written) DequantizeLinear nodes left")
        }
    }
}
