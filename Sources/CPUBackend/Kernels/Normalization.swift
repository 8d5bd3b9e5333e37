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

/// The C library's log, under a name the kernels' `log` flag does not shadow.
private func naturalLog(_ x: Double) -> Double { log(x) }

/// Softmax, LogSoftmax, BatchNormalization (inference), LayerNormalization; float32.
enum NormalizationKernels {
    /// Softmax/LogSoftmax over one axis (opset ≥ 13) or over the flattened trailing axes (opset < 13).
    static func makeSoftmax(_ node: BoundNode, parallel: ParallelFor) throws -> any Kernel {
        let x = try node.input(0)
        let y = try node.output(0)
        let rank = x.shape.rank
        let raw = try node.attributes.int("axis", default: node.opset >= 13 ? -1 : 1)
        let axis = raw < 0 ? raw + rank : raw
        guard axis >= 0 && axis < max(rank, 1) else { throw node.fail("axis \(raw) out of range for rank \(rank)") }
        let dims = x.shape.dimensions
        let outer = dims[..<axis].reduce(1, *)
        let (n, inner) =
            node.opset >= 13
            ? (dims.isEmpty ? 1 : dims[axis], dims[min(axis + 1, dims.count)...].reduce(1, *))
            : (dims[axis...].reduce(1, *), 1)
        let log = node.attributes.opType == "LogSoftmax"
        let src = try x.pointer(Float.self), dst = try y.pointer(Float.self)
        if inner == 1 {
            // Contiguous rows: the vectorized kernel.
            let splitter = outer * n >= 1 << 14 ? parallel : .serial
            let task = ClosureTask { _, begin, end in
                ck_softmax_rows(src + begin * n, dst + begin * n, end - begin, n, log ? 1 : 0)
            }
            return ClosureKernel { splitter.run(task, count: outer) }
        }
        return ClosureKernel {
            for o in 0..<outer {
                for i in 0..<inner {
                    let base = o * n * inner + i
                    var maximum = -Float.infinity
                    for k in 0..<n { maximum = max(maximum, src[base + k * inner]) }
                    var sum = 0.0
                    for k in 0..<n { sum += exp(Double(src[base + k * inner] - maximum)) }
                    if log {
                        let logSum = Float(naturalLog(sum))
                        for k in 0..<n { dst[base + k * inner] = src[base + k * inner] - maximum - logSum }
                    } else {
                        for k in 0..<n {
                            dst[base + k * inner] = Float(exp(Double(src[base + k * inner] - maximum)) / sum)
                        }
                    }
                }
            }
        }
    }

    static func makeBatchNorm(_ node: BoundNode, parallel: ParallelFor) throws -> any Kernel {
        let x = try node.input(0), y = try node.output(0)
        if try node.attributes.int("training_mode", default: 0) != 0 || (node.outputs.count > 1 && node.opset >= 14) {
            throw RuntimeError.unsupportedAttribute(
                node: node.name, detail: "training mode (batch statistics); export the model for inference")
        }
        let channels = x.shape[1]
        let spatial = x.shape.dimensions.dropFirst(2).reduce(1, *)
        let batch = x.shape[0]
        let epsilon = try node.attributes.float("epsilon", default: 1e-5)
        let src = try x.pointer(Float.self), dst = try y.pointer(Float.self)
        let scale = try node.input(1).pointer(Float.self), bias = try node.input(2).pointer(Float.self)
        let mean = try node.input(3).pointer(Float.self), variance = try node.input(4).pointer(Float.self)
        // A fused Relu or Clip (planned after inference BatchNormalization, as in pre-activation blocks) is
        // applied in the same pass; NaN passes through.
        let activation = try node.fusedActivation()
        let (low, high): (Float, Float) =
            switch activation.kind {
            case ck_activation_none: (-.infinity, .infinity)
            case ck_activation_relu: (0, .infinity)
            case ck_activation_clip: (activation.low, activation.high)
            default: throw node.fail("cannot apply a fused activation to BatchNormalization")
            }
        // Planes (image, channel) [begin, end).
        let planes = { (range: Range<Int>) in
            for plane in range {
                let c = plane % channels
                let a = scale[c] / (variance[c] + epsilon).squareRoot()
                let b = bias[c] - mean[c] * a
                ck_scale_shift_clamp(src + plane * spatial, dst + plane * spatial, spatial, a, b, low, high)
            }
        }
        // Split across threads from 2^15 values: DenseNet's pre-activation BatchNormalization + Relu read what
        // both threads' convolutions wrote, and on one thread ran 2-5x slower at two threads than at one.
        guard x.count >= 1 << 15 else { return ClosureKernel { planes(0..<(batch * channels)) } }
        return PlaneSplitKernel(planes: batch * channels, parallel: parallel, body: planes)
    }

