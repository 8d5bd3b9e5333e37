import CKernels
import InferenceGraph
import InferenceRuntime
import InferenceTensor

/// Data-movement operators. They work on raw elements of any dtype; index tables are built at creation.
enum TensorOpKernels {
    /// Reshape, Flatten, Squeeze, Unsqueeze: the bytes are unchanged, only the shape differs.
    static func makeReshape(_ node: BoundNode) throws -> any Kernel {
        try UnaryKernels.makeCopy(node)
    }

    /// Copies elements by a precomputed gather table: y[i] = x[table[i]].
    static func gather(_ node: BoundNode, table: [Int], inputIndex: Int = 0) throws -> any Kernel {
        let x = try node.input(inputIndex)
        let y = try node.output(0)
        let size = y.type.dtype.byteSize
        let src = try x.raw(), dst = try y.raw()
        switch size {
        case 4:
            let s = src.assumingMemoryBound(to: UInt32.self), d = dst.assumingMemoryBound(to: UInt32.self)
            return ClosureKernel { for i in 0..<table.count { d[i] = s[table[i]] } }
        case 8:
            let s = src.assumingMemoryBound(to: UInt64.self), d = dst.assumingMemoryBound(to: UInt64.self)
            return ClosureKernel { for i in 0..<table.count { d[i] = s[table[i]] } }
        default:
            return ClosureKernel {
                for i in 0..<table.count { (dst + i * size).copyMemory(from: src + table[i] * size, byteCount: size) }
            }
        }
    }

    static func makeTranspose(_ node: BoundNode, parallel: ParallelFor) throws -> any Kernel {
        let x = try node.input(0)
        let y = try node.output(0)
        let perm = try node.attributes.ints("perm") ?? Array((0..<x.shape.rank).reversed())
        let inStrides = rowMajorStrides(x.shape.dimensions)
        if y.type.dtype.byteSize == 4, y.count > 0,
            let (batch, rows, columns) = batchedMatrixTranspose(dimensions: x.shape.dimensions, perm: perm)
        {
            // A batch of 2-D transposes (NCHW <-> NHWC, a matrix's last two axes), blocked through registers: the
            // strided gather below reads one element per cache line (ConvNeXt's 96x56x56 permutes at 5 GB/s).
            let src = try x.raw().assumingMemoryBound(to: UInt32.self), dst = try y.pointer(UInt32.self)
            let outputRows = batch * columns
            let splitter = y.count >= 1 << 15 ? parallel : .serial
            // Split in whole 8-row blocks of the output so every part keeps full register blocks.
            let units = (outputRows + 7) / 8
            let task = ClosureTask { _, begin, end in
                ck_transpose_u32(src, dst, rows, columns, begin * 8, min(end * 8, outputRows))
            }
            return ClosureKernel { splitter.run(task, count: units) }
        }
        if y.type.dtype.byteSize == 4 && perm.count <= 16 && perm.count == x.shape.rank, y.count > 0 {
            // Strided copy in C, split by output rows.
            let dims = y.shape.dimensions, strides = perm.map { inStrides[$0] }
            let src = UnsafePointer(try x.pointer(UInt32.self)), dst = try y.pointer(UInt32.self)
            let last = max(dims.last ?? 1, 1), rows = y.count / last, count = y.count
            let splitter = count >= 1 << 15 ? parallel : .serial
            let task = ClosureTask { _, begin, end in
                dims.withUnsafeBufferPointer { d in
                    strides.withUnsafeBufferPointer { s in
                        ck_permute_u32(
                            src, dst, dims.count, d.baseAddress, s.baseAddress, begin * last, min(end * last, count))
                    }
                }
            }
            return ClosureKernel { splitter.run(task, count: rows) }
        }
        var table = [Int](repeating: 0, count: y.count)
        forEachIndex(y.shape.dimensions) { index, flat in
            var offset = 0
            for (axis, source) in perm.enumerated() { offset += index[axis] * inStrides[source] }
            table[flat] = offset
        }
        return try gather(node, table: table)
    }

