import CKernels
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

/// Unary elementwise operators. The activations models spend time in use the SIMD C kernels on float32; the
/// rest apply their `UnaryOperators` row's scalar function (double precision, rounded once to the output type).
enum UnaryKernels {
    /// The scalar function for an operator (its `UnaryOperators` row), with its attributes bound. Nil for
    /// operators that are not in the table.
    static func function(_ node: BoundNode) throws -> ((Double) -> Double)? {
        guard let row = UnaryOperators.byName[node.attributes.opType] else { return nil }
        return row.function(try node.parameters(UnaryOperator.Parameters.self))
    }

    static func make(_ node: BoundNode) throws -> any Kernel { try make(node, parallel: .serial) }

    static func make(_ node: BoundNode, parallel: ParallelFor) throws -> any Kernel {
        let x = try node.input(0)
        let y = try node.output(0)
        let count = y.count
        let src = try x.raw()
        let dst = try y.raw()
        if y.type.dtype == .float32 {
            // SIMD C kernels for the activations models spend time in.
            let xs = src.assumingMemoryBound(to: Float.self)
            let ys = dst.assumingMemoryBound(to: Float.self)
            let simd: ((UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void)?
            let p = try node.parameters(UnaryOperator.Parameters.self)
            switch node.attributes.opType {
            case "Relu": simd = { ck_relu($0, $1, $2) }
            case "Sigmoid": simd = { ck_sigmoid($0, $1, $2) }
            case "Exp": simd = { ck_exp($0, $1, $2) }
            case "Erf": simd = { ck_erf($0, $1, $2) }
            case "Tanh": simd = { ck_tanh($0, $1, $2) }
            case "Gelu" where !p.alternate: simd = { ck_gelu($0, $1, $2) }
            case "HardSigmoid": simd = { ck_hard_sigmoid($0, $1, $2, p.alpha, p.beta) }
            case "HardSwish": simd = { ck_hard_swish($0, $1, $2) }
            case "Swish": simd = { ck_swish($0, $1, $2, p.alpha) }
            case "LeakyRelu": simd = { ck_leaky_relu($0, $1, $2, p.alpha) }
            default: simd = nil
            }
            if let simd {
                // Split in whole cache lines once there is enough work to pay for waking a thread.
                let splitter = count >= 1 << 15 ? parallel : .serial
                let lines = (count + 15) / 16
                let task = ClosureTask { _, begin, end in
                    let first = begin * 16
                    simd(xs + first, ys + first, min(end * 16, count) - first)
                }
                return ClosureKernel { splitter.run(task, count: lines) }
            }
        }
        guard let f = try function(node) else { throw node.fail("no elementwise function") }
        let io = ElementIO.for(y.type.dtype)
        return ClosureKernel {
            for i in 0..<count { io.store(dst, i, f(io.load(src, i))) }
        }
    }

    /// Not on bool tensors.
    static func makeNot(_ node: BoundNode) throws -> any Kernel {
        let x = try node.input(0).pointer(UInt8.self)
        let y = try node.output(0).pointer(UInt8.self)
        let count = try node.output(0).count
        return ClosureKernel { for i in 0..<count { y[i] = x[i] == 0 ? 1 : 0 } }
    }

    /// Identity, and the inference-mode Dropout (Y = X; the optional mask is all true).
    static func makeCopy(_ node: BoundNode) throws -> any Kernel {
        let x = try node.input(0)
        let y = try node.output(0)
        let src = try x.raw()
        let dst = try y.raw()
        let bytes = y.type.byteCount
        let mask = node.outputs.count > 1 ? try node.output(1) : nil
        let maskPointer = try mask?.pointer(UInt8.self)
        let maskCount = mask?.count ?? 0
        // Dropout in training mode (opset 12: a boolean input) draws random masks: not an inference op.
        let training = node.attributes.opType == "Dropout" ? try node.optionalInput(2)?.pointer(UInt8.self) : nil
        let name = node.name
        return ClosureKernel {
            if let training, training[0] != 0 {
                throw RuntimeError.unsupportedAttribute(node: name, detail: "training_mode=true")
            }
            if src != dst { dst.copyMemory(from: src, byteCount: bytes) }
            if let maskPointer { maskPointer.update(repeating: 1, count: maskCount) }
        }
    }

    /// Clip: bounds from attributes (opset < 11) or optional inputs read at run time (opset ≥ 11).
    static func makeClip(_ node: BoundNode) throws -> any Kernel {
        let x = try node.input(0)
        let y = try node.output(0)
        let io = ElementIO.for(y.type.dtype)
        let src = try x.raw()
        let dst = try y.raw()
        let count = y.count
        if node.opset < 11 {
            let low = Double(try node.attributes.float("min", default: -.greatestFiniteMagnitude))
            let high = Double(try node.attributes.float("max", default: .greatestFiniteMagnitude))
            return ClosureKernel { for i in 0..<count { io.store(dst, i, clip(io.load(src, i), low, high)) } }
        }
        let lowPointer = try node.optionalInput(1)?.raw()
        let highPointer = try node.optionalInput(2)?.raw()
        if y.type.dtype == .float32 {
            // Relu6 and friends: bounds read at run time, the clamp vectorized.
            let xs = src.assumingMemoryBound(to: Float.self), ys = dst.assumingMemoryBound(to: Float.self)
            return ClosureKernel {
                let low = lowPointer.map { $0.load(as: Float.self) } ?? -.infinity
                let high = highPointer.map { $0.load(as: Float.self) } ?? .infinity
                ck_clip(xs, ys, count, low, high)
            }
        }
        return ClosureKernel {
            let low = lowPointer.map { io.load($0, 0) } ?? -.infinity
            let high = highPointer.map { io.load($0, 0) } ?? .infinity
            for i in 0..<count { io.store(dst, i, clip(io.load(src, i), low, high)) }
        }
    }

    private static func clip(_ v: Double, _ low: Double, _ high: Double) -> Double {
        v.isNaN ? v : min(max(v, low), high)
    }

    /// Cast between any two supported element types (float to integer truncates toward zero and saturates).
    static func makeCast(_ node: BoundNode, parallel: ParallelFor) throws -> any Kernel {
        let x = try node.input(0)
        let y = try node.output(0)
        let src = try x.raw()
        let dst = try y.raw()
        let count = y.count
        if x.type.dtype == y.type.dtype {
            let bytes = y.type.byteCount
            return ClosureKernel { dst.copyMemory(from: src, byteCount: bytes) }
        }
        // The conversions of float16 models (widened nodes) and quantized ones run vectorized, split across threads.
        let fast: ((Int, Int) -> Void)?
        switch (x.type.dtype, y.type.dtype) {
        case (.float16, .float32):
            let s = src.assumingMemoryBound(to: UInt16.self), d = dst.assumingMemoryBound(to: Float.self)
            fast = { ck_convert_f16_f32(s + $0, $1 - $0, d + $0) }
        case (.float32, .float16):
            let s = src.assumingMemoryBound(to: Float.self), d = dst.assumingMemoryBound(to: UInt16.self)
            fast = { ck_convert_f32_f16(s + $0, $1 - $0, d + $0) }
        case (.int32, .float32):
            let s = src.assumingMemoryBound(to: Int32.self), d = dst.assumingMemoryBound(to: Float.self)
            fast = { ck_convert_i32_f32(s + $0, $1 - $0, d + $0) }
        case (.bfloat16, .float32):
            let s = src.assumingMemoryBound(to: UInt16.self), d = dst.assumingMemoryBound(to: Float.self)
            fast = { ck_convert_bf16_f32(s + $0, $1 - $0, d + $0) }
        case (.float32, .bfloat16):
            let s = src.assumingMemoryBound(to: Float.self), d = dst.assumingMemoryBound(to: UInt16.self)
            fast = { ck_convert_f32_bf16(s + $0, $1 - $0, d + $0) }
        case (.uint8, .float32), (.int8, .float32):
            let signed: Int32 = x.type.dtype == .int8 ? 1 : 0, d = dst.assumingMemoryBound(to: Float.self)
            fast = { ck_dequantize_8(src + $0, signed, $1 - $0, 0, 1, d + $0) }
        default: fast = nil
        }
        if let fast {
            // Chunks of at least 16 Ki elements: below that a thread costs more than it saves.
            let chunks = max(1, min(parallel.threads, count / 16384))
            let task = ClosureTask { _, first, last in fast(count * first / chunks, count * last / chunks) }
            return ClosureKernel { parallel.run(task, count: chunks) }
        }
        let input = ElementIO.for(x.type.dtype)
        let output = ElementIO.for(y.type.dtype)
        let truncate = x.type.dtype.isFloatingPoint && !y.type.dtype.isFloatingPoint && y.type.dtype != .bool
        if x.type.dtype == .int64 && y.type.dtype != .bool && !y.type.dtype.isFloatingPoint {
            // Integer to integer: wrap like C (and onnxruntime) instead of going through Double.
            let s = src.assumingMemoryBound(to: Int64.self)
            return ClosureKernel {
                for i in 0..<count { storeWrapped(s[i], into: dst, at: i, as: y.type.dtype) }
            }
        }
        return ClosureKernel {
            for i in 0..<count {
                let v = input.load(src, i)
                output.store(dst, i, truncate ? v.rounded(.towardZero) : v)
            }
        }
    }

    private static func storeWrapped(_ v: Int64, into dst: UnsafeMutableRawPointer, at i: Int, as dtype: DType) {
        switch dtype {
        case .int8: dst.storeBytes(of: Int8(truncatingIfNeeded: v), toByteOffset: i, as: Int8.self)
        case .int16: dst.storeBytes(of: Int16(truncatingIfNeeded: v), toByteOffset: i * 2, as: Int16.self)
        case .int32: dst.storeBytes(of: Int32(truncatingIfNeeded: v), toByteOffset: i * 4, as: Int32.self)
        case .uint8: dst.storeBytes(of: UInt8(truncatingIfNeeded: v), toByteOffset: i, as: UInt8.self)
        case .uint16: dst.storeBytes(of: UInt16(truncatingIfNeeded: v), toByteOffset: i * 2, as: UInt16.self)
        case .uint32: dst.storeBytes(of: UInt32(truncatingIfNeeded: v), toByteOffset: i * 4, as: UInt32.self)
        case .uint64: dst.storeBytes(of: UInt64(truncatingIfNeeded: v), toByteOffset: i * 8, as: UInt64.self)
        default: dst.storeBytes(of: v, toByteOffset: i * 8, as: Int64.self)
        }
    }
}

/// A squeeze-and-excitation gate over a depthwise output passed channels last (`ChannelsLastChains`): Mul of that
/// image ([positions][channels], input `FusionRules.channelsLastInputAttribute` − 1) by a [1, C, 1, 1] gate, written
/// channels last for the projection after it; the planes form's products, split by positions.
final class ChannelScaleKernel: Kernel {
    private let x: UnsafePointer<Float>, gate: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>
    private let channels: Int, positions: Int
    private let parallel: ParallelFor
    private var task: ClosureTask?

