import InferenceRuntime
import InferenceTensor

/// cuBLAS, found at run time like NVRTC (`CUDALibrarySearch`: the loader's path, CUDA_HOME, /usr/local/cuda,
/// Python's `nvidia/cublas` wheel). Used for Gemm and MatMul in plain float32 (the default math mode set
/// explicitly, so no TF32 rounding of the inputs), and on float16 and bfloat16 through `cublasGemmEx` with float32
/// computation (sums in float32, rounded once to the output type: reduced-precision reductions disallowed);
/// without it the kernel source's own GEMM runs. `INFERENCE_CUBLAS=0` turns it off.
final class CUBLAS: @unchecked Sendable {
    typealias Status = Int32
    static let operationN: Int32 = 0
    static let operationT: Int32 = 1
    /// CUBLAS_DEFAULT_MATH (float32 GEMMs in float32, no tensor-core TF32 conversion) with
    /// CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION (16: split sums of a float16 GEMM are added in float32, not
    /// in the output type).
    static let defaultMath: Int32 = 0 | 16
    /// cudaDataType values: CUDA_R_32F, CUDA_R_16F, CUDA_R_16BF.
    static let float32Type: Int32 = 0
    static let float16Type: Int32 = 2
    static let bfloat16Type: Int32 = 14
    /// CUBLAS_COMPUTE_32F: products and sums in float32 whatever the storage type.
    static let compute32F: Int32 = 68
    /// CUBLAS_GEMM_DEFAULT: the library's choice of algorithm.
    static let defaultAlgorithm: Int32 = -1

    /// The cudaDataType of a GEMM's element type; nil for a type that runs on the kernel source's GEMM.
    static func dataType(for dtype: DType) -> Int32? {
        switch dtype {
        case .float32: float32Type
        case .float16: float16Type
        case .bfloat16: bfloat16Type
        default: nil
        }
    }

    let library: DynamicLibrary
    let handle: OpaquePointer
    private let cublasSgemm:
        @convention(c) (
            OpaquePointer?, Int32, Int32, Int32, Int32, Int32, UnsafePointer<Float>?, UnsafeRawPointer?, Int32,
            UnsafeRawPointer?, Int32, UnsafePointer<Float>?, UnsafeMutableRawPointer?, Int32
        ) -> Status
    private let cublasSgemmStridedBatched:
        @convention(c) (
            OpaquePointer?, Int32, Int32, Int32, Int32, Int32, UnsafePointer<Float>?, UnsafeRawPointer?, Int32, Int64,
            UnsafeRawPointer?, Int32, Int64, UnsafePointer<Float>?, UnsafeMutableRawPointer?, Int32, Int64, Int32
        ) -> Status
    private let cublasDestroy: @convention(c) (OpaquePointer?) -> Status
    /// cublasGemmEx(handle, transa, transb, m, n, k, alpha, A, Atype, lda, B, Btype, ldb, beta, C, Ctype, ldc,
    /// computeType, algo).
    typealias GemmEx =
        @convention(c) (
            OpaquePointer?, Int32, Int32, Int32, Int32, Int32, UnsafeRawPointer?, UnsafeRawPointer?, Int32, Int32,
            UnsafeRawPointer?, Int32, Int32, UnsafeRawPointer?, UnsafeMutableRawPointer?, Int32, Int32, Int32, Int32
        ) -> Status
    /// cublasGemmStridedBatchedEx: cublasGemmEx with a stride after each operand's leading dimension and the batch
    /// count before computeType.
    typealias GemmStridedBatchedEx =
        @convention(c) (
            OpaquePointer?, Int32, Int32, Int32, Int32, Int32, UnsafeRawPointer?, UnsafeRawPointer?, Int32, Int32,
            Int64,
            UnsafeRawPointer?, Int32, Int32, Int64, UnsafeRawPointer?, UnsafeMutableRawPointer?, Int32, Int32, Int64,
            Int32,
            Int32, Int32
        ) -> Status
    private let cublasGemmEx: GemmEx
    private let cublasGemmStridedBatchedEx: GemmStridedBatchedEx

