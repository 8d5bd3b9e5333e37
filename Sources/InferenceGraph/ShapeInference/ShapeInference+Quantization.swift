import InferenceTensor

/// Where the scale and zero point of each element of a QuantizeLinear/DequantizeLinear input come from: one pair
/// for the tensor, one per index of an axis, or one per block of `blockSize` indices along an axis (opset 21).
/// Element (outer o, axis index j, inner t) reads parameter `o * outerStride + (j / blockSize) * axisStride +
/// t * innerStride`. Shared by shape inference and the kernels.
public struct QuantizationLayout: Equatable, Sendable {
    public var outer: Int
    public var axisLength: Int
    public var inner: Int
    public var blockSize: Int
    public var outerStride: Int
    public var axisStride: Int
    public var innerStride: Int
    /// Parameters expected (the scale's element count).
    public var parameterCount: Int

    /// - Parameters: input: the quantized (or float) tensor's dimensions; scale: the scale's dimensions.
    public static func resolve(
        input: [Int], scale: [Int], axis: Int, blockSize: Int
    ) throws(ShapeError.Detail) -> QuantizationLayout {
        let rank = input.count
        let scaleCount = scale.reduce(1, *)
        if scaleCount == 1 && blockSize == 0 && scale.count <= 1 {
            let total = input.reduce(1, *)
            return QuantizationLayout(
                outer: 1, axisLength: 1, inner: total, blockSize: 1, outerStride: 0, axisStride: 0, innerStride: 0,
                parameterCount: 1)
        }
        let normalized = axis < 0 ? axis + rank : axis
        guard normalized >= 0, normalized < rank else {
            throw .init("axis \(axis) is out of range for an input of rank \(rank)")
        }
        let outer = input[..<normalized].reduce(1, *), length = input[normalized]
        let inner = input[(normalized + 1)...].reduce(1, *)
        if blockSize <= 0 {
            guard scale.count == 1, scaleCount == length else {
                throw .init("a per-axis scale must be 1-D with \(length) values (axis \(normalized)), got \(scale)")
            }
            return QuantizationLayout(
                outer: outer, axisLength: length, inner: inner, blockSize: 1, outerStride: 0, axisStride: 1,
                innerStride: 0, parameterCount: length)
        }
        let blocks = (length + blockSize - 1) / blockSize
        var expected = input
        expected[normalized] = blocks
        guard scale == expected else {
            throw .init("a blocked scale (block_size \(blockSize)) must have shape \(expected), got \(scale)")
        }
        return QuantizationLayout(
            outer: outer, axisLength: length, inner: inner, blockSize: blockSize, outerStride: blocks * inner,
            axisStride: inner, innerStride: 1, parameterCount: scaleCount)
    }
}

extension ShapeInference {
    /// The integer element types quantized operators produce and read.
    public static let quantizedTypes: Set<DType> = [.int8, .uint8, .int16, .uint16]

    static func registerQuantization(into table: inout [String: ShapeFunction]) {
        for register in [registerQuantizeLinear, registerIntegerLinear] { register(&table) }
    }

    /// QuantizeLinear, DequantizeLinear.
    private static func registerQuantizeLinear(into table: inout [String: ShapeFunction]) {
        @Sendable func layout(_ context: ShapeInferenceContext, scaleIndex: Int) throws -> QuantizationLayout {
            let x = try context.input(0), scale = try context.input(scaleIndex)
            let axis = try context.node.int("axis", default: 1)
            let blockSize = try context.node.int("block_size", default: 0)
            do {
                return try QuantizationLayout.resolve(
                    input: x.shape.dimensions, scale: scale.shape.dimensions, axis: axis, blockSize: blockSize)
            } catch { throw context.mismatch(error.text) }
        }
        @Sendable func checkZeroPoint(_ context: ShapeInferenceContext, _ index: Int, like scaleIndex: Int) throws {
            guard context.has(index) else { return }
            let zero = try context.input(index), scale = try context.input(scaleIndex)
            // A scalar beside a one-element scale (as onnxruntime's quantizer writes biases) is the same thing.
            guard zero.shape == scale.shape || (zero.shape.elementCount == 1 && scale.shape.elementCount == 1) else {
                throw context.mismatch("the zero point \(zero.shape) must have the scale's shape \(scale.shape)")
            }
        }

        table[key(domain: "", opType: "QuantizeLinear")] = { context in
            let x = try context.input(0), scale = try context.input(1)
            guard x.dtype.isFloatingPoint, scale.dtype.isFloatingPoint else {
                throw context.mismatch(
                    "QuantizeLinear quantizes floats with a float scale, got \(x.dtype), \(scale.dtype)")
            }
            _ = try layout(context, scaleIndex: 1)
            try checkZeroPoint(context, 2, like: 1)
            var dtype = DType.uint8
            if context.has(2) { dtype = try context.input(2).dtype }
            let requested = try context.node.int("output_dtype", default: 0)
            if requested != 0 {
                guard let wanted = onnxDType(requested) else {
                    throw context.mismatch("output_dtype \(requested) is not a supported element type")
                }
                guard !context.has(2) || wanted == dtype else {
                    throw context.mismatch("output_dtype \(wanted) differs from the zero point's \(dtype)")
                }
                dtype = wanted
            }
            guard quantizedTypes.contains(dtype) else {
                throw context.mismatch("QuantizeLinear to \(dtype) is not supported (int8, uint8, int16, uint16)")
            }
            return [TensorType(dtype: dtype, shape: x.shape)]
        }

        table[key(domain: "", opType: "DequantizeLinear")] = { context in
            let x = try context.input(0), scale = try context.input(1)
            guard quantizedTypes.contains(x.dtype) || x.dtype == .int32, scale.dtype.isFloatingPoint else {
                throw context.mismatch("DequantizeLinear reads int8/uint8/int16/uint16/int32 with a float scale")
            }
            _ = try layout(context, scaleIndex: 1)
            try checkZeroPoint(context, 2, like: 1)
            if context.has(2), try context.input(2).dtype != x.dtype {
                throw context.mismatch("the zero point must be \(x.dtype) like the input")
            }
            var dtype = scale.dtype
            let requested = try context.node.int("output_dtype", default: 0)
            if requested != 0 {
                guard let wanted = onnxDType(requested), wanted.isFloatingPoint else {
                    throw context.mismatch("output_dtype \(requested) is not a float type")
                }
                dtype = wanted
            }
            return [TensorType(dtype: dtype, shape: x.shape)]
        }
    }

