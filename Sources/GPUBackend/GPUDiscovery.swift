import InferenceRuntime

/// One GPU-capable device a runtime reported.
public struct DiscoveredDevice: Sendable, Equatable {
    public var id: DeviceID
    public var name: String
    /// `gpu`, `cpu` or `accelerator` (OpenCL device type; CUDA devices are always `gpu`).
    public var type: String
    public var memoryBytes: Int
    /// Compute capability for CUDA (`9.0`), OpenCL platform name for OpenCL.
    public var detail: String
    public var computeUnits: Int
}

/// What one runtime found: its library, version and devices, or why it is unusable.
public struct RuntimeProbe: Sendable, Equatable {
    public var runtime: DeviceKind
    /// Library names tried, in search order.
    public var searched: [String]
    public var loadedLibrary: String?
    public var version: String?
    public var devices: [DiscoveredDevice]
    /// Why no device is usable (library missing, init failed, no devices), nil when devices were found.
    public var problem: String?
}

/// Finds GPU runtimes and devices with dlopen: CUDA first (libcuda.so.1), then OpenCL (libOpenCL.so.1).
/// Nothing here needs CUDA or OpenCL at build time; a missing runtime is a reported reason, never a crash.
public enum GPUDiscovery {
    /// Probes every runtime. Cheap enough to call per command (no contexts are created).
    public static func probe() -> [RuntimeProbe] { [probeCUDA(), probeOpenCL()] }

    /// Every device an execution backend can run on, CUDA first, then OpenCL (any type).
    public static func acceleratorIDs(in probes: [RuntimeProbe]) -> [DeviceID] {
        let cuda = probes.first { $0.runtime == .cuda }?.devices ?? []
        let openCL = probes.first { $0.runtime == .opencl }?.devices ?? []
        return (cuda + openCL).map(\.id)
    }

    /// The device `gpu` means: the first CUDA device, else the first OpenCL device of GPU type.
    public static func firstGPU(in probes: [RuntimeProbe]) -> DiscoveredDevice? {
        if let cuda = probes.first(where: { $0.runtime == .cuda })?.devices.first { return cuda }
        return probes.first(where: { $0.runtime == .opencl })?.devices.first { $0.type == "gpu" }
    }

    static func probeCUDA() -> RuntimeProbe {
        var probe = RuntimeProbe(runtime: .cuda, searched: CUDADriver.libraryNames, devices: [])
        do {
            let driver = try CUDADriver.load()
            probe.loadedLibrary = driver.library.name
            try driver.check(driver.cuInit(0), "cuInit")
            var version: Int32 = 0
            try driver.check(driver.cuDriverGetVersion(&version), "cuDriverGetVersion")
            probe.version = "\(version / 1000).\(version % 1000 / 10)"
            var count: Int32 = 0
            try driver.check(driver.cuDeviceGetCount(&count), "cuDeviceGetCount")
            for ordinal in 0..<count {
                var device: Int32 = 0
                try driver.check(driver.cuDeviceGet(&device, ordinal), "cuDeviceGet")
                var name = [CChar](repeating: 0, count: 256)
                try driver.check(driver.cuDeviceGetName(&name, 256, device), "cuDeviceGetName")
                var memory = 0
                try driver.check(driver.cuDeviceTotalMem(&memory, device), "cuDeviceTotalMem")
                var major: Int32 = 0, minor: Int32 = 0, sms: Int32 = 0
                _ = driver.cuDeviceGetAttribute(&major, CUDADriver.attributeComputeCapabilityMajor, device)
                _ = driver.cuDeviceGetAttribute(&minor, CUDADriver.attributeComputeCapabilityMinor, device)
                _ = driver.cuDeviceGetAttribute(&sms, CUDADriver.attributeMultiprocessorCount, device)
                probe.devices.append(
                    DiscoveredDevice(
                        id: DeviceID(.cuda, Int(ordinal)),
                        name: String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self),
                        type: "gpu", memoryBytes: memory, detail: "compute capability \(major).\(minor)",
                        computeUnits: Int(sms)))
            }
            if probe.devices.isEmpty { probe.problem = "the driver reports no CUDA devices" }
        } catch {
            probe.problem = "\(error)"
        }
        return probe
    }

    static func probeOpenCL() -> RuntimeProbe {
        var probe = RuntimeProbe(runtime: .opencl, searched: OpenCLLibrary.libraryNames, devices: [])
        do {
            let cl = try OpenCLLibrary.load()
            probe.loadedLibrary = cl.library.name
            var platformCount: UInt32 = 0
            try cl.check(cl.clGetPlatformIDs(0, nil, &platformCount), "clGetPlatformIDs")
            var platforms = [OpenCLLibrary.ID?](repeating: nil, count: Int(platformCount))
            try cl.check(cl.clGetPlatformIDs(platformCount, &platforms, nil), "clGetPlatformIDs")
            var versions: [String] = []
            for platform in platforms {
                let platformName = cl.string(platform: platform, OpenCLLibrary.platformName)
                versions.append(cl.string(platform: platform, OpenCLLibrary.platformVersion))
                var deviceCount: UInt32 = 0
                guard cl.clGetDeviceIDs(platform, OpenCLLibrary.deviceTypeAll, 0, nil, &deviceCount) == 0,
                    deviceCount > 0
                else { continue }
                var devices = [OpenCLLibrary.ID?](repeating: nil, count: Int(deviceCount))
                guard cl.clGetDeviceIDs(platform, OpenCLLibrary.deviceTypeAll, deviceCount, &devices, nil) == 0 else {
                    continue
                }
                for device in devices {
                    let typeBits = cl.value(device: device, OpenCLLibrary.deviceType, as: UInt64.self)
                    let type =
                        typeBits & OpenCLLibrary.deviceTypeGPU != 0
                        ? "gpu"
                        : typeBits & OpenCLLibrary.deviceTypeAccelerator != 0 ? "accelerator" : "cpu"
                    probe.devices.append(
                        DiscoveredDevice(
                            id: DeviceID(.opencl, probe.devices.count),
                            name: cl.string(device: device, OpenCLLibrary.deviceName), type: type,
                            memoryBytes: Int(
                                cl.value(device: device, OpenCLLibrary.deviceGlobalMemSize, as: UInt64.self)),
                            detail: platformName,
                            computeUnits: Int(
                                cl.value(device: device, OpenCLLibrary.deviceMaxComputeUnits, as: UInt32.self))))
                }
            }
            probe.version = versions.joined(separator: "; ")
            if probe.devices.isEmpty {
                probe.problem =
                    platformCount == 0
                    ? "no OpenCL platforms are installed (no ICD in /etc/OpenCL/vendors)"
                    : "the OpenCL platforms report no devices"
            }
        } catch GPURuntimeError.call(let function, -1001, _) {
            probe.problem = "no OpenCL platforms are installed (\(function): CL_PLATFORM_NOT_FOUND_KHR)"
        } catch {
            probe.problem = "\(error)"
        }
        return probe
    }
}
