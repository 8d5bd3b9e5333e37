import InferenceGraph
import InferenceRuntime
import InferenceTensor

/// Device memory of the CUDA backend: one cuMemAlloc allocation of the backend's pool, given back to it with the
/// buffer.
final class CUDABuffer: DeviceBuffer, @unchecked Sendable {
    let address: UInt64
    let byteCount: Int
    private let pool: DeviceMemoryPool<UInt64>
    private let classBytes: Int

    init(address: UInt64, byteCount: Int, pool: DeviceMemoryPool<UInt64>, classBytes: Int) {
        self.address = address
        self.byteCount = byteCount
        self.pool = pool
        self.classBytes = classBytes
    }

    deinit { pool.recycle(address, classBytes: classBytes) }
}

/// Runs plans on an NVIDIA GPU through the driver API loaded at run time: the primary context of the device,
/// the committed PTX (`GPUKernelPTX`, made by scripts/generate-ptx) loaded as a module, and the shared GPU
/// kernel table. Copies (through page-locked staging memory), launches and cuBLAS calls go to one stream;
/// `synchronize` waits for it. Runs after a plan's first are replayed as one CUDA graph.
public final class CUDABackend: Backend, @unchecked Sendable {
    public let device: DeviceID
    public let deviceName: String
    public let kernels: KernelRegistry
    let driver: CUDADriver
    let context: OpaquePointer
    let module: OpaquePointer
    /// The one stream every copy, launch, cuBLAS call and event goes to, in order.
    let stream: OpaquePointer
    /// Page-locked host memory the copies go through (see `PinnedStaging`).
    let staging: PinnedStaging
    /// Whether runs after the first are recorded once as a CUDA graph and replayed (INFERENCE_CUDA_GRAPHS=0: no).
    let usesGraphs: Bool
    /// Where the loaded kernels came from: NVRTC for this device (and its cache file), or the committed PTX.
    public let kernelOrigin: String
    /// cuBLAS for Gemm and MatMul when found (see `CUBLAS`); nil runs the kernel source's GEMM.
    let blas: CUBLAS?
    /// What runs Gemm and MatMul: cuBLAS (from where) or the kernel source's GEMM.
    public var gemmOrigin: String { blas.map { "cuBLAS (\($0.library.name))" } ?? "the kernel source's GEMM" }
    public var configuration: [String] {
        [
            "kernels: \(kernelOrigin)", "Gemm/MatMul: \(gemmOrigin)",
            "Conv: \(convolution.asGemm ? "im2col + \(blas == nil ? "the kernel source's GEMM" : "cuBLAS")" : "the direct kernel")",
            pool.summary,
            "copies: through \(staging.capacity >> 10) KiB of page-locked host memory",
            usesGraphs
                ? "runs after the first: replayed as one CUDA graph"
                : "CUDA graphs: off (INFERENCE_CUDA_GRAPHS=0 or no driver support)",
        ]
    }
    /// Released buffers' memory, kept for the next plans (see `DeviceMemoryPool`).
    let pool: DeviceMemoryPool<UInt64>
    public var fusion: FusionRules { GPUKernelTable.fusion }
    /// How convolutions run (INFERENCE_GPU_CONV; im2col + cuBLAS by default when cuBLAS is found).
    let convolution: GPUConvolutionOptions
    /// Whether float16 and bfloat16 nodes run kernels on their own storage (INFERENCE_GPU_HALF).
    let narrowKernels: Bool