    init(node: BoundNode, parallel: ParallelFor) throws {
        let marked = try node.attributes.int(FusionRules.channelsLastInputAttribute, default: 0)
        let output = try node.output(0)
        guard node.attributes.opType == "Mul", node.inputs.count == 2, marked == 1 || marked == 2,
            let image = node.inputs[marked - 1], let scale = node.inputs[2 - marked], image.type.dtype == .float32,
            scale.type.dtype == .float32, image.shape.rank == 4, image.shape[0] == 1, output.shape == image.shape,
            output.type.dtype == .float32, scale.count == image.shape[1],
            (3...4).contains(scale.shape.rank), scale.shape[scale.shape.rank - 3] == image.shape[1],
            scale.shape.dimensions.suffix(2).allSatisfy({ $0 == 1 })
        else {
            throw node.fail(
                "a channels-last Mul must scale one image's channels by a [1, C, 1, 1] gate; remove the "
                    + "\(FusionRules.channelsLastInputAttribute) attribute")
        }
        x = UnsafePointer(try image.pointer(Float.self))
        gate = UnsafePointer(try scale.pointer(Float.self))
        y = try output.pointer(Float.self)
        channels = image.shape[1]
        positions = image.shape[2] * image.shape[3]
        self.parallel = parallel
        // Split by positions as the depthwise layer before it splits its rows, so each thread scales what its core
        // wrote: unsplit, EfficientNet-B0's gates took 1.2 ms at two threads against 0.65 split (a loaded machine).
        if parallel.threads > 1 && image.count >= 1 << 14 {
            task = ClosureTask { [unowned self] _, begin, end in
                ck_scale_channels_last(x, gate, y, channels, begin, end)
            }
        }
    }

