/// The CUDA driver API (libcuda.so.1), loaded at run time. Every symbol is resolved when the library
/// is opened; a missing one fails the load with one error naming all of them.
struct CUDADriver: @unchecked Sendable {
    typealias CUresult = Int32
    typealias CUdevice = Int32

    static let libraryNames = ["libcuda.so.1", "libcuda.so"]

    let library: DynamicLibrary
    let cuInit: @convention(c) (UInt32) -> CUresult
    let cuDriverGetVersion: @convention(c) (UnsafeMutablePointer<Int32>) -> CUresult
    let cuDeviceGetCount: @convention(c) (UnsafeMutablePointer<Int32>) -> CUresult
    let cuDeviceGet: @convention(c) (UnsafeMutablePointer<CUdevice>, Int32) -> CUresult
    let cuDeviceGetName: @convention(c) (UnsafeMutablePointer<CChar>, Int32, CUdevice) -> CUresult
    let cuDeviceTotalMem: @convention(c) (UnsafeMutablePointer<Int>, CUdevice) -> CUresult
    let cuDeviceGetAttribute: @convention(c) (UnsafeMutablePointer<Int32>, Int32, CUdevice) -> CUresult
    let cuGetErrorString: @convention(c) (CUresult, UnsafeMutablePointer<UnsafePointer<CChar>?>) -> CUresult

    /// CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR / _MINOR and MULTIPROCESSOR_COUNT.
    static let attributeComputeCapabilityMajor: Int32 = 75
    static let attributeComputeCapabilityMinor: Int32 = 76
    static let attributeMultiprocessorCount: Int32 = 16

    /// - Throws: `GPURuntimeError` when the library or one of its symbols is missing.
    static func load() throws(GPURuntimeError) -> CUDADriver {
        let library = try DynamicLibrary.open(libraryNames)
        let symbols = try library.resolve([
            "cuInit", "cuDriverGetVersion", "cuDeviceGetCount", "cuDeviceGet", "cuDeviceGetName",
            "cuDeviceTotalMem_v2", "cuDeviceGetAttribute", "cuGetErrorString",
        ])
        func fn<T>(_ name: String, _: T.Type) -> T {
            // resolve() guarantees presence.
            unsafeBitCast(symbols[name].unsafelyUnwrapped, to: T.self)
        }
        return CUDADriver(
            library: library,
            cuInit: fn("cuInit", (@convention(c) (UInt32) -> CUresult).self),
            cuDriverGetVersion: fn(
                "cuDriverGetVersion", (@convention(c) (UnsafeMutablePointer<Int32>) -> CUresult).self),
            cuDeviceGetCount: fn("cuDeviceGetCount", (@convention(c) (UnsafeMutablePointer<Int32>) -> CUresult).self),
            cuDeviceGet: fn("cuDeviceGet", (@convention(c) (UnsafeMutablePointer<CUdevice>, Int32) -> CUresult).self),
            cuDeviceGetName: fn(
                "cuDeviceGetName", (@convention(c) (UnsafeMutablePointer<CChar>, Int32, CUdevice) -> CUresult).self),
            cuDeviceTotalMem: fn(
                "cuDeviceTotalMem_v2", (@convention(c) (UnsafeMutablePointer<Int>, CUdevice) -> CUresult).self),
            cuDeviceGetAttribute: fn(
                "cuDeviceGetAttribute", (@convention(c) (UnsafeMutablePointer<Int32>, Int32, CUdevice) -> CUresult).self
            ),
            cuGetErrorString: fn(
                "cuGetErrorString",
                (@convention(c) (CUresult, UnsafeMutablePointer<UnsafePointer<CChar>?>) -> CUresult).self))
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
