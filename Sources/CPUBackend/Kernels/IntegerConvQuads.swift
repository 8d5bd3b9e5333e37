import CKernels
import InferenceRuntime
import InferenceTensor

/// QLinearConv without im2col on AVX-512 VNNI machines (`ck_qconv4_*`): the image copied once per run into quads of
/// channels, each window read from it in place, filters as the tiles' columns. Serves one group of constant weights
/// whose zero points are 0 in the packed (signed) domain, no dilation, stride 1 or 2; `make` returns nil otherwise
/// and the im2col path runs. The im2col path packed nine copies of a 3x3 layer's image per run (a 64-channel 56x56
/// layer: 0.16 of its 0.73 ms).
final class QuadIntegerConv {
    private let parallel: ParallelFor
    private let channels: Int, inH: Int, inW: Int, padTop: Int, padLeft: Int, paddedH: Int, paddedW: Int
    private let filters: Int, paddedFilters: Int, quads: Int
    private let xSigned: Bool
    private let image: HostBuffer, weights: HostBuffer, scratch: HostBuffer
    private let weightSums: UnsafeMutablePointer<Int32>
    private let offsets: UnsafeMutablePointer<Int64>
    private let bias: UnsafeMutablePointer<Int32>
    private let multiplierF: UnsafeMutablePointer<Float>
    private let multiplier: UnsafeMutablePointer<Double>
    /// MatMulInteger's column scales (`runScaled`); nil where the output is requantized bytes.
    private let scales: UnsafeMutablePointer<Float>?
    private let conv: UnsafeMutablePointer<ck_qconv4>
    private var source: UnsafePointer<UInt8>?
    private var pad: UInt8 = 0
    /// The shifted image zero point the per-filter arrays were formed for, when they are constant.
    private var preparedZero: Int32?
    /// The shifted image zero point `runScaled` folded into the bias (nil before its first run, or after `run`).
    private var scaledZero: Int32?
    /// Channels last in and out (`FusionRules.channelsLastInputAttribute` / `...OutputAttribute`); a channels-last
    /// 1x1 layer without padding reads its input in place (no copy).
    let inputChannelsLast: Bool, outputChannelsLast: Bool, readsInPlace: Bool
    private var imageTask: ClosureTask?
    private var convTask: ClosureTask?

    /// The geometry of one 2-D (or 1-D as height 1) convolution, in the kernel's terms.
    struct Geometry {
        var channels: Int, inH: Int, inW: Int, filters: Int, kH: Int, kW: Int, stride: Int
        var padTop: Int, padLeft: Int, outH: Int, outW: Int
    }

    /// Nil where this machine or layer is not served; throws only for memory the layer cannot have.
    static func make(
        _ g: Geometry, weights w: Tensor, wSigned: Bool, xSigned: Bool, parallel: ParallelFor,
        inputChannelsLast: Bool = false, outputChannelsLast: Bool = false, scaledOutput: Bool = false
    ) throws -> QuadIntegerConv? {
        guard ck_qconv4_available() != 0, g.stride == 1 || g.stride == 2, g.channels > 0, g.filters > 0,
            g.outH > 0, g.outW > 0
        else { return nil }
        // Channels last, each position's channels are read four at a time in place: unsigned and whole quads.
        if inputChannelsLast, xSigned || g.channels % 4 != 0 { return nil }
        let paddedH = (g.outH - 1) * g.stride + g.kH, paddedW = (g.outW - 1) * g.stride + g.kW
        // Sizes from the model: any product that overflows or exceeds 2^34 bytes leaves the layer to im2col.
        let quads = (g.channels + 3) / 4
        let plane = paddedH.multipliedReportingOverflow(by: paddedW)
        let imageBytes = plane.partialValue.multipliedReportingOverflow(by: quads * 4)
        let taps = g.kH.multipliedReportingOverflow(by: g.kW)
        let kq = quads.multipliedReportingOverflow(by: taps.partialValue)
        let weightBytes = kq.partialValue.multipliedReportingOverflow(by: ((g.filters + 15) / 16) * 1024)
        guard !plane.overflow, !imageBytes.overflow, !taps.overflow, !kq.overflow, !weightBytes.overflow,
            imageBytes.partialValue <= 1 << 34, weightBytes.partialValue <= 1 << 34,
            paddedH >= g.padTop + 1, paddedW >= g.padLeft + 1
        else { return nil }
        return try QuadIntegerConv(
            g, paddedH: paddedH, paddedW: paddedW, weights: w, wSigned: wSigned, xSigned: xSigned, parallel: parallel,
            inputChannelsLast: inputChannelsLast, outputChannelsLast: outputChannelsLast || scaledOutput,
            scaledOutput: scaledOutput)
    }