    static let symbols = [
        "cublasCreate_v2", "cublasDestroy_v2", "cublasSetMathMode", "cublasSetStream_v2", "cublasSgemm_v2",
        "cublasSgemmStridedBatched", "cublasGemmEx", "cublasGemmStridedBatchedEx",
    ]

    /// Opens cuBLAS and creates a handle on the current CUDA context, its calls queued on `stream`; nil when it is
    /// absent, turned off, or
    /// cannot start (the backend then uses its own GEMM kernel).
    static func load(environment: [String: String], stream: OpaquePointer? = nil) -> CUBLAS? {
        guard environment["INFERENCE_CUBLAS"] != "0",
            let library = try? CUDALibrarySearch.open(
                soname: "libcublas.so.12", wheel: "cublas", environment: environment),
            let found = try? library.resolve(symbols)
        else { return nil }
        func fn<T>(_ name: String) -> T { unsafeBitCast(found[name].unsafelyUnwrapped, to: T.self) }
        let create: @convention(c) (UnsafeMutablePointer<OpaquePointer?>) -> Status = fn("cublasCreate_v2")
        let setMathMode: @convention(c) (OpaquePointer?, Int32) -> Status = fn("cublasSetMathMode")
        let setStream: @convention(c) (OpaquePointer?, OpaquePointer?) -> Status = fn("cublasSetStream_v2")
        var handle: OpaquePointer?
        guard create(&handle) == 0, let handle, setMathMode(handle, defaultMath) == 0, setStream(handle, stream) == 0
        else { return nil }
        return CUBLAS(
            library: library, handle: handle, cublasSgemm: fn("cublasSgemm_v2"),
            cublasSgemmStridedBatched: fn("cublasSgemmStridedBatched"), cublasDestroy: fn("cublasDestroy_v2"),
            cublasGemmEx: fn("cublasGemmEx"), cublasGemmStridedBatchedEx: fn("cublasGemmStridedBatchedEx"))
    }

    private init(
        library: DynamicLibrary, handle: OpaquePointer,
        cublasSgemm:
            @escaping @convention(c) (
                OpaquePointer?, Int32, Int32, Int32, Int32, Int32, UnsafePointer<Float>?, UnsafeRawPointer?, Int32,
                UnsafeRawPointer?, Int32, UnsafePointer<Float>?, UnsafeMutableRawPointer?, Int32
            ) -> Status,
        cublasSgemmStridedBatched:
            @escaping @convention(c) (
                OpaquePointer?, Int32, Int32, Int32, Int32, Int32, UnsafePointer<Float>?, UnsafeRawPointer?, Int32,
                Int64,
                UnsafeRawPointer?, Int32, Int64, UnsafePointer<Float>?, UnsafeMutableRawPointer?, Int32, Int64, Int32
            ) -> Status,
        cublasDestroy: @escaping @convention(c) (OpaquePointer?) -> Status, cublasGemmEx: @escaping GemmEx,
        cublasGemmStridedBatchedEx: @escaping GemmStridedBatchedEx
    ) {
        self.cublasGemmEx = cublasGemmEx
        self.cublasGemmStridedBatchedEx = cublasGemmStridedBatchedEx
        self.library = library
        self.handle = handle
        self.cublasSgemm = cublasSgemm
        self.cublasSgemmStridedBatched = cublasSgemmStridedBatched
        self.cublasDestroy = cublasDestroy
    }

    deinit { _ = cublasDestroy(handle) }

    /// Row-major Y[m, n] = alpha · op(A)[m, k] · op(B)[k, n] + beta · Y, as the column-major product
    /// Yᵀ = op(B)ᵀ · op(A)ᵀ; `batch` products with element strides between them (0 shares an operand).
    struct Product {
        var m: Int, n: Int, k: Int
        var transA: Bool, transB: Bool
        var a: UInt64, b: UInt64, y: UInt64
        var alpha: Float, beta: Float
        var batch = 1
        var strideA = 0, strideB = 0, strideY = 0
        /// The element type of A, B and Y (a cudaDataType: `float32Type`, `float16Type` or `bfloat16Type`).
        var dataType = CUBLAS.float32Type
    }

