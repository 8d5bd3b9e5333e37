import CKernels
import InferenceRuntime
import InferenceTensor

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// LSTM and GRU with the default activations and constant weights, as GEMMs: the input projection of every time
/// step is one packed GEMM per direction (X·Wᵀ plus the foldable biases, split across threads), each step's
/// recurrent product H·Rᵀ runs the packed kernel over all batch rows at once, and the gates are one vectorized C
/// pass (ck_lstm_cell, ck_gru_cell). Weights are packed and scratch is allocated when the kernel is made: a run
/// allocates nothing. Other configurations (custom activations, weights computed at run time) run
/// `RecurrentKernel`, the scalar reference this kernel is tested against.
final class PackedRecurrentKernel: Kernel {
    private let cell: RecurrentKernel.Cell
    private let name: String
    private let seq: Int, batch: Int, inputSize: Int, hidden: Int, directions: Int, gates: Int
    private let layout: Int, reverseOnly: Bool, clip: Float, linearBeforeReset: Bool
    private let parallel: ParallelFor
    private let task = GemmTask(), stepTask = GemmTask()
    private let x: UnsafePointer<Float>
    private let sequences: RecurrentSequences
    private let y: UnsafeMutablePointer<Float>?, yH: UnsafeMutablePointer<Float>?, yC: UnsafeMutablePointer<Float>?

    /// Per direction: packed Wᵀ (K = input, N = gates·h), packed Rᵀ for the gates read from rec (LSTM: all four;
    /// GRU: z, r, and h when linear_before_reset), packed R_hᵀ for the GRU candidate otherwise.
    private let packedW: [PackedMatrix], packedR: [PackedMatrix], packedRh: [PackedMatrix?]
    /// Per direction: the bias added to the input projection (Wb + the recurrent biases that can be folded),
    /// the bias of rec (GRU with linear_before_reset: Rb_h on the candidate's columns), and of rec_h.
    private let preBias: [[Float]], recBias: [[Float]?], recHBias: [[Float]?]
    private let peepholes: [[Float]?]
    /// Scratch: the input projection of every step, the recurrent products, states, the GRU's r ⊙ h.
    private let pre: UnsafeMutablePointer<Float>, rec: UnsafeMutablePointer<Float>
    private let recH: UnsafeMutablePointer<Float>, resetState: UnsafeMutablePointer<Float>
    private let state: UnsafeMutablePointer<Float>, cellState: UnsafeMutablePointer<Float>
    private let recColumns: Int
    /// Owns the scratch memory the pointers above point into.
    private let scratch: [HostBuffer]

    /// Whether this kernel handles the node: default activations and constant W, R, B and peepholes.
    static func applies(_ node: BoundNode) -> Bool {
        guard let attributes = try? RecurrentAttributes(node.attributes),
            let w = node.optionalInput(1), w.constant != nil, let r = node.optionalInput(2), r.constant != nil,
            node.optionalInput(3).map({ $0.constant != nil }) ?? true,
            node.optionalInput(7).map({ $0.constant != nil }) ?? true
        else { return false }
        let defaults: [RecurrentAttributes.Function] =
            attributes.isLSTM ? [.sigmoid, .tanh, .tanh] : (attributes.isRNN ? [.tanh] : [.sigmoid, .tanh])
        let functions = attributes.activations.map(\.function)
        return functions.count == defaults.count * attributes.directions
            && zip(functions, Array(repeating: defaults, count: attributes.directions).joined()).allSatisfy { $0 == $1 }
    }

