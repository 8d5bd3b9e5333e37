import CKernels
import InferenceGraph
import InferenceRuntime
import InferenceTensor

/// A K x N byte matrix packed for `ck_qgemm_packed`, with its column sums.
final class PackedByteMatrix {
    let k: Int, n: Int
    let packed: HostBuffer
    let columnSums: UnsafeMutablePointer<Int32>

    init(k: Int, n: Int) throws {
        self.k = k
        self.n = n
        packed = try HostBuffer(bytes: max(ck_qgemm_packed_b_bytes(k, n), 1))
        columnSums = .allocate(capacity: max(n, 1))
        columnSums.initialize(repeating: 0, count: max(n, 1))
    }

    deinit { columnSums.deallocate() }

    func pack(_ b: UnsafeRawPointer, ldb: Int, signed: Bool) {
        ck_qgemm_pack_b(k, n, b, ldb, signed ? 1 : 0, packed.pointer, columnSums)
    }
}

/// The A side of one integer GEMM: M x K bytes packed per run, row sums, shifted zero points.
final class PackedByteRows {
    let m: Int, k: Int
    let rowBytes: Int
    let packed: HostBuffer
    let rowSums: UnsafeMutablePointer<Int32>
    let zeros: UnsafeMutablePointer<Int32>

    /// The arguments of the current `pack` or `multiply` call, read by the tasks (made once: runs allocate nothing).
    private struct Call {
        var a: UnsafeRawPointer?
        var lda = 0
        var signed = false
        var chunks = 1
        var b: PackedByteMatrix?
        var bZeros: UnsafePointer<Int32>?
        var c: UnsafeMutablePointer<Int32>?
        var ldc = 0
        var source: (matrix: UnsafeRawPointer, ldb: Int, signed: Bool)?
        /// Packs B's panels [begin, end) on worker `part` (made once by the caller), instead of `source`.
        var packer: ((_ part: Int, _ begin: Int, _ end: Int) -> Void)?
        var panels = 0
        /// Per column: C holds float(sum) · scale[j] (see `ck_qgemm_packed_scaled`).
        var scale: UnsafePointer<Float>?
        /// Requantized bytes written by the tiles instead of C (`ck_qgemm_packed_requant`).
        var requant: UnsafePointer<ck_qrequant>?
    }
    /// Column panels per chunk when the tiles requantize: each chunk's packed panels (16 x K bytes per panel) are
    /// multiplied while they are in cache.
    static let panelsPerChunk = 16
    private var call = Call()
    private var packTask: ClosureTask?
    private var panelTask: ClosureTask?
    private var packPanelsTask: ClosureTask?
    private var rowTask: ClosureTask?

    init(m: Int, k: Int) throws {
        self.m = m
        self.k = k
        rowBytes = ck_qgemm_packed_a_bytes(1, k)
        packed = try HostBuffer(bytes: max(ck_qgemm_packed_a_bytes(m, k), 1))
        rowSums = .allocate(capacity: max(m, 1))
        rowSums.initialize(repeating: 0, count: max(m, 1))
        zeros = .allocate(capacity: max(m, 1))
        zeros.initialize(repeating: 0, count: max(m, 1))
        packTask = ClosureTask { [unowned self] _, first, last in
            guard let a = call.a else { return }
            let begin = m * first / call.chunks, end = m * last / call.chunks
            ck_qgemm_pack_a(
                end - begin, k, a + begin * call.lda, call.lda, call.signed ? 1 : 0, packed.pointer + begin * rowBytes,
                rowSums + begin)
        }
        packPanelsTask = ClosureTask { [unowned self] part, begin, end in packPanels(begin, end, part: part) }
        panelTask = ClosureTask { [unowned self] part, begin, end in
            guard let b = call.b, let bZeros = call.bZeros, let c = call.c else { return }
            var first = begin
            while first < end {
                let last = call.requant == nil ? end : min(end, first + Self.panelsPerChunk)
                packPanels(first, last, part: part)
                if let requant = call.requant {
                    ck_qgemm_packed_requant(
                        m, b.n, k, packed.pointer, rowSums, zeros, b.packed.pointer, b.columnSums, bZeros, requant, 0,
                        first, last)
                } else {
                    ck_qgemm_packed_scaled(
                        m, b.n, k, packed.pointer, rowSums, zeros, b.packed.pointer, b.columnSums, bZeros, call.scale,
                        c, call.ldc, first, last)
                }
                first = last
            }
        }
        rowTask = ClosureTask { [unowned self] _, begin, end in
            guard let b = call.b, let bZeros = call.bZeros, let c = call.c else { return }
            if let requant = call.requant {
                ck_qgemm_packed_requant(
                    end - begin, b.n, k, packed.pointer + begin * rowBytes, rowSums + begin, zeros + begin,
                    b.packed.pointer, b.columnSums, bZeros, requant, begin, 0, call.panels)
                return
            }
            ck_qgemm_packed_scaled(
                end - begin, b.n, k, packed.pointer + begin * rowBytes, rowSums + begin, zeros + begin,
                b.packed.pointer, b.columnSums, bZeros, call.scale, c + begin * call.ldc, call.ldc, 0, call.panels)
        }
    }

    deinit {
        rowSums.deallocate()
        zeros.deallocate()
    }

    private func packPanels(_ begin: Int, _ end: Int, part: Int) {
        if let packer = call.packer { return packer(part, begin, end) }
        guard let source = call.source, let b = call.b else { return }
        ck_qgemm_pack_b_panels(
            b.k, b.n, source.matrix, source.ldb, source.signed ? 1 : 0, b.packed.pointer, b.columnSums, begin, end)
    }

    func pack(_ a: UnsafeRawPointer, lda: Int, signed: Bool, parallel: ParallelFor = .serial) {
        call.a = a
        call.lda = lda
        call.signed = signed
        call.chunks = max(1, min(parallel.threads, m * k / 16384))
        if let packTask { parallel.run(packTask, count: call.chunks) }
    }