    /// The permutation as a batch of matrix transposes, (batch, rows, columns), when it is one once unit axes are
    /// dropped and axes that stay adjacent are merged: NCHW -> NHWC is (N, C, H·W), a matrix's last two axes swapped
    /// is (the leading axes, rows, columns). Nil for any other permutation (or an invalid one).
    static func batchedMatrixTranspose(dimensions: [Int], perm: [Int]) -> (Int, Int, Int)? {
        guard perm.count == dimensions.count, Set(perm).count == perm.count,
            perm.allSatisfy({ $0 >= 0 && $0 < dimensions.count })
        else { return nil }
        // Input axes of size > 1, in output order.
        let order = perm.filter { dimensions[$0] > 1 }
        // Runs of input axes that stay consecutive in the output, in output order, each (first axis, size).
        var runs: [(first: Int, last: Int, size: Int)] = []
        for axis in order {
            if let run = runs.last, run.last + 1 == axis {
                runs[runs.count - 1] = (run.first, axis, run.size * dimensions[axis])
            } else {
                runs.append((axis, axis, dimensions[axis]))
            }
        }
        let inputOrder = runs.indices.sorted { runs[$0].first < runs[$1].first }
        switch inputOrder {
        case [1, 0]: return (1, runs[1].size, runs[0].size)
        case [0, 2, 1]: return (runs[0].size, runs[2].size, runs[1].size)
        default: return nil
        }
    }

    static func makeExpand(_ node: BoundNode) throws -> any Kernel {
        let x = try node.input(0)
        let y = try node.output(0)
        return try gather(node, table: broadcastOffsets(operand: x.shape, output: y.shape))
    }

    static func makeTile(_ node: BoundNode) throws -> any Kernel {
        let x = try node.input(0)
        let y = try node.output(0)
        let inStrides = rowMajorStrides(x.shape.dimensions)
        var table = [Int](repeating: 0, count: y.count)
        forEachIndex(y.shape.dimensions) { index, flat in
            var offset = 0
            for axis in 0..<index.count { offset += (index[axis] % x.shape[axis]) * inStrides[axis] }
            table[flat] = offset
        }
        return try gather(node, table: table)
    }

    static func makeSlice(_ node: BoundNode) throws -> any Kernel {
        let x = try node.input(0)
        let y = try node.output(0)
        let p = try node.parameters(SliceParameters.self)
        let inStrides = rowMajorStrides(x.shape.dimensions)
        let dims = x.shape.dimensions, out = p.outputDimensions
        // Unit steps: the output is runs of contiguous elements (everything after the last sliced axis), copied
        // whole: a channel split is one copy, not an index per element.
        if !dims.isEmpty, p.steps.allSatisfy({ $0 == 1 }), y.count > 0 {
            let last = (0..<dims.count).last { out[$0] != dims[$0] } ?? 0
            let run = out[last...].reduce(1, *)
            let runs = y.count / max(run, 1)
            var starts = [Int](repeating: 0, count: runs)
            forEachIndex(Array(out[..<last])) { index, flat in
                var offset = p.starts[last] * inStrides[last]
                for axis in 0..<index.count { offset += (p.starts[axis] + index[axis]) * inStrides[axis] }
                starts[flat] = offset
            }
            let size = y.type.dtype.byteSize, bytes = run * size
            let src = try x.raw(), dst = try y.raw()
            return ClosureKernel {
                for r in 0..<starts.count {
                    (dst + r * bytes).copyMemory(from: src + starts[r] * size, byteCount: bytes)
                }
            }
        }
        var table = [Int](repeating: 0, count: y.count)
        forEachIndex(y.shape.dimensions) { index, flat in
            var offset = 0
            for axis in 0..<index.count { offset += (p.starts[axis] + index[axis] * p.steps[axis]) * inStrides[axis] }
            table[flat] = offset
        }
        return try gather(node, table: table)
    }