    init(node: BoundNode, cell: RecurrentKernel.Cell, parallel: ParallelFor) throws {
        self.cell = cell
        self.parallel = parallel
        name = node.step.node.displayName
        let attributes = try RecurrentAttributes(node.attributes)
        let xv = try node.input(0)
        (seq, batch, inputSize) = try attributes.sizes(of: xv.shape.dimensions, node: node.step.node.displayName)
        (layout, hidden, directions) = (attributes.layout, attributes.hidden, attributes.directions)
        (reverseOnly, linearBeforeReset, clip) = (
            attributes.reverseOnly, attributes.linearBeforeReset, attributes.clip ?? 0
        )
        gates = cell == .lstm ? 4 : (cell == .gru ? 3 : 1)
        x = UnsafePointer(try xv.pointer(Float.self))
        sequences = try RecurrentSequences(node: node, attributes: attributes)
        let outputs = node.outputs
        y = outputs.count > 0 && outputs[0].count > 0 ? try outputs[0].pointer(Float.self) : nil
        yH = outputs.count > 1 ? try outputs[1].pointer(Float.self) : nil
        yC = outputs.count > 2 ? try outputs[2].pointer(Float.self) : nil

        guard let wTensor = node.optionalInput(1)?.constant, let rTensor = node.optionalInput(2)?.constant else {
            throw RuntimeError.invalidNode(node: name, detail: "W and R must be constant for the packed kernel")
        }
        let h = hidden, g = gates, directions = directions
        let w = try wTensor.scalars(as: Float.self)
        let r = try rTensor.scalars(as: Float.self)
        let b = try node.optionalInput(3)?.constant?.scalars(as: Float.self)
        let p = try node.optionalInput(7)?.constant?.scalars(as: Float.self)
        // hidden_size is an attribute: compare through checked products (an absurd value matches nothing).
        func count(_ factors: [Int]) -> Int { Shape.checkedElementCount(factors) ?? -1 }
        guard w.count == count([directions, g, h, inputSize]), r.count == count([directions, g, h, h]),
            b.map({ $0.count == count([directions, 2, g, h]) }) ?? true,
            p.map({ $0.count == count([directions, 3, h]) }) ?? true
        else { throw RuntimeError.invalidNode(node: name, detail: "W, R, B or P do not match hidden_size \(h)") }
        let separateCandidate = cell == .gru && !linearBeforeReset
        recColumns = separateCandidate ? 2 * h : g * h
        var packedW: [PackedMatrix] = [], packedR: [PackedMatrix] = [], packedRh: [PackedMatrix?] = []
        var preBias: [[Float]] = [], recBias: [[Float]?] = [], recHBias: [[Float]?] = [], peepholes: [[Float]?] = []
        for d in 0..<directions {
            let packed = try Self.pack(
                direction: d, weights: (w, r, b, p), cell: cell, linearBeforeReset: linearBeforeReset,
                sizes: (h, g, inputSize, recColumns))
            packedW.append(packed.w)
            packedR.append(packed.r)
            packedRh.append(packed.rh)
            preBias.append(packed.preBias)
            recBias.append(packed.recBias)
            recHBias.append(packed.recHBias)
            peepholes.append(packed.peepholes)
        }
        self.packedW = packedW
        self.packedR = packedR
        self.packedRh = packedRh
        self.preBias = preBias
        self.recBias = recBias
        self.recHBias = recHBias
        self.peepholes = peepholes
        // Sizes come from the model: checked arithmetic, and buffers that fail cleanly past physical memory.
        guard let count = Shape.checkedElementCount([seq, batch, g, h]),
            let stateCount = Shape.checkedElementCount([batch, g, h]), count <= Int.max / 4
        else {
            throw RuntimeError.invalidNode(node: name, detail: "the sequence is too large")
        }
        func buffer(_ floats: Int) throws -> HostBuffer { try HostBuffer(bytes: max(floats, 1) * 4) }
        scratch = [
            try buffer(count), try buffer(stateCount), try buffer(batch * h), try buffer(batch * h),
            try buffer(batch * h), try buffer(batch * h),
        ]
        let floats = scratch.map { $0.pointer.assumingMemoryBound(to: Float.self) }
        (pre, rec, recH, resetState, state, cellState) = (
            floats[0], floats[1], floats[2], floats[3], floats[4], floats[5]
        )
    }

