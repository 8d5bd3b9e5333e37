import InferenceGraph
import InferenceRuntime
import InferenceTensor

/// Convolution (direct, or im2col + GEMM), pooling and BatchNormalization; helpers the other families share.
extension GPUKernelTable {
    static func shapeContext(_ node: BoundNode) -> ShapeInferenceContext {
        ShapeInferenceContext(
            node: node.step.node, opset: node.step.opset, inputs: node.inputs.map { $0?.type },
            constants: node.inputs.map { $0?.constant })
    }

    /// A window geometry over up to three spatial axes as the 3-D kernels read it: unit leading axes for 1-D
    /// and 2-D (size, window, stride and dilation 1, no padding).
    static func lifted(_ g: ConvGeometry) -> ConvGeometry {
        func lift(_ values: [Int], _ fill: Int) -> [Int] {
            [Int](repeating: fill, count: max(0, 3 - values.count)) + values
        }
        var lifted = g
        lifted.input = lift(g.input, 1)
        lifted.kernel = lift(g.kernel, 1)
        lifted.strides = lift(g.strides, 1)
        lifted.dilations = lift(g.dilations, 1)
        lifted.padsBegin = lift(g.padsBegin, 0)
        lifted.padsEnd = lift(g.padsEnd, 0)
        lifted.output = lift(g.output, 1)
        return lifted
    }

    /// The conv3d / conv_transpose3d metadata: [C, D, H, W, M, OD, OH, OW, KD, KH, KW, strides, dilations, pads,
    /// group] of a lifted geometry.
    static func convolutionMeta(_ g: ConvGeometry, channels: Int, outChannels: Int, group: Int) -> [Int] {
        [channels] + g.input + [outChannels] + g.output + g.kernel + g.strides + g.dilations + g.padsBegin + [group]
    }

    /// A convolution's X, W, optional bias and output, and its geometry lifted to three spatial axes; 1-D to 3-D only.
    static func convolutionOperands(_ node: BoundNode, _ what: String) throws -> (
        x: BoundValue, w: BoundValue, bias: BoundValue?, y: BoundValue, geometry: ConvGeometry
    ) {
        let x = try node.inputs[0].unwrap(node, "X"), w = try node.inputs[1].unwrap(node, "W")
        let rank = x.type.shape.rank
        guard (3...5).contains(rank) else { throw unsupported(node, "\(rank - 2)-D \(what) on the GPU") }
        return (
            x, w, node.inputs.count > 2 ? node.inputs[2] : nil, try firstOutput(node),
            lifted(try node.parameters(ConvGeometry.self))
        )
    }

    /// The im2col columns of one image (channels · taps · output positions), or nil from 2^31 on (the kernels
    /// index them with int, and Int32 arguments would trap): such a convolution takes the direct kernel.
    static func imageColumns(_ g: ConvGeometry, channels: Int) -> Int? {
        imageColumns(channels: channels, extents: g.kernel + g.output)
    }

    /// channels · the product of `extents`, or nil from 2^31 on.
    static func imageColumns(channels: Int, extents: [Int]) -> Int? {
        var total = channels
        for extent in extents {
            let (product, overflow) = total.multipliedReportingOverflow(by: extent)
            guard !overflow, product <= Int(Int32.max) else { return nil }
            total = product
        }
        return total
    }

    static func makeConv(_ node: BoundNode, _ backend: any GPUKernelHost) throws -> any Kernel {
        let (x, w, bias, y, g) = try convolutionOperands(node, "convolution")
        let storage = try Storage(node, backend, [x, w, y] + (bias.map { [$0] } ?? []))
        if backend.convolution.asGemm, try node.step.node.int("group", default: 1) == 1,
            imageColumns(g, channels: x.type.shape[1]) != nil
        {
            return try convolutionAsGemm(
                backend, node, geometry: g, x: x, w: w, bias: bias, y: y, storage: storage)
        }
        // The direct kernel converts both operands of every product: on half storage only for grouped convolutions
        // (depthwise ones: a few products per output); a dense one is widened, which converts each element once
        // (ResNet-18 in float16 on PoCL: 2.85 s with conv3d_f16, 1.17 s widened).
        let group = try node.step.node.int("group", default: 1)
        guard storage.bytes == 4 || group > 1 else {
            throw unsupported(node, "a dense \(y.type.dtype) convolution on the direct kernel (it runs widened)")
        }
        return try convolutionLaunch(
            backend, node, "conv3d" + storage.suffix, geometry: g, x: x, w: w, bias: bias, y: y,
            outChannels: w.type.shape[0], elementBytes: storage.bytes)
    }

