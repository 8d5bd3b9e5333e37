import CPUBackend
import Foundation
import InferenceGraph
import InferenceRuntime
import InferenceTensor
import InferenceTestSupport
import ONNXImport
import Testing

/// Models built by scripts/make-onnx-fixtures.py must match onnxruntime's outputs (rtol 1e-4, atol 1e-5),
/// through the library and through the CLI.
struct ONNXFixtureTests {
    static let directory = Bundle.module.bundleURL.appendingPathComponent("Fixtures/models")
    static let models = [
        "mlp", "cnn", "encoder", "elementwise", "shapes", "reductions", "convolutions", "recurrent", "control",
        "recurrent_variants", "volumes", "control_runtime",
    ]

    static func compare(_ outputs: [NamedTensor], _ expected: [NamedTensor]) {
        #expect(outputs.map(\.name) == expected.map(\.name))
        for (got, want) in zip(outputs, expected) {
            #expect(
                got.tensor.dtype == want.tensor.dtype && got.tensor.shape == want.tensor.shape,
                "\(got.name): \(got.tensor.shape) vs \(want.tensor.shape)")
            if got.tensor.dtype == .float32 {
                let report = ToleranceReport.compare(
                    (try? got.tensor.scalars(as: Float.self)) ?? [], (try? want.tensor.scalars(as: Float.self)) ?? [],
                    relative: 1e-4, absolute: 1e-5)
                #expect(report.passed, "\(got.name): \(report)")
            } else {
                #expect(got.tensor.bitwiseEqual(want.tensor), "\(got.name) differs")
            }
        }
    }

    /// The fused forms the CPU plans (checked against onnxruntime above) really are fused: the encoder's
    /// exported GELU becomes one Gelu, applied in the store of the MatMul before it, and every MatMul + bias Add
    /// one MatMul; the CNN's Conv + BatchNormalization + Relu one Conv.
    @Test func cpuPlansFuseTheFixtureModels() throws {
        func plan(_ name: String) throws -> ExecutionPlan {
            let fixture = try FixtureModel(Self.directory, name)
            let backend = CPUBackend()
            return try ExecutionPlan(
                graph: fixture.graph, inputTypes: fixture.inputTypes, evaluator: backend, fusion: backend.fusion)
        }
        let encoder = try plan("encoder").steps.map(\.node)
        #expect(!encoder.contains { $0.opType == "Gelu" || $0.opType == "Erf" }, "\(encoder.map(\.opType))")
        #expect(
            encoder.filter { (try? $0.string(FusionRules.activationAttribute, default: "")) == "Gelu" }.count == 1)
        let products = encoder.filter { $0.opType == "MatMul" }
        #expect(products.filter { $0.inputs.count == 3 }.count == 6, "\(products.map(\.inputs))")
        let cnn = try plan("cnn").steps.map(\.node)
        #expect(!cnn.contains { $0.opType == "BatchNormalization" || $0.opType == "Relu" }, "\(cnn.map(\.opType))")
    }

    @Test(arguments: models)
    func matchesOnnxruntime(_ name: String) throws {
        let graph = try ONNXModelLoader.load(path: Self.directory.appendingPathComponent("\(name).onnx").path)
        let inputs = try NumPyFile.readNPZ(path: Self.directory.appendingPathComponent("\(name).inputs.npz").path)
        let expected = try NumPyFile.readNPZ(path: Self.directory.appendingPathComponent("\(name).outputs.npz").path)
        let session = try Session(graph: graph, backend: CPUBackend())
        Self.compare(try session.run(inputs).outputs, expected)
        // A second run reuses the plan and gives the same answer.
        Self.compare(try session.run(inputs).outputs, expected)
    }

    @Test(arguments: ["mlp", "cnn", "encoder", "elementwise", "recurrent"])
    func matchesOnnxruntimeThroughTheCLI(_ name: String) throws {
        let directory = try TestEnvironment.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let output = directory.appendingPathComponent("out.npz").path
        let result = try ProcessRunner.run(
            TestEnvironment.inferenceBinary,
            [
                "--model", Self.directory.appendingPathComponent("\(name).onnx").path,
                "--input", Self.directory.appendingPathComponent("\(name).inputs.npz").path, "--output", output,
                "--repeat", "2",
            ])
        #expect(result.status == 0, "\(result.stderr)")
        let expected = try NumPyFile.readNPZ(path: Self.directory.appendingPathComponent("\(name).outputs.npz").path)
        Self.compare(try NumPyFile.readNPZ(path: output), expected)
    }

    @Test func namedInputsOnTheCommandLine() throws {
        let directory = try TestEnvironment.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let inputs = try NumPyFile.readNPZ(path: Self.directory.appendingPathComponent("elementwise.inputs.npz").path)
        var arguments = [
            "--model", Self.directory.appendingPathComponent("elementwise.onnx").path, "--json", "--repeat", "1",
        ]
        for input in inputs {
            let path = directory.appendingPathComponent("\(input.name).npy").path
            try NumPyFile.writeNPY(input.tensor, path: path)
            arguments += ["--input", "\(input.name)=\(path)"]
        }
        let result = try ProcessRunner.run(TestEnvironment.inferenceBinary, arguments)
        #expect(result.status == 0, "\(result.stderr)")
        let object = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
        #expect((object?["outputs"] as? [[String: Any]])?.map { $0["name"] as? String } == ["y", "z"])

        let wrong = try ProcessRunner.run(
            TestEnvironment.inferenceBinary, arguments + ["--input", "nosuch=\(directory.path)/a.npy"])
        #expect(wrong.status != 0 && wrong.stdout.isEmpty)
        #expect(wrong.stderr.contains("no input named 'nosuch'"))
    }

    @Test func inspectReportsTheModel() throws {
        let result = try ProcessRunner.run(
            TestEnvironment.inferenceBinary,
            [
                "inspect", "--model", Self.directory.appendingPathComponent("encoder.onnx").path, "--dim", "seq=16",
                "--json",
            ])
        #expect(result.status == 0, "\(result.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        #expect(object["parameters"] as? Int == 8554)
        #expect((object["operators"] as? [String: Int])?["MatMul"] == 8)
        #expect((object["unsupported_operators"] as? [String])?.isEmpty == true)
        // 2·S·d² per projection (q, k, v, o), 2·S²·d for each of the two attention products, 2·2·S·d·ffn in the FFN.
        let (s, d, f) = (16, 32, 64)
        let matmuls = 4 * 2 * s * d * d + 2 * 2 * s * s * d + 2 * 2 * s * d * f
        #expect((object["flops_per_sample"] as? Int ?? 0) >= matmuls)
    }
}