    /// DynamicQuantizeLinear, MatMul, Conv, MatMulInteger, QLinearMatMul, ConvInteger, QLinearConv.
    private static func registerIntegerLinear(into table: inout [String: ShapeFunction]) {

        table[key(domain: "", opType: "DynamicQuantizeLinear")] = { context in
            let x = try context.input(0)
            guard x.dtype == .float32 else {
                throw context.mismatch("DynamicQuantizeLinear reads float32, got \(x.dtype)")
            }
            return [
                TensorType(dtype: .uint8, shape: x.shape), TensorType(dtype: .float32, shape: Shape([])),
                TensorType(dtype: .uint8, shape: Shape([])),
            ]
        }

        /// MatMul's shape for two of the node's inputs, with another element type.
        @Sendable func matMul(_ context: ShapeInferenceContext, _ a: Int, _ b: Int, dtype: DType) throws -> [TensorType]
        {
            var inner = context
            inner.inputs = [try context.input(a), try context.input(b)]
            inner.constants = []
            guard let function = ShapeInference.function(domain: "", opType: "MatMul") else { return [] }
            return try function(inner).map { TensorType(dtype: dtype, shape: $0.shape) }
        }
        @Sendable func conv(_ context: ShapeInferenceContext, _ x: Int, _ w: Int, dtype: DType) throws -> [TensorType] {
            var inner = context
            inner.inputs = [try context.input(x), try context.input(w)]
            inner.constants = []
            guard let function = ShapeInference.function(domain: "", opType: "Conv") else { return [] }
            return try function(inner).map { TensorType(dtype: dtype, shape: $0.shape) }
        }
        @Sendable func checkBytes(_ context: ShapeInferenceContext, _ indices: [Int]) throws {
            for index in indices {
                let type = try context.input(index)
                guard type.dtype == .int8 || type.dtype == .uint8 else {
                    throw context.mismatch("input \(index) must be int8 or uint8, got \(type.dtype)")
                }
            }
        }

        table[key(domain: "", opType: "MatMulInteger")] = { context in
            try checkBytes(context, [0, 1])
            return try matMul(context, 0, 1, dtype: .int32)
        }
        table[key(domain: "", opType: QuantizedFusion.qlinearAdd)] = { context in
            try checkBytes(context, [0, 3, 7])
            let (a, b) = (try context.input(0), try context.input(3))
            guard let shape = broadcast(a.shape, b.shape) else {
                throw context.mismatch("shapes \(a.shape) and \(b.shape) do not broadcast")
            }
            return [TensorType(dtype: try context.input(7).dtype, shape: shape)]
        }
        table[key(domain: "", opType: QuantizedFusion.scaledMatMulInteger)] = { context in
            try checkBytes(context, [0, 1])
            return try matMul(context, 0, 1, dtype: .float32)
        }
        table[key(domain: "", opType: "QLinearMatMul")] = { context in
            try checkBytes(context, [0, 3, 7])
            return try matMul(context, 0, 3, dtype: try context.input(7).dtype)
        }
        table[key(domain: "", opType: "ConvInteger")] = { context in
            try checkBytes(context, [0, 1])
            return try conv(context, 0, 1, dtype: .int32)
        }
        table[key(domain: "", opType: QuantizedFusion.qdqDepthwiseConv)] = { context in
            try checkBytes(context, [0, 6])
            let w = try context.input(3)
            guard w.dtype == .float32, w.shape.rank == 4, w.shape[1] == 1 else {
                throw context.mismatch("the weights must be float32 [C, 1, kH, kW], got \(w.dtype) \(w.shape)")
            }
            return try conv(context, 0, 3, dtype: try context.input(6).dtype)
        }
        table[key(domain: "", opType: "QLinearConv")] = { context in
            try checkBytes(context, [0, 3, 7])
            if context.has(8) {
                let bias = try context.input(8), w = try context.input(3)
                guard bias.dtype == .int32, bias.shape.elementCount == w.shape[0] else {
                    throw context.mismatch("the bias must be int32 with \(w.shape[0]) values")
                }
            }
            return try conv(context, 0, 3, dtype: try context.input(7).dtype)
        }
    }
}
