import InferenceRuntime
import InferenceTensor

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// LSTM, GRU and RNN (ONNX semantics: gate orders iofc and zrh, forward/reverse/bidirectional, sequence_lens,
/// initial states, peepholes, clip, custom activations, both layouts); float32.
final class RecurrentKernel: Kernel {
    enum Cell { case lstm, gru, rnn }

    private let cell: Cell
    private let seq: Int, batch: Int, inputSize: Int, hidden: Int, directions: Int
    private let layout: Int
    private let reverseOnly: Bool
    private let clip: Float?
    private let linearBeforeReset: Bool
    private let activations: [(Float) -> Float]
    private let x: UnsafePointer<Float>, w: UnsafePointer<Float>, r: UnsafePointer<Float>
    private let b: UnsafePointer<Float>?, peepholes: UnsafePointer<Float>?
    private let sequences: RecurrentSequences
    private let y: UnsafeMutablePointer<Float>?, yH: UnsafeMutablePointer<Float>?, yC: UnsafeMutablePointer<Float>?

    init(node: BoundNode, cell: Cell) throws {
        self.cell = cell
        let attributes = try RecurrentAttributes(node.attributes)
        let xv = try node.input(0)
        (seq, batch, inputSize) = try attributes.sizes(of: xv.shape.dimensions, node: node.step.node.displayName)
        (layout, hidden, directions) = (attributes.layout, attributes.hidden, attributes.directions)
        (reverseOnly, linearBeforeReset, clip) = (attributes.reverseOnly, attributes.linearBeforeReset, attributes.clip)
        activations = attributes.activations.map(Self.function)
        x = UnsafePointer(try xv.pointer(Float.self))
        w = UnsafePointer(try node.input(1).pointer(Float.self))
        r = UnsafePointer(try node.input(2).pointer(Float.self))
        b = try node.optionalInput(3).map { UnsafePointer(try $0.pointer(Float.self)) }
        sequences = try RecurrentSequences(node: node, attributes: attributes)
        peepholes = cell == .lstm ? try node.optionalInput(7).map { UnsafePointer(try $0.pointer(Float.self)) } : nil
        let outputs = node.outputs
        y = outputs.count > 0 && outputs[0].count > 0 ? try outputs[0].pointer(Float.self) : nil
        yH = outputs.count > 1 ? try outputs[1].pointer(Float.self) : nil
        yC = outputs.count > 2 ? try outputs[2].pointer(Float.self) : nil
    }

    /// The scalar function of a recurrent activation.
    static func function(_ activation: RecurrentAttributes.Activation) -> (Float) -> Float {
        let alpha = activation.alpha, beta = activation.beta
        switch activation.function {
        case .sigmoid: return { 1 / (1 + exp(-$0)) }
        case .tanh: return { tanh($0) }
        case .relu: return { max($0, 0) }
        case .softsign: return { $0 / (1 + abs($0)) }
        case .softplus: return { log(1 + exp($0)) }
        case .leakyRelu: return { $0 >= 0 ? $0 : alpha * $0 }
        case .thresholdedRelu: return { $0 > alpha ? $0 : 0 }
        case .elu: return { $0 >= 0 ? $0 : alpha * (exp($0) - 1) }
        case .hardSigmoid: return { max(0, min(1, alpha * $0 + beta)) }
        case .affine: return { alpha * $0 + beta }
        case .scaledTanh: return { alpha * tanh(beta * $0) }
        }
    }

