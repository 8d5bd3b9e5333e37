import InferenceGraph
import InferenceRuntime
import InferenceTensor

/// The quantized operators on the GPU: QuantizeLinear and DequantizeLinear on 8-bit data (per tensor or per axis,
/// float32 scales), MatMulInteger and QLinearMatMul with a 2-D right operand (exact int32 sums), and (below)
/// ConvInteger, QLinearConv and DynamicQuantizeLinear. Other forms (blocked or 16-bit quantization, float16
/// scales) are unsupported attributes: the node runs through the host fallback.
extension GPUKernelTable {
    static let bytes: Set<DType> = [.int8, .uint8]

    /// Axis length and inner size of a per-axis parameter (1 and the count for a per-tensor one).
    static func quantizationAxis(_ node: BoundNode, x: BoundValue, scale: BoundValue) throws -> (Int, Int) {
        let count = scale.type.shape.elementCount
        let dims = x.type.shape.dimensions
        guard count > 1 else { return (1, max(dims.reduce(1, *), 1)) }
        guard try node.step.node.int("block_size", default: 0) == 0, scale.type.shape.rank == 1 else {
            throw RuntimeError.unsupportedAttribute(
                node: node.step.node.displayName, detail: "blocked quantization on the GPU")
        }
        let raw = try node.step.node.int("axis", default: 1)
        let axis = raw < 0 ? raw + dims.count : raw
        guard dims.indices.contains(axis), dims[axis] == count else {
            throw RuntimeError.invalidNode(
                node: node.step.node.displayName, detail: "a per-axis scale needs \(dims) [axis \(raw)] values")
        }
        return (count, dims[(axis + 1)...].reduce(1, *))
    }

    static func makeDequantize(_ node: BoundNode, _ backend: any GPUKernelHost) throws -> any Kernel {
        let x = try node.inputs[0].unwrap(node, "x"), scale = try node.inputs[1].unwrap(node, "x_scale")
        let y = try firstOutput(node)
        guard bytes.contains(x.type.dtype), scale.type.dtype == .float32, y.type.dtype == .float32 else {
            throw unsupported(node, "DequantizeLinear of \(x.type.dtype) to \(y.type.dtype) on the GPU")
        }
        let count = y.type.shape.elementCount
        guard count > 0 else { return SequenceKernel(parts: []) }
        let (axisLength, inner) = try quantizationAxis(node, x: x, scale: scale)
        let zero = node.inputs.count > 2 ? node.inputs[2] : nil
        let (xb, xo) = try backend.arguments(for: x, elementBytes: 1)
        let (sb, so) = try backend.arguments(for: scale)
        let (zb, zo) = try backend.arguments(for: zero ?? x, elementBytes: 1)
        let (yb, yo) = try backend.arguments(for: y)
        return try backend.kernel(
            "dequantize_8",
            arguments: [
                xb, xo, .int(x.type.dtype == .int8 ? 1 : 0), sb, so, zb, zo, .int(zero == nil ? 0 : 1), yb, yo,
                .int(Int32(count)), .int(Int32(axisLength)), .int(Int32(inner)),
            ], global: [count])
    }

    static func makeQuantize(_ node: BoundNode, _ backend: any GPUKernelHost) throws -> any Kernel {
        let x = try node.inputs[0].unwrap(node, "x"), scale = try node.inputs[1].unwrap(node, "y_scale")
        let y = try firstOutput(node)
        guard x.type.dtype == .float32, scale.type.dtype == .float32, bytes.contains(y.type.dtype) else {
            throw unsupported(node, "QuantizeLinear of \(x.type.dtype) to \(y.type.dtype) on the GPU")
        }
        let count = y.type.shape.elementCount
        guard count > 0 else { return SequenceKernel(parts: []) }
        let (axisLength, inner) = try quantizationAxis(node, x: x, scale: scale)
        let zero = node.inputs.count > 2 ? node.inputs[2] : nil
        let (xb, xo) = try backend.arguments(for: x)
        let (sb, so) = try backend.arguments(for: scale)
        let (zb, zo) = try backend.arguments(for: zero ?? y, elementBytes: 1)
        let (yb, yo) = try backend.arguments(for: y, elementBytes: 1)
        return try backend.kernel(
            "quantize_8",
            arguments: [
                xb, xo, sb, so, zb, zo, .int(zero == nil ? 0 : 1), .int(y.type.dtype == .int8 ? 1 : 0), yb, yo,
                .int(Int32(count)), .int(Int32(axisLength)), .int(Int32(inner)),
            ], global: [count])
    }

