import CKernels
import InferenceRuntime
import InferenceTensor

/// An integer convolution whose windows are read in place from a copy of the image (no im2col): `QuadIntegerConv`
/// on AVX-512 VNNI, `PairIntegerConv` on AVX2 without it.
protocol InPlaceIntegerConv: AnyObject {
    /// One image: x (C x H x W bytes) with zero point `xZero`, per-filter multipliers and int32 biases, the
    /// requantization's zero and bounds from `rq`, into y.
    func run(
        _ x: UnsafePointer<UInt8>, xZero: Int32, multipliers: UnsafePointer<Double>, bias: UnsafePointer<Int32>?,
        requant rq: ck_qrequant, into y: UnsafeMutableRawPointer, constantParameters: Bool)
}

extension QuadIntegerConv: InPlaceIntegerConv {}

/// QLinearConv without im2col on AVX2 machines without VNNI (`ck_qconv2_*`): the image copied once per run into
/// int16 pairs of channels less its zero point, the weights once less theirs (any zero points), each window read
/// from the copy in place by tiles of 6 filters x 16 positions. Serves one group of constant weights without
/// dilation at stride 1; `make` returns nil otherwise and the im2col path runs. On AVX2 the im2col path packed
/// every window's pixels as int16 per run and corrected each sum for both zero points in the tiles.
final class PairIntegerConv: InPlaceIntegerConv {
    private let parallel: ParallelFor
    private let channels: Int, inH: Int, inW: Int, padTop: Int, padLeft: Int, paddedH: Int, paddedW: Int
    private let pairs: Int, plane: Int
    private let xSigned: Bool
    private let image: HostBuffer, weights: HostBuffer
    private let offsets: UnsafeMutablePointer<Int64>
    private let conv: UnsafeMutablePointer<ck_qconv2>
    private var source: UnsafePointer<UInt8>?
    private var zero: Int32 = 0
    private var imageTask: ClosureTask?
    private var convTask: ClosureTask?

    /// Nil where this machine or layer is not served; throws only for memory the layer cannot have.
    static func make(
        _ g: QuadIntegerConv.Geometry, weights w: Tensor, wSigned: Bool, wZeros: UnsafePointer<Int32>,
        wZeroCount: Int, xSigned: Bool, parallel: ParallelFor
    ) throws -> PairIntegerConv? {
        guard ck_qconv2_available() != 0, g.stride == 1, g.channels > 0, g.filters > 0, g.outH > 0, g.outW > 0,
            g.kH > 0, g.kW > 0
        else { return nil }
        // Sizes from the model: any sum or product that overflows or exceeds 2^34 bytes leaves the layer to im2col.
        let paddedH = (g.outH - 1).addingReportingOverflow(g.kH), paddedW = (g.outW - 1).addingReportingOverflow(g.kW)
        guard !paddedH.overflow, !paddedW.overflow, paddedH.partialValue >= g.padTop + 1,
            paddedW.partialValue >= g.padLeft + 1
        else { return nil }
        let pairs = (g.channels + 1) / 2
        let plane = paddedH.partialValue.multipliedReportingOverflow(by: paddedW.partialValue)
        let imageBytes = plane.partialValue.multipliedReportingOverflow(by: pairs * 4)
        let taps = g.kH.multipliedReportingOverflow(by: g.kW)
        let kq = pairs.multipliedReportingOverflow(by: taps.partialValue)
        let weightBytes = kq.partialValue.multipliedReportingOverflow(by: ((g.filters + 5) / 6) * 24)
        guard !plane.overflow, !imageBytes.overflow, !taps.overflow, !kq.overflow, !weightBytes.overflow,
            imageBytes.partialValue <= 1 << 34, weightBytes.partialValue <= 1 << 34
        else { return nil }
        // Where the windows beat im2col (alternating runs over the layers of QDQ ResNet-18/50 and MobileNetV2): few
        // pairs per window and an image within the L2 cache. Each tile reads 16 positions of every channel pair's
        // plane; with hundreds of planes (a 256 -> 64 1x1 layer at 56x56: a 1.6 MB image) those reads miss where
        // the GEMM's packed panels stream, and from 576 pairs per window on the GEMM's aligned panel loads beat the
        // windows' unaligned ones (ResNet's 3x3 layers from 28x28 down: 15-20% slower in place).
        guard kq.partialValue <= 128 || pairs <= 32, imageBytes.partialValue <= 1 << 20 else { return nil }
        return try PairIntegerConv(
            g, paddedH: paddedH.partialValue, paddedW: paddedW.partialValue, weights: w, wSigned: wSigned,
            wZeros: wZeros, wZeroCount: wZeroCount, xSigned: xSigned, parallel: parallel)
    }