    /// One direction's weights packed for the GEMM kernels and its biases folded: W and R (for a GRU without
    /// linear_before_reset, R without its candidate rows, which get a matrix of their own), the bias added to
    /// x·Wᵀ, the biases added to the recurrent products, and the peepholes.
    static func pack(
        direction d: Int, weights: (w: [Float], r: [Float], b: [Float]?, p: [Float]?), cell: RecurrentKernel.Cell,
        linearBeforeReset: Bool, sizes: (h: Int, g: Int, inputSize: Int, recColumns: Int)
    ) throws -> (
        w: PackedMatrix, r: PackedMatrix, rh: PackedMatrix?, preBias: [Float], recBias: [Float]?, recHBias: [Float]?,
        peepholes: [Float]?
    ) {
        let (h, g, inputSize, recColumns) = sizes
        let (w, r, b, p) = weights
        let wd = Array(w[(d * g * h * inputSize)..<((d + 1) * g * h * inputSize)])
        let rd = Array(r[(d * g * h * h)..<((d + 1) * g * h * h)])
        let packedW = try PackedMatrix(Tensor(shape: [g * h, inputSize], scalars: wd), transposed: true, form: .packed)
        let packedR = try PackedMatrix(
            Tensor(shape: [recColumns, h], scalars: Array(rd[0..<(recColumns * h)])), transposed: true, form: .packed)
        let separateCandidate = cell == .gru && !linearBeforeReset
        let packedRh =
            separateCandidate
            ? try PackedMatrix(
                Tensor(shape: [h, h], scalars: Array(rd[(2 * h * h)...])), transposed: true, form: .packed)
            : nil
        let wb = b.map { Array($0[(d * 2 * g * h)..<(d * 2 * g * h + g * h)]) } ?? [Float](repeating: 0, count: g * h)
        let rb =
            b.map { Array($0[(d * 2 * g * h + g * h)..<((d + 1) * 2 * g * h)]) } ?? [Float](repeating: 0, count: g * h)
        let peepholes = p.map { Array($0[(d * 3 * h)..<((d + 1) * 3 * h)]) }
        guard cell == .gru else {
            return (packedW, packedR, packedRh, zip(wb, rb).map { $0 + $1 }, nil, nil, peepholes)
        }
        // z and r fold both biases; the candidate's Rb_h stays with its recurrent product.
        let preBias = (0..<(g * h)).map { $0 < 2 * h ? wb[$0] + rb[$0] : wb[$0] }
        let candidateBias = Array(rb[(2 * h)...])
        return (
            packedW, packedR, packedRh, preBias,
            linearBeforeReset ? [Float](repeating: 0, count: 2 * h) + candidateBias : nil,
            linearBeforeReset ? nil : candidateBias, peepholes
        )
    }

    func run() throws {
        let uniform = try sequences.check()
        let h = hidden, g = gates
        if let y { y.update(repeating: 0, count: seq * directions * batch * h) }
        for d in 0..<directions {
            // pre[row] = x[row]·Wᵀ + bias for every (time, batch) row, rows in x's own order.
            preBias[d].withUnsafeBufferPointer { bias in
                packedGemm(
                    parallel, task: task, m: seq * batch, n: g * h, k: inputSize, a: x, lda: inputSize,
                    packed: packedW[d].pointer, accumulate: false, c: pre, ldc: g * h, panels: packedW[d].panels,
                    epilogue: ck_epilogue(
                        row_bias: nil, col_bias: bias.baseAddress, activation: ck_activation_none, low: 0, high: 0))
            }
            sequences.loadInitialStates(direction: d, state: state, cell: cellState)
            let reverse = reverseOnly || d == 1
            if uniform {
                for step in 0..<seq {
                    self.step(direction: d, time: reverse ? seq - 1 - step : step, rows: 0..<batch)
                }
            } else {
                // Different lengths: each batch row runs its own steps (reversed within its own length).
                for n in 0..<batch {
                    let length = sequences.length(n)
                    for step in 0..<length {
                        self.step(direction: d, time: reverse ? length - 1 - step : step, rows: n..<(n + 1))
                    }
                }
            }
            for n in 0..<batch {
                (yH.map { $0 + sequences.stateOffset(direction: d, row: n) })?.update(from: state + n * h, count: h)
                (yC.map { $0 + sequences.stateOffset(direction: d, row: n) })?.update(from: cellState + n * h, count: h)
            }
        }
    }

