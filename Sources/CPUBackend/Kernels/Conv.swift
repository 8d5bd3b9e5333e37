import CKernels
import InferenceGraph
import InferenceRuntime
import InferenceTensor

/// Spatial index tables shared by convolution and pooling: for each (kernel position, output position)
/// the input spatial offset, -1 inside the padding, -2 beyond it (ceil_mode windows). Only the window-by-window
/// paths read the offsets (3-D convolutions, pooling with indices or other than 2-D, LpPool); the 2-D paths take the
/// counts alone (`withOffsets: false`): a 3x3 layer's table over 112x112 was 0.9 MB built at plan time and never read.
struct WindowTable {
    let kernelCount: Int
    let outputCount: Int
    let inputCount: Int
    /// Empty unless made `withOffsets`.
    let offsets: [Int]

    /// The table's entries are capped: a pooling window is sized by attributes alone (a MaxPool of kernel 2^31 - 1
    /// over a 4-wide row asked for 64 GiB and trapped), so an oversized table is an error naming the node.
    static let maximumEntries = 1 << 28

    init(_ g: ConvGeometry, node: BoundNode, withOffsets: Bool = true) throws {
        func product(_ values: [Int]) -> Int? {
            var result = 1
            for value in values {
                let (next, overflow) = result.multipliedReportingOverflow(by: value)
                guard !overflow else { return nil }
                result = next
            }
            return result
        }
        guard let kernelCount = product(g.kernel), let outputCount = product(g.output),
            let inputCount = product(g.input)
        else { throw node.fail("the window \(g.kernel) over \(g.input) is too large") }
        (self.kernelCount, self.outputCount, self.inputCount) = (kernelCount, outputCount, inputCount)
        guard withOffsets else {
            offsets = []
            return
        }
        let entries = try Self.entries(kernelCount, outputCount, node: node)
        let rank = g.input.count
        let inStrides = rowMajorStrides(g.input)
        var offsets = [Int](repeating: -1, count: entries)
        forEachIndex(g.kernel) { k, kFlat in
            forEachIndex(g.output) { o, oFlat in
                var offset = 0
                var state = 0  // 0 inside, -1 padding, -2 beyond the padded input
                for axis in 0..<rank {
                    let i = o[axis] * g.strides[axis] - g.padsBegin[axis] + k[axis] * g.dilations[axis]
                    if i < 0 || i >= g.input[axis] {
                        if i >= g.input[axis] + g.padsEnd[axis] { state = -2 } else if state == 0 { state = -1 }
                    } else {
                        offset += i * inStrides[axis]
                    }
                }
                offsets[kFlat * outputCount + oFlat] = state == 0 ? offset : state
            }
        }
        self.offsets = offsets
    }

    /// Throws where (kernel positions x outputs) exceeds the cap: pooling checks it with or without offsets.
    func checkEntries(_ node: BoundNode) throws { _ = try Self.entries(kernelCount, outputCount, node: node) }

    private static func entries(_ kernelCount: Int, _ outputCount: Int, node: BoundNode) throws -> Int {
        let (entries, overflow) = kernelCount.multipliedReportingOverflow(by: outputCount)
        guard !overflow, entries <= maximumEntries else {
            throw node.fail(
                "the window (\(kernelCount) positions) over \(outputCount) outputs is too large: at most "
                    + "\(maximumEntries) window positions in all")
        }
        return entries
    }
}

/// Conv as im2col + GEMM per image and group.
final class ConvKernel: Kernel {
    private let x: UnsafePointer<Float>, w: UnsafePointer<Float>, bias: UnsafePointer<Float>?
    private let y: UnsafeMutablePointer<Float>
    private let batch: Int, groups: Int, channelsPerGroup: Int, filtersPerGroup: Int
    private let table: WindowTable
    private let inChannels: Int, outChannels: Int
    private let parallel: ParallelFor
    private let panelWidth: Int, panels: Int
    /// Set for 2-D convolutions: im2col rows are then built with direct strided loops, not the offset table.
    private let geometry2D: ConvGeometry?
    /// Per worker: the packed im2col matrix.
    private let columns: [HostBuffer]
    /// Pointwise (1x1, stride 1, unpadded) at batch 1: the GEMM reads the input rows in place (`rowMajorGemm`)
    /// with one panel buffer per thread.
    private let pointwise: Bool
    private let panelBuffers: [HostBuffer]
    private let panelScratch: [UnsafeMutablePointer<Float>]
    private let scratchPanels: Int
    /// Pointwise convolutions of small planes (7x7, 14x14) whose last column panel would be mostly padding run
    /// transposed: Yᵀ = Xᵀ·Wᵀ with the weights packed once as B (every panel full), the plane transposed in and
    /// the result transposed back (both small).
    private let transposed: (weights: PackedMatrix, xt: HostBuffer, yt: HostBuffer)?
    /// Whether planning passes the input, the output, channels last (`ChannelsLastChains`, pointwise layers beside
    /// a depthwise one): the transposed form then reads Xᵀ, or writes Yᵀ, in place, without that transpose.
    private let channelsLast: (input: Bool, output: Bool)
    /// For a layer passed channels last, whether its transposed GEMM splits positions (rows) across threads,
    /// decided once here; nil leaves the split to `packedGemm`.
    private let chainSplitsRows: Bool?
    private let transposeTask: TransposeTask?
    private let activation: FusedActivation
    /// Split-run state, made once: the GEMM's arguments, the im2col rows' image, and the per-image split.
    private let gemmTask = GemmTask()
    private let im2colTask = Im2colTask()
    private var imagesTask: ClosureTask?
    /// Large im2col matrices (beyond L2) at batch 1 are built a chunk of `chunkPanels` column panels at a time into
    /// a per-thread buffer that stays in cache while the GEMM multiplies it, instead of whole (written to memory and
    /// read back: UNet's 32 -> 64 stride-2 layer at 128x128 has a 4.7 MB matrix). 0 when the matrix is built whole.
    private let chunkPanels: Int
    private let chunkBuffers: [HostBuffer]
    private var chunkTask: ClosureTask?
    /// A 1x1 image's matrix-vector product split by filters (squeeze-and-excitation layers with large weights: on
    /// one thread MobileNetV3's 672 -> 168 and 168 -> 672 ran slower at two threads than at one).
    private var gemvTask: ClosureTask?
    /// The image and group a chunked run works on, set before each split run.
    private var chunkGroup = (
        x: UnsafePointer<Float>(bitPattern: 64), y: UnsafeMutablePointer<Float>(bitPattern: 64), group: 0
    )

