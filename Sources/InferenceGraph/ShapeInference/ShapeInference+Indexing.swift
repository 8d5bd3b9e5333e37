import InferenceTensor

/// GatherND and ScatterND: how an index tuple addresses `data` (shared by shape inference and the kernels).
public struct IndexTupleGeometry: Equatable, Sendable {
    /// Leading axes shared by data and indices (GatherND's `batch_dims`; 0 for ScatterND).
    public var batchDims: Int
    /// Length of one index tuple: the last dimension of `indices`.
    public var tupleLength: Int
    /// Index tuples per batch entry.
    public var tuplesPerBatch: Int
    /// Batch entries (product of the batch dimensions).
    public var batches: Int
    /// Elements one tuple addresses (product of data's dimensions after the indexed ones).
    public var sliceCount: Int
    /// Data's dimensions the tuple indexes, in order.
    public var indexedDims: [Int]
    /// Element strides of those dimensions in data.
    public var indexedStrides: [Int]
    /// Elements of data per batch entry.
    public var batchStride: Int
    /// The output (GatherND) or updates (ScatterND) shape.
    public var resultShape: [Int]

    /// - Throws: a description of the mismatch.
    public static func resolve(data: [Int], indices: [Int], batchDims: Int) throws(ShapeError.Detail)
        -> IndexTupleGeometry
    {
        let r = data.count, q = indices.count
        guard q >= 1, r >= 1 else { throw .init("data and indices need rank 1 or more (got \(r) and \(q))") }
        guard batchDims >= 0, batchDims < min(q, r) else {
            throw .init("batch_dims \(batchDims) must be in [0, \(min(q, r) - 1)]")
        }
        guard Array(data[..<batchDims]) == Array(indices[..<batchDims]) else {
            throw .init("the first \(batchDims) dimensions of data \(data) and indices \(indices) differ")
        }
        let last = indices[q - 1]
        guard last >= 1, last <= r - batchDims else {
            throw .init("index tuples of length \(last) cannot address data of rank \(r) with \(batchDims) batch dims")
        }
        let strides = Self.strides(data)
        return IndexTupleGeometry(
            batchDims: batchDims, tupleLength: last,
            tuplesPerBatch: indices[batchDims..<(q - 1)].reduce(1, *), batches: data[..<batchDims].reduce(1, *),
            sliceCount: data[(batchDims + last)...].reduce(1, *),
            indexedDims: Array(data[batchDims..<(batchDims + last)]),
            indexedStrides: Array(strides[batchDims..<(batchDims + last)]),
            batchStride: data[batchDims...].reduce(1, *),
            resultShape: Array(indices[..<(q - 1)]) + Array(data[(batchDims + last)...]))
    }

    static func strides(_ dims: [Int]) -> [Int] { ShapeInference.rowMajorStrides(dims) }
}

extension ShapeInference {
    /// Row-major strides of a dimension list, in elements (the one definition every backend uses).
    public static func rowMajorStrides(_ dims: [Int]) -> [Int] {
        var strides = [Int](repeating: 1, count: dims.count)
        var running = 1
        for axis in stride(from: dims.count - 1, through: 0, by: -1) {
            strides[axis] = running
            running *= dims[axis]
        }
        return strides
    }
}

extension ShapeError {
    /// A mismatch found by a geometry helper that does not know the node; the caller adds it.
    public struct Detail: Error, Sendable {
        public var text: String
        public init(_ text: String) { self.text = text }
    }
}

/// DepthToSpace and SpaceToDepth as a reshape to rank 6, a transpose and a reshape back.
public struct BlockRearrangement: Equatable, Sendable {
    public var inputDims6: [Int]
    public var permutation: [Int]
    public var outputDims: [Int]