    /// Zero points in the packed domain (unsigned A is shifted by -128): one value for every row, or one per row.
    func setZeros(_ values: UnsafePointer<Int32>, count: Int, signed: Bool) {
        let shift: Int32 = signed ? 0 : 128
        for row in 0..<m { zeros[row] = values[count == 1 ? 0 : row] &- shift }
    }

    /// C = (A - za)(B - zb) for every column, split across threads by column panels (or by rows when B has too few
    /// panels to share). With `source`, B is packed from that matrix first: by each thread, the panels it multiplies.
    /// With `requant`, the tiles write requantized bytes (`ck_qgemm_packed_requant`) and C is not written.
    func multiply(
        _ b: PackedByteMatrix, bZeros: UnsafePointer<Int32>, into c: UnsafeMutablePointer<Int32>, ldc: Int,
        parallel: ParallelFor, packing source: (matrix: UnsafeRawPointer, ldb: Int, signed: Bool)? = nil,
        packer: ((Int, Int, Int) -> Void)? = nil, scale: UnsafePointer<Float>? = nil,
        requant: UnsafePointer<ck_qrequant>? = nil
    ) {
        let width = ck_qgemm_panel_width()
        let panels = (b.n + width - 1) / width
        call.b = b
        call.bZeros = bZeros
        call.c = c
        call.ldc = ldc
        call.source = source
        call.packer = packer
        call.panels = panels
        call.scale = scale
        call.requant = requant
        defer {
            call.b = nil
            call.source = nil
            call.packer = nil
            call.scale = nil
            call.requant = nil
        }
        guard let panelTask, let packPanelsTask, let rowTask else { return }
        // Rows where the panels are few (a 7x7 plane has four): split by panels, every thread streamed all of A
        // (ResNet-50's 1 MB of 512 x 2048 int8 weights) for a share of a handful of columns.
        if panels >= 4 * parallel.threads || m < 16 * parallel.threads {
            parallel.run(panelTask, count: panels)
            return
        }
        if source != nil || packer != nil { parallel.run(packPanelsTask, count: panels) }
        parallel.run(rowTask, count: m)
    }
}

/// Rescales int32 sums to 8-bit outputs: y = saturate(round_half_even(c · a_scale · b_scale / y_scale) + y_zero),
/// the multiplier formed in the scales' precision (float32 or float16) and applied in double precision.
final class Requantizer {
    let aScales: FloatParameters
    let bScales: FloatParameters
    let yScale: FloatParameters
    let yZero: IntParameters
    let half: Bool
    let range: ClosedRange<Float>
    let signed: Bool
    /// A Relu planned into the node (`QuantizedFusion.reluAttribute`): outputs below the zero point clamp to it.
    let relu: Bool
    /// One row's multipliers (per column when the B scale is).
    private let multipliers: UnsafeMutablePointer<Double>
    private let columns: Int

    init(
        aScales: FloatParameters, bScales: FloatParameters, yScale: FloatParameters, yZero: IntParameters, half: Bool,
        output: DType, relu: Bool, columns: Int, node: BoundNode
    ) throws {
        self.aScales = aScales
        self.bScales = bScales
        self.yScale = yScale
        self.yZero = yZero
        self.half = half
        self.range = try QuantizationKernels.integerRange(output, node: node)
        guard output == .int8 || output == .uint8 else { throw node.fail("the output must be int8 or uint8") }
        signed = output == .int8
        self.relu = relu
        self.columns = columns
        multipliers = .allocate(capacity: max(columns, 1))
        multipliers.initialize(repeating: 0, count: max(columns, 1))
    }

    deinit { multipliers.deallocate() }

    /// Whether every scale of the multiplier is a constant (the multipliers can be formed once).
    var constantMultipliers: Bool { aScales.isConstant && bScales.isConstant && yScale.isConstant }

    func refresh() {
        aScales.refresh()
        bScales.refresh()
        yScale.refresh()
        yZero.refresh()
    }

    @inline(__always)
    func multiplier(_ aIndex: Int, _ bIndex: Int) -> Double {
        let a = aScales.values[aIndex], b = bScales.values[bIndex], y = yScale.values[0]
        if half { return Double(Float((Float16(a) * Float16(b)) / Float16(y))) }
        return Double((a * b) / y)
    }

    /// Forms the multipliers of rows with a scale index `aIndex` (b scales from bBase, per column or one).
    func prepare(aIndex: Int, bBase: Int, bPerColumn: Bool, n: Int) {
        let count = bPerColumn ? min(n, columns) : 1
        for j in 0..<count { multipliers[j] = multiplier(aIndex, bBase + j) }
    }

    /// Writes one row of n sums plus the int32 `bias` per column (or none) to `y` at element `offset` with the
    /// prepared multipliers (rows may run in parallel).
    func apply(
        sums: UnsafePointer<Int32>, n: Int, bPerColumn: Bool, bias: UnsafePointer<Int32>?,
        y: UnsafeMutableRawPointer, offset: Int
    ) {
        let zero = Double(yZero.values[0])
        let low = relu ? max(Double(range.lowerBound), zero) : Double(range.lowerBound)
        ck_requantize(
            sums, n, multipliers, bPerColumn ? 1 : 0, bias, 1, zero, low, Double(range.upperBound), y + offset,
            signed ? 1 : 0)
    }

    /// One row scaled by one multiplier, plus one int32 `bias` for the whole row (or none); no shared state: rows
    /// may run in parallel.
    func apply(
        sums: UnsafePointer<Int32>, n: Int, multiplier: Double, bias: UnsafePointer<Int32>?,
        y: UnsafeMutableRawPointer, offset: Int
    ) {
        let zero = Double(yZero.values[0])
        let low = relu ? max(Double(range.lowerBound), zero) : Double(range.lowerBound)
        withUnsafePointer(to: multiplier) {
            ck_requantize(sums, n, $0, 0, bias, 0, zero, low, Double(range.upperBound), y + offset, signed ? 1 : 0)
        }
    }

