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

/// Attention (opset 23/24) and RotaryEmbedding (opset 23) on any float type, computed in double precision:
/// one query row at a time, scores over the past and new keys, the mask, causal and padding biases added, a
/// softmax, and the weighted sum of the values. Grouped-query heads share key/value head h / (Hq / Hkv).
enum TransformerKernels {
    /// Where element [b, head, position, d] of a Q/K/V operand lives: packed ([B, S, H·D]) or not ([B, H, S, D]).
    struct HeadLayout {
        var heads: Int
        var length: Int
        var size: Int
        var packed: Bool

        @inline(__always) func offset(_ b: Int, _ h: Int, _ s: Int) -> Int {
            packed ? ((b * length + s) * heads + h) * size : ((b * heads + h) * length + s) * size
        }
    }

    /// Key or value element d of position j for batch b and key/value head h: the past positions, then the new.
    struct PastAndNew {
        let io: ElementIO
        let past: UnsafeRawPointer?
        let pastLayout: HeadLayout
        let new: UnsafeRawPointer
        let newLayout: HeadLayout

        @inline(__always) func load(_ b: Int, _ h: Int, _ j: Int, _ d: Int) -> Double {
            if let past, j < pastLayout.length { return io.load(past, pastLayout.offset(b, h, j) + d) }
            return io.load(new, newLayout.offset(b, h, j - pastLayout.length) + d)
        }
    }

    static func makeAttention(_ node: BoundNode, parallel: ParallelFor) throws -> any Kernel {
        let q = try node.input(0), k = try node.input(1), v = try node.input(2)
        let mask = node.optionalInput(3), pastKey = node.optionalInput(4), pastValue = node.optionalInput(5)
        let nonpad = node.optionalInput(6)
        let g = try node.parameters(AttentionGeometry.self)
        let scaleAttribute = try node.attributes.float("scale", default: 0)
        let scale = scaleAttribute != 0 ? Double(scaleAttribute) : 1 / Double(g.headSize).squareRoot()
        let softcap = Double(try node.attributes.float("softcap", default: 0))
        let causal = try node.attributes.int("is_causal", default: 0) != 0
        let mode = try node.attributes.int("qk_matmul_output_mode", default: 0)
        guard (0...3).contains(mode) else { throw node.fail("qk_matmul_output_mode \(mode) is not 0 to 3") }

        let qLayout = HeadLayout(heads: g.queryHeads, length: g.queryLength, size: g.headSize, packed: g.packedHeads)
        let kLayout = HeadLayout(heads: g.keyValueHeads, length: g.newLength, size: g.headSize, packed: g.packedHeads)
        let vLayout = HeadLayout(
            heads: g.keyValueHeads, length: g.newLength, size: g.valueHeadSize, packed: g.packedHeads)
        let yLayout = HeadLayout(
            heads: g.queryHeads, length: g.queryLength, size: g.valueHeadSize, packed: g.packedHeads)
        let pastK = HeadLayout(heads: g.keyValueHeads, length: g.pastLength, size: g.headSize, packed: false)
        let pastV = HeadLayout(heads: g.keyValueHeads, length: g.pastLength, size: g.valueHeadSize, packed: false)
        let presentK = HeadLayout(heads: g.keyValueHeads, length: g.totalLength, size: g.headSize, packed: false)
        let presentV = HeadLayout(heads: g.keyValueHeads, length: g.totalLength, size: g.valueHeadSize, packed: false)

        let bias = try attentionBias(mask: mask, nonpad: nonpad, geometry: g, causal: causal, node: node)

        let io = ElementIO.for(q.type.dtype)
        let qs = UnsafeRawPointer(try q.raw()), ks = UnsafeRawPointer(try k.raw())
        let vs = UnsafeRawPointer(try v.raw())
        let pks = try pastKey.map { UnsafeRawPointer(try $0.raw()) }
        let pvs = try pastValue.map { UnsafeRawPointer(try $0.raw()) }
        let y = try node.output(0).raw()
        let outputNames = node.step.node.outputs
        let optionalOutputs = try (1...3).map { index -> UnsafeMutableRawPointer? in
            guard index < node.outputs.count, !outputNames[index].isEmpty else { return nil }
            return try node.output(index).raw()
        }
        let presentKeys = optionalOutputs[0], presentValues = optionalOutputs[1], scoresOut = optionalOutputs[2]
        let keys = PastAndNew(io: io, past: pks, pastLayout: pastK, new: ks, newLayout: kLayout)
        let values = PastAndNew(io: io, past: pvs, pastLayout: pastV, new: vs, newLayout: vLayout)
        if q.type.dtype == .float32, pks == nil, pvs == nil, optionalOutputs.allSatisfy({ $0 == nil }), softcap == 0 {
            return try FastAttentionKernel(
                q: qs, k: ks, v: vs, y: y, geometry: g, layouts: (qLayout, kLayout, vLayout, yLayout),
                scale: Float(scale),
                bias: bias, parallel: parallel)
        }
        return GeneralAttentionKernel(
            io: io, q: qs, qLayout: qLayout, keys: keys, values: values, y: y, yLayout: yLayout, geometry: g,
            scale: scale, softcap: softcap, bias: bias, scoresMode: mode, scores: scoresOut,
            present: (presentKeys, presentK, presentValues, presentV))
    }

