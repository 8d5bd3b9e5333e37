import InferenceGraph
import InferenceRuntime
import InferenceTensor

/// A cl_mem handle, as the memory pool keeps it.
struct OpenCLMemory: @unchecked Sendable {
    let handle: OpaquePointer
}

/// Device memory of the OpenCL backend: one cl_mem of the backend's pool, given back to it with the buffer.
final class OpenCLBuffer: DeviceBuffer, @unchecked Sendable {
    let memory: OpaquePointer
    let byteCount: Int
    private let pool: DeviceMemoryPool<OpenCLMemory>
    private let classBytes: Int

    init(memory: OpaquePointer, byteCount: Int, pool: DeviceMemoryPool<OpenCLMemory>, classBytes: Int) {
        self.memory = memory
        self.byteCount = byteCount
        self.pool = pool
        self.classBytes = classBytes
    }

    deinit { pool.recycle(OpenCLMemory(handle: memory), classBytes: classBytes) }
}

/// Runs plans on an OpenCL device (a GPU, or PoCL's CPU device where no GPU exists), with the kernels of
/// `GPUKernelSource` built from source when the backend is created.
public final class OpenCLBackend: Backend, @unchecked Sendable {
    public let device: DeviceID
    public let deviceName: String
    /// `gpu`, `cpu` or `accelerator`, as the OpenCL driver reports the device.
    public let deviceType: String
    public let kernels: KernelRegistry
    let cl: OpenCLLibrary
    let context: OpaquePointer
    let queue: OpaquePointer
    let program: OpaquePointer
    /// Released buffers' memory, kept for the next plans (see `DeviceMemoryPool`).
    let pool: DeviceMemoryPool<OpenCLMemory>
    public var configuration: [String] {
        [
            pool.summary, "Conv: \(convolution.asGemm ? "im2col + the kernel source's GEMM" : "the direct kernel")",
            narrowDescription,
        ]
    }
    public var fusion: FusionRules { GPUKernelTable.fusion }
    /// How convolutions run (INFERENCE_GPU_CONV); settable so tests can force chunked im2col.
    var convolution: GPUConvolutionOptions
    /// Whether float16 and bfloat16 nodes run kernels on their own storage (INFERENCE_GPU_HALF=1 or 0; by default
    /// on GPU and accelerator devices, not on CPU devices).
    let narrowKernels: Bool

    /// Opens device `index` (numbered as `inference devices` lists them) and builds the kernels.
    /// - Throws: `GPURuntimeError` when OpenCL, the device or the kernel build is unavailable (with the
    ///   compiler's log for a failed build).
    public init(index: Int, environment: [String: String] = ProcessEnvironment.variables) throws {
        let cl = try OpenCLLibrary.load()
        let devices = try cl.allDevices()
        guard index >= 0 && index < devices.count, let device = devices[index] else {
            throw GPURuntimeError.call(
                function: "opencl:\(index)", code: -1, message: "no such OpenCL device (found \(devices.count))")
        }
        var status: Int32 = 0
        var list: [OpaquePointer?] = [device]
        guard let context = cl.clCreateContext(nil, 1, &list, nil, nil, &status), status == 0 else {
            throw GPURuntimeError.call(
                function: "clCreateContext", code: Int(status), message: OpenCLLibrary.errorName(status))
        }
        // CL_QUEUE_PROFILING_ENABLE: events carry device timestamps (OpenCLEventTimer).
        guard let queue = cl.clCreateCommandQueue(context, device, 1 << 1, &status), status == 0 else {
            throw GPURuntimeError.call(
                function: "clCreateCommandQueue", code: Int(status), message: OpenCLLibrary.errorName(status))
        }
        let program: OpaquePointer? = GPUKernelSource.source.withCString { text in
            var pointer: UnsafePointer<CChar>? = text
            return cl.clCreateProgramWithSource(context, 1, &pointer, nil, &status)
        }
        guard let program, status == 0 else {
            throw GPURuntimeError.call(
                function: "clCreateProgramWithSource", code: Int(status), message: OpenCLLibrary.errorName(status))
        }
        let built = cl.clBuildProgram(program, 1, &list, nil, nil, nil)
        if built != 0 {
            var size = 0
            _ = cl.clGetProgramBuildInfo(program, device, OpenCLLibrary.programBuildLog, 0, nil, &size)
            var log = [UInt8](repeating: 0, count: max(size, 1))
            _ = log.withUnsafeMutableBytes {
                cl.clGetProgramBuildInfo(program, device, OpenCLLibrary.programBuildLog, size, $0.baseAddress, nil)
            }
            throw GPURuntimeError.call(
                function: "clBuildProgram", code: Int(built),
                message: "kernel build failed:\n" + String(decoding: log.prefix { $0 != 0 }, as: UTF8.self))
        }
        self.cl = cl
        self.context = context
        self.queue = queue
        self.program = program
        self.device = DeviceID(.opencl, index)
        self.deviceName = cl.string(device: device, OpenCLLibrary.deviceName)
        let typeBits = cl.value(device: device, OpenCLLibrary.deviceType, as: UInt64.self)
        self.deviceType =
            typeBits & OpenCLLibrary.deviceTypeGPU != 0
            ? "gpu" : (typeBits & OpenCLLibrary.deviceTypeAccelerator != 0 ? "accelerator" : "cpu")
        self.kernels = GPUKernelTable.registry
        self.convolution = GPUConvolutionOptions(environment: environment, libraryGemm: false)
        // On a CPU device (PoCL) the kernels on half storage measured slower than widening (conversions inside a
        // kernel defeat its vectorizer): there they run only when asked for.
        self.narrowKernels =
            environment["INFERENCE_GPU_HALF"] == "1"
            || (environment["INFERENCE_GPU_HALF"] != "0" && deviceType != "cpu")
        self.pool = DeviceMemoryPool(capacity: DeviceMemoryPool<OpenCLMemory>.capacity(environment: environment)) {
            _ = cl.clReleaseMemObject($0.handle)
        }
    }

