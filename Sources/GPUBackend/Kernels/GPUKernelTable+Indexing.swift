import InferenceGraph
import InferenceRuntime
import InferenceTensor

/// Kernels for the indexing operators (GatherElements, GatherND, ScatterElements, ScatterND), Trilu, CumSum and
/// IsNaN/IsInf. Index tensors are int64; an index out of range is never read or written (see `IndexStatusBoard`).
extension GPUKernelTable {
    /// The out-of-range flag of an indexing node: constant indices are checked here once (an error naming the
    /// node) and get a flag nobody reads (`checked` false); run-time indices get one `IndexCheckedKernel` reads
    /// after each run. Index i is checked against `extents[i % extents.count]`.
    static func indexFlag(_ node: BoundNode, _ backend: any GPUKernelHost, indices: BoundValue, extents: [Int])
        throws -> (argument: KernelArgument, buffer: AnyObject, checked: Bool)
    {
        let (argument, buffer) = try backend.metadata([0])
        guard let constant = indices.constant else { return (argument, buffer, true) }
        for (i, raw) in try constant.scalars(as: Int64.self).enumerated() {
            let extent = Int64(extents[i % max(extents.count, 1)])
            guard raw >= -extent && raw < extent else {
                throw RuntimeError.invalidNode(
                    node: node.step.node.displayName,
                    detail: "index \(raw) is out of range for an axis of size \(extent)")
            }
        }
        return (argument, buffer, false)
    }

    /// `kernel`, wrapped to report an index out of range after each run when its indices come at run time.
    static func checked(
        _ kernel: any Kernel, _ node: BoundNode, _ backend: any GPUKernelHost,
        flag: (argument: KernelArgument, buffer: AnyObject, checked: Bool)
    ) -> any Kernel {
        guard flag.checked, let buffer = flag.buffer as? any DeviceBuffer else { return kernel }
        return IndexCheckedKernel(kernel, backend: backend, flag: buffer, node: node.step.node.displayName)
    }

    static func requireInt64Indices(_ node: BoundNode, _ indices: BoundValue) throws {
        guard indices.type.dtype == .int64 else {
            throw unsupported(node, "\(node.step.node.opType) with \(indices.type.dtype) indices on the GPU")
        }
    }

    /// A launch of one of the *_bytes indexing kernels over `count` work-items:
    /// (source, offset, indices, offset, y, offset, count, width, meta, status).
    private static func indexingLaunch(
        _ node: BoundNode, _ backend: any GPUKernelHost, _ name: String, source: BoundValue, indices: BoundValue,
        y: BoundValue, count: Int, meta: [Int], extents: [Int], before: (any Kernel)? = nil
    ) throws -> any Kernel {
        guard count > 0 else { return before ?? SequenceKernel(parts: []) }
        let width = y.type.dtype.byteSize
        let (metaArgument, metaKeep) = try backend.metadata(meta.map { Int32(truncatingIfNeeded: $0) })
        let flag = try indexFlag(node, backend, indices: indices, extents: extents)
        let (sb, so) = try backend.arguments(for: source, elementBytes: 1)
        let (ib, io) = try backend.arguments(for: indices, elementBytes: 8)
        let (yb, yo) = try backend.arguments(for: y, elementBytes: 1)
        let launch = try backend.kernel(
            name,
            arguments: [
                sb, so, ib, io, yb, yo, .int(Int32(count)), .int(Int32(width)), metaArgument, flag.argument,
            ],
            global: [count], retained: [metaKeep, flag.buffer])
        return checked(SequenceKernel(parts: [before, launch].compactMap { $0 }), node, backend, flag: flag)
    }