    static func makeConcat(_ node: BoundNode, parallel: ParallelFor) throws -> any Kernel {
        let y = try node.output(0)
        let rank = y.shape.rank
        let raw = try node.attributes.int("axis", default: 0)
        let axis = raw < 0 ? raw + rank : raw
        let outer = y.shape.dimensions[..<axis].reduce(1, *)
        let size = y.type.dtype.byteSize
        let inputs = try node.inputs.indices.map { try node.input($0) }
        // Each input contributes a contiguous block of (its axis extent x inner) elements per outer index.
        let blocks = try inputs.map { value in
            (pointer: try value.raw(), bytes: value.shape.dimensions[axis...].reduce(1, *) * size)
        }
        let rowBytes = blocks.reduce(0) { $0 + $1.bytes }
        let dst = try y.raw()
        // Bytes [begin, end) of the output, from whichever blocks they come from.
        func copy(_ begin: Int, _ end: Int) {
            guard rowBytes > 0, begin < end else { return }
            var offset = begin
            while offset < end {
                let o = offset / rowBytes
                var within = offset - o * rowBytes
                for block in blocks {
                    if within >= block.bytes {
                        within -= block.bytes
                        continue
                    }
                    let count = min(block.bytes - within, end - offset)
                    (dst + offset).copyMemory(from: block.pointer + o * block.bytes + within, byteCount: count)
                    offset += count
                    within = 0
                    if offset >= end { break }
                }
            }
        }
        let total = outer * rowBytes
        // Large concatenations (a U-Net's skip connections: 12 MB) are copies bounded by memory bandwidth, which
        // two cores pull more of than one: split in 64 KiB chunks of the output.
        let chunk = 1 << 16
        guard parallel.threads > 1, total >= 1 << 20 else { return ClosureKernel { copy(0, total) } }
        let task = ClosureTask { _, begin, end in copy(begin * chunk, min(end * chunk, total)) }
        let chunks = (total + chunk - 1) / chunk
        return ClosureKernel { parallel.run(task, count: chunks) }
    }

    static func makeSplit(_ node: BoundNode) throws -> any Kernel {
        let x = try node.input(0)
        let rank = x.shape.rank
        let raw = try node.attributes.int("axis", default: 0)
        let axis = raw < 0 ? raw + rank : raw
        let outer = x.shape.dimensions[..<axis].reduce(1, *)
        let inner = x.shape.dimensions[(axis + 1)...].reduce(1, *)
        let size = x.type.dtype.byteSize
        let src = try x.raw()
        let rowBytes = x.shape[axis] * inner * size
        let parts = try node.outputs.map { out in (pointer: try out.raw(), bytes: out.shape[axis] * inner * size) }
        return ClosureKernel {
            for o in 0..<outer {
                var at = src + o * rowBytes
                for part in parts {
                    if part.bytes > 0 { (part.pointer + o * part.bytes).copyMemory(from: at, byteCount: part.bytes) }
                    at += part.bytes
                }
            }
        }
    }

    static func makeGather(_ node: BoundNode) throws -> any Kernel {
        let data = try node.input(0)
        let indices = try node.input(1)
        let y = try node.output(0)
        let rank = data.shape.rank
        let raw = try node.attributes.int("axis", default: 0)
        let axis = raw < 0 ? raw + rank : raw
        let outer = data.shape.dimensions[..<axis].reduce(1, *)
        let inner = data.shape.dimensions[(axis + 1)...].reduce(1, *)
        let extent = data.shape[axis]
        let size = data.type.dtype.byteSize
        let blockBytes = inner * size
        // Indices are read exactly (int32 or int64): an index outside the axis is an error naming the node.
        let reader = try IndexReader(indices, node: node)
        let indexCount = indices.count
        let src = try data.raw(), dst = try y.raw()
        return ClosureKernel {
            var at = dst
            for o in 0..<outer {
                for j in 0..<indexCount {
                    let index = try reader.load(j, extent: extent)
                    at.copyMemory(from: src + (o * extent + index) * blockBytes, byteCount: blockBytes)
                    at += blockBytes
                }
            }
        }
    }

    static func makePad(_ node: BoundNode) throws -> any Kernel {
        let x = try node.input(0)
        let y = try node.output(0)
        let rank = x.shape.rank
        let pads = try ShapeInference.padAmounts(node.shapeContext, rank: rank)
        let mode = try node.attributes.string("mode", default: "constant")
        let io = ElementIO.for(y.type.dtype)
        var constant = Double(try node.attributes.float("value", default: 0))
        if node.opset >= 11, let value = node.optionalInput(2) {
            if let c = value.constant {
                constant = ElementIO.for(c.dtype).load(try value.raw(), 0)
            } else {
                constant = io.load(try value.raw(), 0)
            }
        }
        if mode != "constant", y.count > 0, let empty = x.shape.dimensions.firstIndex(of: 0) {
            throw node.fail("\(mode) padding of the empty axis \(empty) has nothing to copy")
        }
        let inStrides = rowMajorStrides(x.shape.dimensions)
        var table = [Int](repeating: -1, count: y.count)
        let name = node.name
        var failure: RuntimeError?
        forEachIndex(y.shape.dimensions) { index, flat in
            var offset = 0
            for axis in 0..<rank {
                var i = index[axis] - pads[axis]
                let d = x.shape[axis]
                if i < 0 || i >= d {
                    switch mode {
                    case "edge": i = min(max(i, 0), d - 1)
                    case "reflect":
                        guard d > 1 else {
                            failure = RuntimeError.invalidNode(
                                node: name, detail: "reflect padding needs at least 2 elements per axis")
                            return
                        }
                        let period = 2 * (d - 1)
                        i = ((i % period) + period) % period
                        if i >= d { i = period - i }
                    case "wrap": i = ((i % d) + d) % d
                    default:
                        table[flat] = -1
                        return
                    }
                }
                offset += i * inStrides[axis]
            }
            table[flat] = offset
        }
        if let failure { throw failure }
        let src = try x.raw(), dst = try y.raw()
        let size = y.type.dtype.byteSize
        return ClosureKernel {
            for i in 0..<table.count {
                if table[i] < 0 {
                    io.store(dst, i, constant)
                } else {
                    (dst + i * size).copyMemory(from: src + table[i] * size, byteCount: size)
                }
            }
        }
    }

