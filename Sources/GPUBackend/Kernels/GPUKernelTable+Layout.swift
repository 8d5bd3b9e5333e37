import InferenceGraph
import InferenceRuntime
import InferenceTensor

/// Kernels for variadic, boolean, index-producing and data-movement operators (Sum/Mean, Clip, And/Or/Xor/Not,
/// ArgMax/ArgMin, Tile, Pad, Resize, ConvTranspose).
extension GPUKernelTable {
    static func firstOutput(_ node: BoundNode) throws -> BoundValue {
        guard let y = node.outputs.first else {
            throw RuntimeError.invalidNode(node: node.step.node.displayName, detail: "no output")
        }
        return y
    }

    static func unsupported(_ node: BoundNode, _ detail: String) -> RuntimeError {
        .unsupportedAttribute(node: node.step.node.displayName, detail: detail)
    }

    /// The kernels index with 32-bit ints: every value a node touches must have fewer than 2^31 elements, so no
    /// count, dimension, stride or offset of its metadata can overflow. Checked before any kernel is made.
    static func requireInt32Extents(_ node: BoundNode) throws {
        let values = node.inputs.compactMap { $0 } + node.outputs
        if let large = values.first(where: { $0.type.shape.elementCount > Int(Int32.max) }) {
            throw unsupported(node, "a value of \(large.type.shape) (2^31 or more elements) on the GPU")
        }
    }

    /// The common launch: one work-item per element of y (`count` of them, all of y by default), reading x,
    /// with `extra` scalar arguments and an int metadata array: (x, xOff, y, yOff, count, extra..., meta).
    /// Elements of other sizes than 4 bytes go to the kernel's `_bytes` form (byte offsets, then the width).
    static func elementwise(
        _ backend: any GPUKernelHost, _ name: String, x: BoundValue, y: BoundValue, count: Int? = nil,
        extra: [KernelArgument] = [], meta: [Int]
    ) throws -> any Kernel {
        let count = count ?? y.type.shape.elementCount
        guard count > 0 else { return SequenceKernel(parts: []) }
        let width = x.type.dtype.byteSize
        let (metaArgument, metaKeep) = try backend.metadata(meta.map { Int32(truncatingIfNeeded: $0) })
        let (xb, xo) = try backend.arguments(for: x, elementBytes: width == 4 ? 4 : 1)
        let (yb, yo) = try backend.arguments(for: y, elementBytes: width == 4 ? 4 : 1)
        return try backend.kernel(
            width == 4 ? name : name + "_bytes",
            arguments: [xb, xo, yb, yo, .int(Int32(count))] + (width == 4 ? [] : [.int(Int32(width))]) + extra
                + [metaArgument],
            global: [count], retained: [metaKeep])
    }

    /// The integer type code the integer kernels take (see `int_load` in the kernel source), or nil.
    static func integerTypeCode(_ dtype: DType) -> Int? {
        [.int8: 0, .int16: 1, .int32: 2, .int64: 3, .uint8: 4, .uint16: 5, .uint32: 6, .uint64: 7][dtype]
    }

    /// Add/Sub/Mul/Div/Mod and Max/Min/Sum of integers, through `binary_int` (a launch per extra input).
    static func makeIntegerArithmetic(_ node: BoundNode, _ backend: any GPUKernelHost) throws -> any Kernel {
        let inputs = try node.inputs.enumerated().map { try $0.element.unwrap(node, "input \($0.offset)") }
        let y = try firstOutput(node)
        let op = node.step.node.opType
        guard let type = integerTypeCode(y.type.dtype), inputs.allSatisfy({ $0.type.dtype == y.type.dtype }) else {
            throw unsupported(node, "\(op) on \(y.type.dtype) on the GPU")
        }
        guard y.type.shape.elementCount > 0, let first = inputs.first else { return SequenceKernel(parts: []) }
        // The integer kernel's codes (they differ from the float kernel's); an unknown operator is an error.
        guard var code = ["Add": 0, "Sum": 0, "Sub": 1, "Mul": 2, "Div": 3, "Max": 4, "Min": 5, "Mod": 6][op] else {
            throw unsupported(node, "no GPU integer code for \(op)")
        }
        if try op == "Mod" && node.step.node.int("fmod", default: 0) != 0 { code = 7 }
        guard inputs.count > 1 else {
            return try elementwise(
                backend, "strided_copy", x: first, y: y,
                meta: [1, 0, 0, y.type.shape.elementCount, 1, 1])
        }
        func launch(_ a: BoundValue, _ b: BoundValue) throws -> any Kernel {
            try integerBinaryLaunch(backend, "binary_int", a: a, b: b, y: y, code: code, type: type)
        }
        var parts = [try launch(first, inputs[1])]
        for input in inputs.dropFirst(2) { parts.append(try launch(y, input)) }
        return SequenceKernel(parts: parts)
    }