    func run() throws {
        _ = try sequences.check()
        let gates = cell == .lstm ? 4 : (cell == .gru ? 3 : 1)
        let h = hidden
        var state = [Float](repeating: 0, count: batch * h)
        var cellState = [Float](repeating: 0, count: batch * h)
        var pre = [Float](repeating: 0, count: gates * h)
        var recurrent = [Float](repeating: 0, count: gates * h)
        var next = [Float](repeating: 0, count: h)
        var reset = [Float](repeating: 0, count: h)
        if let y { y.update(repeating: 0, count: seq * directions * batch * h) }
        for d in 0..<directions {
            let reverse = reverseOnly || d == 1
            let wd = w + d * gates * h * inputSize
            let rd = r + d * gates * h * h
            let wb = b.map { $0 + d * 2 * gates * h }
            let rb = wb.map { $0 + gates * h }
            let p = peepholes.map { $0 + d * 3 * h }
            let perDirection = cell == .lstm ? 3 : (cell == .gru ? 2 : 1)
            let f = activations[d * perDirection]
            let g = activations[d * perDirection + perDirection - 1 - (cell == .lstm ? 1 : 0)]
            let hAct = cell == .lstm ? activations[d * 3 + 2] : g
            state.withUnsafeMutableBufferPointer { s in
                cellState.withUnsafeMutableBufferPointer { c in
                    if let s = s.baseAddress, let c = c.baseAddress {
                        sequences.loadInitialStates(direction: d, state: s, cell: c)
                    }
                }
            }
            for n in 0..<batch {
                let length = sequences.length(n)
                for step in 0..<length {
                    let t = reverse ? length - 1 - step : step
                    let xt = x + (layout == 0 ? t * batch + n : n * seq + t) * inputSize
                    // pre = W·x + Wb, recurrent = R·h + Rb, per gate row.
                    for row in 0..<(gates * h) {
                        var s: Float = wb?[row] ?? 0
                        let wr = wd + row * inputSize
                        for k in 0..<inputSize { s += wr[k] * xt[k] }
                        pre[row] = s
                        var q: Float = rb?[row] ?? 0
                        let rr = rd + row * h
                        for k in 0..<h { q += rr[k] * state[n * h + k] }
                        recurrent[row] = q
                    }
                    if cell == .gru && !linearBeforeReset {
                        // The candidate reads (r ⊙ h) over every unit, so the whole reset gate comes first.
                        for k in 0..<h { reset[k] = f(clipped(pre[h + k] + recurrent[h + k])) * state[n * h + k] }
                    }
                    let gates = Gates(pre: pre, recurrent: recurrent, reset: reset)
                    for j in 0..<h {
                        next[j] = unit(
                            j, previous: state[n * h + j], cellState: &cellState[n * h + j], gates: gates,
                            direction: (p, rd, rb), activations: (f, g, hAct))
                    }
                    for j in 0..<h { state[n * h + j] = next[j] }
                    if let y {
                        let base =
                            layout == 0 ? ((t * directions + d) * batch + n) * h : ((n * seq + t) * directions + d) * h
                        for j in 0..<h { y[base + j] = next[j] }
                    }
                }
                let stateBase = sequences.stateOffset(direction: d, row: n)
                for j in 0..<h {
                    yH?[stateBase + j] = state[n * h + j]
                    yC?[stateBase + j] = cellState[n * h + j]
                }
            }
        }
    }

    /// A time step's gate inputs: W·x + Wb and R·h + Rb per gate row, and (GRU without linear_before_reset) r ⊙ h.
    private struct Gates {
        var pre: [Float], recurrent: [Float], reset: [Float]
    }

    private func clipped(_ v: Float) -> Float { clip.map { min(max(v, -$0), $0) } ?? v }