    /// MatMulInteger (int32 out) and QLinearMatMul (bytes out) with B of shape [K, N].
    static func makeIntegerMatMul(_ node: BoundNode, _ backend: any GPUKernelHost) throws -> any Kernel {
        let quantized = node.step.node.opType == "QLinearMatMul"
        let a = try node.inputs[0].unwrap(node, "A")
        let b = try node.inputs[quantized ? 3 : 1].unwrap(node, "B")
        let y = try firstOutput(node)
        guard bytes.contains(a.type.dtype), bytes.contains(b.type.dtype), b.type.shape.rank == 2,
            a.type.shape.rank >= 1, node.inputs.count <= (quantized ? 9 : 4)
        else { throw unsupported(node, "this integer MatMul form on the GPU") }
        let k = b.type.shape[0], n = b.type.shape[1]
        guard a.type.shape.dimensions.last == k else { throw unsupported(node, "these MatMul shapes on the GPU") }
        let rows = a.type.shape.elementCount / max(k, 1)
        guard rows * n > 0 else { return SequenceKernel(parts: []) }
        func optional(_ index: Int) -> BoundValue? { index < node.inputs.count ? node.inputs[index] : nil }
        if !quantized {
            let az = optional(2), bz = optional(3)
            guard [1, rows].contains(az?.type.shape.elementCount ?? 1),
                [1, n].contains(bz?.type.shape.elementCount ?? 1), y.type.dtype == .int32
            else { throw unsupported(node, "these MatMulInteger zero points on the GPU") }
            return try integerGemm(
                backend, node, a: a, aZero: az, b: b, bZero: bz, y: y, rows: rows, n: n, k: k, offsets: [(0, 0)])
        }
        let aScale = try node.inputs[1].unwrap(node, "a_scale"), aZero = try node.inputs[2].unwrap(node, "a_zero_point")
        let bScale = try node.inputs[4].unwrap(node, "b_scale"), bZero = try node.inputs[5].unwrap(node, "b_zero_point")
        let yScale = try node.inputs[6].unwrap(node, "y_scale"), yZero = try node.inputs[7].unwrap(node, "y_zero_point")
        let scales = [aScale, bScale, yScale]
        guard scales.allSatisfy({ $0.type.dtype == .float32 }), aScale.type.shape.elementCount == 1,
            aZero.type.shape.elementCount == 1, yScale.type.shape.elementCount == 1,
            yZero.type.shape.elementCount == 1, [1, n].contains(bScale.type.shape.elementCount),
            bScale.type.shape.elementCount == bZero.type.shape.elementCount, bytes.contains(y.type.dtype),
            optional(8).map({ $0.type.dtype == .int32 && $0.type.shape.elementCount == n }) ?? true
        else { throw unsupported(node, "this QLinearMatMul form on the GPU") }
        // A ninth input and a Relu are what planning fuses from QDQ Gemms (`QuantizedFusion`): an int32 bias per
        // column and a clamp at the zero point.
        return try integerGemm(
            backend, node, a: a, aZero: aZero, b: b, bZero: bZero, y: y, rows: rows, n: n, k: k, offsets: [(0, 0)],
            requantize: IntegerRequantization(
                aScale: aScale, bScale: bScale, yScale: yScale, yZero: yZero, bias: optional(8), biasPerRow: false,
                relu: try node.step.node.int(QuantizedFusion.reluAttribute, default: 0) != 0))
    }

    /// What `integer_gemm` needs to requantize its sums to bytes: y = saturate(rint((sum + bias) · (aScale ·
    /// bScale) / yScale) + yZero), aScale per row of A or tensor, bScale per column of B or tensor, the bias per
    /// row (a convolution's filters) or per column (a QLinearMatMul's), or absent; `relu` raises the low end to the
    /// zero point.
    struct IntegerRequantization {
        var aScale: BoundValue, bScale: BoundValue, yScale: BoundValue, yZero: BoundValue
        var bias: BoundValue? = nil
        var biasPerRow = true
        var relu = false
    }