    /// y = data (a byte copy unless the planner placed them in one buffer), for the scatters.
    private static func copyData(_ data: BoundValue, to y: BoundValue, _ backend: any GPUKernelHost) throws
        -> (any Kernel)?
    {
        if data.slice.offset == y.slice.offset && data.slice.buffer === y.slice.buffer { return nil }
        let count = y.type.byteCount
        guard count > 0 else { return nil }
        let (xb, xo) = try backend.arguments(for: data, elementBytes: 1)
        let (yb, yo) = try backend.arguments(for: y, elementBytes: 1)
        return try backend.kernel("copy_bytes", arguments: [xb, xo, yb, yo, .int(Int32(count))], global: [count])
    }

    private static func elementsMeta(_ node: BoundNode, data: BoundValue, indices: BoundValue) throws -> ([Int], Int) {
        let rank = data.type.shape.rank
        let raw = try node.step.node.int("axis", default: 0)
        let axis = raw < 0 ? raw + rank : raw
        guard (0..<rank).contains(axis), indices.type.shape.rank == rank else {
            throw RuntimeError.invalidNode(node: node.step.node.displayName, detail: "axis \(raw) or indices rank")
        }
        for a in 0..<rank where a != axis && indices.type.shape[a] > data.type.shape[a] {
            throw RuntimeError.invalidNode(
                node: node.step.node.displayName,
                detail: "indices \(indices.type.shape) do not fit in data \(data.type.shape) on axis \(a)")
        }
        var strides = [Int](repeating: 1, count: rank)
        for a in stride(from: rank - 2, through: 0, by: -1) { strides[a] = strides[a + 1] * data.type.shape[a + 1] }
        return ([rank, axis, data.type.shape[axis]] + indices.type.shape.dimensions + strides, data.type.shape[axis])
    }

    static func makeGatherElements(_ node: BoundNode, _ backend: any GPUKernelHost) throws -> any Kernel {
        let data = try node.inputs[0].unwrap(node, "data"), indices = try node.inputs[1].unwrap(node, "indices")
        let y = try firstOutput(node)
        try requireInt64Indices(node, indices)
        let (meta, extent) = try elementsMeta(node, data: data, indices: indices)
        return try indexingLaunch(
            node, backend, "gather_elements_bytes", source: data, indices: indices, y: y,
            count: y.type.shape.elementCount, meta: meta, extents: [extent])
    }

    /// A scatter's data, int64 indices, updates and output; only reduction 'none' runs on the GPU.
    static func scatterOperands(_ node: BoundNode) throws -> (BoundValue, BoundValue, BoundValue, BoundValue) {
        let data = try node.inputs[0].unwrap(node, "data"), indices = try node.inputs[1].unwrap(node, "indices")
        let updates = try node.inputs[2].unwrap(node, "updates")
        try requireInt64Indices(node, indices)
        let reduction = try node.step.node.string("reduction", default: "none")
        guard reduction == "none" else { throw unsupported(node, "reduction '\(reduction)' on the GPU") }
        return (data, indices, updates, try firstOutput(node))
    }

    static func makeScatterElements(_ node: BoundNode, _ backend: any GPUKernelHost) throws -> any Kernel {
        let (data, indices, updates, y) = try scatterOperands(node)
        let (meta, extent) = try elementsMeta(node, data: data, indices: indices)
        return try indexingLaunch(
            node, backend, "scatter_elements_bytes", source: updates, indices: indices, y: y,
            count: indices.type.shape.elementCount, meta: meta, extents: [extent],
            before: try copyData(data, to: y, backend))
    }

    private static func tupleMeta(_ node: BoundNode, data: BoundValue, indices: BoundValue, batchDims: Int) throws
        -> IndexTupleGeometry
    {
        do {
            return try IndexTupleGeometry.resolve(
                data: data.type.shape.dimensions, indices: indices.type.shape.dimensions, batchDims: batchDims)
        } catch {
            throw RuntimeError.invalidNode(node: node.step.node.displayName, detail: error.text)
        }
    }

    private static func metadata(_ g: IndexTupleGeometry) -> [Int] {
        [g.tupleLength, max(g.tuplesPerBatch, 1), g.sliceCount, g.batchStride] + g.indexedDims + g.indexedStrides
    }

