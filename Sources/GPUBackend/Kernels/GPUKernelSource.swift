import GPUKernelText

/// The GPU kernels, written once in a C dialect that compiles as OpenCL C and (through the macros of
/// `00_prelude.cl`) as CUDA C++: the files in Sources/GPUKernelText/kernels, embedded when the binary is built.
/// Buffers are passed with an element offset so one device allocation (the plan's arena) can hold many values.
/// Small int metadata (shapes, strides) lives in a per-node device buffer.
enum GPUKernelSource {
    static let source = String(cString: inference_gpu_kernel_source())
}

/// The PTX scripts/generate-ptx made from `GPUKernelSource` with NVRTC (compute_70), embedded the same way; the
/// CUDA backend loads it where NVRTC is not found at run time.
enum GPUKernelPTX {
    static let ptx = String(cString: inference_gpu_kernel_ptx())

    /// NVRTC version that produced the PTX (from its "Cuda compilation tools, release X.Y" header line); the CUDA
    /// driver must be at least this new to load it.
    static let nvrtcVersion: String = {
        for line in ptx.split(separator: "\n", maxSplits: 20) where line.contains("Cuda compilation tools, release ") {
            if let range = line.firstRange(of: "release ") {
                return String(line[range.upperBound...].prefix { $0 != "," })
            }
        }
        return "unknown"
    }()
}
