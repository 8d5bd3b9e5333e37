import InferenceGraph
import InferenceRuntime
import InferenceTensor

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// Resize (nearest and N-linear) with ONNX's coordinate transformation modes. Per axis, each output
/// index maps to two input indices and a weight; the N-d result sums over the corners.
enum ResizeKernels {
    static func make(_ node: BoundNode) throws -> any Kernel {
        let xv = try node.input(0), yv = try node.output(0)
        let a = node.attributes
        let mode = try a.string("mode", default: "nearest")
        guard mode == "nearest" || mode == "linear" else {
            throw RuntimeError.unsupportedAttribute(node: node.name, detail: "mode '\(mode)'")
        }
        let transform = try a.string("coordinate_transformation_mode", default: "half_pixel")
        let nearestMode = try a.string("nearest_mode", default: "round_prefer_floor")
        let extrapolation = Double(try a.float("extrapolation_value", default: 0))
        if try a.int("antialias", default: 0) != 0 {
            throw RuntimeError.unsupportedAttribute(node: node.name, detail: "antialias=1")
        }
        let rank = xv.shape.rank
        let axes = try (a.ints("axes") ?? Array(0..<rank)).map { $0 < 0 ? $0 + rank : $0 }
        // Scales per axis: given, or derived from the output size.
        var scales = (0..<rank).map { Double(yv.shape[$0]) / Double(max(xv.shape[$0], 1)) }
        let context = node.shapeContext
        let scalesIndex = node.opset >= 11 ? 2 : 1
        let sizes = node.opset >= 11 ? try context.constantInts(3) : nil
        let sizesGiven = !(sizes ?? []).isEmpty
        if let given = try context.constantFloats(scalesIndex), !given.isEmpty, !sizesGiven {
            for (i, axis) in axes.enumerated() { scales[axis] = Double(given[i]) }
        }
        var roi = [Double](repeating: 0, count: 2 * rank)
        for axis in 0..<rank { roi[rank + axis] = 1 }
        if transform == "tf_crop_and_resize", let values = try context.constantFloats(1), !values.isEmpty {
            for (i, axis) in axes.enumerated() {
                roi[axis] = Double(values[i])
                roi[rank + axis] = Double(values[axes.count + i])
            }
        }
        struct AxisMap { var low: [Int]; var high: [Int]; var weight: [Double]; var outside: [Bool] }
        var maps: [AxisMap] = []
        for axis in 0..<rank {
            let inSize = xv.shape[axis], outSize = yv.shape[axis]
            let scale = scales[axis]
            var map = AxisMap(low: [], high: [], weight: [], outside: [])
            for o in 0..<outSize {
                let x = Double(o)
                var original: Double
                switch transform {
                case "asymmetric": original = x / scale
                case "align_corners":
                    // The resized length is in·scale as a real number, not the rounded output size.
                    let length = Double(inSize) * scale
                    original = length <= 1 ? 0 : x * Double(inSize - 1) / (length - 1)
                case "pytorch_half_pixel": original = outSize > 1 ? (x + 0.5) / scale - 0.5 : 0
                case "tf_half_pixel_for_nn": original = (x + 0.5) / scale
                case "half_pixel_symmetric":
                    let adjustment = Double(outSize) / (scale * Double(inSize))
                    let center = Double(inSize) / 2
                    original = center * (1 - adjustment) + (x + 0.5) / scale - 0.5
                case "tf_crop_and_resize":
                    let start = roi[axis], end = roi[rank + axis]
                    original =
                        outSize > 1
                        ? start * Double(inSize - 1) + x * (end - start) * Double(inSize - 1) / Double(outSize - 1)
                        : 0.5 * (start + end) * Double(inSize - 1)
                case "half_pixel": original = (x + 0.5) / scale - 0.5
                default:
                    throw RuntimeError.unsupportedAttribute(
                        node: node.name, detail: "coordinate_transformation_mode '\(transform)'")
                }
                let outside = transform == "tf_crop_and_resize" && (original < 0 || original > Double(inSize - 1))
                if mode == "nearest" {
                    var index: Double
                    switch nearestMode {
                    case "floor": index = original.rounded(.down)
                    case "ceil": index = original.rounded(.up)
                    case "round_prefer_ceil":
                        index = original.rounded(.toNearestOrAwayFromZero)
                        if original - original.rounded(.down) == 0.5 { index = original.rounded(.up) }
                    default:
                        index = original.rounded(.toNearestOrAwayFromZero)
                        if original - original.rounded(.down) == 0.5 { index = original.rounded(.down) }
                    }
                    let i = min(max(Int(index), 0), inSize - 1)
                    map.low.append(i)
                    map.high.append(i)
                    map.weight.append(0)
                } else {
                    let clamped = min(max(original, 0), Double(inSize - 1))
                    let low = Int(clamped.rounded(.down))
                    let high = min(low + 1, inSize - 1)
                    map.low.append(low)
                    map.high.append(high)
                    map.weight.append(clamped - Double(low))
                }
                map.outside.append(outside)
            }
            maps.append(map)
        }
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
