import CKernels
import InferenceRuntime
import InferenceTensor

/// Which GEMM body a product uses: `packed` runs the cache-blocked SIMD kernel over B packed into column
/// panels (wide outputs); `nt` takes dot products with rows of an N x K matrix (narrow outputs, GEMV-like
/// shapes such as the default model); `nn` streams rows of a K x N matrix (small non-constant products).
enum GemmForm {
    case packed, nn, nt

    /// Narrow outputs vectorize better as dot products over K.
    static func preferred(n: Int) -> GemmForm { n < 8 ? .nt : .packed }
}

/// Weights laid out once, at plan time, in the form the GEMM body reads.
struct PackedMatrix {
    let storage: HostBuffer
    let form: GemmForm
    let leadingDimension: Int
    /// Number of column panels (packed form).
    let panels: Int

    /// Packs B (K x N when `transposed` is false, N x K when true) into `form`'s layout.
    init(_ b: Tensor, transposed: Bool, form: GemmForm) throws {
        let rows = b.shape[0]
        let cols = b.shape[1]
        let (k, n) = transposed ? (cols, rows) : (rows, cols)
        let source = try b.scalars(as: Float.self)
        switch form {
        case .packed:
            let floats = ck_packed_b_floats(k, n)
            storage = try HostBuffer(bytes: max(floats, 1) * MemoryLayout<Float>.stride)
            let packed = storage.pointer.bindMemory(to: Float.self, capacity: floats)
            ck_pack_b(k, n, source, cols, transposed ? 1 : 0, packed)
            leadingDimension = ck_gemm_panel_width()
            panels = (n + leadingDimension - 1) / leadingDimension
        case .nn, .nt:
            storage = try HostBuffer(bytes: max(k * n, 1) * MemoryLayout<Float>.stride)
            let packed = storage.pointer.bindMemory(to: Float.self, capacity: k * n)
            for p in 0..<k {
                for j in 0..<n {
                    let value = transposed ? source[j * cols + p] : source[p * cols + j]
                    if form == .nn { packed[p * n + j] = value } else { packed[j * k + p] = value }
                }
            }
            leadingDimension = form == .nn ? n : k
            panels = 0
        }
        self.form = form
    }

    var pointer: UnsafePointer<Float> { UnsafePointer(storage.pointer.assumingMemoryBound(to: Float.self)) }
}

/// C = A·B (+ C) over a packed B, then the epilogue (bias, activation), split across threads by column panels
/// (or rows when there are fewer panels than threads) when the product is large enough to pay for the split.
/// `task` is the calling kernel's own (made when it was built), so a split run allocates nothing.
/// `packedGemm` with a row-major B (ldb apart) packed one panel at a time into `scratch[worker]`
/// (k · ck_gemm_panel_width() floats each, one per thread of `parallel`). Its split may divide rows even when
/// there are enough panels (`splitsByRows`): each thread packs its own panels, so rows cost no extra traffic.
/// (Over a shared packed B, as im2col writes it, a row split streams all of B through both threads: SqueezeNet
/// at 2 threads measured 1.30x onnxruntime with panels, 1.56x with rows.)
func rowMajorGemm(
    _ parallel: ParallelFor, task: GemmTask, m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int,
    b: UnsafePointer<Float>, ldb: Int, c: UnsafeMutablePointer<Float>, ldc: Int, panels: Int,
    scratch: [UnsafeMutablePointer<Float>], scratchPanels: Int = 1, epilogue: ck_epilogue? = nil
) {
    guard parallel.threads > 1 && m * n * k >= 1 << 18, scratch.count >= parallel.threads else {
        withEpilogue(epilogue, rowOffset: 0) {
            ck_sgemm_rowmajor_b_epilogue(m, n, k, a, lda, b, ldb, 0, c, ldc, 0, panels, $0, scratch[0], scratchPanels)
        }
        return
    }
    task.set(m: m, n: n, k: k, a: a, lda: lda, c: c, ldc: ldc, panels: panels, accumulate: 0, epilogue: epilogue)
    task.rowMajorB = b
    task.ldb = ldb
    task.scratch = scratch
    task.scratchPanels = scratchPanels
    task.byRows = splitsByRows(m: m, n: n, panels: panels, threads: parallel.threads)
    parallel.run(task, count: task.byRows ? m : panels)
}

