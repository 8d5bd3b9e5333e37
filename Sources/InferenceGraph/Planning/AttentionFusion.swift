import InferenceTensor

extension Fusion.Candidates {
    /// MatMul(Q [· a], Transpose(K) [· b]) [· c or / c] [+ mask] → Softmax(last axis) → MatMul(·, V) becomes
    /// Attention(Q, K, V [, mask]) with scale a·b·c: float32 operands of rank 3 (one head per leading index) or 4
    /// ([batch, heads, length, size]), every intermediate read only by the next node. Returns the nodes removed.
    mutating func fuseAttention() -> Int {
        var producer: [String: Int] = [:]
        for (index, entry) in nodes.enumerated() {
            for output in entry?.node.outputs ?? [] where !output.isEmpty { producer[output] = index }
        }
        var removed = 0
        for index in nodes.indices {
            guard let match = attention(at: index, producer: producer) else { continue }
            nodes[match.last] = match.node
            for gone in match.removed { nodes[gone] = nil }
            removed += match.removed.count
        }
        return removed
    }

    /// The attention chain starting at the scores MatMul at `index`: the Attention node that replaces it (at the
    /// position of the chain's last MatMul) and every other position the chain covers.
    private func attention(at index: Int, producer: [String: Int]) -> (
        node: Fusion.LiveNode, last: Int, removed: [Int]
    )? {
        guard let first = nodes[index], first.node.opType == "MatMul", first.node.domain.isEmpty,
            first.node.inputs.count == 2, let scores = first.outputTypes.first, scores.dtype == .float32,
            [3, 4].contains(scores.shape.rank)
        else { return nil }
        let rank = scores.shape.rank
        let q = unscaled(first.node.inputs[0], reader: index, producer: producer)
        let kt = unscaled(first.node.inputs[1], reader: index, producer: producer)
        guard let t = producer[kt.value], let transpose = nodes[t], transpose.node.opType == "Transpose",
            transpose.node.domain.isEmpty, onlyReader(of: kt.value) == (kt.node ?? index),
            (try? transpose.node.ints("perm")) == Array(0..<(rank - 2)) + [rank - 1, rank - 2],
            let middle = scaleAndMask(after: index, scores: scores, scale: q.factor * kt.factor)
        else { return nil }
        guard let s = onlyReader(of: middle.current), let softmax = nodes[s], softmax.node.opType == "Softmax",
            softmax.node.inputs.first == middle.current,
            let axis = try? softmax.node.int("axis", default: -1), axis == -1 || axis == rank - 1,
            let m = onlyReader(of: softmax.node.outputs[0]), let second = nodes[m],
            second.node.opType == "MatMul", second.node.inputs.count == 2,
            second.node.inputs[0] == softmax.node.outputs[0]
        else { return nil }
        var attributes: [String: AttributeValue] = ["scale": .float(Float(middle.scale))]
        if rank == 3 {
            attributes["q_num_heads"] = .int(1)
            attributes["kv_num_heads"] = .int(1)
        }
        let attention = Node(
            name: first.node.name.isEmpty ? second.node.name : first.node.name, opType: "Attention",
            inputs: [q.value, transpose.node.inputs[0], second.node.inputs[1]] + (middle.mask.map { [$0] } ?? []),
            outputs: second.node.outputs, attributes: attributes)
        return ((attention, second.outputTypes), m, middle.chain + [s, t] + [q.node, kt.node].compactMap { $0 })
    }

    /// `value` with a constant float32 scalar factor peeled off (a Mul read only by `reader`).
    private func unscaled(_ value: String, reader: Int, producer: [String: Int]) -> (
        value: String, factor: Double, node: Int?
    ) {
        func float32Scalar(_ name: String) -> Double? {
            known[name]?.dtype == .float32 ? scalar(name) : nil
        }
        guard let p = producer[value], let mul = nodes[p], mul.node.opType == "Mul", mul.node.domain.isEmpty,
            mul.node.inputs.count == 2, onlyReader(of: value) == reader
        else { return (value, 1, nil) }
        if let c = float32Scalar(mul.node.inputs[1]) { return (mul.node.inputs[0], c, p) }
        if let c = float32Scalar(mul.node.inputs[0]) { return (mul.node.inputs[1], c, p) }
        return (value, 1, nil)
    }

    /// After the scores MatMul at `index`: an optional constant scale (Mul or Div), then an optional float32 mask
    /// Add whose leading dimensions broadcast. Returns `scale` with the constant applied, the mask, the positions covered (starting with
    /// `index`) and the value the Softmax must read; nil when a mask is there but does not fit.
    private func scaleAndMask(after index: Int, scores: TensorType, scale: Double) -> (
        scale: Double, mask: String?, chain: [Int], current: String
    )? {
        guard let first = nodes[index] else { return nil }
        var scale = scale
        var chain: [Int] = [index]
        var current = first.node.outputs[0]
        if let next = onlyReader(of: current), let node = nodes[next], ["Mul", "Div"].contains(node.node.opType),
            node.node.inputs.first == current, known[node.node.inputs[1]]?.dtype == .float32,
            let c = scalar(node.node.inputs[1]), c != 0
        {
            scale = node.node.opType == "Mul" ? scale * c : scale / c
            chain.append(next)
            current = node.node.outputs[0]
        }
        var mask: String?
        if let next = onlyReader(of: current), let node = nodes[next], node.node.opType == "Add",
            node.node.inputs.count == 2, node.outputTypes.first?.shape == scores.shape
        {
            let other = node.node.inputs[0] == current ? node.node.inputs[1] : node.node.inputs[0]
            guard let maskType = type(of: other), maskType.dtype == .float32, maskType.shape.rank <= scores.shape.rank,
                maskType.shape.dimensions.dropLast(2).allSatisfy({ $0 == 1 })
            else { return nil }
            mask = other
            chain.append(next)
            current = node.node.outputs[0]
        }
        return (scale, mask, chain, current)
    }

    /// A value's type: a constant's, or the output type of the live node that writes it.
    private func type(of value: String) -> TensorType? {
        if let constant = known[value] { return TensorType(dtype: constant.dtype, shape: constant.shape) }
        for case let entry? in nodes {
            if let position = entry.node.outputs.firstIndex(of: value) { return entry.outputTypes[position] }
        }
        return nil
    }
}
