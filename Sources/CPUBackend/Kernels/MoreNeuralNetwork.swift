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

/// InstanceNormalization, GroupNormalization, LRN, MeanVarianceNormalization, LpPool, Shrink, EyeLike and
/// ReverseSequence: float kernels computed in double precision (style-transfer, diffusion and older CNN models).
enum NeuralNetworkExtras {
    /// Instance and group normalization: per (n, group) mean and variance over the group's channels and all
    /// spatial positions, then a per-channel (or, before opset 21, per-group) scale and bias.
    static func makeGroupedNormalization(_ node: BoundNode) throws -> any Kernel {
        let x = try node.input(0), scale = try node.input(1), bias = try node.input(2), y = try node.output(0)
        guard x.shape.rank >= 2 else { throw node.fail("expects (N, C, ...) input, got \(x.shape)") }
        let n = x.shape[0], channels = x.shape[1]
        let spatial = x.shape.dimensions.dropFirst(2).reduce(1, *)
        let instance = node.attributes.opType == "InstanceNormalization"
        let groups = instance ? channels : try node.attributes.int("num_groups", default: 0)
        guard groups > 0, channels % groups == 0 else {
            throw node.fail("num_groups \(groups) must divide the \(channels) channels")
        }
        let perChannel = scale.count == channels
        guard perChannel || scale.count == groups, bias.count == scale.count else {
            throw node.fail("scale and bias must hold one value per channel (\(channels)) or per group (\(groups))")
        }
        let epsilon = Double(try node.attributes.float("epsilon", default: 1e-5))
        let io = ElementIO.for(x.type.dtype), paramIO = ElementIO.for(scale.type.dtype)
        let src = UnsafeRawPointer(try x.raw()), dst = try y.raw()
        let gammas = UnsafeRawPointer(try scale.raw()), betas = UnsafeRawPointer(try bias.raw())
        let channelsPerGroup = channels / groups, width = channelsPerGroup * spatial
        return ClosureKernel {
            for b in 0..<n {
                for g in 0..<groups {
                    let base = (b * channels + g * channelsPerGroup) * spatial
                    var sum = 0.0
                    for i in 0..<width { sum += io.load(src, base + i) }
                    let mean = sum / Double(Swift.max(width, 1))
                    var squares = 0.0
                    for i in 0..<width {
                        let d = io.load(src, base + i) - mean
                        squares += d * d
                    }
                    let inverse = 1 / (squares / Double(Swift.max(width, 1)) + epsilon).squareRoot()
                    for c in 0..<channelsPerGroup {
                        let p = perChannel ? g * channelsPerGroup + c : g
                        let gamma = paramIO.load(gammas, p), beta = paramIO.load(betas, p)
                        for s in 0..<spatial {
                            let at = base + c * spatial + s
                            io.store(dst, at, (io.load(src, at) - mean) * inverse * gamma + beta)
                        }
                    }
                }
            }
        }
    }

    static func makeLRN(_ node: BoundNode) throws -> any Kernel {
        let x = try node.input(0), y = try node.output(0)
        guard x.shape.rank >= 2 else { throw node.fail("expects (N, C, ...) input, got \(x.shape)") }
        let size = try node.attributes.int("size", default: 0)
        guard size >= 1 else { throw node.fail("size must be at least 1, got \(size)") }
        let alpha = Double(try node.attributes.float("alpha", default: 1e-4))
        let beta = Double(try node.attributes.float("beta", default: 0.75))
        let bias = Double(try node.attributes.float("bias", default: 1))
        let n = x.shape[0], channels = x.shape[1], spatial = x.shape.dimensions.dropFirst(2).reduce(1, *)
        let before = (size - 1) / 2, after = size - 1 - before
        let io = ElementIO.for(x.type.dtype)
        let src = UnsafeRawPointer(try x.raw()), dst = try y.raw()
        return ClosureKernel {
            for b in 0..<n {
                for c in 0..<channels {
                    let low = Swift.max(0, c - before), high = Swift.min(channels - 1, c + after)
                    for s in 0..<spatial {
                        var squares = 0.0
                        if low <= high {
                            for k in low...high {
                                let v = io.load(src, (b * channels + k) * spatial + s)
                                squares += v * v
                            }
                        }
                        let at = (b * channels + c) * spatial + s
                        io.store(dst, at, io.load(src, at) / pow(bias + alpha / Double(size) * squares, beta))
                    }
                }
            }
        }
    }