func packedGemm(
    _ parallel: ParallelFor, task: GemmTask, m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int,
    packed: UnsafePointer<Float>, accumulate: Bool, c: UnsafeMutablePointer<Float>, ldc: Int, panels: Int,
    epilogue: ck_epilogue? = nil, byRows: Bool? = nil
) {
    task.rowMajorB = nil
    let acc: Int32 = accumulate ? 1 : 0
    // One-row products (recurrent steps, batch-1 layers) stream their weights once: worth splitting from 2^16
    // multiply-adds, where the waiting thread's share already exceeds a wake-up.
    guard parallel.threads > 1 && m * n * k >= (m == 1 ? 1 << 16 : 1 << 18) else {
        withEpilogue(epilogue, rowOffset: 0) {
            ck_sgemm_packed_epilogue(m, n, k, a, lda, packed, acc, c, ldc, 0, panels, $0)
        }
        return
    }
    task.set(m: m, n: n, k: k, a: a, lda: lda, c: c, ldc: ldc, panels: panels, accumulate: acc, epilogue: epilogue)
    task.packed = packed
    task.byRows = panels < parallel.threads || byRows == true
    parallel.run(task, count: task.byRows ? m : panels)
}

/// Whether a split GEMM gives each thread a share of C's rows (every column panel) rather than a share of its
/// column panels: rows when there are fewer panels than threads, or when the panels divide unevenly and the rows
/// balance better. A 14x14 convolution has 196 columns, 7 panels of 32 with AVX-512 (the last 4 wide): by panels
/// one of 2 threads runs 4 full panels while the other runs 2 and a 4-column one; by rows each runs half the rows
/// of all 7. A 7x7 one has 49 columns, a panel of 32 and one of 17: by panels one thread computes 32 columns of
/// every row, by rows 49 columns of half of them. Each row share keeps at least two register tiles of rows.
func splitsByRows(m: Int, n: Int, panels: Int, threads: Int, width: Int = ck_gemm_panel_width()) -> Bool {
    guard threads > 1, panels > 0, width > 0 else { return false }
    if panels < threads { return true }
    // Columns the busiest thread computes (ParallelFor's contiguous shares of the panels, each `width` wide but
    // the last), times the rows it computes them for.
    let parts = min(threads, panels)
    var busiest = 0
    for part in 0..<parts {
        let begin = panels * part / parts, end = panels * (part + 1) / parts
        busiest = max(busiest, min(n, end * width) - min(n, begin * width))
    }
    let (panelCost, panelOverflow) = busiest.multipliedReportingOverflow(by: m)
    let rowShare = (m + threads - 1) / threads
    let (rowCost, overflow) = n.multipliedReportingOverflow(by: rowShare)
    guard !overflow, !panelOverflow, rowShare >= 24, rowCost < Int.max / 21 else { return false }
    // Rows when they balance better by 5%, or within 5% when A (m x k, the weights) is larger than B (k x n):
    // a row split reads half of A and all of B per thread, a panel split all of A and part of B, and a
    // consumer split by channels (depthwise, elementwise) finds its channels on the core that wrote them.
    return rowCost * 20 < panelCost * 19 || (m > n && rowCost * 20 <= panelCost * 21)
}

/// One split GEMM's arguments, set by the caller before each split run.
final class GemmTask: ParallelTask, @unchecked Sendable {
    var m = 0, n = 0, k = 0, lda = 0, ldc = 0, panels = 0
    var a = UnsafePointer<Float>(bitPattern: 64)
    var packed = UnsafePointer<Float>(bitPattern: 64)
    var c = UnsafeMutablePointer<Float>(bitPattern: 64)
    var accumulate: Int32 = 0
    var epilogue: ck_epilogue?
    var byRows = false
    /// Set for a row-major B (ldb apart) whose panels are packed into `scratch[part]` as they are used.
    var rowMajorB: UnsafePointer<Float>?
    var ldb = 0
    var scratch: [UnsafeMutablePointer<Float>] = []
    /// How many panels of B each scratch buffer holds.
    var scratchPanels = 1

