/// The CUDA driver API (libcuda.so.1), loaded at run time. Every symbol is resolved when the library
/// is opened; a missing one fails the load with one error naming all of them.
struct CUDADriver: @unchecked Sendable {
    typealias CUresult = Int32
    typealias CUdevice = Int32
    typealias CUdeviceptr = UInt64

    static let libraryNames = ["libcuda.so.1", "libcuda.so"]

    /// CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR / _MINOR and MULTIPROCESSOR_COUNT.
    static let attributeComputeCapabilityMajor: Int32 = 75
    static let attributeComputeCapabilityMinor: Int32 = 76
    static let attributeMultiprocessorCount: Int32 = 16
    /// CU_JIT_ERROR_LOG_BUFFER and its size option, for module load errors.
    static let jitErrorLogBuffer: Int32 = 5
    static let jitErrorLogBufferSize: Int32 = 6

    let library: DynamicLibrary
    let cuInit: @convention(c) (UInt32) -> CUresult
    let cuDriverGetVersion: @convention(c) (UnsafeMutablePointer<Int32>) -> CUresult
    let cuDeviceGetCount: @convention(c) (UnsafeMutablePointer<Int32>) -> CUresult
    let cuDeviceGet: @convention(c) (UnsafeMutablePointer<CUdevice>, Int32) -> CUresult
    let cuDeviceGetName: @convention(c) (UnsafeMutablePointer<CChar>, Int32, CUdevice) -> CUresult
    let cuDeviceTotalMem: @convention(c) (UnsafeMutablePointer<Int>, CUdevice) -> CUresult
    let cuDeviceGetAttribute: @convention(c) (UnsafeMutablePointer<Int32>, Int32, CUdevice) -> CUresult
    let cuGetErrorString: @convention(c) (CUresult, UnsafeMutablePointer<UnsafePointer<CChar>?>) -> CUresult
    let cuDevicePrimaryCtxRetain: @convention(c) (UnsafeMutablePointer<OpaquePointer?>, CUdevice) -> CUresult
    let cuCtxSetCurrent: @convention(c) (OpaquePointer?) -> CUresult
    let cuCtxSynchronize: @convention(c) () -> CUresult
    let cuMemAlloc: @convention(c) (UnsafeMutablePointer<CUdeviceptr>, Int) -> CUresult
    let cuMemFree: @convention(c) (CUdeviceptr) -> CUresult
    let cuMemcpyHtoD: @convention(c) (CUdeviceptr, UnsafeRawPointer?, Int) -> CUresult
    let cuMemcpyDtoH: @convention(c) (UnsafeMutableRawPointer?, CUdeviceptr, Int) -> CUresult
    let cuModuleLoadDataEx:
        @convention(c) (
            UnsafeMutablePointer<OpaquePointer?>, UnsafeRawPointer?, UInt32, UnsafeMutablePointer<Int32>?,
            UnsafeMutablePointer<UnsafeMutableRawPointer?>?
        ) -> CUresult
    let cuModuleGetFunction:
        @convention(c) (UnsafeMutablePointer<OpaquePointer?>, OpaquePointer?, UnsafePointer<CChar>?) -> CUresult
    let cuLaunchKernel:
        @convention(c) (
            OpaquePointer?, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, OpaquePointer?,
            UnsafeMutablePointer<UnsafeMutableRawPointer?>?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?
        ) -> CUresult

    let cuEventCreate: @convention(c) (UnsafeMutablePointer<OpaquePointer?>, UInt32) -> CUresult
    let cuEventRecord: @convention(c) (OpaquePointer?, OpaquePointer?) -> CUresult
    let cuEventSynchronize: @convention(c) (OpaquePointer?) -> CUresult
    let cuEventElapsedTime: @convention(c) (UnsafeMutablePointer<Float>, OpaquePointer?, OpaquePointer?) -> CUresult
    let cuEventDestroy: @convention(c) (OpaquePointer?) -> CUresult
    let cuStreamCreate: @convention(c) (UnsafeMutablePointer<OpaquePointer?>, UInt32) -> CUresult
    let cuStreamSynchronize: @convention(c) (OpaquePointer?) -> CUresult
    let cuMemcpyHtoDAsync: @convention(c) (CUdeviceptr, UnsafeRawPointer?, Int, OpaquePointer?) -> CUresult
    let cuMemcpyDtoHAsync: @convention(c) (UnsafeMutableRawPointer?, CUdeviceptr, Int, OpaquePointer?) -> CUresult
    let cuMemHostAlloc: @convention(c) (UnsafeMutablePointer<UnsafeMutableRawPointer?>, Int, UInt32) -> CUresult
    let cuMemFreeHost: @convention(c) (UnsafeMutableRawPointer?) -> CUresult
    /// CUDA graphs, when the driver has them (CUDA 11.4+); nil otherwise.
    let graphs: CUDAGraphAPI?

    static let symbols = [
        "cuInit", "cuDriverGetVersion", "cuDeviceGetCount", "cuDeviceGet", "cuDeviceGetName", "cuDeviceTotalMem_v2",
        "cuDeviceGetAttribute", "cuGetErrorString", "cuDevicePrimaryCtxRetain", "cuCtxSetCurrent", "cuCtxSynchronize",
        "cuMemAlloc_v2", "cuMemFree_v2", "cuMemcpyHtoD_v2", "cuMemcpyDtoH_v2", "cuModuleLoadDataEx",
        "cuModuleGetFunction",
        "cuLaunchKernel", "cuEventCreate", "cuEventRecord", "cuEventSynchronize", "cuEventElapsedTime",
        "cuEventDestroy_v2", "cuStreamCreate", "cuStreamSynchronize", "cuMemcpyHtoDAsync_v2", "cuMemcpyDtoHAsync_v2",
        "cuMemHostAlloc", "cuMemFreeHost",
    ]