    public static func resolve(opType: String, shape: [Int], blockSize: Int, mode: String) throws(ShapeError.Detail)
        -> BlockRearrangement
    {
        guard shape.count == 4 else { throw .init("expects a rank-4 NCHW input, got \(shape)") }
        guard blockSize >= 1, blockSize <= 1 << 16 else { throw .init("blocksize \(blockSize) is out of range") }
        let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3])
        let b = blockSize, bb = blockSize * blockSize
        if opType == "DepthToSpace" {
            guard c % bb == 0 else { throw .init("channels \(c) are not a multiple of blocksize² \(bb)") }
            switch mode {
            case "DCR":
                return BlockRearrangement(
                    inputDims6: [n, b, b, c / bb, h, w], permutation: [0, 3, 4, 1, 5, 2],
                    outputDims: [n, c / bb, h * b, w * b])
            case "CRD":
                return BlockRearrangement(
                    inputDims6: [n, c / bb, b, b, h, w], permutation: [0, 1, 4, 2, 5, 3],
                    outputDims: [n, c / bb, h * b, w * b])
            default: throw .init("mode '\(mode)' is not DCR or CRD")
            }
        }
        guard h % b == 0, w % b == 0 else { throw .init("height \(h) and width \(w) must be multiples of \(b)") }
        return BlockRearrangement(
            inputDims6: [n, c, h / b, b, w / b, b], permutation: [0, 3, 5, 1, 2, 4],
            outputDims: [n, c * bb, h / b, w / b])
    }
}

/// A parsed Einsum equation: one label list per operand and for the output, with the size of each label.
public struct EinsumEquation: Equatable, Sendable {
    /// Per operand, its labels as indices into `sizes` (an ellipsis expanded to its own labels).
    public var operands: [[Int]]
    public var output: [Int]
    /// Size of every label (the broadcast size for ellipsis labels).
    public var sizes: [Int]

    public static func resolve(_ equation: String, shapes: [[Int]]) throws(ShapeError.Detail) -> EinsumEquation {
        let text = equation.filter { $0 != " " }
        let sides = text.components(separatedBy: "->")
        guard sides.count <= 2 else { throw .init("equation '\(equation)' has more than one '->'") }
        let terms = sides[0].components(separatedBy: ",")
        guard terms.count == shapes.count else {
            throw .init("equation '\(equation)' names \(terms.count) operands, the node has \(shapes.count)")
        }
        var labelIndex: [Character: Int] = [:]
        var sizes: [Int] = []
        var ellipsisRank = 0
        // Ellipsis labels are numbered 0..<ellipsisRank (right-aligned across operands, broadcast).
        var ellipsisSizes: [Int] = []
        var parsed: [Term] = []
        for term in terms { parsed.append(try letters(term, in: equation)) }
        for (term, shape) in zip(parsed, shapes) {
            let named = term.before.count + term.after.count
            guard term.dots ? shape.count >= named : shape.count == named else {
                throw .init(
                    "term '\(String(term.before))\(term.dots ? "..." : "")\(String(term.after))' does not fit "
                        + "an operand of shape \(shape)")
            }
            if term.dots { ellipsisRank = max(ellipsisRank, shape.count - named) }
        }
        ellipsisSizes = [Int](repeating: 1, count: ellipsisRank)
        sizes = ellipsisSizes
        func label(_ ch: Character, size: Int) throws(ShapeError.Detail) -> Int {
            if let index = labelIndex[ch] {
                if sizes[index] != size {
                    if sizes[index] == 1 {
                        sizes[index] = size
                    } else if size != 1 {
                        throw .init("label '\(ch)' has sizes \(sizes[index]) and \(size)")
                    }
                }
                return index
            }
            labelIndex[ch] = sizes.count
            sizes.append(size)
            return sizes.count - 1
        }
        var operands: [[Int]] = []
        for (term, shape) in zip(parsed, shapes) {
            var labels: [Int] = []
            var axis = 0
            for ch in term.before {
                labels.append(try label(ch, size: shape[axis]))
                axis += 1
            }
            if term.dots {
                let own = shape.count - term.before.count - term.after.count
                for e in 0..<own {
                    let index = ellipsisRank - own + e
                    let size = shape[axis]
                    if sizes[index] == 1 {
                        sizes[index] = size
                    } else if size != 1 && size != sizes[index] {
                        throw .init("ellipsis dimensions \(sizes[index]) and \(size) do not broadcast")
                    }
                    labels.append(index)
                    axis += 1
                }
            }
            for ch in term.after {
                labels.append(try label(ch, size: shape[axis]))
                axis += 1
            }
            operands.append(labels)
        }
        let output = try outputLabels(
            sides.count == 2 ? sides[1] : nil, of: equation, parsed: parsed, labelIndex: labelIndex,
            ellipsisRank: ellipsisRank)
        return EinsumEquation(operands: operands, output: output, sizes: sizes)
    }

