import CKernels
import InferenceGraph
import InferenceRuntime
import InferenceTensor

/// The quantized operators: QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear (elementwise, per tensor, per
/// axis or per block), and MatMulInteger, QLinearMatMul, ConvInteger, QLinearConv on the 8-bit integer GEMM
/// (`IntegerGemm.c`, exact int32 accumulation on every path).
///
/// Rounding follows the ONNX reference: QuantizeLinear divides in the input's precision and rounds half to even;
/// the linear operators scale their int32 sums by `a_scale * b_scale / y_scale` (computed in the scales' type) in
/// double precision, then round half to even and saturate.
enum QuantizationKernels {
    static func makeQuantize(_ node: BoundNode, parallel: ParallelFor) throws -> any Kernel {
        let x = try node.input(0), y = try node.output(0)
        let layout = try resolveLayout(node, input: x, scale: try node.input(1))
        let scales = try FloatParameters(try node.input(1), count: layout.parameterCount)
        let zeros = try IntParameters(node.optionalInput(2), count: layout.parameterCount, node: node)
        let range = try integerRange(y.type.dtype, node: node)
        let src = UnsafeRawPointer(try x.raw()), dst = try y.raw()
        let halfInput = x.type.dtype == .float16
        let load = try floatLoader(x.type.dtype, node: node)
        let store = try integerStorer(y.type.dtype, node: node)
        let bytes = x.type.dtype == .float32 && (y.type.dtype == .uint8 || y.type.dtype == .int8)
        let signed: Int32 = y.type.dtype == .int8 ? 1 : 0
        let (task, count) = runTask(layout) { offset, count, parameter in
            let scale = scales.values[parameter], zero = zeros.values[parameter]
            if bytes {
                ck_quantize_f32(
                    src.assumingMemoryBound(to: Float.self) + offset, count, scale, zero,
                    Int32(range.lowerBound), Int32(range.upperBound), dst + offset, signed)
                return
            }
            for i in offset..<(offset + count) {
                var quotient = load(src, i) / scale
                if halfInput { quotient = Float(Float16(quotient)) }
                let q = quotient.rounded(.toNearestOrEven) + Float(zero)
                // NaN lands on the low end, as in the byte path (and onnxruntime).
                store(dst, i, q >= range.lowerBound ? Int32(min(q, range.upperBound)) : Int32(range.lowerBound))
            }
        }
        return ClosureKernel {
            scales.refresh()
            zeros.refresh()
            parallel.run(task, count: count)
        }
    }

    static func makeDequantize(_ node: BoundNode, parallel: ParallelFor) throws -> any Kernel {
        let x = try node.input(0), y = try node.output(0)
        let layout = try resolveLayout(node, input: x, scale: try node.input(1))
        let scales = try FloatParameters(try node.input(1), count: layout.parameterCount)
        let zeros = try IntParameters(node.optionalInput(2), count: layout.parameterCount, node: node)
        let src = UnsafeRawPointer(try x.raw()), dst = try y.raw()
        let load = try integerLoader(x.type.dtype, node: node)
        let halfOutput = y.type.dtype == .float16
        guard y.type.dtype == .float32 || halfOutput else {
            throw node.fail("DequantizeLinear to \(y.type.dtype) is not supported (float32, float16)")
        }
        let bytes = !halfOutput && (x.type.dtype == .uint8 || x.type.dtype == .int8)
        let signed: Int32 = x.type.dtype == .int8 ? 1 : 0
        let (task, count) = runTask(layout) { offset, count, parameter in
            let scale = scales.values[parameter], zero = Float(zeros.values[parameter])
            if bytes {
                ck_dequantize_8(
                    src + offset, signed, count, zeros.values[parameter], scale,
                    dst.assumingMemoryBound(to: Float.self) + offset)
                return
            }
            if halfOutput {
                let out = dst.assumingMemoryBound(to: Float16.self)
                for i in offset..<(offset + count) { out[i] = Float16((Float(load(src, i)) - zero) * scale) }
            } else {
                let out = dst.assumingMemoryBound(to: Float.self)
                for i in offset..<(offset + count) { out[i] = (Float(load(src, i)) - zero) * scale }
            }
        }
        return ClosureKernel {
            scales.refresh()
            zeros.refresh()
            parallel.run(task, count: count)
        }
    }