    /// The tiles' requantization (`ck_qgemm_packed_requant`) of rows with these multipliers and int32 biases
    /// (one per row, or none) into `y`, rows `ldy` bytes apart: the values `apply` writes.
    func tileRequantization(
        multipliers: UnsafePointer<Double>, bias: UnsafePointer<Int32>?, y: UnsafeMutableRawPointer, ldy: Int
    ) -> ck_qrequant {
        let zero = Double(yZero.values[0])
        let low = relu ? max(Double(range.lowerBound), zero) : Double(range.lowerBound)
        return ck_qrequant(
            multiplier: multipliers, bias: bias, zero: zero, low: low, high: Double(range.upperBound), y: y, ldy: ldy,
            y_signed: signed ? 1 : 0)
    }

    /// `prepare` then `apply` for one row.
    func store(
        row: Int, sums: UnsafePointer<Int32>, n: Int, aIndex: Int, bBase: Int, bPerColumn: Bool,
        bias: UnsafePointer<Int32>?, y: UnsafeMutableRawPointer, offset: Int
    ) {
        prepare(aIndex: aIndex, bBase: bBase, bPerColumn: bPerColumn, n: n)
        apply(sums: sums, n: n, bPerColumn: bPerColumn, bias: bias, y: y, offset: offset)
    }
}

/// MatMulInteger (int32 out) and QLinearMatMul (requantized 8-bit out), numpy-style batch broadcasting.
final class IntegerMatMulKernel: Kernel, DescribedKernel {
    private let parallel: ParallelFor
    private let m: Int, k: Int, n: Int
    private let a: UnsafeRawPointer, aSigned: Bool
    private let b: UnsafeRawPointer, bSigned: Bool
    private let aOffsets: [Int], bOffsets: [Int]
    private let rows: PackedByteRows
    /// One packed B per distinct batch of B when B is constant (packed once), else one packed per run.
    private let packedB: [PackedByteMatrix]
    private let bConstant: Bool
    private let aZeros: IntParameters, bZeros: IntParameters
    /// Shifted B zero points per B batch (bBatches x n).
    private let shiftedB: UnsafeMutablePointer<Int32>
    private let bBatches: Int
    private let sums: UnsafeMutablePointer<Int32>
    private let output: UnsafeMutableRawPointer
    private let requantizer: Requantizer?
    private let aScaleCount: Int, bScaleCount: Int
    private let bias: UnsafePointer<Int32>?
    /// Requantization split by rows: a task made once, with the batch it works on.
    private var requantizeTask: ClosureTask?
    private var current = (batch: 0, perColumn: false)

    /// `QuantizedFusion.scaledMatMulInteger`: float(sums) · scale, the scale (one value or one per column) read
    /// each run into `columnScales`.
    private let scaleInput: (pointer: UnsafePointer<Float>, count: Int)?
    private let columnScales: UnsafeMutablePointer<Float>?
    /// Rows read in place by the in-place windows (`QuadIntegerConv` as a 1x1 layer over batch · M positions of K
    /// channels, writing [M][N]): constant 2-D B with zero points 0 once signed, per-tensor unsigned A, K a multiple
    /// of 4, requantized or scaled output, where AVX-512 VNNI runs. No packing of A, no int32 sums in memory.
    private let quads: QuadIntegerConv?
    private let columnMultipliers: UnsafeMutablePointer<Double>
    /// Scales and bias are constants: the column multipliers are formed on the first run only.
    private let parametersConstant: Bool
    private var multipliersFormed = false

    var kernelDescription: String {
        quads != nil ? "IntegerMatMulKernel (rows in place)" : "IntegerMatMulKernel (packed rows)"
    }

