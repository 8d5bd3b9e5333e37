import InferenceTensor

/// Operators whose output shapes depend on input values (NonZero, Compress, Unique, NonMaxSuppression): they
/// run on the host, on known tensors, wherever the rest of the model runs. A plan folds them when their inputs
/// are known at plan time; otherwise a session runs the graph in stages around them (see `Session`). Their shape
/// functions compute the result when the inputs are known and throw `ShapeError.valueNeeded` when not.
public enum DataDependentOperators {
    public typealias Function = @Sendable (_ node: Node, _ opset: Int, _ inputs: [Tensor?]) throws -> [Tensor]

    private static let table: [String: Function] = [
        "NonZero": nonZero, "Compress": compress, "Unique": unique, "NonMaxSuppression": nonMaxSuppression,
    ]

    /// The host function for an operator of the default domain, or nil.
    public static func function(opType: String, domain: String) -> Function? {
        domain.isEmpty || domain == "ai.onnx" ? table[opType] : nil
    }

    public static var operatorNames: [String] { table.keys.sorted() }

    /// The shape function shared by these operators: runs the operator when every input is known.
    static func shapeFunction(_ function: @escaping Function) -> ShapeFunction {
        { context in
            var inputs: [Tensor?] = []
            for index in context.inputs.indices {
                guard context.inputs[index] != nil else {
                    inputs.append(nil)
                    continue
                }
                guard let value = context.constants[index] else {
                    throw context.valueNeeded("its output shape depends on the values of input \(index)")
                }
                inputs.append(value)
            }
            return try function(context.node, context.opset, inputs).map {
                TensorType(dtype: $0.dtype, shape: $0.shape)
            }
        }
    }

    static func register(into table: inout [String: ShapeFunction]) {
        for (name, function) in Self.table {
            table[ShapeInference.key(domain: "", opType: name)] = shapeFunction(function)
        }
    }

    private static func required(_ inputs: [Tensor?], _ index: Int, _ node: Node) throws -> Tensor {
        guard index < inputs.count, let tensor = inputs[index] else {
            throw ShapeError.missingInput(node: node.displayName, index: index)
        }
        return tensor
    }

    /// Whether each element is non-zero (NaN counts as non-zero, -0 as zero).
    static func nonZeroMask(_ tensor: Tensor) throws -> [Bool] {
        switch tensor.dtype {
        case .float32: try tensor.scalars(as: Float.self).map { $0 != 0 }
        case .float64: try tensor.scalars(as: Double.self).map { $0 != 0 }
        case .float16: try tensor.scalars(as: Float16.self).map { $0 != 0 }
        case .bfloat16: try tensor.scalars(as: BFloat16.self).map { $0.float != 0 }
        default: try tensor.integerValues().map { $0 != 0 }
        }
    }

    /// The optional `axis` attribute of Compress and Unique: the tensor's dimensions and the normalized axis, or
    /// the flattened tensor (one axis) when there is none.
    private static func axisView(_ x: Tensor, _ node: Node) throws -> (dimensions: [Int], axis: Int, flattened: Bool) {
        let axisValue = try node.int("axis", default: Int.min)
        guard axisValue != Int.min else { return ([x.elementCount], 0, true) }
        let rank = x.shape.rank
        let axis = axisValue < 0 ? axisValue + rank : axisValue
        guard axis >= 0 && axis < rank else {
            throw ShapeError.mismatch(
                node: node.displayName, detail: "axis \(axisValue) is out of range for rank \(rank)")
        }
        return (x.shape.dimensions, axis, false)
    }

    public static func nonZero(_ node: Node, _ opset: Int, _ inputs: [Tensor?]) throws -> [Tensor] {
        let x = try required(inputs, 0, node)
        let mask = try nonZeroMask(x)
        let rank = x.shape.rank
        let positions = mask.indices.filter { mask[$0] }
        var result = [Int64](repeating: 0, count: rank * positions.count)
        let strides = x.shape.strides
        for (column, flat) in positions.enumerated() {
            var rest = flat
            for axis in 0..<rank {
                result[axis * positions.count + column] = Int64(rest / strides[axis])
                rest %= strides[axis]
            }
        }
        return [try Tensor(shape: [rank, positions.count], scalars: result)]
    }

