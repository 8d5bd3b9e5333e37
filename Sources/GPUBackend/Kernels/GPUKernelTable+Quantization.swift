import InferenceGraph
import InferenceRuntime
import InferenceTensor

/// The quantized operators on the GPU: QuantizeLinear and DequantizeLinear on 8-bit data (per tensor or per axis,
/// float32 scales), MatMulInteger and QLinearMatMul with a 2-D right operand (exact int32 sums). Other forms (blocked
/// or 16-bit quantization, float16 scales, convolutions) are unsupported attributes: the node runs through the
/// host fallback.
extension GPUKernelTable {
    static let bytes: Set<DType> = [.int8, .uint8]

    /// Axis length and inner size of a per-axis parameter (1 and the count for a per-tensor one).
    static func quantizationAxis(_ node: BoundNode, x: BoundValue, scale: BoundValue) throws -> (Int, Int) {
        let count = scale.type.shape.elementCount
        let dims = x.type.shape.dimensions
        guard count > 1 else { return (1, max(dims.reduce(1, *), 1)) }
        guard try node.step.node.int("block_size", default: 0) == 0, scale.type.shape.rank == 1 else {
            throw RuntimeError.unsupportedAttribute(
                node: node.step.node.displayName, detail: "blocked quantization on the GPU")
        }
        let raw = try node.step.node.int("axis", default: 1)
        let axis = raw < 0 ? raw + dims.count : raw
        guard dims.indices.contains(axis), dims[axis] == count else {
            throw RuntimeError.invalidNode(
                node: node.step.node.displayName, detail: "a per-axis scale needs \(dims) [axis \(raw)] values")
        }
        return (count, dims[(axis + 1)...].reduce(1, *))
    }

    static func makeDequantize(_ node: BoundNode, _ backend: any GPUKernelHost) throws -> any Kernel {
        let x = try node.inputs[0].unwrap(node, "x"), scale = try node.inputs[1].unwrap(node, "x_scale")
        let y = try firstOutput(node)
        guard bytes.contains(x.type.dtype), scale.type.dtype == .float32, y.type.dtype == .float32 else {
            throw unsupported(node, "DequantizeLinear of \(x.type.dtype) to \(y.type.dtype) on the GPU")
        }
        let count = y.type.shape.elementCount
        guard count > 0 else { return SequenceKernel(parts: []) }
        let (axisLength, inner) = try quantizationAxis(node, x: x, scale: scale)
        let zero = node.inputs.count > 2 ? node.inputs[2] : nil
        let (xb, xo) = try backend.arguments(for: x, elementBytes: 1)
        let (sb, so) = try backend.arguments(for: scale)
        let (zb, zo) = try backend.arguments(for: zero ?? x, elementBytes: 1)
        let (yb, yo) = try backend.arguments(for: y)
        return try backend.kernel(
            "dequantize_8",
            arguments: [
                xb, xo, .int(x.type.dtype == .int8 ? 1 : 0), sb, so, zb, zo, .int(zero == nil ? 0 : 1), yb, yo,
                .int(Int32(count)), .int(Int32(axisLength)), .int(Int32(inner)),
            ], global: [count])
    }

    static func makeQuantize(_ node: BoundNode, _ backend: any GPUKernelHost) throws -> any Kernel {
        let x = try node.inputs[0].unwrap(node, "x"), scale = try node.inputs[1].unwrap(node, "y_scale")
        let y = try firstOutput(node)
        guard x.type.dtype == .float32, scale.type.dtype == .float32, bytes.contains(y.type.dtype) else {
            throw unsupported(node, "QuantizeLinear of \(x.type.dtype) to \(y.type.dtype) on the GPU")
        }
        let count = y.type.shape.elementCount
        guard count > 0 else { return SequenceKernel(parts: []) }
        let (axisLength, inner) = try quantizationAxis(node, x: x, scale: scale)
        let zero = node.inputs.count > 2 ? node.inputs[2] : nil
        let (xb, xo) = try backend.arguments(for: x)
        let (sb, so) = try backend.arguments(for: scale)
        let (zb, zo) = try backend.arguments(for: zero ?? y, elementBytes: 1)
        let (yb, yo) = try backend.arguments(for: y, elementBytes: 1)
        return try backend.kernel(
            "quantize_8",
            arguments: [
                xb, xo, sb, so, zb, zo, .int(zero == nil ? 0 : 1), .int(y.type.dtype == .int8 ? 1 : 0), yb, yo,
                .int(Int32(count)), .int(Int32(axisLength)), .int(Int32(inner)),
            ], global: [count])
    }

