import CKernels
import InferenceGraph
import InferenceRuntime
import InferenceTensor

/// Depthwise 2-D convolution (group = input channels = output channels, one filter each), the layer of
/// MobileNets and EfficientNets: a direct kernel over each channel's rows (ck_depthwise_conv2d), split across
/// threads by (image, channel) blocks. im2col + GEMM would build a 9-row matrix per channel and run a one-row GEMM.
final class DepthwiseConvKernel: Kernel {
    private let x: UnsafePointer<Float>, w: UnsafePointer<Float>, bias: UnsafePointer<Float>?
    private let y: UnsafeMutablePointer<Float>
    private let geometry: ConvGeometry
    private let batch: Int, channels: Int
    /// The fused activation as the kernel applies it: a clamp to [low, high] (Relu, Clip), Swish or HardSwish.
    private let low: Float, high: Float
    /// The activation after the clamp, per row while in cache: 1 Swish, 2 HardSwish, 0 none (`ck_depthwise_after`).
    private let after: Int32
    /// A fused Clip or Swish, applied to each channel's plane right after it is computed (still in cache).
    private let activation: FusedActivation
    private let parallel: ParallelFor
    private var task: ClosureTask?
    /// Per worker: the zero-padded copy of one channel.
    private let padded: [HostBuffer]
    /// Channels in vector lanes (`ck_depthwise_blocked`) rather than one plane at a time.
    private let blocked: Bool
    /// Channels per block of the blocked kernel (0 when it does not run: the plane kernel's unit is one channel),
    /// the units a split divides, and whether a split divides output rows instead (fewer blocks than threads).
    private let lanes: Int
    private let units: Int
    private let splitsRows: Bool
    /// Whether planning passes the input, the output, channels last (`ChannelsLastChains`): the whole layer then
    /// runs in `ck_depthwise_nhwc`, split by output rows.
    private let channelsLast: (input: Bool, output: Bool)
    /// Multiply-adds of a run, saturating (the window comes from the model).
    private let work: Int

    /// 2-D, group equal to the input and output channel counts (depth multiplier 1).
    static func applies(_ node: BoundNode) throws -> Bool {
        guard let xv = node.optionalInput(0), let wv = node.optionalInput(1), xv.shape.rank == 4, wv.shape.rank == 4
        else { return false }
        let groups = try node.attributes.int("group", default: 1)
        return groups > 1 && groups == xv.shape[1] && wv.shape[0] == groups && wv.shape[1] == 1
    }

    init(node: BoundNode, parallel: ParallelFor) throws {
        self.parallel = parallel
        activation = try node.fusedActivation()
        switch activation.kind {
        case ck_activation_relu: (low, high) = (0, .infinity)
        case ck_activation_clip: (low, high) = (activation.low, activation.high)
        default: (low, high) = (-.infinity, .infinity)
        }
        after = activation.kind == ck_activation_swish ? 1 : activation.kind == ck_activation_hard_swish ? 2 : 0
        let xv = try node.input(0), wv = try node.input(1), yv = try node.output(0)
        geometry = try node.parameters(ConvGeometry.self)
        batch = xv.shape[0]
        channels = xv.shape[1]
        x = UnsafePointer(try xv.pointer(Float.self))
        w = UnsafePointer(try wv.pointer(Float.self))
        bias = try node.optionalInput(2).map { UnsafePointer(try $0.pointer(Float.self)) }
        y = try yv.pointer(Float.self)
        let g = geometry
        channelsLast = (
            try node.attributes.int(FusionRules.channelsLastInputAttribute, default: 0) != 0,
            try node.attributes.int(FusionRules.channelsLastOutputAttribute, default: 0) != 0
        )
        // The padded plane serves only the unrolled shapes (3x3/5x5/7x7, stride 1 or 2, no dilation), whose size
        // is bounded by the output's; other shapes get none (sizes from a model can be anything).
        let unrolled =
            g.kernel[0] == g.kernel[1] && [3, 5, 7].contains(g.kernel[0]) && g.strides[0] == g.strides[1]
            && [1, 2].contains(g.strides[0]) && g.dilations == [1, 1]
        // Channels in lanes win for stride 2 (no even/odd column split), for narrow planes (no fixed cost per
        // channel), and since whole blocks skip the per-lane conditions, for wide stride-1 planes too: MobileNetV2's
        // 144 channels at 56x56 0.33 -> 0.19 ms with AVX2, 0.21 ms either way with AVX-512 (`inference profile`,
        // one thread). The per-plane kernel serves the other shapes and machines without AVX2. (Inside
        // ck_depthwise_blocked, 3x3 stride-1 windows over rows of 48 and more run per channel without transposes.)
        blocked = unrolled
        let floats =
            !unrolled
            ? 0
            // The plane kernel's scratch too: without AVX2 the blocked kernel declines and the plane kernel runs.
            : [
                blocked ? ck_depthwise_blocked_floats(g.output[0], g.output[1], g.kernel[0], g.strides[0]) : 0,
                ck_depthwise_padded_floats(
                    g.output[0], g.output[1], g.kernel[0], g.kernel[1], g.strides[0], g.strides[1]),
            ].reduce(0) { $0 < 0 || $1 < 0 ? -1 : max($0, $1) }
        // SIZE_MAX (a size that does not fit) arrives as -1.
        guard floats >= 0, floats < Int.max / 8 else { throw RuntimeError.outOfMemory(device: "cpu", bytes: Int.max) }
        // One scratch per thread: a split by output rows gives every thread a part even when the channels are
        // fewer than the threads (two channels on four threads left two parts' rows unwritten).
        let workers = max(1, parallel.threads)
        padded = try (0..<(unrolled ? workers : 0)).map { _ in try HostBuffer(bytes: max(floats, 1) * 4) }
        // The blocked kernel's channel blocks are the unit of a split: a split inside a block gave each thread a
        // part-filled block costing as much as a full one (16 channels on two threads ran no faster than on one).
        lanes = blocked ? Int(ck_depthwise_blocked_lanes(g.kernel[0], g.output[1])) : 0
        let units = lanes > 0 ? batch * ((channels + lanes - 1) / lanes) : batch * channels
        self.units = units
        // Fewer blocks than threads (MobileNetV3's 16 channels at 112x112 with AVX-512: one block): output rows.
        splitsRows =
            (lanes > 0 && units < parallel.threads && g.output[0] >= 2 * parallel.threads && workers > 1)
            || (channelsLast.input || channelsLast.output)
        work = [g.output[0], g.output[1], g.kernel[0], g.kernel[1]].reduce(batch * channels) {
            let (product, overflow) = $0.multipliedReportingOverflow(by: $1)
            return overflow ? Int.max : product
        }
        if channelsLast.input || channelsLast.output {
            // Planning marks only the shapes the channels-last kernel runs; a model that names the attributes on
            // others is refused here rather than read in the wrong layout.
            guard unrolled, batch == 1, ck_depthwise_nhwc_lanes() > 0 else {
                throw node.fail(
                    "channels-last depthwise convolution needs one image, a 3x3, 5x5 or 7x7 window, stride 1 or 2, no "
                        + "dilation and AVX2; remove the \(FusionRules.channelsLastInputAttribute) and "
                        + "\(FusionRules.channelsLastOutputAttribute) attributes")
            }
        }
        task = ClosureTask { [unowned self] part, begin, end in
            if splitsRows {
                rows(begin..<end, part: part)
            } else {
                convolve(begin, end, part: part)
            }
        }
    }

