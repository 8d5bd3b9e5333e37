import InferenceGraph
import InferenceRuntime
import InferenceTensor

/// Kernels for transformer blocks (Attention, RMSNormalization, RotaryEmbedding) and the per-line operators
/// Hardmax and LpNormalization, float32.
extension GPUKernelTable {
    static func makeAttention(_ node: BoundNode, _ backend: any GPUKernelHost) throws -> any Kernel {
        func input(_ i: Int) -> BoundValue? { i < node.inputs.count ? node.inputs[i] : nil }
        let q = try node.inputs[0].unwrap(node, "Q"), k = try node.inputs[1].unwrap(node, "K")
        let v = try node.inputs[2].unwrap(node, "V")
        let mask = input(3), pastKey = input(4), pastValue = input(5), nonpad = input(6)
        try requireFloat32(node, q, k, v)
        if let pastKey, let pastValue { try requireFloat32(node, pastKey, pastValue) }
        if let nonpad { try requireInt64Indices(node, nonpad) }
        let a = node.step.node
        let g = try node.parameters(AttentionGeometry.self)
        let scaleAttribute = try a.float("scale", default: 0)
        let scale = scaleAttribute != 0 ? scaleAttribute : 1 / Float(g.headSize).squareRoot()
        let softcap = try a.float("softcap", default: 0)
        let mode = try a.int("qk_matmul_output_mode", default: 0)
        guard (0...3).contains(mode) else { throw unsupported(node, "qk_matmul_output_mode \(mode)") }
        var maskKind = 0, maskLength = 0, maskStrides = [0, 0, 0, 0]
        if let mask {
            switch mask.type.dtype {
            case .float32: maskKind = 1
            case .bool: maskKind = 2
            default: throw unsupported(node, "an attn_mask of \(mask.type.dtype) on the GPU")
            }
            do {
                (maskLength, maskStrides) = try g.maskLayout(mask.type.shape.dimensions)
            } catch {
                throw RuntimeError.invalidNode(node: a.displayName, detail: error.text)
            }
        }
        let outputNames = a.outputs
        func output(_ i: Int) -> BoundValue? {
            i < node.outputs.count && !outputNames[i].isEmpty ? node.outputs[i] : nil
        }
        let y = try firstOutput(node)
        let scoresValue = output(3)
        let meta =
            [
                g.batch, g.queryHeads, g.keyValueHeads, g.queryLength, g.newLength, g.pastLength, g.headSize,
                g.valueHeadSize, g.packedHeads ? 1 : 0, maskKind, maskLength,
            ] + maskStrides + [
                try a.int("is_causal", default: 0) != 0 ? 1 : 0, nonpad == nil ? 0 : 1, scoresValue == nil ? -1 : mode,
            ]
        let (metaArgument, metaKeep) = try backend.metadata(meta.map { Int32(truncatingIfNeeded: $0) })
        let (qb, qo) = try backend.arguments(for: q), (kb, ko) = try backend.arguments(for: k)
        let (vb, vo) = try backend.arguments(for: v)
        let (pkb, pko) = try backend.arguments(for: pastKey ?? q),
            (pvb, pvo) = try backend.arguments(for: pastValue ?? q)
        let (mb, mo) = try backend.arguments(for: mask ?? q, elementBytes: maskKind == 2 ? 1 : 4)
        let (nb, no) = try backend.arguments(for: nonpad ?? q, elementBytes: 8)
        let (yb, yo) = try backend.arguments(for: y)
        let (sb, so) = try backend.arguments(for: scoresValue ?? y)
        let rows = g.batch * g.queryHeads * g.queryLength
        var parts: [any Kernel] = []
        if rows > 0 {
            parts.append(
                try backend.kernel(
                    "attention_rows",
                    arguments: [
                        qb, qo, kb, ko, vb, vo, pkb, pko, pvb, pvo, mb, mo, nb, no, yb, yo, sb, so, .float(scale),
                        .float(softcap), metaArgument,
                    ], global: [rows], retained: [metaKeep]))
        }
        for (index, source, past) in [(1, k, pastKey), (2, v, pastValue)] {
            guard let present = output(index), present.type.shape.elementCount > 0 else { continue }
            let (xb, xo) = try backend.arguments(for: source), (pb, po) = try backend.arguments(for: past ?? source)
            let (ob, oo) = try backend.arguments(for: present)
            let count = present.type.shape.elementCount
            parts.append(
                try backend.kernel(
                    "attention_present",
                    arguments: [xb, xo, pb, po, ob, oo, .int(Int32(count)), .int(Int32(index - 1)), metaArgument],
                    global: [count], retained: [metaKeep]))
        }
        return SequenceKernel(parts: parts)
    }

