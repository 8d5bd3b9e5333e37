import CKernels
import InferenceGraph
import InferenceRuntime
import InferenceTensor

/// How the CPU backend computes convolutions.
public enum ConvolutionAlgorithm: String, Sendable, CaseIterable {
    /// Per shape: direct for few input channels, Winograd F(2x2, 3x3) where it applies and pays off, else
    /// im2col + GEMM (`DirectConvKernel.applies`, `WinogradConvKernel.applies`).
    case automatic
    /// Always im2col + GEMM.
    case im2col
    /// Winograd F(2x2, 3x3) wherever it applies (3x3, stride 1, no dilation, one group, constant weights).
    case winograd
    /// The direct kernel wherever it applies (2-D, stride 1, no dilation, one group), else as `automatic`.
    case direct
}

/// A 3x3, stride-1 convolution as Winograd F(2x2, 3x3): the input's 4x4 tiles (overlapping by 2) and the
/// filters go to the transform domain, where each of its 16 points is one GEMM (tiles × channels by
/// channels × filters, the filters' side packed once at plan time); the results transform back to 2x2 output
/// blocks with bias, Relu and a fused 2x2 max pool applied on the way. It does 16 multiplies where direct
/// convolution does 36. Tiles are processed in blocks that keep the working set in L2. At batch 1 the threads
/// split each block's input tiles, then its filter panels (their 16 GEMMs and output transform; the 16 GEMMs
/// themselves when there is one panel); a batch splits by image.
final class WinogradConvKernel: Kernel {
    /// Whether Winograd applies to this convolution, and (for `automatic`) whether it is expected to win: the
    /// GEMMs need enough channels and filters to run near the GEMM kernel's speed.
    static func applies(_ node: BoundNode, algorithm: ConvolutionAlgorithm) throws -> Bool {
        guard algorithm != .im2col, let x = node.inputs.first.flatMap({ $0 }), node.inputs.count > 1,
            let w = node.inputs[1], w.constant != nil, x.shape.rank == 4, w.shape.rank == 4,
            w.shape[2] == 3, w.shape[3] == 3, try node.attributes.int("group", default: 1) == 1
        else { return false }
        let geometry = try ConvGeometry.forward(
            node.shapeContext, input: Array(x.shape.dimensions.dropFirst(2)), kernel: [3, 3])
        guard geometry.strides == [1, 1], geometry.dilations == [1, 1] else { return false }
        return algorithm == .winograd || (x.shape[1] >= 16 && w.shape[0] >= 16)
    }

    private let x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, bias: UnsafePointer<Float>?
    private let batch: Int, channels: Int, filters: Int, height: Int, width: Int
    private let outHeight: Int, outWidth: Int, padTop: Int, padLeft: Int
    private let tilesX: Int, tiles: Int, blockTiles: Int
    /// Values per filter in y: OH·OW, or (OH/2)·(OW/2) with a fused max pool.
    private var outputPlane: Int { pool != 0 ? (outHeight / 2) * (outWidth / 2) : outHeight * outWidth }
    private let relu: Int32
    /// Set when a 2x2, stride-2 MaxPool was fused into this node: y is then the pooled output.
    private let pool: Int32
    /// The 16 transformed filter matrices (channels × filters each), packed as GEMM B operands.
    private let packedFilters: HostBuffer
    private let packedStride: Int, panels: Int
    /// Per worker: the transformed input block [16][blockTiles][channels] and GEMM results [16][blockTiles][filters].
    private let inputs: [HostBuffer], products: [HostBuffer]
    /// Per worker: the current image, channels-last (the input transform's vectors run across channels).
    private let channelsLast: [HostBuffer]
    private let parallel: ParallelFor
    /// Split-run state, set by the calling thread before each split run.
    private var current = (image: 0, begin: 0, count: 0)
    private var pointTask: ClosureTask?
    private var tileTask: ClosureTask?
    private var filterTask: ClosureTask?
    private var imagesTask: ClosureTask?
    private var layoutTask: ClosureTask?
    private var outputTask: ClosureTask?
    /// Everything for a block's tiles split across threads by tiles (CK_WINOGRAD_UNIT at a time): set where the
    /// transformed filters are small enough for every thread to read them all.
    private var tileBlockTask: ClosureTask?

