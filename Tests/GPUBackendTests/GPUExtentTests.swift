import InferenceGraph
import InferenceRuntime
import InferenceTensor
import Testing

@testable import GPUBackend

/// The GPU kernels index with 32-bit ints; a node touching a value of 2^31 or more elements is refused with a
/// clear error before any kernel (and any Int32 conversion of its metadata) is made. No memory is needed to check.
struct GPUExtentTests {
    /// A buffer that only claims a size.
    final class ClaimedBuffer: DeviceBuffer, @unchecked Sendable {
        let byteCount: Int
        init(byteCount: Int) { self.byteCount = byteCount }
    }

    func node(_ shape: Shape) -> BoundNode {
        let value = BoundValue(
            type: TensorType(dtype: .float32, shape: shape),
            slice: BufferSlice(buffer: ClaimedBuffer(byteCount: 0), offset: 0, byteCount: 0), constant: nil)
        let step = PlannedStep(
            node: Node(name: "big", opType: "Relu", inputs: ["x"], outputs: ["y"]), opset: 17, inputs: [0], outputs: [1]
        )
        return BoundNode(step: step, inputs: [value], outputs: [value])
    }

    @Test func valuesOf2To31ElementsAreRefused() throws {
        try GPUKernelTable.requireInt32Extents(node([1 << 15, 1 << 15]))  // 2^30: fine
        do {
            try GPUKernelTable.requireInt32Extents(node([1 << 16, 1 << 15]))  // 2^31
            Issue.record("a 2^31-element value was accepted")
        } catch let error as RuntimeError {
            #expect(error.description.contains("big") && error.description.contains("2^31"), "\(error)")
        }
    }
}