    /// One `integer_gemm` launch: Y[s] = Σ_t (A[row, t] - aZero)(B[t, col] - bZero) for A [rows x k] and B [k x n]
    /// bytes at the element offsets `offsets[s]`, Y's members rows·n apart; the zero points per tensor, per row of
    /// A or column of B (their element counts say which), or absent. int32 out, or requantized bytes.
    static func integerGemm(
        _ backend: any GPUKernelHost, _ node: BoundNode, a: BoundValue, aZero: BoundValue?, b: BoundValue,
        bZero: BoundValue?, y: BoundValue, rows: Int, n: Int, k: Int, offsets: [(Int, Int)],
        requantize: IntegerRequantization? = nil
    ) throws -> any Kernel {
        // The kernel reads a parameter at its row, its column or 0, chosen by its count: any other count would read
        // past it. Callers check their operators' forms; this holds whatever they check.
        func fits(_ value: BoundValue?, _ counts: [Int]) -> Bool {
            value.map { counts.contains($0.type.shape.elementCount) } ?? true
        }
        let r = requantize
        guard fits(aZero, [1, rows]), fits(bZero, [1, n]), fits(r?.aScale, [1, rows]), fits(r?.bScale, [1, n]),
            fits(r?.yScale, [1]), fits(r?.yZero, [1]), fits(r?.bias, [r?.biasPerRow == true ? rows : n])
        else {
            throw unsupported(node, "quantization parameters that fit neither a tensor nor its rows or columns")
        }
        guard rows * n * offsets.count > 0 else { return SequenceKernel(parts: []) }
        let (metaArgument, metaKeep) = try backend.metadata(offsets.flatMap { [Int32($0.0), Int32($0.1)] })
        let (ab, ao) = try backend.arguments(for: a, elementBytes: 1)
        let (bb, bo) = try backend.arguments(for: b, elementBytes: 1)
        let (azb, azo) = try backend.arguments(for: aZero ?? a, elementBytes: 1)
        let (bzb, bzo) = try backend.arguments(for: bZero ?? b, elementBytes: 1)
        // Arguments a mode does not read point at any buffer of the right element size.
        let floats = requantize?.yScale ?? y
        let (y32b, y32o) = try backend.arguments(for: requantize == nil ? y : floats)
        let (y8b, y8o) = try backend.arguments(for: y, elementBytes: 1)
        let (asb, aso) = try backend.arguments(for: requantize?.aScale ?? floats)
        let (bsb, bso) = try backend.arguments(for: requantize?.bScale ?? floats)
        let (ysb, yso) = try backend.arguments(for: floats)
        let (yzb, yzo) = try backend.arguments(for: requantize?.yZero ?? a, elementBytes: 1)
        let (biasb, biaso) = try backend.arguments(for: requantize?.bias ?? floats)
        let signed = { (value: BoundValue) -> KernelArgument in .int(value.type.dtype == .int8 ? 1 : 0) }
        let count = { (value: BoundValue?) -> KernelArgument in .int(Int32(value?.type.shape.elementCount ?? 0)) }
        return try backend.kernel(
            "integer_gemm",
            arguments: [
                ab, ao, signed(a), bb, bo, signed(b), azb, azo, count(aZero), bzb, bzo, count(bZero),
                .int(Int32(rows)), .int(Int32(n)), .int(Int32(k)), metaArgument, .int(requantize == nil ? 0 : 1),
                y32b, y32o, y8b, y8o, asb, aso, count(requantize?.aScale), bsb, bso, count(requantize?.bScale), ysb,
                yso, yzb, yzo, signed(requantize?.yZero ?? a), biasb, biaso,
                .int(requantize?.bias == nil ? 0 : (requantize?.biasPerRow == true ? 1 : 2)),
                .int(requantize?.relu == true ? 1 : 0),
            ],
            global: [n, rows, offsets.count], local: [16, 16, 1], retained: [metaKeep])
    }
}