    init(node: BoundNode, parallel: ParallelFor, quantizedOutput: Bool, scaledOutput: Bool = false) throws {
        self.parallel = parallel
        let (ai, bi) = quantizedOutput ? (0, 3) : (0, 1)
        let av = try node.input(ai), bv = try node.input(bi), yv = try node.output(0)
        let aDims = av.shape.rank == 1 ? [1, av.shape[0]] : av.shape.dimensions
        let bDims = bv.shape.rank == 1 ? [bv.shape[0], 1] : bv.shape.dimensions
        guard aDims.count >= 2, bDims.count >= 2 else { throw node.fail("MatMul inputs must not be scalars") }
        m = aDims[aDims.count - 2]
        k = aDims[aDims.count - 1]
        n = bDims[bDims.count - 1]
        guard bDims[bDims.count - 2] == k else { throw node.fail("inner dimensions differ: \(av.shape), \(bv.shape)") }
        let aBatch = Array(aDims.dropLast(2)), bBatch = Array(bDims.dropLast(2))
        let rank = max(aBatch.count, bBatch.count)
        let padA = [Int](repeating: 1, count: rank - aBatch.count) + aBatch
        let padB = [Int](repeating: 1, count: rank - bBatch.count) + bBatch
        var outBatch: [Int] = []
        for (x, y) in zip(padA, padB) {
            guard x == y || x == 1 || y == 1 else { throw node.fail("batch dimensions do not broadcast") }
            outBatch.append(max(x, y))
        }
        aOffsets = broadcastOffsets(operand: Shape(padA), output: Shape(outBatch))
        bOffsets = broadcastOffsets(operand: Shape(padB), output: Shape(outBatch))
        bBatches = padB.reduce(1, *)
        aSigned = av.type.dtype == .int8
        bSigned = bv.type.dtype == .int8
        a = UnsafeRawPointer(try av.raw())
        b = UnsafeRawPointer(try bv.raw())
        let (k, n, signed) = (k, n, bSigned)
        rows = try PackedByteRows(m: m, k: k)
        bConstant = bv.constant != nil
        let packed = try (0..<(bConstant ? bBatches : 1)).map { _ in try PackedByteMatrix(k: k, n: n) }
        packedB = packed
        if let constant = bv.constant {
            constant.withUnsafeBytes { bytes in
                guard let base = bytes.baseAddress else { return }
                for (index, matrix) in packed.enumerated() { matrix.pack(base + index * k * n, ldb: n, signed: signed) }
            }
        }
        // Zero points: A per tensor or per row; B per tensor, per column, or per batch and column.
        let (azi, bzi) = quantizedOutput ? (2, 5) : (2, 3)
        let aZeroCount = node.optionalInput(azi)?.count ?? 1
        let bZeroCount = node.optionalInput(bzi)?.count ?? 1
        guard aZeroCount == 1 || aZeroCount == m else { throw node.fail("the A zero point needs 1 or \(m) values") }
        guard bZeroCount == 1 || bZeroCount == n || bZeroCount == bBatches * n else {
            throw node.fail("the B zero point needs 1, \(n) or \(bBatches * n) values")
        }
        aZeros = try IntParameters(node.optionalInput(azi), count: aZeroCount, node: node)
        bZeros = try IntParameters(node.optionalInput(bzi), count: bZeroCount, node: node)
        shiftedB = .allocate(capacity: max(bBatches * n, 1))
        shiftedB.initialize(repeating: 0, count: max(bBatches * n, 1))
        output = try yv.raw()
        if scaledOutput {
            let scale = try node.input(4)
            guard scale.type.dtype == .float32, scale.count == 1 || scale.count == n, yv.type.dtype == .float32 else {
                throw node.fail("the scale must be float32 with 1 or \(n) values, the output float32")
            }
            scaleInput = (UnsafePointer(try scale.pointer(Float.self)), scale.count)
            columnScales = .allocate(capacity: max(n, 1))
            columnScales?.initialize(repeating: 0, count: max(n, 1))
            (requantizer, aScaleCount, bScaleCount, bias) = (nil, 1, 1, nil)
        } else {
            (scaleInput, columnScales) = (nil, nil)
            (requantizer, aScaleCount, bScaleCount, bias) = try Self.requantization(
                node, quantizedOutput: quantizedOutput, m: m, n: n, bBatches: bBatches, output: yv)
        }
        let centred: Int32 = bSigned ? 0 : 128
        let rowsInPlace = aOffsets.enumerated().allSatisfy { $0.offset == $0.element }
        let bZeroValues = bZeros
        let aScales = aScaleCount, aUnsigned = !aSigned, batches = aOffsets.count, bSignedLocal = bSigned
        if let constant = bv.constant, bBatches == 1, bZeroValues.isConstant,
            (0..<bZeroCount).allSatisfy({ bZeroValues.values[$0] == centred }), aZeroCount == 1, aUnsigned,
            k % 4 == 0, rowsInPlace, scaledOutput || (quantizedOutput && aScales == 1)
        {
            // The weights as the windows' filters: [N][K] (B transposed once).
            let transposed = try constant.withUnsafeBytes { bytes -> Tensor in
                var values = [UInt8](repeating: 0, count: k * n)
                if let base = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self) {
                    for row in 0..<k { for column in 0..<n { values[column * k + row] = base[row * n + column] } }
                }
                return bSignedLocal
                    ? try Tensor(shape: [n, k, 1, 1], scalars: values.map { Int8(bitPattern: $0) })
                    : try Tensor(shape: [n, k, 1, 1], scalars: values)
            }
            let positions = batches * m
            quads = try QuadIntegerConv.make(
                .init(
                    channels: k, inH: 1, inW: positions, filters: n, kH: 1, kW: 1, stride: 1, padTop: 0, padLeft: 0,
                    outH: 1, outW: positions),
                weights: transposed, wSigned: bSignedLocal, xSigned: false, parallel: parallel, inputChannelsLast: true,
                outputChannelsLast: true, scaledOutput: scaledOutput)
        } else {
            quads = nil
        }
        columnMultipliers = .allocate(capacity: max(n, 1))
        columnMultipliers.initialize(repeating: 0, count: max(n, 1))
        let biasConstant = node.optionalInput(8).map { $0.constant != nil } ?? true
        parametersConstant = quantizedOutput && (requantizer?.constantMultipliers ?? false) && biasConstant
        sums = .allocate(capacity: quantizedOutput && quads == nil ? max(m * n, 1) : 1)
        requantizeTask = ClosureTask { [unowned self] _, begin, end in
            guard let requantizer else { return }
            for row in begin..<end {
                requantizer.apply(
                    sums: sums + row * n, n: n, bPerColumn: current.perColumn, bias: bias, y: output,
                    offset: (current.batch * m + row) * n)
            }
        }
    }

    /// QLinearMatMul: the requantizer, the counts of A and B scales (per row, per column), the int32 bias per
    /// column (only QuantizedFusion writes this ninth input, Gemm's bias); nil and 1 for MatMulInteger.
    private static func requantization(
        _ node: BoundNode, quantizedOutput: Bool, m: Int, n: Int, bBatches: Int, output yv: BoundValue
    ) throws -> (Requantizer?, Int, Int, UnsafePointer<Int32>?) {
        guard quantizedOutput else {
            guard yv.type.dtype == .int32 else { throw node.fail("MatMulInteger writes int32") }
            return (nil, 1, 1, nil)
        }
        let aScale = try node.input(1), bScale = try node.input(4)
        let aScaleCount = aScale.count, bScaleCount = bScale.count
        guard aScaleCount == 1 || aScaleCount == m else { throw node.fail("a_scale needs 1 or \(m) values") }
        guard bScaleCount == 1 || bScaleCount == n || bScaleCount == bBatches * n else {
            throw node.fail("b_scale needs 1, \(n) or \(bBatches * n) values")
        }
        guard try node.input(6).count == 1, try node.input(7).count == 1 else {
            throw node.fail("y_scale and y_zero_point must be scalars")
        }
        let requantizer = try Requantizer(
            aScales: try FloatParameters(aScale, count: aScaleCount),
            bScales: try FloatParameters(bScale, count: bScaleCount),
            yScale: try FloatParameters(try node.input(6), count: 1),
            yZero: try IntParameters(try node.input(7), count: 1, node: node),
            half: aScale.type.dtype == .float16, output: yv.type.dtype,
            relu: try node.attributes.int(QuantizedFusion.reluAttribute, default: 0) != 0, columns: n, node: node)
        guard let biasValue = node.optionalInput(8) else { return (requantizer, aScaleCount, bScaleCount, nil) }
        guard biasValue.type.dtype == .int32, biasValue.count == n else {
            throw node.fail("the bias must be int32 with \(n) values")
        }
        return (requantizer, aScaleCount, bScaleCount, UnsafePointer(try biasValue.pointer(Int32.self)))
    }

    deinit {
        shiftedB.deallocate()
        sums.deallocate()
        columnScales?.deallocate()
        columnMultipliers.deallocate()
    }

    func run() throws {
        aZeros.refresh()
        bZeros.refresh()
        if let quads {
            let x = a.assumingMemoryBound(to: UInt8.self)
            if let scaleInput {
                quads.runScaled(
                    x, xZero: aZeros.values[0], scale: scaleInput.pointer, count: scaleInput.count, into: output)
            } else if let requantizer {
                requantizer.refresh()
                if !parametersConstant || !multipliersFormed {
                    for j in 0..<n { columnMultipliers[j] = requantizer.multiplier(0, bScaleCount == 1 ? 0 : j) }
                    multipliersFormed = true
                }
                let rq = requantizer.tileRequantization(multipliers: columnMultipliers, bias: bias, y: output, ldy: 0)
                quads.run(
                    x, xZero: aZeros.values[0], multipliers: columnMultipliers, bias: bias, requant: rq, into: output,
                    constantParameters: parametersConstant)
            }
            return
        }
        rows.setZeros(aZeros.values, count: aZeros.count, signed: aSigned)
        let shift: Int32 = bSigned ? 128 : 0
        for index in 0..<(bBatches * n) {
            let source = bZeros.count == 1 ? 0 : (bZeros.count == n ? index % n : index)
            shiftedB[index] = bZeros.values[source] &+ shift
        }
        requantizer?.refresh()
        if let scaleInput, let columnScales {
            for j in 0..<n { columnScales[j] = scaleInput.pointer[scaleInput.count == 1 ? 0 : j] }
        }
        for batch in aOffsets.indices {
            rows.pack(a + aOffsets[batch] * m * k, lda: k, signed: aSigned, parallel: parallel)
            let bIndex = bOffsets[batch]
            let matrix: PackedByteMatrix
            if bConstant {
                matrix = packedB[bIndex]
            } else {
                matrix = packedB[0]
                matrix.pack(b + bIndex * k * n, ldb: n, signed: bSigned)
            }
            let bZero = UnsafePointer(shiftedB + bIndex * n)
            guard let requantizer else {
                let c = output.assumingMemoryBound(to: Int32.self) + batch * m * n
                rows.multiply(matrix, bZeros: bZero, into: c, ldc: n, parallel: parallel, scale: columnScales)
                continue
            }
            rows.multiply(matrix, bZeros: bZero, into: sums, ldc: n, parallel: parallel)
            let perColumn = bScaleCount > 1
            let bBase = bScaleCount == bBatches * n && bScaleCount > n ? bIndex * n : 0
            let (sums, bias, output, n) = (sums, bias, output, n)
            if aScaleCount == 1, let requantizeTask {
                // One multiplier row for all rows: rows split across threads.
                requantizer.prepare(aIndex: 0, bBase: bBase, bPerColumn: perColumn, n: n)
                current = (batch, perColumn)
                parallel.run(requantizeTask, count: m)
            } else {
                for row in 0..<m {
                    requantizer.store(
                        row: row, sums: sums + row * n, n: n, aIndex: row, bBase: bBase, bPerColumn: perColumn,
                        bias: bias, y: output, offset: (batch * m + row) * n)
                }
            }
        }
    }
}