    /// Opens CUDA device `index` and loads the kernels.
    /// - Throws: `GPURuntimeError` for a missing driver, device or a module the driver cannot load (a driver
    ///   older than the NVRTC that made the PTX, see `GPUKernelPTX.nvrtcVersion`), with the JIT log.
    public init(index: Int, environment: [String: String] = ProcessEnvironment.variables) throws {
        let driver = try CUDADriver.load()
        try driver.check(driver.cuInit(0), "cuInit")
        var count: Int32 = 0
        try driver.check(driver.cuDeviceGetCount(&count), "cuDeviceGetCount")
        guard index >= 0 && index < Int(count) else {
            throw GPURuntimeError.call(
                function: "cuda:\(index)", code: -1, message: "no such CUDA device (found \(count))")
        }
        var handle: Int32 = 0
        try driver.check(driver.cuDeviceGet(&handle, Int32(index)), "cuDeviceGet")
        var context: OpaquePointer?
        try driver.check(driver.cuDevicePrimaryCtxRetain(&context, handle), "cuDevicePrimaryCtxRetain")
        try driver.check(driver.cuCtxSetCurrent(context), "cuCtxSetCurrent")
        var name = [CChar](repeating: 0, count: 256)
        _ = driver.cuDeviceGetName(&name, 256, handle)
        var major: Int32 = 0, minor: Int32 = 0
        _ = driver.cuDeviceGetAttribute(&major, CUDADriver.attributeComputeCapabilityMajor, handle)
        _ = driver.cuDeviceGetAttribute(&minor, CUDADriver.attributeComputeCapabilityMinor, handle)
        // PTX compiled for this device when NVRTC is around, else (or if the driver rejects it) the committed PTX.
        var candidates: [(ptx: String, origin: String)] = []
        if let compiled = Self.compiledPTX(architecture: "compute_\(major)\(minor)", environment: environment) {
            candidates.append(compiled)
        }
        candidates.append((GPUKernelPTX.ptx, "committed PTX (NVRTC \(GPUKernelPTX.nvrtcVersion), compute_70)"))
        var failures: [String] = []
        var loadedModule: OpaquePointer?
        var origin = ""
        for candidate in candidates {
            switch Self.loadModule(driver, candidate.ptx) {
            case .success(let module):
                loadedModule = module
                origin = candidate.origin
            case .failure(let message):
                failures.append("\(candidate.origin): \(message)")
                continue
            }
            break
        }
        guard let module = loadedModule, let context else {
            throw GPURuntimeError.call(
                function: "cuModuleLoadDataEx", code: -1,
                message:
                    "cannot load the kernels (PTX needs a driver at least as new as the NVRTC that made it): "
                    + failures.joined(separator: "; "))
        }
        var stream: OpaquePointer?
        // CU_STREAM_DEFAULT: ordered with the legacy default stream too.
        try driver.check(driver.cuStreamCreate(&stream, 0), "cuStreamCreate")
        guard let stream else { throw RuntimeError.device("cuStreamCreate returned no stream") }
        self.stream = stream
        self.staging = PinnedStaging(driver: driver, stream: stream)
        self.usesGraphs = driver.graphs != nil && environment["INFERENCE_CUDA_GRAPHS"] != "0"
        self.kernelOrigin = origin
        self.blas = CUBLAS.load(environment: environment, stream: stream)
        self.convolution = GPUConvolutionOptions(environment: environment, libraryGemm: blas != nil)
        self.narrowKernels = environment["INFERENCE_GPU_HALF"] != "0"
        self.driver = driver
        self.context = context
        self.module = module
        self.device = DeviceID(.cuda, index)
        self.deviceName = String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        self.kernels = GPUKernelTable.registry
        self.pool = DeviceMemoryPool(capacity: DeviceMemoryPool<UInt64>.capacity(environment: environment)) {
            _ = driver.cuMemFree($0)
        }
    }

    /// PTX for `architecture` from the disk cache, or compiled now by an NVRTC found at run time (then cached);
    /// nil when no NVRTC is found or it cannot compile for that architecture.
    public static func compiledPTX(architecture: String, environment: [String: String]) -> (
        ptx: String, origin: String
    )? {
        guard let nvrtc = try? NVRTC.load(environment: environment) else { return nil }
        let compiler = "NVRTC \(nvrtc.version.major).\(nvrtc.version.minor)"
        let source = GPUKernelSource.source
        let cachePath = PTXCache.path(
            source: source, architecture: architecture, compiler: compiler, environment: environment)
        if let cachePath, let cached = PTXCache.read(cachePath) {
            return (cached, "\(compiler) for \(architecture), cached in \(cachePath)")
        }
        guard let ptx = try? nvrtc.compile(source, architecture: architecture) else { return nil }
        if let cachePath { PTXCache.write(ptx, to: cachePath) }
        return (ptx, "\(compiler) for \(architecture)" + (cachePath.map { ", cached in \($0)" } ?? ""))
    }

    private enum ModuleLoad {
        case success(OpaquePointer)
        case failure(String)
    }