    init(node: BoundNode, parallel: ParallelFor) throws {
        self.parallel = parallel
        activation = try node.fusedActivation()
        let xv = try node.input(0), wv = try node.input(1), yv = try node.output(0)
        let geometry = try node.parameters(ConvGeometry.self)
        groups = try node.attributes.int("group", default: 1)
        batch = xv.shape[0]
        inChannels = xv.shape[1]
        outChannels = wv.shape[0]
        channelsPerGroup = inChannels / groups
        filtersPerGroup = outChannels / groups
        table = try WindowTable(geometry, node: node, withOffsets: geometry.input.count != 2)
        geometry2D = geometry.input.count == 2 ? geometry : nil
        // The im2col matrix is written straight into the packed-panel layout the GEMM kernel reads. Images
        // of a batch run on separate workers, each with its own buffers.
        let rows = channelsPerGroup * table.kernelCount
        let outputCount = table.outputCount
        let workers = batch > 1 ? min(parallel.threads, batch) : 1
        pointwise =
            geometry.input.count == 2 && geometry.kernel == [1, 1] && geometry.strides == [1, 1]
            && geometry.padsBegin == [0, 0] && geometry.padsEnd == [0, 0] && workers == 1
        let nr = ck_gemm_panel_width()
        let matrixBytes = ck_packed_b_floats(rows, outputCount).multipliedReportingOverflow(by: 4)
        let panelBytes = rows.multipliedReportingOverflow(by: nr * 4)
        let allPanels = (outputCount + nr - 1) / nr
        // Chunks of up to 256 KB (in L2 beside the weights), one panel at least; only where every thread gets one,
        // and only for weights of up to 1 MB (L2), which each chunk reads again (ResNet-50's last stride-2 3x3, 9.4 MB
        // of weights over four panels of a 7x7 plane, read them from memory four times: 3.4 ms, 2.9 whole).
        let weightBytes = filtersPerGroup.multipliedReportingOverflow(by: rows * 4)
        let chunk =
            geometry.input.count == 2 && !pointwise && workers == 1 && !matrixBytes.overflow
                && matrixBytes.partialValue > 1 << 20 && !panelBytes.overflow && panelBytes.partialValue <= 1 << 22
                && !weightBytes.overflow && weightBytes.partialValue <= 1 << 20
            ? max(1, min(allPanels, (1 << 18) / max(panelBytes.partialValue, 1))) : 0
        chunkPanels = chunk > 0 && (allPanels + chunk - 1) / chunk >= parallel.threads ? chunk : 0
        chunkBuffers = try (0..<(chunkPanels > 0 ? max(parallel.threads, 1) : 0)).map { _ in
            try HostBuffer(bytes: max(rows * nr * chunk, 1) * MemoryLayout<Float>.stride)
        }
        // Pointwise convolutions need only one packed panel of their input per thread; the rest the whole image.
        columns = try (0..<(pointwise || chunkPanels > 0 ? 0 : workers)).map { _ in
            try HostBuffer(bytes: max(ck_packed_b_floats(rows, outputCount), 1) * MemoryLayout<Float>.stride)
        }
        // Up to 256 KB of panels at a time (see ck_sgemm_rowmajor_b_epilogue).
        let groupPanels = pointwise ? ck_sgemm_rowmajor_b_group(filtersPerGroup, outputCount, rows) : 1
        scratchPanels = groupPanels
        panelBuffers = try (0..<(pointwise ? max(parallel.threads, 1) : 0)).map { _ in
            try HostBuffer(bytes: max(rows * nr * groupPanels, 1) * MemoryLayout<Float>.stride)
        }
        panelScratch = panelBuffers.map { $0.pointer.bindMemory(to: Float.self, capacity: max(rows, 1)) }
        panelWidth = ck_gemm_panel_width()
        panels = (table.outputCount + panelWidth - 1) / panelWidth
        let padding = panels * panelWidth - table.outputCount
        // Only for many filters (expansion layers): with few (the 160-filter projections) the transposed product
        // has too few panels to split evenly across threads, and measured slower. On one thread it serves those
        // too where the plane leaves an eighth of its panels' columns empty (7x7: 49 of 64 columns): MobileNetV2's
        // 960 -> 160 at 7x7 0.176 -> 0.147 ms, 576 -> 160 0.107 -> 0.090 (AVX2).
        let fewFilters = parallel.threads == 1 && outChannels >= 128 && 8 * padding > panels * panelWidth
        channelsLast = (
            try node.attributes.int(FusionRules.channelsLastInputAttribute, default: 0) != 0,
            try node.attributes.int(FusionRules.channelsLastOutputAttribute, default: 0) != 0
        )
        let layoutMarked = channelsLast.input || channelsLast.output
        if layoutMarked {
            // Planning marks only 1x1 layers of one image with plan-time float32 weights; a model that names the
            // attributes on others is refused rather than read in the wrong layout.
            guard pointwise, groups == 1, batch == 1, wv.constant?.dtype == .float32 else {
                throw node.fail(
                    "a channels-last convolution must be 1x1, stride 1, unpadded and ungrouped over one image with "
                        + "constant float32 weights; remove the \(FusionRules.channelsLastInputAttribute) and "
                        + "\(FusionRules.channelsLastOutputAttribute) attributes")
            }
        }
        if let weights = wv.constant, weights.dtype == .float32,
            layoutMarked
                || (pointwise && groups == 1 && table.outputCount > 1 && table.outputCount < 4 * panelWidth
                    && 4 * padding > panelWidth && (outChannels >= 256 || fewFilters))
        {
            let matrix = try weights.reshaped([outChannels, inChannels])
            // Each side passed channels last needs no buffer for its transpose.
            transposed = (
                try PackedMatrix(matrix, transposed: true, form: .packed),
                try HostBuffer(
                    bytes: (channelsLast.input ? 1 : table.outputCount * inChannels) * MemoryLayout<Float>.stride),
                try HostBuffer(
                    bytes: (channelsLast.output ? 1 : table.outputCount * outChannels) * MemoryLayout<Float>.stride)
            )
        } else {
            transposed = nil
        }
        transposeTask = transposed != nil && parallel.threads > 1 ? TransposeTask() : nil
        let (positions, filters, threads) = (table.outputCount, outChannels, parallel.threads)
        chainSplitsRows =
            layoutMarked
            ? transposed.map { splitsByRows(m: positions, n: filters, panels: $0.weights.panels, threads: threads) }
            : nil
        x = UnsafePointer(try xv.pointer(Float.self))
        w = UnsafePointer(try wv.pointer(Float.self))
        bias = try node.optionalInput(2).map { UnsafePointer(try $0.pointer(Float.self)) }
        y = try yv.pointer(Float.self)
        if columns.count > 1 {
            imagesTask = ClosureTask { [unowned self] part, begin, end in
                for n in begin..<end { convolve(image: n, column: columns[part], parallel: .serial) }
            }
        }
        if chunkPanels > 0 {
            chunkTask = ClosureTask { [unowned self] part, begin, end in chunks(begin..<end, part: part) }
        }
        let (weightCount, overflow) = outChannels.multipliedReportingOverflow(by: inChannels)
        if pointwise && table.outputCount == 1 && groups == 1 && batch == 1 && parallel.threads > 1 && !overflow
            && weightCount >= 1 << 16
        {
            gemvTask = ClosureTask { [unowned self] _, begin, end in gemv(begin..<end) }
        }
    }

