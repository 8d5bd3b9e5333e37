import InferenceTensor

/// The sizes of one Attention node (opset 23/24), from its operand shapes and head-count attributes; shared by
/// shape inference and the kernels.
public struct AttentionGeometry: Equatable, Sendable {
    public var batch: Int
    public var queryHeads: Int
    public var keyValueHeads: Int
    public var queryLength: Int
    /// Key/value positions in this call (without the past).
    public var newLength: Int
    public var pastLength: Int
    public var headSize: Int
    public var valueHeadSize: Int
    /// Q, K and V are [batch, sequence, heads × head size] instead of [batch, heads, sequence, head size].
    public var packedHeads: Bool

    public var totalLength: Int { pastLength + newLength }

    /// How an attn_mask of `shape` (rank 2 to 4) broadcasts to [batch, query heads, query length, keys]: the keys
    /// it covers (later positions are masked out) and its element strides on those four axes (0 where it
    /// broadcasts).
    public func maskLayout(_ shape: [Int]) throws(ShapeError.Detail) -> (length: Int, strides: [Int]) {
        guard (2...4).contains(shape.count) else { throw .init("attn_mask must have rank 2 to 4, got \(shape)") }
        let padded = [Int](repeating: 1, count: 4 - shape.count) + shape
        let wanted = [batch, queryHeads, queryLength]
        for axis in 0..<3 where padded[axis] != 1 && padded[axis] != wanted[axis] {
            throw .init("attn_mask \(shape) does not broadcast to \(wanted + [totalLength])")
        }
        guard padded[3] <= totalLength else {
            throw .init("attn_mask covers \(padded[3]) keys, more than the \(totalLength) there are")
        }
        var strides = [0, 0, 0, 0]
        var running = 1
        for axis in stride(from: 3, through: 0, by: -1) {
            strides[axis] = padded[axis] == 1 ? 0 : running
            running *= padded[axis]
        }
        return (padded[3], strides)
    }

    public static func resolve(
        query: [Int], key: [Int], value: [Int], pastKey: [Int]?, pastValue: [Int]?, queryHeads: Int?,
        keyValueHeads: Int?
    ) throws(ShapeError.Detail) -> AttentionGeometry {
        guard query.count == key.count, key.count == value.count, query.count == 3 || query.count == 4 else {
            throw .init("Q, K and V must all be rank 3 or all rank 4 (got \(query), \(key), \(value))")
        }
        let batch = query[0]
        guard key[0] == batch, value[0] == batch else { throw .init("Q, K and V differ in batch size") }
        var g: AttentionGeometry
        if query.count == 3 {
            guard let qh = queryHeads, let kvh = keyValueHeads, qh > 0, kvh > 0 else {
                throw .init("rank-3 inputs need the q_num_heads and kv_num_heads attributes")
            }
            guard query[2] % qh == 0, key[2] % kvh == 0, value[2] % kvh == 0 else {
                throw .init("hidden sizes \(query[2]), \(key[2]), \(value[2]) are not multiples of the head counts")
            }
            g = AttentionGeometry(
                batch: batch, queryHeads: qh, keyValueHeads: kvh, queryLength: query[1], newLength: key[1],
                pastLength: 0, headSize: query[2] / qh, valueHeadSize: value[2] / kvh, packedHeads: true)
            guard key[2] / kvh == g.headSize else { throw .init("Q and K head sizes differ") }
        } else {
            g = AttentionGeometry(
                batch: batch, queryHeads: query[1], keyValueHeads: key[1], queryLength: query[2], newLength: key[2],
                pastLength: 0, headSize: query[3], valueHeadSize: value[3], packedHeads: false)
            guard key[3] == query[3] else { throw .init("Q and K head sizes differ (\(query[3]), \(key[3]))") }
            guard value[1] == key[1], value[2] == key[2] else { throw .init("K \(key) and V \(value) do not match") }
        }
        guard g.keyValueHeads > 0, g.queryHeads % g.keyValueHeads == 0 else {
            throw .init("q_num_heads \(g.queryHeads) is not a multiple of kv_num_heads \(g.keyValueHeads)")
        }
        if pastKey != nil || pastValue != nil {
            guard let pastKey, let pastValue, pastKey.count == 4, pastValue.count == 4 else {
                throw .init("past_key and past_value come together, both of rank 4")
            }
            guard pastKey == [batch, g.keyValueHeads, pastKey[2], g.headSize],
                pastValue == [batch, g.keyValueHeads, pastKey[2], g.valueHeadSize]
            else { throw .init("past_key \(pastKey) and past_value \(pastValue) do not fit K and V") }
            g.pastLength = pastKey[2]
        }
        return g
    }

    public var outputShape: [Int] {
        packedHeads
            ? [batch, queryLength, queryHeads * valueHeadSize] : [batch, queryHeads, queryLength, valueHeadSize]
    }
    public var presentKeyShape: [Int] { [batch, keyValueHeads, totalLength, headSize] }
    public var presentValueShape: [Int] { [batch, keyValueHeads, totalLength, valueHeadSize] }
    public var scoresShape: [Int] { [batch, queryHeads, queryLength, totalLength] }
}

extension ShapeInference {
    static func attentionGeometry(_ context: ShapeInferenceContext) throws -> AttentionGeometry {
        let q = try context.input(0), k = try context.input(1), v = try context.input(2)
        let pastKey = context.has(4) ? try context.input(4).shape.dimensions : nil
        let pastValue = context.has(5) ? try context.input(5).shape.dimensions : nil
        let qHeads = try context.node.int("q_num_heads", default: 0)
        let kvHeads = try context.node.int("kv_num_heads", default: 0)
        return try resolving(context) {
            try AttentionGeometry.resolve(
                query: q.shape.dimensions, key: k.shape.dimensions, value: v.shape.dimensions, pastKey: pastKey,
                pastValue: pastValue, queryHeads: qHeads == 0 ? nil : qHeads,
                keyValueHeads: kvHeads == 0 ? nil : kvHeads)
        }
    }

    static func registerTransformer(into table: inout [String: ShapeFunction]) {
        table[key(domain: "", opType: "Attention")] = { context in
            let q = try context.input(0)
            let g = try attentionGeometry(context)
            let types = [g.outputShape, g.presentKeyShape, g.presentValueShape, g.scoresShape].map {
                TensorType(dtype: q.dtype, shape: Shape($0))
            }
            return Array(types.prefix(max(1, context.node.outputs.count)))
        }
    }
}