    /// Output rows `range` of every channel of every image (the blocked kernel only).
    private func rows(_ range: Range<Int>, part: Int) {
        guard part < padded.count else { return }
        let scratch = padded[part].pointer.assumingMemoryBound(to: Float.self)
        let g = geometry
        if channelsLast.input || channelsLast.output {
            // One image (checked at plan time); the kernel declines nothing `init` accepted.
            _ = ck_depthwise_nhwc(
                x, w, bias, y, channels, g.input[0], g.input[1], g.kernel[0], g.strides[0], g.padsBegin[0],
                g.padsBegin[1], g.output[0], g.output[1], range.lowerBound, range.upperBound, low, high, after,
                channelsLast.input ? 1 : 0, channelsLast.output ? 1 : 0, scratch)
            return
        }
        let inCount = g.input[0] * g.input[1], outCount = g.output[0] * g.output[1]
        for n in 0..<batch {
            let done = ck_depthwise_blocked(
                x + n * channels * inCount, w, bias, y + n * channels * outCount, 0, channels, g.input[0], g.input[1],
                g.kernel[0], g.strides[0], g.padsBegin[0], g.padsBegin[1], g.output[0], g.output[1], range.lowerBound,
                range.upperBound, low, high, after, scratch)
            // Declined (it does not for the shapes `lanes` is set for): the part with row 0 runs the plane kernel.
            if done == 0 && range.lowerBound == 0 {
                ck_depthwise_conv2d(
                    x + n * channels * inCount, w, bias, y + n * channels * outCount, 0, channels, g.input[0],
                    g.input[1], g.kernel[0], g.kernel[1], g.strides[0], g.strides[1], g.dilations[0], g.dilations[1],
                    g.padsBegin[0], g.padsBegin[1], g.output[0], g.output[1], low, high, after, scratch)
            }
        }
    }

    /// Units [begin, end), flattened image-major: channel blocks of `lanes` channels for the blocked kernel, single
    /// channels for the plane kernel.
    private func convolve(_ begin: Int, _ end: Int, part: Int) {
        let scratch = part < padded.count ? padded[part].pointer.assumingMemoryBound(to: Float.self) : nil
        let g = geometry
        let inCount = g.input[0] * g.input[1], outCount = g.output[0] * g.output[1]
        let unit = max(lanes, 1)
        let perImage = (channels + unit - 1) / unit
        var index = begin
        while index < end {
            let n = index / perImage
            let c0 = (index % perImage) * unit
            let c1 = min(channels, ((index % perImage) + min(end - index, perImage - index % perImage)) * unit)
            let out = y + n * channels * outCount
            // Relu and Clip (Relu6) are a clamp in the kernel's store, Swish and HardSwish a pass over each row while
            // it is in L1.
            if blocked, let scratch,
                ck_depthwise_blocked(
                    x + n * channels * inCount, w, bias, out, c0, c1, g.input[0], g.input[1], g.kernel[0],
                    g.strides[0], g.padsBegin[0], g.padsBegin[1], g.output[0], g.output[1], 0, g.output[0], low, high,
                    after, scratch) != 0
            {
                index += (c1 - c0 + unit - 1) / unit
                continue
            }
            ck_depthwise_conv2d(
                x + n * channels * inCount, w, bias, out, c0, c1, g.input[0], g.input[1], g.kernel[0], g.kernel[1],
                g.strides[0], g.strides[1], g.dilations[0], g.dilations[1], g.padsBegin[0], g.padsBegin[1],
                g.output[0], g.output[1], low, high, after, scratch)
            index += (c1 - c0 + unit - 1) / unit
        }
    }

    func run() throws {
        if parallel.threads > 1 && work >= 1 << 16, let task {
            parallel.run(task, count: splitsRows ? geometry.output[0] : units)
        } else if channelsLast.input || channelsLast.output {
            rows(0..<geometry.output[0], part: 0)
        } else {
            convolve(0, units, part: 0)
        }
    }
}
