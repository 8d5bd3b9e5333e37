import CKernels

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// What the CPU offers, read at run time.
public struct CPUInfo: Sendable {
    /// The CPU's model name from /proc/cpuinfo, read on first use (a one-off command never needs it).
    public var modelName: String { Self.model }
    public var logicalCores: Int
    /// SIMD features found (e.g. `avx2`, `fma`, `avx512f`).
    public var features: [String]
    /// The instruction set the float kernels dispatch to.
    public var kernelISA: String

    public static let current = CPUInfo()

    /// Bytes of physical memory.
    public static let physicalMemory = Int(clamping: ProcessInfo.processInfo.physicalMemory)

    private static let model: String = {
        var model = "unknown CPU"
        if let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) {
            for line in text.split(separator: "\n") where line.hasPrefix("model name") {
                if let colon = line.firstIndex(of: ":") {
                    let value = line[line.index(after: colon)...].drop { $0 == " " || $0 == "\t" }
                    model = String(value.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
                }
                break
            }
        }
        return model
    }()

    init() {
        logicalCores = ProcessInfo.processInfo.activeProcessorCount
        let bits = ck_cpu_features()
        let names: [(UInt32, String)] = [
            (UInt32(ck_feature_sse42), "sse4.2"), (UInt32(ck_feature_avx), "avx"), (UInt32(ck_feature_avx2), "avx2"),
            (UInt32(ck_feature_fma), "fma"), (UInt32(ck_feature_avx512f), "avx512f"),
            (UInt32(ck_feature_avx512bw), "avx512bw"), (UInt32(ck_feature_avx512vl), "avx512vl"),
            (UInt32(ck_feature_avx512vnni), "avx512vnni"), (UInt32(ck_feature_avx512bf16), "avx512bf16"),
            (UInt32(ck_feature_neon), "neon"),
        ]
        features = names.filter { bits & $0.0 != 0 }.map(\.1)
        kernelISA = String(cString: ck_kernel_isa())
    }
}