    /// `QuantizedFusion.qlinearAdd`: y = Q(DQ(a) + DQ(b)), per-tensor parameters, the roundings of the three nodes
    /// it replaces (`ck_qlinear_add`); inputs of the output's shape split across threads, broadcast ones (rare in
    /// QDQ models) element by element.
    static func makeQLinearAdd(_ node: BoundNode, parallel: ParallelFor) throws -> any Kernel {
        let a = try node.input(0), b = try node.input(3), y = try node.output(0)
        for value in [a, b, y] where value.type.dtype != .uint8 && value.type.dtype != .int8 {
            throw node.fail("QLinearAdd reads and writes int8 or uint8, got \(value.type.dtype)")
        }
        // One scale and zero point each (per tensor); a model naming this node with others gets the node's name.
        func scale(_ index: Int) throws -> FloatParameters {
            do { return try FloatParameters(try node.input(index), count: 1) } catch {
                throw node.fail("input \(index) must be one float32 or float16 scale (\(error))")
            }
        }
        let (aScale, bScale, yScale) = (try scale(1), try scale(4), try scale(6))
        let aZero = try IntParameters(node.optionalInput(2), count: 1, node: node)
        let bZero = try IntParameters(node.optionalInput(5), count: 1, node: node)
        let yZero = try IntParameters(node.optionalInput(7), count: 1, node: node)
        let range = try integerRange(y.type.dtype, node: node)
        let relu = try node.attributes.int(QuantizedFusion.reluAttribute, default: 0) != 0
        let (aSigned, bSigned, ySigned): (Int32, Int32, Int32) = (
            a.type.dtype == .int8 ? 1 : 0, b.type.dtype == .int8 ? 1 : 0, y.type.dtype == .int8 ? 1 : 0
        )
        let pa = UnsafeRawPointer(try a.raw()), pb = UnsafeRawPointer(try b.raw()), py = try y.raw()
        let count = y.count
        // Parameters computed by the model are read on every run (no array of them: a run allocates nothing).
        func refresh() {
            aScale.refresh()
            bScale.refresh()
            yScale.refresh()
            aZero.refresh()
            bZero.refresh()
            yZero.refresh()
        }
        func bounds() -> (Int32, Int32) {
            let low = Int32(range.lowerBound)
            return (relu ? max(low, yZero.values[0]) : low, Int32(range.upperBound))
        }
        if a.shape == y.shape && b.shape == y.shape {
            let chunks = max(1, min(parallel.threads, count / 65536))
            let task = ClosureTask { _, first, last in
                let begin = count * first / chunks, end = count * last / chunks
                let (low, high) = bounds()
                ck_qlinear_add(
                    pa + begin, aSigned, aZero.values[0], aScale.values[0], pb + begin, bSigned, bZero.values[0],
                    bScale.values[0], end - begin, yScale.values[0], yZero.values[0], low, high, py + begin, ySigned)
            }
            return ClosureKernel {
                refresh()
                parallel.run(task, count: chunks)
            }
        }
        // Broadcasting: each input's stride per output axis (0 along axes it repeats), aligned to the right.
        let rank = y.shape.rank
        let outDims = y.shape.dimensions
        func strides(_ shape: Shape) throws -> [Int] {
            guard shape.rank <= rank else { throw node.fail("an input has more axes than the output") }
            var result = [Int](repeating: 0, count: rank), step = 1
            for axis in (0..<shape.rank).reversed() {
                let outAxis = axis + rank - shape.rank
                let dim = shape[axis]
                guard dim == outDims[outAxis] || dim == 1 else { throw node.fail("inputs do not broadcast") }
                result[outAxis] = dim == 1 ? 0 : step
                step *= dim
            }
            return result
        }
        let (aStrides, bStrides) = (try strides(a.shape), try strides(b.shape))
        // The output index, kept in a buffer the kernel owns (freed with it).
        let indexBuffer = try HostBuffer(bytes: max(rank, 1) * MemoryLayout<Int>.stride)
        let index = indexBuffer.pointer.bindMemory(to: Int.self, capacity: max(rank, 1))
        // Where neither input repeats along the last axis (a bias row added to every row), whole rows at a time.
        let run = rank > 0 && aStrides[rank - 1] == 1 && bStrides[rank - 1] == 1 ? outDims[rank - 1] : 1
        let last = run > 1 ? rank - 2 : rank - 1
        return ClosureKernel {
            withExtendedLifetime(indexBuffer) {}
            refresh()
            let (low, high) = bounds()
            index.update(repeating: 0, count: rank)
            for o in stride(from: 0, to: count, by: max(run, 1)) {
                var ia = 0, ib = 0
                for axis in 0..<rank {
                    ia += index[axis] * aStrides[axis]
                    ib += index[axis] * bStrides[axis]
                }
                ck_qlinear_add(
                    pa + ia, aSigned, aZero.values[0], aScale.values[0], pb + ib, bSigned, bZero.values[0],
                    bScale.values[0], run, yScale.values[0], yZero.values[0], low, high, py + o, ySigned)
                var axis = last
                while axis >= 0 {
                    index[axis] += 1
                    if index[axis] < outDims[axis] { break }
                    index[axis] = 0
                    axis -= 1
                }
            }
        }
    }