    /// A view of part of a float32 value: `shape` from element `offset` on.
    static func view(_ value: BoundValue, offset: Int, shape: [Int]) -> BoundValue {
        let count = shape.reduce(1, *), size = value.type.dtype.byteSize
        return BoundValue(
            type: TensorType(dtype: value.type.dtype, shape: Shape(shape)),
            slice: BufferSlice(
                buffer: value.slice.buffer, offset: value.slice.offset + offset * size, byteCount: count * size),
            constant: nil)
    }

    /// Conv (group 1) as im2col + GEMM: the columns of as many images as fit the scratch limit at a time, then
    /// Y[n] = W[M, C·taps] · cols[n] as one batched GEMM (cuBLAS where found, else the kernel source's matmul),
    /// the bias broadcast into Y first (cuBLAS accumulates onto it) or the tiled GEMM's C (added to the float32
    /// sum before its one rounding). float16 and bfloat16 stay in their storage throughout (cublasGemmEx, or the
    /// tiled GEMM on half storage).
    static func convolutionAsGemm(
        _ backend: any GPUKernelHost, _ node: BoundNode, geometry g: ConvGeometry, x: BoundValue, w: BoundValue,
        bias: BoundValue?, y: BoundValue, storage: Storage = .float32
    ) throws -> any Kernel {
        let images = x.type.shape[0], channels = x.type.shape[1], filters = w.type.shape[0]
        let depth = channels * g.kernel.reduce(1, *), spatial = g.output.reduce(1, *)
        let imageColumns = depth * spatial
        let imageInput = channels * g.input.reduce(1, *), imageOutput = filters * spatial
        guard images * imageOutput > 0 else { return SequenceKernel(parts: []) }
        guard imageColumns > 0 else {
            throw unsupported(node, "a convolution with an empty window on the GPU")
        }
        let bytes = storage.bytes
        let chunk = max(1, min(images, backend.convolution.scratchBytes / (imageColumns * bytes)))
        let scratchBytes = chunk * imageColumns * bytes
        let scratch = try backend.allocate(bytes: scratchBytes)
        let columns = BoundValue(
            type: TensorType(dtype: x.type.dtype, shape: Shape([chunk * imageColumns])),
            slice: BufferSlice(buffer: scratch, offset: 0, byteCount: scratchBytes), constant: nil)
        let (metaArgument, metaKeep) = try backend.metadata(
            convolutionMeta(g, channels: channels, outChannels: filters, group: 1).map { Int32($0) })
        var parts: [any Kernel] = []
        let retained: [AnyObject] = [scratch, metaKeep]
        let library = backend.hasLibraryGemm
        if library, let bias {
            parts.append(
                try stridedCopy(
                    backend, x: bias, y: y, dims: [images, filters, spatial], xStrides: [0, 1, 0],
                    yStrides: [imageOutput, spatial, 1]))
        }
        for first in stride(from: 0, to: images, by: chunk) {
            let count = min(chunk, images - first)
            let input = view(x, offset: first * imageInput, shape: [count * imageInput])
            let output = view(y, offset: first * imageOutput, shape: [count, filters, spatial])
            let (xb, xo) = try backend.arguments(for: input, elementBytes: bytes),
                (cb, co) = try backend.arguments(for: columns, elementBytes: bytes)
            parts.append(
                try backend.kernel(
                    bytes == 4 ? "im2col3d" : "im2col3d_u16",
                    arguments: [xb, xo, cb, co, .int(Int32(count * imageColumns)), metaArgument],
                    global: [count * imageColumns]))
            let gemm = LibraryGemm(
                a: w, b: columns, y: output, m: filters, n: spatial, k: depth, beta: bias == nil ? 0 : 1,
                batch: count, strideA: 0, strideB: imageColumns, strideY: imageOutput)
            if library, let kernel = try backend.libraryGemm(gemm, prologue: nil) {
                parts.append(kernel)
                continue
            }
            let channelBias = bias.map {
                BoundValue(
                    type: TensorType(dtype: $0.type.dtype, shape: Shape([filters, 1])), slice: $0.slice, constant: nil)
            }
            parts.append(
                try tiledGemm(
                    backend, a: w, b: columns, c: channelBias, y: output, m: filters, n: spatial, k: depth,
                    beta: 1, offsets: (0..<count).map { (0, $0 * imageColumns) }, storage: storage))
        }
        return RetainingKernel(SequenceKernel(parts: parts), retained: retained)
    }