    /// The mask (broadcast to [B, Hq, Sq, maskLength]; positions past maskLength are masked out), causal and
    /// padding limits, checked against the geometry.
    static func attentionBias(
        mask: BoundValue?, nonpad: BoundValue?, geometry g: AttentionGeometry, causal: Bool, node: BoundNode
    ) throws -> AttentionBias {
        var maskStrides = [0, 0, 0, 0]
        var maskLength = 0
        let maskIO = mask.map { ElementIO.forIndexing($0.type.dtype) }
        if let mask {
            do {
                (maskLength, maskStrides) = try g.maskLayout(mask.shape.dimensions)
            } catch {
                throw node.fail(error.text)
            }
        }
        let boolMask = mask?.type.dtype == .bool
        let nonpadReader = try nonpad.map { try IndexReader($0, node: node) }
        if let nonpad, nonpad.count != g.batch { throw node.fail("nonpad_kv_seqlen must hold one length per batch") }
        return AttentionBias(
            mask: try mask.map { UnsafeRawPointer(try $0.raw()) }, maskIO: maskIO, maskDType: mask?.type.dtype,
            boolMask: boolMask, maskStrides: maskStrides, maskLength: maskLength, causal: causal,
            pastLength: g.pastLength, nonpad: nonpadReader, totalLength: g.totalLength)
    }