    func run() throws {
        if let task {
            parallel.run(task, count: positions)
        } else {
            ck_scale_channels_last(x, gate, y, channels, 0, positions)
        }
    }
}

/// Binary and variadic operators with NumPy broadcasting.
enum BinaryKernels {
    /// Float32 Add/Sub/Mul/Div use the row-based fast path; everything else the general one.
    static func make(_ node: BoundNode, parallel: ParallelFor = .serial) throws -> any Kernel {
        let op = node.attributes.opType
        let a = try node.input(0)
        let b = try node.input(1)
        let y = try node.output(0)
        if a.type.dtype == .float32 && b.type.dtype == .float32, let fast = BinaryKernel.Op(rawValue: op) {
            return try BinaryKernel(node: node, op: fast, parallel: parallel)
        }
        let f = try function(node, dtype: a.type.dtype)
        let loadA = ElementIO.for(a.type.dtype)
        let loadB = ElementIO.for(b.type.dtype)
        let store = ElementIO.for(y.type.dtype)
        let offsetsA = broadcastOffsets(operand: a.shape, output: y.shape)
        let offsetsB = broadcastOffsets(operand: b.shape, output: y.shape)
        let pa = try a.raw(), pb = try b.raw(), py = try y.raw()
        if a.type.dtype == .int64 && b.type.dtype == .int64 && y.type.dtype == .int64,
            let g = integerFunction(op, fmod: try node.attributes.int("fmod", default: 0) != 0)
        {
            let ia = pa.assumingMemoryBound(to: Int64.self)
            let ib = pb.assumingMemoryBound(to: Int64.self)
            let iy = py.assumingMemoryBound(to: Int64.self)
            return ClosureKernel { for i in 0..<offsetsA.count { iy[i] = g(ia[offsetsA[i]], ib[offsetsB[i]]) } }
        }
        return ClosureKernel {
            for i in 0..<offsetsA.count {
                store.store(py, i, f(loadA.load(pa, offsetsA[i]), loadB.load(pb, offsetsB[i])))
            }
        }
    }

