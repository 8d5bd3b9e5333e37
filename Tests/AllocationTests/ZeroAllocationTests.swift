import BuiltinModels
import CMallocCounter
import CPUBackend
import Foundation
import InferenceGraph
import InferenceRuntime
import InferenceTensor
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
        malloc_counter_start()
        for _ in 0..<50 { _ = try prepared.run(inputs) }
        return malloc_counter_stop()
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
