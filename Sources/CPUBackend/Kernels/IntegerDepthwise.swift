import CKernels
import InferenceGraph
import InferenceRuntime
import InferenceTensor

/// QLinearConv with one filter per channel (group = channels: the depthwise layers of MobileNets and EfficientNets,
/// in onnxruntime's QOperator format or planned from QDQ by `QuantizedFusion`), square windows up to 7x7 at stride 1
/// or 2, exact sums. 3x3, 5x5 and 7x7 windows with AVX2 run channels in vector lanes (`ck_depthwise_blocked_q`: the
/// float kernel's transposes, bytes converted on the way in and requantized on the way out), split across threads
/// by channel blocks (or output rows when the blocks are fewer than threads); other windows and machines one plane
/// at a time (`ck_depthwise_q`, then `ck_requantize`). QDQ MobileNetV2's 17 depthwise layers planned into this
/// kernel, one thread: 5.05 ms one plane at a time, 2.1-2.2 ms channels in lanes (sixteen with AVX-512 for every
/// shape: the requantization per output, not the transposes, is the cost there); QDQ models keep the float
/// arithmetic (DequantizeLinear, float kernel, QuantizeLinear: 2.2 ms as well, see `QuantizedFusion`), now as one
/// `QDQDepthwiseKernel` without the passes.
final class IntegerDepthwiseKernel: Kernel {
    /// Whether the node is such a QLinearConv.
    static func applies(_ node: BoundNode) throws -> Bool {
        guard node.inputs.count > 3, let x = node.inputs[0], let w = node.inputs[3], x.shape.rank == 4,
            w.shape.rank == 4
        else { return false }
        let groups = try node.attributes.int("group", default: 1)
        guard groups > 1, groups == x.shape[1], w.shape[0] == groups, w.shape[1] == 1 else { return false }
        let g = try node.parameters(ConvGeometry.self)
        return g.kernel[0] == g.kernel[1] && (1...7).contains(g.kernel[0]) && g.strides[0] == g.strides[1]
            && [1, 2].contains(g.strides[0]) && g.dilations == [1, 1]
    }

    private let parallel: ParallelFor
    private let x: UnsafePointer<UInt8>, w: UnsafePointer<UInt8>, y: UnsafeMutableRawPointer
    private let xSigned: Bool, wSigned: Bool
    private let batch: Int, channels: Int
    private let geometry: ConvGeometry
    private let xZero: IntParameters, wZeros: IntParameters
    private let requantizer: Requantizer
    private let wScaleCount: Int
    private let bias: UnsafePointer<Int32>?
    /// Per worker: the padded float plane and the plane's int32 sums.
    private let padded: [HostBuffer], sums: [HostBuffer]
    /// Whether the multiply-adds (saturating) are enough to wake the pool's workers.
    private let splits: Bool
    private var task: ClosureTask?
    /// Channels in lanes: channels per block (0: the plane kernel runs), blocks per image, whether threads split
    /// output rows, the float weights (w - w_zero) and per-channel multipliers (formed per run), and per worker the
    /// kernel's scratch.
    private let lanes: Int, blocks: Int, splitsRows: Bool
    private let floatWeights: UnsafeMutablePointer<Float>, multipliers: UnsafeMutablePointer<Double>
    private let blockScratch: [HostBuffer]
    /// Whether the float weights and multipliers depend only on constants (then formed on the first run only), and
    /// whether they have been formed.
    private let fixedParameters: Bool
    private var formed = false

    init(node: BoundNode, parallel: ParallelFor) throws {
        self.parallel = parallel
        let xv = try node.input(0), wv = try node.input(3), yv = try node.output(0)
        guard [.uint8, .int8].contains(xv.type.dtype), [.uint8, .int8].contains(wv.type.dtype) else {
            throw node.fail("QLinearConv needs int8 or uint8 x and w")
        }
        geometry = try node.parameters(ConvGeometry.self)
        batch = xv.shape[0]
        channels = xv.shape[1]
        (xSigned, wSigned) = (xv.type.dtype == .int8, wv.type.dtype == .int8)
        let (requantizer, wScaleCount, bias) = try IntegerConvKernel.requantization(
            node, quantizedOutput: true, filters: channels, output: yv)
        guard let requantizer else { throw node.fail("QLinearConv needs its scales and zero points") }
        (self.requantizer, self.wScaleCount, self.bias) = (requantizer, wScaleCount, bias)
        guard try node.input(2).count == 1 else { throw node.fail("x_zero_point must be a scalar") }
        xZero = try IntParameters(try node.input(2), count: 1, node: node)
        let wZero = node.optionalInput(5)
        let wZeroCount = wZero?.count ?? 1
        guard wZeroCount == 1 || wZeroCount == channels else {
            throw node.fail("w_zero_point needs 1 or \(channels) values")
        }
        wZeros = try IntParameters(wZero, count: wZeroCount, node: node)
        x = UnsafePointer(try xv.pointer(UInt8.self))
        w = UnsafePointer(try wv.pointer(UInt8.self))
        y = try yv.raw()
        let g = geometry
        let elements = ck_depthwise_q_padded_elements(g.output[0], g.output[1], g.kernel[0], g.strides[0])
        let plane = g.output[0].multipliedReportingOverflow(by: g.output[1])
        guard elements < Int.max / 4, !plane.overflow, plane.partialValue < Int.max / 4 else {
            throw RuntimeError.outOfMemory(device: "cpu", bytes: Int.max)
        }
        // One scratch per thread (a split by output rows gives every thread a part, whatever the channel count).
        let workers = max(1, parallel.threads)
        // Multiply-adds, saturating: the sizes come from the model.
        let work = [plane.partialValue, g.kernel[0], g.kernel[0], batch].reduce(channels) {
            let (product, overflow) = $0.multipliedReportingOverflow(by: $1)
            return overflow ? Int.max : product
        }
        splits = parallel.threads > 1 && work >= 1 << 16
        let k = g.kernel[0], s = g.strides[0]
        let blockFloats = [3, 5, 7].contains(k) ? ck_depthwise_blocked_floats(g.output[0], g.output[1], k, s) : 0
        lanes = blockFloats > 0 && blockFloats < Int.max / 8 ? Int(ck_depthwise_blocked_q_lanes()) : 0
        blocks = lanes > 0 ? (channels + lanes - 1) / lanes : 0
        splitsRows = lanes > 0 && batch * blocks < parallel.threads && g.output[0] >= 2 * parallel.threads
        blockScratch = try (0..<(lanes > 0 ? workers : 0)).map { _ in try HostBuffer(bytes: blockFloats * 4) }
        padded = try (0..<(lanes > 0 ? 0 : workers)).map { _ in try HostBuffer(bytes: max(elements * 4, 1)) }
        sums = try (0..<(lanes > 0 ? 0 : workers)).map { _ in try HostBuffer(bytes: max(plane.partialValue * 4, 1)) }
        floatWeights = .allocate(capacity: max(channels * k * k, 1))
        floatWeights.initialize(repeating: 0, count: max(channels * k * k, 1))
        fixedParameters = wv.constant != nil && wZeros.isConstant && requantizer.constantMultipliers
        multipliers = .allocate(capacity: max(channels, 1))
        multipliers.initialize(repeating: 0, count: max(channels, 1))
        task = ClosureTask { [unowned self] worker, begin, end in
            if lanes == 0 {
                convolve(begin, end, worker: worker)
            } else if splitsRows {
                blocked(0, batch * blocks, rows: begin..<end, worker: worker)
            } else {
                blocked(begin, end, rows: 0..<geometry.output[0], worker: worker)
            }
        }
    }