    static func makeRMSNormalization(_ node: BoundNode, _ backend: any GPUKernelHost) throws -> any Kernel {
        let x = try node.inputs[0].unwrap(node, "X"), scale = try node.inputs[1].unwrap(node, "scale")
        let y = try firstOutput(node)
        try requireFloat32(node, x, scale)
        let dims = x.type.shape.dimensions
        let raw = try node.step.node.int("axis", default: -1)
        let axis = raw < 0 ? raw + dims.count : raw
        guard (0..<dims.count).contains(axis), ShapeInference.broadcast(scale.type.shape, x.type.shape) == x.type.shape
        else {
            throw RuntimeError.invalidNode(node: node.step.node.displayName, detail: "axis or scale shape")
        }
        let rows = dims[..<axis].reduce(1, *), width = dims[axis...].reduce(1, *)
        guard rows * width > 0 else { return SequenceKernel(parts: []) }
        let strides = broadcastStrides(scale.type.shape, rank: dims.count)
        let (metaArgument, metaKeep) = try backend.metadata(
            [Int32(dims.count)] + dims.map { Int32($0) } + strides)
        let (xb, xo) = try backend.arguments(for: x), (gb, go) = try backend.arguments(for: scale)
        let (yb, yo) = try backend.arguments(for: y)
        return try backend.kernel(
            "rms_norm_rows",
            arguments: [
                xb, xo, gb, go, yb, yo, .int(Int32(rows)), .int(Int32(width)),
                .float(try node.step.node.float("epsilon", default: 1e-5)), metaArgument,
            ], global: [rows], retained: [metaKeep])
    }

    static func makeRotaryEmbedding(_ node: BoundNode, _ backend: any GPUKernelHost) throws -> any Kernel {
        let x = try node.inputs[0].unwrap(node, "X"), cosCache = try node.inputs[1].unwrap(node, "cos_cache")
        let sinCache = try node.inputs[2].unwrap(node, "sin_cache")
        let positions = node.inputs.count > 3 ? node.inputs[3] : nil
        let y = try firstOutput(node)
        try requireFloat32(node, x, cosCache, sinCache)
        if let positions { try requireInt64Indices(node, positions) }
        let a = node.step.node
        let dims = x.type.shape.dimensions
        let (batch, heads, length, size, packed): (Int, Int, Int, Int, Bool)
        if dims.count == 4 {
            (batch, heads, length, size, packed) = (dims[0], dims[1], dims[2], dims[3], false)
        } else if dims.count == 3 {
            let h = try a.int("num_heads", default: 0)
            guard h > 0, dims[2] % h == 0 else {
                throw RuntimeError.invalidNode(node: a.displayName, detail: "num_heads must divide the hidden size")
            }
            (batch, heads, length, size, packed) = (dims[0], h, dims[1], dims[2] / h, true)
        } else {
            throw RuntimeError.invalidNode(node: a.displayName, detail: "input must have rank 3 or 4")
        }
        let requested = try a.int("rotary_embedding_dim", default: 0)
        let rotary = requested == 0 ? size : requested
        guard rotary > 0, rotary <= size, rotary % 2 == 0, cosCache.type.shape == sinCache.type.shape,
            cosCache.type.shape.dimensions.last == rotary / 2
        else {
            throw RuntimeError.invalidNode(node: a.displayName, detail: "rotary_embedding_dim or cache shapes")
        }
        let cacheRows: Int
        if let positions {
            guard positions.type.shape.dimensions == [batch, length], cosCache.type.shape.rank == 2 else {
                throw RuntimeError.invalidNode(node: a.displayName, detail: "position_ids or cache shapes")
            }
            cacheRows = cosCache.type.shape[0]
        } else {
            guard cosCache.type.shape.dimensions.prefix(2) == [batch, length], cosCache.type.shape.rank == 3 else {
                throw RuntimeError.invalidNode(node: a.displayName, detail: "cache shapes without position_ids")
            }
            cacheRows = batch * length
        }
        let lanes = size - rotary / 2
        let count = batch * length * heads * lanes
        guard count > 0 else { return SequenceKernel(parts: []) }
        let meta = [
            batch, heads, length, size, packed ? 1 : 0, rotary, try a.int("interleaved", default: 0) != 0 ? 1 : 0,
            positions == nil ? 0 : 1, cacheRows,
        ]
        let (metaArgument, metaKeep) = try backend.metadata(meta.map { Int32(truncatingIfNeeded: $0) })
        let flag =
            try positions.map {
                try indexFlag(node, backend, indices: $0, extents: [cacheRows])
            } ?? (argument: metaArgument, buffer: metaKeep, checked: false)
        let (xb, xo) = try backend.arguments(for: x), (cb, co) = try backend.arguments(for: cosCache)
        let (sb, so) = try backend.arguments(for: sinCache)
        let (pb, po) = try backend.arguments(for: positions ?? x, elementBytes: 8)
        let (yb, yo) = try backend.arguments(for: y)
        let launch = try backend.kernel(
            "rotary_embedding",
            arguments: [xb, xo, cb, co, sb, so, pb, po, yb, yo, .int(Int32(count)), metaArgument, flag.argument],
            global: [count], retained: [metaKeep, flag.buffer])
        return checked(launch, node, backend, flag: flag)
    }

