import InferenceGraph
import InferenceRuntime
import InferenceTensor

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Integer elements read and written exactly as 64-bit patterns (sign- or zero-extended, stored truncated), so
/// wrapping arithmetic on them matches the element type's.
struct IntegerIO {
    let load: (UnsafeRawPointer, Int) -> Int64
    let store: (UnsafeMutableRawPointer, Int, Int64) -> Void

    static func `for`(_ dtype: DType) -> IntegerIO? {
        switch dtype {
        case .int8: typed(Int8.self)
        case .int16: typed(Int16.self)
        case .int32: typed(Int32.self)
        case .int64: typed(Int64.self)
        case .uint8: typed(UInt8.self)
        case .uint16: typed(UInt16.self)
        case .uint32: typed(UInt32.self)
        case .uint64: typed(UInt64.self)
        default: nil
        }
    }

    private static func typed<T: FixedWidthInteger>(_: T.Type) -> IntegerIO {
        let size = MemoryLayout<T>.stride
        return IntegerIO(
            load: { Int64(truncatingIfNeeded: $0.load(fromByteOffset: $1 * size, as: T.self)) },
            store: { $0.storeBytes(of: T(truncatingIfNeeded: $2), toByteOffset: $1 * size, as: T.self) })
    }
}

/// The outer × axis × inner decomposition of a shape around one axis.
struct AxisSplit {
    var outer: Int
    var extent: Int
    var inner: Int

    init(_ dims: [Int], axis: Int) {
        outer = dims[..<axis].reduce(1, *)
        extent = dims[axis]
        inner = dims[(axis + 1)...].reduce(1, *)
    }

    /// Calls `body` with the flat offset of element 0 of every line along the axis.
    func forEachLine(_ body: (Int) throws -> Void) rethrows {
        for o in 0..<outer { for i in 0..<inner { try body(o * extent * inner + i) } }
    }
}

/// CumSum/CumProd, TopK, Hardmax, LpNormalization, RMSNormalization, IsNaN/IsInf and the bitwise operators.
enum ScanAndSelectKernels {
    static func makeCumulative(_ node: BoundNode) throws -> any Kernel {
        let x = try node.input(0), y = try node.output(0)
        guard let axes = try node.constantInts(1), axes.count == 1, let rawAxis = axes.first else {
            throw node.fail("axis (input 1) must be one value known when the model is planned")
        }
        let axis = try node.shapeContext.axis(rawAxis, rank: x.shape.rank)
        let split = AxisSplit(x.shape.dimensions, axis: axis)
        let exclusive = try node.attributes.int("exclusive", default: 0) != 0
        let reverse = try node.attributes.int("reverse", default: 0) != 0
        let product = node.attributes.opType == "CumProd"
        let src = UnsafeRawPointer(try x.raw()), dst = try y.raw()
        let n = split.extent, step = split.inner
        if let integer = IntegerIO.for(x.type.dtype) {
            return ClosureKernel {
                split.forEachLine { start in
                    var running: Int64 = product ? 1 : 0
                    for s in 0..<n {
                        let at = start + (reverse ? n - 1 - s : s) * step
                        let v = integer.load(src, at)
                        if !exclusive { running = product ? running &* v : running &+ v }
                        integer.store(dst, at, running)
                        if exclusive { running = product ? running &* v : running &+ v }
                    }
                }
            }
        }
        let io = ElementIO.for(x.type.dtype)
        return ClosureKernel {
            split.forEachLine { start in
                var running: Double = product ? 1 : 0
                for s in 0..<n {
                    let at = start + (reverse ? n - 1 - s : s) * step
                    let v = io.load(src, at)
                    if !exclusive { running = product ? running * v : running + v }
                    io.store(dst, at, running)
                    if exclusive { running = product ? running * v : running + v }
                }
            }
        }
    }