    static func makeGatherND(_ node: BoundNode, _ backend: any GPUKernelHost) throws -> any Kernel {
        let data = try node.inputs[0].unwrap(node, "data"), indices = try node.inputs[1].unwrap(node, "indices")
        let y = try firstOutput(node)
        try requireInt64Indices(node, indices)
        let g = try tupleMeta(
            node, data: data, indices: indices, batchDims: try node.step.node.int("batch_dims", default: 0))
        return try indexingLaunch(
            node, backend, "gather_nd_bytes", source: data, indices: indices, y: y, count: y.type.shape.elementCount,
            meta: metadata(g), extents: g.indexedDims)
    }

    static func makeScatterND(_ node: BoundNode, _ backend: any GPUKernelHost) throws -> any Kernel {
        let (data, indices, updates, y) = try scatterOperands(node)
        let g = try tupleMeta(node, data: data, indices: indices, batchDims: 0)
        return try indexingLaunch(
            node, backend, "scatter_nd_bytes", source: updates, indices: indices, y: y,
            count: updates.type.shape.elementCount, meta: metadata(g), extents: g.indexedDims,
            before: try copyData(data, to: y, backend))
    }

    static func makeTrilu(_ node: BoundNode, _ backend: any GPUKernelHost) throws -> any Kernel {
        let x = try node.inputs[0].unwrap(node, "input")
        let y = try firstOutput(node)
        let dims = x.type.shape.dimensions
        guard dims.count >= 2 else { throw RuntimeError.invalidNode(node: node.step.node.displayName, detail: "rank") }
        // k: absent (0), or an int64 scalar the kernel reads on the device (a constant or a run-time value).
        let kValue = node.inputs.count > 1 ? node.inputs[1] : nil
        if let kValue {
            try requireInt64Indices(node, kValue)
            guard kValue.type.shape.elementCount == 1 else {
                throw RuntimeError.invalidNode(node: node.step.node.displayName, detail: "k must be a scalar")
            }
        }
        let rows = dims[dims.count - 2], cols = dims[dims.count - 1]
        let count = y.type.shape.elementCount
        guard count > 0 else { return SequenceKernel(parts: []) }
        let width = x.type.dtype.byteSize
        let (xb, xo) = try backend.arguments(for: x, elementBytes: 1)
        let (yb, yo) = try backend.arguments(for: y, elementBytes: 1)
        let (kb, ko) = try backend.arguments(for: kValue ?? x, elementBytes: 8)
        let upper = try node.step.node.int("upper", default: 1) != 0
        return try backend.kernel(
            "trilu_bytes",
            arguments: [
                xb, xo, yb, yo, .int(Int32(count)), .int(Int32(width)), .int(Int32(rows)), .int(Int32(cols)), .int(0),
                .int(upper ? 1 : 0), kb, ko, .int(kValue == nil ? 0 : 1),
            ], global: [count])
    }

    static func makeCumSum(_ node: BoundNode, _ backend: any GPUKernelHost) throws -> any Kernel {
        let x = try node.inputs[0].unwrap(node, "x")
        let y = try firstOutput(node)
        try requireFloat32(node, x)
        guard node.inputs.count > 1, let axisValue = node.inputs[1]?.constant,
            let raw = try axisValue.integerValues().first
        else { throw unsupported(node, "an axis computed at run time on the GPU") }
        let dims = x.type.shape.dimensions
        let axis = raw < 0 ? raw + dims.count : raw
        guard (0..<dims.count).contains(axis) else {
            throw RuntimeError.invalidNode(node: node.step.node.displayName, detail: "axis \(raw) out of range")
        }
        let n = dims[axis], inner = dims[(axis + 1)...].reduce(1, *)
        let lines = n == 0 ? 0 : x.type.shape.elementCount / n
        guard lines > 0 else { return SequenceKernel(parts: []) }
        let (xb, xo) = try backend.arguments(for: x), (yb, yo) = try backend.arguments(for: y)
        let a = node.step.node
        return try backend.kernel(
            "cumsum_f32",
            arguments: [
                xb, xo, yb, yo, .int(Int32(lines)), .int(Int32(n)), .int(Int32(inner)),
                .int(try a.int("exclusive", default: 0) != 0 ? 1 : 0),
                .int(try a.int("reverse", default: 0) != 0 ? 1 : 0),
            ], global: [lines])
    }