    init(node: BoundNode, parallel: ParallelFor) throws {
        self.parallel = parallel
        let xv = try node.input(0), wv = try node.input(1), yv = try node.output(0)
        guard let weights = wv.constant else { throw node.fail("Winograd convolution needs constant weights") }
        let geometry = try ConvGeometry.forward(
            node.shapeContext, input: Array(xv.shape.dimensions.dropFirst(2)), kernel: [3, 3])
        relu = try node.fusedActivation().kind == ck_activation_relu ? 1 : 0
        pool = node.attributes.attributes[FusionRules.maxPoolAttribute] != nil ? 1 : 0
        batch = xv.shape[0]
        channels = xv.shape[1]
        filters = wv.shape[0]
        height = geometry.input[0]
        width = geometry.input[1]
        outHeight = geometry.output[0]
        outWidth = geometry.output[1]
        padTop = geometry.padsBegin[0]
        padLeft = geometry.padsBegin[1]
        tilesX = (outWidth + 1) / 2
        tiles = ((outHeight + 1) / 2) * tilesX
        // About 2 MB of transformed input and products per block, in whole 12-row GEMM tiles.
        let perTile = 16 * (channels + filters) * MemoryLayout<Float>.stride
        blockTiles = max(1, min(tiles, max(12, (2 << 20) / max(perTile, 1) / 12 * 12)))
        let transformed = try HostBuffer(bytes: 16 * channels * filters * MemoryLayout<Float>.stride)
        let u = transformed.pointer.assumingMemoryBound(to: Float.self)
        let (filterCount, channelCount) = (wv.shape[0], xv.shape[1])
        weights.withUnsafeBytes { raw in
            ck_winograd_filter_2x2_3x3(raw.bindMemory(to: Float.self).baseAddress, filterCount, channelCount, u)
        }
        packedStride = ck_packed_b_floats(channels, filters)
        panels = (filters + ck_gemm_panel_width() - 1) / ck_gemm_panel_width()
        packedFilters = try HostBuffer(bytes: 16 * packedStride * MemoryLayout<Float>.stride)
        let packed = packedFilters.pointer.assumingMemoryBound(to: Float.self)
        for point in 0..<16 {
            ck_pack_b(
                channelCount, filterCount, u + point * channelCount * filterCount, filterCount, 0,
                packed + point * ck_packed_b_floats(channelCount, filterCount))
        }
        let workers = batch > 1 ? min(parallel.threads, batch) : 1
        let floats = MemoryLayout<Float>.stride
        let (inputBytes, productBytes) = (
            16 * blockTiles * channelCount * floats, 16 * blockTiles * filterCount * floats
        )
        inputs = try (0..<workers).map { _ in try HostBuffer(bytes: inputBytes) }
        products = try (0..<workers).map { _ in try HostBuffer(bytes: productBytes) }
        let imageBytes = channelCount * geometry.input[0] * geometry.input[1] * floats
        channelsLast = try (0..<workers).map { _ in try HostBuffer(bytes: imageBytes) }
        x = UnsafePointer(try xv.pointer(Float.self))
        y = try yv.pointer(Float.self)
        bias = try node.optionalInput(2).map { UnsafePointer(try $0.pointer(Float.self)) }
        if workers > 1 {
            imagesTask = ClosureTask { [unowned self] part, begin, end in
                for n in begin..<end { convolve(image: n, worker: part, parallel: .serial) }
            }
        } else if parallel.threads > 1 {
            pointTask = ClosureTask { [unowned self] _, begin, end in multiply(points: begin..<end, worker: 0) }
            tileTask = ClosureTask { [unowned self] _, begin, end in transformInput(tiles: begin..<end, worker: 0) }
            filterTask = ClosureTask { [unowned self] _, begin, end in
                multiplyAndTransform(panels: begin..<end)
            }
            // The output transform of the current block, split by tiles (each writes its own output blocks).
            outputTask = ClosureTask { [unowned self] _, begin, end in
                transformOutput(
                    image: current.image, begin: current.begin, count: current.count, tiles: begin..<end, worker: 0)
            }
            // With at most 1 MB of transformed filters, each thread transforms, multiplies and writes back its own
            // tiles: no data crosses between cores within a block. Split by filter panels instead (as above for
            // larger filters), each thread read the other's half of the transformed input and, for UNet's 96 -> 32
            // at 128x128 (two panels), ran 1.53x faster on two threads than on one.
            if 16 * packedStride * MemoryLayout<Float>.stride <= 1 << 20 {
                tileBlockTask = ClosureTask { [unowned self] _, begin, end in
                    let count = current.count
                    let range = min(begin * Self.unit, count)..<min(end * Self.unit, count)
                    convolveTiles(range, of: count)
                }
            }
            // The channels-last copy of the current image, split by pixels.
            layoutTask = ClosureTask { [unowned self] _, begin, end in
                ck_winograd_channels_last(
                    x + current.image * channels * height * width, channels, height, width, begin, end,
                    channelsLast[0].pointer.assumingMemoryBound(to: Float.self))
            }
        }
    }

