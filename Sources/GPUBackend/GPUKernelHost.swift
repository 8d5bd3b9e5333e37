import InferenceRuntime

/// What the GPU kernel table needs from a device backend: kernel arguments for values and metadata, and
/// kernels of the shared kernel source bound to their arguments. OpenCL and CUDA implement it, so one table
/// (`GPUKernelTable`) serves both.
protocol GPUKernelHost: Backend {
    /// The (buffer, element offset) argument pair of a value in this backend's memory, the offset counted in
    /// elements of `elementBytes` (OpenCL passes buffer and offset; CUDA passes the address, offset 0).
    /// - Throws: `RuntimeError.device` for a buffer of another device.
    func arguments(for value: BoundValue, elementBytes: Int) throws -> (KernelArgument, KernelArgument)
    /// A small int array copied to device memory: its argument, and an object that keeps it alive.
    func metadata(_ ints: [Int32]) throws -> (KernelArgument, AnyObject)
    /// A kernel of the shared source with its arguments bound; `global` is the work size per dimension, `local`
    /// the work-group (thread block) size for kernels that share local memory (global is then rounded up to
    /// whole groups, and the kernel bounds-checks), nil to let the backend choose.
    func kernel(_ name: String, arguments: [KernelArgument], global: [Int], local: [Int]?, retained: [AnyObject])
        throws -> any Kernel
    /// Whether `libraryGemm` runs GEMMs through a vendor library (cuBLAS).
    var hasLibraryGemm: Bool { get }
    /// The GEMM as a vendor-library call after `prologue`, or nil to use the kernel source's own GEMM.
    func libraryGemm(_ gemm: LibraryGemm, prologue: (any Kernel)?) throws -> (any Kernel)?
    /// How convolutions run on this backend.
    var convolution: GPUConvolutionOptions { get }
    /// Whether float16 and bfloat16 nodes run kernels that read and write them as such (Gemm, MatMul, the unary
    /// and binary arithmetic); false (`INFERENCE_GPU_HALF=0`, and by default on OpenCL CPU devices) widens every
    /// such node to float32 between casts.
    var narrowKernels: Bool { get }
}

/// How a GPU backend runs Conv: as im2col + GEMM (through cuBLAS where it is found, the default there) or as the
/// direct kernel (the default otherwise). INFERENCE_GPU_CONV=gemm or =direct chooses; groups other than 1 always
/// run direct. The im2col columns of at most `scratchBytes` are made at a time (images in chunks).
struct GPUConvolutionOptions: Sendable {
    var asGemm: Bool
    /// Integer convolutions (ConvInteger, QLinearConv) of group 1 as im2col + the kernel source's integer GEMM: the
    /// default on every backend (no vendor library is involved); INFERENCE_GPU_CONV=direct keeps the direct kernel.
    var integerAsGemm = true
    var scratchBytes = 256 << 20

    init(asGemm: Bool, integerAsGemm: Bool = true, scratchBytes: Int = 256 << 20) {
        self.asGemm = asGemm
        self.integerAsGemm = integerAsGemm
        self.scratchBytes = scratchBytes
    }

    init(environment: [String: String], libraryGemm: Bool) {
        switch environment["INFERENCE_GPU_CONV"] {
        case "gemm": asGemm = true
        case "direct": asGemm = false
        default: asGemm = libraryGemm
        }
        integerAsGemm = environment["INFERENCE_GPU_CONV"] != "direct"
    }
}

/// A row-major, optionally batched GEMM for a vendor library: Y = alpha · op(A) · op(B) + beta · Y, with element
/// strides between batch members (0 shares an operand). A, B and Y have one element type (float32, float16 or
/// bfloat16: `a.type.dtype`); the products are summed in float32.
struct LibraryGemm {
    var a: BoundValue, b: BoundValue, y: BoundValue
    var m: Int, n: Int, k: Int
    var transA = false, transB = false
    var alpha: Float = 1, beta: Float = 0
    var batch = 1
    var strideA = 0, strideB = 0, strideY = 0
}

extension GPUKernelHost {
    var hasLibraryGemm: Bool { false }

    /// `configuration`'s line on float16 and bfloat16 nodes.
    var narrowDescription: String {
        narrowKernels
            ? "float16/bfloat16: Gemm, MatMul and elementwise arithmetic on half storage, float32 arithmetic"
            : "float16/bfloat16: every node widened to float32 between casts (INFERENCE_GPU_HALF=1 runs them on half storage)"
    }
    func libraryGemm(_ gemm: LibraryGemm, prologue: (any Kernel)?) throws -> (any Kernel)? { nil }

    /// The argument pair of a float32 or int32 value.
    func arguments(for value: BoundValue) throws -> (KernelArgument, KernelArgument) {
        try arguments(for: value, elementBytes: 4)
    }

    func kernel(_ name: String, arguments: [KernelArgument], global: [Int]) throws -> any Kernel {
        try kernel(name, arguments: arguments, global: global, local: nil, retained: [])
    }

    func kernel(_ name: String, arguments: [KernelArgument], global: [Int], retained: [AnyObject]) throws
        -> any Kernel
    {
        try kernel(name, arguments: arguments, global: global, local: nil, retained: retained)
    }
}