    static func makeMeanVarianceNormalization(_ node: BoundNode) throws -> any Kernel {
        let x = try node.input(0), y = try node.output(0)
        let rank = x.shape.rank
        let axes = Set(
            try (try node.attributes.ints("axes") ?? [0, 2, 3]).map { try node.shapeContext.axis($0, rank: rank) })
        // For every element, the statistics slot it belongs to (the kept axes, row-major).
        var keptStrides = [Int](repeating: 0, count: rank)
        var slots = 1
        for axis in stride(from: rank - 1, through: 0, by: -1) where !axes.contains(axis) {
            keptStrides[axis] = slots
            slots *= x.shape[axis]
        }
        var slot = [Int](repeating: 0, count: x.count)
        forEachIndex(x.shape.dimensions) { index, flat in
            var t = 0
            for axis in 0..<rank { t += index[axis] * keptStrides[axis] }
            slot[flat] = t
        }
        let perSlot = Double(slots > 0 ? x.count / slots : 1)
        let io = ElementIO.for(x.type.dtype)
        let src = UnsafeRawPointer(try x.raw()), dst = try y.raw()
        var means = [Double](repeating: 0, count: slots), squares = [Double](repeating: 0, count: slots)
        return ClosureKernel {
            for i in 0..<slots {
                means[i] = 0
                squares[i] = 0
            }
            for i in 0..<slot.count {
                let v = io.load(src, i)
                means[slot[i]] += v
                squares[slot[i]] += v * v
            }
            for i in 0..<slots {
                means[i] /= perSlot
                squares[i] = (squares[i] / perSlot - means[i] * means[i]).squareRoot()
            }
            for i in 0..<slot.count {
                io.store(dst, i, (io.load(src, i) - means[slot[i]]) / (squares[slot[i]] + 1e-9))
            }
        }
    }

    static func makeLpPool(_ node: BoundNode) throws -> any Kernel {
        let xv = try node.input(0), yv = try node.output(0)
        let geometry = try node.parameters(ConvGeometry.self)
        let table = try WindowTable(geometry, node: node)
        let p = Double(try node.attributes.int("p", default: 2))
        guard p >= 1 else { throw node.fail("p must be at least 1") }
        let planes = xv.shape[0] * xv.shape[1]
        let io = ElementIO.for(xv.type.dtype)
        let src = UnsafeRawPointer(try xv.raw()), dst = try yv.raw()
        let k = table.kernelCount, outCount = table.outputCount, inCount = table.inputCount
        return ClosureKernel {
            for plane in 0..<planes {
                for o in 0..<outCount {
                    var sum = 0.0
                    for kp in 0..<k {
                        let offset = table.offsets[kp * outCount + o]
                        if offset >= 0 { sum += pow(Swift.abs(io.load(src, plane * inCount + offset)), p) }
                    }
                    io.store(dst, plane * outCount + o, pow(sum, 1 / p))
                }
            }
        }
    }

    static func makeShrink(_ node: BoundNode) throws -> any Kernel {
        let x = try node.input(0), y = try node.output(0)
        let lambda = Double(try node.attributes.float("lambd", default: 0.5))
        let bias = Double(try node.attributes.float("bias", default: 0))
        let io = ElementIO.for(x.type.dtype)
        let src = UnsafeRawPointer(try x.raw()), dst = try y.raw()
        let count = x.count
        return ClosureKernel {
            for i in 0..<count {
                let v = io.load(src, i)
                io.store(dst, i, v < -lambda ? v + bias : (v > lambda ? v - bias : 0))
            }
        }
    }