    private init(
        _ g: Geometry, paddedH: Int, paddedW: Int, weights w: Tensor, wSigned: Bool, xSigned: Bool,
        parallel: ParallelFor, inputChannelsLast: Bool, outputChannelsLast: Bool, scaledOutput: Bool
    ) throws {
        self.parallel = parallel
        self.inputChannelsLast = inputChannelsLast
        self.outputChannelsLast = outputChannelsLast
        readsInPlace =
            inputChannelsLast && g.kH == 1 && g.kW == 1 && g.stride == 1 && g.padTop == 0 && g.padLeft == 0
            && paddedH == g.inH && paddedW == g.inW
        channels = g.channels
        (inH, inW, padTop, padLeft) = (g.inH, g.inW, g.padTop, g.padLeft)
        (self.paddedH, self.paddedW) = (paddedH, paddedW)
        filters = g.filters
        paddedFilters = (g.filters + 15) / 16 * 16
        quads = (g.channels + 3) / 4
        self.xSigned = xSigned
        image = try HostBuffer(bytes: readsInPlace ? 1 : ck_qconv4_image_bytes(g.channels, paddedH, paddedW))
        weights = try HostBuffer(bytes: ck_qconv4_weight_bytes(g.filters, g.channels, g.kH, g.kW))
        scratch = try HostBuffer(bytes: ck_qconv4_scratch_bytes() * max(parallel.threads, 1))
        weightSums = .allocate(capacity: paddedFilters)
        weightSums.initialize(repeating: 0, count: paddedFilters)
        let taps = g.kH * g.kW
        offsets = .allocate(capacity: quads * taps)
        // Where quad q of tap (ky, kx) lies from a window's corner: quad planes of padded_h x padded_w positions of
        // four bytes, or channels last (positions of C bytes, the quad at 4q).
        let planeBytes = paddedH * paddedW * 4
        for q in 0..<quads {
            for ky in 0..<g.kH {
                for kx in 0..<g.kW {
                    offsets[q * taps + ky * g.kW + kx] = Int64(
                        inputChannelsLast
                            ? (ky * paddedW + kx) * g.channels + 4 * q : q * planeBytes + (ky * paddedW + kx) * 4)
                }
            }
        }
        bias = .allocate(capacity: paddedFilters)
        bias.initialize(repeating: 0, count: paddedFilters)
        multiplierF = .allocate(capacity: paddedFilters)
        multiplierF.initialize(repeating: 0, count: paddedFilters)
        multiplier = .allocate(capacity: paddedFilters)
        multiplier.initialize(repeating: 0, count: paddedFilters)
        if scaledOutput {
            let values = UnsafeMutablePointer<Float>.allocate(capacity: paddedFilters)
            values.initialize(repeating: 0, count: paddedFilters)
            scales = values
        } else {
            scales = nil
        }
        let (packed, sums) = (weights.pointer.assumingMemoryBound(to: Int8.self), weightSums)
        w.withUnsafeBytes { bytes in
            guard let base = bytes.baseAddress else { return }
            ck_qconv4_pack_weights(base, wSigned ? 1 : 0, g.filters, g.channels, g.kH, g.kW, packed, sums)
        }
        conv = .allocate(capacity: 1)
        conv.initialize(
            to: ck_qconv4(
                image: UnsafePointer(image.pointer.assumingMemoryBound(to: UInt8.self)),
                position_bytes: inputChannelsLast ? g.channels : 4, padded_w: paddedW,
                stride: g.stride, out_h: g.outH, out_w: g.outW, offsets: UnsafePointer(offsets), kq: quads * taps,
                weights: UnsafePointer(packed), filters: g.filters, bias: UnsafePointer(bias),
                multiplier_f: UnsafePointer(multiplierF), multiplier: UnsafePointer(multiplier), zero: 0, low: 0,
                high: 0, y: nil, y_nhwc: outputChannelsLast ? 1 : 0, scale: scales.map { UnsafePointer($0) },
                scratch: scratch.pointer.assumingMemoryBound(to: UInt8.self)))
        imageTask = ClosureTask { [unowned self] _, begin, end in
            guard let source else { return }
            let out = image.pointer.assumingMemoryBound(to: UInt8.self)
            if self.inputChannelsLast {
                ck_qconv4_image_nhwc(
                    source, channels, inH, inW, padTop, padLeft, self.paddedH, self.paddedW, pad, out, begin, end)
            } else {
                ck_qconv4_image(
                    source, xSigned ? 1 : 0, channels, inH, inW, padTop, padLeft, self.paddedH, self.paddedW, pad, out,
                    begin, end)
            }
        }
        convTask = ClosureTask { [unowned self] part, begin, end in ck_qconv4_run(conv, begin, end, part) }
    }