    static func makeRotaryEmbedding(_ node: BoundNode) throws -> any Kernel {
        let x = try node.input(0), cosCache = try node.input(1), sinCache = try node.input(2)
        let positions = node.optionalInput(3)
        let dims = x.shape.dimensions
        let layout: HeadLayout
        let batch: Int
        if dims.count == 4 {
            batch = dims[0]
            layout = HeadLayout(heads: dims[1], length: dims[2], size: dims[3], packed: false)
        } else if dims.count == 3 {
            let heads = try node.attributes.int("num_heads", default: 0)
            guard heads > 0, dims[2] % heads == 0 else {
                throw node.fail("a rank-3 input needs num_heads dividing its hidden size \(dims[2])")
            }
            batch = dims[0]
            layout = HeadLayout(heads: heads, length: dims[1], size: dims[2] / heads, packed: true)
        } else {
            throw node.fail("input must have rank 3 or 4, got \(x.shape)")
        }
        let requested = try node.attributes.int("rotary_embedding_dim", default: 0)
        let rotary = requested == 0 ? layout.size : requested
        guard rotary > 0, rotary <= layout.size, rotary % 2 == 0 else {
            throw node.fail("rotary_embedding_dim \(rotary) must be even and at most the head size \(layout.size)")
        }
        let half = rotary / 2
        let interleaved = try node.attributes.int("interleaved", default: 0) != 0
        let cacheRows: Int
        if let positions {
            guard positions.shape.dimensions == [batch, layout.length], cosCache.shape.rank == 2 else {
                throw node.fail("position_ids must be [batch, sequence] and the caches [positions, rotary/2]")
            }
            cacheRows = cosCache.shape[0]
        } else {
            guard cosCache.shape.dimensions.prefix(2) == [batch, layout.length], cosCache.shape.rank == 3 else {
                throw node.fail("without position_ids the caches must be [batch, sequence, rotary/2]")
            }
            cacheRows = batch * layout.length
        }
        guard cosCache.shape == sinCache.shape, cosCache.shape.dimensions.last == half else {
            throw node.fail("cos and sin caches \(cosCache.shape), \(sinCache.shape) must end in rotary/2 = \(half)")
        }
        let reader = try positions.map { try IndexReader($0, node: node) }
        let io = ElementIO.for(x.type.dtype), cacheIO = ElementIO.for(cosCache.type.dtype)
        let src = UnsafeRawPointer(try x.raw()), dst = try node.output(0).raw()
        let cosines = UnsafeRawPointer(try cosCache.raw()), sines = UnsafeRawPointer(try sinCache.raw())
        return ClosureKernel {
            for b in 0..<batch {
                for s in 0..<layout.length {
                    let row =
                        try reader.map { try $0.load(b * layout.length + s, extent: cacheRows) } ?? b * layout.length
                        + s
                    for h in 0..<layout.heads {
                        let base = layout.offset(b, h, s)
                        for d in rotary..<layout.size { io.store(dst, base + d, io.load(src, base + d)) }
                        for d in 0..<half {
                            let c = cacheIO.load(cosines, row * half + d), sn = cacheIO.load(sines, row * half + d)
                            let first = interleaved ? 2 * d : d, second = interleaved ? 2 * d + 1 : d + half
                            let x1 = io.load(src, base + first), x2 = io.load(src, base + second)
                            io.store(dst, base + first, c * x1 - sn * x2)
                            io.store(dst, base + second, sn * x1 + c * x2)
                        }
                    }
                }
            }
        }
    }
}

/// What Attention adds to a score before the softmax: the mask (float values added, false booleans and keys past
/// the mask's length excluded), the causal bound and the per-batch valid key count.
struct AttentionBias {
    let mask: UnsafeRawPointer?
    let maskIO: ElementIO?
    let maskDType: DType?
    let boolMask: Bool
    let maskStrides: [Int]
    let maskLength: Int
    let causal: Bool
    let pastLength: Int
    let nonpad: IndexReader?
    let totalLength: Int

    /// Keys at or past this position of batch b are padding (nonpad_kv_seqlen).
    func validLength(_ b: Int) -> Int {
        nonpad.map { Swift.min(Swift.max($0.raw(b), 0), totalLength) } ?? totalLength
    }

    /// The bias of score j in row i (query position) of head h in batch b, in double precision: the mask, then
    /// the causal and padding limits (`valid`: `validLength(b)`).
    func value(b: Int, h: Int, i: Int, j: Int, valid: Int) -> Double {
        var bias = 0.0
        if let mask, let maskIO {
            if j < maskLength {
                let m = maskIO.load(
                    mask, b * maskStrides[0] + h * maskStrides[1] + i * maskStrides[2] + j * maskStrides[3])
                bias = boolMask ? (m != 0 ? 0 : -.infinity) : m
            } else {
                bias = -.infinity
            }
        }
        if causal && j - pastLength > i { bias = -.infinity }
        if j >= valid { bias = -.infinity }
        return bias
    }