/// Integer convolutions and DynamicQuantizeLinear on the GPU: ConvInteger (int32 sums) and QLinearConv
/// (requantized bytes, int32 bias, per-channel weight scales and zero points) of 1-D to 3-D inputs with groups,
/// strides, padding and dilation, exact int32 sums like the CPU's; DynamicQuantizeLinear as a chunked min/max, a
/// one-item reduction into its scale and zero point, and `quantize_8`.
extension GPUKernelTable {
    static func makeIntegerConv(_ node: BoundNode, _ backend: any GPUKernelHost) throws -> any Kernel {
        let quantized = node.step.node.opType == "QLinearConv"
        let x = try node.inputs[0].unwrap(node, "x"), w = try node.inputs[quantized ? 3 : 1].unwrap(node, "w")
        let y = try firstOutput(node)
        guard (3...5).contains(x.type.shape.rank), bytes.contains(x.type.dtype), bytes.contains(w.type.dtype) else {
            throw unsupported(node, "this integer convolution form on the GPU")
        }
        let group = try node.step.node.int("group", default: 1)
        let channels = x.type.shape[1], filters = w.type.shape[0]
        guard group > 0, channels % group == 0, filters % group == 0, w.type.shape[1] * group == channels else {
            throw RuntimeError.invalidNode(
                node: node.step.node.displayName,
                detail:
                    "group \(group) does not divide \(channels) channels and \(filters) filters of W \(w.type.shape)")
        }
        let count = y.type.shape.elementCount
        guard count > 0 else { return SequenceKernel(parts: []) }
        let g = lifted(try node.parameters(ConvGeometry.self))
        let (meta, metaKeep) = try backend.metadata(
            convolutionMeta(g, channels: channels, outChannels: filters, group: group).map { Int32($0) })
        func optional(_ index: Int) -> BoundValue? { index < node.inputs.count ? node.inputs[index] : nil }
        let (xb, xo) = try backend.arguments(for: x, elementBytes: 1)
        let (wb, wo) = try backend.arguments(for: w, elementBytes: 1)
        let xSigned: KernelArgument = .int(x.type.dtype == .int8 ? 1 : 0)
        let wSigned: KernelArgument = .int(w.type.dtype == .int8 ? 1 : 0)
        let wZero = optional(quantized ? 5 : 3)
        let wZeroCount = wZero?.type.shape.elementCount ?? 0
        guard [0, 1, filters].contains(wZeroCount) else {
            throw unsupported(node, "a weight zero point of \(wZeroCount) values on the GPU")
        }
        let q = try IntegerConvOperands(node, filters: filters)
        // The im2col path pads with the input's zero point, so it needs it at plan time (a constant, as it is).
        if group == 1 && backend.convolution.integerAsGemm && q.xZero.map({ $0.constant != nil }) ?? true
            && imageColumns(g, channels: channels) != nil
        {
            return try integerConvolutionAsGemm(backend, node, geometry: g, x: x, w: w, wZero: wZero, y: y, q)
        }
        let (wzb, wzo) = try backend.arguments(for: wZero ?? w, elementBytes: 1)
        let (xzb, xzo) = try backend.arguments(for: q.xZero ?? x, elementBytes: 1)
        guard let r = q.requantize else {
            let (yb, yo) = try backend.arguments(for: y)
            return try backend.kernel(
                "conv_integer",
                arguments: [
                    xb, xo, xSigned, xzb, xzo, .int(q.xZero == nil ? 0 : 1), wb, wo, wSigned, wzb, wzo,
                    .int(Int32(wZeroCount)), yb, yo, .int(Int32(count)), meta,
                ], global: [count], retained: [metaKeep])
        }
        // QLinearConv's operands as the integer GEMM names them: the weights' scale is A's, the input's B's.
        let (xsb, xso) = try backend.arguments(for: r.bScale)
        let (wsb, wso) = try backend.arguments(for: r.aScale)
        let (ysb, yso) = try backend.arguments(for: r.yScale)
        let (yzb, yzo) = try backend.arguments(for: r.yZero, elementBytes: 1)
        let (bb, bo) = try backend.arguments(for: r.bias ?? r.aScale)
        let (yb, yo) = try backend.arguments(for: y, elementBytes: 1)
        return try backend.kernel(
            "qlinear_conv",
            arguments: [
                xb, xo, xSigned, xsb, xso, xzb, xzo, wb, wo, wSigned, wsb, wso,
                .int(Int32(r.aScale.type.shape.elementCount)), wzb, wzo, .int(Int32(wZeroCount)), ysb, yso, yzb, yzo,
                .int(y.type.dtype == .int8 ? 1 : 0), bb, bo, .int(r.bias == nil ? 0 : 1), .int(r.relu ? 1 : 0), yb, yo,
                .int(Int32(count)), meta,
            ], global: [count], retained: [metaKeep])
    }