    static func makeAxisLines(_ node: BoundNode, _ backend: any GPUKernelHost) throws -> any Kernel {
        let x = try node.inputs[0].unwrap(node, "input")
        let y = try firstOutput(node)
        try requireFloat32(node, x)
        let a = node.step.node
        let dims = x.type.shape.dimensions
        let hardmax = a.opType == "Hardmax"
        let raw = try a.int("axis", default: hardmax && node.step.opset < 13 ? 1 : -1)
        let axis = raw < 0 ? raw + dims.count : raw
        guard (0..<dims.count).contains(axis) else {
            throw RuntimeError.invalidNode(node: a.displayName, detail: "axis \(raw) out of range")
        }
        var mode = 0
        if !hardmax {
            let p = try a.int("p", default: 2)
            guard p == 1 || p == 2 else {
                throw RuntimeError.invalidNode(node: a.displayName, detail: "p must be 1 or 2")
            }
            mode = p
        }
        // Before opset 13 Hardmax works on the input coerced to 2-D at the axis.
        let coerced = hardmax && node.step.opset < 13
        let n = coerced ? dims[axis...].reduce(1, *) : dims[axis]
        let inner = coerced ? 1 : dims[(axis + 1)...].reduce(1, *)
        let lines = n == 0 ? 0 : x.type.shape.elementCount / n
        guard lines > 0 else { return SequenceKernel(parts: []) }
        let (xb, xo) = try backend.arguments(for: x), (yb, yo) = try backend.arguments(for: y)
        return try backend.kernel(
            "axis_lines",
            arguments: [xb, xo, yb, yo, .int(Int32(lines)), .int(Int32(n)), .int(Int32(inner)), .int(Int32(mode))],
            global: [lines])
    }

    static func makeGridSample(_ node: BoundNode, _ backend: any GPUKernelHost) throws -> any Kernel {
        let x = try node.inputs[0].unwrap(node, "X"), grid = try node.inputs[1].unwrap(node, "grid")
        let y = try firstOutput(node)
        try requireFloat32(node, x, grid)
        let a = node.step.node
        let rank = x.type.shape.rank - 2
        guard (1...3).contains(rank), grid.type.shape.rank == rank + 2, grid.type.shape[rank + 1] == rank else {
            throw unsupported(node, "GridSample of rank \(rank) on the GPU")
        }
        let mode: Int
        switch try a.string("mode", default: node.step.opset >= 20 ? "linear" : "bilinear") {
        case "nearest": mode = 0
        case "linear", "bilinear": mode = 1
        case "cubic", "bicubic": mode = 2
        case let other: throw RuntimeError.invalidNode(node: a.displayName, detail: "mode '\(other)'")
        }
        let padding: Int
        switch try a.string("padding_mode", default: "zeros") {
        case "zeros": padding = 0
        case "border": padding = 1
        case "reflection": padding = 2
        case let other: throw RuntimeError.invalidNode(node: a.displayName, detail: "padding_mode '\(other)'")
        }
        let dims = Array(x.type.shape.dimensions.dropFirst(2))
        let points = grid.type.shape.dimensions.dropFirst().dropLast().reduce(1, *)
        let count = y.type.shape.elementCount
        guard count > 0 else { return SequenceKernel(parts: []) }
        let meta =
            [
                x.type.shape[0], x.type.shape[1], rank, points, mode, padding,
                try a.int("align_corners", default: 0) != 0 ? 1 : 0,
            ] + dims
        let (metaArgument, metaKeep) = try backend.metadata(meta.map { Int32(truncatingIfNeeded: $0) })
        let (xb, xo) = try backend.arguments(for: x), (gb, go) = try backend.arguments(for: grid)
        let (yb, yo) = try backend.arguments(for: y)
        return try backend.kernel(
            "grid_sample", arguments: [xb, xo, gb, go, yb, yo, .int(Int32(count)), metaArgument], global: [count],
            retained: [metaKeep])
    }

