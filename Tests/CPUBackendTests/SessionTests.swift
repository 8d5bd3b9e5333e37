import BuiltinModels
import CPUBackend
import Foundation
import InferenceGraph
import InferenceRuntime
import InferenceTensor
import InferenceTestSupport
import Testing

struct SessionTests {
    static let dataDirectory = TestEnvironment.packageRoot.appendingPathComponent("data")

    @Test func defaultModelMatchesTheFormula() throws {
        let session = try Session(graph: try BuiltinModels.graph(named: "linear"), backend: CPUBackend())
        let batch = try NumPyFile.readNPY(path: Self.dataDirectory.appendingPathComponent("batch_samples.npy").path)
        let x = try batch.scalars(as: Float.self)
        let y = try session.run([NamedTensor(name: "input", tensor: batch)]).outputs[0].tensor
        #expect(y.shape == [4, 1])
        let expected: [Float] = (0..<4).map { row in
            var logit = Double(BuiltinModels.linearBias)
            for j in 0..<10 { logit += Double(x[row * 10 + j]) * Double(BuiltinModels.linearWeights[j]) }
            return Float(1 / (1 + exp(-logit)))
        }
        let report = ToleranceReport.compare(try y.scalars(as: Float.self), expected, relative: 1e-6, absolute: 1e-7)
        #expect(report.passed, "\(report)")
        // The shipped samples were made to give the seed's predictions.
        #expect(try y.scalars(as: Float.self).map { ($0 * 100).rounded() / 100 } == [0.87, 0.45, 0.92, 0.33])
        // Exactly those floats: the logit is a correctly rounded dot product (K ≤ 16 sums in double) and the
        // sigmoid is computed in double and rounded once, on every instruction set.
        #expect(try y.scalars(as: Float.self) == [0.87, 0.45, 0.92, 0.33])
    }

    /// numpy computing sigmoid(x·Wᵀ + b) with the same weights gives the same predictions.
    @Test func defaultModelMatchesNumpy() throws {
        guard let python = TestEnvironment.python else {
            if TestEnvironment.pythonRequired { Issue.record("reference Python missing: run scripts/setup-python-env") }
            return
        }
        let session = try Session(graph: try BuiltinModels.graph(named: "linear"), backend: CPUBackend())
        let directory = try TestEnvironment.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        // Fresh random inputs each run, plus the shipped samples.
        var rows = (0..<64).flatMap { _ in (0..<10).map { _ in Float.random(in: -3...3) } }
        rows += try NumPyFile.readNPY(path: Self.dataDirectory.appendingPathComponent("batch_samples.npy").path)
            .scalars(as: Float.self)
        let input = try Tensor(shape: [rows.count / 10, 10], scalars: rows)
        let output = try session.run([NamedTensor(name: "input", tensor: input)]).outputs[0].tensor
        try NumPyFile.writeNPY(input, path: directory.appendingPathComponent("x.npy").path)
        try NumPyFile.writeNPY(output, path: directory.appendingPathComponent("y.npy").path)
        let weights = BuiltinModels.linearWeights.map { "\($0)" }.joined(separator: ",")
        let script = """
            import numpy as np, sys
            d = sys.argv[1]
            x = np.load(d + '/x.npy'); y = np.load(d + '/y.npy')
            w = np.array([\(weights)], dtype=np.float32); b = np.float32(\(BuiltinModels.linearBias))
            ref = 1.0 / (1.0 + np.exp(-(x.astype(np.float64) @ w.astype(np.float64) + float(b))))
            err = np.max(np.abs(y[:, 0] - ref) / np.abs(ref))
            print('max rel error', err)
            sys.exit(0 if y.shape == (x.shape[0], 1) and err < 1e-6 else 1)
            """
        let result = try ProcessRunner.run(python, ["-c", script, directory.path])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
    }

