import InferenceTensor

extension ShapeInference {
    /// The axes a reduction reduces (sorted, normalized), from the attribute or the `axes` input by opset.
    /// An empty result with `noop_with_empty_axes` means "reduce nothing".
    public static func reductionAxes(_ context: ShapeInferenceContext, rank: Int) throws -> [Int] {
        let op = context.node.opType
        let axesAsInput = (op == "ReduceSum" && context.opset >= 13) || context.opset >= 18
        let raw: [Int]?
        if axesAsInput {
            raw = context.has(1) ? try context.requiredInts(1, "axes") : nil
        } else {
            raw = try context.node.ints("axes")
        }
        if let raw, !raw.isEmpty { return try Set(raw.map { try context.axis($0, rank: rank) }).sorted() }
        let noop = try context.node.int("noop_with_empty_axes", default: 0) != 0
        return noop ? [] : Array(0..<rank)
    }

    static func registerReductions(into table: inout [String: ShapeFunction]) {
        let reduce: ShapeFunction = { context in
            let x = try context.input(0)
            let axes = Set(try reductionAxes(context, rank: x.shape.rank))
            let keep = try context.node.int("keepdims", default: 1) != 0
            var dims: [Int] = []
            for (axis, d) in x.shape.dimensions.enumerated() {
                if axes.contains(axis) { if keep { dims.append(1) } } else { dims.append(d) }
            }
            return [TensorType(dtype: x.dtype, shape: Shape(dims))]
        }
        for op in [
            "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL2", "ReduceSumSquare",
            "ReduceL1",
            "ReduceLogSum", "ReduceLogSumExp",
        ] {
            table[key(domain: "", opType: op)] = reduce
        }

        let argReduce: ShapeFunction = { context in
            let x = try context.input(0)
            let axis = try context.axis(try context.node.int("axis", default: 0), rank: x.shape.rank)
            let keep = try context.node.int("keepdims", default: 1) != 0
            var dims = x.shape.dimensions
            if keep { dims[axis] = 1 } else { dims.remove(at: axis) }
            return [TensorType(dtype: .int64, shape: Shape(dims))]
        }
        table[key(domain: "", opType: "ArgMax")] = argReduce
        table[key(domain: "", opType: "ArgMin")] = argReduce
    }
}
