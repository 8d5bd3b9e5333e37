/// Sliding-window geometry shared by Conv, ConvTranspose and pooling: kernel, strides, dilations, pads and
/// output size per spatial axis, with ONNX's auto_pad and ceil_mode rules applied once.
public struct ConvGeometry: Sendable, Equatable {
    public var input: [Int]
    public var kernel: [Int]
    public var strides: [Int]
    public var dilations: [Int]
    /// Begin pads then end pads, one per spatial axis each.
    public var padsBegin: [Int]
    public var padsEnd: [Int]
    public var output: [Int]

    /// Resolves a node's window attributes for a forward window (Conv, pools).
    /// - Throws: `ShapeError.mismatch` for inconsistent attributes or an empty output.
    public static func forward(
        _ context: ShapeInferenceContext, input: [Int], kernel: [Int], ceilMode: Bool = false
    ) throws -> ConvGeometry {
        let n = input.count
        let node = context.node
        let strides = try node.ints("strides") ?? [Int](repeating: 1, count: n)
        let dilations = try node.ints("dilations") ?? [Int](repeating: 1, count: n)
        let pads = try node.ints("pads") ?? [Int](repeating: 0, count: 2 * n)
        let autoPad = try node.string("auto_pad", default: "NOTSET")
        guard (kernel + strides + dilations + pads + input).allSatisfy({ $0.magnitude < 1 << 31 }) else {
            throw context.mismatch("window attributes out of range")
        }
        guard kernel.count == n, strides.count == n, dilations.count == n, pads.count == 2 * n,
            strides.allSatisfy({ $0 > 0 }), dilations.allSatisfy({ $0 > 0 }), kernel.allSatisfy({ $0 > 0 })
        else {
            throw context.mismatch(
                "kernel \(kernel), strides \(strides), dilations \(dilations), pads \(pads) do not fit \(n) spatial axes"
            )
        }
        var geometry = ConvGeometry(
            input: input, kernel: kernel, strides: strides, dilations: dilations,
            padsBegin: Array(pads[..<n]), padsEnd: Array(pads[n...]), output: [])
        for axis in 0..<n {
            let extent = dilations[axis] * (kernel[axis] - 1) + 1
            switch autoPad {
            case "SAME_UPPER", "SAME_LOWER":
                let out = (input[axis] + strides[axis] - 1) / strides[axis]
                let total = max((out - 1) * strides[axis] + extent - input[axis], 0)
                let small = total / 2
                geometry.padsBegin[axis] = autoPad == "SAME_UPPER" ? small : total - small
                geometry.padsEnd[axis] = total - geometry.padsBegin[axis]
                geometry.output.append(out)
            case "VALID", "NOTSET":
                if autoPad == "VALID" {
                    geometry.padsBegin[axis] = 0
                    geometry.padsEnd[axis] = 0
                }
                let span = input[axis] + geometry.padsBegin[axis] + geometry.padsEnd[axis] - extent
                guard span >= 0 else {
                    throw context.mismatch(
                        "the window (\(extent)) is larger than the padded input (\(span + extent)) on spatial axis \(axis)"
                    )
                }
                var out = (ceilMode ? (span + strides[axis] - 1) / strides[axis] : span / strides[axis]) + 1
                // A window may not start inside the end padding.
                if ceilMode && (out - 1) * strides[axis] >= input[axis] + geometry.padsBegin[axis] { out -= 1 }
                geometry.output.append(out)
            default:
                throw context.mismatch("unknown auto_pad '\(autoPad)'")
            }
        }
        return geometry
    }

    /// Resolves ConvTranspose geometry: output size from the input, or pads from `output_shape`.
    public static func transposed(_ context: ShapeInferenceContext, input: [Int], kernel: [Int]) throws -> (
        ConvGeometry, outputPadding: [Int]
    ) {
        let n = input.count
        let node = context.node
        let strides = try node.ints("strides") ?? [Int](repeating: 1, count: n)
        let dilations = try node.ints("dilations") ?? [Int](repeating: 1, count: n)
        var pads = try node.ints("pads") ?? [Int](repeating: 0, count: 2 * n)
        let outputPadding = try node.ints("output_padding") ?? [Int](repeating: 0, count: n)
        let autoPad = try node.string("auto_pad", default: "NOTSET")
        var outputShape = try node.ints("output_shape")
        guard
            (kernel + strides + dilations + pads + outputPadding + input + (outputShape ?? [])).allSatisfy({
                $0.magnitude < 1 << 31
            }),
            strides.allSatisfy({ $0 > 0 }), dilations.allSatisfy({ $0 > 0 })
        else {
            throw context.mismatch("window attributes out of range")
        }
        guard kernel.count == n, strides.count == n, dilations.count == n, pads.count == 2 * n, outputPadding.count == n
        else {
            throw context.mismatch(
                "kernel \(kernel), strides \(strides), pads \(pads), output_padding \(outputPadding) do not fit \(n) spatial axes"
            )
        }
        if let shape = outputShape, shape.count == n + 2 { outputShape = Array(shape.suffix(n)) }
        if outputShape == nil && (autoPad == "SAME_UPPER" || autoPad == "SAME_LOWER") {
            outputShape = (0..<n).map { input[$0] * strides[$0] }
        }
        var output: [Int] = []
        for axis in 0..<n {
            let extent = dilations[axis] * (kernel[axis] - 1) + 1
            let full = strides[axis] * (input[axis] - 1) + outputPadding[axis] + extent
            if let outputShape {
                guard outputShape.count == n else {
                    throw context.mismatch("output_shape \(outputShape) does not fit \(n) spatial axes")
                }
                let total = full - outputShape[axis]
                // Floor division, as the ONNX reference does (total may be negative).
                let half = Int((Double(total) / 2).rounded(.down))
                if autoPad == "SAME_UPPER" {
                    pads[axis] = half
                    pads[axis + n] = total - half
                } else {
                    pads[axis] = total - half
                    pads[axis + n] = half
                }
                output.append(outputShape[axis])
            } else {
                if autoPad == "VALID" {
                    pads[axis] = 0
                    pads[axis + n] = 0
                }
                output.append(full - pads[axis] - pads[axis + n])
            }
            guard output[axis] > 0 else {
                throw context.mismatch("ConvTranspose output size \(output[axis]) on axis \(axis) is not positive")
            }
        }
        let geometry = ConvGeometry(
            input: input, kernel: kernel, strides: strides, dilations: dilations,
            padsBegin: Array(pads[..<n]), padsEnd: Array(pads[n...]), output: output)
        return (geometry, outputPadding)
    }
}