    /// The product's sizes and operands for the next run.
    func set(
        m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int, c: UnsafeMutablePointer<Float>, ldc: Int,
        panels: Int, accumulate: Int32, epilogue: ck_epilogue?
    ) {
        (self.m, self.n, self.k, self.a, self.lda) = (m, n, k, a, lda)
        (self.c, self.ldc, self.panels, self.accumulate, self.epilogue) = (c, ldc, panels, accumulate, epilogue)
    }

    override func part(_ index: Int, _ begin: Int, _ end: Int) {
        if let b = rowMajorB, let a, let c, index < scratch.count {
            let (m, n, k, lda, ldb, ldc, panels, acc) = (m, n, k, lda, ldb, ldc, panels, accumulate)
            let buffer = scratch[index]
            if byRows {
                withEpilogue(epilogue, rowOffset: begin) {
                    ck_sgemm_rowmajor_b_epilogue(
                        end - begin, n, k, a + begin * lda, lda, b, ldb, acc, c + begin * ldc, ldc, 0, panels, $0,
                        buffer, scratchPanels)
                }
            } else {
                withEpilogue(epilogue, rowOffset: 0) {
                    ck_sgemm_rowmajor_b_epilogue(
                        m, n, k, a, lda, b, ldb, acc, c, ldc, begin, end, $0, buffer, scratchPanels)
                }
            }
            return
        }
        guard let a, let packed, let c else { return }
        let (m, n, k, lda, ldc, panels, acc) = (m, n, k, lda, ldc, panels, accumulate)
        if byRows {
            withEpilogue(epilogue, rowOffset: begin) {
                ck_sgemm_packed_epilogue(
                    end - begin, n, k, a + begin * lda, lda, packed, acc, c + begin * ldc, ldc, 0, panels, $0)
            }
        } else {
            withEpilogue(epilogue, rowOffset: 0) {
                ck_sgemm_packed_epilogue(m, n, k, a, lda, packed, acc, c, ldc, begin, end, $0)
            }
        }
    }
}

/// Passes the epilogue (row bias moved to the first row of a row split) to the C call, or nil.
@inline(__always)
private func withEpilogue(_ epilogue: ck_epilogue?, rowOffset: Int, _ body: (UnsafePointer<ck_epilogue>?) -> Void) {
    guard var e = epilogue else { return body(nil) }
    if let rows = e.row_bias { e.row_bias = rows + rowOffset }
    withUnsafePointer(to: &e) { body($0) }
}

