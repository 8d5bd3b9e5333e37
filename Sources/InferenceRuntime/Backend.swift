import InferenceGraph
import InferenceTensor

/// Memory owned by a backend. Kernels resolve what they need from it (a host pointer, a device address)
/// once, when they are created.
public protocol DeviceBuffer: AnyObject, Sendable {
    /// Size in bytes.
    var byteCount: Int { get }
}

/// A byte range of a device buffer.
public struct BufferSlice: Sendable {
    public var buffer: any DeviceBuffer
    public var offset: Int
    public var byteCount: Int

    public init(buffer: any DeviceBuffer, offset: Int, byteCount: Int) {
        self.buffer = buffer
        self.offset = offset
        self.byteCount = byteCount
    }
}

/// The seam between a plan and the hardware: memory, copies, synchronization and the kernels it offers.
/// Backends know nothing of model files; operators live in the kernel registry, not on the backend.
public protocol Backend: AnyObject, Sendable {
    /// The device this backend runs on.
    var device: DeviceID { get }
    /// A human-readable device name (CPU model, GPU name).
    var deviceName: String { get }
    /// The kernels this backend offers; the one place that says what it supports.
    var kernels: KernelRegistry { get }

    /// Allocates device memory. - Throws: `RuntimeError.outOfMemory` when it cannot.
    func allocate(bytes: Int) throws -> any DeviceBuffer
    /// Copies host bytes into device memory; complete (host memory reusable) when it returns.
    /// - Throws: a backend error when the copy fails.
    func copy(from host: UnsafeRawBufferPointer, to destination: BufferSlice) throws
    /// Copies device bytes to host memory; the host bytes are valid when it returns.
    /// - Throws: a backend error when the copy fails.
    func copy(from source: BufferSlice, to host: UnsafeMutableRawBufferPointer) throws
    /// Waits until all work submitted to the device has finished.
    /// - Throws: a backend error reported by the device.
    func synchronize() throws
    /// The node pairs this backend's kernels run as one (planning rewrites them); none by default.
    var fusion: FusionRules { get }
}

extension Backend {
    public var fusion: FusionRules { .none }
}

/// A planned node bound to buffers: what a kernel factory receives.
public struct BoundNode: Sendable {
    public var step: PlannedStep
    /// Buffer and type per node input; nil for an omitted optional input.
    public var inputs: [BoundValue?]
    public var outputs: [BoundValue]

    public init(step: PlannedStep, inputs: [BoundValue?], outputs: [BoundValue]) {
        self.step = step
        self.inputs = inputs
        self.outputs = outputs
    }
}

/// A value bound to device memory. `constant` holds the host copy of a weight, for kernels that pack it.
public struct BoundValue: Sendable {
    public var type: TensorType
    public var slice: BufferSlice
    public var constant: Tensor?

    public init(type: TensorType, slice: BufferSlice, constant: Tensor?) {
        self.type = type
        self.slice = slice
        self.constant = constant
    }
}