    static func makeEyeLike(_ node: BoundNode) throws -> any Kernel {
        let y = try node.output(0)
        guard y.shape.rank == 2 else { throw node.fail("expects a rank-2 input, got \(y.shape)") }
        let k = try node.attributes.int("k", default: 0)
        let rows = y.shape[0], columns = y.shape[1]
        let io = ElementIO.forIndexing(y.type.dtype)
        let dst = try y.raw()
        return ClosureKernel {
            for i in 0..<rows {
                for j in 0..<columns { io.store(dst, i * columns + j, j - i == k ? 1 : 0) }
            }
        }
    }

    static func makeReverseSequence(_ node: BoundNode) throws -> any Kernel {
        let x = try node.input(0), lengths = try node.input(1), y = try node.output(0)
        guard x.shape.rank >= 2 else { throw node.fail("expects rank 2 or more, got \(x.shape)") }
        let timeAxis = try node.attributes.int("time_axis", default: 0)
        let batchAxis = try node.attributes.int("batch_axis", default: 1)
        guard (timeAxis == 0 && batchAxis == 1) || (timeAxis == 1 && batchAxis == 0) else {
            throw node.fail("time_axis and batch_axis must be 0 and 1 in some order")
        }
        let steps = x.shape[timeAxis], batch = x.shape[batchAxis]
        guard lengths.count == batch else { throw node.fail("sequence_lens must hold \(batch) lengths") }
        let inner = x.shape.dimensions.dropFirst(2).reduce(1, *)
        let reader = try IndexReader(lengths, node: node)
        let size = x.type.dtype.byteSize
        let src = UnsafeRawPointer(try x.raw()), dst = try y.raw()
        let name = node.name
        return ClosureKernel {
            for b in 0..<batch {
                let length = reader.raw(b)
                guard length >= 0 && length <= steps else {
                    throw RuntimeError.invalidNode(
                        node: name, detail: "sequence length \(length) is outside [0, \(steps)]")
                }
                for t in 0..<steps {
                    let from = t < length ? length - 1 - t : t
                    let target = timeAxis == 0 ? (t * batch + b) * inner : (b * steps + t) * inner
                    let source = timeAxis == 0 ? (from * batch + b) * inner : (b * steps + from) * inner
                    for e in 0..<inner { copyElement(dst, target + e, src, source + e, size: size) }
                }
            }
        }
    }
}

/// GridSample (opset 16/20/22): N-D nearest, linear and cubic sampling with zeros, border and reflection
/// padding, as PyTorch's grid_sample defines them; computed in double precision.
final class GridSampleKernel: Kernel {
    private enum Mode { case nearest, linear, cubic }
    private enum Padding: String { case zeros, border, reflection }

    private let mode: Mode, padding: Padding, alignCorners: Bool
    private let dims: [Int], strides: [Int], lows: [Double], highs: [Double]
    private let n: Int, channels: Int, points: Int, plane: Int, rank: Int, taps: Int, corners: Int
    private let io: ElementIO, gridIO: ElementIO
    private let src: UnsafeRawPointer, coordinates: UnsafeRawPointer, dst: UnsafeMutableRawPointer
    private var position: [Double], tapIndex: [Int], tapWeight: [Double]

    static func make(_ node: BoundNode) throws -> any Kernel { try GridSampleKernel(node) }

