import CKernels
import InferenceGraph
import InferenceRuntime
import InferenceTensor

/// `QuantizedFusion.qdqDepthwiseConv`: DequantizeLinear → depthwise Conv → [Relu] → QuantizeLinear as one kernel, the
/// depthwise layers of QDQ MobileNets. The float depthwise kernel's channels-in-lanes body
/// (`ck_depthwise_blocked_dq`) reads the bytes, dequantizing them on their way into its strip, and quantizes its
/// clamped results on their way back to the planes: the three nodes' values, without writing the float input (four
/// times the bytes) and reading it back, nor the float output. Split across threads as `DepthwiseConvKernel` splits
/// (channel blocks, or output rows when the blocks are fewer than the threads). Shapes and machines that kernel does
/// not serve run the three steps one after another on float buffers (`ck_dequantize_8`, `ck_depthwise_conv2d`,
/// `ck_quantize_f32`), as the unfused nodes would.
final class QDQDepthwiseKernel: Kernel {
    private let x: UnsafePointer<UInt8>, w: UnsafePointer<Float>, bias: UnsafePointer<Float>?
    private let y: UnsafeMutablePointer<UInt8>
    private let xSigned: Bool, ySigned: Bool
    private let xScale: FloatParameters, xZero: IntParameters, yScale: FloatParameters, yZero: IntParameters
    private let range: ClosedRange<Float>
    private let geometry: ConvGeometry
    private let batch: Int, channels: Int
    /// The Conv's fused Relu as the float kernel's clamp.
    private let low: Float
    private let parallel: ParallelFor
    private var task: ClosureTask?
    /// Channels per block (0: the fallback runs), the units a split divides, whether it divides output rows, and
    /// whether the work pays for waking the pool (decided once, here).
    private let lanes: Int, units: Int, splitsRows: Bool, splits: Bool
    /// Per worker: the kernel's scratch (or the fallback's padded plane).
    private let scratch: [HostBuffer]
    /// The fallback's float input and output (empty where the blocked kernel runs).
    private let floatInput: HostBuffer?, floatOutput: HostBuffer?
    /// Planning's marks inside int8 chains (`QuantizedChannelsLast`): the input, the output channels last.
    private let inputChannelsLast: Bool, outputChannelsLast: Bool