    static func makeConstantOfShape(_ node: BoundNode) throws -> any Kernel {
        let y = try node.output(0)
        // The value's bytes are copied as they are (the output has the value's type): int64 values stay exact.
        let size = y.type.dtype.byteSize
        var element = [UInt8](repeating: 0, count: size)
        if case .tensor(let t)? = node.attributes.attributes["value"], t.elementCount > 0, t.dtype == y.type.dtype {
            t.withUnsafeBytes { bytes in for i in 0..<size { element[i] = bytes[i] } }
        }
        let dst = try y.raw()
        let count = y.count
        return ClosureKernel {
            element.withUnsafeBytes { value in
                for i in 0..<count {
                    (dst + i * size).copyMemory(from: value.baseAddress.unsafelyUnwrapped, byteCount: size)
                }
            }
        }
    }

    static func makeRange(_ node: BoundNode) throws -> any Kernel {
        let y = try node.output(0)
        let io = ElementIO.for(y.type.dtype)
        let start = try node.input(0), delta = try node.input(2)
        let ps = try start.raw(), pd = try delta.raw()
        let dst = try y.raw()
        let count = y.count
        if y.type.dtype == .int64 || y.type.dtype == .int32 || y.type.dtype == .int16 {
            // Integers stay exact: start + i·delta in Int64 (the shape's count keeps every value in range).
            let read = { (p: UnsafeRawPointer) -> Int64 in
                switch y.type.dtype {
                case .int64: p.load(as: Int64.self)
                case .int32: Int64(p.load(as: Int32.self))
                default: Int64(p.load(as: Int16.self))
                }
            }
            let dtype = y.type.dtype
            return ClosureKernel {
                let s = read(ps), d = read(pd)
                for i in 0..<count {
                    let v = s &+ Int64(i) &* d
                    switch dtype {
                    case .int64: dst.storeBytes(of: v, toByteOffset: i * 8, as: Int64.self)
                    case .int32: dst.storeBytes(of: Int32(truncatingIfNeeded: v), toByteOffset: i * 4, as: Int32.self)
                    default: dst.storeBytes(of: Int16(truncatingIfNeeded: v), toByteOffset: i * 2, as: Int16.self)
                    }
                }
            }
        }
        return ClosureKernel {
            let s = io.load(ps, 0), d = io.load(pd, 0)
            for i in 0..<count { io.store(dst, i, s + Double(i) * d) }
        }
    }

    /// Shape and Size as kernels (normally folded at plan time, since they depend on shapes only).
    static func makeShapeOf(_ node: BoundNode) throws -> any Kernel {
        let x = try node.input(0)
        let y = try node.output(0)
        let values: [Int64]
        if node.attributes.opType == "Size" {
            values = [Int64(x.count)]
        } else {
            let rank = x.shape.rank
            func clamp(_ axis: Int) -> Int { min(max(axis < 0 ? axis + rank : axis, 0), rank) }
            let start = clamp(try node.attributes.int("start", default: 0))
            let end = clamp(try node.attributes.int("end", default: rank))
            values = start < end ? x.shape.dimensions[start..<end].map { Int64($0) } : []
        }
        let dst = try y.pointer(Int64.self)
        return ClosureKernel { for (i, v) in values.enumerated() { dst[i] = v } }
    }
}