    /// Scales row i (query position) of head h in batch b and adds the bias.
    func apply(_ row: UnsafeMutablePointer<Float>, scale: Float, b: Int, h: Int, i: Int) {
        let valid = validLength(b)
        let covered = Swift.min(maskLength, totalLength)
        if let mask, !boolMask, maskDType == .float32, maskStrides[3] == 1 {
            // The common float mask: one fused pass.
            let m =
                mask.assumingMemoryBound(to: Float.self) + b * maskStrides[0] + h * maskStrides[1] + i
                * maskStrides[2]
            for j in 0..<covered { row[j] = row[j] * scale + m[j] }
            for j in covered..<totalLength { row[j] = -.infinity }
        } else {
            for j in 0..<totalLength { row[j] *= scale }
        }
        if let mask, let maskIO, boolMask || maskDType != .float32 || maskStrides[3] != 1 {
            let base = b * maskStrides[0] + h * maskStrides[1] + i * maskStrides[2]
            for j in 0..<Swift.min(maskLength, totalLength) {
                let m = maskIO.load(mask, base + j * maskStrides[3])
                row[j] += boolMask ? (m != 0 ? 0 : -.infinity) : Float(m)
            }
            for j in Swift.min(maskLength, totalLength)..<totalLength { row[j] = -.infinity }
        }
        if causal {
            let last = i + pastLength  // keys after it are in the future
            if last + 1 < totalLength { for j in (last + 1)..<totalLength { row[j] = -.infinity } }
        }
        if valid < totalLength { for j in valid..<totalLength { row[j] = -.infinity } }
    }
}

/// Float32 Attention without past keys, optional outputs or softcap (what exporters emit): per batch and head,
/// S = Q·Kᵀ and Y = softmax(S·scale + bias)·V as two GEMMs on the packed micro-kernels (K transposed once per
/// head into scratch), the bias and a vectorized softmax between them, float32 throughout like the MatMul and
/// Softmax chain it replaces.
final class FastAttentionKernel: Kernel, DescribedKernel {
    private let q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>
    private let y: UnsafeMutablePointer<Float>
    private let g: AttentionGeometry
    private let qLayout: TransformerKernels.HeadLayout, kLayout: TransformerKernels.HeadLayout
    private let vLayout: TransformerKernels.HeadLayout, yLayout: TransformerKernels.HeadLayout
    private let scale: Float
    private let bias: AttentionBias
    /// Per worker: K of one head transposed, the scores of one head, a GEMM panel.
    private let scratch: [(keys: HostBuffer, scores: HostBuffer, panel: HostBuffer)]
    private let parallel: ParallelFor
    private var task: ClosureTask?

    init(
        q: UnsafeRawPointer, k: UnsafeRawPointer, v: UnsafeRawPointer, y: UnsafeMutableRawPointer,
        geometry: AttentionGeometry,
        layouts: (
            TransformerKernels.HeadLayout, TransformerKernels.HeadLayout, TransformerKernels.HeadLayout,
            TransformerKernels.HeadLayout
        ),
        scale: Float, bias: AttentionBias, parallel: ParallelFor
    ) throws {
        self.q = q.assumingMemoryBound(to: Float.self)
        self.k = k.assumingMemoryBound(to: Float.self)
        self.v = v.assumingMemoryBound(to: Float.self)
        self.y = y.assumingMemoryBound(to: Float.self)
        g = geometry
        (qLayout, kLayout, vLayout, yLayout) = layouts
        self.scale = scale
        self.bias = bias
        self.parallel = parallel
        let floats = MemoryLayout<Float>.stride
        let workers = max(1, min(parallel.threads, geometry.batch * geometry.queryHeads))
        let (d, t, sq) = (geometry.headSize, geometry.totalLength, geometry.queryLength)
        scratch = try (0..<workers).map { _ in
            (
                try HostBuffer(bytes: max(d * t, 1) * floats), try HostBuffer(bytes: max(sq * t, 1) * floats),
                try HostBuffer(bytes: max(d, t, 1) * ck_gemm_panel_width() * floats)
            )
        }
        task = nil
        if workers > 1 {
            task = ClosureTask { [unowned self] part, begin, end in self.heads(begin, end, worker: part) }
        }
    }

