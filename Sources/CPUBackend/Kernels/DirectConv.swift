import CKernels
import InferenceGraph
import InferenceRuntime
import InferenceTensor

/// Direct convolution for few input channels per group (no dilation): im2col would hand the GEMM a K of only
/// C·KH·KW (9 for the first layer of a grayscale CNN), too short to amortize its tile loads and stores, while each
/// output row here accumulates C·KH·KW shifted input rows in vector registers. Three cases: few input channels at
/// stride 1 (or a 3x3 window over at most 16 channels); stride-2 stems (1-4 channels); grouped convolutions with at most 16 channels per group (RegNet,
/// ResNeXt), one group at a time. Filters split across threads at batch 1 with one group, else (image, group)
/// pairs.
final class DirectConvKernel: Kernel {
    /// Whether the direct kernel applies (and, for `automatic`, is chosen).
    static func applies(_ node: BoundNode, algorithm: ConvolutionAlgorithm) throws -> Bool {
        guard algorithm == .automatic || algorithm == .direct, let x = node.inputs.first.flatMap({ $0 }),
            node.inputs.count > 1, let w = node.inputs[1], x.shape.rank == 4, w.shape.rank == 4
        else { return false }
        let groups = try node.attributes.int("group", default: 1)
        guard groups >= 1, x.shape[1] % groups == 0, w.shape[0] % groups == 0, w.shape[1] * groups == x.shape[1]
        else { return false }
        let geometry = try node.parameters(ConvGeometry.self)
        let kernel = geometry.kernel
        guard geometry.dilations == [1, 1], geometry.strides == [1, 1] || geometry.strides == [2, 2] else {
            return false
        }
        if groups > 1 {
            // Grouped (not depthwise, which has its own kernel): each group a small dense convolution.
            return w.shape[1] > 1 && w.shape[1] <= 16 && kernel[0] <= 7 && kernel[1] <= 7
        }
        if geometry.strides == [2, 2] {
            // Stems (RGB in, stride 2, 3x3 to 7x7): im2col's columns would be the whole image several times over.
            return x.shape[1] <= 4 && kernel[0] <= 7 && kernel[1] <= 7
        }
        // 3x3 over at most 16 channels too: Winograd's 16 GEMMs then have K <= 16 and its transforms cost more
        // than they save (SqueezeNet's 16 -> 64 at 55x55: Winograd 0.70 ms, direct 0.59, im2col 0.84 with AVX-512
        // at one thread; 0.44 -> 0.32 at two; level with AVX2). From 32 channels Winograd wins (CRNN's 32 -> 64
        // at 0.25 ms against direct's 0.34).
        return algorithm == .direct || x.shape[1] * kernel[0] * kernel[1] <= 16
            || (x.shape[1] <= 16 && kernel == [3, 3])
    }

    private let x: UnsafePointer<Float>, w: UnsafePointer<Float>, bias: UnsafePointer<Float>?
    private let y: UnsafeMutablePointer<Float>
    private let batch: Int, channels: Int, filters: Int, groups: Int
    private let geometry: ConvGeometry
    private let paddedHeight: Int, paddedWidth: Int
    /// The fused activation as bounds applied in the store: Relu, Clip (ReLU6), or none (±infinity).
    private let low: Float, high: Float
    /// Any other fused activation (Swish, HardSwish, GELU), applied to each chunk of output rows while it is in
    /// cache: a pass over the finished output read it back from memory (EfficientNet's 16 -> 96 expansion at
    /// 112x112, 4.8 MB, spent 0.67 ms in its Swish pass), and the rows per chunk that keep a chunk near 256 KB.
    private let after: FusedActivation?
    private let chunkRows: Int
    private let parallel: ParallelFor
    /// Per worker: the zero-padded image (of one group's channels).
    private let padded: [HostBuffer]
    private var task: ClosureTask?