    /// One conv3d / conv_transpose3d launch over a lifted geometry, after checking the groups.
    static func convolutionLaunch(
        _ backend: any GPUKernelHost, _ node: BoundNode, _ name: String, geometry g: ConvGeometry, x: BoundValue,
        w: BoundValue, bias: BoundValue?, y: BoundValue, outChannels: Int, elementBytes: Int = 4
    ) throws -> any Kernel {
        let group = try node.step.node.int("group", default: 1)
        let channels = x.type.shape[1]
        guard group > 0, channels % group == 0, outChannels % group == 0 else {
            throw RuntimeError.invalidNode(
                node: node.step.node.displayName, detail: "group \(group) does not divide the channels")
        }
        let count = y.type.shape.elementCount
        guard count > 0 else { return SequenceKernel(parts: []) }
        let (metaArgument, metaKeep) = try backend.metadata(
            convolutionMeta(g, channels: channels, outChannels: outChannels, group: group).map { Int32($0) })
        let (xb, xo) = try backend.arguments(for: x, elementBytes: elementBytes),
            (wb, wo) = try backend.arguments(for: w, elementBytes: elementBytes),
            (yb, yo) = try backend.arguments(for: y, elementBytes: elementBytes)
        let (bb, bo) = try backend.arguments(for: bias ?? w, elementBytes: elementBytes)
        return try backend.kernel(
            name,
            arguments: [xb, xo, wb, wo, bb, bo, .int(bias == nil ? 0 : 1), yb, yo, .int(Int32(count)), metaArgument],
            global: [count], retained: [metaKeep])
    }

    static func makePool(_ node: BoundNode, _ backend: any GPUKernelHost) throws -> any Kernel {
        let x = try node.inputs[0].unwrap(node, "X")
        let y = try firstOutput(node)
        let rank = x.type.shape.rank
        guard (3...5).contains(rank) else { throw unsupported(node, "\(rank - 2)-D pooling on the GPU") }
        let a = node.step.node
        let g = lifted(try node.parameters(ConvGeometry.self))
        let indices = a.opType == "MaxPool" && node.outputs.count > 1 ? node.outputs[1] : nil
        let meta =
            g.input + g.output + g.kernel + g.strides + g.dilations + g.padsBegin + g.padsEnd + [
                a.opType == "MaxPool" ? 1 : 0, try a.int("count_include_pad", default: 0),
                try a.int("storage_order", default: 0), a.opType == "LpPool" ? try a.int("p", default: 2) : 0,
            ]
        if a.opType == "LpPool", !(1...64).contains(meta[meta.count - 1]) {
            throw RuntimeError.invalidNode(node: a.displayName, detail: "p must be between 1 and 64")
        }
        let storage = try Storage(node, backend, x, y)
        let count = y.type.shape.elementCount
        guard count > 0 else { return SequenceKernel(parts: []) }
        let (metaArgument, metaKeep) = try backend.metadata(meta.map { Int32($0) })
        let (xb, xo) = try backend.arguments(for: x, elementBytes: storage.bytes),
            (yb, yo) = try backend.arguments(for: y, elementBytes: storage.bytes)
        let (ib, io) = try backend.arguments(for: indices ?? y, elementBytes: indices == nil ? storage.bytes : 8)
        return try backend.kernel(
            "pool3d" + storage.suffix,
            arguments: [xb, xo, yb, yo, ib, io, .int(indices == nil ? 0 : 1), .int(Int32(count)), metaArgument],
            global: [count], retained: [metaKeep])
    }

