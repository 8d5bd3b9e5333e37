#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// The NVIDIA management library, opened with dlopen like the CUDA driver: the GPU's cumulative energy counter
/// (`nvmlDeviceGetTotalEnergyConsumption`, millijoules since the driver loaded; Volta and newer).
public enum NVMLEnergy {
    /// A reader of one GPU's energy in joules, and the GPU's name as NVML gives it.
    public struct Reader: Sendable {
        public var name: String
        public var read: @Sendable () -> Double?
    }

    typealias Init = @convention(c) () -> Int32
    typealias HandleByIndex = @convention(c) (UInt32, UnsafeMutablePointer<OpaquePointer?>) -> Int32
    typealias TotalEnergy = @convention(c) (OpaquePointer?, UnsafeMutablePointer<UInt64>) -> Int32
    typealias Name = @convention(c) (OpaquePointer?, UnsafeMutablePointer<CChar>, UInt32) -> Int32
    typealias ErrorString = @convention(c) (Int32) -> UnsafePointer<CChar>?

    /// The energy reader of the GPU NVML numbers `index` (NVML numbers GPUs in PCI bus order, as CUDA does with
    /// CUDA_DEVICE_ORDER=PCI_BUS_ID), or why there is none: no library, an old driver, a GPU without the counter.
    public static func reader(index: Int) -> Result<Reader, GPURuntimeError> {
        let library: DynamicLibrary
        let symbols: [String: UnsafeMutableRawPointer]
        do {
            library = try DynamicLibrary.open(["libnvidia-ml.so.1", "libnvidia-ml.so"])
            symbols = try library.resolve([
                "nvmlInit_v2", "nvmlDeviceGetHandleByIndex_v2", "nvmlDeviceGetTotalEnergyConsumption",
                "nvmlDeviceGetName", "nvmlErrorString",
            ])
        } catch {
            return .failure(error)
        }
        func fn<T>(_ name: String) -> T { unsafeBitCast(symbols[name].unsafelyUnwrapped, to: T.self) }
        let initialize: Init = fn("nvmlInit_v2")
        let handleByIndex: HandleByIndex = fn("nvmlDeviceGetHandleByIndex_v2")
        let totalEnergy: TotalEnergy = fn("nvmlDeviceGetTotalEnergyConsumption")
        let deviceName: Name = fn("nvmlDeviceGetName")
        let errorString: ErrorString = fn("nvmlErrorString")
        func failure(_ function: String, _ code: Int32) -> GPURuntimeError {
            .call(
                function: function, code: Int(code),
                message: errorString(code).map { String(cString: $0) } ?? "NVML error")
        }
        let started = initialize()
        guard started == 0 else { return .failure(failure("nvmlInit_v2", started)) }
        guard let index32 = UInt32(exactly: index) else {
            return .failure(.call(function: "nvmlDeviceGetHandleByIndex_v2", code: 2, message: "invalid index"))
        }
        var handle: OpaquePointer?
        let found = handleByIndex(index32, &handle)
        guard found == 0 else { return .failure(failure("nvmlDeviceGetHandleByIndex_v2", found)) }
        var millijoules: UInt64 = 0
        let probe = totalEnergy(handle, &millijoules)
        guard probe == 0 else { return .failure(failure("nvmlDeviceGetTotalEnergyConsumption", probe)) }
        var text = [CChar](repeating: 0, count: 96)
        let named = deviceName(handle, &text, UInt32(text.count))
        let name =
            named == 0
            ? String(decoding: text.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
            : "GPU \(index)"
        // The handle stays valid for the process (NVML is never shut down: other readers may share it).
        let box = HandleBox(handle: handle, totalEnergy: totalEnergy)
        return .success(
            Reader(name: name) {
                var value: UInt64 = 0
                return box.totalEnergy(box.handle, &value) == 0 ? Double(value) / 1000 : nil
            })
    }

    private struct HandleBox: @unchecked Sendable {
        let handle: OpaquePointer?
        let totalEnergy: TotalEnergy
    }
}