    /// MatMulInteger (int32 out) and QLinearMatMul (bytes out) with B of shape [K, N].
    static func makeIntegerMatMul(_ node: BoundNode, _ backend: any GPUKernelHost) throws -> any Kernel {
        let quantized = node.step.node.opType == "QLinearMatMul"
        let a = try node.inputs[0].unwrap(node, "A")
        let b = try node.inputs[quantized ? 3 : 1].unwrap(node, "B")
        let y = try firstOutput(node)
        guard bytes.contains(a.type.dtype), bytes.contains(b.type.dtype), b.type.shape.rank == 2,
            a.type.shape.rank >= 1, node.inputs.count <= (quantized ? 8 : 4)
        else { throw unsupported(node, "this integer MatMul form on the GPU") }
        let k = b.type.shape[0], n = b.type.shape[1]
        guard a.type.shape.dimensions.last == k else { throw unsupported(node, "these MatMul shapes on the GPU") }
        let rows = a.type.shape.elementCount / max(k, 1)
        guard rows * n > 0 else { return SequenceKernel(parts: []) }
        func optional(_ index: Int) -> BoundValue? { index < node.inputs.count ? node.inputs[index] : nil }
        let (ab, ao) = try backend.arguments(for: a, elementBytes: 1)
        let (bb, bo) = try backend.arguments(for: b, elementBytes: 1)
        let aSigned: KernelArgument = .int(a.type.dtype == .int8 ? 1 : 0)
        let bSigned: KernelArgument = .int(b.type.dtype == .int8 ? 1 : 0)
        if !quantized {
            let az = optional(2), bz = optional(3)
            guard (az?.type.shape.elementCount ?? 1) == 1, [1, n].contains(bz?.type.shape.elementCount ?? 1),
                y.type.dtype == .int32
            else { throw unsupported(node, "per-row zero points of MatMulInteger on the GPU") }
            let (azb, azo) = try backend.arguments(for: az ?? a, elementBytes: 1)
            let (bzb, bzo) = try backend.arguments(for: bz ?? b, elementBytes: 1)
            let (yb, yo) = try backend.arguments(for: y)
            return try backend.kernel(
                "matmul_integer",
                arguments: [
                    ab, ao, aSigned, bb, bo, bSigned, azb, azo, .int(az == nil ? 0 : 1), bzb, bzo,
                    .int(Int32(bz?.type.shape.elementCount ?? 0)), yb, yo, .int(Int32(rows)), .int(Int32(n)),
                    .int(Int32(k)),
                ], global: [n, rows])
        }
        let aScale = try node.inputs[1].unwrap(node, "a_scale"), aZero = try node.inputs[2].unwrap(node, "a_zero_point")
        let bScale = try node.inputs[4].unwrap(node, "b_scale"), bZero = try node.inputs[5].unwrap(node, "b_zero_point")
        let yScale = try node.inputs[6].unwrap(node, "y_scale"), yZero = try node.inputs[7].unwrap(node, "y_zero_point")
        let scales = [aScale, bScale, yScale]
        guard scales.allSatisfy({ $0.type.dtype == .float32 }), aScale.type.shape.elementCount == 1,
            aZero.type.shape.elementCount == 1, yScale.type.shape.elementCount == 1,
            yZero.type.shape.elementCount == 1, [1, n].contains(bScale.type.shape.elementCount),
            bScale.type.shape.elementCount == bZero.type.shape.elementCount, bytes.contains(y.type.dtype)
        else { throw unsupported(node, "this QLinearMatMul form on the GPU") }
        let (asb, aso) = try backend.arguments(for: aScale)
        let (azb, azo) = try backend.arguments(for: aZero, elementBytes: 1)
        let (bsb, bso) = try backend.arguments(for: bScale)
        let (bzb, bzo) = try backend.arguments(for: bZero, elementBytes: 1)
        let (ysb, yso) = try backend.arguments(for: yScale)
        let (yzb, yzo) = try backend.arguments(for: yZero, elementBytes: 1)
        let (yb, yo) = try backend.arguments(for: y, elementBytes: 1)
        return try backend.kernel(
            "qlinear_matmul",
            arguments: [
                ab, ao, aSigned, asb, aso, azb, azo, bb, bo, bSigned, bsb, bso,
                .int(Int32(bScale.type.shape.elementCount)), bzb, bzo, .int(Int32(bZero.type.shape.elementCount)),
                ysb, yso, yzb, yzo, .int(y.type.dtype == .int8 ? 1 : 0), yb, yo, .int(Int32(rows)), .int(Int32(n)),
                .int(Int32(k)),
            ], global: [n, rows])
    }
}