    static func makeLayerNorm(_ node: BoundNode, parallel: ParallelFor) throws -> any Kernel {
        let x = try node.input(0), y = try node.output(0)
        let rank = x.shape.rank
        let raw = try node.attributes.int("axis", default: -1)
        let axis = raw < 0 ? raw + rank : raw
        let epsilon = Double(try node.attributes.float("epsilon", default: 1e-5))
        let outer = x.shape.dimensions[..<axis].reduce(1, *)
        let normalized = Shape(Array(x.shape.dimensions[axis...]))
        let n = normalized.elementCount
        let scale = try Broadcast(try node.input(1), to: normalized)
        let bias = try node.optionalInput(2).map { try Broadcast($0, to: normalized) }
        let src = UnsafePointer(try x.pointer(Float.self)), dst = try y.pointer(Float.self)
        let meanOut = node.outputs.count > 1 ? try node.output(1).pointer(Float.self) : nil
        let invOut = node.outputs.count > 2 ? try node.output(2).pointer(Float.self) : nil
        let splitter = outer * n >= 1 << 14 ? parallel : .serial
        let ps = scale.pointer, pb = bias?.pointer
        let task = ClosureTask { _, begin, end in
            ck_layer_norm_rows(
                src + begin * n, dst + begin * n, end - begin, n, ps, pb, epsilon, meanOut.map { $0 + begin },
                invOut.map { $0 + begin })
        }
        return ClosureKernel {
            scale.refresh()
            bias?.refresh()
            splitter.run(task, count: outer)
        }
    }

    /// A per-position parameter (LayerNormalization's scale or bias) as a contiguous array over the normalized
    /// shape: the value itself when it already has that shape, else an expanded copy (made once for a constant,
    /// before every run otherwise).
    final class Broadcast {
        let pointer: UnsafePointer<Float>
        private let copy: HostBuffer?
        private let source: UnsafePointer<Float>
        private let offsets: [Int]
        private let constant: Bool

        init(_ value: BoundValue, to shape: Shape) throws {
            source = UnsafePointer(try value.pointer(Float.self))
            constant = value.constant != nil
            guard value.shape != shape else {
                pointer = source
                copy = nil
                offsets = []
                return
            }
            offsets = broadcastOffsets(operand: value.shape, output: shape)
            let buffer = try HostBuffer(bytes: max(offsets.count, 1) * MemoryLayout<Float>.stride)
            copy = buffer
            pointer = UnsafePointer(buffer.pointer.bindMemory(to: Float.self, capacity: max(offsets.count, 1)))
            expand()
        }

        func refresh() { if copy != nil && !constant { expand() } }

        private func expand() {
            guard let copy else { return }
            let target = copy.pointer.assumingMemoryBound(to: Float.self)
            offsets.withUnsafeBufferPointer { o in for i in o.indices { target[i] = source[o[i]] } }
        }
    }
}

/// Reductions over axes (ReduceMean/Sum/Max/Min/Prod/L2/SumSquare) and ArgMax/ArgMin.
enum ReductionKernels {
    static func makeReduce(_ node: BoundNode) throws -> any Kernel {
        let x = try node.input(0), y = try node.output(0)
        let axes = Set(try ShapeInference.reductionAxes(node.shapeContext, rank: x.shape.rank))
        let op = node.attributes.opType
        let io = ElementIO.for(x.type.dtype)
        let out = ElementIO.for(y.type.dtype)
        let src = try x.raw(), dst = try y.raw()
        if axes.isEmpty && x.count == y.count {
            let bytes = y.type.byteCount
            return ClosureKernel { dst.copyMemory(from: src, byteCount: bytes) }
        }
        if let kernel = try adjacentAxesKernel(op: op, x: x, y: y, axes: axes.sorted()) { return kernel }
        let target = reductionTargets(x.shape.dimensions, axes: axes)
        let count = y.count
        let reducedCount = Double(count > 0 ? x.count / count : 0)
        let initial: Double =
            switch op {
            case "ReduceMax": -.infinity
            case "ReduceMin": .infinity
            case "ReduceProd": 1
            default: 0
            }
        enum Mode { case sum, max, min, prod, squares, absolute, exponentials }
        let mode: Mode =
            switch op {
            case "ReduceMax": .max
            case "ReduceMin": .min
            case "ReduceProd": .prod
            case "ReduceL2", "ReduceSumSquare": .squares
            case "ReduceL1": .absolute
            case "ReduceLogSumExp": .exponentials
            default: .sum
            }
        let isMean = op == "ReduceMean", isL2 = op == "ReduceL2"
        let isLog = op == "ReduceLogSum" || op == "ReduceLogSumExp"
        var accumulator = [Double](repeating: initial, count: count)
        // LogSumExp subtracts each output's maximum before exponentiating (no overflow for large inputs).
        var shift = [Double](repeating: 0, count: mode == .exponentials ? count : 0)
        return ClosureKernel {
            for i in 0..<count { accumulator[i] = initial }
            if mode == .exponentials {
                for i in 0..<count { shift[i] = -.infinity }
                for i in 0..<target.count { shift[target[i]] = Swift.max(shift[target[i]], io.load(src, i)) }
                for i in 0..<count where !shift[i].isFinite { shift[i] = 0 }
            }
            for i in 0..<target.count {
                let v = io.load(src, i)
                let t = target[i]
                switch mode {
                case .max: accumulator[t] = v.isNaN || accumulator[t].isNaN ? .nan : Swift.max(accumulator[t], v)
                case .min: accumulator[t] = v.isNaN || accumulator[t].isNaN ? .nan : Swift.min(accumulator[t], v)
                case .prod: accumulator[t] *= v
                case .squares: accumulator[t] += v * v
                case .sum: accumulator[t] += v
                case .absolute: accumulator[t] += Swift.abs(v)
                case .exponentials: accumulator[t] += exp(v - shift[t])
                }
            }
            for i in 0..<count {
                var v = accumulator[i]
                if isMean { v /= reducedCount }
                if isL2 { v = v.squareRoot() }
                if isLog { v = log(v) + (mode == .exponentials ? shift[i] : 0) }
                out.store(dst, i, v)
            }
        }
    }

