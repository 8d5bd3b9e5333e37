/// Where each output index of a Resize (nearest or N-linear, ONNX's coordinate transformation modes) reads
/// its input: per axis, two input indices, the weight of the second, and whether it lies outside the
/// crop (tf_crop_and_resize). Every backend builds its kernel from these tables.
public struct ResizeGeometry: Sendable {
    /// A mode or attribute value the tables do not cover (unknown modes and coordinate transformations).
    public struct Unsupported: Error {
        public var detail: String
    }

    public struct AxisMap: Sendable {
        public var low: [Int]
        public var high: [Int]
        /// Weight of `high`; `low` gets 1 - weight (0 for nearest).
        public var weight: [Double]
        public var outside: [Bool]
        /// For cubic and antialiased modes (`ResizeGeometry.taps` > 0): per output index, `taps` input indices
        /// (clamped to the axis, as the edge is repeated) and their weights; low/high/weight are then unused.
        public var tapIndex: [Int] = []
        public var tapWeight: [Double] = []

        /// One output sample's taps (offsets from the sample left of `original`, and weights), clamped to the axis;
        /// with exclude_outside, taps off the axis weigh 0 and the rest are renormalized.
        mutating func appendTaps(
            _ taps: (offsets: [Int], weights: [Double]), original: Double, inSize: Int, excludeOutside: Bool
        ) {
            let base = Int(original.rounded(.down)) - (original == original.rounded(.down) ? 1 : 0)
            var taken = taps.weights
            if excludeOutside {
                for (t, offset) in taps.offsets.enumerated() where base + offset < 0 || base + offset >= inSize {
                    taken[t] = 0
                }
                let total = taken.reduce(0, +)
                if total != 0 { taken = taken.map { $0 / total } }
            }
            tapIndex += taps.offsets.map { min(max(base + $0, 0), max(inSize - 1, 0)) }
            tapWeight += taken
            low.append(0)
            high.append(0)
            weight.append(0)
        }
    }

    public var axes: [AxisMap]
    /// 0 for nearest and linear (two reads per axis: low/high/weight); otherwise the number of input values each
    /// output value of an axis blends (4 for cubic, more when antialiasing a downscale), per axis the largest.
    public var taps: [Int] = []
    public var usesTaps: Bool { !taps.isEmpty }
    /// The value written where `outside` is set.
    public var extrapolation: Double

