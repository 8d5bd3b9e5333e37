import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// OpenBLAS found at run time, for the GEMM shapes where it beats the project's own kernel: square-ish products
/// of 1024³ multiply-adds and more (measured by benchmarks/run: OpenBLAS 3-8 % ahead there, the packed kernel
/// ahead below). Never required: without it, or with INFERENCE_BLAS=0, every product runs the packed kernel.
///
/// OpenBLAS runs single-threaded inside the backend's own thread pool (each worker computes a column block), so
/// no second pool of spinning threads competes with it. Searched: INFERENCE_BLAS (a library path), the loader's
/// `libopenblas.so.0` (Debian's libopenblas0), then the OpenBLAS numpy ships in the active virtualenv.
final class RuntimeBLAS: @unchecked Sendable {
    /// Products with at least this many multiply-adds (m·n·k) go to OpenBLAS.
    static let minimumVolume = 1 << 30

    typealias SGEMM = (
        _ transA: Bool, _ transB: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float, _ a: UnsafePointer<Float>,
        _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int, _ beta: Float, _ c: UnsafeMutablePointer<Float>,
        _ ldc: Int
    ) -> Void

    /// Products run through OpenBLAS so far in this process (what the tests check the dispatch by).
    static let products = Atomic<Int>(0)

    /// The file it was loaded from.
    let path: String
    let sgemm: SGEMM

    private init(path: String, sgemm: @escaping SGEMM) {
        self.path = path
        self.sgemm = sgemm
    }

    /// The process's OpenBLAS, looked up once (on first use, so start-up never pays for it).
    static let shared: RuntimeBLAS? = load(
        environment: ["INFERENCE_BLAS", "VIRTUAL_ENV"].reduce(into: [:]) { found, name in
            if let value = getenv(name) { found[name] = String(cString: value) }
        })

    /// Whether a product of this size goes to OpenBLAS.
    static func handles(m: Int, n: Int, k: Int) -> Bool {
        let (mn, overflow) = m.multipliedReportingOverflow(by: n)
        return overflow || mn.multipliedReportingOverflow(by: k).overflow || mn * k >= minimumVolume
    }

    // cblas enums.
    private static let rowMajor: Int32 = 101, noTrans: Int32 = 111, trans: Int32 = 112

    static func load(environment: [String: String]) -> RuntimeBLAS? {
        let choice = environment["INFERENCE_BLAS"]
        if choice == "0" { return nil }
        var candidates: [String] = []
        if let choice, !choice.isEmpty { candidates.append(choice) }
        candidates += ["libopenblas.so.0", "libopenblas.so"]
        if let venv = environment["VIRTUAL_ENV"] { candidates += numpyOpenBLAS(in: venv) }
        // Every call runs single-threaded inside the backend's pool: OpenBLAS must not start a pool of its own
        // (its idle threads spin, taking cores from the backend's workers).
        setenv("OPENBLAS_NUM_THREADS", "1", 1)
        for path in candidates {
            guard let handle = dlopen(path, RTLD_NOW | RTLD_LOCAL) else { continue }
            if let blas = bind(handle, path: path) { return blas }
            dlclose(handle)
        }
        return nil
    }

    /// numpy's bundled OpenBLAS (64-bit integers, symbols prefixed `scipy_` and suffixed `64_`).
    static func numpyOpenBLAS(in venv: String) -> [String] {
        var found: [String] = []
        guard let lib = opendir(venv + "/lib") else { return [] }
        defer { closedir(lib) }
        while let entry = readdir(lib) {
            let python = withUnsafeBytes(of: entry.pointee.d_name) {
                String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard python.hasPrefix("python") else { continue }
            let folder = "\(venv)/lib/\(python)/site-packages/numpy.libs"
            guard let libs = opendir(folder) else { continue }
            while let file = readdir(libs) {
                let name = withUnsafeBytes(of: file.pointee.d_name) {
                    String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self)
                }
                if name.hasPrefix("libscipy_openblas") && name.contains(".so") { found.append("\(folder)/\(name)") }
            }
            closedir(libs)
        }
        return found
    }

    private static func bind(_ handle: UnsafeMutableRawPointer, path: String) -> RuntimeBLAS? {
        typealias Threads = @convention(c) (Int32) -> Void
        if let symbol = dlsym(handle, "cblas_sgemm") {
            typealias Call =
                @convention(c) (
                    Int32, Int32, Int32, Int32, Int32, Int32, Float, UnsafePointer<Float>, Int32, UnsafePointer<Float>,
                    Int32, Float, UnsafeMutablePointer<Float>, Int32
                ) -> Void
            let call = unsafeBitCast(symbol, to: Call.self)
            if let threads = dlsym(handle, "openblas_set_num_threads") { unsafeBitCast(threads, to: Threads.self)(1) }
            return RuntimeBLAS(path: path) { ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc in
                call(
                    rowMajor, ta ? trans : noTrans, tb ? trans : noTrans, Int32(m), Int32(n), Int32(k), alpha, a,
                    Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
            }
        }
        if let symbol = dlsym(handle, "scipy_cblas_sgemm64_") {
            typealias Call =
                @convention(c) (
                    Int32, Int32, Int32, Int64, Int64, Int64, Float, UnsafePointer<Float>, Int64, UnsafePointer<Float>,
                    Int64, Float, UnsafeMutablePointer<Float>, Int64
                ) -> Void
            let call = unsafeBitCast(symbol, to: Call.self)
            if let threads = dlsym(handle, "scipy_openblas_set_num_threads64_") {
                unsafeBitCast(threads, to: Threads.self)(1)
            }
            return RuntimeBLAS(path: path) { ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc in
                call(
                    rowMajor, ta ? trans : noTrans, tb ? trans : noTrans, Int64(m), Int64(n), Int64(k), alpha, a,
                    Int64(lda), b, Int64(ldb), beta, c, Int64(ldc))
            }
        }
        return nil
    }
}

/// C = alpha·op(A)·op(B) + beta·C through OpenBLAS, split into column blocks across the backend's threads
/// (OpenBLAS itself single-threaded). Made once per kernel; `run` allocates nothing.
final class BLASGemmTask: ParallelTask, @unchecked Sendable {
    let blas: RuntimeBLAS
    var transA = false, transB = false
    var m = 0, n = 0, k = 0, lda = 0, ldb = 0, ldc = 0
    var alpha: Float = 1, beta: Float = 0
    var a = UnsafePointer<Float>(bitPattern: 64)
    var b = UnsafePointer<Float>(bitPattern: 64)
    var c = UnsafeMutablePointer<Float>(bitPattern: 64)

    init(blas: RuntimeBLAS) { self.blas = blas }

    /// Runs the product; column blocks are multiples of 16 so every part stays vector-aligned.
    func run(_ parallel: ParallelFor) {
        RuntimeBLAS.products.add(1, ordering: .relaxed)
        parallel.run(self, count: (n + 15) / 16)
    }

    override func part(_ index: Int, _ begin: Int, _ end: Int) {
        guard let a, let b, let c else { return }
        let j0 = begin * 16, j1 = min(end * 16, n)
        guard j1 > j0 else { return }
        let bBlock = transB ? b + j0 * ldb : b + j0
        blas.sgemm(transA, transB, m, j1 - j0, k, alpha, a, lda, bBlock, ldb, beta, c + j0, ldc)
    }
}