    static func makeFloatClass(_ node: BoundNode, _ backend: any GPUKernelHost) throws -> any Kernel {
        let x = try node.inputs[0].unwrap(node, "X")
        let y = try firstOutput(node)
        try requireFloat32(node, x)
        let a = node.step.node
        var mode = 0
        if a.opType == "IsInf" {
            let negative = try a.int("detect_negative", default: 1) != 0
            let positive = try a.int("detect_positive", default: 1) != 0
            mode = negative && positive ? 1 : (positive ? 2 : (negative ? 3 : 4))
        }
        let count = y.type.shape.elementCount
        guard count > 0 else { return SequenceKernel(parts: []) }
        let (xb, xo) = try backend.arguments(for: x)
        let (yb, yo) = try backend.arguments(for: y, elementBytes: 1)
        return try backend.kernel(
            "float_class", arguments: [xb, xo, yb, yo, .int(Int32(count)), .int(Int32(mode))], global: [count])
    }

    static func makeTopK(_ node: BoundNode, _ backend: any GPUKernelHost) throws -> any Kernel {
        let x = try node.inputs[0].unwrap(node, "X")
        guard node.outputs.count == 2 else {
            throw RuntimeError.invalidNode(node: node.step.node.displayName, detail: "TopK has two outputs")
        }
        let values = node.outputs[0], indices = node.outputs[1]
        try requireFloat32(node, x)
        let dims = x.type.shape.dimensions
        let raw = try node.step.node.int("axis", default: -1)
        let axis = raw < 0 ? raw + dims.count : raw
        guard (0..<dims.count).contains(axis) else {
            throw RuntimeError.invalidNode(node: node.step.node.displayName, detail: "axis \(raw) out of range")
        }
        let n = dims[axis], inner = dims[(axis + 1)...].reduce(1, *), k = values.type.shape[axis]
        let lines = dims[..<axis].reduce(1, *) * inner
        guard lines > 0, k > 0 else { return SequenceKernel(parts: []) }
        let largest = try node.step.node.int("largest", default: 1) != 0
        let (xb, xo) = try backend.arguments(for: x), (vb, vo) = try backend.arguments(for: values)
        let (ib, io) = try backend.arguments(for: indices, elementBytes: 8)
        return try backend.kernel(
            "topk_lines",
            arguments: [
                xb, xo, vb, vo, ib, io, .int(Int32(lines)), .int(Int32(n)), .int(Int32(inner)), .int(Int32(k)),
                .int(largest ? 1 : 0),
            ], global: [lines])
    }

    /// DepthToSpace and SpaceToDepth: the rank-6 rearrangement (`BlockRearrangement`) as one strided copy.
    static func makeRearrange(_ node: BoundNode, _ backend: any GPUKernelHost) throws -> any Kernel {
        let x = try node.inputs[0].unwrap(node, "input")
        let y = try firstOutput(node)
        let geometry: BlockRearrangement
        do {
            geometry = try BlockRearrangement.resolve(
                opType: node.step.node.opType, shape: x.type.shape.dimensions,
                blockSize: try node.step.node.int("blocksize", default: 0),
                mode: try node.step.node.string("mode", default: "DCR"))
        } catch let error as ShapeError.Detail {
            throw RuntimeError.invalidNode(node: node.step.node.displayName, detail: error.text)
        }
        let inStrides = contiguousStrides(geometry.inputDims6)
        let dims = geometry.permutation.map { geometry.inputDims6[$0] }
        return try stridedCopy(
            backend, x: x, y: y, dims: dims, xStrides: geometry.permutation.map { inStrides[$0] },
            yStrides: contiguousStrides(dims))
    }
}
