import InferenceGraph
import InferenceRuntime
import InferenceTensor

/// LSTM and GRU: the time steps depend on each other, so each is its own launch (two for a GRU whose candidate
/// gate reads the reset gate of every unit), made once at plan time with its step index bound. The state
/// ping-pongs between two halves of a scratch buffer the kernel owns.
extension GPUKernelTable {
    static func makeRecurrent(_ node: BoundNode, _ backend: any GPUKernelHost) throws -> any Kernel {
        let attributes = try RecurrentAttributes(node.step.node)
        func input(_ index: Int) -> BoundValue? {
            index < node.inputs.count ? node.inputs[index] : nil
        }
        func output(_ index: Int) -> BoundValue? {
            guard index < node.outputs.count, index < node.step.node.outputs.count,
                !node.step.node.outputs[index].isEmpty, node.outputs[index].type.shape.elementCount > 0
            else { return nil }
            return node.outputs[index]
        }
        let x = try input(0).unwrap(node, "X"), w = try input(1).unwrap(node, "W"), r = try input(2).unwrap(node, "R")
        let bias = input(3), lengths = input(4), initialH = input(5)
        let initialC = attributes.isLSTM ? input(6) : nil, peepholes = attributes.isLSTM ? input(7) : nil
        if let lengths, lengths.type.dtype != .int32 {
            throw unsupported(node, "sequence_lens of type \(lengths.type.dtype) on the GPU (int32 only)")
        }
        let dims = x.type.shape.dimensions
        guard dims.count == 3 else {
            throw RuntimeError.invalidNode(node: node.step.node.displayName, detail: "X must have rank 3")
        }
        let (seq, batch, _) = try attributes.sizes(of: dims, node: node.step.node.displayName)
        let hidden = attributes.hidden, directions = attributes.directions
        let units = directions * batch * hidden
        let y = output(0), yH = output(1), yC = attributes.isLSTM ? output(2) : nil
        guard units > 0 else { return SequenceKernel(parts: []) }

        // [parity 0: h, c][parity 1: h, c][r ⊙ h]
        let scratchBytes = 5 * units * MemoryLayout<Float>.stride
        let buffer = try backend.allocate(bytes: scratchBytes)
        let state = BoundValue(
            type: TensorType(dtype: .float32, shape: Shape([5 * units])),
            slice: BufferSlice(buffer: buffer, offset: 0, byteCount: scratchBytes), constant: nil)
        let meta = recurrentMetadata(attributes, sequence: seq, batch: batch, inputSize: dims[2])
        let (metaArgument, metaKeep) = try backend.metadata(meta)

        let (xb, xo) = try backend.arguments(for: x), (wb, wo) = try backend.arguments(for: w),
            (rb, ro) = try backend.arguments(for: r), (sb, so) = try backend.arguments(for: state)
        // Absent optional values pass X with their flag off.
        let (bb, bo) = try backend.arguments(for: bias ?? x), (lb, lo) = try backend.arguments(for: lengths ?? x)
        let (pb, po) = try backend.arguments(for: peepholes ?? x)
        let (h0b, h0o) = try backend.arguments(for: initialH ?? x),
            (c0b, c0o) = try backend.arguments(for: initialC ?? x)
        let (yb, yo) = try backend.arguments(for: y ?? x)
        func flag(_ value: BoundValue?) -> KernelArgument { .int(value == nil ? 0 : 1) }

        var parts: [any Kernel] = [
            try backend.kernel(
                "rnn_init",
                arguments: [
                    h0b, h0o, flag(initialH), c0b, c0o, flag(initialC), sb, so, .int(Int32(directions)),
                    .int(Int32(batch)), .int(Int32(hidden)), .int(Int32(attributes.layout)),
                ],
                global: [units])
        ]
        let resetFirst = !attributes.isLSTM && !attributes.linearBeforeReset
        for step in 0..<seq {
            if resetFirst {
                parts.append(
                    try backend.kernel(
                        "gru_reset",
                        arguments: [
                            xb, xo, wb, wo, rb, ro, bb, bo, flag(bias), lb, lo, flag(lengths), sb, so,
                            .int(Int32(step)),
                            metaArgument,
                        ],
                        global: [units]))
            }
            parts.append(
                try backend.kernel(
                    "rnn_step",
                    arguments: [
                        xb, xo, wb, wo, rb, ro, bb, bo, flag(bias), lb, lo, flag(lengths), pb, po, flag(peepholes), sb,
                        so, yb, yo, flag(y), .int(Int32(step)), metaArgument,
                    ],
                    global: [units]))
        }
        if yH != nil || yC != nil {
            parts.append(
                try finalStates(
                    backend, state: (sb, so), yH: yH, yC: yC, absent: x, parity: seq % 2, batch: batch,
                    attributes: attributes))
        }
        return RetainingKernel(SequenceKernel(parts: parts), retained: [buffer, metaKeep])
    }

    /// The `meta` block the recurrent kernels read: sizes, layout, flags, clip, then per activation its code and
    /// parameters (as bit patterns).
    static func recurrentMetadata(_ attributes: RecurrentAttributes, sequence seq: Int, batch: Int, inputSize: Int)
        -> [Int32]
    {
        let hidden = attributes.hidden, directions = attributes.directions
        var meta = [
            seq, batch, inputSize, hidden, directions, attributes.layout, attributes.isLSTM ? 1 : 0,
            attributes.reverseOnly ? 1 : 0, attributes.linearBeforeReset ? 1 : 0, attributes.clip == nil ? 0 : 1,
        ].map { Int32($0) }
        meta.append(Int32(bitPattern: (attributes.clip ?? 0).bitPattern))
        for activation in attributes.activations {
            meta += [
                activation.function.rawValue, Int32(bitPattern: activation.alpha.bitPattern),
                Int32(bitPattern: activation.beta.bitPattern),
            ]
        }
        return meta
    }

    /// The launch that copies the last hidden (and cell) state out of the scratch buffer.
    static func finalStates(
        _ backend: any GPUKernelHost, state: (KernelArgument, KernelArgument), yH: BoundValue?, yC: BoundValue?,
        absent: BoundValue, parity: Int, batch: Int, attributes: RecurrentAttributes
    ) throws -> any Kernel {
        let (hb, ho) = try backend.arguments(for: yH ?? absent), (cb, co) = try backend.arguments(for: yC ?? absent)
        let units = attributes.directions * batch * attributes.hidden
        return try backend.kernel(
            "rnn_final",
            arguments: [
                state.0, state.1, hb, ho, .int(yH == nil ? 0 : 1), cb, co, .int(yC == nil ? 0 : 1), .int(Int32(parity)),
                .int(Int32(attributes.directions)), .int(Int32(batch)), .int(Int32(attributes.hidden)),
                .int(Int32(attributes.layout)),
            ],
            global: [units])
    }
}

/// A kernel with objects it must keep alive (scratch buffers, metadata) for as long as it runs.
final class RetainingKernel: Kernel, DescribedKernel {
    private let kernel: any Kernel
    private let retained: [AnyObject]

    var kernelDescription: String { describe(kernel) }

    init(_ kernel: any Kernel, retained: [AnyObject]) {
        self.kernel = kernel
        self.retained = retained
    }

    func run() throws { try kernel.run() }
}