    deinit {
        floatWeights.deallocate()
        multipliers.deallocate()
    }

    /// Channel blocks [begin, end) (image-major), output rows `rows`, channels in lanes.
    private func blocked(_ begin: Int, _ end: Int, rows: Range<Int>, worker: Int) {
        guard worker < blockScratch.count else { return }
        let g = geometry
        let inPlane = g.input[0] * g.input[1], outPlane = g.output[0] * g.output[1]
        let scratch = blockScratch[worker].pointer.assumingMemoryBound(to: Float.self)
        let rq = requantizer.tileRequantization(
            multipliers: UnsafePointer(multipliers), bias: bias, y: y, ldy: 0)
        let out = y.assumingMemoryBound(to: UInt8.self)
        for index in begin..<end {
            let n = index / blocks, c0 = (index % blocks) * lanes, c1 = min(channels, c0 + lanes)
            ck_depthwise_blocked_q(
                x + n * channels * inPlane, xSigned ? 1 : 0, xZero.values[0], floatWeights, multipliers, bias,
                rq.zero, rq.low, rq.high, rq.y_signed, out + n * channels * outPlane, c0, c1, g.input[0], g.input[1],
                g.kernel[0], g.strides[0], g.padsBegin[0], g.padsBegin[1], g.output[0], g.output[1], rows.lowerBound,
                rows.upperBound, scratch)
        }
    }

    /// (image, channel) pairs [begin, end), image-major.
    private func convolve(_ begin: Int, _ end: Int, worker: Int) {
        guard worker < padded.count, worker < sums.count else { return }
        let g = geometry
        let inPlane = g.input[0] * g.input[1], outPlane = g.output[0] * g.output[1]
        let scratch = padded[worker].pointer.assumingMemoryBound(to: Float.self)
        let acc = sums[worker].pointer.assumingMemoryBound(to: Int32.self)
        let k = g.kernel[0]
        for item in begin..<end {
            let c = item % channels
            ck_depthwise_q(
                x + item * inPlane, xSigned ? 1 : 0, xZero.values[0], g.input[0], g.input[1], w + c * k * k,
                wSigned ? 1 : 0, wZeros.values[wZeros.count == 1 ? 0 : c], k, g.strides[0], g.padsBegin[0],
                g.padsBegin[1], g.output[0], g.output[1], scratch, acc)
            requantizer.apply(
                sums: acc, n: outPlane, multiplier: requantizer.multiplier(wScaleCount == 1 ? 0 : c, 0),
                bias: bias.map { $0 + c }, y: y, offset: item * outPlane)
        }
    }

    func run() throws {
        xZero.refresh()
        wZeros.refresh()
        requantizer.refresh()
        guard let task else { return }
        let units: Int
        if lanes > 0 {
            let k = geometry.kernel[0], taps = k * k
            // Weights, zero points and scales from the model's constants are converted once, not on every run.
            for c in 0..<channels where !(fixedParameters && formed) {
                let zero = wZeros.values[wZeros.count == 1 ? 0 : c]
                for t in 0..<taps {
                    let value = wSigned ? Int32(Int8(bitPattern: w[c * taps + t])) : Int32(w[c * taps + t])
                    floatWeights[c * taps + t] = Float(value &- zero)
                }
                multipliers[c] = requantizer.multiplier(wScaleCount == 1 ? 0 : c, 0)
            }
            formed = true
            units = splitsRows ? geometry.output[0] : batch * blocks
        } else {
            units = batch * channels
        }
        if splits {
            parallel.run(task, count: units)
        } else {
            task.part(0, 0, units)
        }
    }
}
