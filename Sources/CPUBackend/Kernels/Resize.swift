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