/// ConvInteger (int32 out) and QLinearConv (requantized 8-bit out): per image and group, the weights (packed once)
/// times the image's columns (im2col of bytes padded with the input zero point, packed per run), 1-D and 2-D.
final class IntegerConvKernel: Kernel, DescribedKernel {
    private let parallel: ParallelFor
    private let batch: Int, groups: Int, channelsPerGroup: Int, filtersPerGroup: Int
    private let inH: Int, inW: Int, outH: Int, outW: Int
    private let kH: Int, kW: Int, strideH: Int, strideW: Int, dilationH: Int, dilationW: Int, padTop: Int, padLeft: Int
    private let x: UnsafeRawPointer, xSigned: Bool
    private let weights: [PackedByteRows]
    private let columns: UnsafeMutablePointer<UInt8>
    private let columnBuffer: HostBuffer
    private let packedColumns: PackedByteMatrix
    private let xZero: IntParameters, wZeros: IntParameters
    private let columnZeros: UnsafeMutablePointer<Int32>
    private let sums: UnsafeMutablePointer<Int32>
    private let output: UnsafeMutableRawPointer
    private let requantizer: Requantizer?
    private let bias: UnsafePointer<Int32>?
    private let wScaleCount: Int
    private let wSigned: Bool
    private let runtimeWeights: UnsafeRawPointer?
    /// 1x1, stride 1, no padding: the image is the column matrix.
    private let pointwise: Bool
    /// Packing the im2col panels straight from the zero-point-padded image (`ck_qgemm_pack_conv_panels`): the
    /// padded image's size, and its buffer; nil where that packer does not serve (the im2col matrix is built).
    private let padded: (height: Int, width: Int, buffer: HostBuffer)?
    /// Tasks made once (runs allocate nothing), with the image, group and output offset they work on.
    private var im2colTask: ClosureTask?
    private var packDirect: ((Int, Int, Int) -> Void)?
    private var image0: UnsafePointer<UInt8>?
    private var pad0: UInt8 = 0
    /// QLinearConv: every filter's requantization multiplier (formed per run: scales may be computed), and the
    /// tiles' requantization of the current image and group.
    private let filterMultipliers: UnsafeMutablePointer<Double>
    private let tileRequant: UnsafeMutablePointer<ck_qrequant>
    /// Windows read in place instead of im2col, where a kernel of this machine serves the layer.
    private let quads: (any InPlaceIntegerConv)?
    /// Scales and bias are constants: the filter multipliers are formed on the first run only.
    private let parametersConstant: Bool
    private var multipliersFormed = false