    init(node: BoundNode, parallel: ParallelFor) throws {
        self.parallel = parallel
        let xv = try node.input(0), wv = try node.input(3), yv = try node.output(0)
        guard [.uint8, .int8].contains(xv.type.dtype), [.uint8, .int8].contains(yv.type.dtype),
            wv.type.dtype == .float32, xv.shape.rank == 4, wv.shape.rank == 4
        else { throw node.fail("needs an int8 or uint8 image and output and float32 weights [C, 1, kH, kW]") }
        let groups = try node.attributes.int("group", default: 1)
        guard groups == xv.shape[1], wv.shape[0] == groups, wv.shape[1] == 1 else {
            throw node.fail("needs one filter per channel (group = channels)")
        }
        geometry = try node.parameters(ConvGeometry.self)
        batch = xv.shape[0]
        channels = xv.shape[1]
        xSigned = xv.type.dtype == .int8
        ySigned = yv.type.dtype == .int8
        x = UnsafePointer(try xv.raw().assumingMemoryBound(to: UInt8.self))
        y = try yv.raw().assumingMemoryBound(to: UInt8.self)
        w = UnsafePointer(try wv.pointer(Float.self))
        if let b = node.optionalInput(4) {
            guard b.type.dtype == .float32, b.count == channels else {
                throw node.fail("the bias must be float32 with \(channels) values")
            }
            bias = UnsafePointer(try b.pointer(Float.self))
        } else {
            bias = nil
        }
        xScale = try FloatParameters(try node.input(1), count: 1)
        xZero = try IntParameters(try node.input(2), count: 1, node: node)
        yScale = try FloatParameters(try node.input(5), count: 1)
        yZero = try IntParameters(try node.input(6), count: 1, node: node)
        range = try QuantizationKernels.integerRange(yv.type.dtype, node: node)
        low = try node.attributes.int(QuantizedFusion.reluAttribute, default: 0) != 0 ? 0 : -.infinity
        let g = geometry
        let unrolled =
            g.kernel[0] == g.kernel[1] && [3, 5, 7].contains(g.kernel[0]) && g.strides[0] == g.strides[1]
            && [1, 2].contains(g.strides[0]) && g.dilations == [1, 1]
        inputChannelsLast = try node.attributes.int(FusionRules.channelsLastInputAttribute, default: 0) != 0
        outputChannelsLast = try node.attributes.int(FusionRules.channelsLastOutputAttribute, default: 0) != 0
        let channelsLast = inputChannelsLast || outputChannelsLast
        if channelsLast, !unrolled || ck_depthwise_dq_nhwc_available() == 0 {
            let attribute =
                inputChannelsLast ? FusionRules.channelsLastInputAttribute : FusionRules.channelsLastOutputAttribute
            throw node.fail(
                "'\(attribute)' is planning's mark for a 3x3, 5x5 or 7x7 window at stride 1 or 2 where AVX-512 runs; "
                    + "remove the attribute")
        }
        lanes = channelsLast ? 16 : unrolled ? Int(ck_depthwise_blocked_lanes(g.kernel[0], g.output[1])) : 0
        let workers = max(1, parallel.threads)
        // As DepthwiseConvKernel sizes them (SIZE_MAX arrives as -1).
        let floats =
            lanes > 0
            ? [
                ck_depthwise_blocked_floats(g.output[0], g.output[1], g.kernel[0], g.strides[0]),
                ck_depthwise_padded_floats(
                    g.output[0], g.output[1], g.kernel[0], g.kernel[1], g.strides[0], g.strides[1]),
            ].reduce(0) { $0 < 0 || $1 < 0 ? -1 : max($0, $1) }
            : (unrolled
                ? ck_depthwise_padded_floats(
                    g.output[0], g.output[1], g.kernel[0], g.kernel[1], g.strides[0], g.strides[1]) : 0)
        guard floats >= 0, floats < Int.max / 8 else { throw RuntimeError.outOfMemory(device: "cpu", bytes: Int.max) }
        scratch = try (0..<(unrolled ? workers : 0)).map { _ in try HostBuffer(bytes: max(floats, 1) * 4) }
        if lanes == 0 {
            floatInput = try HostBuffer(bytes: max(xv.count, 1) * 4)
            floatOutput = try HostBuffer(bytes: max(yv.count, 1) * 4)
        } else {
            floatInput = nil
            floatOutput = nil
        }
        units = lanes > 0 ? batch * ((channels + lanes - 1) / lanes) : 1
        // Channels last, threads take bands of rows (each reads and writes whole positions); in planes, channel
        // blocks unless they are fewer than the threads.
        splitsRows =
            lanes > 0 && (units < parallel.threads || channelsLast) && g.output[0] >= 2 * parallel.threads
            && workers > 1
        // Multiply-adds, saturating (the window comes from the model).
        var work = batch * channels
        for factor in [g.output[0], g.output[1], g.kernel[0], g.kernel[1]] {
            let (product, overflow) = work.multipliedReportingOverflow(by: factor)
            work = overflow ? Int.max : product
        }
        splits = lanes > 0 && parallel.threads > 1 && work >= 1 << 16 && scratch.count >= parallel.threads
        if lanes > 0 {
            task = ClosureTask { [unowned self] part, begin, end in
                if splitsRows {
                    for n in 0..<batch { convolve(image: n, channels: 0..<channels, rows: begin..<end, part: part) }
                } else {
                    blocks(begin, end, part: part)
                }
            }
        }
    }