    /// Filters `range` of a 1x1 image (one image, one group), then their bias and activation.
    private func gemv(_ range: Range<Int>) {
        guard !range.isEmpty else { return }
        ck_gemv_rows(range.lowerBound, range.upperBound, inChannels, w, inChannels, x, y)
        var epilogue = activation.epilogue(rowBias: bias.map { $0 + range.lowerBound }, columnBias: nil)
        ck_apply_epilogue(&epilogue, y + range.lowerBound, 1, range.count, 1)
    }

    /// Chunks `range` of the current image and group (`chunkGroup`): im2col of the chunk's panels into this part's
    /// buffer, then the GEMM over them with the bias and activation.
    private func chunks(_ range: Range<Int>, part: Int) {
        guard let g2 = geometry2D, part < chunkBuffers.count, let xg = chunkGroup.x, let yg = chunkGroup.y else {
            return
        }
        let buffer = chunkBuffers[part].pointer.assumingMemoryBound(to: Float.self)
        let rows = channelsPerGroup * table.kernelCount, outCount = table.outputCount, g = chunkGroup.group
        var epilogue = activation.epilogue(rowBias: bias.map { $0 + g * filtersPerGroup }, columnBias: nil)
        for unit in range {
            let p0 = unit * chunkPanels, p1 = min(panels, p0 + chunkPanels)
            ck_im2col_panel_range_2d(
                xg, g2.input[0], g2.input[1], g2.kernel[0], g2.kernel[1], g2.strides[0], g2.strides[1], g2.dilations[0],
                g2.dilations[1], g2.padsBegin[0], g2.padsBegin[1], g2.output[0], g2.output[1], buffer, panelWidth, rows,
                p0, p1)
            let n = min(outCount, p1 * panelWidth) - p0 * panelWidth
            ck_sgemm_packed_epilogue(
                filtersPerGroup, n, rows, w + g * filtersPerGroup * rows, rows, buffer, 0, yg + p0 * panelWidth,
                outCount, 0, p1 - p0, &epilogue)
        }
    }

    func run() throws {
        if columns.count > 1, let imagesTask {
            parallel.run(imagesTask, count: batch)
        } else {
            for n in 0..<batch { convolve(image: n, column: columns.first, parallel: parallel) }
        }
    }

    /// y = xᵀ for a row-major `rows` x `columns` x, output rows [begin, end) (rows of y: columns of x).
    fileprivate static func transpose(
        _ x: UnsafePointer<Float>, rows: Int, columns: Int, into y: UnsafeMutablePointer<Float>,
        outputRows: Range<Int>? = nil
    ) {
        let range = outputRows ?? 0..<columns
        ck_transpose_u32(
            UnsafeRawPointer(x).assumingMemoryBound(to: UInt32.self),
            UnsafeMutableRawPointer(y).assumingMemoryBound(to: UInt32.self), rows, columns, range.lowerBound,
            range.upperBound)
    }

    /// `transpose` split across `parallel`'s threads by output rows, for the transposed 1x1 form: serial, its
    /// two transposes made that form 1.6x slower at two threads than at one (MobileNetV2's 960 -> 160 at 7x7).
    private func transpose(
        _ x: UnsafePointer<Float>, rows: Int, columns: Int, into y: UnsafeMutablePointer<Float>, parallel: ParallelFor
    ) {
        guard parallel.threads > 1, rows * columns >= 1 << 14, let transposeTask else {
            Self.transpose(x, rows: rows, columns: columns, into: y)
            return
        }
        transposeTask.set(x: x, rows: rows, columns: columns, y: y)
        parallel.run(transposeTask, count: columns)
    }