    var kernelDescription: String { "FastAttentionKernel (GEMM, softmax, GEMM)" }

    func run() throws {
        let pairs = g.batch * g.queryHeads
        if let task, g.queryLength * g.totalLength * g.headSize >= 1 << 14 {
            // Whole key/value groups per worker, so each K head is transposed once.
            parallel.run(task, count: pairs)
        } else {
            heads(0, pairs, worker: 0)
        }
    }

    /// (batch, query head) pairs [begin, end), flattened batch-major.
    private func heads(_ begin: Int, _ end: Int, worker: Int) {
        let t = g.totalLength, d = g.headSize, dv = g.valueHeadSize, sq = g.queryLength
        guard t > 0, sq > 0 else { return }
        let kt = scratch[worker].keys.pointer.assumingMemoryBound(to: Float.self)
        let s = scratch[worker].scores.pointer.assumingMemoryBound(to: Float.self)
        let panel = scratch[worker].panel.pointer.assumingMemoryBound(to: Float.self)
        let nr = ck_gemm_panel_width()
        let group = g.queryHeads / g.keyValueHeads
        let qStride = qLayout.packed ? g.queryHeads * d : d
        let kStride = kLayout.packed ? g.keyValueHeads * d : d
        let vStride = vLayout.packed ? g.keyValueHeads * dv : dv
        let yStride = yLayout.packed ? g.queryHeads * dv : dv
        var transposed = -1  // the (batch, key/value head) whose K is in kt
        for pair in begin..<end {
            let b = pair / g.queryHeads, h = pair % g.queryHeads
            let kvh = h / group
            if transposed != b * g.keyValueHeads + kvh {
                let base = k + kLayout.offset(b, kvh, 0)
                for j in 0..<t { for e in 0..<d { kt[e * t + j] = base[j * kStride + e] } }
                transposed = b * g.keyValueHeads + kvh
            }
            ck_sgemm_rowmajor_b_epilogue(
                sq, t, d, q + qLayout.offset(b, h, 0), qStride, kt, t, 0, s, t, 0, (t + nr - 1) / nr, nil, panel, 1)
            for i in 0..<sq { bias.apply(s + i * t, scale: scale, b: b, h: h, i: i) }
            ck_softmax_rows(s, s, sq, t, 0)
            ck_sgemm_rowmajor_b_epilogue(
                sq, dv, t, s, t, v + vLayout.offset(b, kvh, 0), vStride, 0, y + yLayout.offset(b, h, 0), yStride, 0,
                (dv + nr - 1) / nr, nil, panel, 1)
        }
    }
}

/// Attention in its general form (any float type, past keys and values, the present and scores outputs, softcap):
/// one query row at a time in double precision.
final class GeneralAttentionKernel: Kernel {
    typealias Present = (
        keys: UnsafeMutableRawPointer?, keyLayout: TransformerKernels.HeadLayout, values: UnsafeMutableRawPointer?,
        valueLayout: TransformerKernels.HeadLayout
    )
    private let io: ElementIO
    private let q: UnsafeRawPointer, qLayout: TransformerKernels.HeadLayout
    private let keys: TransformerKernels.PastAndNew, values: TransformerKernels.PastAndNew
    private let y: UnsafeMutableRawPointer, yLayout: TransformerKernels.HeadLayout
    private let g: AttentionGeometry
    private let scale: Double, softcap: Double
    private let bias: AttentionBias
    /// qk_matmul_output_mode: which scores the optional output holds (0 raw, 1/2 biased, 3 softmax).
    private let scoresMode: Int
    private let scoresOut: UnsafeMutableRawPointer?
    private let present: Present
    private var scores: [Double], raw: [Double], accumulator: [Double]

