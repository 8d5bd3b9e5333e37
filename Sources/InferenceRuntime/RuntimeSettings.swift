#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Every environment variable the runtime reads, in one table: its accepted values, default and effect.
/// A value outside what a setting accepts is never silently ignored: `problems(in:)` names it, and the command
/// line prints each problem once on stderr (and `inference devices` lists them).
public struct RuntimeSetting: Sendable {
    public var name: String
    /// Accepted values in words, e.g. "avx512, avx2 or generic".
    public var accepts: String
    public var defaultValue: String
    public var effect: String
    /// Nil when `value` is accepted, else the problem and what happens instead.
    public var check: @Sendable (String) -> String?
}

public enum RuntimeSettings {
    public static let all: [RuntimeSetting] = [
        RuntimeSetting(
            name: "INFERENCE_CPU_ISA", accepts: "avx512, avx2 or generic", defaultValue: "the widest this CPU has",
            effect: "narrows the CPU kernels' instruction set (never widens it)",
            check: { ["avx512", "avx2", "generic"].contains($0) ? nil : "the widest available kernels run" }),
        RuntimeSetting(
            name: "INFERENCE_CONV", accepts: "automatic, im2col, winograd or direct", defaultValue: "automatic",
            effect: "the CPU convolution algorithm",
            check: { ["automatic", "im2col", "winograd", "direct"].contains($0) ? nil : "automatic is used" }),
        RuntimeSetting(
            name: "INFERENCE_BLAS", accepts: "0 (off) or the path of an OpenBLAS library",
            defaultValue: "libopenblas.so.0, then numpy's copy in $VIRTUAL_ENV",
            effect: "the BLAS the CPU hands GEMMs of 1024³ multiply-adds and more",
            check: { _ in nil }),
        RuntimeSetting(
            name: "INFERENCE_GPU_POOL_MB", accepts: "a whole number of MiB, 0 or more", defaultValue: "1024",
            effect: "device memory the GPU backends keep for reuse (0: none)",
            check: { Int($0).map { $0 >= 0 } == true ? nil : "the default of 1024 MiB is used" }),
        RuntimeSetting(
            name: "INFERENCE_GPU_CONV", accepts: "gemm or direct", defaultValue: "gemm where a GPU BLAS is found",
            effect: "GPU convolutions as im2col + GEMM or the direct kernel",
            check: { ["gemm", "direct"].contains($0) ? nil : "the default choice is used" }),
        RuntimeSetting(
            name: "INFERENCE_CUDA_GRAPHS", accepts: "0 or 1", defaultValue: "1",
            effect: "CUDA plans replayed as a recorded graph from their second run",
            check: { ["0", "1"].contains($0) ? nil : "graphs stay on" }),
        RuntimeSetting(
            name: "INFERENCE_CUBLAS", accepts: "0 or 1", defaultValue: "1", effect: "cuBLAS for GEMMs on CUDA",
            check: { ["0", "1"].contains($0) ? nil : "cuBLAS stays on where found" }),
        RuntimeSetting(
            name: "INFERENCE_POWERCAP_ROOT", accepts: "a folder laid out like /sys/class/powercap",
            defaultValue: "/sys/class/powercap",
            effect: "where CPU energy counters (RAPL) are read; for testing the energy report",
            check: { _ in nil }),
    ]

    /// The value of an environment variable, nil when unset.
    public static func environment(_ name: String) -> String? {
        getenv(name).map { String(cString: $0) }
    }

    /// The settings in `environment` whose values are not accepted, each as one sentence naming the variable,
    /// the value, what it accepts and what happens instead.
    public static func problems(in environment: [String: String]) -> [String] {
        all.compactMap { setting in
            guard let value = environment[setting.name], let instead = setting.check(value) else { return nil }
            return "\(setting.name)='\(value)' is not \(setting.accepts); \(instead)"
        }
    }
}
