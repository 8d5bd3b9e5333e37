import InferenceGraph
import InferenceRuntime
import InferenceTensor

/// Reads an index tensor (int32 or int64) exactly, and checks each index against an axis: an index outside
/// [-extent, extent) is an error naming the node, never a read or write out of bounds.
struct IndexReader {
    let pointer: UnsafeRawPointer
    let wide: Bool
    let node: String

    init(_ value: BoundValue, node: BoundNode) throws {
        switch value.type.dtype {
        case .int64: wide = true
        case .int32: wide = false
        default: throw node.fail("indices must be int32 or int64, not \(value.type.dtype)")
        }
        pointer = UnsafeRawPointer(try value.raw())
        self.node = node.name
    }

    @inline(__always) func raw(_ i: Int) -> Int {
        wide
            ? Int(pointer.load(fromByteOffset: i &* 8, as: Int64.self))
            : Int(pointer.load(fromByteOffset: i &* 4, as: Int32.self))
    }

    /// Index `i` normalized into [0, extent). - Throws: `RuntimeError.invalidNode` when out of range.
    @inline(__always) func load(_ i: Int, extent: Int) throws -> Int {
        var index = raw(i)
        if index < 0 { index += extent }  // cannot overflow: index < 0 <= extent
        guard index >= 0 && index < extent else {
            throw RuntimeError.invalidNode(
                node: node, detail: "index \(raw(i)) is out of range for an axis of size \(extent)")
        }
        return index
    }
}

/// Copies one element of `size` bytes.
@inline(__always) func copyElement(
    _ dst: UnsafeMutableRawPointer, _ to: Int, _ src: UnsafeRawPointer, _ from: Int, size: Int
) {
    switch size {
    case 4:
        dst.storeBytes(of: src.load(fromByteOffset: from &* 4, as: UInt32.self), toByteOffset: to &* 4, as: UInt32.self)
    case 8:
        dst.storeBytes(of: src.load(fromByteOffset: from &* 8, as: UInt64.self), toByteOffset: to &* 8, as: UInt64.self)
    case 2:
        dst.storeBytes(of: src.load(fromByteOffset: from &* 2, as: UInt16.self), toByteOffset: to &* 2, as: UInt16.self)
    case 1: dst.storeBytes(of: src.load(fromByteOffset: from, as: UInt8.self), toByteOffset: to, as: UInt8.self)
    default: (dst + to &* size).copyMemory(from: src + from &* size, byteCount: size)
    }
}

/// Combines an update into an element of the same type in place (ScatterElements/ScatterND reductions):
/// floats in their own arithmetic, integers with wrapping arithmetic, as the reference does.
typealias ElementCombiner = (UnsafeMutableRawPointer, Int, UnsafeRawPointer, Int) -> Void

enum ElementCombiners {
    static func make(_ dtype: DType, reduction: String, node: BoundNode) throws -> ElementCombiner? {
        if reduction == "none" { return nil }
        guard ["add", "mul", "max", "min"].contains(reduction) else {
            throw node.fail("reduction '\(reduction)' is not none, add, mul, max or min")
        }
        switch dtype {
        case .float32: return float(Float.self, reduction)
        case .float64: return float(Double.self, reduction)
        case .float16: return float(Float16.self, reduction)
        case .bfloat16: throw node.fail("scatter reductions on bfloat16 are not supported")
        case .int8: return integer(Int8.self, reduction)
        case .int16: return integer(Int16.self, reduction)
        case .int32: return integer(Int32.self, reduction)
        case .int64: return integer(Int64.self, reduction)
        case .uint8: return integer(UInt8.self, reduction)
        case .uint16: return integer(UInt16.self, reduction)
        case .uint32: return integer(UInt32.self, reduction)
        case .uint64: return integer(UInt64.self, reduction)
        case .bool: throw node.fail("reduction '\(reduction)' on bool data")
        }
    }