    static func makeDynamicQuantize(_ node: BoundNode, parallel: ParallelFor) throws -> any Kernel {
        let x = try node.input(0), y = try node.output(0)
        let scaleOut = try node.output(1).pointer(Float.self), zeroOut = try node.output(2).pointer(UInt8.self)
        let src = UnsafePointer(try x.pointer(Float.self)), dst = try y.pointer(UInt8.self)
        let count = x.count
        let chunks = max(1, min(parallel.threads, count / 16384))
        // Per-chunk ranges (a buffer the kernel owns: freed with it).
        let ranges = try HostBuffer(bytes: 2 * chunks * MemoryLayout<Float>.stride)
        let lows = ranges.pointer.bindMemory(to: Float.self, capacity: 2 * chunks), highs = lows + chunks
        let rangeTask = ClosureTask { part, first, last in
            let begin = count * first / chunks, end = count * last / chunks
            ck_minmax_f32(src + begin, end - begin, lows + part, highs + part)
        }
        // Reads this run's scale and zero point from the outputs, written before it runs.
        let quantizeTask = ClosureTask { _, first, last in
            let begin = count * first / chunks, end = count * last / chunks
            ck_quantize_f32(src + begin, end - begin, scaleOut[0], Int32(zeroOut[0]), 0, 255, dst + begin, 0)
        }
        return ClosureKernel {
            // The buffer behind lows and highs lives as long as this closure.
            withExtendedLifetime(ranges) {}
            // The range always holds 0, so that 0 is exact; NaN inputs are skipped.
            lows.update(repeating: 0, count: 2 * chunks)
            parallel.run(rangeTask, count: chunks)
            var low: Float = 0, high: Float = 0
            for part in 0..<chunks {
                low = min(low, lows[part])
                high = max(high, highs[part])
            }
            let scale = high == low ? 1 : (high - low) / 255
            let zero = min(max((0 - low / scale).rounded(.toNearestOrEven), 0), 255)
            scaleOut[0] = scale
            zeroOut[0] = UInt8(zero)
            parallel.run(quantizeTask, count: chunks)
        }
    }

    // MARK: Layout and parameters

    private static func resolveLayout(_ node: BoundNode, input: BoundValue, scale: BoundValue) throws
        -> QuantizationLayout
    {
        do {
            return try QuantizationLayout.resolve(
                input: input.shape.dimensions, scale: scale.shape.dimensions,
                axis: try node.attributes.int("axis", default: 1),
                blockSize: try node.attributes.int("block_size", default: 0))
        } catch let error as ShapeError.Detail {
            throw node.fail(error.text)
        }
    }

    /// A task calling `body(offset, count, parameter)` for runs of consecutive elements sharing one scale and zero
    /// point, split across threads by whole runs (or by element ranges for one per-tensor run), and its count.
    /// Made once per kernel: runs allocate nothing.
    private static func runTask(
        _ layout: QuantizationLayout, _ body: @escaping (Int, Int, Int) -> Void
    ) -> (ParallelTask, Int) {
        if layout.outerStride == 0 && layout.axisStride == 0 {
            return (ClosureTask { _, begin, end in body(begin, end - begin, 0) }, layout.inner)
        }
        let task = ClosureTask { _, begin, end in
            for row in begin..<end {
                let o = row / layout.axisLength, j = row % layout.axisLength
                let base = o * layout.outerStride + (j / layout.blockSize) * layout.axisStride
                if layout.innerStride == 0 {
                    body(row * layout.inner, layout.inner, base)
                } else {
                    for t in 0..<layout.inner { body(row * layout.inner + t, 1, base + t) }
                }
            }
        }
        return (task, layout.outer * layout.axisLength)
    }

    static func integerRange(_ dtype: DType, node: BoundNode) throws -> ClosedRange<Float> {
        switch dtype {
        case .uint8: 0...255
        case .int8: -128...127
        case .uint16: 0...65535
        case .int16: -32768...32767
        default: throw node.fail("quantized type \(dtype) is not supported (int8, uint8, int16, uint16)")
        }
    }

    static func floatLoader(_ dtype: DType, node: BoundNode) throws -> (UnsafeRawPointer, Int) -> Float {
        switch dtype {
        case .float32: { $0.load(fromByteOffset: $1 * 4, as: Float.self) }
        case .float16: { Float($0.load(fromByteOffset: $1 * 2, as: Float16.self)) }
        case .bfloat16: { $0.load(fromByteOffset: $1 * 2, as: BFloat16.self).float }
        default: throw node.fail("expects float32 or float16, got \(dtype)")
        }
    }