    /// Copies slices `selected` (indices along `axis` of a tensor viewed as [outer, count, inner]) into a new
    /// tensor whose axis has `selected.count` entries.
    public static func gatherSlices(_ x: Tensor, dimensions: [Int], axis: Int, selected: [Int]) throws -> Tensor {
        var outDims = dimensions
        outDims[axis] = selected.count
        var result = try Tensor(uninitialized: x.dtype, shape: Shape(outDims))
        let outer = dimensions[..<axis].reduce(1, *)
        let count = dimensions[axis]
        let innerBytes = dimensions[(axis + 1)...].reduce(1, *) * x.dtype.byteSize
        try x.withUnsafeBytes { source in
            try result.withUnsafeMutableBytes { destination in
                guard let from = source.baseAddress, let to = destination.baseAddress, innerBytes > 0 else { return }
                var offset = 0
                for o in 0..<outer {
                    for index in selected {
                        (to + offset).copyMemory(from: from + (o * count + index) * innerBytes, byteCount: innerBytes)
                        offset += innerBytes
                    }
                }
            }
        }
        return result
    }

    public static func compress(_ node: Node, _ opset: Int, _ inputs: [Tensor?]) throws -> [Tensor] {
        let x = try required(inputs, 0, node)
        let condition = try nonZeroMask(try required(inputs, 1, node))
        let (dimensions, axis, _) = try axisView(x, node)
        let length = dimensions[axis]
        if condition.count > length, condition[length...].contains(true) {
            throw ShapeError.mismatch(
                node: node.displayName,
                detail: "the condition selects index \(condition.lastIndex(of: true) ?? length) of an axis of \(length)"
            )
        }
        let selected = condition.indices.filter { $0 < length && condition[$0] }
        return [try gatherSlices(x, dimensions: dimensions, axis: axis, selected: selected)]
    }

    /// The elements as values that order and compare as numbers do (a total order: -0 equals 0, NaNs last).
    private enum Key: Comparable {
        case integer(Int)
        case real(Double)

        static func < (a: Key, b: Key) -> Bool {
            switch (a, b) {
            case (.integer(let x), .integer(let y)): x < y
            case (.real(let x), .real(let y)):
                x.isTotallyOrdered(belowOrEqualTo: y) && !(y.isTotallyOrdered(belowOrEqualTo: x))
            default: false
            }
        }
    }

    private static func keys(_ tensor: Tensor) throws -> [Key] {
        func real(_ value: Double) -> Key { .real(value == 0 ? 0 : value) }
        switch tensor.dtype {
        case .float32: return try tensor.scalars(as: Float.self).map { real(Double($0)) }
        case .float64: return try tensor.scalars(as: Double.self).map { real($0) }
        case .float16: return try tensor.scalars(as: Float16.self).map { real(Double($0)) }
        case .bfloat16: return try tensor.scalars(as: BFloat16.self).map { real(Double($0.float)) }
        default: return try tensor.integerValues().map { .integer($0) }
        }
    }

    public static func unique(_ node: Node, _ opset: Int, _ inputs: [Tensor?]) throws -> [Tensor] {
        let x = try required(inputs, 0, node)
        let sorted = try node.int("sorted", default: 1) != 0
        let (dimensions, axis, flattened) = try axisView(x, node)
        let values = try keys(x)
        let outer = dimensions[..<axis].reduce(1, *)
        let count = dimensions[axis]
        let inner = dimensions[(axis + 1)...].reduce(1, *)
        // Slice s: the elements x[o, s, i] for every o, i, in row-major order.
        func slice(_ s: Int) -> [Key] {
            var result: [Key] = []
            result.reserveCapacity(outer * inner)
            for o in 0..<outer { result += values[(o * count + s) * inner..<(o * count + s + 1) * inner] }
            return result
        }
        let slices = (0..<count).map(slice)
        func less(_ a: Int, _ b: Int) -> Bool { slices[a].lexicographicallyPrecedes(slices[b]) }
        // Sort stably, then group equal neighbours: each group's first member is its first occurrence.
        let order = (0..<count).sorted { less($0, $1) || (!less($1, $0) && $0 < $1) }
        var groups: [[Int]] = []
        for index in order {
            if let last = groups.last?.first, !less(last, index) && !less(index, last) {
                groups[groups.count - 1].append(index)
            } else {
                groups.append([index])
            }
        }
        if !sorted { groups.sort { $0[0] < $1[0] } }
        var inverse = [Int64](repeating: 0, count: count)
        for (position, group) in groups.enumerated() { for member in group { inverse[member] = Int64(position) } }
        let y = try gatherSlices(x, dimensions: dimensions, axis: axis, selected: groups.map { $0[0] })
        let reshaped = flattened ? try y.reshaped([groups.count]) : y
        return [
            reshaped,
            try Tensor(shape: [groups.count], scalars: groups.map { Int64($0[0]) }),
            try Tensor(shape: [count], scalars: inverse),
            try Tensor(shape: [groups.count], scalars: groups.map { Int64($0.count) }),
        ]
    }