    /// Exact int64 arithmetic (shape computations must not go through Double).
    static func integerFunction(_ op: String, fmod: Bool = false) -> ((Int64, Int64) -> Int64)? {
        switch op {
        case "Mod":
            // A zero divisor gives 0; fmod=1 keeps the dividend's sign, otherwise the result takes the divisor's.
            { a, b in
                guard b != 0 else { return 0 }
                let r = a.remainderReportingOverflow(dividingBy: b).partialValue
                return !fmod && r != 0 && (r < 0) != (b < 0) ? r &+ b : r
            }
        case "Add": { $0 &+ $1 }
        case "Sub": { $0 &- $1 }
        case "Mul": { $0 &* $1 }
        case "Div": { $1 == 0 ? 0 : $0.dividedReportingOverflow(by: $1).partialValue }
        case "Max": { max($0, $1) }
        case "Min": { min($0, $1) }
        case "Sum": { $0 &+ $1 }
        default: nil
        }
    }

    static func function(_ node: BoundNode, dtype: DType) throws -> (Double, Double) -> Double {
        let integer = !dtype.isFloatingPoint
        switch node.attributes.opType {
        case "Add", "Sum", "Mean": return { $0 + $1 }
        case "Sub": return { $0 - $1 }
        case "Mul": return { $0 * $1 }
        case "Div": return integer ? { $1 == 0 ? 0 : ($0 / $1).rounded(.towardZero) } : { $0 / $1 }
        case "Pow": return { pow($0, $1) }
        case "Max": return { $0.isNaN || $1.isNaN ? .nan : max($0, $1) }
        case "Min": return { $0.isNaN || $1.isNaN ? .nan : min($0, $1) }
        case "PRelu": return { $0 < 0 ? $0 * $1 : $0 }
        case "Mod":
            if try node.attributes.int("fmod", default: 0) != 0 { return { fmod($0, $1) } }
            return { a, b in
                // Python-style: the result takes the divisor's sign.
                guard b != 0 else { return integer ? 0 : .nan }
                let r = fmod(a, b)
                return r != 0 && (r < 0) != (b < 0) ? r + b : r
            }
        case "Equal": return { $0 == $1 ? 1 : 0 }
        case "Less": return { $0 < $1 ? 1 : 0 }
        case "Greater": return { $0 > $1 ? 1 : 0 }
        case "LessOrEqual": return { $0 <= $1 ? 1 : 0 }
        case "GreaterOrEqual": return { $0 >= $1 ? 1 : 0 }
        case "And": return { $0 != 0 && $1 != 0 ? 1 : 0 }
        case "Or": return { $0 != 0 || $1 != 0 ? 1 : 0 }
        case "Xor": return { ($0 != 0) != ($1 != 0) ? 1 : 0 }
        default: throw node.fail("no binary function")
        }
    }

