import CKernels
import InferenceGraph
import InferenceRuntime
import InferenceTensor

/// QLinearConv with one filter per channel (group = channels: the depthwise layers of MobileNets and EfficientNets
/// quantized in onnxruntime's QOperator format), square windows up to 7x7 at stride 1 or 2: each channel plane
/// directly (`ck_depthwise_q`, exact sums) and requantized at once, channels split across threads. The GEMM kernel
/// ran one 1-row GEMM per channel: QDQ MobileNetV2 with its depthwise layers planned into QLinearConv took 27.2 ms
/// that way and 10.4 ms with this kernel (one thread). QDQ models still keep these layers in float
/// (`QuantizedFusion`): DequantizeLinear, the channels-in-lanes float kernel and QuantizeLinear took 7.2 ms.
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
        let workers = max(1, min(parallel.threads, batch * channels))
        // Multiply-adds, saturating: the sizes come from the model.
        let work = [plane.partialValue, g.kernel[0], g.kernel[0], batch].reduce(channels) {
            let (product, overflow) = $0.multipliedReportingOverflow(by: $1)
            return overflow ? Int.max : product
        }
        splits = parallel.threads > 1 && work >= 1 << 16
        padded = try (0..<workers).map { _ in try HostBuffer(bytes: max(elements * 4, 1)) }
        sums = try (0..<workers).map { _ in try HostBuffer(bytes: max(plane.partialValue * 4, 1)) }
        task = ClosureTask { [unowned self] worker, begin, end in convolve(begin, end, worker: worker) }
    }

    /// (image, channel) pairs [begin, end), image-major.
    private func convolve(_ begin: Int, _ end: Int, worker: Int) {
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
        if splits {
            parallel.run(task, count: batch * channels)
        } else {
            task.part(0, 0, batch * channels)
        }
    }
}