    init(node: BoundNode, parallel: ParallelFor) throws {
        self.parallel = parallel
        let xv = try node.input(0), wv = try node.input(1), yv = try node.output(0)
        let g = try node.parameters(ConvGeometry.self)
        geometry = g
        let activation = try node.fusedActivation()
        switch activation.kind {
        case ck_activation_relu: (low, high) = (0, .infinity)
        case ck_activation_clip: (low, high) = (activation.low, activation.high)
        default: (low, high) = (-.infinity, .infinity)
        }
        let inStore = [ck_activation_none, ck_activation_relu, ck_activation_clip].contains(activation.kind)
        after = inStore ? nil : activation
        batch = xv.shape[0]
        groups = try node.attributes.int("group", default: 1)
        channels = xv.shape[1] / groups
        filters = wv.shape[0] / groups
        // The rows and columns the windows reach (stride 2: even columns then odd ones, see ck_conv2d_direct).
        paddedHeight = (g.output[0] - 1) * g.strides[0] + g.kernel[0]
        paddedWidth = (g.output[1] - 1) * g.strides[1] + g.kernel[1]
        let rowBytes = (wv.shape[0] / max(groups, 1)).multipliedReportingOverflow(by: g.output[1] * 4)
        chunkRows = rowBytes.overflow ? 1 : max(1, (1 << 18) / max(rowBytes.partialValue, 1))
        // At batch 1 with one group, output rows split across threads (every filter each) when there is enough
        // work to pay for waking them; otherwise (image, group) pairs do. Rows balance where filters did not: a
        // 16-filter stem split 8 + 8 left each thread part-filled register tiles (4 filters) and ran no faster on
        // two threads than on one.
        let macs = filters * groups * g.output[0] * g.output[1] * channels * g.kernel[0] * g.kernel[1]
        let items = batch * groups
        let workers =
            items > 1 ? min(parallel.threads, items) : (macs >= 1 << 20 ? min(parallel.threads, g.output[0]) : 1)
        let paddedFloats = ck_conv2d_direct_padded_floats(channels, paddedHeight, paddedWidth, g.kernel[1])
        // Zeroed once here (HostBuffer's memory starts zeroed): the pads copy the image's positions only.
        padded = try (0..<(items > 1 ? workers : 1)).map { _ in
            try HostBuffer(bytes: paddedFloats * MemoryLayout<Float>.stride)
        }
        x = UnsafePointer(try xv.pointer(Float.self))
        w = UnsafePointer(try wv.pointer(Float.self))
        y = try yv.pointer(Float.self)
        bias = try node.optionalInput(2).map { UnsafePointer(try $0.pointer(Float.self)) }
        if workers > 1 {
            task = ClosureTask { [unowned self] part, begin, end in
                if items > 1 {
                    for item in begin..<end { convolve(item: item, rows: 0..<g.output[0], worker: part, pads: true) }
                } else {
                    convolve(item: 0, rows: begin..<end, worker: part, pads: false)
                }
            }
        }
    }

    func run() throws {
        let items = batch * groups
        if let task {
            if items == 1 { pad(item: 0, worker: 0) }
            parallel.run(task, count: items > 1 ? items : geometry.output[0])
        } else {
            for item in 0..<items { convolve(item: item, rows: 0..<geometry.output[0], worker: 0, pads: true) }
        }
    }

    /// Item n·groups + g: image n, group g. Its channels are contiguous in x, its filters and outputs in w and y.
    private func pad(item: Int, worker: Int) {
        let g = geometry
        let pad = g.strides[1] == 2 ? ck_conv2d_direct_pad_stride2 : ck_conv2d_direct_pad
        pad(
            x + item * channels * g.input[0] * g.input[1], channels, g.input[0], g.input[1], g.padsBegin[0],
            g.padsBegin[1], paddedHeight, paddedWidth, g.kernel[1],
            padded[worker].pointer.assumingMemoryBound(to: Float.self))
    }

    /// Output rows `range` of one (image, group) item; `pads` first makes the worker's padded copy of its channels.
    private func convolve(item: Int, rows range: Range<Int>, worker: Int, pads: Bool) {
        if pads { pad(item: item, worker: worker) }
        let g = geometry
        let group = item % groups
        let source = padded[pads ? worker : 0].pointer.assumingMemoryBound(to: Float.self)
        let out = y + item * filters * g.output[0] * g.output[1], plane = g.output[0] * g.output[1]
        let step = after == nil ? max(range.count, 1) : chunkRows
        var first = range.lowerBound
        while first < range.upperBound {
            let last = min(range.upperBound, first + step)
            ck_conv2d_direct(
                source, channels, paddedHeight, paddedWidth,
                w + group * filters * channels * g.kernel[0] * g.kernel[1], g.kernel[0], g.kernel[1], g.strides[0],
                g.strides[1], bias.map { $0 + group * filters }, low, high, 0, filters, first, last, out, g.output[0],
                g.output[1])
            if let after {
                for filter in 0..<filters {
                    after.apply(out + filter * plane + first * g.output[1], count: (last - first) * g.output[1])
                }
            }
            first = last
        }
    }
}
