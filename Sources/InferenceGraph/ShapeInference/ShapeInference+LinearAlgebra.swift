import InferenceTensor

extension ShapeInference {
    static func registerLinearAlgebra(into table: inout [String: ShapeFunction]) {
        table[key(domain: "", opType: "Gemm")] = { context in
            let a = try context.input(0)
            let b = try context.input(1)
            guard a.shape.rank == 2, b.shape.rank == 2 else {
                throw context.mismatch("Gemm needs 2-D A and B, got \(a.shape) and \(b.shape)")
            }
            let transA = try context.node.int("transA", default: 0)
            let transB = try context.node.int("transB", default: 0)
            let (m, k) = transA != 0 ? (a.shape[1], a.shape[0]) : (a.shape[0], a.shape[1])
            let (kb, n) = transB != 0 ? (b.shape[1], b.shape[0]) : (b.shape[0], b.shape[1])
            guard k == kb else {
                throw context.mismatch("A \(a.shape) and B \(b.shape) disagree on the inner dimension (\(k) vs \(kb))")
            }
            if context.inputs.count > 2, let c = context.inputs[2] {
                guard broadcast(c.shape, Shape([m, n])) == Shape([m, n]) else {
                    throw context.mismatch("C \(c.shape) does not broadcast to (\(m), \(n))")
                }
            }
            return [TensorType(dtype: a.dtype, shape: Shape([m, n]))]
        }

        table[key(domain: "", opType: "MatMul")] = { context in
            let a = try context.input(0)
            let b = try context.input(1)
            guard a.shape.rank >= 1, b.shape.rank >= 1 else {
                throw context.mismatch("MatMul inputs must not be scalars")
            }
            // numpy.matmul: 1-D operands gain a dimension that is removed from the result.
            let aShape = a.shape.rank == 1 ? Shape([1, a.shape[0]]) : a.shape
            let bShape = b.shape.rank == 1 ? Shape([b.shape[0], 1]) : b.shape
            let k = aShape[aShape.rank - 1]
            guard k == bShape[bShape.rank - 2] else {
                throw context.mismatch("shapes \(a.shape) and \(b.shape) disagree on the inner dimension")
            }
            guard
                let batch = broadcast(
                    Shape(Array(aShape.dimensions.dropLast(2))), Shape(Array(bShape.dimensions.dropLast(2))))
            else {
                throw context.mismatch("batch dimensions of \(a.shape) and \(b.shape) do not broadcast")
            }
            var dims = batch.dimensions
            if a.shape.rank > 1 { dims.append(aShape[aShape.rank - 2]) }
            if b.shape.rank > 1 { dims.append(bShape[bShape.rank - 1]) }
            return [TensorType(dtype: a.dtype, shape: Shape(dims))]
        }
    }
}
