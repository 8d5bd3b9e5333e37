import CPUBackend
import GPUBackend
import InferenceGraph
import InferenceRuntime
import InferenceTensor
import InferenceTestSupport
import Testing

private let device: OpenCLBackend? = try? OpenCLBackend(index: 0)

/// Data-dependent shapes on OpenCL: the stages before and after a NonZero or a Loop run on the device, the node
/// itself on the host; one session across runs whose shapes differ.
@Suite(.enabled(if: device != nil, "no OpenCL device (install pocl-opencl-icd)"))
struct OpenCLStagedTests {
    @Test func nonZeroAndLoopRunInStagesOnTheDevice() throws {
        guard let device else { return }
        let positives = try Session(
            graph: try StagedGraphs.positives(), backend: device, evaluator: CPUBackend(threads: 1))
        for (x, expected) in [([1, -2, 3], [1, 3]), ([-1], []), ([2, 2, 2, 2], [2, 2, 2, 2])] as [([Float], [Float])] {
            let outputs = try positives.run([NamedTensor(name: "x", tensor: try Tensor(shape: [x.count], scalars: x))])
                .outputs
            #expect(try outputs[0].tensor.scalars(as: Float.self) == expected)
            #expect(try outputs[1].tensor.scalars(as: Float.self) == [expected.reduce(0, +)])
        }
        let loop = try Session(
            graph: try StagedGraphs.accumulatingLoop(), backend: device, evaluator: CPUBackend(threads: 1))
        for m in [2, 4] {
            let outputs = try loop.run([
                NamedTensor(name: "m", tensor: try Tensor(shape: [], scalars: [Int64(m)])),
                NamedTensor(name: "w", tensor: try Tensor(shape: [2], scalars: [Float(1), 10])),
            ]).outputs
            #expect(try outputs[0].tensor.scalars(as: Float.self) == [Float(2 * m), Float(20 * m)])
            #expect(outputs[1].tensor.shape == Shape([m, 2]))
        }
    }
}