    @Test func plansOncePerShapeAndReusesIt() throws {
        let session = try Session(graph: try BuiltinModels.graph(named: "linear"), backend: CPUBackend())
        let one = try Tensor(shape: [1, 10], scalars: [Float](repeating: 0.5, count: 10))
        let four = try Tensor(shape: [4, 10], scalars: [Float](repeating: 0.5, count: 40))
        let first = try session.run([NamedTensor(name: "input", tensor: one)])
        #expect(first.timings.planNanoseconds > 0)
        let second = try session.run([NamedTensor(name: "input", tensor: one)])
        #expect(second.timings.planNanoseconds == 0)
        _ = try session.run([NamedTensor(name: "input", tensor: four)])
        #expect(session.planCount == 2)
        // Results already returned are never overwritten by later runs.
        let keep = second.outputs[0].tensor
        let before = try keep.scalars(as: Float.self)
        _ = try session.run([
            NamedTensor(name: "input", tensor: try Tensor(shape: [1, 10], scalars: [Float](repeating: -3, count: 10)))
        ])
        #expect(try keep.scalars(as: Float.self) == before)
    }

    @Test func mlpRunsAndReusesMemory() throws {
        let graph = try BuiltinModels.graph(named: "mlp")
        let plan = try ExecutionPlan(graph: graph, inputTypes: ["input": TensorType(dtype: .float32, shape: [8, 784])])
        #expect(plan.arenaBytes < plan.unsharedBytes)
        let session = try Session(graph: graph, backend: CPUBackend())
        let x = try Tensor(shape: [8, 784], scalars: KernelTests.random(8 * 784, in: 0...1))
        let y = try session.run([NamedTensor(name: "input", tensor: x)]).outputs[0].tensor
        #expect(y.shape == [8, 10])
        #expect(try y.scalars(as: Float.self).allSatisfy { $0.isFinite })
    }

    @Test(arguments: ["cnn", "encoder"])
    func builtinBenchmarkModelsRun(_ name: String) throws {
        let graph = try BuiltinModels.graph(named: name)
        let shape: Shape = name == "cnn" ? [2, 1, 28, 28] : [2, 128, 256]
        let x = try Tensor(shape: shape, scalars: KernelTests.random(shape.elementCount, in: 0...1))
        let y = try Session(graph: graph, backend: CPUBackend()).run([NamedTensor(name: "input", tensor: x)]).outputs[0]
            .tensor
        #expect(y.shape == (name == "cnn" ? [2, 10] : [2, 128, 256]))
        #expect(try y.scalars(as: Float.self).allSatisfy { $0.isFinite })
        // The same weights every time: the registry seeds its generator.
        let again = try Session(graph: try BuiltinModels.graph(named: name), backend: CPUBackend())
            .run([NamedTensor(name: "input", tensor: x)]).outputs[0].tensor
        #expect(again.bitwiseEqual(y))
    }

    @Test func inputErrorsNameTheInput() throws {
        let session = try Session(graph: try BuiltinModels.graph(named: "linear"), backend: CPUBackend())
        let wrongShape = try Tensor(shape: [2, 7], scalars: [Float](repeating: 0, count: 14))
        #expect(throws: RuntimeError.inputShape(name: "input", expected: "(batch, 10)", actual: "(2, 7)")) {
            try session.run([NamedTensor(name: "input", tensor: wrongShape)])
        }
        let wrongType = try Tensor(shape: [1, 10], scalars: [Int64](repeating: 0, count: 10))
        #expect(throws: RuntimeError.inputType(name: "input", expected: "float32", actual: "int64")) {
            try session.run([NamedTensor(name: "input", tensor: wrongType)])
        }
    }

    @Test func unsupportedOperatorNamesNodeOpsetAndAlternatives() throws {
        let graph = Graph(
            name: "g", inputs: [ValueInfo(name: "x", dtype: .float32, dimensions: [.fixed(2)])],
            outputs: [ValueInfo(name: "y", dtype: .float32, dimensions: [.fixed(2)])],
            nodes: [Node(name: "mystery", opType: "FancyOp", inputs: ["x"], outputs: ["y"])], opsetImports: ["": 13])
        do {
            _ = try Session(graph: graph, backend: CPUBackend())
            Issue.record("unsupported operator accepted")
        } catch let error as RuntimeError {
            let text = error.description
            #expect(text.contains("FancyOp node 'mystery'"))
            #expect(text.contains("opset 13"))
            #expect(text.contains("Gemm"))
        }
    }
}