    public static func nonMaxSuppression(_ node: Node, _ opset: Int, _ inputs: [Tensor?]) throws -> [Tensor] {
        let name = node.displayName
        let boxesTensor = try required(inputs, 0, node), scoresTensor = try required(inputs, 1, node)
        guard boxesTensor.shape.rank == 3, boxesTensor.shape[2] == 4, scoresTensor.shape.rank == 3,
            scoresTensor.shape[0] == boxesTensor.shape[0], scoresTensor.shape[2] == boxesTensor.shape[1]
        else {
            throw ShapeError.mismatch(
                node: name,
                detail:
                    "boxes \(boxesTensor.shape) must be [batches, boxes, 4] and scores \(scoresTensor.shape) [batches, classes, boxes]"
            )
        }
        func floats(_ tensor: Tensor) throws -> [Double] {
            switch tensor.dtype {
            case .float32: try tensor.scalars(as: Float.self).map { Double($0) }
            case .float64: try tensor.scalars(as: Double.self)
            case .float16: try tensor.scalars(as: Float16.self).map { Double($0) }
            case .bfloat16: try tensor.scalars(as: BFloat16.self).map { Double($0.float) }
            default: throw ShapeError.mismatch(node: name, detail: "boxes and scores must be floating point")
            }
        }
        func scalar(_ index: Int) -> Tensor? {
            index < inputs.count ? inputs[index].flatMap { $0.elementCount == 0 ? nil : $0 } : nil
        }
        let boxes = try floats(boxesTensor), scores = try floats(scoresTensor)
        let maxPerClass = try scalar(2).map { max(try $0.integerValues()[0], 0) } ?? 0
        let iouThreshold = try scalar(3).map { try floats($0)[0] } ?? 0
        let scoreThreshold = try scalar(4).map { try floats($0)[0] }
        let centerPoint = try node.int("center_point_box", default: 0) != 0
        let batches = boxesTensor.shape[0], count = boxesTensor.shape[1], classes = scoresTensor.shape[1]

        // Per box: x1, y1, x2, y2 with x1 <= x2, y1 <= y2.
        func corners(_ b: Int, _ i: Int) -> (Double, Double, Double, Double) {
            let base = (b * count + i) * 4
            let v = boxes[base..<base + 4].map { $0 }
            if centerPoint { return (v[0] - v[2] / 2, v[1] - v[3] / 2, v[0] + v[2] / 2, v[1] + v[3] / 2) }
            return (min(v[1], v[3]), min(v[0], v[2]), max(v[1], v[3]), max(v[0], v[2]))
        }
        func suppresses(_ a: (Double, Double, Double, Double), _ b: (Double, Double, Double, Double)) -> Bool {
            let width = min(a.2, b.2) - max(a.0, b.0), height = min(a.3, b.3) - max(a.1, b.1)
            guard width > 0, height > 0 else { return false }
            let intersection = width * height
            let areaA = (a.2 - a.0) * (a.3 - a.1), areaB = (b.2 - b.0) * (b.3 - b.1)
            let union = areaA + areaB - intersection
            guard areaA > 0, areaB > 0, union > 0 else { return false }
            return intersection / union > iouThreshold
        }
        var selected: [Int64] = []
        for b in 0..<batches {
            let boxCorners = (0..<count).map { corners(b, $0) }
            for c in 0..<classes where maxPerClass > 0 {
                let base = (b * classes + c) * count
                var candidates = (0..<count).filter { i in scoreThreshold.map { scores[base + i] > $0 } ?? true }
                // Highest score first; equal scores in box order.
                candidates.sort {
                    scores[base + $0] > scores[base + $1] || (scores[base + $0] == scores[base + $1] && $0 < $1)
                }
                var kept: [Int] = []
                for candidate in candidates {
                    guard kept.count < maxPerClass else { break }
                    if kept.contains(where: { suppresses(boxCorners[candidate], boxCorners[$0]) }) { continue }
                    kept.append(candidate)
                    selected += [Int64(b), Int64(c), Int64(candidate)]
                }
            }
        }
        return [try Tensor(shape: [selected.count / 3, 3], scalars: selected)]
    }
}
