import InferenceGraph
import InferenceRuntime
import InferenceTensor

/// Resize (nearest and N-linear) with ONNX's coordinate transformation modes. Per axis, each output
/// index maps to two input indices and a weight; the N-d result sums over the corners.
enum ResizeKernels {
    static func make(_ node: BoundNode) throws -> any Kernel {
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