    static func makeVariadic(_ node: BoundNode, _ backend: any GPUKernelHost) throws -> any Kernel {
        let inputs = try node.inputs.enumerated().map { try $0.element.unwrap(node, "input \($0.offset)") }
        let y = try firstOutput(node)
        guard let first = inputs.first else {
            throw RuntimeError.invalidNode(node: node.step.node.displayName, detail: "no inputs")
        }
        try inputs.forEach { try requireFloat32(node, $0) }
        guard y.type.shape.elementCount > 0 else { return SequenceKernel(parts: []) }
        // Sum and Mean add (Mean scales afterwards), Max and Min compare; anything else is an error.
        guard let code = ["Sum": 0, "Mean": 0, "Max": 5, "Min": 6][node.step.node.opType] else {
            throw unsupported(node, "no GPU variadic code for \(node.step.node.opType)")
        }
        var parts: [any Kernel] = []
        if inputs.count == 1 {
            parts.append(try unaryLaunch(backend, x: first, y: y, code: .identity, alpha: 1, beta: 0))
        } else {
            parts.append(try binaryLaunch(backend, a: first, b: inputs[1], y: y, code: code))
            for input in inputs.dropFirst(2) {
                parts.append(try binaryLaunch(backend, a: y, b: input, y: y, code: code))
            }
        }
        if node.step.node.opType == "Mean" && inputs.count > 1 {
            parts.append(try unaryLaunch(backend, x: y, y: y, code: .scale, alpha: 1 / Float(inputs.count), beta: 0))
        }
        return SequenceKernel(parts: parts)
    }

    /// Clip: one launch when the bounds are known at plan time (attributes before opset 11, constant inputs
    /// after); bounds computed at run time are applied as two NaN-preserving broadcast launches.
    static func makeClip(_ node: BoundNode, _ backend: any GPUKernelHost) throws -> any Kernel {
        let x = try node.inputs[0].unwrap(node, "input")
        let y = try firstOutput(node)
        guard y.type.shape.elementCount > 0 else { return SequenceKernel(parts: []) }
        var low = -Float.infinity, high = Float.infinity
        if node.step.opset < 11 {
            low = try node.step.node.float("min", default: low)
            high = try node.step.node.float("max", default: high)
            return try unaryLaunch(backend, x: x, y: y, code: .clip, alpha: low, beta: high)
        }
        let bounds = (1...2).map { $0 < node.inputs.count ? node.inputs[$0] : nil }
        try bounds.compactMap { $0 }.forEach { try requireFloat32(node, $0) }
        if bounds.allSatisfy({ $0 == nil || $0?.constant != nil }) {
            if let tensor = bounds[0]?.constant, let scalar = try tensor.scalars(as: Float.self).first { low = scalar }
            if let tensor = bounds[1]?.constant, let scalar = try tensor.scalars(as: Float.self).first { high = scalar }
            return try unaryLaunch(backend, x: x, y: y, code: .clip, alpha: low, beta: high)
        }
        var parts: [any Kernel] = []
        var source = x
        for (bound, code) in zip(bounds, [10, 11]) {
            guard let bound else { continue }
            parts.append(try binaryLaunch(backend, a: source, b: bound, y: y, code: code))
            source = y
        }
        return SequenceKernel(parts: parts)
    }

    /// And, Or, Xor (broadcasting) and Not on bool bytes.
    static func makeLogic(_ node: BoundNode, _ backend: any GPUKernelHost) throws -> any Kernel {
        let op = ["And": 0, "Or": 1, "Xor": 2, "Not": 3][node.step.node.opType, default: 3]
        let a = try node.inputs[0].unwrap(node, "A")
        let b = op == 3 ? a : try node.inputs[1].unwrap(node, "B")
        let y = try firstOutput(node)
        let rank = y.type.shape.rank
        let count = y.type.shape.elementCount
        guard count > 0 else { return SequenceKernel(parts: []) }
        let (metaArgument, metaKeep) = try backend.metadata(
            [Int32(rank)] + y.type.shape.dimensions.map { Int32($0) } + broadcastStrides(a.type.shape, rank: rank)
                + broadcastStrides(b.type.shape, rank: rank))
        let (ab, ao) = try backend.arguments(for: a, elementBytes: 1)
        let (bb, bo) = try backend.arguments(for: b, elementBytes: 1)
        let (yb, yo) = try backend.arguments(for: y, elementBytes: 1)
        return try backend.kernel(
            "logic", arguments: [ab, ao, bb, bo, yb, yo, .int(Int32(count)), .int(Int32(op)), metaArgument],
            global: [count], retained: [metaKeep])
    }