    /// Image `n`; `column` is the packed im2col buffer (nil for pointwise convolutions, which need none).
    private func convolve(image n: Int, column: HostBuffer?, parallel: ParallelFor) {
        let k = table.kernelCount, outCount = table.outputCount, inCount = table.inputCount
        // Chunked im2col uses its per-thread buffers; `col` is then unused.
        guard
            let col = column?.pointer.assumingMemoryBound(to: Float.self) ?? (pointwise ? panelScratch.first : nil)
                ?? chunkBuffers.first?.pointer.assumingMemoryBound(to: Float.self)
        else { return }
        let rows = channelsPerGroup * k
        let nr = panelWidth
        let panelStride = rows * nr
        for g in 0..<groups {
            let xg = x + (n * inChannels + g * channelsPerGroup) * inCount
            // im2col into panels: element (row r, output o) goes to panel o / nr, row r, lane o % nr.
            let splitter = rows * outCount >= 1 << 16 ? parallel : .serial
            if pointwise && outCount == 1 {
                // A 1x1 image (squeeze-and-excitation layers): a matrix-vector product, then bias and activation
                // (a GEMM would pad the single column to a whole panel of work).
                if let gemvTask, parallel.threads > 1 {
                    parallel.run(gemvTask, count: filtersPerGroup)
                    continue
                }
                let yg = y + (n * outChannels + g * filtersPerGroup)
                ck_gemv_rows(0, filtersPerGroup, rows, w + g * filtersPerGroup * rows, rows, xg, yg)
                var epilogue = activation.epilogue(rowBias: bias.map { $0 + g * filtersPerGroup }, columnBias: nil)
                ck_apply_epilogue(&epilogue, yg, 1, filtersPerGroup, 1)
                continue
            }
            if let transposed {
                let (xt, yt) = (
                    transposed.xt.pointer.assumingMemoryBound(to: Float.self),
                    transposed.yt.pointer.assumingMemoryBound(to: Float.self)
                )
                if !channelsLast.input { transpose(xg, rows: rows, columns: outCount, into: xt, parallel: parallel) }
                let out = channelsLast.output ? y + n * outChannels * outCount : yt
                // A chain's layers split by positions (rows here) where that balances: the depthwise layer beside
                // it splits its output rows, so each thread finds its positions in its own cache.
                packedGemm(
                    parallel, task: gemmTask, m: outCount, n: filtersPerGroup, k: rows,
                    a: channelsLast.input ? xg : UnsafePointer(xt), lda: rows, packed: transposed.weights.pointer,
                    accumulate: false, c: out, ldc: filtersPerGroup, panels: transposed.weights.panels,
                    epilogue: activation.epilogue(rowBias: nil, columnBias: bias), byRows: chainSplitsRows)
                if !channelsLast.output {
                    transpose(
                        yt, rows: outCount, columns: filtersPerGroup, into: y + n * outChannels * outCount,
                        parallel: parallel)
                }
                continue
            }
            if pointwise {
                // A pointwise (1x1) convolution's columns are its input rows: the GEMM reads them in place,
                // packing one panel at a time into a per-thread buffer that stays in cache.
                let yg = y + (n * outChannels + g * filtersPerGroup) * outCount
                rowMajorGemm(
                    parallel, task: gemmTask, m: filtersPerGroup, n: outCount, k: rows,
                    a: w + g * filtersPerGroup * rows, lda: rows, b: xg, ldb: inCount, c: yg, ldc: outCount,
                    panels: panels, scratch: panelScratch, scratchPanels: scratchPanels,
                    epilogue: activation.epilogue(rowBias: bias.map { $0 + g * filtersPerGroup }, columnBias: nil))
                continue
            } else if chunkPanels > 0, let chunkTask {
                chunkGroup = (xg, y + (n * outChannels + g * filtersPerGroup) * outCount, g)
                parallel.run(chunkTask, count: (panels + chunkPanels - 1) / chunkPanels)
                continue
            } else if let g2 = geometry2D {
                if splitter.threads > 1 {
                    // Only the calling thread reaches here (images split across workers pass a serial
                    // splitter), so the one shared task is safe to fill.
                    im2colTask.set(x: xg, geometry: g2, column: col, panelWidth: nr, rows: rows)
                    splitter.run(im2colTask, count: rows)
                } else {
                    ck_im2col_panels_2d(
                        xg, g2.input[0], g2.input[1], g2.kernel[0], g2.kernel[1], g2.strides[0], g2.strides[1],
                        g2.dilations[0], g2.dilations[1], g2.padsBegin[0], g2.padsBegin[1], g2.output[0], g2.output[1],
                        col, nr, rows, 0, rows)
                }
            } else {
                table.offsets.withUnsafeBufferPointer { t in
                    splitter.run(rows) { begin, end in
                        for r in begin..<end {
                            let c = r / k, kp = r % k
                            let xc = xg + c * inCount
                            let offsets = kp * outCount
                            var o = 0
                            for p in 0..<panels {
                                let dst = col + p * panelStride + r * nr
                                let limit = min(nr, outCount - o)
                                for j in 0..<limit {
                                    let offset = t[offsets + o + j]
                                    dst[j] = offset >= 0 ? xc[offset] : 0
                                }
                                o += nr
                            }
                        }
                    }
                }
            }
            let yg = y + (n * outChannels + g * filtersPerGroup) * outCount
            packedGemm(
                parallel, task: gemmTask, m: filtersPerGroup, n: outCount, k: rows, a: w + g * filtersPerGroup * rows,
                lda: rows,
                packed: UnsafePointer(col), accumulate: false, c: yg, ldc: outCount, panels: panels,
                epilogue: activation.epilogue(rowBias: bias.map { $0 + g * filtersPerGroup }, columnBias: nil))
        }
    }
}

/// ConvTranspose as GEMM (Wᵀ·X per group) followed by a scatter-add (col2im) into the output.
final class ConvTransposeKernel: Kernel {
    private let x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, bias: UnsafePointer<Float>?
    private let wT: HostBuffer
    private let w: UnsafePointer<Float>
    private let batch: Int, groups: Int, inPerGroup: Int, outPerGroup: Int
    private let kernelCount: Int, inCount: Int, outCount: Int
    /// For each (kernel position, input position), the output spatial offset or a negative value.
    private let scatter: [Int]
    private let column: HostBuffer
    private let parallel: ParallelFor
    /// Whether W is a constant, transposed once at plan time (else on every run).
    private let constantWeights: Bool