    public func allocate(bytes: Int) throws -> any DeviceBuffer {
        let (memory, classBytes) = try pool.allocate(bytes: bytes) { size in
            var status: Int32 = 0
            guard let memory = cl.clCreateBuffer(context, OpenCLLibrary.memReadWrite, size, nil, &status), status == 0
            else {
                if status == -4 || status == -61 {
                    throw RuntimeError.outOfMemory(device: device.description, bytes: bytes)
                }
                throw GPURuntimeError.call(
                    function: "clCreateBuffer", code: Int(status), message: OpenCLLibrary.errorName(status))
            }
            return OpenCLMemory(handle: memory)
        }
        return OpenCLBuffer(memory: memory.handle, byteCount: bytes, pool: pool, classBytes: classBytes)
    }

    func memory(_ slice: BufferSlice) throws -> OpaquePointer {
        guard let buffer = slice.buffer as? OpenCLBuffer else {
            throw RuntimeError.device("an OpenCL kernel was given a buffer of another device")
        }
        return buffer.memory
    }

    public func copy(from host: UnsafeRawBufferPointer, to destination: BufferSlice) throws {
        guard let base = host.baseAddress, host.count > 0 else { return }
        try cl.check(
            cl.clEnqueueWriteBuffer(
                queue, try memory(destination), 1, destination.offset, min(host.count, destination.byteCount), base, 0,
                nil, nil),
            "clEnqueueWriteBuffer")
    }

    public func copy(from source: BufferSlice, to host: UnsafeMutableRawBufferPointer) throws {
        guard let base = host.baseAddress, host.count > 0 else { return }
        try cl.check(
            cl.clEnqueueReadBuffer(
                queue, try memory(source), 1, source.offset, min(host.count, source.byteCount), base, 0, nil, nil),
            "clEnqueueReadBuffer")
    }

    public func synchronize() throws { try cl.check(cl.clFinish(queue), "clFinish") }

    /// A kernel object of the built program, one per planned node (its arguments are set once).
    func makeKernel(_ name: String) throws -> OpaquePointer {
        var status: Int32 = 0
        guard let kernel = name.withCString({ cl.clCreateKernel(program, $0, &status) }), status == 0 else {
            throw GPURuntimeError.call(
                function: "clCreateKernel(\(name))", code: Int(status), message: OpenCLLibrary.errorName(status))
        }
        return kernel
    }

    /// A small device buffer of ints (shapes, strides) for a kernel's metadata.
    func upload(ints: [Int32]) throws -> OpenCLBuffer {
        let buffer = try allocate(bytes: ints.count * 4)
        let slice = BufferSlice(buffer: buffer, offset: 0, byteCount: ints.count * 4)
        try ints.withUnsafeBytes { try copy(from: $0, to: slice) }
        guard let typed = buffer as? OpenCLBuffer else { throw RuntimeError.device("internal: not an OpenCL buffer") }
        return typed
    }
}

extension OpenCLBackend: GPUKernelHost {
    func arguments(for value: BoundValue, elementBytes: Int) throws -> (KernelArgument, KernelArgument) {
        (.buffer(try memory(value.slice)), .int(Int32(value.slice.offset / elementBytes)))
    }

    func metadata(_ ints: [Int32]) throws -> (KernelArgument, AnyObject) {
        let buffer = try upload(ints: ints)
        return (.buffer(buffer.memory), buffer)
    }

    func kernel(_ name: String, arguments: [KernelArgument], global: [Int], local: [Int]?, retained: [AnyObject])
        throws -> any Kernel
    {
        try OpenCLNodeKernel(
            backend: self, name: name, arguments: arguments, global: global, local: local, retained: retained)
    }
}

/// Device timestamps from markers on the backend's in-order, profiling-enabled queue: a marker completes when
/// everything before it has, and its end time is when that happened.
final class OpenCLEventTimer: DeviceEventTimer {
    private let backend: OpenCLBackend
    private var events: [OpaquePointer?] = [nil, nil, nil, nil]

    init(backend: OpenCLBackend) { self.backend = backend }

    deinit { for case let event? in events { _ = backend.cl.clReleaseEvent(event) } }

    func record(_ index: Int) throws {
        if let old = events[index] { _ = backend.cl.clReleaseEvent(old) }
        var event: OpaquePointer?
        try backend.cl.check(
            backend.cl.clEnqueueMarkerWithWaitList(backend.queue, 0, nil, &event), "clEnqueueMarkerWithWaitList")
        events[index] = event
    }

    func nanoseconds(from: Int, to: Int) throws -> UInt64 {
        try timestamp(to) &- min(try timestamp(from), try timestamp(to))
    }

    private func timestamp(_ index: Int) throws -> UInt64 {
        var event = events[index]
        try backend.cl.check(backend.cl.clWaitForEvents(1, &event), "clWaitForEvents")
        var value: UInt64 = 0
        // CL_PROFILING_COMMAND_END
        try backend.cl.check(
            backend.cl.clGetEventProfilingInfo(event, 0x1283, MemoryLayout<UInt64>.size, &value, nil),
            "clGetEventProfilingInfo")
        return value
    }
}

extension OpenCLBackend {
    public func makeEventTimer() throws -> (any DeviceEventTimer)? { OpenCLEventTimer(backend: self) }
}
