/// Where each output index of a Resize (nearest or N-linear, ONNX's coordinate transformation modes) reads
/// its input: per axis, two input indices, the weight of the second, and whether it lies outside the
/// crop (tf_crop_and_resize). Every backend builds its kernel from these tables.
public struct ResizeGeometry: Sendable {
    /// A mode or attribute value the tables do not cover (cubic, antialias, unknown modes).
    public struct Unsupported: Error {
        public var detail: String
    }

    public struct AxisMap: Sendable {
        public var low: [Int]
        public var high: [Int]
        /// Weight of `high`; `low` gets 1 - weight (0 for nearest).
        public var weight: [Double]
        public var outside: [Bool]
    }

    public var axes: [AxisMap]
    /// The value written where `outside` is set.
    public var extrapolation: Double

    /// - Throws: `Unsupported` for modes the tables do not cover; shape errors for bad scales or ROI.
    public static func make(_ context: ShapeInferenceContext, input: [Int], output: [Int]) throws -> ResizeGeometry {
        let mode = try context.node.string("mode", default: "nearest")
        guard mode == "nearest" || mode == "linear" else { throw Unsupported(detail: "mode '\(mode)'") }
        let transform = try context.node.string("coordinate_transformation_mode", default: "half_pixel")
        let nearestMode = try context.node.string("nearest_mode", default: "round_prefer_floor")
        let extrapolation = Double(try context.node.float("extrapolation_value", default: 0))
        if try context.node.int("antialias", default: 0) != 0 {
            throw Unsupported(detail: "antialias=1")
        }
        let rank = input.count
        let axes = try (context.node.ints("axes") ?? Array(0..<rank)).map { $0 < 0 ? $0 + rank : $0 }
        // Scales per axis: given, or derived from the output size.
        var scales = (0..<rank).map { Double(output[$0]) / Double(max(input[$0], 1)) }
        let scalesIndex = context.opset >= 11 ? 2 : 1
        let sizes = context.opset >= 11 ? try context.constantInts(3) : nil
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
        var maps: [AxisMap] = []
        for axis in 0..<rank {
            let inSize = input[axis], outSize = output[axis]
            guard inSize > 0 || outSize == 0 else {
                throw context.mismatch("Resize of an empty axis \(axis) to \(outSize) values")
            }
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
                    throw Unsupported(
                        detail: "coordinate_transformation_mode '\(transform)'")
                }
                // Scales of 0 or infinity, or a NaN region of interest, map no output to an input index.
                guard original.isFinite, abs(original) < Double(1 << 52) else {
                    throw context.mismatch("Resize maps output \(o) of axis \(axis) to input coordinate \(original)")
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
        return ResizeGeometry(axes: maps, extrapolation: extrapolation)
    }
}