    init(node: BoundNode, parallel: ParallelFor) throws {
        self.parallel = parallel
        let xv = try node.input(0), wv = try node.input(1), yv = try node.output(0)
        let g = try node.parameters(ConvGeometry.self)
        let kernel = g.kernel
        groups = try node.attributes.int("group", default: 1)
        batch = xv.shape[0]
        inPerGroup = xv.shape[1] / groups
        outPerGroup = wv.shape[1]
        kernelCount = kernel.reduce(1, *)
        inCount = g.input.reduce(1, *)
        outCount = g.output.reduce(1, *)
        let outStrides = rowMajorStrides(g.output)
        var scatter = [Int](repeating: -1, count: kernelCount * inCount)
        let rank = g.input.count
        let inCount = self.inCount
        forEachIndex(kernel) { k, kFlat in
            forEachIndex(g.input) { i, iFlat in
                var offset = 0
                for axis in 0..<rank {
                    let o = i[axis] * g.strides[axis] - g.padsBegin[axis] + k[axis] * g.dilations[axis]
                    if o < 0 || o >= g.output[axis] {
                        offset = -1
                        break
                    }
                    offset += o * outStrides[axis]
                }
                scatter[kFlat * inCount + iFlat] = offset
            }
        }
        self.scatter = scatter
        x = UnsafePointer(try xv.pointer(Float.self))
        y = try yv.pointer(Float.self)
        w = UnsafePointer(try wv.pointer(Float.self))
        bias = try node.optionalInput(2).map { UnsafePointer(try $0.pointer(Float.self)) }
        wT = try HostBuffer(bytes: wv.count * MemoryLayout<Float>.stride)
        column = try HostBuffer(bytes: outPerGroup * kernelCount * inCount * MemoryLayout<Float>.stride)
        constantWeights = wv.constant != nil
        if constantWeights { transposeWeights() }
    }

    /// W is (C, M/g, k...): per group a (C/g) x (M/g * K) matrix; lays out its transpose.
    private func transposeWeights() {
        let rows = outPerGroup * kernelCount
        let t = wT.pointer.assumingMemoryBound(to: Float.self)
        for g in 0..<groups {
            let wg = w + g * inPerGroup * rows
            let tg = t + g * inPerGroup * rows
            for c in 0..<inPerGroup { for r in 0..<rows { tg[r * inPerGroup + c] = wg[c * rows + r] } }
        }
    }