    /// - Throws: `Unsupported` for modes the tables do not cover; shape errors for bad scales or ROI.
    public static func make(_ context: ShapeInferenceContext, input: [Int], output: [Int]) throws -> ResizeGeometry {
        let mode = try context.node.string("mode", default: "nearest")
        guard mode == "nearest" || mode == "linear" || mode == "cubic" else {
            throw Unsupported(detail: "mode '\(mode)'")
        }
        let antialias = try context.node.int("antialias", default: 0) != 0 && mode != "nearest"
        let cubicA = Double(try context.node.float("cubic_coeff_a", default: -0.75))
        let excludeOutside = try context.node.int("exclude_outside", default: 0) != 0
        let tapped = mode == "cubic" || antialias
        let transform = try context.node.string("coordinate_transformation_mode", default: "half_pixel")
        let nearestMode = try context.node.string("nearest_mode", default: "round_prefer_floor")
        let extrapolation = Double(try context.node.float("extrapolation_value", default: 0))
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
                let original = try Self.inputCoordinate(
                    of: o, transform: transform, scale: scale, inSize: inSize, outSize: outSize,
                    roi: (roi[axis], roi[rank + axis]))
                // Scales of 0 or infinity, or a NaN region of interest, map no output to an input index.
                guard original.isFinite, abs(original) < Double(1 << 52) else {
                    throw context.mismatch("Resize maps output \(o) of axis \(axis) to input coordinate \(original)")
                }
                let outside = transform == "tf_crop_and_resize" && (original < 0 || original > Double(inSize - 1))
                if tapped {
                    map.appendTaps(
                        Self.tapWeights(
                            original: original, scale: scale, cubic: mode == "cubic", antialias: antialias, a: cubicA),
                        original: original, inSize: inSize, excludeOutside: excludeOutside)
                } else if mode == "nearest" {
                    let index = Self.nearest(original, mode: nearestMode)
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
        var geometry = ResizeGeometry(axes: maps, extrapolation: extrapolation)
        if tapped {
            geometry.taps = zip(maps, output).map { map, size in size > 0 ? map.tapIndex.count / size : 0 }
        }
        return geometry
    }

    /// Where output sample `o` of an axis falls on the input axis, by coordinate_transformation_mode.
    /// - Throws: `Unsupported` for a mode not in the ONNX specification.
    static func inputCoordinate(
        of o: Int, transform: String, scale: Double, inSize: Int, outSize: Int, roi: (start: Double, end: Double)
    ) throws -> Double {
        let x = Double(o)
        switch transform {
        case "asymmetric": return x / scale
        case "align_corners":
            // The resized length is in·scale as a real number, not the rounded output size.
            let length = Double(inSize) * scale
            return length <= 1 ? 0 : x * Double(inSize - 1) / (length - 1)
        case "pytorch_half_pixel": return outSize > 1 ? (x + 0.5) / scale - 0.5 : 0
        case "tf_half_pixel_for_nn": return (x + 0.5) / scale
        case "half_pixel_symmetric":
            let adjustment = Double(outSize) / (scale * Double(inSize))
            let center = Double(inSize) / 2
            return center * (1 - adjustment) + (x + 0.5) / scale - 0.5
        case "tf_crop_and_resize":
            return outSize > 1
                ? roi.start * Double(inSize - 1) + x * (roi.end - roi.start) * Double(inSize - 1) / Double(outSize - 1)
                : 0.5 * (roi.start + roi.end) * Double(inSize - 1)
        case "half_pixel": return (x + 0.5) / scale - 0.5
        default: throw Unsupported(detail: "coordinate_transformation_mode '\(transform)'")
        }
    }

    /// The input index nearest to `original` by nearest_mode (ties as the mode says).
    static func nearest(_ original: Double, mode: String) -> Double {
        let half = original - original.rounded(.down) == 0.5
        switch mode {
        case "floor": return original.rounded(.down)
        case "ceil": return original.rounded(.up)
        case "round_prefer_ceil": return half ? original.rounded(.up) : original.rounded(.toNearestOrAwayFromZero)
        default: return half ? original.rounded(.down) : original.rounded(.toNearestOrAwayFromZero)
        }
    }

    /// The input offsets (from the sample left of `original`, which sits at ratio in (0, 1] from it) and weights
    /// of a cubic or antialiased output sample, as the ONNX reference defines them.
    static func tapWeights(
        original: Double, scale: Double, cubic: Bool, antialias: Bool, a: Double
    ) -> (offsets: [Int], weights: [Double]) {
        let floor = original.rounded(.down)
        let ratio = original == floor ? 1 : original - floor
        func cubicWeight(_ x: Double) -> Double {
            let x = abs(x)
            if x <= 1 { return ((a + 2) * x - (a + 3)) * x * x + 1 }
            if x < 2 { return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a }
            return 0
        }
        if cubic && !antialias {
            return (
                [-1, 0, 1, 2],
                [cubicWeight(ratio + 1), cubicWeight(ratio), cubicWeight(1 - ratio), cubicWeight(2 - ratio)]
            )
        }
        let s = min(scale, 1)
        let start = Int(((cubic ? -2 : -1) / s).rounded(.down)) + 1
        // Both footprints are symmetric: offsets start..<2 - start.
        let footprint = Array(start..<(2 - start))
        var weights = footprint.map { i -> Double in
            let x = s * (Double(i) - ratio)
            return cubic ? cubicWeight(x) : min(max(1 - abs(x), 0), 1)
        }
        let total = weights.reduce(0, +)
        if total != 0 { weights = weights.map { $0 / total } }
        return (footprint, weights)
    }
}