    static func integerLoader(_ dtype: DType, node: BoundNode) throws -> (UnsafeRawPointer, Int) -> Int32 {
        switch dtype {
        case .uint8: { Int32($0.load(fromByteOffset: $1, as: UInt8.self)) }
        case .int8: { Int32($0.load(fromByteOffset: $1, as: Int8.self)) }
        case .uint16: { Int32($0.load(fromByteOffset: $1 * 2, as: UInt16.self)) }
        case .int16: { Int32($0.load(fromByteOffset: $1 * 2, as: Int16.self)) }
        case .int32: { $0.load(fromByteOffset: $1 * 4, as: Int32.self) }
        default: throw node.fail("expects an 8-, 16- or 32-bit integer input, got \(dtype)")
        }
    }

    /// Stores a value already clamped to the type's range.
    static func integerStorer(_ dtype: DType, node: BoundNode) throws -> (UnsafeMutableRawPointer, Int, Int32) -> Void {
        switch dtype {
        case .uint8: { $0.storeBytes(of: UInt8(truncatingIfNeeded: $2), toByteOffset: $1, as: UInt8.self) }
        case .int8: { $0.storeBytes(of: Int8(truncatingIfNeeded: $2), toByteOffset: $1, as: Int8.self) }
        case .uint16: { $0.storeBytes(of: UInt16(truncatingIfNeeded: $2), toByteOffset: $1 * 2, as: UInt16.self) }
        case .int16: { $0.storeBytes(of: Int16(truncatingIfNeeded: $2), toByteOffset: $1 * 2, as: Int16.self) }
        default: throw node.fail("quantized type \(dtype) is not supported (int8, uint8, int16, uint16)")
        }
    }
}

/// Scales read into float32 once (constants) or on every run (values computed by the model), without allocating.
final class FloatParameters {
    let values: UnsafeMutablePointer<Float>
    let count: Int
    private let source: UnsafeRawPointer?
    private let half: Bool

    init(_ value: BoundValue, count: Int) throws {
        guard value.count == count, value.type.dtype == .float32 || value.type.dtype == .float16 else {
            throw RuntimeError.invalidNode(
                node: "scale", detail: "expected \(count) float32 or float16 values, got \(value.type)")
        }
        self.count = count
        values = .allocate(capacity: max(count, 1))
        half = value.type.dtype == .float16
        let pointer = UnsafeRawPointer(try value.raw())
        if let constant = value.constant {
            source = nil
            constant.withUnsafeBytes { bytes in
                guard let base = bytes.baseAddress else { return }
                Self.read(base, half: half, count: count, into: values)
            }
        } else {
            source = pointer
        }
    }

    deinit { values.deallocate() }

    /// Whether the values are constants (read once, at plan time).
    var isConstant: Bool { source == nil }

    func refresh() {
        if let source { Self.read(source, half: half, count: count, into: values) }
    }

    private static func read(_ base: UnsafeRawPointer, half: Bool, count: Int, into values: UnsafeMutablePointer<Float>)
    {
        for i in 0..<count {
            values[i] =
                half
                ? Float(base.load(fromByteOffset: i * 2, as: Float16.self))
                : base.load(fromByteOffset: i * 4, as: Float.self)
        }
    }
}

/// Zero points read into int32 once (constants, or all zero when the input is omitted) or on every run.
final class IntParameters {
    let values: UnsafeMutablePointer<Int32>
    let count: Int
    private let source: UnsafeRawPointer?
    private let load: (UnsafeRawPointer, Int) -> Int32

    init(_ value: BoundValue?, count: Int, node: BoundNode) throws {
        self.count = count
        values = .allocate(capacity: max(count, 1))
        values.initialize(repeating: 0, count: max(count, 1))
        guard let value else {
            source = nil
            load = { _, _ in 0 }
            return
        }
        guard value.count == count else {
            throw node.fail("the zero point has \(value.count) values, expected \(count)")
        }
        load = try QuantizationKernels.integerLoader(value.type.dtype, node: node)
        if let constant = value.constant {
            source = nil
            let load = load
            constant.withUnsafeBytes { bytes in
                guard let base = bytes.baseAddress else { return }
                for i in 0..<count { values[i] = load(base, i) }
            }
        } else {
            source = UnsafeRawPointer(try value.raw())
        }
    }

    deinit { values.deallocate() }

    /// Whether the values are constants (or omitted): read once, at plan time.
    var isConstant: Bool { source == nil }

    func refresh() {
        if let source { for i in 0..<count { values[i] = load(source, i) } }
    }
}
