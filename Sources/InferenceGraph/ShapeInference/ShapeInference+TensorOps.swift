import InferenceTensor

/// Resolved Slice parameters for every axis of the input (axes not sliced take the whole range).
public struct SliceParameters: Sendable, Equatable {
    public var starts: [Int]
    public var steps: [Int]
    public var outputDimensions: [Int]

    /// numpy-style slicing with ONNX's clamping rules (negative indices count from the end; steps may be
    /// negative; out-of-range starts and ends are clamped).
    public static func resolve(
        shape: Shape, starts: [Int], ends: [Int], axes: [Int]?, steps: [Int]?
    ) -> SliceParameters? {
        let rank = shape.rank
        var resolvedStarts = [Int](repeating: 0, count: rank)
        var resolvedSteps = [Int](repeating: 1, count: rank)
        var dims = shape.dimensions
        let axes = axes ?? Array(0..<starts.count)
        guard starts.count == ends.count, axes.count == starts.count, (steps?.count ?? starts.count) == starts.count
        else { return nil }
        var seen = Set<Int>()
        for (i, rawAxis) in axes.enumerated() {
            let axis = rawAxis < 0 ? rawAxis + rank : rawAxis
            guard axis >= 0 && axis < rank, seen.insert(axis).inserted else { return nil }
            let dim = shape[axis]
            let step = steps?[i] ?? 1
            guard step != 0 else { return nil }
            var start = starts[i]
            var end = ends[i]
            if start < 0 { start += dim }
            if end < 0 { end += dim }
            // Steps may be anything from Int.min to Int.max: count through the step's magnitude (no negation, no
            // sum that can overflow), then store a step of 1 where at most one element is taken.
            if step > 0 {
                start = min(max(start, 0), dim)
                end = min(max(end, 0), dim)
                dims[axis] = end > start ? 1 + Int((UInt(end - start) - 1) / step.magnitude) : 0
            } else {
                start = min(max(start, 0), dim - 1)
                end = min(max(end, -1), dim - 1)
                dims[axis] = start > end ? 1 + Int((UInt(start - end) - 1) / step.magnitude) : 0
            }
            resolvedStarts[axis] = max(start, 0)
            resolvedSteps[axis] = dims[axis] <= 1 ? 1 : step
        }
        return SliceParameters(starts: resolvedStarts, steps: resolvedSteps, outputDimensions: dims)
    }
}

extension ShapeInference {
    /// Elements of an integer Range: ceil((limit - start) / delta), at least 0, computed without overflow (the
    /// distance between two Int values always fits in UInt).
    public static func rangeCount(start: Int, limit: Int, delta: Int) -> Int {
        guard delta != 0 else { return 0 }
        let distance: UInt
        if delta > 0 && limit > start {
            distance = UInt(bitPattern: limit &- start)
        } else if delta < 0 && start > limit {
            distance = UInt(bitPattern: start &- limit)
        } else {
            return 0
        }
        let count = (distance - 1) / delta.magnitude + 1
        return count > UInt(Int.max) ? Int.max : Int(count)
    }

    /// Reshape's target shape: 0 copies the input dimension (unless `allowZero`), -1 is inferred.
    public static func reshapeTarget(_ input: Shape, _ requested: [Int], allowZero: Bool) -> [Int]? {
        var dims = requested
        var inferred: Int?
        for (i, d) in requested.enumerated() {
            if d == 0 && !allowZero {
                guard i < input.rank else { return nil }
                dims[i] = input[i]
            } else if d == -1 {
                guard inferred == nil else { return nil }
                inferred = i
            } else if d < 0 {
                return nil
            }
        }
        if let inferred {
            let others = dims.enumerated().filter { $0.offset != inferred }.map(\.element)
            guard let known = Shape.checkedElementCount(others), known > 0, input.elementCount % known == 0 else {
                return nil
            }
            dims[inferred] = input.elementCount / known
        }
        return Shape.checkedElementCount(dims) == input.elementCount ? dims : nil
    }

    /// Split sizes along the axis, from the `split` input/attribute or an even split into `outputs` parts.
    public static func splitSizes(_ context: ShapeInferenceContext, dimension: Int) throws -> [Int] {
        let outputs = context.node.outputs.count
        var sizes: [Int]?
        if context.opset >= 13 { sizes = try context.constantInts(1) } else { sizes = try context.node.ints("split") }
        if let sizes, !sizes.isEmpty {
            guard sizes.reduce(0, +) == dimension, sizes.count == outputs else {
                throw context.mismatch("split sizes \(sizes) do not add up to \(dimension) over \(outputs) outputs")
            }
            return sizes
        }
        let splitKnown = try context.constantInts(1) != nil
        if context.has(1) && context.opset >= 13 && !splitKnown {
            throw context.valueNeeded("the 'split' input must be known when the model is planned")
        }
        let parts = try context.node.int("num_outputs", default: outputs)
        guard parts > 0 else { throw context.mismatch("cannot split into \(parts) parts") }
        let chunk = (dimension + parts - 1) / parts
        return (0..<parts).map { max(0, min(chunk, dimension - $0 * chunk)) }
    }