/// C = alpha·A·B + beta·C in one of the GEMM forms; the packed form needs alpha 1 and beta 0 or 1.
@inline(__always)
func sgemm(
    _ form: GemmForm, m: Int, n: Int, k: Int, alpha: Float, a: UnsafePointer<Float>, lda: Int,
    b: UnsafePointer<Float>, ldb: Int, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, panels: Int = 0,
    parallel: ParallelFor = .serial, task: GemmTask? = nil
) {
    switch form {
    case .packed:
        if let task {
            packedGemm(
                parallel, task: task, m: m, n: n, k: k, a: a, lda: lda, packed: b, accumulate: beta != 0, c: c,
                ldc: ldc, panels: panels)
        } else {
            ck_sgemm_packed(m, n, k, a, lda, b, beta != 0 ? 1 : 0, c, ldc, 0, panels)
        }
    case .nn: ck_sgemm_nn(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
    case .nt: ck_sgemm_nt(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
    }
}

/// ONNX Gemm: Y = alpha * A' * B' + beta * C, with A' = A or Aᵀ, B' = B or Bᵀ, and C broadcast to (M, N).
final class GemmKernel: Kernel {
    private let m: Int, n: Int, k: Int
    private let alpha: Float, beta: Float
    private let a: UnsafePointer<Float>
    private let transposeA: Bool
    private let aScratch: UnsafeMutablePointer<Float>?
    private let aScratchBuffer: HostBuffer?
    private let aColumns: Int
    private let b: UnsafePointer<Float>
    private let bForm: GemmForm
    private let ldb: Int
    private let packed: PackedMatrix?
    private let c: UnsafePointer<Float>?
    private let cRows: Int, cColumns: Int
    private let y: UnsafeMutablePointer<Float>
    private let parallel: ParallelFor
    private let gemmTask = GemmTask()
    private let activation: FusedActivation
    /// C as a per-column bias added in the packed GEMM's store (C of shape [N] or [1, N], beta 1).
    private let columnBias: UnsafePointer<Float>?
    /// OpenBLAS for products of `RuntimeBLAS.minimumVolume` and more, with A and B as given.
    private let blasTask: BLASGemmTask?

    init(node: BoundNode, parallel: ParallelFor) throws {
        self.parallel = parallel
        activation = try node.fusedActivation()
        let name = node.step.node.displayName
        guard node.inputs.count >= 2, let aValue = node.inputs[0], let bValue = node.inputs[1],
            let out = node.outputs.first
        else {
            throw RuntimeError.invalidNode(node: name, detail: "Gemm needs inputs A and B and one output")
        }
        let attributes = node.step.node
        transposeA = try attributes.int("transA", default: 0) != 0
        let transposeB = try attributes.int("transB", default: 0) != 0
        alpha = try attributes.float("alpha", default: 1)
        beta = try attributes.float("beta", default: 1)
        m = out.type.shape[0]
        n = out.type.shape[1]
        k = transposeA ? aValue.type.shape[0] : aValue.type.shape[1]
        aColumns = aValue.type.shape[1]
        a = UnsafePointer(try aValue.slice.floatPointer())
        let scratch = transposeA ? try HostBuffer(bytes: m * k * MemoryLayout<Float>.stride) : nil
        aScratchBuffer = scratch
        aScratch = scratch?.pointer.bindMemory(to: Float.self, capacity: m * k)
        y = try out.slice.floatPointer()

        let blas = n >= 16 && RuntimeBLAS.handles(m: m, n: n, k: k) ? RuntimeBLAS.shared : nil
        if let constant = bValue.constant, blas == nil {
            var form = GemmForm.preferred(n: n)
            if form == .packed && alpha != 1 { form = .nn }
            let packed = try PackedMatrix(constant, transposed: transposeB, form: form)
            self.packed = packed
            b = packed.pointer
            bForm = form
            ldb = packed.leadingDimension
        } else {
            packed = nil
            b = UnsafePointer(try bValue.slice.floatPointer())
            bForm = transposeB ? .nt : .nn
            ldb = bValue.type.shape[1]
        }

        if node.inputs.count > 2, let cValue = node.inputs[2], beta != 0 {
            c = UnsafePointer(try cValue.slice.floatPointer())
            let dims = cValue.type.shape.dimensions
            cRows = dims.count == 2 ? dims[0] : 1
            cColumns = dims.last ?? 1
        } else {
            c = nil
            cRows = 0
            cColumns = 0
        }
        columnBias = beta == 1 && cRows == 1 && cColumns == n ? c : nil
        if let blas {
            // B as given: OpenBLAS reads it in place, so it was not packed above.
            let task = BLASGemmTask(blas: blas)
            (task.transA, task.transB, task.m, task.n, task.k) = (transposeA, transposeB, m, n, k)
            (task.alpha, task.a, task.lda, task.c, task.ldc) = (alpha, a, aColumns, y, n)
            task.b = UnsafePointer(try bValue.slice.floatPointer())
            task.ldb = bValue.type.shape[1]
            blasTask = task
        } else {
            blasTask = nil
        }
    }

    func run() throws {
        if let blasTask {
            blasTask.beta = fillWithC()
            blasTask.run(parallel)
            activation.apply(y, count: m * n)
            return
        }
        var aPointer = a
        if let t = aScratch {
            // Aᵀ is K x M in memory; lay it out as M x K for the row-major body.
            for p in 0..<k { for i in 0..<m { t[i * k + p] = a[p * aColumns + i] } }
            aPointer = UnsafePointer(t)
        }
        // Dot-product GEMMs (.nt) take the bias as β·C inside the sum instead, rounded once with it.
        if (columnBias != nil && bForm != .nt) || c == nil {
            var epilogue = activation.epilogue(rowBias: nil, columnBias: columnBias)
            if bForm == .packed {
                // Bias and activation in the GEMM's store.
                packedGemm(
                    parallel, task: gemmTask, m: m, n: n, k: k, a: aPointer, lda: k, packed: b, accumulate: false, c: y,
                    ldc: n,
                    panels: packed?.panels ?? 0, epilogue: epilogue)
            } else {
                sgemm(
                    bForm, m: m, n: n, k: k, alpha: alpha, a: aPointer, lda: k, b: b, ldb: ldb, beta: 0, c: y, ldc: n)
                if columnBias != nil || !activation.isNone { ck_apply_epilogue(&epilogue, y, n, m, n) }
            }
            withExtendedLifetime(packed) {}
            return
        }
        let gemmBeta = fillWithC()
        sgemm(
            bForm, m: m, n: n, k: k, alpha: alpha, a: aPointer, lda: k, b: b, ldb: ldb, beta: gemmBeta, c: y, ldc: n,
            panels: packed?.panels ?? 0, parallel: parallel, task: gemmTask)
        activation.apply(y, count: m * n)
        withExtendedLifetime(packed) {}
    }

    /// Y = beta * broadcast(C) for the product to accumulate into: returns the GEMM's beta (1, or 0 without C).
    private func fillWithC() -> Float {
        var gemmBeta: Float = 0
        if let c {
            if cRows == 1 && cColumns == 1 {
                y.update(repeating: beta * c[0], count: m * n)
            } else {
                for i in 0..<m {
                    let row = c + (cRows == 1 ? 0 : i) * cColumns
                    let out = y + i * n
                    if cColumns == 1 {
                        let v = beta * row[0]
                        for j in 0..<n { out[j] = v }
                    } else if beta == 1 {
                        out.update(from: row, count: n)
                    } else {
                        for j in 0..<n { out[j] = beta * row[j] }
                    }
                }
            }
            gemmBeta = 1
        }
        return gemmBeta
    }
}

/// ONNX MatMul: numpy.matmul semantics, batch dimensions broadcast, 1-D operands promoted and squeezed.
final class MatMulKernel: Kernel {
    private let m: Int, n: Int, k: Int
    private let a: UnsafePointer<Float>
    private let b: UnsafePointer<Float>
    private let y: UnsafeMutablePointer<Float>
    /// Element offsets of A, B and Y for each product in the batch.
    private let batches: [(a: Int, b: Int, y: Int)]
    private let parallel: ParallelFor
    private let gemmTask = GemmTask()

    /// A bias along the last axis (fused from a following Add) and an activation, applied in the store.
    private let columnBias: UnsafePointer<Float>?
    private let activation: FusedActivation

    init(node: BoundNode, parallel: ParallelFor) throws {
        self.parallel = parallel
        guard node.inputs.count == 2 || node.inputs.count == 3, let aValue = node.inputs[0],
            let bValue = node.inputs[1], let out = node.outputs.first
        else {
            throw RuntimeError.invalidNode(
                node: node.step.node.displayName, detail: "MatMul needs two inputs and one output")
        }
        activation = try node.fusedActivation()
        columnBias = try node.optionalInput(2).map { UnsafePointer(try $0.pointer(Float.self)) }
        let aShape = aValue.type.shape.rank == 1 ? Shape([1, aValue.type.shape[0]]) : aValue.type.shape
        let bShape = bValue.type.shape.rank == 1 ? Shape([bValue.type.shape[0], 1]) : bValue.type.shape
        m = aShape[aShape.rank - 2]
        k = aShape[aShape.rank - 1]
        n = bShape[bShape.rank - 1]
        a = UnsafePointer(try aValue.slice.floatPointer())
        b = UnsafePointer(try bValue.slice.floatPointer())
        y = try out.slice.floatPointer()

        let aBatch = Array(aShape.dimensions.dropLast(2))
        let bBatch = Array(bShape.dimensions.dropLast(2))
        let rank = max(aBatch.count, bBatch.count)
        let pa = [Int](repeating: 1, count: rank - aBatch.count) + aBatch
        let pb = [Int](repeating: 1, count: rank - bBatch.count) + bBatch
        let dims = zip(pa, pb).map { max($0, $1) }
        let count = dims.reduce(1, *)
        var batches: [(a: Int, b: Int, y: Int)] = []
        batches.reserveCapacity(count)
        for flat in 0..<count {
            var rest = flat
            var ia = 0, ib = 0, strideA = 1, strideB = 1
            for axis in stride(from: rank - 1, through: 0, by: -1) {
                let i = rest % dims[axis]
                rest /= dims[axis]
                if pa[axis] != 1 { ia += i * strideA }
                if pb[axis] != 1 { ib += i * strideB }
                strideA *= pa[axis]
                strideB *= pb[axis]
            }
            batches.append((ia * m * k, ib * k * n, flat * m * n))
        }
        // When B is shared by every batch and A is contiguous, the batch folds into one taller product.
        if batches.count > 1 && bBatch.reduce(1, *) == 1 {
            self.batches = [(0, 0, 0)]
            self.foldedM = m * count
        } else {
            self.batches = batches
            self.foldedM = m
        }
        try preparePacking(constant: bValue.constant, bIs2D: bShape.rank == 2)
    }

    private let foldedM: Int
    /// OpenBLAS for products of `RuntimeBLAS.minimumVolume` and more (B as given, no packing).
    private var blasTask: BLASGemmTask?
    /// B packed once at plan time (a constant 2-D B), or scratch for packing B per product at run time.
    private var packedB: PackedMatrix?
    private var scratch: HostBuffer?
    private var panels = 0

    private func preparePacking(constant: Tensor?, bIs2D: Bool) throws {
        guard n >= 8 else { return }
        // The size first: looking at `shared` opens OpenBLAS.
        if n >= 16, RuntimeBLAS.handles(m: foldedM, n: n, k: k), let blas = RuntimeBLAS.shared {
            let task = BLASGemmTask(blas: blas)
            (task.m, task.n, task.k, task.lda, task.ldb, task.ldc) = (foldedM, n, k, k, n, n)
            blasTask = task
            return
        }
        if let constant, bIs2D {
            packedB = try PackedMatrix(constant, transposed: false, form: .packed)
            panels = packedB?.panels ?? 0
        } else if m * n * k >= 32 * 32 * 32 {
            scratch = try HostBuffer(bytes: max(ck_packed_b_floats(k, n), 1) * MemoryLayout<Float>.stride)
            panels = (n + ck_gemm_panel_width() - 1) / ck_gemm_panel_width()
        }
    }

    func run() throws {
        if let blasTask {
            for batch in batches {
                (blasTask.a, blasTask.b, blasTask.c) = (a + batch.a, b + batch.b, y + batch.y)
                blasTask.run(parallel)
            }
            applyEpilogue()
            return
        }
        if let packedB {
            packedGemm(
                parallel, task: gemmTask, m: foldedM, n: n, k: k, a: a, lda: k, packed: packedB.pointer,
                accumulate: false, c: y,
                ldc: n, panels: panels,
                epilogue: activation.epilogue(rowBias: nil, columnBias: columnBias))
            return
        }
        defer { applyEpilogue() }
        if let scratch {
            let packed = scratch.pointer.assumingMemoryBound(to: Float.self)
            var lastB = -1
            for batch in batches {
                if batch.b != lastB {
                    ck_pack_b(k, n, b + batch.b, n, 0, packed)
                    lastB = batch.b
                }
                packedGemm(
                    parallel, task: gemmTask, m: foldedM, n: n, k: k, a: a + batch.a, lda: k,
                    packed: UnsafePointer(packed),
                    accumulate: false, c: y + batch.y, ldc: n, panels: panels)
            }
            return
        }
        let form = GemmForm.nn
        for batch in batches {
            sgemm(
                form, m: foldedM, n: n, k: k, alpha: 1, a: a + batch.a, lda: k, b: b + batch.b, ldb: n, beta: 0,
                c: y + batch.y, ldc: n)
        }
    }

    /// Bias and activation for the paths without a packed constant B.
    private func applyEpilogue() {
        guard columnBias != nil || !activation.isNone else { return }
        let rows = batches.count * foldedM
        var epilogue = activation.epilogue(rowBias: nil, columnBias: columnBias)
        ck_apply_epilogue(&epilogue, y, n, rows, n)
    }
}