    typealias Term = (before: [Character], after: [Character], dots: Bool)

    /// A term's labels before and after its ellipsis, and whether it has one.
    static func letters(_ term: String, in equation: String) throws(ShapeError.Detail) -> Term {
        let parts = term.components(separatedBy: "...")
        guard parts.count <= 2 else { throw .init("term '\(term)' has more than one ellipsis") }
        for ch in parts.joined() where !(ch.isASCII && ch.isLetter) {
            throw .init("label '\(ch)' in '\(equation)' is not a letter")
        }
        return (Array(parts[0]), parts.count == 2 ? Array(parts[1]) : [], parts.count == 2)
    }

    /// The output's labels: the explicit side after '->', or (without one) the ellipsis, then the labels used
    /// once in alphabetical order.
    static func outputLabels(
        _ side: String?, of equation: String, parsed: [Term], labelIndex: [Character: Int], ellipsisRank: Int
    ) throws(ShapeError.Detail) -> [Int] {
        var output: [Int] = []
        if let side {
            let out = try letters(side, in: equation)
            if !out.dots && ellipsisRank > 0 && parsed.contains(where: { $0.dots }) {
                // numpy allows dropping the ellipsis only when it is empty.
                throw .init("the output of '\(equation)' must keep the ellipsis")
            }
            for ch in out.before {
                guard let index = labelIndex[ch] else { throw .init("output label '\(ch)' is not an input label") }
                output.append(index)
            }
            if out.dots { output += Array(0..<ellipsisRank) }
            for ch in out.after {
                guard let index = labelIndex[ch] else { throw .init("output label '\(ch)' is not an input label") }
                output.append(index)
            }
            guard Set(output).count == output.count else { throw .init("output of '\(equation)' repeats a label") }
        } else {
            // Implicit output: the ellipsis, then labels used once, in alphabetical order.
            var uses: [Character: Int] = [:]
            for term in parsed { for ch in term.before + term.after { uses[ch, default: 0] += 1 } }
            output = Array(0..<ellipsisRank)
            for ch in uses.keys.sorted() where uses[ch] == 1 { if let index = labelIndex[ch] { output.append(index) } }
        }
        return output
    }

    /// The node's equation over its inputs' shapes.
    /// - Throws: `ShapeError` for a missing input or an equation that does not fit them.
    public static func parse(_ context: ShapeInferenceContext) throws -> EinsumEquation {
        let types = try context.inputs.indices.map { try context.input($0) }
        guard !types.isEmpty else { throw context.mismatch("needs at least one input") }
        return try ShapeInference.resolving(context) {
            try resolve(try context.node.string("equation", default: ""), shapes: types.map(\.shape.dimensions))
        }
    }

    public var outputShape: [Int] { output.map { sizes[$0] } }
}

extension ShapeInference {
    /// Runs a geometry helper, turning its `ShapeError.Detail` into a mismatch naming the node.
    static func resolving<T>(_ context: ShapeInferenceContext, _ body: () throws -> T) throws -> T {
        do { return try body() } catch let error as ShapeError.Detail { throw context.mismatch(error.text) }
    }

    static func registerIndexing(into table: inout [String: ShapeFunction]) {
        for register in [registerGatherScatter, registerOneHotTopKBlocks, registerEinsumGridSamplePredicates] {
            register(&table)
        }
    }