    /// Units [begin, end): channel blocks of `lanes` channels, image-major.
    private func blocks(_ begin: Int, _ end: Int, part: Int) {
        let perImage = (channels + lanes - 1) / lanes
        var index = begin
        while index < end {
            let n = index / perImage, first = index % perImage
            let count = min(end - index, perImage - first)
            convolve(
                image: n, channels: (first * lanes)..<min(channels, (first + count) * lanes),
                rows: 0..<geometry.output[0], part: part)
            index += count
        }
    }

    private func convolve(image n: Int, channels block: Range<Int>, rows: Range<Int>, part: Int) {
        guard part < scratch.count else { return }
        let g = geometry
        let inCount = g.input[0] * g.input[1], outCount = g.output[0] * g.output[1]
        if inputChannelsLast || outputChannelsLast {
            _ = ck_depthwise_dq_nhwc(
                x + n * channels * inCount, xSigned ? 1 : 0, xZero.values[0], xScale.values[0], w, bias,
                y + n * channels * outCount, ySigned ? 1 : 0, Float(yZero.values[0]), yScale.values[0],
                range.lowerBound, range.upperBound, channels, block.lowerBound, block.upperBound, g.input[0],
                g.input[1], g.kernel[0], g.strides[0], g.padsBegin[0], g.padsBegin[1], g.output[0], g.output[1],
                rows.lowerBound, rows.upperBound, low, .infinity, inputChannelsLast ? 1 : 0, outputChannelsLast ? 1 : 0,
                scratch[part].pointer.assumingMemoryBound(to: Float.self))
            return
        }
        _ = ck_depthwise_blocked_dq(
            x + n * channels * inCount, xSigned ? 1 : 0, xZero.values[0], xScale.values[0], w, bias,
            y + n * channels * outCount, ySigned ? 1 : 0, Float(yZero.values[0]), yScale.values[0], range.lowerBound,
            range.upperBound, block.lowerBound, block.upperBound, g.input[0], g.input[1], g.kernel[0], g.strides[0],
            g.padsBegin[0], g.padsBegin[1], g.output[0], g.output[1], rows.lowerBound, rows.upperBound, low,
            .infinity, scratch[part].pointer.assumingMemoryBound(to: Float.self))
    }

    func run() throws {
        xScale.refresh()
        xZero.refresh()
        yScale.refresh()
        yZero.refresh()
        guard lanes > 0, let task else { return fallback() }
        if splits {
            parallel.run(task, count: splitsRows ? geometry.output[0] : units)
        } else {
            blocks(0, units, part: 0)
        }
    }

    /// The three nodes' steps on float buffers: other windows, strides and dilations, machines without AVX2.
    private func fallback() {
        guard let floatInput, let floatOutput else { return }
        let g = geometry
        let inCount = g.input[0] * g.input[1], outCount = g.output[0] * g.output[1]
        let xf = floatInput.pointer.assumingMemoryBound(to: Float.self)
        let yf = floatOutput.pointer.assumingMemoryBound(to: Float.self)
        ck_dequantize_8(x, xSigned ? 1 : 0, batch * channels * inCount, xZero.values[0], xScale.values[0], xf)
        let padded = scratch.first.map { $0.pointer.assumingMemoryBound(to: Float.self) }
        for n in 0..<batch {
            ck_depthwise_conv2d(
                xf + n * channels * inCount, w, bias, yf + n * channels * outCount, 0, channels, g.input[0],
                g.input[1], g.kernel[0], g.kernel[1], g.strides[0], g.strides[1], g.dilations[0], g.dilations[1],
                g.padsBegin[0], g.padsBegin[1], g.output[0], g.output[1], low, .infinity, 0, padded)
        }
        ck_quantize_f32(
            yf, batch * channels * outCount, yScale.values[0], yZero.values[0], Int32(range.lowerBound),
            Int32(range.upperBound), y, ySigned ? 1 : 0)
    }
}