    static func makeTopK(_ node: BoundNode) throws -> any Kernel {
        let x = try node.input(0), values = try node.output(0), indices = try node.output(1)
        let axis = try node.shapeContext.axis(try node.attributes.int("axis", default: -1), rank: x.shape.rank)
        let split = AxisSplit(x.shape.dimensions, axis: axis)
        let k = values.shape[axis]
        let largest = try node.attributes.int("largest", default: 1) != 0
        let io = ElementIO.for(x.type.dtype)
        let size = x.type.dtype.byteSize
        let src = UnsafeRawPointer(try x.raw()), dst = try values.raw(), idx = try indices.pointer(Int64.self)
        let n = split.extent, step = split.inner
        var order = [Int](repeating: 0, count: n)
        var keys = [Double](repeating: 0, count: n)
        return ClosureKernel {
            for o in 0..<split.outer {
                for i in 0..<split.inner {
                    let start = o * n * step + i
                    for s in 0..<n {
                        order[s] = s
                        keys[s] = io.load(src, start + s * step)
                    }
                    // Ties keep the lower index first; NaN ranks above every number, as onnxruntime orders it.
                    order.withUnsafeMutableBufferPointer { buffer in
                        keys.withUnsafeBufferPointer { key in
                            buffer.sort { a, b in
                                let va = key[a], vb = key[b]
                                if va.isNaN || vb.isNaN {
                                    if va.isNaN && vb.isNaN { return a < b }
                                    return largest ? va.isNaN : vb.isNaN
                                }
                                if va != vb { return largest ? va > vb : va < vb }
                                return a < b
                            }
                        }
                    }
                    let outStart = o * k * step + i
                    for s in 0..<k {
                        copyElement(dst, outStart + s * step, src, start + order[s] * step, size: size)
                        idx[outStart + s * step] = Int64(order[s])
                    }
                }
            }
        }
    }

    static func makeHardmax(_ node: BoundNode) throws -> any Kernel {
        let x = try node.input(0), y = try node.output(0)
        let dims = x.shape.dimensions
        let axis = try node.shapeContext.axis(
            try node.attributes.int("axis", default: node.opset >= 13 ? -1 : 1),
            rank: x.shape.rank)
        // Before opset 13 the input is coerced to 2-D at the axis.
        let split =
            node.opset >= 13
            ? AxisSplit(dims, axis: axis)
            : AxisSplit([dims[..<axis].reduce(1, *), dims[axis...].reduce(1, *)], axis: 1)
        let io = ElementIO.for(x.type.dtype)
        let src = UnsafeRawPointer(try x.raw()), dst = try y.raw()
        let n = split.extent, step = split.inner
        return ClosureKernel {
            split.forEachLine { start in
                var best = 0
                var bestValue = -Double.infinity
                for s in 0..<n {
                    let v = io.load(src, start + s * step)
                    if v > bestValue || s == 0 {
                        best = s
                        bestValue = v
                    }
                    io.store(dst, start + s * step, 0)
                }
                if n > 0 { io.store(dst, start + best * step, 1) }
            }
        }
    }

    static func makeLpNormalization(_ node: BoundNode) throws -> any Kernel {
        let x = try node.input(0), y = try node.output(0)
        let axis = try node.shapeContext.axis(try node.attributes.int("axis", default: -1), rank: x.shape.rank)
        let p = try node.attributes.int("p", default: 2)
        guard p == 1 || p == 2 else { throw node.fail("p must be 1 or 2, got \(p)") }
        let split = AxisSplit(x.shape.dimensions, axis: axis)
        let io = ElementIO.for(x.type.dtype)
        let src = UnsafeRawPointer(try x.raw()), dst = try y.raw()
        let n = split.extent, step = split.inner
        return ClosureKernel {
            split.forEachLine { start in
                var norm = 0.0
                for s in 0..<n {
                    let v = io.load(src, start + s * step)
                    norm += p == 1 ? Swift.abs(v) : v * v
                }
                if p == 2 { norm = norm.squareRoot() }
                for s in 0..<n {
                    let v = io.load(src, start + s * step)
                    io.store(dst, start + s * step, norm == 0 ? 0 : v / norm)
                }
            }
        }
    }