    var kernelDescription: String {
        quads != nil ? "IntegerConvKernel (windows in place)" : "IntegerConvKernel (im2col)"
    }

    init(node: BoundNode, parallel: ParallelFor, quantizedOutput: Bool) throws {
        self.parallel = parallel
        let (xi, wi) = quantizedOutput ? (0, 3) : (0, 1)
        let xv = try node.input(xi), wv = try node.input(wi), yv = try node.output(0)
        let spatial = xv.shape.rank - 2
        guard spatial == 1 || spatial == 2 else {
            throw node.fail("integer convolutions of \(spatial) spatial axes are not supported (1-D and 2-D are)")
        }
        var context = node.shapeContext
        context.inputs = [xv.type, wv.type]
        context.constants = []
        let kernel = try node.attributes.ints("kernel_shape") ?? Array(wv.shape.dimensions.dropFirst(2))
        let g = try ConvGeometry.forward(context, input: Array(xv.shape.dimensions.dropFirst(2)), kernel: kernel)
        func axis2(_ values: [Int], _ fill: Int) -> (Int, Int) {
            spatial == 1 ? (fill, values[0]) : (values[0], values[1])
        }
        (inH, inW) = axis2(g.input, 1)
        (outH, outW) = axis2(g.output, 1)
        (kH, kW) = axis2(g.kernel, 1)
        (strideH, strideW) = axis2(g.strides, 1)
        (dilationH, dilationW) = axis2(g.dilations, 1)
        (padTop, padLeft) = axis2(g.padsBegin, 0)
        pointwise =
            g.kernel.allSatisfy { $0 == 1 } && g.strides.allSatisfy { $0 == 1 } && g.padsBegin.allSatisfy { $0 == 0 }
            && g.padsEnd.allSatisfy { $0 == 0 }
        groups = try node.attributes.int("group", default: 1)
        batch = xv.shape[0]
        channelsPerGroup = xv.shape[1] / max(groups, 1)
        filtersPerGroup = wv.shape[0] / max(groups, 1)
        xSigned = xv.type.dtype == .int8
        wSigned = wv.type.dtype == .int8
        x = UnsafeRawPointer(try xv.raw())
        let rowsPerFilter = channelsPerGroup * kH * kW
        let outputCount = outH * outW
        let (filtersPerGroup, signed) = (filtersPerGroup, wSigned)
        let (xzi, wzi) = quantizedOutput ? (2, 5) : (2, 3)
        guard (node.optionalInput(xzi)?.count ?? 1) == 1 else {
            throw node.fail("the input zero point must be a scalar")
        }
        let filters = wv.shape[0]
        let wZeroCount = node.optionalInput(wzi)?.count ?? 1
        guard wZeroCount == 1 || wZeroCount == filters else {
            throw node.fail("the weight zero point needs 1 or \(filters) values")
        }
        let wZeros = try IntParameters(node.optionalInput(wzi), count: wZeroCount, node: node)
        xZero = try IntParameters(node.optionalInput(xzi), count: 1, node: node)
        self.wZeros = wZeros
        // QLinearConv of one group with constant weights whose zero point is 0 once signed (int8 0, uint8 128):
        // windows read in place where the machine has the kernel (`QuadIntegerConv`), no im2col buffers.
        // Planning's marks inside int8 chains (`QuantizedChannelsLast`): only the in-place windows read and write
        // channels last.
        let channelsLastInput = try node.attributes.int(FusionRules.channelsLastInputAttribute, default: 0) != 0
        let channelsLastOutput = try node.attributes.int(FusionRules.channelsLastOutputAttribute, default: 0) != 0
        let zeroInSigned: Int32 = wSigned ? 0 : 128
        let symmetric = wZeros.isConstant && (0..<wZeroCount).allSatisfy { wZeros.values[$0] == zeroInSigned }
        var windows: (any InPlaceIntegerConv)? = nil
        if quantizedOutput, groups == 1, dilationH == 1, dilationW == 1, strideH == strideW, let constant = wv.constant
        {
            let geometry = QuadIntegerConv.Geometry(
                channels: channelsPerGroup, inH: inH, inW: inW, filters: filtersPerGroup, kH: kH, kW: kW,
                stride: strideH, padTop: padTop, padLeft: padLeft, outH: outH, outW: outW)
            if symmetric {
                windows = try QuadIntegerConv.make(
                    geometry, weights: constant, wSigned: wSigned, xSigned: xSigned, parallel: parallel,
                    inputChannelsLast: channelsLastInput, outputChannelsLast: channelsLastOutput)
            }
            // AVX2 without VNNI (planes only): any constant zero points, subtracted from the weights once.
            if windows == nil, !channelsLastInput, !channelsLastOutput, wZeros.isConstant {
                windows = try PairIntegerConv.make(
                    geometry, weights: constant, wSigned: wSigned, wZeros: wZeros.values, wZeroCount: wZeroCount,
                    xSigned: xSigned, parallel: parallel)
            }
        }
        quads = windows
        if quads == nil, channelsLastInput || channelsLastOutput {
            let attribute =
                channelsLastInput ? FusionRules.channelsLastInputAttribute : FusionRules.channelsLastOutputAttribute
            throw node.fail(
                "'\(attribute)' is planning's mark for an ungrouped QLinearConv of constant weights (zero point 0 once "
                    + "signed), no dilation, stride 1 or 2, an unsigned image of whole channel quads, where AVX-512 "
                    + "VNNI runs; remove the attribute")
        }
        let quadsServe = quads != nil
        let packed = try (quadsServe ? 0..<0 : 0..<groups).map { _ in
            try PackedByteRows(m: filtersPerGroup, k: rowsPerFilter)
        }
        weights = packed
        // Constant weights are packed once; weights computed by the model are packed on every run.
        let weightBytes = UnsafeRawPointer(try wv.raw())
        if let constant = wv.constant {
            constant.withUnsafeBytes { bytes in
                guard let base = bytes.baseAddress else { return }
                for (group, rows) in packed.enumerated() {
                    rows.pack(base + group * filtersPerGroup * rowsPerFilter, lda: rowsPerFilter, signed: signed)
                }
            }
            runtimeWeights = nil
        } else {
            runtimeWeights = weightBytes
        }
        // The column matrix is not a tensor of the model: its size (window x output positions) is checked here, so
        // a hostile kernel shape is an error, not an overflow or an allocation the machine cannot make.
        let (columnBytes, overflow) = rowsPerFilter.multipliedReportingOverflow(by: outputCount + 16)
        guard !overflow, columnBytes <= 1 << 40 else {
            throw node.fail("the im2col matrix (\(rowsPerFilter) rows x \(outputCount) positions) is too large")
        }
        // Without dilation, at stride 1 or 2 (and on machines with that packer) the panels come from a padded copy
        // of the image: building the whole im2col matrix and packing it from memory was 30% of ResNet-18's int8
        // time (1.8 MB of columns for each 3x3 layer at 56x56).
        let paddedHeight = (outH - 1) * strideH + kH, paddedWidth = (outW - 1) * strideW + kW
        let paddedPlane = paddedHeight.multipliedReportingOverflow(by: paddedWidth)
        let paddedBytes = paddedPlane.partialValue.multipliedReportingOverflow(by: channelsPerGroup)
        if !quadsServe, !pointwise, dilationH == 1, dilationW == 1, strideH == strideW,
            ck_qgemm_conv_direct(strideH) != 0,
            !paddedPlane.overflow, !paddedBytes.overflow, paddedPlane.partialValue < 1 << 30,
            paddedBytes.partialValue <= 1 << 34
        {
            padded = (paddedHeight, paddedWidth, try HostBuffer(bytes: paddedBytes.partialValue + 64))
        } else {
            padded = nil
        }
        columnBuffer = try HostBuffer(
            bytes: max(pointwise || padded != nil || quadsServe ? 1 : rowsPerFilter * outputCount, 1))
        columns = columnBuffer.pointer.assumingMemoryBound(to: UInt8.self)
        packedColumns = try PackedByteMatrix(k: rowsPerFilter, n: quadsServe ? 0 : outputCount)
        columnZeros = .allocate(capacity: max(outputCount, 1))
        columnZeros.initialize(repeating: 0, count: max(outputCount, 1))
        output = try yv.raw()
        (requantizer, wScaleCount, bias) = try Self.requantization(
            node, quantizedOutput: quantizedOutput, filters: filters, output: yv)
        let biasConstant = node.optionalInput(8).map { $0.constant != nil } ?? true
        parametersConstant = quantizedOutput && (requantizer?.constantMultipliers ?? false) && biasConstant
        // QLinearConv's tiles store requantized bytes: the int32 sums are never written (one placeholder value).
        sums = .allocate(capacity: 1)
        filterMultipliers = .allocate(capacity: max(filters, 1))
        filterMultipliers.initialize(repeating: 0, count: max(filters, 1))
        tileRequant = .allocate(capacity: 1)
        tileRequant.initialize(to: ck_qrequant())
        makeTasks()
    }