    /// ConvInteger's input zero point, or QLinearConv's too with its scales, output zero point, bias and fused Relu,
    /// checked once for both ways of running the node: one input zero point (the kernels read one), float32 scales,
    /// the weights' scale per tensor or filter, an int32 bias per filter. Other forms are unsupported attributes (the
    /// node runs on the host).
    struct IntegerConvOperands {
        var xZero: BoundValue?
        /// QLinearConv's requantization, as the integer GEMM takes it (A the weights, B the input's columns).
        var requantize: IntegerRequantization?

        init(_ node: BoundNode, filters: Int) throws {
            func optional(_ index: Int) -> BoundValue? { index < node.inputs.count ? node.inputs[index] : nil }
            xZero = optional(2)
            guard (xZero?.type.shape.elementCount ?? 1) == 1 else {
                throw unsupported(node, "an input zero point of several values on the GPU")
            }
            guard node.step.node.opType == "QLinearConv" else {
                guard node.outputs.first?.type.dtype == .int32 else {
                    throw unsupported(node, "ConvInteger to other than int32 on the GPU")
                }
                return
            }
            let xScale = try node.inputs[1].unwrap(node, "x_scale"), wScale = try node.inputs[4].unwrap(node, "w_scale")
            let yScale = try node.inputs[6].unwrap(node, "y_scale")
            let yZero = try node.inputs[7].unwrap(node, "y_zero_point")
            let bias = optional(8)
            guard xZero != nil, [xScale, wScale, yScale].allSatisfy({ $0.type.dtype == .float32 }),
                [xScale, yScale, yZero].allSatisfy({ $0.type.shape.elementCount == 1 }),
                [1, filters].contains(wScale.type.shape.elementCount),
                node.outputs.first.map({ bytes.contains($0.type.dtype) }) ?? false,
                bias.map({ $0.type.dtype == .int32 && $0.type.shape.elementCount == filters }) ?? true
            else { throw unsupported(node, "this QLinearConv form on the GPU (float32 scales, int32 bias)") }
            requantize = IntegerRequantization(
                aScale: wScale, bScale: xScale, yScale: yScale, yZero: yZero, bias: bias,
                relu: try node.step.node.int(QuantizedFusion.reluAttribute, default: 0) != 0)
        }
    }

    /// ConvInteger or QLinearConv (group 1) as im2col of bytes + the integer GEMM: the columns of as many images as
    /// fit the scratch limit at a time (positions outside the input hold its zero point), then Y[n] = W[M, C·taps]
    /// · cols[n] with W's zero point per filter (a row) and x's per tensor, requantized for QLinearConv with the
    /// filter's scale and bias.
    static func integerConvolutionAsGemm(
        _ backend: any GPUKernelHost, _ node: BoundNode, geometry g: ConvGeometry, x: BoundValue, w: BoundValue,
        wZero: BoundValue?, y: BoundValue, _ q: IntegerConvOperands
    ) throws -> any Kernel {
        let (xZero, requantize) = (q.xZero, q.requantize)
        let images = x.type.shape[0], channels = x.type.shape[1], filters = w.type.shape[0]
        let depth = channels * g.kernel.reduce(1, *), spatial = g.output.reduce(1, *)
        let imageColumns = depth * spatial
        let imageInput = channels * g.input.reduce(1, *), imageOutput = filters * spatial
        guard images * imageOutput > 0 else { return SequenceKernel(parts: []) }
        guard imageColumns > 0 else { throw unsupported(node, "a convolution with an empty window on the GPU") }
        let chunk = max(1, min(images, backend.convolution.scratchBytes / imageColumns))
        let scratch = try backend.allocate(bytes: chunk * imageColumns)
        let columns = BoundValue(
            type: TensorType(dtype: x.type.dtype, shape: Shape([chunk * imageColumns])),
            slice: BufferSlice(buffer: scratch, offset: 0, byteCount: chunk * imageColumns), constant: nil)
        let (metaArgument, metaKeep) = try backend.metadata(
            convolutionMeta(g, channels: channels, outChannels: filters, group: 1).map { Int32($0) })
        // The input's zero point as a byte, for the padding (constant here: a computed one takes the direct kernel).
        var pad: UInt8 = 0
        if let xZero {
            guard let constant = xZero.constant, let raw = constant.withUnsafeBytes({ $0.first }) else {
                throw unsupported(node, "an input zero point computed at run time on the GPU's integer GEMM")
            }
            pad = raw
        }
        let outputBytes = y.type.dtype.byteSize
        func byteView(_ value: BoundValue, elements offset: Int, count: Int, size: Int) -> BoundValue {
            BoundValue(
                type: TensorType(dtype: value.type.dtype, shape: Shape([count])),
                slice: BufferSlice(
                    buffer: value.slice.buffer, offset: value.slice.offset + offset * size, byteCount: count * size),
                constant: nil)
        }
        var parts: [any Kernel] = []
        for first in stride(from: 0, to: images, by: chunk) {
            let count = min(chunk, images - first)
            let input = byteView(x, elements: first * imageInput, count: count * imageInput, size: 1)
            let output = byteView(y, elements: first * imageOutput, count: count * imageOutput, size: outputBytes)
            let (xb, xo) = try backend.arguments(for: input, elementBytes: 1)
            let (cb, co) = try backend.arguments(for: columns, elementBytes: 1)
            parts.append(
                try backend.kernel(
                    "im2col3d_bytes",
                    arguments: [xb, xo, cb, co, .int(Int32(count * imageColumns)), .int(Int32(pad)), metaArgument],
                    global: [count * imageColumns]))
            parts.append(
                try integerGemm(
                    backend, node, a: w, aZero: wZero, b: columns, bZero: xZero, y: output, rows: filters, n: spatial,
                    k: depth, offsets: (0..<count).map { (0, $0 * imageColumns) }, requantize: requantize))
        }
        return RetainingKernel(SequenceKernel(parts: parts), retained: [scratch, metaKeep])
    }