    /// One time step for a range of batch rows (all of them, or one when lengths differ).
    private func step(direction d: Int, time t: Int, rows: Range<Int>) {
        let h = hidden, g = gates
        let first = rows.lowerBound, count = rows.count
        let hs = state + first * h
        // The pre row of (t, n): consecutive n are one row apart in layout 0 ([seq, batch]), `seq` rows in layout 1.
        let preRow = (layout == 0 ? t * batch + first : first * seq + t) * g * h
        let preStride = (layout == 0 ? 1 : seq) * g * h
        // The recurrent product splits its column panels across threads when it is large enough (packedGemm).
        product(rows: count, columns: recColumns, a: hs, packed: packedR[d], bias: recBias[d], c: rec)
        switch cell {
        case .lstm:
            let cs = cellState + first * h
            if let peep = peepholes[d] {
                peep.withUnsafeBufferPointer { p in
                    ck_lstm_cell(count, h, pre + preRow, preStride, rec, recColumns, p.baseAddress, clip, cs, hs)
                }
            } else {
                ck_lstm_cell(count, h, pre + preRow, preStride, rec, recColumns, nil, clip, cs, hs)
            }
        case .gru:
            if let packedRh = packedRh[d] {
                ck_gru_reset(count, h, pre + preRow, preStride, rec, recColumns, clip, hs, resetState)
                product(rows: count, columns: h, a: resetState, packed: packedRh, bias: recHBias[d], c: recH)
                ck_gru_cell(count, h, pre + preRow, preStride, rec, recColumns, recH, h, 0, clip, hs)
            } else {
                ck_gru_cell(count, h, pre + preRow, preStride, rec, recColumns, rec + 2 * h, recColumns, 1, clip, hs)
            }
        case .rnn:
            // h = tanh(W·x + R·h + biases), clipped before the activation when clip is set (0: none).
            for n in 0..<count {
                let p = pre + preRow + n * preStride, q = rec + n * recColumns
                for j in 0..<h {
                    var v = p[j] + q[j]
                    if clip > 0 { v = Swift.min(Swift.max(v, -clip), clip) }
                    hs[n * h + j] = tanh(v)
                }
            }
        }
        if let y {
            for n in rows {
                let base = layout == 0 ? ((t * directions + d) * batch + n) * h : ((n * seq + t) * directions + d) * h
                (y + base).update(from: state + n * h, count: h)
            }
        }
    }

    /// c = a·packed (+ bias per column), a with `hidden` columns.
    private func product(
        rows: Int, columns: Int, a: UnsafePointer<Float>, packed: PackedMatrix, bias: [Float]?,
        c: UnsafeMutablePointer<Float>
    ) {
        guard let bias else {
            return packedGemm(
                parallel, task: stepTask, m: rows, n: columns, k: hidden, a: a, lda: hidden, packed: packed.pointer,
                accumulate: false, c: c, ldc: columns, panels: packed.panels)
        }
        bias.withUnsafeBufferPointer { pointer in
            packedGemm(
                parallel, task: stepTask, m: rows, n: columns, k: hidden, a: a, lda: hidden, packed: packed.pointer,
                accumulate: false, c: c, ldc: columns, panels: packed.panels,
                epilogue: ck_epilogue(
                    row_bias: nil, col_bias: pointer.baseAddress, activation: ck_activation_none, low: 0, high: 0))
        }
    }
}

enum RecurrentKernels {
    /// The packed kernel where it applies, else the scalar reference.
    static func make(_ node: BoundNode, cell: RecurrentKernel.Cell, parallel: ParallelFor) throws -> any Kernel {
        if PackedRecurrentKernel.applies(node) {
            return try PackedRecurrentKernel(node: node, cell: cell, parallel: parallel)
        }
        return try RecurrentKernel(node: node, cell: cell)
    }
}
