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
    /// How this backend runs, for diagnostics (`--verbose`): where its kernels came from, the libraries it uses.
    var configuration: [String] { get }
    /// A timer that takes timestamps on the device between the phases of a run (events on the GPU's queue);
    /// nil where the host clock already is the device's (the CPU).
    func makeEventTimer() throws -> (any DeviceEventTimer)?
    /// The kernels of a plan recorded once and replayed as one unit (a CUDA graph), or nil to run them one by
    /// one (the default). Called after the plan's first run, only when every kernel is `replayable`.
    /// - Throws: when recording fails; the plan then runs its kernels one by one.
    func replay(_ kernels: [any Kernel]) throws -> (any Kernel)?
}

extension Backend {
    public var fusion: FusionRules { .none }
    public var configuration: [String] { [] }
    public func makeEventTimer() throws -> (any DeviceEventTimer)? { nil }
    public func replay(_ kernels: [any Kernel]) throws -> (any Kernel)? { nil }
}

/// Timestamps taken by the device itself: `record(i)` enqueues timestamp i (0...3) after all work submitted so
/// far; `nanoseconds(from:to:)` waits for both and returns the device time between them.
public protocol DeviceEventTimer: AnyObject {
    func record(_ index: Int) throws
    func nanoseconds(from: Int, to: Int) throws -> UInt64
}

/// A planned node bound to buffers: what a kernel factory receives.
public struct BoundNode: Sendable {
    public var step: PlannedStep
    /// Buffer and type per node input; nil for an omitted optional input.
    public var inputs: [BoundValue?]
    public var outputs: [BoundValue]
    /// What folds constants for the session that planned the node: kernels that plan subgraphs (If) pass it on.
    public var evaluator: (any ConstantEvaluator)?

    public init(
        step: PlannedStep, inputs: [BoundValue?], outputs: [BoundValue], evaluator: (any ConstantEvaluator)? = nil
    ) {
        self.step = step
        self.inputs = inputs
        self.outputs = outputs
        self.evaluator = evaluator
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