    /// Loads PTX as a module, with the JIT's error log on failure.
    private static func loadModule(_ driver: CUDADriver, _ ptx: String) -> ModuleLoad {
        var module: OpaquePointer?
        var log = [CChar](repeating: 0, count: 8192)
        let loaded: Int32 = log.withUnsafeMutableBufferPointer { buffer in
            var options: [Int32] = [CUDADriver.jitErrorLogBuffer, CUDADriver.jitErrorLogBufferSize]
            var values: [UnsafeMutableRawPointer?] = [
                UnsafeMutableRawPointer(buffer.baseAddress), UnsafeMutableRawPointer(bitPattern: buffer.count),
            ]
            return ptx.withCString { driver.cuModuleLoadDataEx(&module, $0, 2, &options, &values) }
        }
        if loaded == 0, let module { return .success(module) }
        let jit = String(decoding: log.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return .failure("error \(loaded): \(jit)")
    }

    public func allocate(bytes: Int) throws -> any DeviceBuffer {
        try driver.check(driver.cuCtxSetCurrent(context), "cuCtxSetCurrent")
        let (address, classBytes) = try pool.allocate(bytes: bytes) { size in
            var address: UInt64 = 0
            let status = driver.cuMemAlloc(&address, size)
            // CUDA_ERROR_OUT_OF_MEMORY is 2.
            if status == 2 { throw RuntimeError.outOfMemory(device: device.description, bytes: bytes) }
            try driver.check(status, "cuMemAlloc")
            return address
        }
        return CUDABuffer(address: address, byteCount: bytes, pool: pool, classBytes: classBytes)
    }

    func address(_ slice: BufferSlice) throws -> UInt64 {
        guard let buffer = slice.buffer as? CUDABuffer else {
            throw RuntimeError.device("a CUDA kernel was given a buffer of another device")
        }
        return buffer.address + UInt64(slice.offset)
    }

    public func copy(from host: UnsafeRawBufferPointer, to destination: BufferSlice) throws {
        guard host.count > 0 else { return }
        try staging.copy(from: host, to: try address(destination), bytes: min(host.count, destination.byteCount))
    }

    public func copy(from source: BufferSlice, to host: UnsafeMutableRawBufferPointer) throws {
        guard host.count > 0 else { return }
        try staging.copy(from: try address(source), to: host, bytes: min(host.count, source.byteCount))
    }

    public func synchronize() throws { try staging.synchronize() }
}

/// A kernel of the loaded module with its argument values stored once; `run` launches it.
final class CUDANodeKernel: Kernel, DescribedKernel {
    private let backend: CUDABackend
    /// The kernel source's function, for profiles (`gemm_tiled_f16`, say).
    let name: String
    var kernelDescription: String { "kernel \(name)" }
    private let function: OpaquePointer
    private let grid: (UInt32, UInt32, UInt32)
    private let block: (UInt32, UInt32, UInt32)
    /// Argument storage (8 bytes each) and the pointer array cuLaunchKernel reads.
    private let storage: UnsafeMutableRawPointer
    private let parameters: UnsafeMutablePointer<UnsafeMutableRawPointer?>
    private let retained: [AnyObject]

    init(
        backend: CUDABackend, name: String, arguments: [KernelArgument], global: [Int], local: [Int]?,
        retained: [AnyObject]
    ) throws {
        var function: OpaquePointer?
        try backend.driver.check(
            name.withCString { backend.driver.cuModuleGetFunction(&function, backend.module, $0) },
            "cuModuleGetFunction(\(name))")
        guard let function else { throw RuntimeError.device("kernel \(name) missing from the module") }
        self.backend = backend
        self.name = name
        self.function = function
        self.retained = retained
        storage = UnsafeMutableRawPointer.allocate(byteCount: max(arguments.count, 1) * 8, alignment: 8)
        parameters = UnsafeMutablePointer<UnsafeMutableRawPointer?>.allocate(capacity: max(arguments.count, 1))
        for (index, argument) in arguments.enumerated() {
            let slot = storage + index * 8
            switch argument {
            case .address(let value): slot.storeBytes(of: value, as: UInt64.self)
            case .int(let value): slot.storeBytes(of: value, as: Int32.self)
            case .float(let value): slot.storeBytes(of: value, as: Float.self)
            case .buffer: throw RuntimeError.device("an OpenCL buffer was passed to a CUDA kernel")
            }
            parameters[index] = slot
        }
        // One thread per work item: the given block, else 256 along x, 16 x 16 for 2-D and 3-D ranges.
        let sizes = global.map { max($0, 1) } + [1, 1]
        let given = (local ?? []) + [1, 1, 1]
        let blockX = local != nil ? max(given[0], 1) : (global.count == 1 ? 256 : 16)
        let blockY = local != nil ? max(given[1], 1) : (global.count == 1 ? 1 : 16)
        let blockZ = local != nil ? max(given[2], 1) : 1
        block = (UInt32(blockX), UInt32(blockY), UInt32(blockZ))
        grid = (
            UInt32((sizes[0] + blockX - 1) / blockX), UInt32((sizes[1] + blockY - 1) / blockY),
            UInt32(((global.count > 2 ? sizes[2] : 1) + blockZ - 1) / blockZ)
        )
    }