    init(
        io: ElementIO, q: UnsafeRawPointer, qLayout: TransformerKernels.HeadLayout,
        keys: TransformerKernels.PastAndNew, values: TransformerKernels.PastAndNew, y: UnsafeMutableRawPointer,
        yLayout: TransformerKernels.HeadLayout, geometry: AttentionGeometry, scale: Double, softcap: Double,
        bias: AttentionBias, scoresMode: Int, scores: UnsafeMutableRawPointer?, present: Present
    ) {
        (self.io, self.q, self.qLayout, self.keys, self.values) = (io, q, qLayout, keys, values)
        (self.y, self.yLayout, self.g, self.scale, self.softcap) = (y, yLayout, geometry, scale, softcap)
        (self.bias, self.scoresMode, self.scoresOut, self.present) = (bias, scoresMode, scores, present)
        self.scores = [Double](repeating: 0, count: geometry.totalLength)
        self.raw = [Double](repeating: 0, count: geometry.totalLength)
        self.accumulator = [Double](repeating: 0, count: geometry.valueHeadSize)
    }

    func run() throws {
        let group = g.queryHeads / g.keyValueHeads
        for b in 0..<g.batch {
            let valid = bias.validLength(b)
            for h in 0..<g.queryHeads {
                for i in 0..<g.queryLength { row(b: b, h: h, kvh: h / group, i: i, valid: valid) }
            }
            writePresent(b)
        }
    }

    /// Scores of query row i over every key, their softmax, and the weighted sum of the values.
    private func row(b: Int, h: Int, kvh: Int, i: Int, valid: Int) {
        let qBase = qLayout.offset(b, h, i)
        for j in 0..<g.totalLength {
            var s = 0.0
            for d in 0..<g.headSize { s += io.load(q, qBase + d) * keys.load(b, kvh, j, d) }
            s *= scale
            if softcap > 0 { s = softcap * tanh(s / softcap) }
            raw[j] = s
            scores[j] = s + bias.value(b: b, h: h, i: i, j: j, valid: valid)
        }
        let scoreRow = ((b * g.queryHeads + h) * g.queryLength + i) * g.totalLength
        if let scoresOut, scoresMode <= 2 {
            for j in 0..<g.totalLength { io.store(scoresOut, scoreRow + j, scoresMode == 2 ? scores[j] : raw[j]) }
        }
        var largest = -Double.infinity
        for j in 0..<g.totalLength { largest = Swift.max(largest, scores[j]) }
        var total = 0.0
        for j in 0..<g.totalLength {
            scores[j] = exp(scores[j] - largest)
            total += scores[j]
        }
        for d in 0..<g.valueHeadSize { accumulator[d] = 0 }
        for j in 0..<g.totalLength {
            let p = scores[j] / total
            if let scoresOut, scoresMode == 3 { io.store(scoresOut, scoreRow + j, p) }
            for d in 0..<g.valueHeadSize { accumulator[d] += p * values.load(b, kvh, j, d) }
        }
        let yBase = yLayout.offset(b, h, i)
        for d in 0..<g.valueHeadSize { io.store(y, yBase + d, accumulator[d]) }
    }

    /// The present keys and values (past then new), when asked for.
    private func writePresent(_ b: Int) {
        for h in 0..<g.keyValueHeads {
            for j in 0..<g.totalLength {
                if let presentKeys = present.keys {
                    let base = present.keyLayout.offset(b, h, j)
                    for d in 0..<g.headSize { io.store(presentKeys, base + d, keys.load(b, h, j, d)) }
                }
                if let presentValues = present.values {
                    let base = present.valueLayout.offset(b, h, j)
                    for d in 0..<g.valueHeadSize { io.store(presentValues, base + d, values.load(b, h, j, d)) }
                }
            }
        }
    }
}
