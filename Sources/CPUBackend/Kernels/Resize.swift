import CKernels
import InferenceGraph
import InferenceRuntime
import InferenceTensor

/// Resize (nearest and N-linear) with ONNX's coordinate transformation modes. Per axis, each output
/// index maps to two input indices and a weight; the N-d result sums over the corners.
enum ResizeKernels {
    static func make(_ node: BoundNode, parallel: ParallelFor) throws -> any Kernel {
        let xv = try node.input(0), yv = try node.output(0)
        // An empty output needs no tables (an axis may still be huge).
        guard yv.count > 0 else { return ClosureKernel {} }
        let geometry: ResizeGeometry
        do {
            geometry = try ResizeGeometry.make(
                node.shapeContext, input: xv.shape.dimensions, output: yv.shape.dimensions)
        } catch let unsupported as ResizeGeometry.Unsupported {
            throw RuntimeError.unsupportedAttribute(node: node.name, detail: unsupported.detail)
        }
        if geometry.usesTaps { return try TapResizeKernel(x: xv, y: yv, geometry: geometry) }
        if let fast = try SeparableResizeKernel(x: xv, y: yv, geometry: geometry, parallel: parallel) { return fast }
        let rank = xv.shape.rank
        let maps = geometry.axes
        let extrapolation = geometry.extrapolation
        let inStrides = rowMajorStrides(xv.shape.dimensions)
        let io = ElementIO.for(yv.type.dtype)
        let src = try xv.raw(), dst = try yv.raw()
        let outDims = yv.shape.dimensions
        let corners = 1 << rank
        return ClosureKernel {
            forEachIndex(outDims) { index, flat in
                for axis in 0..<rank where maps[axis].outside[index[axis]] {
                    io.store(dst, flat, extrapolation)
                    return
                }
                var value = 0.0
                for corner in 0..<corners {
                    var weight = 1.0
                    var offset = 0
                    for axis in 0..<rank {
                        let map = maps[axis]
                        let w = map.weight[index[axis]]
                        if corner & (1 << axis) != 0 {
                            weight *= w
                            offset += map.high[index[axis]] * inStrides[axis]
                        } else {
                            weight *= 1 - w
                            offset += map.low[index[axis]] * inStrides[axis]
                        }
                        if weight == 0 { break }
                    }
                    if weight != 0 { value += weight * io.load(src, offset) }
                }
                io.store(dst, flat, value)
            }
        }
    }
}

/// Float32 Resize of the last two axes (the leading ones unchanged), as detectors and segmenters upsample feature
/// maps: tables built at plan time (Int32 indices, float weights), each output row a blend of two input rows
/// (ck_resize_2d), planes split across threads. Other cases run the general N-d kernel.
final class SeparableResizeKernel: Kernel {
    private let x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>
    private let planes: Int, inH: Int, inW: Int, outH: Int, outW: Int
    private let lowH: [Int32], highH: [Int32], weightH: [Float], lowW: [Int32], highW: [Int32], weightW: [Float]
    private let scratch: [HostBuffer]
    private let parallel: ParallelFor
    private var task: ClosureTask?

    init?(x xv: BoundValue, y yv: BoundValue, geometry: ResizeGeometry, parallel: ParallelFor) throws {
        let rank = xv.shape.rank
        guard yv.type.dtype == .float32, rank >= 2, xv.count > 0,
            xv.shape.dimensions.allSatisfy({ $0 < Int(Int32.max) })
        else { return nil }
        for axis in 0..<(rank - 2) {
            let map = geometry.axes[axis]
            guard xv.shape[axis] == yv.shape[axis],
                map.low.enumerated().allSatisfy({ $0.offset == $0.element }), map.weight.allSatisfy({ $0 == 0 })
            else { return nil }
        }
        let h = geometry.axes[rank - 2], w = geometry.axes[rank - 1]
        guard !h.outside.contains(true), !w.outside.contains(true) else { return nil }
        self.parallel = parallel
        planes = xv.shape.dimensions.dropLast(2).reduce(1, *)
        (inH, inW) = (xv.shape[rank - 2], xv.shape[rank - 1])
        (outH, outW) = (yv.shape[rank - 2], yv.shape[rank - 1])
        lowH = h.low.map { Int32($0) }
        highH = h.high.map { Int32($0) }
        weightH = h.weight.map { Float($0) }
        lowW = w.low.map { Int32($0) }
        highW = w.high.map { Int32($0) }
        weightW = w.weight.map { Float($0) }
        x = UnsafePointer(try xv.pointer(Float.self))
        y = try yv.pointer(Float.self)
        let workers = min(parallel.threads, planes)
        let rowBytes = 2 * max(outW, 1) * 4
        scratch = try (0..<max(workers, 1)).map { _ in try HostBuffer(bytes: rowBytes) }
        if workers > 1 {
            task = ClosureTask { [unowned self] part, begin, end in self.resize(begin, end, scratch: part) }
        }
    }