    deinit {
        weightSums.deallocate()
        offsets.deallocate()
        bias.deallocate()
        multiplierF.deallocate()
        multiplier.deallocate()
        scales?.deallocate()
        conv.deallocate()
    }

    /// One image: x (C x H x W bytes, or H x W x C channels last) with zero point `xZero`, per-filter multipliers and int32 biases, the
    /// requantization's zero and bounds from `rq`, into y (F x outH x outW bytes, or outH x outW x F).
    /// With `constantParameters` (multipliers and bias the same every run) the per-filter arrays are formed once per
    /// image zero point: a 1 x 768 x 3072 QLinearMatMul spent a third of its time re-forming 3072 of them.
    func run(
        _ x: UnsafePointer<UInt8>, xZero: Int32, multipliers: UnsafePointer<Double>, bias b: UnsafePointer<Int32>?,
        requant rq: ck_qrequant, into y: UnsafeMutableRawPointer, constantParameters: Bool = false
    ) {
        // In the unsigned domain the image's zero point is za' (signed bytes are flipped): sum (a' - za') w' is
        // sum a' w' - za' · sum w', the second term folded into the bias.
        let shifted = xZero &+ (xSigned ? 128 : 0)
        if !constantParameters || preparedZero != shifted {
            for f in 0..<filters {
                bias[f] = (b?[f] ?? 0) &- shifted &* weightSums[f]
                multiplier[f] = multipliers[f]
                multiplierF[f] = Float(multipliers[f])
            }
            preparedZero = constantParameters ? shifted : nil
            scaledZero = nil
        }
        conv.pointee.zero = rq.zero
        conv.pointee.low = rq.low
        conv.pointee.high = rq.high
        convolve(x, zero: shifted, into: y)
    }

    /// MatMulInteger with its Cast and Mul (`runScaled` of a kernel made with `scaledOutput`): y = float(sum) ·
    /// scale[f] as floats, channels last; `scale` holds 1 or F values.
    func runScaled(
        _ x: UnsafePointer<UInt8>, xZero: Int32, scale: UnsafePointer<Float>, count: Int,
        into y: UnsafeMutableRawPointer
    ) {
        guard let scales else { return }
        let shifted = xZero &+ (xSigned ? 128 : 0)
        // The folded bias depends on the zero point only (formed again when it changes); the scales change with
        // every input's dynamic scale. Two plain loops: the one with both, a select per value, cost a 1 x 768 x 3072
        // product a fifth of its time.
        if scaledZero != shifted {
            for f in 0..<filters { bias[f] = 0 &- shifted &* weightSums[f] }
            scaledZero = shifted
        }
        if count == 1 {
            scales.update(repeating: scale[0], count: filters)
        } else {
            scales.update(from: scale, count: filters)
        }
        preparedZero = nil
        convolve(x, zero: shifted, into: y)
    }

    private func convolve(_ x: UnsafePointer<UInt8>, zero shifted: Int32, into y: UnsafeMutableRawPointer) {
        pad = UInt8(truncatingIfNeeded: shifted)
        if readsInPlace {
            conv.pointee.image = x
        } else {
            source = x
            if let imageTask { parallel.run(imageTask, count: inputChannelsLast ? paddedH : quads) }
            source = nil
            conv.pointee.image = UnsafePointer(image.pointer.assumingMemoryBound(to: UInt8.self))
        }
        conv.pointee.y = y.assumingMemoryBound(to: UInt8.self)
        if let convTask { parallel.run(convTask, count: ck_qconv4_units(conv)) }
    }
}