    /// The packer from the padded image, the im2col and requantization tasks, made once so runs allocate nothing.
    private func makeTasks() {
        if let padded {
            let image = padded.buffer.pointer.assumingMemoryBound(to: UInt8.self)
            packDirect = { [unowned self] _, begin, end in
                ck_qgemm_pack_conv_panels(
                    image, padded.height, padded.width, kH, kW, strideH, outH, outW, channelsPerGroup, xSigned ? 1 : 0,
                    packedColumns.packed.pointer, packedColumns.columnSums, begin, end)
            }
        }
        im2colTask = ClosureTask { [unowned self] _, first, last in
            guard let image = image0 else { return }
            let rows = channelsPerGroup * kH * kW
            let chunks = max(1, min(self.parallel.threads, rows * outH * outW / 32768))
            ck_im2col_u8(
                image, inH, inW, kH, kW, strideH, strideW, dilationH, dilationW, padTop, padLeft, outH, outW, pad0,
                columns, rows * first / chunks, rows * last / chunks)
        }
    }

    /// QLinearConv: the requantizer (per-channel weight scales), how many weight scales, the int32 bias; nil and 1
    /// for ConvInteger, which writes its int32 sums. `IntegerDepthwiseKernel` reads QLinearConv the same way.
    static func requantization(
        _ node: BoundNode, quantizedOutput: Bool, filters: Int, output yv: BoundValue
    ) throws -> (Requantizer?, Int, UnsafePointer<Int32>?) {
        guard quantizedOutput else {
            guard yv.type.dtype == .int32 else { throw node.fail("ConvInteger writes int32") }
            return (nil, 1, nil)
        }
        let wScale = try node.input(4)
        let wScaleCount = wScale.count
        guard wScaleCount == 1 || wScaleCount == filters else {
            throw node.fail("w_scale needs 1 or \(filters) values")
        }
        guard try node.input(1).count == 1, try node.input(6).count == 1, try node.input(7).count == 1 else {
            throw node.fail("x_scale, y_scale and y_zero_point must be scalars")
        }
        // Per output channel the weight scale varies with the row of the GEMM: the "A" side here.
        let requantizer = try Requantizer(
            aScales: try FloatParameters(wScale, count: wScaleCount),
            bScales: try FloatParameters(try node.input(1), count: 1),
            yScale: try FloatParameters(try node.input(6), count: 1),
            yZero: try IntParameters(try node.input(7), count: 1, node: node),
            half: wScale.type.dtype == .float16, output: yv.type.dtype,
            relu: try node.attributes.int(QuantizedFusion.reluAttribute, default: 0) != 0, columns: 1, node: node)
        guard let biasValue = node.optionalInput(8) else { return (requantizer, wScaleCount, nil) }
        guard biasValue.type.dtype == .int32, biasValue.count == filters else {
            throw node.fail("the bias must be int32 with \(filters) values")
        }
        return (requantizer, wScaleCount, UnsafePointer(try biasValue.pointer(Int32.self)))
    }

