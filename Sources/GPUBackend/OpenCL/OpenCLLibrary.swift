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
    static let memReadWrite: UInt64 = 1 << 0
    static let programBuildLog: UInt32 = 0x1183

    let library: DynamicLibrary
    let clGetPlatformIDs: @convention(c) (cl_uint, UnsafeMutablePointer<ID?>?, UnsafeMutablePointer<cl_uint>?) -> cl_int
    let clGetPlatformInfo:
        @convention(c) (ID?, UInt32, Int, UnsafeMutableRawPointer?, UnsafeMutablePointer<Int>?) -> cl_int
    let clGetDeviceIDs:
        @convention(c) (ID?, UInt64, cl_uint, UnsafeMutablePointer<ID?>?, UnsafeMutablePointer<cl_uint>?) -> cl_int
    let clGetDeviceInfo:
        @convention(c) (ID?, UInt32, Int, UnsafeMutableRawPointer?, UnsafeMutablePointer<Int>?) -> cl_int
    let clCreateContext:
        @convention(c) (
            UnsafePointer<Int>?, cl_uint, UnsafePointer<ID?>?, OpaquePointer?, UnsafeMutableRawPointer?,
            UnsafeMutablePointer<cl_int>?
        ) -> ID?
    let clCreateCommandQueue: @convention(c) (ID?, ID?, UInt64, UnsafeMutablePointer<cl_int>?) -> ID?
    let clCreateBuffer:
        @convention(c) (ID?, UInt64, Int, UnsafeMutableRawPointer?, UnsafeMutablePointer<cl_int>?) -> ID?
    let clReleaseMemObject: @convention(c) (ID?) -> cl_int
    let clEnqueueWriteBuffer:
        @convention(c) (
            ID?, ID?, cl_uint, Int, Int, UnsafeRawPointer?, cl_uint, UnsafePointer<ID?>?, UnsafeMutablePointer<ID?>?
        ) -> cl_int
    let clEnqueueReadBuffer:
        @convention(c) (
            ID?, ID?, cl_uint, Int, Int, UnsafeMutableRawPointer?, cl_uint, UnsafePointer<ID?>?,
            UnsafeMutablePointer<ID?>?
        ) -> cl_int
    let clCreateProgramWithSource:
        @convention(c) (
            ID?, cl_uint, UnsafePointer<UnsafePointer<CChar>?>?, UnsafePointer<Int>?, UnsafeMutablePointer<cl_int>?
        ) -> ID?
    let clBuildProgram:
        @convention(c) (
            ID?, cl_uint, UnsafePointer<ID?>?, UnsafePointer<CChar>?, OpaquePointer?, UnsafeMutableRawPointer?
        ) -> cl_int
    let clGetProgramBuildInfo:
        @convention(c) (ID?, ID?, UInt32, Int, UnsafeMutableRawPointer?, UnsafeMutablePointer<Int>?) -> cl_int
    let clCreateKernel: @convention(c) (ID?, UnsafePointer<CChar>?, UnsafeMutablePointer<cl_int>?) -> ID?
    let clSetKernelArg: @convention(c) (ID?, cl_uint, Int, UnsafeRawPointer?) -> cl_int
    let clEnqueueNDRangeKernel:
        @convention(c) (
            ID?, ID?, cl_uint, UnsafePointer<Int>?, UnsafePointer<Int>?, UnsafePointer<Int>?, cl_uint,
            UnsafePointer<ID?>?,
            UnsafeMutablePointer<ID?>?
        ) -> cl_int
    let clFinish: @convention(c) (ID?) -> cl_int
    let clEnqueueMarkerWithWaitList:
        @convention(c) (ID?, cl_uint, UnsafePointer<ID?>?, UnsafeMutablePointer<ID?>?) -> cl_int
    let clWaitForEvents: @convention(c) (cl_uint, UnsafePointer<ID?>?) -> cl_int
    let clGetEventProfilingInfo:
        @convention(c) (ID?, UInt32, Int, UnsafeMutableRawPointer?, UnsafeMutablePointer<Int>?) -> cl_int
    let clReleaseEvent: @convention(c) (ID?) -> cl_int

    /// - Throws: `GPURuntimeError` when the library or one of its symbols is missing.
    static func load() throws(GPURuntimeError) -> OpenCLLibrary {
        let library = try DynamicLibrary.open(libraryNames)
        let symbols = try library.resolve([
            "clGetPlatformIDs", "clGetPlatformInfo", "clGetDeviceIDs", "clGetDeviceInfo", "clCreateContext",
            "clCreateCommandQueue", "clCreateBuffer", "clReleaseMemObject", "clEnqueueWriteBuffer",
            "clEnqueueReadBuffer",
            "clCreateProgramWithSource", "clBuildProgram", "clGetProgramBuildInfo", "clCreateKernel", "clSetKernelArg",
            "clEnqueueNDRangeKernel", "clFinish", "clEnqueueMarkerWithWaitList", "clWaitForEvents",
            "clGetEventProfilingInfo", "clReleaseEvent",
        ])
        return OpenCLLibrary(library: library, symbols: symbols)
    }

    /// Fills every function pointer from resolved symbols (`resolve` guarantees each one is present).
    private init(library: DynamicLibrary, symbols: [String: UnsafeMutableRawPointer]) {
        func fn<T>(_ name: String) -> T { unsafeBitCast(symbols[name].unsafelyUnwrapped, to: T.self) }
        self.library = library
        clGetPlatformIDs = fn("clGetPlatformIDs")
        clGetPlatformInfo = fn("clGetPlatformInfo")
        clGetDeviceIDs = fn("clGetDeviceIDs")
        clGetDeviceInfo = fn("clGetDeviceInfo")
        clCreateContext = fn("clCreateContext")
        clCreateCommandQueue = fn("clCreateCommandQueue")
        clCreateBuffer = fn("clCreateBuffer")
        clReleaseMemObject = fn("clReleaseMemObject")
        clEnqueueWriteBuffer = fn("clEnqueueWriteBuffer")
        clEnqueueReadBuffer = fn("clEnqueueReadBuffer")
        clCreateProgramWithSource = fn("clCreateProgramWithSource")
        clBuildProgram = fn("clBuildProgram")
        clGetProgramBuildInfo = fn("clGetProgramBuildInfo")
        clCreateKernel = fn("clCreateKernel")
        clSetKernelArg = fn("clSetKernelArg")
        clEnqueueNDRangeKernel = fn("clEnqueueNDRangeKernel")
        clFinish = fn("clFinish")
        clEnqueueMarkerWithWaitList = fn("clEnqueueMarkerWithWaitList")
        clWaitForEvents = fn("clWaitForEvents")
        clGetEventProfilingInfo = fn("clGetEventProfilingInfo")
        clReleaseEvent = fn("clReleaseEvent")
    }

    /// The error funnel: turns a status code into a typed error naming the call.
    func check(_ result: cl_int, _ function: String) throws(GPURuntimeError) {
        guard result != 0 else { return }
        throw .call(
            function: function, code: Int(result),
            message: result == -1001 ? "no OpenCL platforms (CL_PLATFORM_NOT_FOUND_KHR)" : Self.errorName(result))
    }

    static func errorName(_ code: cl_int) -> String {
        let names: [cl_int: String] = [
            -1: "CL_DEVICE_NOT_FOUND", -2: "CL_DEVICE_NOT_AVAILABLE", -4: "CL_MEM_OBJECT_ALLOCATION_FAILURE",
            -5: "CL_OUT_OF_RESOURCES", -6: "CL_OUT_OF_HOST_MEMORY", -11: "CL_BUILD_PROGRAM_FAILURE",
            -30: "CL_INVALID_VALUE", -33: "CL_INVALID_DEVICE", -34: "CL_INVALID_CONTEXT",
            -36: "CL_INVALID_COMMAND_QUEUE",
            -38: "CL_INVALID_MEM_OBJECT", -46: "CL_INVALID_KERNEL_NAME", -48: "CL_INVALID_KERNEL",
            -49: "CL_INVALID_ARG_INDEX",
            -50: "CL_INVALID_ARG_VALUE", -51: "CL_INVALID_ARG_SIZE", -52: "CL_INVALID_KERNEL_ARGS",
            -54: "CL_INVALID_WORK_GROUP_SIZE", -61: "CL_INVALID_BUFFER_SIZE",
        ]
        return names[code] ?? "OpenCL error"
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

    /// Every device of every platform, in the order `opencl:N` numbers them.
    func allDevices() throws(GPURuntimeError) -> [ID?] {
        var platformCount: UInt32 = 0
        try check(clGetPlatformIDs(0, nil, &platformCount), "clGetPlatformIDs")
        var platforms = [ID?](repeating: nil, count: Int(platformCount))
        try check(clGetPlatformIDs(platformCount, &platforms, nil), "clGetPlatformIDs")
        var result: [ID?] = []
        for platform in platforms {
            var count: UInt32 = 0
            guard clGetDeviceIDs(platform, Self.deviceTypeAll, 0, nil, &count) == 0, count > 0 else { continue }
            var devices = [ID?](repeating: nil, count: Int(count))
            guard clGetDeviceIDs(platform, Self.deviceTypeAll, count, &devices, nil) == 0 else { continue }
            result += devices
        }
        return result
    }
}
