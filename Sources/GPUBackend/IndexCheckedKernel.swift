import InferenceRuntime

/// An indexing kernel (Gather, GatherElements, GatherND, ScatterElements, ScatterND) whose indices come at run
/// time: its device code sets a one-int flag instead of reading or writing out of bounds, and after the device
/// has finished the run, the session calls `checkAfterRun`, which reads the flag and reports the node like the CPU
/// does. The flag belongs to this plan's node alone, so concurrent sessions never see each other's errors, and
/// the kernel stays replayable (a recorded CUDA graph sets the flag the same way).
final class IndexCheckedKernel: CheckedKernel {
    private let inner: any Kernel
    private let backend: any Backend
    private let flag: BufferSlice
    private let node: String

    init(_ inner: any Kernel, backend: any Backend, flag: any DeviceBuffer, node: String) {
        self.inner = inner
        self.backend = backend
        self.flag = BufferSlice(buffer: flag, offset: 0, byteCount: 4)
        self.node = node
    }

    func run() throws { try inner.run() }

    func checkAfterRun() throws {
        var value: Int32 = 0
        try withUnsafeMutableBytes(of: &value) { try backend.copy(from: flag, to: $0) }
        guard value != 0 else { return }
        var zero: Int32 = 0
        try withUnsafeBytes(of: &zero) { try backend.copy(from: $0, to: flag) }
        throw RuntimeError.invalidNode(node: node, detail: "an index is out of range for its axis")
    }
}