    func run() throws {
        if let imagesTask {
            parallel.run(imagesTask, count: batch)
        } else {
            for n in 0..<batch { convolve(image: n, worker: 0, parallel: parallel) }
        }
    }

    private func convolve(image n: Int, worker: Int, parallel: ParallelFor) {
        let pixels = height * width
        if parallel.threads > 1, let layoutTask, channels * pixels >= 1 << 15 {
            current = (n, 0, 0)
            parallel.run(layoutTask, count: pixels)
        } else {
            ck_winograd_channels_last(
                x + n * channels * pixels, channels, height, width, 0, pixels,
                channelsLast[worker].pointer.assumingMemoryBound(to: Float.self))
        }
        var begin = 0
        while begin < tiles {
            let count = min(blockTiles, tiles - begin)
            if parallel.threads > 1 { current = (n, begin, count) }
            if parallel.threads > 1, let tileBlockTask {
                parallel.run(tileBlockTask, count: (count + Self.unit - 1) / Self.unit)
            } else if parallel.threads > 1, let tileTask, let pointTask, let filterTask, let outputTask {
                parallel.run(tileTask, count: count)
                if panels >= parallel.threads {
                    // Each thread: the 16 GEMMs for its filter panels, then their output transform.
                    parallel.run(filterTask, count: panels)
                } else {
                    // Fewer panels than threads (UNet's 96 -> 32 at 128x128: one panel): the 16 GEMMs split by
                    // point, then the output transform by tiles (it ran on one thread: 1.53x at two threads).
                    parallel.run(pointTask, count: 16)
                    parallel.run(outputTask, count: count)
                }
            } else {
                transformInput(begin: begin, count: count, tiles: 0..<count, worker: worker)
                multiply(count: count, points: 0..<16, worker: worker)
                transformOutput(image: n, begin: begin, count: count, tiles: 0..<count, worker: worker)
            }
            begin += count
        }
    }

    /// Tiles per share of a block split by tiles: whole 12-row GEMM tiles.
    private static let unit = 12