    deinit {
        storage.deallocate()
        parameters.deallocate()
    }

    func run() throws {
        try backend.driver.check(
            backend.driver.cuLaunchKernel(
                function, grid.0, grid.1, grid.2, block.0, block.1, block.2, 0, backend.stream, parameters, nil),
            "cuLaunchKernel")
    }
}

extension CUDABackend: GPUKernelHost {
    func arguments(for value: BoundValue, elementBytes: Int) throws -> (KernelArgument, KernelArgument) {
        // Addresses carry the byte offset; the element offset argument is then 0.
        (.address(try address(value.slice)), .int(0))
    }

    func metadata(_ ints: [Int32]) throws -> (KernelArgument, AnyObject) {
        let buffer = try allocate(bytes: ints.count * 4)
        let slice = BufferSlice(buffer: buffer, offset: 0, byteCount: ints.count * 4)
        try ints.withUnsafeBytes { try copy(from: $0, to: slice) }
        return (.address(try address(slice)), buffer)
    }

    func kernel(_ name: String, arguments: [KernelArgument], global: [Int], local: [Int]?, retained: [AnyObject])
        throws -> any Kernel
    {
        try CUDANodeKernel(
            backend: self, name: name, arguments: arguments, global: global, local: local, retained: retained)
    }

    var hasLibraryGemm: Bool { blas != nil }

    func libraryGemm(_ g: LibraryGemm, prologue: (any Kernel)?) throws -> (any Kernel)? {
        guard let blas, let dataType = CUBLAS.dataType(for: g.a.type.dtype) else { return nil }
        let product = CUBLAS.Product(
            m: g.m, n: g.n, k: g.k, transA: g.transA, transB: g.transB, a: try address(g.a.slice),
            b: try address(g.b.slice), y: try address(g.y.slice), alpha: g.alpha, beta: g.beta, batch: g.batch,
            strideA: g.strideA, strideB: g.strideB, strideY: g.strideY, dataType: dataType)
        return CUBLASKernel(blas: blas, product: product, prologue: prologue)
    }
}

/// Device timestamps from CUDA events recorded on the backend's stream (resolution about half a microsecond).
final class CUDAEventTimer: DeviceEventTimer {
    private let driver: CUDADriver
    private let stream: OpaquePointer
    private let events: [OpaquePointer]

    init(driver: CUDADriver, stream: OpaquePointer) throws {
        self.driver = driver
        self.stream = stream
        var made: [OpaquePointer] = []
        for _ in 0..<4 {
            var event: OpaquePointer?
            // CU_EVENT_DEFAULT: timing enabled.
            try driver.check(driver.cuEventCreate(&event, 0), "cuEventCreate")
            guard let event else { throw RuntimeError.device("cuEventCreate returned no event") }
            made.append(event)
        }
        events = made
    }

    deinit { for event in events { _ = driver.cuEventDestroy(event) } }

    func record(_ index: Int) throws {
        try driver.check(driver.cuEventRecord(events[index], stream), "cuEventRecord")
    }

    func nanoseconds(from: Int, to: Int) throws -> UInt64 {
        try driver.check(driver.cuEventSynchronize(events[to]), "cuEventSynchronize")
        var milliseconds: Float = 0
        try driver.check(driver.cuEventElapsedTime(&milliseconds, events[from], events[to]), "cuEventElapsedTime")
        return UInt64(max(0, Double(milliseconds)) * 1e6)
    }
}

extension CUDABackend {
    public func makeEventTimer() throws -> (any DeviceEventTimer)? {
        try CUDAEventTimer(driver: driver, stream: stream)
    }
}