    private static func float<T: BinaryFloatingPoint>(_: T.Type, _ reduction: String) -> ElementCombiner {
        let op: (T, T) -> T =
            switch reduction {
            case "add": { $0 + $1 }
            case "mul": { $0 * $1 }
            case "max": { $0.isNaN || $1.isNaN ? .nan : Swift.max($0, $1) }
            default: { $0.isNaN || $1.isNaN ? .nan : Swift.min($0, $1) }
            }
        return { dst, to, src, from in
            let p = dst.assumingMemoryBound(to: T.self) + to
            p.pointee = op(p.pointee, src.load(fromByteOffset: from * MemoryLayout<T>.stride, as: T.self))
        }
    }

    private static func integer<T: FixedWidthInteger>(_: T.Type, _ reduction: String) -> ElementCombiner {
        let op: (T, T) -> T =
            switch reduction {
            case "add": { $0 &+ $1 }
            case "mul": { $0 &* $1 }
            case "max": { Swift.max($0, $1) }
            default: { Swift.min($0, $1) }
            }
        return { dst, to, src, from in
            let p = dst.assumingMemoryBound(to: T.self) + to
            p.pointee = op(p.pointee, src.load(fromByteOffset: from * MemoryLayout<T>.stride, as: T.self))
        }
    }
}

/// GatherElements, GatherND, ScatterElements, ScatterND, Trilu, DepthToSpace/SpaceToDepth and OneHot: data
/// movement on any element type, bytes copied exactly.
enum IndexingKernels {
    /// For every element of `shape`, its data offset without the `axis` term (GatherElements/ScatterElements).
    private static func offsetsWithoutAxis(_ shape: [Int], dataStrides: [Int], axis: Int) -> [Int] {
        var table = [Int](repeating: 0, count: shape.reduce(1, *))
        forEachIndex(shape) { index, flat in
            var offset = 0
            for a in 0..<index.count where a != axis { offset += index[a] * dataStrides[a] }
            table[flat] = offset
        }
        return table
    }

    static func makeGatherElements(_ node: BoundNode) throws -> any Kernel {
        let data = try node.input(0), indices = try node.input(1), y = try node.output(0)
        let rank = data.shape.rank
        let axis = try node.shapeContext.axis(try node.attributes.int("axis", default: 0), rank: rank)
        let strides = rowMajorStrides(data.shape.dimensions)
        for (a, d) in indices.shape.dimensions.enumerated() where a != axis && d > data.shape[a] {
            throw node.fail("indices \(indices.shape) do not fit in data \(data.shape) on axis \(a)")
        }
        let base = offsetsWithoutAxis(indices.shape.dimensions, dataStrides: strides, axis: axis)
        let reader = try IndexReader(indices, node: node)
        let extent = data.shape[axis], step = strides[axis], size = data.type.dtype.byteSize
        let src = UnsafeRawPointer(try data.raw()), dst = try y.raw()
        return ClosureKernel {
            for i in 0..<base.count {
                copyElement(dst, i, src, base[i] + (try reader.load(i, extent: extent)) * step, size: size)
            }
        }
    }

    static func makeScatterElements(_ node: BoundNode) throws -> any Kernel {
        let data = try node.input(0), indices = try node.input(1), updates = try node.input(2)
        let y = try node.output(0)
        let rank = data.shape.rank
        let axis = try node.shapeContext.axis(try node.attributes.int("axis", default: 0), rank: rank)
        let strides = rowMajorStrides(data.shape.dimensions)
        let base = offsetsWithoutAxis(indices.shape.dimensions, dataStrides: strides, axis: axis)
        for (a, d) in indices.shape.dimensions.enumerated() where a != axis && d > data.shape[a] {
            throw node.fail("indices \(indices.shape) do not fit in data \(data.shape) on axis \(a)")
        }
        let reader = try IndexReader(indices, node: node)
        let combine = try ElementCombiners.make(
            data.type.dtype, reduction: try node.attributes.string("reduction", default: "none"), node: node)
        let extent = data.shape[axis], step = strides[axis], size = data.type.dtype.byteSize
        let src = UnsafeRawPointer(try data.raw()), upd = UnsafeRawPointer(try updates.raw()), dst = try y.raw()
        let bytes = y.type.byteCount
        return ClosureKernel {
            // Check every index before writing, so a bad index leaves no half-scattered output behind.
            for i in 0..<base.count { _ = try reader.load(i, extent: extent) }
            if dst != UnsafeMutableRawPointer(mutating: src) { dst.copyMemory(from: src, byteCount: bytes) }
            for i in 0..<base.count {
                let target = base[i] + (try reader.load(i, extent: extent)) * step
                if let combine { combine(dst, target, upd, i) } else { copyElement(dst, target, upd, i, size: size) }
            }
        }
    }