    /// float32 over adjacent axes (global pooling, a channel or row reduction): one pass in C; nil otherwise.
    static func adjacentAxesKernel(op: String, x: BoundValue, y: BoundValue, axes sortedAxes: [Int]) throws
        -> (any Kernel)?
    {
        let src = try x.raw(), dst = try y.raw()
        let fastModes: [String: Int32] = [
            "ReduceSum": 0, "ReduceMean": 0, "ReduceMax": 1, "ReduceMin": 2, "ReduceSumSquare": 3,
        ]
        guard x.type.dtype == .float32, let mode = fastModes[op], let first = sortedAxes.first,
            let last = sortedAxes.last, last - first + 1 == sortedAxes.count, y.count > 0
        else { return nil }
        let dims = x.shape.dimensions
        let outer = dims[..<first].reduce(1, *), n = dims[first...last].reduce(1, *)
        let inner = dims[(last + 1)...].reduce(1, *)
        let scale = op == "ReduceMean" ? 1 / Double(max(n, 1)) : 1
        let scratch = try HostBuffer(bytes: max(inner, 1) * MemoryLayout<Double>.stride)
        let xs = src.assumingMemoryBound(to: Float.self), ys = dst.assumingMemoryBound(to: Float.self)
        let doubles = scratch.pointer.assumingMemoryBound(to: Double.self)
        return ClosureKernel {
            withExtendedLifetime(scratch) {
                ck_reduce_axis(xs, outer, n, inner, mode, scale, doubles, ys)
            }
        }
    }

    /// For every input element, the output element it reduces into.
    static func reductionTargets(_ dims: [Int], axes: Set<Int>) -> [Int] {
        var keptStrides = [Int](repeating: 0, count: dims.count)
        var running = 1
        for axis in stride(from: dims.count - 1, through: 0, by: -1) where !axes.contains(axis) {
            keptStrides[axis] = running
            running *= dims[axis]
        }
        var target = [Int](repeating: 0, count: dims.reduce(1, *))
        forEachIndex(dims) { index, flat in
            var t = 0
            for axis in 0..<index.count { t += index[axis] * keptStrides[axis] }
            target[flat] = t
        }
        return target
    }

    static func makeArgReduce(_ node: BoundNode) throws -> any Kernel {
        let x = try node.input(0), y = try node.output(0)
        let rank = x.shape.rank
        let raw = try node.attributes.int("axis", default: 0)
        let axis = raw < 0 ? raw + rank : raw
        let last = try node.attributes.int("select_last_index", default: 0) != 0
        let isMax = node.attributes.opType == "ArgMax"
        let outer = x.shape.dimensions[..<axis].reduce(1, *)
        let n = x.shape[axis]
        let inner = x.shape.dimensions[(axis + 1)...].reduce(1, *)
        let io = ElementIO.for(x.type.dtype)
        let src = try x.raw(), dst = try y.pointer(Int64.self)
        return ClosureKernel {
            for o in 0..<outer {
                for i in 0..<inner {
                    var best = io.load(src, o * n * inner + i)
                    var bestIndex = 0
                    for k in 1..<max(n, 1) {
                        let v = io.load(src, (o * n + k) * inner + i)
                        let better = isMax ? (last ? v >= best : v > best) : (last ? v <= best : v < best)
                        if better {
                            best = v
                            bestIndex = k
                        }
                    }
                    dst[o * inner + i] = Int64(bestIndex)
                }
            }
        }
    }
}