    deinit {
        columnZeros.deallocate()
        sums.deallocate()
        filterMultipliers.deallocate()
        tileRequant.deallocate()
    }

    /// The columns of one image and group: row (c, ky, kx), column (oy, ox), padding filled with the zero point;
    /// rows split across threads. A 1x1, stride-1, unpadded convolution reads the image itself.
    private func columns(of image: UnsafePointer<UInt8>, pad: UInt8) -> UnsafeRawPointer {
        if pointwise { return UnsafeRawPointer(image) }
        if let padded {
            ck_pad_u8(
                image, channelsPerGroup, inH, inW, padTop, padLeft, padded.height, padded.width, pad,
                padded.buffer.pointer.assumingMemoryBound(to: UInt8.self))
            return UnsafeRawPointer(padded.buffer.pointer)
        }
        let rows = channelsPerGroup * kH * kW
        image0 = image
        pad0 = pad
        if let im2colTask { parallel.run(im2colTask, count: max(1, min(parallel.threads, rows * outH * outW / 32768))) }
        return UnsafeRawPointer(columns)
    }

    func run() throws {
        xZero.refresh()
        wZeros.refresh()
        let outputCount = outH * outW
        let xz = xZero.values[0]
        let pad = UInt8(truncatingIfNeeded: xz)
        let shiftedX = xz &+ (xSigned ? 128 : 0)
        // The im2col path's per-column zero points (the in-place windows fold the image's into their bias).
        if quads == nil { for j in 0..<outputCount { columnZeros[j] = shiftedX } }
        requantizer?.refresh()
        let bytes = x.assumingMemoryBound(to: UInt8.self)
        let filters = groups * filtersPerGroup
        if let requantizer, !parametersConstant || !multipliersFormed {
            for filter in 0..<filters {
                filterMultipliers[filter] = requantizer.multiplier(wScaleCount == 1 ? 0 : filter, 0)
            }
            multipliersFormed = true
        }
        if let runtimeWeights {
            let rowsPerFilter = channelsPerGroup * kH * kW
            for (group, rows) in weights.enumerated() {
                rows.pack(
                    runtimeWeights + group * filtersPerGroup * rowsPerFilter, lda: rowsPerFilter, signed: wSigned)
            }
        }
        if let quads, let requantizer {
            let rq = requantizer.tileRequantization(multipliers: filterMultipliers, bias: bias, y: output, ldy: 0)
            for image in 0..<batch {
                quads.run(
                    bytes + image * channelsPerGroup * inH * inW, xZero: xz, multipliers: filterMultipliers, bias: bias,
                    requant: rq, into: output + image * filters * outputCount, constantParameters: parametersConstant)
            }
            return
        }
        for image in 0..<batch {
            for group in 0..<groups {
                let rows = weights[group]
                let first = group * filtersPerGroup
                if wZeros.count == 1 {
                    rows.setZeros(wZeros.values, count: 1, signed: wSigned)
                } else {
                    rows.setZeros(wZeros.values + first, count: filtersPerGroup, signed: wSigned)
                }
                let matrix = columns(of: bytes + (image * groups + group) * channelsPerGroup * inH * inW, pad: pad)
                let source = (matrix: matrix, ldb: outputCount, signed: xSigned)
                let packer = padded != nil ? packDirect : nil
                let outOffset = (image * filters + first) * outputCount
                guard requantizer != nil else {
                    let c = output.assumingMemoryBound(to: Int32.self) + outOffset
                    rows.multiply(
                        packedColumns, bZeros: columnZeros, into: c, ldc: outputCount, parallel: parallel,
                        packing: source, packer: packer)
                    continue
                }
                guard let requantizer else { continue }
                // The tiles requantize their sums in registers: no int32 sums in memory, no pass over them.
                tileRequant.pointee = requantizer.tileRequantization(
                    multipliers: filterMultipliers + first, bias: bias.map { $0 + first }, y: output + outOffset,
                    ldy: outputCount)
                rows.multiply(
                    packedColumns, bZeros: columnZeros, into: sums, ldc: outputCount, parallel: parallel,
                    packing: source, packer: packer, requant: UnsafePointer(tileRequant))
            }
        }
    }
}
