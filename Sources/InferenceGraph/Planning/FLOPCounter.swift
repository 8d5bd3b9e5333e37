import InferenceTensor

/// Floating-point operations per node of a plan (a multiply-add counts as two), from planned shapes.
/// Matrix products, convolutions and recurrent layers are exact; elementwise and normalization operators
/// count a small fixed number per output element; data movement counts zero.
public enum FLOPCounter {
    public static func count(_ plan: ExecutionPlan) -> Int {
        plan.steps.reduce(0) { $0 + count(step: $1, plan: plan) }
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
            return 2 * y.elementCount * k
        case "MatMul":
            guard let a = input(0) else { return 0 }
            return 2 * y.elementCount * (a.dimensions.last ?? 1)
        case "Conv":
            guard let w = input(1), w.rank >= 1 else { return 0 }
            return 2 * y.elementCount * w.dimensions.dropFirst().reduce(1, *)
        case "ConvTranspose":
            guard let x = input(0), let w = input(1) else { return 0 }
            return 2 * x.elementCount * w.dimensions.dropFirst().reduce(1, *)
        case "LSTM", "GRU":
            guard let x = input(0), let w = input(1), let r = input(2), x.rank == 3, w.rank == 3, r.rank == 3 else {
                return 0
            }
            let steps = x[0] * x[1]
            return 2 * steps * w[0] * (w[1] * w[2] + r[1] * r[2])
        case "MaxPool", "AveragePool":
            let kernel = (try? node.ints("kernel_shape")) ?? nil
            return y.elementCount * (kernel?.reduce(1, *) ?? 1)
        case "GlobalAveragePool", "GlobalMaxPool", "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ArgMax",
            "ArgMin":
            return input(0)?.elementCount ?? 0
        case "Softmax", "LogSoftmax", "LayerNormalization", "BatchNormalization":
            return 5 * y.elementCount
        case "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Concat", "Split", "Slice", "Gather", "Expand",
            "Tile", "Pad", "Identity", "Dropout", "Cast", "Shape", "Size", "ConstantOfShape", "Range", "If":
            return 0
        default:
            return y.elementCount
        }
    }
}