    private func resize(_ begin: Int, _ end: Int, scratch part: Int) {
        let rows = scratch[part].pointer.assumingMemoryBound(to: Float.self)
        lowH.withUnsafeBufferPointer { lh in
            highH.withUnsafeBufferPointer { hh in
                weightH.withUnsafeBufferPointer { wh in
                    lowW.withUnsafeBufferPointer { lw in
                        highW.withUnsafeBufferPointer { hw in
                            weightW.withUnsafeBufferPointer { ww in
                                ck_resize_2d(
                                    x + begin * inH * inW, end - begin, inH, inW, y + begin * outH * outW, outH, outW,
                                    lh.baseAddress, hh.baseAddress, wh.baseAddress, lw.baseAddress, hw.baseAddress,
                                    ww.baseAddress, rows)
                            }
                        }
                    }
                }
            }
        }
    }

    func run() throws {
        if let task, planes * outH * outW >= 1 << 15 {
            parallel.run(task, count: planes)
        } else {
            resize(0, planes, scratch: 0)
        }
    }
}

/// Cubic and antialiased Resize: one axis at a time (the N-d blend is separable), each output value a weighted
/// sum of `taps` input values along that axis, in double precision between passes; values outside a
/// tf_crop_and_resize region get the extrapolation value.
final class TapResizeKernel: Kernel {
    private let src: UnsafeRawPointer, dst: UnsafeMutableRawPointer
    private let io: ElementIO
    private let geometry: ResizeGeometry
    private let inDims: [Int], outDims: [Int]
    private var buffers: ([Double], [Double])

    init(x xv: BoundValue, y yv: BoundValue, geometry: ResizeGeometry) throws {
        src = UnsafeRawPointer(try xv.raw())
        dst = try yv.raw()
        io = ElementIO.for(yv.type.dtype)
        self.geometry = geometry
        inDims = xv.shape.dimensions
        outDims = yv.shape.dimensions
        // The largest intermediate: axes resized so far at their output size, the rest at their input size.
        var largest = max(xv.count, yv.count)
        var dims = inDims
        for axis in dims.indices {
            dims[axis] = outDims[axis]
            largest = max(largest, dims.reduce(1, *))
        }
        buffers = ([Double](repeating: 0, count: largest), [Double](repeating: 0, count: largest))
    }

    func run() throws {
        var (current, next) = buffers
        buffers = ([], [])  // the arrays are uniquely held while they are written: no copies
        let total = inDims.reduce(1, *)
        for i in 0..<total { current[i] = io.load(src, i) }
        var dims = inDims
        for axis in dims.indices {
            let map = geometry.axes[axis]
            let taps = geometry.taps[axis]
            let outSize = outDims[axis]
            let outer = dims[..<axis].reduce(1, *), inner = dims[(axis + 1)...].reduce(1, *)
            let inSize = dims[axis]
            current.withUnsafeBufferPointer { from in
                next.withUnsafeMutableBufferPointer { to in
                    for o in 0..<outer {
                        for j in 0..<outSize {
                            let row = (o * outSize + j) * inner
                            for i in 0..<inner { to[row + i] = 0 }
                            for t in 0..<taps {
                                let weight = map.tapWeight[j * taps + t]
                                guard weight != 0 else { continue }
                                let source = (o * inSize + map.tapIndex[j * taps + t]) * inner
                                for i in 0..<inner { to[row + i] += weight * from[source + i] }
                            }
                        }
                    }
                }
            }
            dims[axis] = outSize
            swap(&current, &next)
        }
        let strides = rowMajorStrides(outDims)
        for flat in 0..<outDims.reduce(1, *) {
            var outside = false
            for axis in outDims.indices where geometry.axes[axis].outside[(flat / strides[axis]) % outDims[axis]] {
                outside = true
                break
            }
            io.store(dst, flat, outside ? geometry.extrapolation : current[flat])
        }
        buffers = (current, next)
    }
}
