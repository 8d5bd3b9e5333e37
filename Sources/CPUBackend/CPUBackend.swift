import CKernels
import InferenceGraph
import InferenceRuntime
import InferenceTensor

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Host memory for the CPU backend: 64-byte aligned, owned by the buffer.
public final class HostBuffer: DeviceBuffer, @unchecked Sendable {
    public let pointer: UnsafeMutableRawPointer
    public let byteCount: Int

    init(bytes: Int) throws {
        var raw: UnsafeMutableRawPointer?
        // Above physical memory the allocation cannot be used; fail cleanly instead of being killed later.
        guard bytes <= CPUInfo.physicalMemory, posix_memalign(&raw, 64, max(bytes, 64)) == 0, let raw else {
            throw RuntimeError.outOfMemory(device: "cpu", bytes: bytes)
        }
        memset(raw, 0, bytes)
        pointer = raw
        byteCount = bytes
    }

    deinit { free(pointer) }
}

extension BufferSlice {
    /// The host address of a CPU backend slice. Kernels call this once, at creation.
    /// - Throws: `RuntimeError.device` when the slice belongs to another backend.
    func hostPointer() throws -> UnsafeMutableRawPointer {
        guard let host = buffer as? HostBuffer else {
            throw RuntimeError.device("a CPU kernel was given a buffer of another device")
        }
        return host.pointer + offset
    }

    func floatPointer() throws -> UnsafeMutablePointer<Float> {
        try hostPointer().bindMemory(to: Float.self, capacity: byteCount / MemoryLayout<Float>.stride)
    }
}

/// The CPU backend: host memory, memcpy copies, and the kernels of `CPUKernelTable`.
public final class CPUBackend: Backend {
    public let device = DeviceID.cpu
    public let deviceName: String
    public let kernels: KernelRegistry
    /// Conv, Gemm and MatMul apply a following Relu (Conv also a constant-bound Clip, a Swish and a HardSwish), and MatMul a
    /// following bias Add, in their store; BatchNormalization after a Conv folds into its weights; a 2x2, stride-2
    /// MaxPool after a Conv (and its Relu or Clip) is applied in Winograd's output transform (or on a scratch
    /// output); the exported erf form of GELU runs as one Gelu, Sigmoid·x as one Swish.
    public var fusion: FusionRules {
        guard fuses else { return .none }
        var rules = FusionRules(
            activations: [
                "Conv": ["Relu", "Clip", "Swish", "HardSwish"], "Gemm": ["Relu"], "MatMul": ["Relu", "Gelu"],
                "BatchNormalization": ["Relu", "Clip"], "Add": ["Relu"],
            ],
            foldsBatchNormalization: true,
            biases: ["MatMul"], recognizesGelu: true, recognizesSwish: true, maxPools: ["Conv"],
            recognizesAttention: true)
        rules.recognizesQDQ = true
        // Depthwise chains pass channels last where the channels-in-lanes kernel runs (AVX2, AVX-512) and the
        // convolution algorithm is the automatic choice.
        rules.channelsLastDepthwise = channelsLast && convolution == .automatic && ck_depthwise_nhwc_lanes() > 0
        // int8 networks keep channels last where the in-place int8 windows (AVX-512 VNNI) and the channels-last
        // QDQ depthwise kernel run.
        rules.channelsLastQuantized =
            channelsLast && ck_qconv4_available() != 0 && ck_depthwise_dq_nhwc_available() != 0
        return rules
    }
    private let fuses: Bool
    private let channelsLast: Bool
    /// Threads a kernel may use (1 runs everything on the caller's thread).
    public let threads: Int
    /// How convolutions are computed.
    public let convolution: ConvolutionAlgorithm
    let parallel: ParallelFor

    /// - Parameters:
    ///   - threads: threads kernels may split work across; defaults to the logical cores.
    ///   - fuses: whether planning may merge node pairs (`fusion`); off runs every node as written.
    ///   - convolution: the convolution algorithm; by default `INFERENCE_CONV` (`automatic`, `im2col`,
    ///     `winograd`) when set, else `automatic`, which picks per shape.
    ///   - channelsLast: whether depthwise chains and int8 networks may pass channels last
    ///     (`FusionRules.channelsLastDepthwise`, `.channelsLastQuantized`); off, every value stays in planes (the
    ///     same results; bit for bit for the int8 networks).
    public init(
        threads: Int? = nil, fuses: Bool = true, convolution: ConvolutionAlgorithm? = nil, channelsLast: Bool = true
    ) {
        self.fuses = fuses
        self.channelsLast = channelsLast
        self.convolution =
            convolution ?? getenv("INFERENCE_CONV").flatMap { ConvolutionAlgorithm(rawValue: String(cString: $0)) }
            ?? .automatic
        deviceName = CPUInfo.current.modelName
        kernels = CPUKernelTable.registry
        self.threads = max(1, threads ?? CPUInfo.current.logicalCores)
        parallel = ParallelFor(pool: ThreadPool(threads: self.threads))
    }

    /// The problem with INFERENCE_BLAS when it names a library that is not used (missing, not loadable, or
    /// without `cblas_sgemm`), in words; nil when it is unset, 0, or the library it names was loaded.
    public static var blasSettingProblem: String? {
        guard let value = getenv("INFERENCE_BLAS").map({ String(cString: $0) }), !value.isEmpty, value != "0" else {
            return nil
        }
        if let blas = RuntimeBLAS.shared, blas.path == value { return nil }
        let instead = RuntimeBLAS.shared.map { "using \($0.path) instead" } ?? "GEMMs run the packed kernel"
        return "INFERENCE_BLAS='\(value)' is not a loadable OpenBLAS with cblas_sgemm; \(instead)"
    }

    /// The OpenBLAS this process hands its largest GEMMs to, described, or nil when none was found.
    public static var runtimeBLAS: String? {
        RuntimeBLAS.shared.map { "OpenBLAS (\($0.path)) for GEMMs of 1024³ multiply-adds and more" }
    }

    public var configuration: [String] {
        [
            "kernels: \(String(cString: ck_kernel_isa())), \(threads) thread\(threads == 1 ? "" : "s"), convolution \(convolution.rawValue)",
            "GEMMs of 1024³ multiply-adds and more: "
                + (RuntimeBLAS.shared.map { "OpenBLAS (\($0.path)), one instance per thread" }
                    ?? "the packed kernel (no OpenBLAS found, or INFERENCE_BLAS=0)"),
        ]
    }

    public func allocate(bytes: Int) throws -> any DeviceBuffer { try HostBuffer(bytes: bytes) }

    public func copy(from host: UnsafeRawBufferPointer, to destination: BufferSlice) throws {
        guard let base = host.baseAddress, host.count > 0 else { return }
        try destination.hostPointer().copyMemory(from: base, byteCount: min(host.count, destination.byteCount))
    }

    public func copy(from source: BufferSlice, to host: UnsafeMutableRawBufferPointer) throws {
        guard let base = host.baseAddress, host.count > 0 else { return }
        base.copyMemory(from: try source.hostPointer(), byteCount: min(host.count, source.byteCount))
    }

    public func synchronize() throws {}
}