    static func makeGlobalPool(_ node: BoundNode, _ backend: any GPUKernelHost) throws -> any Kernel {
        let x = try node.inputs[0].unwrap(node, "X")
        let y = try firstOutput(node)
        let planes = x.type.shape[0] * x.type.shape[1]
        let spatial = x.type.shape.dimensions.dropFirst(2).reduce(1, *)
        let storage = try Storage(node, backend, x, y)
        let (xb, xo) = try backend.arguments(for: x, elementBytes: storage.bytes),
            (yb, yo) = try backend.arguments(for: y, elementBytes: storage.bytes)
        return try backend.kernel(
            "global_pool" + storage.suffix,
            arguments: [
                xb, xo, yb, yo, .int(Int32(planes)), .int(Int32(spatial)),
                .int(node.step.node.opType == "GlobalMaxPool" ? 1 : 0),
            ],
            global: [planes])
    }

    static func makeBatchNorm(_ node: BoundNode, _ backend: any GPUKernelHost) throws -> any Kernel {
        guard node.outputs.count == 1, try node.step.node.int("training_mode", default: 0) == 0 else {
            throw RuntimeError.unsupportedAttribute(node: node.step.node.displayName, detail: "training mode")
        }
        let x = try node.inputs[0].unwrap(node, "X")
        let values = try (1...4).map { try node.inputs[$0].unwrap(node, "parameter \($0)") }
        let y = try firstOutput(node)
        // float16 x with float32 statistics (as converters keep them) is not one storage type: it runs widened.
        let storage = try Storage(node, backend, [x, y] + values)
        let parameters = try values.map { try backend.arguments(for: $0, elementBytes: storage.bytes) }
        let (xb, xo) = try backend.arguments(for: x, elementBytes: storage.bytes),
            (yb, yo) = try backend.arguments(for: y, elementBytes: storage.bytes)
        let count = y.type.shape.elementCount
        let channels = x.type.shape[1]
        let spatial = x.type.shape.dimensions.dropFirst(2).reduce(1, *)
        let epsilon = try node.step.node.float("epsilon", default: 1e-5)
        var arguments: [KernelArgument] = [xb, xo]
        for (buffer, offset) in parameters { arguments += [buffer, offset] }
        arguments += [yb, yo, .int(Int32(count)), .int(Int32(channels)), .int(Int32(spatial)), .float(epsilon)]
        return try backend.kernel("batchnorm" + storage.suffix, arguments: arguments, global: [count])
    }
}

extension Optional where Wrapped == BoundValue {
    func unwrap(_ node: BoundNode, _ what: String) throws -> BoundValue {
        guard let value = self else {
            throw RuntimeError.invalidNode(node: node.step.node.displayName, detail: "missing input \(what)")
        }
        return value
    }
}

/// Several launches run as one node (Concat and Split copy each part separately).
final class SequenceKernel: Kernel, DescribedKernel {
    let parts: [any Kernel]
    init(parts: [any Kernel]) { self.parts = parts }
    func run() throws { for part in parts { try part.run() } }

    /// The distinct parts in order, e.g. `kernel im2col3d_bytes + kernel integer_gemm`.
    var kernelDescription: String {
        var seen: [String] = []
        for part in parts.map(describe) where !seen.contains(part) { seen.append(part) }
        return seen.isEmpty ? "nothing to run" : seen.joined(separator: " + ")
    }
}

/// What a profile names a GPU kernel by: its description, or its type.
func describe(_ kernel: any Kernel) -> String {
    (kernel as? DescribedKernel)?.kernelDescription ?? String(describing: type(of: kernel))
}