    static func makeArgReduce(_ node: BoundNode, _ backend: any GPUKernelHost) throws -> any Kernel {
        let x = try node.inputs[0].unwrap(node, "data")
        let y = try firstOutput(node)
        let a = node.step.node
        let dims = x.type.shape.dimensions
        let raw = try a.int("axis", default: 0)
        let axis = raw < 0 ? raw + dims.count : raw
        guard dims.indices.contains(axis), dims[axis] > 0 else {
            throw RuntimeError.invalidNode(node: a.displayName, detail: "axis \(raw) of an empty or smaller tensor")
        }
        let inner = dims[(axis + 1)...].reduce(1, *)
        let count = y.type.shape.elementCount
        guard count > 0 else { return SequenceKernel(parts: []) }
        let (xb, xo) = try backend.arguments(for: x), (yb, yo) = try backend.arguments(for: y, elementBytes: 8)
        return try backend.kernel(
            "arg_reduce",
            arguments: [
                xb, xo, yb, yo, .int(Int32(count)), .int(Int32(dims[axis])),
                .int(Int32(inner)), .int(a.opType == "ArgMax" ? 1 : 0),
                .int(try a.int("select_last_index", default: 0) != 0 ? 1 : 0),
            ],
            global: [count])
    }

    static func makeTile(_ node: BoundNode, _ backend: any GPUKernelHost) throws -> any Kernel {
        let x = try node.inputs[0].unwrap(node, "input")
        let y = try firstOutput(node)
        let dims = x.type.shape.dimensions
        return try elementwise(
            backend, "tile", x: x, y: y, meta: [dims.count] + y.type.shape.dimensions + dims + contiguousStrides(dims))
    }

    static func makePad(_ node: BoundNode, _ backend: any GPUKernelHost) throws -> any Kernel {
        let x = try node.inputs[0].unwrap(node, "data")
        let y = try firstOutput(node)
        let a = node.step.node
        let dims = x.type.shape.dimensions
        let pads = try ShapeInference.padAmounts(shapeContext(node), rank: dims.count)
        let modeName = try a.string("mode", default: "constant")
        guard let mode = ["constant": 0, "reflect": 1, "edge": 2, "wrap": 3][modeName] else {
            throw unsupported(node, "Pad mode '\(modeName)'")
        }
        var value = try a.float("value", default: 0)
        if node.step.opset >= 11, node.inputs.count > 2, let given = node.inputs[2] {
            guard let tensor = given.constant, let scalar = try tensor.scalars(as: Float.self).first else {
                throw unsupported(node, "Pad with a constant_value computed at run time on the GPU")
            }
            value = scalar
        }
        if mode != 0, y.type.shape.elementCount > 0, let empty = dims.firstIndex(of: 0) {
            throw RuntimeError.invalidNode(
                node: a.displayName, detail: "\(modeName) padding of the empty axis \(empty) has nothing to copy")
        }
        for axis in dims.indices where mode == 1 && dims[axis] < 2 && (pads[axis] > 0 || pads[axis + dims.count] > 0) {
            throw RuntimeError.invalidNode(
                node: a.displayName, detail: "reflect padding needs at least 2 elements on axis \(axis)")
        }
        return try elementwise(
            backend, "pad", x: x, y: y, extra: [.float(value)],
            meta: [dims.count, mode] + y.type.shape.dimensions + dims + contiguousStrides(dims)
                + pads.prefix(dims.count))
    }