    /// Tiles `range` of the current block of `count` tiles, start to end: input transform, the 16 GEMMs over
    /// those rows, output transform.
    private func convolveTiles(_ range: Range<Int>, of count: Int) {
        guard !range.isEmpty else { return }
        transformInput(tiles: range, worker: 0)
        let v = inputs[0].pointer.assumingMemoryBound(to: Float.self) + range.lowerBound * channels
        let m = products[0].pointer.assumingMemoryBound(to: Float.self) + range.lowerBound * filters
        let packed = packedFilters.pointer.assumingMemoryBound(to: Float.self)
        for point in 0..<16 {
            ck_sgemm_packed(
                range.count, filters, channels, v + point * count * channels, channels, packed + point * packedStride,
                0, m + point * count * filters, filters, 0, panels)
        }
        transformOutput(
            image: current.image, begin: current.begin, count: count, tiles: range, worker: 0)
    }

    /// Tiles `range` (relative to the current block) of the current split run.
    private func transformInput(tiles range: Range<Int>, worker: Int) {
        transformInput(begin: current.begin, count: current.count, tiles: range, worker: worker)
    }

    /// Tiles `range` of the block of `count` tiles at `begin`, from the worker's channels-last image.
    private func transformInput(begin: Int, count: Int, tiles range: Range<Int>, worker: Int) {
        guard !range.isEmpty else { return }
        let v = inputs[worker].pointer.assumingMemoryBound(to: Float.self) + range.lowerBound * channels
        ck_winograd_input_2x2_3x3(
            channelsLast[worker].pointer.assumingMemoryBound(to: Float.self), channels, height, width, padTop, padLeft,
            tilesX,
            begin + range.lowerBound, begin + range.upperBound, v, count * channels)
    }

    /// Output tiles `range` (relative to the block of `count` tiles at `begin`) of image `n`, for `filterRange`.
    private func transformOutput(
        image n: Int, begin: Int, count: Int, tiles range: Range<Int>, filters filterRange: Range<Int>? = nil,
        worker: Int
    ) {
        guard !range.isEmpty else { return }
        let m = products[worker].pointer.assumingMemoryBound(to: Float.self) + range.lowerBound * filters
        let selected = filterRange ?? 0..<filters
        ck_winograd_output_2x2_3x3(
            m, count * filters, filters, selected.lowerBound, selected.upperBound, tilesX, begin + range.lowerBound,
            begin + range.upperBound, bias, relu, pool, y + n * filters * outputPlane, outHeight, outWidth)
    }

    /// For the current split run: the 16 GEMMs restricted to filter panels `range`, then those filters' outputs.
    private func multiplyAndTransform(panels range: Range<Int>) {
        guard !range.isEmpty else { return }
        let count = current.count
        let v = inputs[0].pointer.assumingMemoryBound(to: Float.self)
        let m = products[0].pointer.assumingMemoryBound(to: Float.self)
        let packed = packedFilters.pointer.assumingMemoryBound(to: Float.self)
        for point in 0..<16 {
            ck_sgemm_packed(
                count, filters, channels, v + point * count * channels, channels, packed + point * packedStride, 0,
                m + point * count * filters, filters, range.lowerBound, range.upperBound)
        }
        let width = ck_gemm_panel_width()
        let selected = range.lowerBound * width..<min(range.upperBound * width, filters)
        transformOutput(
            image: current.image, begin: current.begin, count: count, tiles: 0..<count, filters: selected, worker: 0)
    }

    private func multiply(points: Range<Int>, worker: Int) {
        multiply(count: current.count, points: points, worker: worker)
    }

    /// The GEMMs of transform-domain points `points` for a block of `count` tiles.
    private func multiply(count: Int, points: Range<Int>, worker: Int) {
        let v = inputs[worker].pointer.assumingMemoryBound(to: Float.self)
        let m = products[worker].pointer.assumingMemoryBound(to: Float.self)
        let packed = packedFilters.pointer.assumingMemoryBound(to: Float.self)
        for point in points {
            ck_sgemm_packed(
                count, filters, channels, v + point * count * channels, channels, packed + point * packedStride, 0,
                m + point * count * filters, filters, 0, panels)
        }
    }
}