    func run() throws {
        if !constantWeights { transposeWeights() }
        let rows = outPerGroup * kernelCount
        let t = wT.pointer.assumingMemoryBound(to: Float.self)
        let col = column.pointer.assumingMemoryBound(to: Float.self)
        let outChannels = outPerGroup * groups
        let splitter = rows * inCount * inPerGroup >= 1 << 18 ? parallel : .serial
        for n in 0..<batch {
            for g in 0..<groups {
                let xg = x + (n * inPerGroup * groups + g * inPerGroup) * inCount
                // The product's rows, then the output channels' scatter-adds, split across threads (both write
                // disjoint rows).
                splitter.run(rows) { begin, end in
                    ck_sgemm_nn(
                        end - begin, inCount, inPerGroup, 1, t + g * inPerGroup * rows + begin * inPerGroup, inPerGroup,
                        xg, inCount, 0, col + begin * inCount, inCount)
                }
                let yg = y + (n * outChannels + g * outPerGroup) * outCount
                splitter.run(outPerGroup) { begin, end in
                    scatter.withUnsafeBufferPointer { s in
                        for m in begin..<end {
                            let ym = yg + m * outCount
                            let b = bias?[g * outPerGroup + m] ?? 0
                            for o in 0..<outCount { ym[o] = b }
                            for kp in 0..<kernelCount {
                                let src = col + (m * kernelCount + kp) * inCount
                                let base = kp * inCount
                                for i in 0..<inCount where s[base + i] >= 0 { ym[s[base + i]] += src[i] }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// MaxPool, AveragePool and their global forms.
enum PoolingKernels {
    /// The byte MaxPool's padded row, at most (a window's columns plus its outputs' span).
    static let maximumByteRow = 1 << 26

    /// MaxPool on int8 or uint8 (`ck_maxpool_8`): 2-D, no dilation, no indices output; planes split across threads,
    /// each with its own row.
    static func makeBytes(_ node: BoundNode, parallel: ParallelFor) throws -> any Kernel {
        let xv = try node.input(0), yv = try node.output(0)
        let g = try node.parameters(ConvGeometry.self)
        guard g.input.count == 2, xv.shape.rank == 4, node.outputs.count == 1 else {
            throw node.fail("MaxPool on \(xv.type.dtype) runs 2-D windows without the indices output")
        }
        guard g.dilations.allSatisfy({ $0 == 1 }) else {
            throw node.fail("MaxPool on \(xv.type.dtype) runs without dilation")
        }
        let planes = xv.shape[0] * xv.shape[1]
        guard planes > 0, g.output.allSatisfy({ $0 > 0 }) else { return ClosureKernel {} }
        let x = UnsafePointer(try xv.raw().assumingMemoryBound(to: UInt8.self))
        let y = try yv.raw().assumingMemoryBound(to: UInt8.self)
        let signed = xv.type.dtype == .int8
        // The padded row (sizes from the model, checked).
        // The padded row (sizes from the model, checked; a window of 2^31 - 1 columns over a 4-wide row made
        // 4 GiB of rows before this cap).
        let (span, overflow) = (g.output[1] - 1).multipliedReportingOverflow(by: g.strides[1])
        guard !overflow, span + g.kernel[1] <= Self.maximumByteRow else {
            throw node.fail(
                "the pooling window's row (\(g.output[1]) outputs at stride \(g.strides[1]), window \(g.kernel[1])) "
                    + "is too wide: at most \(Self.maximumByteRow) bytes")
        }
        let width = span + g.kernel[1] + 64
        let workers = max(1, parallel.threads)
        let rows = try HostBuffer(bytes: width * workers)
        // The work decides the split only: saturated, not trapped, on sizes that overflow.
        let work = [planes, g.output[0], g.output[1], g.kernel[0], g.kernel[1]].reduce(1) { product, value in
            let (next, overflow) = product.multipliedReportingOverflow(by: value)
            return overflow ? Int.max : next
        }
        let task = ClosureTask { part, begin, end in
            ck_maxpool_8(
                x, signed ? 1 : 0, g.input[0], g.input[1], g.kernel[0], g.kernel[1], g.strides[0], g.strides[1],
                g.padsBegin[0], g.padsBegin[1], g.output[0], g.output[1], y, begin, end,
                rows.pointer.assumingMemoryBound(to: UInt8.self) + min(part, workers - 1) * width)
        }
        let split = work >= 1 << 16 ? parallel : .serial
        return ClosureKernel { split.run(task, count: planes) }
    }

    static func make(_ node: BoundNode, parallel: ParallelFor) throws -> any Kernel {
        let xv = try node.input(0), yv = try node.output(0)
        let geometry = try node.parameters(ConvGeometry.self)
        let indices = node.outputs.count > 1 ? try node.output(1).pointer(Int64.self) : nil
        // The 2-D kernel without indices reads no offsets; every path visits up to the window's positions per
        // output, which the table's cap bounds (a window is sized by attributes alone).
        let table = try WindowTable(
            geometry, node: node, withOffsets: !(geometry.input.count == 2 && indices == nil))
        try table.checkEntries(node)
        let isMax = node.attributes.opType == "MaxPool"
        let includePad = try node.attributes.int("count_include_pad", default: 0) != 0
        // Indices output: flat index into the input, spatial part row-major (storage_order 0) or
        // column-major (1).
        let columnMajor = try node.attributes.int("storage_order", default: 0) != 0
        let spatial = geometry.input
        let spatialIndex: [Int] =
            columnMajor
            ? (0..<table.inputCount).map { offset in
                var rest = offset
                var index = 0
                var stride = 1
                let rowStrides = rowMajorStrides(spatial)
                var coordinates = [Int](repeating: 0, count: spatial.count)
                for axis in 0..<spatial.count {
                    coordinates[axis] = rest / rowStrides[axis]
                    rest %= rowStrides[axis]
                }
                for axis in 0..<spatial.count {
                    index += coordinates[axis] * stride
                    stride *= spatial[axis]
                }
                return index
            } : []
        let planes = xv.shape[0] * xv.shape[1]
        let x = try xv.pointer(Float.self), y = try yv.pointer(Float.self)
        let k = table.kernelCount, outCount = table.outputCount, inCount = table.inputCount
        if geometry.input.count == 2 && indices == nil {
            return make2D(
                geometry, planes: planes, x: x, y: y, isMax: isMax, includePad: includePad, parallel: parallel)
        }
        return ClosureKernel {
            table.offsets.withUnsafeBufferPointer { t in
                for p in 0..<planes {
                    let xp = x + p * inCount
                    let yp = y + p * outCount
                    for o in 0..<outCount {
                        if isMax {
                            var best = -Float.infinity
                            var bestIndex = -1
                            for kp in 0..<k {
                                let offset = t[kp * outCount + o]
                                if offset >= 0 && (xp[offset] > best || bestIndex < 0) {
                                    best = xp[offset]
                                    bestIndex = offset
                                }
                            }
                            yp[o] = best
                            let spatialBest = max(bestIndex, 0)
                            indices?[p * outCount + o] = Int64(
                                p * inCount + (columnMajor ? spatialIndex[spatialBest] : spatialBest))
                        } else {
                            var sum: Float = 0
                            var count = 0
                            for kp in 0..<k {
                                let offset = t[kp * outCount + o]
                                if offset >= 0 {
                                    sum += xp[offset]
                                    count += 1
                                } else if offset == -1 && includePad {
                                    count += 1
                                }
                            }
                            yp[o] = count > 0 ? sum / Float(count) : 0
                        }
                    }
                }
            }
        }
    }

    /// The common 2x2/2 max pool: four loads and three maxes per output, no bounds checks (floor mode).
    static func maxPool2x2(
        planes: Int, inHeight inH: Int, inWidth inW: Int, outHeight outH: Int, outWidth outW: Int,
        x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>
    ) {
        for p in 0..<planes {
            let xp = x + p * inH * inW
            let yp = y + p * outH * outW
            for oy in 0..<outH {
                let top = xp + 2 * oy * inW
                let bottom = top + inW
                let out = yp + oy * outW
                for ox in 0..<outW {
                    out[ox] = max(max(top[2 * ox], top[2 * ox + 1]), max(bottom[2 * ox], bottom[2 * ox + 1]))
                }
            }
        }
    }

    /// 2-D pooling with direct window loops (no offset table, no per-element branches on the mode).
    static func make2D(
        _ g: ConvGeometry, planes: Int, x: UnsafeMutablePointer<Float>, y: UnsafeMutablePointer<Float>, isMax: Bool,
        includePad: Bool, parallel: ParallelFor
    ) -> any Kernel {
        // The work decides the split only: saturated, not trapped, on sizes that overflow.
        let work = [planes, g.output[0], g.output[1], g.kernel[0], g.kernel[1]].reduce(1) { product, value in
            let (next, overflow) = product.multipliedReportingOverflow(by: value)
            return overflow ? Int.max : next
        }
        return PlaneSplitKernel(planes: planes, parallel: work >= 1 << 16 ? parallel : .serial) { range in
            pool2D(g, planes: range, x: x, y: y, isMax: isMax, includePad: includePad)
        }
    }

    /// Planes `range` of a 2-D pooling.
    static func pool2D(
        _ g: ConvGeometry, planes range: Range<Int>, x: UnsafeMutablePointer<Float>, y: UnsafeMutablePointer<Float>,
        isMax: Bool, includePad: Bool
    ) {
        let (inH, inW, outH, outW) = (g.input[0], g.input[1], g.output[0], g.output[1])
        let (kh, kw, sy, sx) = (g.kernel[0], g.kernel[1], g.strides[0], g.strides[1])
        let (dy, dx, py, px) = (g.dilations[0], g.dilations[1], g.padsBegin[0], g.padsBegin[1])
        // Every window inside the image: ceil_mode can add a last window past the edge with no padding declared.
        let windowsInside = 2 * outH <= inH && 2 * outW <= inW
        if isMax && (kh, kw, sy, sx, dy, dx) == (2, 2, 2, 2, 1, 1) && g.padsBegin == [0, 0] && g.padsEnd == [0, 0]
            && windowsInside
        {
            maxPool2x2(
                planes: range.count, inHeight: inH, inWidth: inW, outHeight: outH, outWidth: outW,
                x: x + range.lowerBound * inH * inW, y: y + range.lowerBound * outH * outW)
            return
        }
        // The 2x2/2 average pool of DenseNet transitions: four loads, three adds (in the reference's order) and a
        // multiply by 1/4 (exact: a power of two) per output.
        if !isMax && (kh, kw, sy, sx, dy, dx) == (2, 2, 2, 2, 1, 1) && g.padsBegin == [0, 0] && g.padsEnd == [0, 0]
            && windowsInside
        {
            for p in range {
                let xp = x + p * inH * inW, yp = y + p * outH * outW
                for oy in 0..<outH {
                    let top = xp + 2 * oy * inW, bottom = top + inW, out = yp + oy * outW
                    for ox in 0..<outW {
                        out[ox] = (((top[2 * ox] + top[2 * ox + 1]) + bottom[2 * ox]) + bottom[2 * ox + 1]) * 0.25
                    }
                }
            }
            return
        }
        // Other max pools without dilation: vectorized over output columns in C (falls through only when its
        // scratch plane cannot be allocated).
        if isMax && (dy, dx) == (1, 1)
            && ck_max_pool2d(
                x + range.lowerBound * inH * inW, range.count, inH, inW, kh, kw, sy, sx, py, px, outH, outW,
                y + range.lowerBound * outH * outW, nil) == 0
        {
            return
        }
        poolWindows(g, planes: range, x: x, y: y, isMax: isMax, includePad: includePad)
    }

    /// Any 2-D pooling window by window: dilation, padding (counted or not in averages), ceil_mode's partial windows.
    static func poolWindows(
        _ g: ConvGeometry, planes range: Range<Int>, x: UnsafeMutablePointer<Float>, y: UnsafeMutablePointer<Float>,
        isMax: Bool, includePad: Bool
    ) {
        let (inH, inW) = (g.input[0], g.input[1])
        let (outH, outW) = (g.output[0], g.output[1])
        let (kh, kw) = (g.kernel[0], g.kernel[1])
        let (sy, sx) = (g.strides[0], g.strides[1])
        let (dy, dx) = (g.dilations[0], g.dilations[1])
        let (py, px) = (g.padsBegin[0], g.padsBegin[1])
        let (padEndY, padEndX) = (g.padsEnd[0], g.padsEnd[1])
        for p in range {
            let xp = x + p * inH * inW
            var out = y + p * outH * outW
            for oy in 0..<outH {
                let y0 = oy * sy - py
                for ox in 0..<outW {
                    let x0 = ox * sx - px
                    var best = -Float.infinity
                    var sum: Float = 0
                    var count = 0
                    var padded = 0
                    for ky in 0..<kh {
                        let iy = y0 + ky * dy
                        guard iy >= 0 && iy < inH else {
                            if iy >= -py && iy < inH + padEndY { padded += kw }
                            continue
                        }
                        let row = xp + iy * inW
                        // The window's valid columns, then one tight loop per mode.
                        var kxBegin = 0
                        while kxBegin < kw && x0 + kxBegin * dx < 0 { kxBegin += 1 }
                        var kxEnd = kw
                        while kxEnd > kxBegin && x0 + (kxEnd - 1) * dx >= inW { kxEnd -= 1 }
                        if isMax {
                            for kx in kxBegin..<kxEnd { best = max(best, row[x0 + kx * dx]) }
                        } else {
                            for kx in kxBegin..<kxEnd { sum += row[x0 + kx * dx] }
                            count += kxEnd - kxBegin
                            for kx in 0..<kw where kx < kxBegin || kx >= kxEnd {
                                let ix = x0 + kx * dx
                                if ix >= -px && ix < inW + padEndX { padded += 1 }
                            }
                        }
                    }
                    if isMax {
                        out.pointee = best
                    } else {
                        let divisor = includePad ? count + padded : count
                        out.pointee = divisor > 0 ? sum / Float(divisor) : 0
                    }
                    out += 1
                }
            }
        }
    }

    /// Planes split across threads from 2^16 values (EfficientNet's squeeze-and-excitation pools read up to
    /// 96x112x112 values, 0.1 ms on one thread).
    static func makeGlobal(_ node: BoundNode, parallel: ParallelFor) throws -> any Kernel {
        let xv = try node.input(0), yv = try node.output(0)
        let planes = xv.shape[0] * xv.shape[1]
        let spatial = xv.shape.dimensions.dropFirst(2).reduce(1, *)
        let isMax: Int32 = node.attributes.opType == "GlobalMaxPool" ? 1 : 0
        let x = try xv.pointer(Float.self), y = try yv.pointer(Float.self)
        if try node.attributes.int(FusionRules.channelsLastInputAttribute, default: 0) != 0 {
            // A squeeze-and-excitation block's pool over a depthwise output passed channels last
            // (`ChannelsLastChains`): one image, averaged per channel across the positions.
            guard isMax == 0, xv.shape.rank == 4, xv.shape[0] == 1, yv.count == planes else {
                throw node.fail(
                    "a channels-last global pool must average one image; remove the "
                        + "\(FusionRules.channelsLastInputAttribute) attribute")
            }
            let channels = xv.shape[1]
            let blocks = (channels + 7) / 8
            return PlaneSplitKernel(planes: blocks, parallel: xv.count >= 1 << 16 ? parallel : .serial) { range in
                ck_global_average_nhwc(x, spatial, channels, range.lowerBound * 8, range.upperBound * 8, y)
            }
        }
        guard xv.count >= 1 << 16 else { return ClosureKernel { ck_global_pool(x, planes, spatial, isMax, y) } }
        return PlaneSplitKernel(planes: planes, parallel: parallel) { range in
            ck_global_pool(x + range.lowerBound * spatial, range.count, spatial, isMax, y + range.lowerBound)
        }
    }
}

/// One 2-D float transpose, split across the pool by output rows; its operands are set before each split run.
final class TransposeTask: ParallelTask, @unchecked Sendable {
    private var x = UnsafePointer<Float>(bitPattern: 64)
    private var y = UnsafeMutablePointer<Float>(bitPattern: 64)
    private var rows = 0, columns = 0

    func set(x: UnsafePointer<Float>, rows: Int, columns: Int, y: UnsafeMutablePointer<Float>) {
        (self.x, self.rows, self.columns, self.y) = (x, rows, columns, y)
    }

    override func part(_ index: Int, _ begin: Int, _ end: Int) {
        guard let x, let y, begin < end else { return }
        ConvKernel.transpose(x, rows: rows, columns: columns, into: y, outputRows: begin..<end)
    }
}

/// The im2col rows of one image and group, split across the pool.
final class Im2colTask: ParallelTask, @unchecked Sendable {
    private var x = UnsafePointer<Float>(bitPattern: 64)
    private var column = UnsafeMutablePointer<Float>(bitPattern: 64)
    private var g: ConvGeometry?
    private var panelWidth = 0, rows = 0

    func set(
        x: UnsafePointer<Float>, geometry: ConvGeometry, column: UnsafeMutablePointer<Float>, panelWidth: Int, rows: Int
    ) {
        self.x = x
        self.g = geometry
        self.column = column
        self.panelWidth = panelWidth
        self.rows = rows
    }

    override func part(_ index: Int, _ begin: Int, _ end: Int) {
        guard let x, let column, let g else { return }
        ck_im2col_panels_2d(
            x, g.input[0], g.input[1], g.kernel[0], g.kernel[1], g.strides[0], g.strides[1], g.dilations[0],
            g.dilations[1], g.padsBegin[0], g.padsBegin[1], g.output[0], g.output[1], column, panelWidth, rows, begin,
            end)
    }
}

/// A kernel whose work is independent per plane (pooling): planes split across threads.
final class PlaneSplitKernel: Kernel {
    private let planes: Int
    private let parallel: ParallelFor
    private let body: (Range<Int>) -> Void
    private var task: ClosureTask?

    init(planes: Int, parallel: ParallelFor, body: @escaping (Range<Int>) -> Void) {
        self.planes = planes
        self.parallel = parallel
        self.body = body
        if parallel.threads > 1 && planes > 1 {
            task = ClosureTask { [unowned self] _, begin, end in self.body(begin..<end) }
        }
    }

    func run() throws {
        if let task { parallel.run(task, count: planes) } else { body(0..<planes) }
    }
}

/// A convolution with a fused 2x2, stride-2 MaxPool (`FusionRules.maxPoolAttribute`) for the kernels that
/// cannot pool in their own store: the convolution writes a scratch buffer, then the pool reads it.
final class PooledConvKernel: Kernel {
    private let convolution: any Kernel
    private let scratch: HostBuffer
    private let planes: Int, height: Int, width: Int
    private let y: UnsafeMutablePointer<Float>
    private let parallel: ParallelFor
    private var poolTask: ClosureTask?

    /// `make` builds the convolution for a node with the unpooled output in scratch memory; the pool splits its
    /// planes across `parallel`'s threads.
    init(node: BoundNode, parallel: ParallelFor, make: (BoundNode) throws -> any Kernel) throws {
        self.parallel = parallel
        let xv = try node.input(0), wv = try node.input(1), yv = try node.output(0)
        let geometry = try node.parameters(ConvGeometry.self)
        guard geometry.output.count == 2 else { throw node.fail("a fused max pool needs a 2-D convolution") }
        let shape = Shape([xv.shape[0], wv.shape[0], geometry.output[0], geometry.output[1]])
        let bytes = shape.elementCount * MemoryLayout<Float>.stride
        scratch = try HostBuffer(bytes: bytes)
        var inner = node
        inner.step.node.attributes[FusionRules.maxPoolAttribute] = nil
        inner.outputs[0] = BoundValue(
            type: TensorType(dtype: .float32, shape: shape),
            slice: BufferSlice(buffer: scratch, offset: 0, byteCount: bytes),
            constant: nil)
        convolution = try make(inner)
        planes = shape[0] * shape[1]
        height = geometry.output[0]
        width = geometry.output[1]
        y = try yv.pointer(Float.self)
        if parallel.threads > 1 && shape.elementCount >= 1 << 16 {
            poolTask = ClosureTask { [unowned self] _, begin, end in pool(planes: begin..<end) }
        }
    }

    func run() throws {
        try convolution.run()
        if let poolTask { parallel.run(poolTask, count: planes) } else { pool(planes: 0..<planes) }
    }

    private func pool(planes range: Range<Int>) {
        let (outHeight, outWidth) = (height / 2, width / 2)
        PoolingKernels.maxPool2x2(
            planes: range.count, inHeight: height, inWidth: width, outHeight: outHeight, outWidth: outWidth,
            x: scratch.pointer.assumingMemoryBound(to: Float.self) + range.lowerBound * height * width,
            y: y + range.lowerBound * outHeight * outWidth)
    }
}