    /// Unit j's new hidden value (an LSTM also updates its cell state) from the step's gate inputs.
    private func unit(
        _ j: Int, previous: Float, cellState: inout Float, gates: Gates,
        direction: (peepholes: UnsafePointer<Float>?, r: UnsafePointer<Float>, rb: UnsafePointer<Float>?),
        activations: (f: (Float) -> Float, g: (Float) -> Float, h: (Float) -> Float)
    ) -> Float {
        let (pre, recurrent, h, p) = (gates.pre, gates.recurrent, hidden, direction.peepholes)
        let (f, g) = (activations.f, activations.g)
        switch cell {
        case .lstm:
            let c0 = cellState
            let i = f(clipped(pre[j] + recurrent[j] + (p?[j] ?? 0) * c0))
            let fg = f(clipped(pre[2 * h + j] + recurrent[2 * h + j] + (p?[2 * h + j] ?? 0) * c0))
            let c = g(clipped(pre[3 * h + j] + recurrent[3 * h + j]))
            let c1 = fg * c0 + i * c
            let o = f(clipped(pre[h + j] + recurrent[h + j] + (p?[h + j] ?? 0) * c1))
            cellState = c1
            return o * activations.h(c1)
        case .gru:
            let z = f(clipped(pre[j] + recurrent[j]))
            let rg = f(clipped(pre[h + j] + recurrent[h + j]))
            var candidate: Float
            if linearBeforeReset {
                candidate = pre[2 * h + j] + rg * recurrent[2 * h + j]
            } else {
                var q: Float = direction.rb?[2 * h + j] ?? 0
                let rr = direction.r + (2 * h + j) * h
                for k in 0..<h { q += rr[k] * gates.reset[k] }
                candidate = pre[2 * h + j] + q
            }
            return (1 - z) * g(clipped(candidate)) + z * previous
        case .rnn:
            return f(clipped(pre[j] + recurrent[j]))
        }
    }
}

/// What both recurrent kernels read the same way: sequence_lens (user data, checked on every run) and the
/// initial and final states' layout ([directions, batch, hidden] in layout 0, [batch, directions, hidden] in 1).
struct RecurrentSequences {
    let name: String
    let seq: Int, batch: Int, directions: Int, hidden: Int, layout: Int
    let lengths: UnsafeRawPointer?, io: ElementIO
    let initialH: UnsafePointer<Float>?, initialC: UnsafePointer<Float>?

    init(node: BoundNode, attributes: RecurrentAttributes) throws {
        name = node.step.node.displayName
        let xv = try node.input(0)
        layout = attributes.layout
        (seq, batch) = layout == 0 ? (xv.shape[0], xv.shape[1]) : (xv.shape[1], xv.shape[0])
        directions = attributes.directions
        hidden = attributes.hidden
        let lengthsValue = node.optionalInput(4)
        lengths = try lengthsValue.map { UnsafeRawPointer(try $0.raw()) }
        io = ElementIO.for(lengthsValue?.type.dtype ?? .int32)
        initialH = try node.optionalInput(5).map { UnsafePointer(try $0.pointer(Float.self)) }
        initialC =
            attributes.isLSTM ? try node.optionalInput(6).map { UnsafePointer(try $0.pointer(Float.self)) } : nil
    }

    /// Checks every sequence length lies in 0...seq (they come from the user's input at run time: an error, not a
    /// trap); true when every length is the full sequence.
    /// - Throws: `RuntimeError.invalidNode` naming the node and the bad entry.
    func check() throws -> Bool {
        guard let lengths else { return true }
        var uniform = true
        for n in 0..<batch {
            let length = io.load(lengths, n)
            guard length >= 0 && length <= Double(seq) else {
                throw RuntimeError.invalidNode(
                    node: name,
                    detail: "sequence_lens[\(n)] is \(length), outside 0...\(seq) (the input's sequence length)")
            }
            if Int(length) != seq { uniform = false }
        }
        return uniform
    }

    /// Batch row n's length (after `check`).
    func length(_ n: Int) -> Int { lengths.map { Int(io.load($0, n)) } ?? seq }

    /// Where direction d's state of batch row n starts in an initial or final state tensor.
    func stateOffset(direction d: Int, row n: Int) -> Int {
        (layout == 0 ? d * batch + n : n * directions + d) * hidden
    }

    /// Fills the running states (batch x hidden) with direction d's initial states, zero where none are given.
    func loadInitialStates(direction d: Int, state: UnsafeMutablePointer<Float>, cell: UnsafeMutablePointer<Float>) {
        for n in 0..<batch {
            let offset = stateOffset(direction: d, row: n)
            for j in 0..<hidden {
                state[n * hidden + j] = initialH?[offset + j] ?? 0
                cell[n * hidden + j] = initialC?[offset + j] ?? 0
            }
        }
    }
}
