import InferenceTensor

/// Floating-point operations per node of a plan (a multiply-add counts as two), from planned shapes.
/// Matrix products, convolutions and recurrent layers are exact; elementwise and normalization operators
/// count a small fixed number per output element; data movement counts zero.
public enum FLOPCounter {
    public static func count(_ plan: ExecutionPlan) -> Int {
        plan.steps.reduce(0) { total, step in
            let (sum, overflow) = total.addingReportingOverflow(count(step: step, plan: plan))
            return overflow ? Int.max : sum
        }
    }

    /// The product of counts, saturating at Int.max (shapes come from the model's file).
    static func product(_ factors: Int...) -> Int { product(factors) }

    static func product<C: Collection<Int>>(_ factors: C) -> Int {
        var result = 1
        for factor in factors {
            let (next, overflow) = result.multipliedReportingOverflow(by: max(factor, 0))
            if overflow { return Int.max }
            result = next
        }
        return result
    }

    public static func count(step: PlannedStep, plan: ExecutionPlan) -> Int {
        let inputs = step.inputs.map { $0.map { plan.values[$0].type.shape } }
        let outputs = step.outputs.map { plan.values[$0].type.shape }
        guard let y = outputs.first else { return 0 }
        let node = step.node
        func input(_ i: Int) -> Shape? { i < inputs.count ? inputs[i] : nil }
        switch node.opType {
        case "Gemm":
            guard let a = input(0), a.rank == 2 else { return 0 }
            let k = (try? node.int("transA", default: 0)) == 1 ? a[0] : a[1]
            return product(2, y.elementCount, k)
        case "MatMul", "MatMulInteger", "QLinearMatMul", QuantizedFusion.scaledMatMulInteger:
            // Integer multiply-adds count like float ones (two operations each).
            guard let a = input(0) else { return 0 }
            return product(2, y.elementCount, a.dimensions.last ?? 1)
        case "ConvInteger", "QLinearConv":
            guard let w = input(node.opType == "QLinearConv" ? 3 : 1), w.rank >= 1 else { return 0 }
            return product(2, y.elementCount, product(w.dimensions.dropFirst()))
        case "Attention":
            // Q·Kᵀ and the weighted sum of V: 2·(query positions)·(keys)·(head size + value head size) per head.
            guard let q = input(0), let k = input(1), let v = input(2), q.rank == k.rank, q.rank == v.rank,
                q.rank >= 3
            else { return 0 }
            let keys = k[k.rank - 2]
            if q.rank == 4 { return product(2, q.elementCount / q[3] * keys, q[3] + v[3]) }
            // Packed [batch, length, heads·size]: heads cancel out of positions × size.
            return product(2, q.elementCount * keys, 1) + product(2, q.elementCount / max(q[2], 1) * keys, v[2])
        case "Conv":
            guard let w = input(1), w.rank >= 1 else { return 0 }
            return product(2, y.elementCount, product(w.dimensions.dropFirst()))
        case "ConvTranspose":
            guard let x = input(0), let w = input(1) else { return 0 }
            return product(2, x.elementCount, product(w.dimensions.dropFirst()))
        case "LSTM", "GRU":
            guard let x = input(0), let w = input(1), let r = input(2), x.rank == 3, w.rank == 3, r.rank == 3 else {
                return 0
            }
            let perStep = product(w[1], w[2]).addingReportingOverflow(product(r[1], r[2]))
            return perStep.overflow ? Int.max : product(2, x[0], x[1], w[0], perStep.partialValue)
        case "MaxPool", "AveragePool":
            let kernel = (try? node.ints("kernel_shape")) ?? nil
            return product(y.elementCount, product(kernel ?? [1]))
        case "GlobalAveragePool", "GlobalMaxPool", "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ArgMax",
            "ArgMin":
            return input(0)?.elementCount ?? 0
        case "Softmax", "LogSoftmax", "LayerNormalization", "BatchNormalization":
            return product(5, y.elementCount)
        case "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Concat", "Split", "Slice", "Gather", "Expand",
            "Tile", "Pad", "Identity", "Dropout", "Cast", "Shape", "Size", "ConstantOfShape", "Range", "If":
            return 0
        default:
            return y.elementCount
        }
    }
}