    /// GatherElements, GatherND, ScatterElements, Scatter, ScatterND.
    private static func registerGatherScatter(into table: inout [String: ShapeFunction]) {
        table[key(domain: "", opType: "GatherElements")] = { context in
            let data = try context.input(0), indices = try context.input(1)
            _ = try context.axis(try context.node.int("axis", default: 0), rank: data.shape.rank)
            guard indices.shape.rank == data.shape.rank else {
                throw context.mismatch("indices \(indices.shape) and data \(data.shape) must have the same rank")
            }
            return [TensorType(dtype: data.dtype, shape: indices.shape)]
        }

        table[key(domain: "", opType: "GatherND")] = { context in
            let data = try context.input(0), indices = try context.input(1)
            let geometry = try resolving(context) {
                try IndexTupleGeometry.resolve(
                    data: data.shape.dimensions, indices: indices.shape.dimensions,
                    batchDims: try context.node.int("batch_dims", default: 0))
            }
            return [TensorType(dtype: data.dtype, shape: Shape(geometry.resultShape))]
        }

        let scatterElements: ShapeFunction = { context in
            let data = try context.input(0), indices = try context.input(1), updates = try context.input(2)
            _ = try context.axis(try context.node.int("axis", default: 0), rank: data.shape.rank)
            guard indices.shape == updates.shape, indices.shape.rank == data.shape.rank else {
                throw context.mismatch(
                    "indices \(indices.shape) and updates \(updates.shape) must have one shape, of data's rank")
            }
            guard updates.dtype == data.dtype else { throw context.mismatch("updates and data differ in type") }
            return [data]
        }
        table[key(domain: "", opType: "ScatterElements")] = scatterElements
        table[key(domain: "", opType: "Scatter")] = scatterElements

        table[key(domain: "", opType: "ScatterND")] = { context in
            let data = try context.input(0), indices = try context.input(1), updates = try context.input(2)
            let geometry = try resolving(context) {
                try IndexTupleGeometry.resolve(
                    data: data.shape.dimensions, indices: indices.shape.dimensions, batchDims: 0)
            }
            guard geometry.resultShape == updates.shape.dimensions, updates.dtype == data.dtype else {
                throw context.mismatch(
                    "updates must be \(data.dtype) of shape \(geometry.resultShape), got \(updates.dtype)\(updates.shape)"
                )
            }
            return [data]
        }

        let sameAsInput: ShapeFunction = { context in [try context.input(0)] }
        for op in [
            "Trilu", "CumSum", "CumProd", "Hardmax", "LpNormalization", "RMSNormalization", "RotaryEmbedding",
            "InstanceNormalization", "GroupNormalization", "LRN", "MeanVarianceNormalization", "Shrink",
            "ReverseSequence",
        ] {
            table[key(domain: "", opType: op)] = sameAsInput
        }
    }

    /// OneHot, TopK, DepthToSpace, SpaceToDepth.
    private static func registerOneHotTopKBlocks(into table: inout [String: ShapeFunction]) {

        table[key(domain: "", opType: "OneHot")] = { context in
            let indices = try context.input(0), values = try context.input(2)
            _ = try context.input(1)
            if context.constants.count > 1 && context.constants[1] == nil {
                throw context.valueNeeded("depth (input 1) must be known when the model is planned")
            }
            // depth may be any numeric type: integers are read exactly (through Float, 2^31 - 648 became 2^31 - 640).
            guard let depthTensor = context.constants.count > 1 ? context.constants[1] : nil,
                depthTensor.shape.elementCount == 1
            else { throw context.mismatch("depth (input 1) must be a known scalar of at least 1") }
            let depth: Int
            if depthTensor.dtype.isFloatingPoint {
                guard let value = try context.constantFloats(1)?.first, value.isFinite, value >= 1,
                    value < 2_147_483_648
                else { throw context.mismatch("depth (input 1) must be a known scalar of at least 1") }
                depth = Int(value.rounded(.towardZero))
            } else {
                guard let value = try depthTensor.integerValues().first, value >= 1, value <= Int(Int32.max) else {
                    throw context.mismatch("depth (input 1) must be a known scalar of at least 1")
                }
                depth = value
            }
            guard values.shape.elementCount == 2 else { throw context.mismatch("values must hold [off, on]") }
            let rank = indices.shape.rank + 1
            let axis = try context.axis(try context.node.int("axis", default: -1), rank: rank)
            var dims = indices.shape.dimensions
            dims.insert(depth, at: axis)
            return [TensorType(dtype: values.dtype, shape: Shape(dims))]
        }

        table[key(domain: "", opType: "TopK")] = { context in
            let x = try context.input(0)
            let axis = try context.axis(try context.node.int("axis", default: -1), rank: x.shape.rank)
            let k: Int
            if context.opset >= 10 {
                let values = try context.requiredInts(1, "K")
                guard values.count == 1, let value = values.first else { throw context.mismatch("K must be one value") }
                k = value
            } else {
                k = try context.node.int("k", default: -1)
            }
            guard k >= 0, k <= x.shape[axis] else {
                throw context.mismatch("K \(k) is out of range for an axis of size \(x.shape[axis])")
            }
            var dims = x.shape.dimensions
            dims[axis] = k
            return [TensorType(dtype: x.dtype, shape: Shape(dims)), TensorType(dtype: .int64, shape: Shape(dims))]
        }

        let rearrange: ShapeFunction = { context in
            let x = try context.input(0)
            let geometry = try resolving(context) {
                try BlockRearrangement.resolve(
                    opType: context.node.opType, shape: x.shape.dimensions,
                    blockSize: try context.node.int("blocksize", default: 0),
                    mode: try context.node.string("mode", default: "DCR"))
            }
            return [TensorType(dtype: x.dtype, shape: Shape(geometry.outputDims))]
        }
        table[key(domain: "", opType: "DepthToSpace")] = rearrange
        table[key(domain: "", opType: "SpaceToDepth")] = rearrange
    }

