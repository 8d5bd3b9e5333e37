import InferenceTensor

extension ShapeInference {
    static func registerElementwise(into table: inout [String: ShapeFunction]) {
        let sameAsInput: ShapeFunction = { context in [try context.input(0)] }
        for op in UnaryOperators.all.map(\.name) + ["Identity", "Not", "Clip", "Softmax", "LogSoftmax"] {
            table[key(domain: "", opType: op)] = sameAsInput
        }

        table[key(domain: "", opType: "Dropout")] = { context in
            let x = try context.input(0)
            return [x, TensorType(dtype: .bool, shape: x.shape)]
        }

        table[key(domain: "", opType: "Cast")] = { context in
            let x = try context.input(0)
            let to = try context.node.int("to", default: 1)
            guard let dtype = onnxDType(to) else {
                throw context.mismatch("Cast to element type \(to) is not supported")
            }
            return [TensorType(dtype: dtype, shape: x.shape)]
        }

        table[key(domain: "", opType: "CastLike")] = { context in
            [TensorType(dtype: try context.input(1).dtype, shape: try context.input(0).shape)]
        }

        @Sendable func broadcastAll(_ context: ShapeInferenceContext, _ types: [TensorType]) throws -> Shape {
            var shape = Shape([])
            for type in types {
                guard let next = broadcast(shape, type.shape) else {
                    throw context.mismatch(
                        "shapes \(types.map { $0.shape.description }.joined(separator: ", ")) do not broadcast")
                }
                shape = next
            }
            return shape
        }

        let arithmetic: ShapeFunction = { context in
            let a = try context.input(0)
            let b = try context.input(1)
            if context.node.opType != "Pow" && context.node.opType != "BitShift" && a.dtype != b.dtype {
                throw context.mismatch("inputs have different types (\(a.dtype) and \(b.dtype))")
            }
            return [TensorType(dtype: a.dtype, shape: try broadcastAll(context, [a, b]))]
        }
        for op in ["Add", "Sub", "Mul", "Div", "Pow", "Mod", "PRelu"] {
            table[key(domain: "", opType: op)] = arithmetic
        }

        let comparison: ShapeFunction = { context in
            let a = try context.input(0)
            let b = try context.input(1)
            return [TensorType(dtype: .bool, shape: try broadcastAll(context, [a, b]))]
        }
        for op in ["Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or", "Xor"] {
            table[key(domain: "", opType: op)] = comparison
        }

        let variadic: ShapeFunction = { context in
            let types = try context.inputs.indices.map { try context.input($0) }
            guard let first = types.first else { throw context.mismatch("needs at least one input") }
            return [TensorType(dtype: first.dtype, shape: try broadcastAll(context, types))]
        }
        for op in ["Max", "Min", "Sum", "Mean"] { table[key(domain: "", opType: op)] = variadic }

        table[key(domain: "", opType: "Where")] = { context in
            let c = try context.input(0)
            let x = try context.input(1)
            let y = try context.input(2)
            return [TensorType(dtype: x.dtype, shape: try broadcastAll(context, [c, x, y]))]
        }
    }

    /// ONNX's TensorProto.DataType numbers as `DType`.
    public static func onnxDType(_ code: Int) -> DType? {
        switch code {
        case 1: .float32
        case 2: .uint8
        case 3: .int8
        case 4: .uint16
        case 5: .int16
        case 6: .int32
        case 7: .int64
        case 9: .bool
        case 10: .float16
        case 11: .float64
        case 12: .uint32
        case 13: .uint64
        case 16: .bfloat16
        default: nil
        }
    }
}