    static func makeGroupNorm(_ node: BoundNode, _ backend: any GPUKernelHost) throws -> any Kernel {
        let x = try node.inputs[0].unwrap(node, "X"), scale = try node.inputs[1].unwrap(node, "scale")
        let bias = try node.inputs[2].unwrap(node, "B")
        let y = try firstOutput(node)
        try requireFloat32(node, x, scale, bias)
        let a = node.step.node
        guard x.type.shape.rank >= 2 else {
            throw RuntimeError.invalidNode(node: a.displayName, detail: "expects (N, C, ...) input")
        }
        let channels = x.type.shape[1], spatial = x.type.shape.dimensions.dropFirst(2).reduce(1, *)
        let groups = a.opType == "InstanceNormalization" ? channels : try a.int("num_groups", default: 0)
        guard groups > 0, channels % groups == 0 else {
            throw RuntimeError.invalidNode(node: a.displayName, detail: "num_groups must divide the channels")
        }
        let perChannel = scale.type.shape.elementCount == channels
        guard perChannel || scale.type.shape.elementCount == groups,
            bias.type.shape.elementCount == scale.type.shape.elementCount
        else { throw RuntimeError.invalidNode(node: a.displayName, detail: "scale and bias sizes") }
        let items = x.type.shape[0] * groups
        guard items > 0, spatial > 0 else { return SequenceKernel(parts: []) }
        let (xb, xo) = try backend.arguments(for: x), (gb, go) = try backend.arguments(for: scale)
        let (bb, bo) = try backend.arguments(for: bias), (yb, yo) = try backend.arguments(for: y)
        return try backend.kernel(
            "group_norm",
            arguments: [
                xb, xo, gb, go, bb, bo, yb, yo, .int(Int32(items)), .int(Int32(groups)), .int(Int32(channels / groups)),
                .int(Int32(spatial)), .int(perChannel ? 1 : 0), .float(try a.float("epsilon", default: 1e-5)),
            ], global: [items])
    }

    static func makeLRN(_ node: BoundNode, _ backend: any GPUKernelHost) throws -> any Kernel {
        let x = try node.inputs[0].unwrap(node, "X")
        let y = try firstOutput(node)
        try requireFloat32(node, x)
        let a = node.step.node
        let size = try a.int("size", default: 0)
        guard x.type.shape.rank >= 2, size >= 1 else {
            throw RuntimeError.invalidNode(node: a.displayName, detail: "size must be at least 1 on (N, C, ...) input")
        }
        let count = y.type.shape.elementCount
        guard count > 0 else { return SequenceKernel(parts: []) }
        let (xb, xo) = try backend.arguments(for: x), (yb, yo) = try backend.arguments(for: y)
        return try backend.kernel(
            "lrn",
            arguments: [
                xb, xo, yb, yo, .int(Int32(count)), .int(Int32(x.type.shape[1])),
                .int(Int32(x.type.shape.dimensions.dropFirst(2).reduce(1, *))), .int(Int32(size)),
                .float(try a.float("alpha", default: 1e-4)), .float(try a.float("beta", default: 0.75)),
                .float(try a.float("bias", default: 1)),
            ], global: [count])
    }

    static func makeOneHot(_ node: BoundNode, _ backend: any GPUKernelHost) throws -> any Kernel {
        let indices = try node.inputs[0].unwrap(node, "indices"), values = try node.inputs[2].unwrap(node, "values")
        let y = try firstOutput(node)
        let isFloat: Bool
        switch indices.type.dtype {
        case .int64: isFloat = false
        case .float32: isFloat = true
        default: throw unsupported(node, "OneHot with \(indices.type.dtype) indices on the GPU")
        }
        let rank = y.type.shape.rank
        let raw = try node.step.node.int("axis", default: -1)
        let axis = raw < 0 ? raw + rank : raw
        guard (0..<rank).contains(axis) else {
            throw RuntimeError.invalidNode(node: node.step.node.displayName, detail: "axis \(raw) out of range")
        }
        let depth = y.type.shape[axis], inner = y.type.shape.dimensions[(axis + 1)...].reduce(1, *)
        let count = y.type.shape.elementCount
        guard count > 0 else { return SequenceKernel(parts: []) }
        let (ib, io) = try backend.arguments(for: indices, elementBytes: 1)
        let (vb, vo) = try backend.arguments(for: values, elementBytes: 1)
        let (yb, yo) = try backend.arguments(for: y, elementBytes: 1)
        return try backend.kernel(
            "one_hot",
            arguments: [
                ib, io, .int(isFloat ? 1 : 0), vb, vo, yb, yo, .int(Int32(count)), .int(Int32(y.type.dtype.byteSize)),
                .int(Int32(depth)), .int(Int32(inner)),
            ], global: [count])
    }
}