    private init(_ node: BoundNode) throws {
        let x = try node.input(0), grid = try node.input(1), y = try node.output(0)
        rank = x.shape.rank - 2
        guard rank >= 1, grid.shape.rank == rank + 2, grid.shape[0] == x.shape[0], grid.shape[rank + 1] == rank else {
            throw node.fail("grid \(grid.shape) does not fit X \(x.shape)")
        }
        switch try node.attributes.string("mode", default: node.opset >= 20 ? "linear" : "bilinear") {
        case "nearest": mode = .nearest
        case "linear", "bilinear": mode = .linear
        case "cubic", "bicubic": mode = .cubic
        case let other: throw node.fail("mode '\(other)' is not nearest, linear or cubic")
        }
        let paddingName = try node.attributes.string("padding_mode", default: "zeros")
        guard let padding = Padding(rawValue: paddingName) else {
            throw node.fail("padding_mode '\(paddingName)' is not zeros, border or reflection")
        }
        self.padding = padding
        let alignCorners = try node.attributes.int("align_corners", default: 0) != 0
        let dims = Array(x.shape.dimensions.dropFirst(2))
        self.alignCorners = alignCorners
        self.dims = dims
        strides = rowMajorStrides(dims)
        lows = dims.map { _ in alignCorners ? 0.0 : -0.5 }
        highs = dims.map { alignCorners ? Double($0 - 1) : Double($0) - 0.5 }
        (n, channels) = (x.shape[0], x.shape[1])
        points = grid.shape.dimensions.dropFirst().dropLast().reduce(1, *)
        plane = dims.reduce(1, *)
        io = ElementIO.for(x.type.dtype)
        gridIO = ElementIO.for(grid.type.dtype)
        src = UnsafeRawPointer(try x.raw())
        coordinates = UnsafeRawPointer(try grid.raw())
        dst = try y.raw()
        taps = mode == .cubic ? 4 : (mode == .linear ? 2 : 1)
        corners = Int(pow(Double(taps), Double(rank)))
        position = [Double](repeating: 0, count: rank)
        tapIndex = [Int](repeating: 0, count: rank * taps)
        tapWeight = [Double](repeating: 0, count: rank * taps)
    }

    private static func reflect(_ v: Double, _ low: Double, _ high: Double) -> Double {
        let range = high - low
        guard range > 0 else { return low }
        if v < low {
            let dx = low - v, k = (dx / range).rounded(.towardZero), r = dx - k * range
            return k.truncatingRemainder(dividingBy: 2) == 0 ? low + r : high - r
        }
        if v > high {
            let dx = v - high, k = (dx / range).rounded(.towardZero), r = dx - k * range
            return k.truncatingRemainder(dividingBy: 2) == 0 ? high - r : low + r
        }
        return v
    }

    /// The element offset of index i on an axis, or -1 for a zero from padding.
    private func resolve(_ i: Int, axis: Int) -> Int {
        let d = dims[axis]
        if i >= 0 && i < d { return i * strides[axis] }
        switch padding {
        case .zeros: return -1
        case .border: return Swift.min(Swift.max(i, 0), d - 1) * strides[axis]
        case .reflection:
            let r = Int(Self.reflect(Double(i), lows[axis], highs[axis]))
            return Swift.min(Swift.max(r, 0), d - 1) * strides[axis]
        }
    }

    /// Keys' cubic convolution weight (a = -0.75) of tap k (0...3) at fraction t (no array per call).
    private static func cubic(_ t: Double, _ k: Int) -> Double {
        let a = -0.75
        switch k {
        case 0: return ((a * (t + 1) - 5 * a) * (t + 1) + 8 * a) * (t + 1) - 4 * a
        case 1: return ((a + 2) * t - (a + 3)) * t * t + 1
        case 2: return ((a + 2) * (1 - t) - (a + 3)) * (1 - t) * (1 - t) + 1
        default: return ((a * (2 - t) - 5 * a) * (2 - t) + 8 * a) * (2 - t) - 4 * a
        }
    }

    /// The sampling position of grid point p of image b on every axis, and its taps; false when it lies outside
    /// anything representable (then it samples padding).
    private func locate(b: Int, p: Int) -> Bool {
        // The grid lists coordinates innermost axis first (x, then y, ...).
        let base = (b * points + p) * rank
        // Grid values are user data: a non-finite or huge coordinate samples padding, never a trap.
        var outside = false
        for axis in 0..<rank {
            let g = gridIO.load(coordinates, base + rank - 1 - axis)
            let d = Double(dims[axis])
            var v = alignCorners ? (g + 1) / 2 * (d - 1) : ((g + 1) * d - 1) / 2
            if mode == .nearest { v = v.rounded(.toNearestOrEven) }
            if v < lows[axis] || v > highs[axis] {
                if padding == .border {
                    v = Swift.min(Swift.max(v, 0), d - 1)
                } else if padding == .reflection {
                    v = Self.reflect(v, lows[axis], highs[axis])
                }
            }
            if !v.isFinite || Swift.abs(v) > 1e15 { outside = true }
            position[axis] = v
        }
        for axis in 0..<rank where !outside {
            let v = position[axis]
            switch mode {
            case .nearest:
                tapIndex[axis] = resolve(Int(v.rounded(.towardZero)), axis: axis)
                tapWeight[axis] = 1
            case .linear:
                let f = v.rounded(.down), t = v - f
                tapIndex[axis * 2] = resolve(Int(f), axis: axis)
                tapIndex[axis * 2 + 1] = resolve(Int(f) + 1, axis: axis)
                tapWeight[axis * 2] = 1 - t
                tapWeight[axis * 2 + 1] = t
            case .cubic:
                let f = v.rounded(.down)
                for k in 0..<4 {
                    tapIndex[axis * 4 + k] = resolve(Int(f) + k - 1, axis: axis)
                    tapWeight[axis * 4 + k] = Self.cubic(v - f, k)
                }
            }
        }
        return !outside
    }

