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

    /// Found by the ONNX fuzzer: a kernel_shape larger than the weights made ConvTranspose write past a buffer.
    @Test(arguments: ["Conv", "ConvTranspose"])
    func kernelShapeMustMatchTheWeights(_ op: String) throws {
        let graph = Graph(
            name: "g",
            inputs: [ValueInfo(name: "x", dtype: .float32, dimensions: [.fixed(1), .fixed(2), .fixed(5), .fixed(5)])],
            outputs: [ValueInfo(name: "y", dtype: .float32, dimensions: nil)],
            nodes: [
                Node(
                    name: "c", opType: op, inputs: ["x", "w"], outputs: ["y"],
                    attributes: ["kernel_shape": .ints([5, 5])])
            ],
            initializers: ["w": try Tensor(shape: [2, 2, 3, 3], scalars: [Float](repeating: 0.1, count: 36))])
        let session = try Session(graph: graph, backend: CPUBackend())
        let x = try Tensor(shape: [1, 2, 5, 5], scalars: [Float](repeating: 1, count: 50))
        #expect(throws: ShapeError.self) { try session.run([NamedTensor(name: "x", tensor: x)]) }
    }

    /// A tensor whose shape promises more data than it holds fails before anything is allocated (8 GB here).
    @Test func tensorShapeIsCheckedAgainstItsDataBeforeAllocating() throws {
        // TensorProto { dims: [2_000_000_000], data_type: FLOAT } with no data.
        let bytes = Data([0x08, 0x80, 0xA8, 0xD6, 0xB9, 0x07, 0x10, 0x01])
        do {
            _ = try ONNXTensor.decode(serialized: bytes, source: "huge.pb")
            Issue.record("an 8 GB tensor without data was accepted")
        } catch let error as ONNXImportError {
            #expect(error.description.contains("huge.pb"))
            #expect(error.description.contains("but holds 0"), "\(error)")
        }
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

/// Initializers stored in an external data file next to the model load and match onnxruntime.
struct ONNXExternalDataTests {
    @Test func externalDataMatchesOnnxruntime() throws {
        guard let python = TestEnvironment.python else {
            if TestEnvironment.pythonRequired { Issue.record("reference Python missing") }
            return
        }
        let directory = try TestEnvironment.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let script = """
            import sys, numpy as np, onnx, onnxruntime as ort
            from onnx import helper, numpy_helper, TensorProto
            d = sys.argv[1]
            rng = np.random.default_rng(3)
            w = numpy_helper.from_array(rng.standard_normal((16, 8)).astype(np.float32), 'w')
            b = numpy_helper.from_array(rng.standard_normal(16).astype(np.float32), 'b')
            g = helper.make_graph([helper.make_node('Gemm', ['x', 'w', 'b'], ['y'], transB=1)], 'g',
                [helper.make_tensor_value_info('x', TensorProto.FLOAT, ['n', 8])],
                [helper.make_tensor_value_info('y', TensorProto.FLOAT, ['n', 16])], [w, b])
            m = helper.make_model(g, opset_imports=[helper.make_opsetid('', 13)])
            onnx.save_model(m, d + '/model.onnx', save_as_external_data=True, all_tensors_to_one_file=True,
                            location='weights.bin', size_threshold=0)
            x = rng.standard_normal((3, 8)).astype(np.float32)
            np.save(d + '/x.npy', x)
            np.save(d + '/y.npy', ort.InferenceSession(d + '/model.onnx').run(None, {'x': x})[0])
            """
        let made = try ProcessRunner.run(python, ["-c", script, directory.path])
        #expect(made.status == 0, "\(made.stderr)")
        #expect(FileManager.default.fileExists(atPath: directory.appendingPathComponent("weights.bin").path))
        let graph = try ONNXModelLoader.load(path: directory.appendingPathComponent("model.onnx").path)
        let x = try NumPyFile.readNPY(path: directory.appendingPathComponent("x.npy").path)
        let expected = try NumPyFile.readNPY(path: directory.appendingPathComponent("y.npy").path)
        let y = try Session(graph: graph, backend: CPUBackend()).run([NamedTensor(name: "x", tensor: x)]).outputs[0]
            .tensor
        let report = ToleranceReport.compare(try y.scalars(as: Float.self), try expected.scalars(as: Float.self))
        #expect(report.passed, "\(report)")
        // A missing external file is a clear error naming it.
        try FileManager.default.removeItem(at: directory.appendingPathComponent("weights.bin"))
        do {
            _ = try ONNXModelLoader.load(path: directory.appendingPathComponent("model.onnx").path)
            Issue.record("missing external data accepted")
        } catch let error as ONNXImportError {
            #expect(error.problem.contains("weights.bin"))
        }
    }
}