    /// - Throws: `GPURuntimeError` when the library or one of its symbols is missing.
    static func load() throws(GPURuntimeError) -> CUDADriver {
        let library = try DynamicLibrary.open(libraryNames)
        return CUDADriver(library: library, symbols: try library.resolve(symbols))
    }

    /// Fills every function pointer from resolved symbols (`resolve` guarantees each one is present).
    private init(library: DynamicLibrary, symbols: [String: UnsafeMutableRawPointer]) {
        func fn<T>(_ name: String) -> T { unsafeBitCast(symbols[name].unsafelyUnwrapped, to: T.self) }
        self.library = library
        cuInit = fn("cuInit")
        cuDriverGetVersion = fn("cuDriverGetVersion")
        cuDeviceGetCount = fn("cuDeviceGetCount")
        cuDeviceGet = fn("cuDeviceGet")
        cuDeviceGetName = fn("cuDeviceGetName")
        cuDeviceTotalMem = fn("cuDeviceTotalMem_v2")
        cuDeviceGetAttribute = fn("cuDeviceGetAttribute")
        cuGetErrorString = fn("cuGetErrorString")
        cuDevicePrimaryCtxRetain = fn("cuDevicePrimaryCtxRetain")
        cuCtxSetCurrent = fn("cuCtxSetCurrent")
        cuCtxSynchronize = fn("cuCtxSynchronize")
        cuMemAlloc = fn("cuMemAlloc_v2")
        cuMemFree = fn("cuMemFree_v2")
        cuMemcpyHtoD = fn("cuMemcpyHtoD_v2")
        cuMemcpyDtoH = fn("cuMemcpyDtoH_v2")
        cuModuleLoadDataEx = fn("cuModuleLoadDataEx")
        cuModuleGetFunction = fn("cuModuleGetFunction")
        cuLaunchKernel = fn("cuLaunchKernel")
        cuEventCreate = fn("cuEventCreate")
        cuEventRecord = fn("cuEventRecord")
        cuEventSynchronize = fn("cuEventSynchronize")
        cuEventElapsedTime = fn("cuEventElapsedTime")
        cuEventDestroy = fn("cuEventDestroy_v2")
        cuStreamCreate = fn("cuStreamCreate")
        cuStreamSynchronize = fn("cuStreamSynchronize")
        cuMemcpyHtoDAsync = fn("cuMemcpyHtoDAsync_v2")
        cuMemcpyDtoHAsync = fn("cuMemcpyDtoHAsync_v2")
        cuMemHostAlloc = fn("cuMemHostAlloc")
        cuMemFreeHost = fn("cuMemFreeHost")
        graphs = (try? library.resolve(CUDAGraphAPI.symbols)).map(CUDAGraphAPI.init)
    }

    /// The error funnel: turns a status code into a typed error naming the call.
    func check(_ result: CUresult, _ function: String = #function) throws(GPURuntimeError) {
        guard result != 0 else { return }
        var message: UnsafePointer<CChar>?
        _ = cuGetErrorString(result, &message)
        throw .call(
            function: function, code: Int(result), message: message.map { String(cString: $0) } ?? "unknown error")
    }
}

/// The stream-capture and graph calls of the driver API: a run's launches recorded once, then replayed with one
/// call (`CUDAGraphReplay`).
struct CUDAGraphAPI: @unchecked Sendable {
    /// CU_STREAM_CAPTURE_MODE_THREAD_LOCAL: only this thread's calls are checked against the capture.
    static let captureThreadLocal: Int32 = 1

    let cuStreamBeginCapture: @convention(c) (OpaquePointer?, Int32) -> CUDADriver.CUresult
    let cuStreamEndCapture: @convention(c) (OpaquePointer?, UnsafeMutablePointer<OpaquePointer?>) -> CUDADriver.CUresult
    let cuGraphInstantiateWithFlags:
        @convention(c) (UnsafeMutablePointer<OpaquePointer?>, OpaquePointer?, UInt64) -> CUDADriver.CUresult
    let cuGraphLaunch: @convention(c) (OpaquePointer?, OpaquePointer?) -> CUDADriver.CUresult
    let cuGraphExecDestroy: @convention(c) (OpaquePointer?) -> CUDADriver.CUresult
    let cuGraphDestroy: @convention(c) (OpaquePointer?) -> CUDADriver.CUresult

    static let symbols = [
        "cuStreamBeginCapture_v2", "cuStreamEndCapture", "cuGraphInstantiateWithFlags", "cuGraphLaunch",
        "cuGraphExecDestroy", "cuGraphDestroy",
    ]

    init(_ symbols: [String: UnsafeMutableRawPointer]) {
        func fn<T>(_ name: String) -> T { unsafeBitCast(symbols[name].unsafelyUnwrapped, to: T.self) }
        cuStreamBeginCapture = fn("cuStreamBeginCapture_v2")
        cuStreamEndCapture = fn("cuStreamEndCapture")
        cuGraphInstantiateWithFlags = fn("cuGraphInstantiateWithFlags")
        cuGraphLaunch = fn("cuGraphLaunch")
        cuGraphExecDestroy = fn("cuGraphExecDestroy")
        cuGraphDestroy = fn("cuGraphDestroy")
    }
}