    /// Einsum, EyeLike, GridSample, RoiAlign, IsNaN, IsInf, BitwiseNot.
    private static func registerEinsumGridSamplePredicates(into table: inout [String: ShapeFunction]) {

        table[key(domain: "", opType: "Einsum")] = { context in
            let first = try context.input(0)
            return [TensorType(dtype: first.dtype, shape: Shape(try EinsumEquation.parse(context).outputShape))]
        }

        table[key(domain: "", opType: "EyeLike")] = { context in
            let x = try context.input(0)
            guard x.shape.rank == 2 else { throw context.mismatch("expects a rank-2 input, got \(x.shape)") }
            var dtype = x.dtype
            if context.node.attributes["dtype"] != nil {
                let code = try context.node.int("dtype", default: 1)
                guard let chosen = onnxDType(code) else { throw context.mismatch("dtype \(code) is not supported") }
                dtype = chosen
            }
            return [TensorType(dtype: dtype, shape: x.shape)]
        }

        table[key(domain: "", opType: "GridSample")] = { context in
            let x = try context.input(0), grid = try context.input(1)
            let rank = x.shape.rank - 2
            guard rank >= 1, grid.shape.rank == rank + 2, grid.shape[0] == x.shape[0], grid.shape[rank + 1] == rank
            else { throw context.mismatch("grid \(grid.shape) does not fit X \(x.shape)") }
            let dims = [x.shape[0], x.shape[1]] + Array(grid.shape.dimensions.dropFirst().dropLast())
            return [TensorType(dtype: x.dtype, shape: Shape(dims))]
        }

        table[key(domain: "", opType: "RoiAlign")] = { context in
            let x = try context.input(0), rois = try context.input(1), batch = try context.input(2)
            guard x.shape.rank == 4, rois.shape.rank == 2, rois.shape[1] == 4, batch.shape.rank == 1,
                batch.shape[0] == rois.shape[0]
            else {
                throw context.mismatch("X \(x.shape), rois \(rois.shape) and batch_indices \(batch.shape) do not fit")
            }
            let height = try context.node.int("output_height", default: 1)
            let width = try context.node.int("output_width", default: 1)
            guard height > 0, width > 0, height < 1 << 20, width < 1 << 20 else {
                throw context.mismatch("output_height \(height) and output_width \(width) must be positive")
            }
            guard try context.node.int("sampling_ratio", default: 0) >= 0 else {
                throw context.mismatch("sampling_ratio must not be negative")
            }
            return [TensorType(dtype: x.dtype, shape: [rois.shape[0], x.shape[1], height, width])]
        }

        let predicate: ShapeFunction = { context in [TensorType(dtype: .bool, shape: try context.input(0).shape)] }
        table[key(domain: "", opType: "IsNaN")] = predicate
        table[key(domain: "", opType: "IsInf")] = predicate

        let bitwise: ShapeFunction = { context in
            let a = try context.input(0), b = try context.input(1)
            guard a.dtype == b.dtype else { throw context.mismatch("inputs have different types") }
            guard let shape = broadcast(a.shape, b.shape) else {
                throw context.mismatch("shapes \(a.shape) and \(b.shape) do not broadcast")
            }
            return [TensorType(dtype: a.dtype, shape: shape)]
        }
        for op in ["BitwiseAnd", "BitwiseOr", "BitwiseXor", "BitShift"] { table[key(domain: "", opType: op)] = bitwise }
        table[key(domain: "", opType: "BitwiseNot")] = { context in [try context.input(0)] }
    }
}