    /// Max, Min, Sum, Mean over any number of broadcast inputs.
    static func makeVariadic(_ node: BoundNode) throws -> any Kernel {
        let y = try node.output(0)
        let inputs = try node.inputs.indices.map { try node.input($0) }
        if inputs.count == 1 {
            return try UnaryKernels.makeCopy(node)
        }
        let op = node.attributes.opType
        let f = try function(node, dtype: y.type.dtype)
        let mean = op == "Mean"
        let io = ElementIO.for(y.type.dtype)
        let loads = inputs.map { ElementIO.for($0.type.dtype) }
        let offsets = inputs.map { broadcastOffsets(operand: $0.shape, output: y.shape) }
        let pointers = try inputs.map { try $0.raw() }
        let py = try y.raw()
        let count = y.count
        let n = Double(inputs.count)
        return ClosureKernel {
            for i in 0..<count {
                var acc = loads[0].load(pointers[0], offsets[0][i])
                for k in 1..<pointers.count { acc = f(acc, loads[k].load(pointers[k], offsets[k][i])) }
                io.store(py, i, mean ? acc / n : acc)
            }
        }
    }

    /// Where(condition, X, Y) with three-way broadcasting.
    static func makeWhere(_ node: BoundNode) throws -> any Kernel {
        let c = try node.input(0), x = try node.input(1), z = try node.input(2), y = try node.output(0)
        let oc = broadcastOffsets(operand: c.shape, output: y.shape)
        let ox = broadcastOffsets(operand: x.shape, output: y.shape)
        let oz = broadcastOffsets(operand: z.shape, output: y.shape)
        let pc = try c.pointer(UInt8.self)
        let px = try x.raw(), pz = try z.raw(), py = try y.raw()
        let size = y.type.dtype.byteSize
        return ClosureKernel {
            for i in 0..<oc.count {
                let source = pc[oc[i]] != 0 ? px + ox[i] * size : pz + oz[i] * size
                (py + i * size).copyMemory(from: source, byteCount: size)
            }
        }
    }
}

/// Float32 Add/Sub/Mul/Div with NumPy broadcasting. Shapes are resolved at creation into an outer loop
/// over rows and an inner loop whose operands step by 1 (full) or 0 (broadcast).
final class BinaryKernel: Kernel {
    enum Op: String {
        case add = "Add", sub = "Sub", mul = "Mul", div = "Div"
        /// Add with a fused Relu (a residual connection and its activation in one pass).
        case addRelu = "Add+Relu"
    }

    private let op: Op
    private let a: UnsafePointer<Float>
    private let b: UnsafePointer<Float>
    private let y: UnsafeMutablePointer<Float>
    private let layout: BroadcastLayout
    private let parallel: ParallelFor
    /// Splits the output's elements across threads when there are enough of them (made once, so a run
    /// allocates nothing); nil keeps the work on the caller's thread.
    private var task: ClosureTask?

    init(node: BoundNode, op: Op, parallel: ParallelFor = .serial) throws {
        let lhs = try node.input(0), rhs = try node.input(1), out = try node.output(0)
        let activation = try node.fusedActivation()
        if activation.isNone {
            self.op = op
        } else if op == .add && activation.kind == ck_activation_relu {
            self.op = .addRelu
        } else {
            throw node.fail("cannot apply a fused activation to \(op.rawValue)")
        }
        self.parallel = parallel
        a = UnsafePointer(try lhs.pointer(Float.self))
        b = UnsafePointer(try rhs.pointer(Float.self))
        y = try out.pointer(Float.self)
        layout = BroadcastLayout(output: out.type.shape, a: lhs.type.shape, b: rhs.type.shape)
        if parallel.threads > 1 && out.type.shape.elementCount >= 1 << 17 {
            task = ClosureTask { [unowned self] _, begin, end in apply(begin..<end) }
        }
    }

