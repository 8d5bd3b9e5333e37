import CPUBackend
import Foundation
import GPUBackend
import InferenceGraph
import InferenceRuntime
import InferenceTensor
import InferenceTestSupport
import ONNXImport
import Testing

private let device: OpenCLBackend? = try? OpenCLBackend(index: 0)

/// The indexing kernels on OpenCL: the exported transformer and Swin fixtures against onnxruntime, indices out of
/// range reported by node name (never read or written), and repeated runs giving the same answer.
@Suite(.enabled(if: device != nil, "no OpenCL device (install pocl-opencl-icd)"))
struct OpenCLIndexingTests {
    static let exported = TestEnvironment.packageRoot.appendingPathComponent("Tests/ONNXImportTests/Fixtures/exported")

    @Test(
        arguments: ["bert", "distilbert", "gpt2", "swin", "detector"].flatMap { ["\($0)-torchscript", "\($0)-dynamo"] }
            + ["nms-head"])
    func exportedModelsMatchOnnxruntime(_ name: String) throws {
        guard let device else { return }
        let fixture = try FixtureModel(Self.exported, name)
        let session = try Session(graph: fixture.graph, backend: device, evaluator: CPUBackend(threads: 1))
        // Three runs: later runs reuse the plan and its buffers and must not drift (a partial copy once did).
        for _ in 0..<3 {
            let outputs = try session.run(fixture.inputs).outputs
            for problem in fixture.problems(outputs, label: name) { Issue.record("\(problem)") }
        }
    }

    /// Runs `op` over data [2, 2] with run-time int64 indices on OpenCL.
    static func run(_ op: String, indices: (Shape, [Int64]), updates: Bool) throws -> [Float] {
        guard let device else { return [] }
        var inputs = [
            ValueInfo(name: "data", dtype: .float32, dimensions: [.fixed(2), .fixed(2)]),
            ValueInfo(name: "indices", dtype: .int64, dimensions: indices.0.dimensions.map { .fixed($0) }),
        ]
        var feeds = [
            NamedTensor(name: "data", tensor: try Tensor(shape: [2, 2], scalars: [Float(1), 2, 3, 4])),
            NamedTensor(name: "indices", tensor: try Tensor(shape: indices.0, scalars: indices.1)),
        ]
        if updates {
            let shape = op == "ScatterND" ? Shape([indices.0[0], 2]) : indices.0
            inputs.append(ValueInfo(name: "updates", dtype: .float32, dimensions: shape.dimensions.map { .fixed($0) }))
            feeds.append(
                NamedTensor(
                    name: "updates",
                    tensor: try Tensor(shape: shape, scalars: [Float](repeating: 9, count: shape.elementCount))))
        }
        let node = Node(name: "the_\(op)", opType: op, inputs: inputs.map(\.name), outputs: ["y"])
        let graph = Graph(
            name: "indexing", inputs: inputs, outputs: [ValueInfo(name: "y", dtype: .float32, dimensions: nil)],
            nodes: [node], initializers: [:], opsetImports: ["": 18])
        let session = try Session(graph: graph, backend: device, evaluator: CPUBackend(threads: 1))
        return try #require(session.run(feeds).outputs.first).tensor.scalars(as: Float.self)
    }

    @Test(arguments: [Int64(2), -3, 1 << 40, .max, .min])
    func indicesOutOfRangeAreErrorsNamingTheNode(_ bad: Int64) throws {
        let cases: [(String, Shape, [Int64], Bool)] = [
            ("Gather", Shape([1]), [bad], false),
            ("GatherElements", Shape([1, 2]), [0, bad], false),
            ("GatherND", Shape([1, 2]), [0, bad], false),
            ("ScatterElements", Shape([1, 2]), [bad, 0], true),
            ("ScatterND", Shape([1, 1]), [bad], true),
        ]
        for (op, shape, values, updates) in cases {
            #expect {
                _ = try Self.run(op, indices: (shape, values), updates: updates)
            } throws: { error in
                guard case RuntimeError.invalidNode(let name, let detail) = error else { return false }
                return name.contains("the_\(op)") && detail.contains("out of range")
            }
        }
        // The device keeps working after a reported error.
        #expect(try Self.run("GatherElements", indices: (Shape([1, 2]), [1, 0]), updates: false) == [3, 2])
    }
}

/// The OpenCL suites skip themselves where no device can be created; a kernel source that fails to build would
/// look the same. Wherever OpenCL reports a device, the program must build, so a broken kernel fails here.
struct OpenCLProgramBuildTests {
    @Test func theKernelSourceBuildsWhereverOpenCLHasADevice() throws {
        let openCL = GPUDiscovery.probe().first { $0.runtime == .opencl }
        guard let openCL, !openCL.devices.isEmpty else { return }
        _ = try OpenCLBackend(index: 0)
    }
}