    /// DynamicQuantizeLinear: float32 in, uint8 out with its float32 scale and uint8 zero point.
    static func makeDynamicQuantize(_ node: BoundNode, _ backend: any GPUKernelHost) throws -> any Kernel {
        let x = try node.inputs[0].unwrap(node, "x")
        guard node.outputs.count == 3, x.type.dtype == .float32, node.outputs[0].type.dtype == .uint8,
            node.outputs[1].type.dtype == .float32, node.outputs[2].type.dtype == .uint8
        else { throw unsupported(node, "DynamicQuantizeLinear other than float32 to uint8 on the GPU") }
        let y = node.outputs[0], scale = node.outputs[1], zero = node.outputs[2]
        let count = x.type.shape.elementCount
        // At most 4,096 partial ranges of at least 256 elements each: the one-item reduction stays short.
        let chunk = max(256, (count + 4095) / 4096)
        let partCount = (count + chunk - 1) / chunk
        let partBytes = max(partCount, 1) * 8
        let scratch = try backend.allocate(bytes: partBytes)
        let parts = BoundValue(
            type: TensorType(dtype: .float32, shape: Shape([max(partCount, 1) * 2])),
            slice: BufferSlice(buffer: scratch, offset: 0, byteCount: partBytes), constant: nil)
        let (xb, xo) = try backend.arguments(for: x), (pb, po) = try backend.arguments(for: parts)
        let (sb, so) = try backend.arguments(for: scale)
        let (zb, zo) = try backend.arguments(for: zero, elementBytes: 1)
        var kernels: [any Kernel] = [
            try backend.kernel(
                "minmax_chunks",
                arguments: [xb, xo, .int(Int32(count)), .int(Int32(chunk)), pb, po, .int(Int32(partCount))],
                global: [max(partCount, 1)]),
            try backend.kernel(
                "dynamic_quantize_parameters", arguments: [pb, po, .int(Int32(partCount)), sb, so, zb, zo],
                global: [1]),
        ]
        if count > 0 {
            let (yb, yo) = try backend.arguments(for: y, elementBytes: 1)
            kernels.append(
                try backend.kernel(
                    "quantize_8",
                    arguments: [
                        xb, xo, sb, so, zb, zo, .int(1), .int(0), yb, yo, .int(Int32(count)), .int(1),
                        .int(Int32(count)),
                    ], global: [count]))
        }
        return RetainingKernel(SequenceKernel(parts: kernels), retained: [scratch])
    }
}