    func run() throws {
        let count = layout.rowOffsetsA.count * layout.inner
        if let task { parallel.run(task, count: count) } else { apply(0..<count) }
    }

    /// The output elements in `range` (every element is computed the same way whatever the split).
    private func apply(_ range: Range<Int>) {
        switch op {
        case .add: layout.apply(a, b, y, range) { $0 + $1 }
        case .sub: layout.apply(a, b, y, range) { $0 - $1 }
        case .mul: layout.apply(a, b, y, range) { $0 * $1 }
        case .div: layout.apply(a, b, y, range) { $0 / $1 }
        case .addRelu:
            layout.apply(a, b, y, range) {
                let v = $0 + $1
                return v > 0 ? v : (v.isNaN ? v : 0)
            }
        }
    }
}

/// A broadcast of two operands to an output shape, reduced to rows of the innermost (coalesced) dimension.
struct BroadcastLayout {
    /// Elements per inner row and each operand's step within it (0 or 1).
    let inner: Int
    let innerStrideA: Int
    let innerStrideB: Int
    /// Start offset of each operand for every output row.
    let rowOffsetsA: [Int]
    let rowOffsetsB: [Int]

    init(output: Shape, a: Shape, b: Shape) {
        let rank = output.rank
        func strides(_ shape: Shape) -> [Int] {
            let padded = [Int](repeating: 1, count: rank - shape.rank) + shape.dimensions
            var result = [Int](repeating: 0, count: rank)
            var running = 1
            for axis in stride(from: rank - 1, through: 0, by: -1) {
                result[axis] = padded[axis] == 1 ? 0 : running
                running *= padded[axis]
            }
            return result
        }
        var dims = output.dimensions
        var sa = strides(a)
        var sb = strides(b)
        // Coalesce trailing axes that are contiguous in both operands (or broadcast in both).
        while dims.count >= 2 {
            let last = dims.count - 1
            let mergeA = sa[last - 1] == sa[last] * dims[last]
            let mergeB = sb[last - 1] == sb[last] * dims[last]
            guard mergeA && mergeB else { break }
            dims[last - 1] *= dims[last]
            sa[last - 1] = sa[last]
            sb[last - 1] = sb[last]
            dims.removeLast()
            sa.removeLast()
            sb.removeLast()
        }
        if dims.isEmpty {
            dims = [1]
            sa = [0]
            sb = [0]
        }
        inner = dims[dims.count - 1]
        innerStrideA = sa[sa.count - 1]
        innerStrideB = sb[sb.count - 1]
        let outerDims = Array(dims.dropLast())
        let rows = outerDims.reduce(1, *)
        var offsetsA = [Int](repeating: 0, count: rows)
        var offsetsB = [Int](repeating: 0, count: rows)
        forEachIndex(outerDims) { index, row in
            var oa = 0
            var ob = 0
            for axis in 0..<outerDims.count {
                oa += index[axis] * sa[axis]
                ob += index[axis] * sb[axis]
            }
            offsetsA[row] = oa
            offsetsB[row] = ob
        }
        if outerDims.isEmpty && rows == 1 {
            offsetsA = [0]
            offsetsB = [0]
        }
        rowOffsetsA = offsetsA
        rowOffsetsB = offsetsB
    }

    /// y = f(a, b) over the output elements in `range` (flat indices; rows are cut where the range cuts them).
    @inline(__always)
    func apply(
        _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ range: Range<Int>,
        _ f: (Float, Float) -> Float
    ) {
        let n = inner
        guard n > 0, !range.isEmpty else { return }
        for row in (range.lowerBound / n)...((range.upperBound - 1) / n) {
            let lo = max(range.lowerBound - row * n, 0), hi = min(range.upperBound - row * n, n)
            let pa = a + rowOffsetsA[row]
            let pb = b + rowOffsetsB[row]
            let py = y + row * n
            switch (innerStrideA, innerStrideB) {
            case (1, 1): for i in lo..<hi { py[i] = f(pa[i], pb[i]) }
            case (1, 0):
                let s = pb[0]
                for i in lo..<hi { py[i] = f(pa[i], s) }
            case (0, 1):
                let s = pa[0]
                for i in lo..<hi { py[i] = f(s, pb[i]) }
            default:
                let v = f(pa[0], pb[0])
                for i in lo..<hi { py[i] = v }
            }
        }
    }
}