    /// The column-major call that computes a row-major `Product`: cuBLAS's (m, n, k) are the product's
    /// (n, m, k), its first operand is B and its second A, each transposed by the product's flags.
    struct Call: Equatable {
        var opFirst: Int32, opSecond: Int32
        var m: Int32, n: Int32, k: Int32
        var first: UInt64, ldFirst: Int32, strideFirst: Int64
        var second: UInt64, ldSecond: Int32, strideSecond: Int64
        var output: UInt64, ldOutput: Int32, strideOutput: Int64
        var batch: Int32
        var dataType: Int32
    }

    static func call(for p: Product) -> Call {
        Call(
            opFirst: p.transB ? operationT : operationN, opSecond: p.transA ? operationT : operationN,
            m: Int32(p.n), n: Int32(p.m), k: Int32(p.k),
            first: p.b, ldFirst: Int32(p.transB ? p.k : p.n), strideFirst: Int64(p.strideB),
            second: p.a, ldSecond: Int32(p.transA ? p.m : p.k), strideSecond: Int64(p.strideA),
            output: p.y, ldOutput: Int32(p.n), strideOutput: Int64(p.strideY), batch: Int32(p.batch),
            dataType: p.dataType)
    }

    /// One product, its column-major call mapped once (at plan time) by `call(for:)`.
    func run(_ c: Call, alpha: Float, beta: Float) throws {
        var alpha = alpha, beta = beta
        let first = UnsafeRawPointer(bitPattern: UInt(c.first)), second = UnsafeRawPointer(bitPattern: UInt(c.second))
        let output = UnsafeMutableRawPointer(bitPattern: UInt(c.output))
        let status: Status
        if c.dataType != Self.float32Type {
            let type = c.dataType
            status = withUnsafePointer(to: &alpha) { alpha in
                withUnsafePointer(to: &beta) { beta in
                    c.batch == 1
                        ? cublasGemmEx(
                            handle, c.opFirst, c.opSecond, c.m, c.n, c.k, alpha, first, type, c.ldFirst, second, type,
                            c.ldSecond, beta, output, type, c.ldOutput, Self.compute32F, Self.defaultAlgorithm)
                        : cublasGemmStridedBatchedEx(
                            handle, c.opFirst, c.opSecond, c.m, c.n, c.k, alpha, first, type, c.ldFirst, c.strideFirst,
                            second, type, c.ldSecond, c.strideSecond, beta, output, type, c.ldOutput, c.strideOutput,
                            c.batch, Self.compute32F, Self.defaultAlgorithm)
                }
            }
        } else if c.batch == 1 {
            status = cublasSgemm(
                handle, c.opFirst, c.opSecond, c.m, c.n, c.k, &alpha, first, c.ldFirst, second, c.ldSecond, &beta,
                output, c.ldOutput)
        } else {
            status = cublasSgemmStridedBatched(
                handle, c.opFirst, c.opSecond, c.m, c.n, c.k, &alpha, first, c.ldFirst, c.strideFirst, second,
                c.ldSecond, c.strideSecond, &beta, output, c.ldOutput, c.strideOutput, c.batch)
        }
        guard status == 0 else {
            throw RuntimeError.device(
                "cuBLAS \(c.dataType == Self.float32Type ? "sgemm" : "gemmEx") failed with status \(status) "
                    + "(m \(c.n), n \(c.m), k \(c.k))")
        }
    }
}

/// A Gemm or MatMul node run by cuBLAS (after an optional broadcast of Gemm's C into the output).
final class CUBLASKernel: Kernel, DescribedKernel {
    private let blas: CUBLAS
    private let call: CUBLAS.Call
    private let alpha: Float, beta: Float
    private let prologue: (any Kernel)?

    var kernelDescription: String {
        switch call.dataType {
        case CUBLAS.float16Type: "cuBLAS gemmEx (float16, float32 sums)"
        case CUBLAS.bfloat16Type: "cuBLAS gemmEx (bfloat16, float32 sums)"
        default: "cuBLAS sgemm"
        }
    }

    init(blas: CUBLAS, product: CUBLAS.Product, prologue: (any Kernel)?) {
        self.blas = blas
        call = CUBLAS.call(for: product)
        (alpha, beta) = (product.alpha, product.beta)
        self.prologue = prologue
    }

    func run() throws {
        try prologue?.run()
        try blas.run(call, alpha: alpha, beta: beta)
    }
}
