/// The OpenCL ICD loader (libOpenCL.so.1), loaded at run time. Every symbol is resolved when the library
/// is opened; a missing one fails the load with one error naming all of them.
struct OpenCLLibrary: @unchecked Sendable {
    typealias cl_int = Int32
    typealias cl_uint = UInt32
    typealias ID = OpaquePointer

    static let libraryNames = ["libOpenCL.so.1", "libOpenCL.so"]

    static let platformName: UInt32 = 0x0902
    static let platformVersion: UInt32 = 0x0901
    static let deviceTypeAll: UInt64 = 0xFFFF_FFFF
    static let deviceType: UInt32 = 0x1000
    static let deviceName: UInt32 = 0x102B
    static let deviceMaxComputeUnits: UInt32 = 0x1002
    static let deviceGlobalMemSize: UInt32 = 0x101F
    static let deviceTypeCPU: UInt64 = 1 << 1
    static let deviceTypeGPU: UInt64 = 1 << 2
    static let deviceTypeAccelerator: UInt64 = 1 << 3

    let library: DynamicLibrary
    let clGetPlatformIDs: @convention(c) (cl_uint, UnsafeMutablePointer<ID?>?, UnsafeMutablePointer<cl_uint>?) -> cl_int
    let clGetPlatformInfo:
        @convention(c) (ID?, UInt32, Int, UnsafeMutableRawPointer?, UnsafeMutablePointer<Int>?) -> cl_int
    let clGetDeviceIDs:
        @convention(c) (ID?, UInt64, cl_uint, UnsafeMutablePointer<ID?>?, UnsafeMutablePointer<cl_uint>?) -> cl_int
    let clGetDeviceInfo:
        @convention(c) (ID?, UInt32, Int, UnsafeMutableRawPointer?, UnsafeMutablePointer<Int>?) -> cl_int

    /// - Throws: `GPURuntimeError` when the library or one of its symbols is missing.
    static func load() throws(GPURuntimeError) -> OpenCLLibrary {
        let library = try DynamicLibrary.open(libraryNames)
        let symbols = try library.resolve([
            "clGetPlatformIDs", "clGetPlatformInfo", "clGetDeviceIDs", "clGetDeviceInfo",
        ])
        func fn<T>(_ name: String, _: T.Type) -> T { unsafeBitCast(symbols[name].unsafelyUnwrapped, to: T.self) }
        return OpenCLLibrary(
            library: library,
            clGetPlatformIDs: fn(
                "clGetPlatformIDs",
                (@convention(c) (cl_uint, UnsafeMutablePointer<ID?>?, UnsafeMutablePointer<cl_uint>?) -> cl_int).self),
            clGetPlatformInfo: fn(
                "clGetPlatformInfo",
                (@convention(c) (ID?, UInt32, Int, UnsafeMutableRawPointer?, UnsafeMutablePointer<Int>?) -> cl_int).self
            ),
            clGetDeviceIDs: fn(
                "clGetDeviceIDs",
                (@convention(c) (ID?, UInt64, cl_uint, UnsafeMutablePointer<ID?>?, UnsafeMutablePointer<cl_uint>?) ->
                    cl_int).self),
            clGetDeviceInfo: fn(
                "clGetDeviceInfo",
                (@convention(c) (ID?, UInt32, Int, UnsafeMutableRawPointer?, UnsafeMutablePointer<Int>?) -> cl_int).self
            ))
    }

    /// The error funnel: turns a status code into a typed error naming the call.
    func check(_ result: cl_int, _ function: String) throws(GPURuntimeError) {
        guard result != 0 else { return }
        throw .call(
            function: function, code: Int(result),
            message: result == -1001 ? "no OpenCL platforms (CL_PLATFORM_NOT_FOUND_KHR)" : "OpenCL error")
    }

    func string(device: ID?, _ param: UInt32) -> String {
        var size = 0
        guard clGetDeviceInfo(device, param, 0, nil, &size) == 0, size > 0 else { return "" }
        var bytes = [UInt8](repeating: 0, count: size)
        _ = bytes.withUnsafeMutableBytes { clGetDeviceInfo(device, param, size, $0.baseAddress, nil) }
        return String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
    }

    func string(platform: ID?, _ param: UInt32) -> String {
        var size = 0
        guard clGetPlatformInfo(platform, param, 0, nil, &size) == 0, size > 0 else { return "" }
        var bytes = [UInt8](repeating: 0, count: size)
        _ = bytes.withUnsafeMutableBytes { clGetPlatformInfo(platform, param, size, $0.baseAddress, nil) }
        return String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
    }

    func value<T: FixedWidthInteger>(device: ID?, _ param: UInt32, as: T.Type) -> T {
        var result: T = 0
        _ = withUnsafeMutableBytes(of: &result) {
            clGetDeviceInfo(device, param, MemoryLayout<T>.size, $0.baseAddress, nil)
        }
        return result
    }
}