    func run() throws {
        for b in 0..<n {
            for p in 0..<points {
                let inside = locate(b: b, p: p)
                for c in 0..<channels {
                    let planeBase = (b * channels + c) * plane
                    var sum = 0.0
                    if inside || padding != .zeros {
                        for corner in 0..<corners {
                            var rest = corner, offset = 0, weight = 1.0
                            for axis in stride(from: rank - 1, through: 0, by: -1) {
                                let k = rest % taps
                                rest /= taps
                                let index = tapIndex[axis * taps + k]
                                if index < 0 || !inside {
                                    weight = 0
                                    break
                                }
                                offset += index
                                weight *= tapWeight[axis * taps + k]
                            }
                            if weight != 0 { sum += weight * io.load(src, planeBase + offset) }
                        }
                    }
                    io.store(dst, (b * channels + c) * points + p, sum)
                }
            }
        }
    }
}

/// RoiAlign: per region of interest and channel, an output_height × output_width grid of bins, each the average
/// (or maximum) of bilinear samples on a sampling grid, as the ONNX reference computes it. Batch indices are
/// checked; a region so large its sampling grid would not fit is an error, never a hang.
enum RoiAlignKernel {
    /// Samples per region (all its bins) above which it is refused (sampling_ratio 0 derives the count from the
    /// region's size, which comes from data).
    static let sampleLimit = 1 << 22

    /// The four bilinear taps (positions in the plane and weights) of a sample at (y, x), as the ONNX reference
    /// clamps them; zeros for a sample more than one pixel outside the image.
    static func appendTaps(
        y yRaw: Double, x xRaw: Double, height: Int, width: Int, positions: inout [Int], weights: inout [Double]
    ) {
        if yRaw < -1 || yRaw > Double(height) || xRaw < -1 || xRaw > Double(width) {
            positions += [0, 0, 0, 0]
            weights += [0, 0, 0, 0]
            return
        }
        var sy = max(yRaw, 0), sx = max(xRaw, 0)
        var yLow = Int(sy), xLow = Int(sx), yHigh = yLow + 1, xHigh = xLow + 1
        if yLow >= height - 1 {
            yLow = height - 1
            yHigh = yLow
            sy = Double(yLow)
        }
        if xLow >= width - 1 {
            xLow = width - 1
            xHigh = xLow
            sx = Double(xLow)
        }
        let ly = sy - Double(yLow), lx = sx - Double(xLow)
        let hy = 1 - ly, hx = 1 - lx
        positions += [yLow * width + xLow, yLow * width + xHigh, yHigh * width + xLow, yHigh * width + xHigh]
        weights += [hy * hx, hy * lx, ly * hx, ly * lx]
    }