    static func makeRMSNormalization(_ node: BoundNode) throws -> any Kernel {
        let x = try node.input(0), scale = try node.input(1), y = try node.output(0)
        let rank = x.shape.rank
        let axis = try node.shapeContext.axis(try node.attributes.int("axis", default: -1), rank: rank)
        let epsilon = Double(try node.attributes.float("epsilon", default: 1e-5))
        let rows = x.shape.dimensions[..<axis].reduce(1, *)
        let width = x.shape.dimensions[axis...].reduce(1, *)
        guard ShapeInference.broadcast(scale.shape, x.shape) == x.shape else {
            throw node.fail("scale \(scale.shape) does not broadcast to \(x.shape)")
        }
        let scaleOffsets = broadcastOffsets(operand: scale.shape, output: x.shape)
        let io = ElementIO.for(x.type.dtype), scaleIO = ElementIO.for(scale.type.dtype)
        let src = UnsafeRawPointer(try x.raw()), gamma = UnsafeRawPointer(try scale.raw()), dst = try y.raw()
        return ClosureKernel {
            for r in 0..<rows {
                var squares = 0.0
                for c in 0..<width {
                    let v = io.load(src, r * width + c)
                    squares += v * v
                }
                let inverse = 1 / (squares / Double(Swift.max(width, 1)) + epsilon).squareRoot()
                for c in 0..<width {
                    let at = r * width + c
                    io.store(dst, at, io.load(src, at) * inverse * scaleIO.load(gamma, scaleOffsets[at]))
                }
            }
        }
    }

    static func makePredicate(_ node: BoundNode) throws -> any Kernel {
        let x = try node.input(0), y = try node.output(0)
        let io = ElementIO.for(x.type.dtype)
        let test: (Double) -> Bool
        if node.attributes.opType == "IsNaN" {
            test = { $0.isNaN }
        } else {
            let negative = try node.attributes.int("detect_negative", default: 1) != 0
            let positive = try node.attributes.int("detect_positive", default: 1) != 0
            test = { $0.isInfinite && ($0 < 0 ? negative : positive) }
        }
        let src = UnsafeRawPointer(try x.raw()), dst = try y.pointer(UInt8.self)
        let count = x.count
        return ClosureKernel { for i in 0..<count { dst[i] = test(io.load(src, i)) ? 1 : 0 } }
    }

    static func makeBitwise(_ node: BoundNode) throws -> any Kernel {
        let y = try node.output(0)
        guard let integer = IntegerIO.for(y.type.dtype) else {
            throw node.fail("bitwise operators need integer inputs, not \(y.type.dtype)")
        }
        let a = try node.input(0)
        let src = UnsafeRawPointer(try a.raw()), dst = try y.raw()
        let count = y.count
        if node.attributes.opType == "BitwiseNot" {
            return ClosureKernel { for i in 0..<count { integer.store(dst, i, ~integer.load(src, i)) } }
        }
        let b = try node.input(1)
        let bits = Int64(y.type.dtype.byteSize * 8)
        let op: (Int64, Int64) -> Int64
        switch node.attributes.opType {
        case "BitwiseAnd": op = { $0 & $1 }
        case "BitwiseOr": op = { $0 | $1 }
        case "BitwiseXor": op = { $0 ^ $1 }
        default:
            // BitShift is defined on unsigned types: shifting by the width or more gives 0.
            let left = try node.attributes.string("direction", default: "") == "LEFT"
            let mask: UInt64 = bits == 64 ? .max : (1 << UInt64(bits)) - 1
            op = { value, amount in
                let v = UInt64(bitPattern: value) & mask
                let s = UInt64(bitPattern: amount) & mask
                guard s < UInt64(bits) else { return 0 }
                return Int64(bitPattern: (left ? v << s : v >> s) & mask)
            }
        }
        let aOffsets = a.shape == y.shape ? [] : broadcastOffsets(operand: a.shape, output: y.shape)
        let bOffsets = b.shape == y.shape ? [] : broadcastOffsets(operand: b.shape, output: y.shape)
        let other = UnsafeRawPointer(try b.raw())
        return ClosureKernel {
            for i in 0..<count {
                let l = integer.load(src, aOffsets.isEmpty ? i : aOffsets[i])
                let r = integer.load(other, bOffsets.isEmpty ? i : bOffsets[i])
                integer.store(dst, i, op(l, r))
            }
        }
    }
}