    private init(
        _ g: QuadIntegerConv.Geometry, paddedH: Int, paddedW: Int, weights w: Tensor, wSigned: Bool,
        wZeros: UnsafePointer<Int32>, wZeroCount: Int, xSigned: Bool, parallel: ParallelFor
    ) throws {
        self.parallel = parallel
        channels = g.channels
        (inH, inW, padTop, padLeft) = (g.inH, g.inW, g.padTop, g.padLeft)
        (self.paddedH, self.paddedW) = (paddedH, paddedW)
        pairs = (g.channels + 1) / 2
        plane = g.outH * g.outW
        self.xSigned = xSigned
        image = try HostBuffer(bytes: ck_qconv2_image_bytes(g.channels, paddedH, paddedW, g.kW))
        weights = try HostBuffer(bytes: ck_qconv2_weight_bytes(g.filters, g.channels, g.kH, g.kW))
        let taps = g.kH * g.kW
        offsets = .allocate(capacity: pairs * taps)
        // Where pair q of tap (ky, kx) lies from a position's index in the padded image.
        for q in 0..<pairs {
            for ky in 0..<g.kH {
                for kx in 0..<g.kW {
                    offsets[q * taps + ky * g.kW + kx] = Int64(q * paddedH * paddedW + ky * paddedW + kx)
                }
            }
        }
        let packed = weights.pointer.assumingMemoryBound(to: Int16.self)
        w.withUnsafeBytes { bytes in
            guard let base = bytes.baseAddress else { return }
            ck_qconv2_pack_weights(
                base, wSigned ? 1 : 0, wZeros, wZeroCount, g.filters, g.channels, g.kH, g.kW, packed)
        }
        conv = .allocate(capacity: 1)
        conv.initialize(
            to: ck_qconv2(
                image: UnsafePointer(image.pointer.assumingMemoryBound(to: Int32.self)), padded_w: paddedW,
                out_h: g.outH, out_w: g.outW, offsets: UnsafePointer(offsets), kq: pairs * taps,
                weights: UnsafePointer(weights.pointer.assumingMemoryBound(to: Int32.self)), filters: g.filters,
                rq: ck_qrequant()))
        imageTask = ClosureTask { [unowned self] _, begin, end in
            guard let source else { return }
            ck_qconv2_image(
                source, xSigned ? 1 : 0, zero, channels, inH, inW, padTop, padLeft, self.paddedH, self.paddedW,
                image.pointer.assumingMemoryBound(to: Int32.self), begin, end)
        }
        convTask = ClosureTask { [unowned self] _, begin, end in ck_qconv2_run(conv, begin, end) }
    }

    deinit {
        offsets.deallocate()
        conv.deallocate()
    }

    func run(
        _ x: UnsafePointer<UInt8>, xZero: Int32, multipliers: UnsafePointer<Double>, bias: UnsafePointer<Int32>?,
        requant rq: ck_qrequant, into y: UnsafeMutableRawPointer, constantParameters: Bool
    ) {
        source = x
        zero = xZero
        if let imageTask { parallel.run(imageTask, count: pairs) }
        source = nil
        var requant = rq
        requant.multiplier = multipliers
        requant.bias = bias
        requant.y = y
        requant.ldy = plane
        conv.pointee.rq = requant
        if let convTask { parallel.run(convTask, count: ck_qconv2_units(conv)) }
    }
}
