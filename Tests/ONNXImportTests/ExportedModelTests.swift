import CPUBackend
import Foundation
import InferenceGraph
import InferenceRuntime
import InferenceTensor
import InferenceTestSupport
import ONNXImport
import Testing

/// Tiny exports of the architectures users bring (scripts/make-exported-fixtures.py: Hugging Face BERT,
/// DistilBERT and GPT-2, a torchvision Swin-T stack, a one-stage detector with a data-dependent score threshold;
/// each with PyTorch's TorchScript exporter at opset 17 and its default dynamo exporter at opset 20; and a
/// detector's NonMaxSuppression + RoiAlign post-processing built as ONNX) must plan with every operator supported
/// and match onnxruntime.
struct ExportedModelTests {
    static let directory = Bundle.module.bundleURL.appendingPathComponent("Fixtures/exported")
    static let models =
        ["bert", "distilbert", "gpt2", "swin", "detector"].flatMap { ["\($0)-torchscript", "\($0)-dynamo"] }
        + ["nms-head"]

    static func load(_ name: String) throws -> (Graph, [NamedTensor], [NamedTensor]) {
        let graph = try ONNXModelLoader.load(path: directory.appendingPathComponent("\(name).onnx").path)
        let inputs = try NumPyFile.readNPZ(path: directory.appendingPathComponent("\(name).inputs.npz").path)
        let expected = try NumPyFile.readNPZ(path: directory.appendingPathComponent("\(name).outputs.npz").path)
        return (graph, inputs, expected)
    }

    @Test(arguments: models)
    func matchesOnnxruntimeOnTheCPU(_ name: String) throws {
        let (graph, inputs, expected) = try Self.load(name)
        let session = try Session(graph: graph, backend: CPUBackend())
        ONNXFixtureTests.compare(try session.run(inputs).outputs, expected)
        ONNXFixtureTests.compare(try session.run(inputs).outputs, expected)
    }

    /// `inspect` finds every operator of every exported model supported on the CPU.
    @Test func inspectReportsNothingUnsupported() throws {
        for name in Self.models {
            let result = try ProcessRunner.run(
                TestEnvironment.inferenceBinary,
                ["inspect", "--model", Self.directory.appendingPathComponent("\(name).onnx").path])
            #expect(result.status == 0, "\(name): \(result.stderr)")
            #expect(result.stdout.contains("cpu: every operator supported"), "\(name): \(result.stdout)")
        }
    }
}
