import CPUBackend
import Foundation
import InferenceGraph
import InferenceRuntime
import InferenceTensor
import InferenceTestSupport
import ONNXImport
import Testing

/// Broken and unsupported models give typed errors naming the file, node and operator; never a crash.
struct ONNXErrorTests {
    static let directory = Bundle.module.bundleURL.appendingPathComponent("Fixtures/models")

    @Test func truncatedAndCorruptedModelsAreTypedErrors() throws {
        let bytes = try Data(contentsOf: Self.directory.appendingPathComponent("cnn.onnx"))
        var checked = 0
        for length in stride(from: 0, to: bytes.count, by: max(1, bytes.count / 200)) {
            do {
                _ = try ONNXModelLoader.load(data: bytes.prefix(length), source: "cnn.onnx", baseDirectory: nil)
            } catch let error as ONNXImportError {
                #expect(error.source == "cnn.onnx")
            }
            checked += 1
        }
        for position in stride(from: 0, to: bytes.count, by: max(1, bytes.count / 300)) {
            var corrupted = bytes
            corrupted[position] ^= 0xA5
            // Either a typed import error, or a model the planner then rejects or runs: never a crash.
            if let loaded = try? ONNXModelLoader.load(data: corrupted, source: "x.onnx", baseDirectory: nil),
                let session = try? Session(graph: loaded.graph, backend: CPUBackend())
            {
                let x = try Tensor(shape: [1, 1, 28, 28], scalars: [Float](repeating: 0.5, count: 784))
                _ = try? session.run([NamedTensor(name: "x", tensor: x)])
            }
            checked += 1
        }
        #expect(checked > 400)
        #expect(throws: ONNXImportError.self) {
            try ONNXModelLoader.load(data: Data("this is not a model".utf8), source: "text.onnx", baseDirectory: nil)
        }
        #expect(throws: ONNXImportError(source: "/nonexistent/m.onnx", problem: "no such file")) {
            try ONNXModelLoader.load(path: "/nonexistent/m.onnx")
        }
    }

    @Test func unsupportedOperatorNamesNodeOpsetAndSupportedList() throws {
        let directory = try TestEnvironment.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        guard let python = TestEnvironment.python else {
            if TestEnvironment.pythonRequired { Issue.record("reference Python missing") }
            return
        }
        let path = directory.appendingPathComponent("det.onnx").path
        let script = """
            import onnx, sys
            from onnx import helper, TensorProto
            g = helper.make_graph([helper.make_node('Det', ['x'], ['y'], name='determinant')], 'g',
                [helper.make_tensor_value_info('x', TensorProto.FLOAT, [2, 2])], [helper.make_tensor_value_info('y', TensorProto.FLOAT, [])])
            onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid('', 13)]), sys.argv[1])
            """
        let made = try ProcessRunner.run(python, ["-c", script, path])
        #expect(made.status == 0, "\(made.stderr)")
        let graph = try ONNXModelLoader.load(path: path)
        do {
            _ = try Session(graph: graph, backend: CPUBackend())
            Issue.record("Det accepted")
        } catch let error as RuntimeError {
            let text = error.description
            #expect(text.contains("Det node 'determinant'"))
            #expect(text.contains("opset 13"))
            #expect(text.contains("Conv") && text.contains("Softmax"))
        }
        let cli = try ProcessRunner.run(
            TestEnvironment.inferenceBinary, ["--model", path, "--input", "x=\(Self.directory.path)/none.npy"])
        #expect(cli.status != 0 && cli.stdout.isEmpty)
    }

    @Test func graphErrorsAreReported() throws {
        let dangling = Graph(
            name: "g", inputs: [ValueInfo(name: "x", dtype: .float32, dimensions: [.fixed(2)])],
            outputs: [ValueInfo(name: "y", dtype: .float32, dimensions: nil)],
            nodes: [Node(name: "r", opType: "Relu", inputs: ["nowhere"], outputs: ["y"])])
        #expect(throws: GraphError.self) { try Session(graph: dangling, backend: CPUBackend()) }
        let badShape = Graph(
            name: "g", inputs: [ValueInfo(name: "x", dtype: .float32, dimensions: [.fixed(2), .fixed(3)])],
            outputs: [ValueInfo(name: "y", dtype: .float32, dimensions: nil)],
            nodes: [Node(name: "r", opType: "Reshape", inputs: ["x", "s"], outputs: ["y"])],
            initializers: ["s": try Tensor(shape: [2], scalars: [Int64(4), 4])])
        let session = try Session(graph: badShape, backend: CPUBackend())
        let x = try Tensor(shape: [2, 3], scalars: [Float](repeating: 1, count: 6))
        #expect(throws: ShapeError.self) { try session.run([NamedTensor(name: "x", tensor: x)]) }
    }
}