    static func registerTensorOps(into table: inout [String: ShapeFunction]) {
        for register in [
            registerReshapeConcatSplit, registerSliceGatherSqueeze, registerExpandTileRangePad,
            registerShapeAndControlFlow,
        ] { register(&table) }
    }

    /// Flatten, Reshape, Transpose, Concat, Split.
    private static func registerReshapeConcatSplit(into table: inout [String: ShapeFunction]) {
        table[key(domain: "", opType: "Flatten")] = { context in
            let x = try context.input(0)
            let rank = x.shape.rank
            let raw = try context.node.int("axis", default: 1)
            let axis = raw < 0 ? raw + rank : raw
            guard axis >= 0 && axis <= rank else { throw context.mismatch("axis \(raw) out of range for rank \(rank)") }
            let outer = x.shape.dimensions[..<axis].reduce(1, *)
            let inner = x.shape.dimensions[axis...].reduce(1, *)
            return [TensorType(dtype: x.dtype, shape: [outer, inner])]
        }

        table[key(domain: "", opType: "Reshape")] = { context in
            let x = try context.input(0)
            let requested =
                context.opset >= 5
                ? try context.requiredInts(1, "the target shape") : (try context.node.ints("shape") ?? [])
            let allowZero = try context.node.int("allowzero", default: 0) != 0
            guard let dims = reshapeTarget(x.shape, requested, allowZero: allowZero) else {
                throw context.mismatch("cannot reshape \(x.shape) (\(x.shape.elementCount) elements) to \(requested)")
            }
            return [TensorType(dtype: x.dtype, shape: Shape(dims))]
        }

        table[key(domain: "", opType: "Transpose")] = { context in
            let x = try context.input(0)
            let perm = try context.node.ints("perm") ?? Array((0..<x.shape.rank).reversed())
            guard perm.count == x.shape.rank, Set(perm) == Set(0..<x.shape.rank) else {
                throw context.mismatch("perm \(perm) is not a permutation of the \(x.shape.rank) axes")
            }
            return [TensorType(dtype: x.dtype, shape: Shape(perm.map { x.shape[$0] }))]
        }

        table[key(domain: "", opType: "Concat")] = { context in
            let types = try context.inputs.indices.map { try context.input($0) }
            guard let first = types.first else { throw context.mismatch("Concat needs inputs") }
            let axis = try context.axis(try context.node.int("axis", default: 0), rank: first.shape.rank)
            var dims = first.shape.dimensions
            dims[axis] = 0
            for type in types {
                guard type.shape.rank == first.shape.rank, type.dtype == first.dtype else {
                    throw context.mismatch("inputs \(types.map(\.description)) differ in rank or type")
                }
                for i in 0..<dims.count where i != axis && type.shape[i] != first.shape[i] {
                    throw context.mismatch("inputs \(types.map { $0.shape.description }) differ outside axis \(axis)")
                }
                dims[axis] += type.shape[axis]
            }
            return [TensorType(dtype: first.dtype, shape: Shape(dims))]
        }

        table[key(domain: "", opType: "Split")] = { context in
            let x = try context.input(0)
            let axis = try context.axis(try context.node.int("axis", default: 0), rank: x.shape.rank)
            let sizes = try splitSizes(context, dimension: x.shape[axis])
            return sizes.map { size in
                var dims = x.shape.dimensions
                dims[axis] = size
                return TensorType(dtype: x.dtype, shape: Shape(dims))
            }
        }
    }

