import InferenceTensor

extension ShapeInference {
    static func registerElementwise(into table: inout [String: ShapeFunction]) {
        let unary: ShapeFunction = { context in [try context.input(0)] }
        for op in ["Relu", "Sigmoid", "Identity"] { table[key(domain: "", opType: op)] = unary }

        let binary: ShapeFunction = { context in
            let a = try context.input(0)
            let b = try context.input(1)
            guard a.dtype == b.dtype else {
                throw context.mismatch("inputs have different types (\(a.dtype) and \(b.dtype))")
            }
            guard let shape = broadcast(a.shape, b.shape) else {
                throw context.mismatch("shapes \(a.shape) and \(b.shape) do not broadcast")
            }
            return [TensorType(dtype: a.dtype, shape: shape)]
        }
        for op in ["Add", "Sub", "Mul", "Div"] { table[key(domain: "", opType: op)] = binary }
    }
}