    private static func tupleGeometry(_ node: BoundNode, data: BoundValue, indices: BoundValue, batchDims: Int) throws
        -> IndexTupleGeometry
    {
        do {
            return try IndexTupleGeometry.resolve(
                data: data.shape.dimensions, indices: indices.shape.dimensions, batchDims: batchDims)
        } catch {
            throw node.fail(error.text)
        }
    }

    /// The data offset of index tuple `t` (in tuples, across batches). - Throws: for an index out of range.
    @inline(__always) private static func tupleOffset(_ t: Int, _ g: IndexTupleGeometry, _ reader: IndexReader) throws
        -> Int
    {
        var offset = (t / max(g.tuplesPerBatch, 1)) * g.batchStride
        for j in 0..<g.tupleLength {
            offset += try reader.load(t * g.tupleLength + j, extent: g.indexedDims[j]) * g.indexedStrides[j]
        }
        return offset
    }

    static func makeGatherND(_ node: BoundNode) throws -> any Kernel {
        let data = try node.input(0), indices = try node.input(1), y = try node.output(0)
        let g = try tupleGeometry(
            node, data: data, indices: indices, batchDims: try node.attributes.int("batch_dims", default: 0))
        let reader = try IndexReader(indices, node: node)
        let size = data.type.dtype.byteSize, sliceBytes = g.sliceCount * size
        let tuples = g.batches * g.tuplesPerBatch
        let src = UnsafeRawPointer(try data.raw()), dst = try y.raw()
        return ClosureKernel {
            for t in 0..<tuples {
                let offset = try tupleOffset(t, g, reader)
                (dst + t * sliceBytes).copyMemory(from: src + offset * size, byteCount: sliceBytes)
            }
        }
    }

    static func makeScatterND(_ node: BoundNode) throws -> any Kernel {
        let data = try node.input(0), indices = try node.input(1), updates = try node.input(2)
        let y = try node.output(0)
        let g = try tupleGeometry(node, data: data, indices: indices, batchDims: 0)
        let reader = try IndexReader(indices, node: node)
        let combine = try ElementCombiners.make(
            data.type.dtype, reduction: try node.attributes.string("reduction", default: "none"), node: node)
        let size = data.type.dtype.byteSize, sliceCount = g.sliceCount
        let tuples = g.batches * g.tuplesPerBatch
        let src = UnsafeRawPointer(try data.raw()), upd = UnsafeRawPointer(try updates.raw()), dst = try y.raw()
        let bytes = y.type.byteCount
        return ClosureKernel {
            for t in 0..<tuples { _ = try tupleOffset(t, g, reader) }
            if dst != UnsafeMutableRawPointer(mutating: src) { dst.copyMemory(from: src, byteCount: bytes) }
            for t in 0..<tuples {
                let offset = try tupleOffset(t, g, reader)
                if let combine {
                    for e in 0..<sliceCount { combine(dst, offset + e, upd, t * sliceCount + e) }
                } else {
                    (dst + offset * size).copyMemory(from: upd + t * sliceCount * size, byteCount: sliceCount * size)
                }
            }
        }
    }