    /// Slice, Gather, Squeeze, Unsqueeze.
    private static func registerSliceGatherSqueeze(into table: inout [String: ShapeFunction]) {

        table[key(domain: "", opType: "Slice")] = { context in
            let x = try context.input(0)
            return [TensorType(dtype: x.dtype, shape: Shape(try SliceParameters.parse(context).outputDimensions))]
        }

        table[key(domain: "", opType: "Gather")] = { context in
            let data = try context.input(0)
            let indices = try context.input(1)
            let axis = try context.axis(try context.node.int("axis", default: 0), rank: data.shape.rank)
            let dims =
                Array(data.shape.dimensions[..<axis]) + indices.shape.dimensions
                + Array(data.shape.dimensions[(axis + 1)...])
            return [TensorType(dtype: data.dtype, shape: Shape(dims))]
        }

        table[key(domain: "", opType: "Squeeze")] = { context in
            let x = try context.input(0)
            let axesValue = context.opset >= 13 ? try context.constantInts(1) : try context.node.ints("axes")
            if context.opset >= 13 && context.has(1) && axesValue == nil {
                throw context.valueNeeded("axes must be known when the model is planned")
            }
            var dims = x.shape.dimensions
            if let axesValue {
                let axes = try Set(axesValue.map { try context.axis($0, rank: x.shape.rank) })
                for axis in axes where dims[axis] != 1 {
                    throw context.mismatch("cannot squeeze axis \(axis) of \(x.shape)")
                }
                dims = dims.enumerated().filter { !axes.contains($0.offset) }.map(\.element)
            } else {
                dims = dims.filter { $0 != 1 }
            }
            return [TensorType(dtype: x.dtype, shape: Shape(dims))]
        }

        table[key(domain: "", opType: "Unsqueeze")] = { context in
            let x = try context.input(0)
            let axesValue =
                context.opset >= 13 ? try context.requiredInts(1, "axes") : (try context.node.ints("axes") ?? [])
            let rank = x.shape.rank + axesValue.count
            let axes = try Set(axesValue.map { try context.axis($0, rank: rank) })
            guard axes.count == axesValue.count else { throw context.mismatch("repeated axes \(axesValue)") }
            var source = x.shape.dimensions.makeIterator()
            let dims = (0..<rank).map { axes.contains($0) ? 1 : (source.next() ?? 1) }
            return [TensorType(dtype: x.dtype, shape: Shape(dims))]
        }
    }

    /// Expand, ConstantOfShape, Tile, Range, Pad.
    private static func registerExpandTileRangePad(into table: inout [String: ShapeFunction]) {

        table[key(domain: "", opType: "Expand")] = { context in
            let x = try context.input(0)
            let target = try context.requiredInts(1, "the target shape")
            guard target.allSatisfy({ $0 >= 0 }), let shape = broadcast(x.shape, Shape(target)) else {
                throw context.mismatch("cannot expand \(x.shape) to \(target)")
            }
            return [TensorType(dtype: x.dtype, shape: shape)]
        }

        table[key(domain: "", opType: "ConstantOfShape")] = { context in
            let dims = try context.requiredInts(0, "the shape")
            guard dims.allSatisfy({ $0 >= 0 }) else { throw context.mismatch("negative dimension in \(dims)") }
            var dtype = DType.float32
            if case .tensor(let value)? = context.node.attributes["value"] { dtype = value.dtype }
            return [TensorType(dtype: dtype, shape: Shape(dims))]
        }

        table[key(domain: "", opType: "Tile")] = { context in
            let x = try context.input(0)
            let repeats = try context.requiredInts(1, "repeats")
            guard repeats.count == x.shape.rank, repeats.allSatisfy({ $0 >= 0 && $0 < 1 << 31 }) else {
                throw context.mismatch("repeats \(repeats) do not fit \(x.shape)")
            }
            return [TensorType(dtype: x.dtype, shape: Shape(zip(x.shape.dimensions, repeats).map { $0 &* $1 }))]
        }

        table[key(domain: "", opType: "Range")] = { context in
            let start = try context.input(0)
            guard let s = try context.constantFloatsOrInts(0), let l = try context.constantFloatsOrInts(1),
                let d = try context.constantFloatsOrInts(2), s.count == 1, l.count == 1, d.count == 1
            else {
                if context.constants.prefix(3).contains(where: { $0 == nil }) {
                    throw context.valueNeeded("start, limit and delta must be known when the model is planned")
                }
                throw context.mismatch("start, limit and delta must be scalars")
            }
            guard d[0] != 0 else { throw context.mismatch("delta must not be 0") }
            if !start.dtype.isFloatingPoint, let si = try context.constantInts(0)?.first,
                let li = try context.constantInts(1)?.first, let di = try context.constantInts(2)?.first
            {
                // Integers count exactly (a Double would round start and limit past 2^53).
                let count = rangeCount(start: si, limit: li, delta: di)
                guard count < 1 << 40 else { throw context.mismatch("Range would have \(count) elements") }
                return [TensorType(dtype: start.dtype, shape: [count])]
            }
            let steps = ((l[0] - s[0]) / d[0]).rounded(.up)
            guard steps.isFinite || steps.isNaN, steps < Double(1 << 40) else {
                throw context.mismatch("Range would have \(steps) elements")
            }
            let count = steps.isNaN ? 0 : max(Int(steps), 0)
            return [TensorType(dtype: start.dtype, shape: [count])]
        }

        table[key(domain: "", opType: "Pad")] = { context in
            let x = try context.input(0)
            let pads = try padAmounts(context, rank: x.shape.rank)
            let rank = x.shape.rank
            var dims = x.shape.dimensions
            guard pads.allSatisfy({ $0.magnitude < 1 << 31 }) else {
                throw context.mismatch("pads \(pads) are out of range")
            }
            for axis in 0..<rank {
                dims[axis] += pads[axis] + pads[axis + rank]
                guard dims[axis] >= 0 else { throw context.mismatch("pads \(pads) remove more than \(x.shape) has") }
            }
            return [TensorType(dtype: x.dtype, shape: Shape(dims))]
        }
    }