    static func makeResize(_ node: BoundNode, _ backend: any GPUKernelHost) throws -> any Kernel {
        let x = try node.inputs[0].unwrap(node, "X")
        let y = try firstOutput(node)
        let inDims = x.type.shape.dimensions, outDims = y.type.shape.dimensions
        guard inDims.count <= 8 else {
            throw unsupported(node, "Resize of rank \(inDims.count) on the GPU (at most 8)")
        }
        let geometry: ResizeGeometry
        do {
            geometry = try ResizeGeometry.make(shapeContext(node), input: inDims, output: outDims)
        } catch let error as ResizeGeometry.Unsupported {
            throw unsupported(node, error.detail)
        }
        guard !geometry.usesTaps else { throw unsupported(node, "cubic or antialiased Resize on the GPU") }
        let count = y.type.shape.elementCount
        let rank = inDims.count
        var starts: [Int32] = []
        var tables: [Int32] = []
        let headerCount = 2 + 3 * rank
        for map in geometry.axes {
            starts.append(Int32(headerCount + tables.count))
            tables += map.low.map { Int32($0) } + map.high.map { Int32($0) } + map.outside.map { $0 ? 1 : 0 }
            tables += map.weight.map { Int32(bitPattern: Float($0).bitPattern) }
        }
        let header =
            [Int32(rank), Int32(bitPattern: Float(geometry.extrapolation).bitPattern)] + outDims.map { Int32($0) }
            + contiguousStrides(inDims).map { Int32($0) }
        let (metaArgument, metaKeep) = try backend.metadata(header + starts + tables)
        let (xb, xo) = try backend.arguments(for: x), (yb, yo) = try backend.arguments(for: y)
        return try backend.kernel(
            "resize", arguments: [xb, xo, yb, yo, .int(Int32(count)), metaArgument], global: [count],
            retained: [metaKeep])
    }

    /// ConvTranspose in 1-D (as 2-D with one row) and 2-D.
    static func makeConvTranspose(_ node: BoundNode, _ backend: any GPUKernelHost) throws -> any Kernel {
        let (x, w, bias, y, g) = try convolutionOperands(node, "transposed convolution")
        return try convolutionLaunch(
            backend, node, "conv_transpose3d", geometry: g, x: x, w: w, bias: bias, y: y, outChannels: y.type.shape[1])
    }

    /// BitwiseAnd/Or/Xor/Not and BitShift on integers, through `bitwise_int` (little-endian byte stores).
    static func makeBitwise(_ node: BoundNode, _ backend: any GPUKernelHost) throws -> any Kernel {
        let a = try node.inputs[0].unwrap(node, "A")
        let b = node.inputs.count > 1 ? try node.inputs[1].unwrap(node, "B") : a
        let y = try firstOutput(node)
        let op = node.step.node.opType
        guard let type = integerTypeCode(y.type.dtype), a.type.dtype == y.type.dtype, b.type.dtype == y.type.dtype
        else { throw unsupported(node, "\(op) on \(y.type.dtype) on the GPU") }
        var code: Int
        switch op {
        case "BitwiseAnd": code = 0
        case "BitwiseOr": code = 1
        case "BitwiseXor": code = 2
        case "BitwiseNot": code = 3
        case "BitShift":
            code = try node.step.node.string("direction", default: "") == "LEFT" ? 4 : 5
        default: throw unsupported(node, "no GPU bitwise code for \(op)")
        }
        guard y.type.shape.elementCount > 0 else { return SequenceKernel(parts: []) }
        return try integerBinaryLaunch(backend, "bitwise_int", a: a, b: b, y: y, code: code, type: type)
    }

    /// One launch of an integer kernel with broadcasting over bytes: (a, off, b, off, y, off, count, op, type, meta),
    /// meta = [rank, dims, a's strides, b's strides] (binary_int, bitwise_int).
    static func integerBinaryLaunch(
        _ backend: any GPUKernelHost, _ name: String, a: BoundValue, b: BoundValue, y: BoundValue, code: Int, type: Int
    ) throws -> any Kernel {
        let rank = y.type.shape.rank
        let (metaArgument, metaKeep) = try backend.metadata(
            [Int32(rank)] + y.type.shape.dimensions.map { Int32($0) } + broadcastStrides(a.type.shape, rank: rank)
                + broadcastStrides(b.type.shape, rank: rank))
        let (ab, ao) = try backend.arguments(for: a, elementBytes: 1),
            (bb, bo) = try backend.arguments(for: b, elementBytes: 1),
            (yb, yo) = try backend.arguments(for: y, elementBytes: 1)
        let count = y.type.shape.elementCount
        return try backend.kernel(
            name,
            arguments: [
                ab, ao, bb, bo, yb, yo, .int(Int32(count)), .int(Int32(code)), .int(Int32(type)), metaArgument,
            ],
            global: [count], retained: [metaKeep])
    }
}