    static func makeTrilu(_ node: BoundNode) throws -> any Kernel {
        let x = try node.input(0), y = try node.output(0)
        guard x.shape.rank >= 2 else { throw node.fail("expects rank 2 or more, got \(x.shape)") }
        let upper = try node.attributes.int("upper", default: 1) != 0
        let rows = x.shape[x.shape.rank - 2], columns = x.shape[x.shape.rank - 1]
        let matrices = rows * columns == 0 ? 0 : x.count / (rows * columns)
        let size = x.type.dtype.byteSize
        let kValue = node.optionalInput(1)
        if let kValue, kValue.count != 1 { throw node.fail("k must be a scalar, got \(kValue.shape)") }
        let kReader = try kValue.map { try IndexReader($0, node: node) }
        let src = UnsafeRawPointer(try x.raw()), dst = try y.raw()
        return ClosureKernel {
            // k is clamped to the matrix (beyond it every element is kept or zeroed alike).
            let k = Swift.max(Swift.min(kReader?.raw(0) ?? 0, columns + 1), -rows - 1)
            for m in 0..<matrices {
                for i in 0..<rows {
                    let row = (m * rows + i) * columns
                    for j in 0..<columns {
                        let keep = upper ? j - i >= k : j - i <= k
                        if keep {
                            copyElement(dst, row + j, src, row + j, size: size)
                        } else {
                            (dst + (row + j) * size).initializeMemory(as: UInt8.self, repeating: 0, count: size)
                        }
                    }
                }
            }
        }
    }

    static func makeRearrange(_ node: BoundNode) throws -> any Kernel {
        let x = try node.input(0), y = try node.output(0)
        let geometry: BlockRearrangement
        do {
            geometry = try BlockRearrangement.resolve(
                opType: node.attributes.opType, shape: x.shape.dimensions,
                blockSize: try node.attributes.int("blocksize", default: 0),
                mode: try node.attributes.string("mode", default: "DCR"))
        } catch let error as ShapeError.Detail {
            throw node.fail(error.text)
        }
        // Output element i reads the input element of the permuted rank-6 index.
        let inStrides = rowMajorStrides(geometry.inputDims6)
        let outDims = geometry.permutation.map { geometry.inputDims6[$0] }
        var table = [Int](repeating: 0, count: y.count)
        forEachIndex(outDims) { index, flat in
            var offset = 0
            for a in 0..<6 { offset += index[a] * inStrides[geometry.permutation[a]] }
            table[flat] = offset
        }
        let size = x.type.dtype.byteSize
        let src = UnsafeRawPointer(try x.raw()), dst = try y.raw()
        return ClosureKernel { for i in 0..<table.count { copyElement(dst, i, src, table[i], size: size) } }
    }

    static func makeOneHot(_ node: BoundNode) throws -> any Kernel {
        let indices = try node.input(0), values = try node.input(2), y = try node.output(0)
        let rank = y.shape.rank
        let axis = try node.shapeContext.axis(try node.attributes.int("axis", default: -1), rank: rank)
        let depth = y.shape[axis]
        let outer = indices.shape.dimensions[..<axis].reduce(1, *)
        let inner = indices.shape.dimensions[axis...].reduce(1, *)
        let io = ElementIO.for(indices.type.dtype)
        let size = values.type.dtype.byteSize
        let idx = UnsafeRawPointer(try indices.raw()), vals = UnsafeRawPointer(try values.raw()), dst = try y.raw()
        let count = y.count
        return ClosureKernel {
            for i in 0..<count { copyElement(dst, i, vals, 0, size: size) }
            for o in 0..<outer {
                for i in 0..<inner {
                    // Indices outside [-depth, depth) leave the whole row off, as the spec says.
                    let raw = io.load(idx, o * inner + i)
                    guard raw.isFinite, raw > -Double(depth) - 1, raw < Double(depth) else { continue }
                    var k = Int(raw.rounded(.towardZero))
                    if k < 0 { k += depth }
                    guard k >= 0 && k < depth else { continue }
                    copyElement(dst, (o * depth + k) * inner + i, vals, 1, size: size)
                }
            }
        }
    }
}