    /// Shape, Size, Loop, Scan, If.
    private static func registerShapeAndControlFlow(into table: inout [String: ShapeFunction]) {

        table[key(domain: "", opType: "Shape")] = { context in
            let x = try context.input(0)
            let rank = x.shape.rank
            func clamp(_ axis: Int) -> Int { min(max(axis < 0 ? axis + rank : axis, 0), rank) }
            let start = clamp(try context.node.int("start", default: 0))
            let end = clamp(try context.node.int("end", default: rank))
            return [TensorType(dtype: .int64, shape: [max(0, end - start)])]
        }

        table[key(domain: "", opType: "Size")] = { _ in [TensorType(dtype: .int64, shape: [])] }

        // Loop and Scan run their body once per iteration on the host side of a session (see `ControlFlow` in
        // the runtime); their output shapes are what the iterations produce.
        table[key(domain: "", opType: "Loop")] = { context in
            throw context.valueNeeded("a loop's outputs are known when it has run")
        }
        table[key(domain: "", opType: "Scan")] = { context in
            throw context.valueNeeded("a scan's outputs are known when it has run")
        }

        table[key(domain: "", opType: "If")] = { context in
            guard case .graph(let thenBranch)? = context.node.attributes["then_branch"],
                case .graph(let elseBranch)? = context.node.attributes["else_branch"]
            else { throw context.mismatch("If needs then_branch and else_branch graphs") }
            var types: [String: TensorType] = [:]
            var known: [String: Tensor] = [:]
            for (position, input) in thenBranch.inputs.enumerated() {
                types[input.name] = try context.input(position + 1)
                if position + 1 < context.constants.count, let value = context.constants[position + 1] {
                    known[input.name] = value
                }
            }
            if let condition = context.constants.first ?? nil {
                let taken = try condition.integerValues().first ?? 0
                return try (taken != 0 ? thenBranch : elseBranch).inferOutputTypes(
                    inputTypes: types, known: known, evaluator: context.evaluator)
            }
            let thenTypes = try thenBranch.inferOutputTypes(
                inputTypes: types, known: known, evaluator: context.evaluator)
            let elseTypes = try elseBranch.inferOutputTypes(
                inputTypes: types, known: known, evaluator: context.evaluator)
            guard thenTypes == elseTypes else {
                throw context.valueNeeded(
                    "the branches produce different types (\(thenTypes) and \(elseTypes)), so the output type is known when the condition is"
                )
            }
            return thenTypes
        }
    }

    /// Pad's begin and end amounts for every axis (`[b0, b1, ..., e0, e1, ...]`), from the attribute
    /// (opset < 11) or the `pads` input with optional `axes` (opset 18).
    public static func padAmounts(_ context: ShapeInferenceContext, rank: Int) throws -> [Int] {
        let raw = context.opset >= 11 ? try context.requiredInts(1, "pads") : (try context.node.ints("pads") ?? [])
        if context.opset >= 18 && context.has(3) {
            let axes = try context.requiredInts(3, "axes").map { try context.axis($0, rank: rank) }
            guard raw.count == 2 * axes.count else { throw context.mismatch("pads \(raw) do not fit axes \(axes)") }
            var pads = [Int](repeating: 0, count: 2 * rank)
            for (i, axis) in axes.enumerated() {
                pads[axis] = raw[i]
                pads[axis + rank] = raw[i + axes.count]
            }
            return pads
        }
        guard raw.count == 2 * rank else {
            throw context.mismatch("pads \(raw) need \(2 * rank) values for rank \(rank)")
        }
        return raw
    }
}

extension ShapeInferenceContext {
    /// A known numeric input as doubles (any dtype).
    func constantFloatsOrInts(_ index: Int) throws -> [Double]? {
        guard index < constants.count, let tensor = constants[index] else { return nil }
        switch tensor.dtype {
        case .float32: return try tensor.scalars(as: Float.self).map { Double($0) }
        case .float64: return try tensor.scalars(as: Double.self)
        case .float16: return try tensor.scalars(as: Float16.self).map { Double($0) }
        case .bfloat16: return try tensor.scalars(as: BFloat16.self).map { Double($0.float) }
        default: return try tensor.integerValues().map { Double($0) }
        }
    }
}