    static func make(_ node: BoundNode) throws -> any Kernel {
        let x = try node.input(0), rois = try node.input(1), batchValue = try node.input(2), y = try node.output(0)
        guard x.shape.rank == 4, rois.shape.rank == 2, rois.shape[1] == 4, batchValue.shape.rank == 1,
            batchValue.shape[0] == rois.shape[0]
        else { throw node.fail("X \(x.shape), rois \(rois.shape) and batch_indices \(batchValue.shape) do not fit") }
        let batches = try IndexReader(batchValue, node: node)
        let halfPixel =
            try node.attributes.string(
                "coordinate_transformation_mode", default: node.opset >= 16 ? "half_pixel" : "output_half_pixel")
            == "half_pixel"
        let maxMode = try node.attributes.string("mode", default: "avg") == "max"
        let pooledH = y.shape[2], pooledW = y.shape[3]
        let sampling = try node.attributes.int("sampling_ratio", default: 0)
        let scale = Double(try node.attributes.float("spatial_scale", default: 1))
        let n = x.shape[0], channels = x.shape[1], height = x.shape[2], width = x.shape[3]
        let io = ElementIO.for(x.type.dtype), roiIO = ElementIO.for(rois.type.dtype)
        let src = UnsafeRawPointer(try x.raw()), boxes = UnsafeRawPointer(try rois.raw()), dst = try y.raw()
        let regions = rois.shape[0]
        let name = node.name
        return ClosureKernel {
            var positions: [Int] = []
            var weights: [Double] = []
            for r in 0..<regions {
                let batch = try batches.load(r, extent: n)
                let offset = halfPixel ? 0.5 : 0
                let startW = roiIO.load(boxes, r * 4) * scale - offset
                let startH = roiIO.load(boxes, r * 4 + 1) * scale - offset
                var roiW = roiIO.load(boxes, r * 4 + 2) * scale - offset - startW
                var roiH = roiIO.load(boxes, r * 4 + 3) * scale - offset - startH
                if !halfPixel {
                    roiW = max(roiW, 1)
                    roiH = max(roiH, 1)
                }
                let binH = roiH / Double(pooledH), binW = roiW / Double(pooledW)
                let gridValueH = sampling > 0 ? Double(sampling) : (roiH / Double(pooledH)).rounded(.up)
                let gridValueW = sampling > 0 ? Double(sampling) : (roiW / Double(pooledW)).rounded(.up)
                // Every sample of the region's bins gets four taps in the tables below: bound their count.
                guard startW.isFinite, startH.isFinite, gridValueH.isFinite, gridValueW.isFinite,
                    Double(pooledH * pooledW) * max(gridValueH, 0) * max(gridValueW, 1) <= Double(sampleLimit)
                else {
                    throw RuntimeError.invalidNode(
                        node: name,
                        detail: "region \(r) is not finite or needs more than \(sampleLimit) samples")
                }
                let gridH = max(Int(gridValueH), 0), gridW = max(Int(gridValueW), 0)
                let count = Double(max(gridH * gridW, 1))
                // Bilinear taps of every sample, shared by all channels.
                positions.removeAll(keepingCapacity: true)
                weights.removeAll(keepingCapacity: true)
                for ph in 0..<pooledH {
                    for pw in 0..<pooledW {
                        for iy in 0..<gridH {
                            let yRaw = startH + Double(ph) * binH + (Double(iy) + 0.5) * binH / Double(gridH)
                            for ix in 0..<gridW {
                                let xRaw = startW + Double(pw) * binW + (Double(ix) + 0.5) * binW / Double(gridW)
                                appendTaps(
                                    y: yRaw, x: xRaw, height: height, width: width, positions: &positions,
                                    weights: &weights)
                            }
                        }
                    }
                }
                let samples = gridH * gridW
                for c in 0..<channels {
                    let plane = (batch * channels + c) * height * width
                    let out = ((r * channels + c) * pooledH) * pooledW
                    for bin in 0..<(pooledH * pooledW) {
                        var value = 0.0
                        for s in 0..<samples {
                            let t = (bin * samples + s) * 4
                            if maxMode {
                                var v = weights[t] * io.load(src, plane + positions[t])
                                for k in 1..<4 { v = max(v, weights[t + k] * io.load(src, plane + positions[t + k])) }
                                value = s == 0 ? v : max(value, v)
                            } else {
                                for k in 0..<4 { value += weights[t + k] * io.load(src, plane + positions[t + k]) }
                            }
                        }
                        io.store(dst, out + bin, maxMode ? value : value / count)
                    }
                }
            }
        }
    }
}
