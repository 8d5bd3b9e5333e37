import InferenceTensor

/// What a backend runs as one kernel: planning rewrites matching node pairs before buffers are assigned.
public struct FusionRules: Sendable {
    /// Producer operator → the activation operators it can apply to its own output
    /// (the producer then carries `FusionRules.activationAttribute`).
    public var activations: [String: Set<String>]
    /// Fold an inference-mode BatchNormalization into the Conv before it when both have constant parameters.
    public var foldsBatchNormalization: Bool
    /// Producers (MatMul) that take a following `Add` of a constant vector along their last axis as an extra,
    /// last input: the bias is added in the producer's store. Only for a constant 2-D right operand.
    public var biases: Set<String>
    /// Rewrite x·½·(1 + erf(x/√2)), as exporters spell it (Div, Erf, Add, Mul, Mul), into one Gelu node.
    public var recognizesGelu: Bool
    /// Rewrite Mul(x, Sigmoid(x)), as exporters spell SiLU, into one Swish node (ONNX opset 24, alpha 1).
    public var recognizesSwish: Bool
    /// Producers (Conv) that take a following 2x2, stride-2, unpadded MaxPool (after any fused activation) into
    /// their own store; the producer then carries `FusionRules.maxPoolAttribute` and the pooled output.
    public var maxPools: Set<String>
    /// Rewrite the exported attention chain — MatMul(Q·a, Transpose(K)·b), an optional scale and mask Add,
    /// Softmax over the last axis, MatMul with V — into one Attention node (opset 23 semantics).
    public var recognizesAttention: Bool
    /// Rewrite QDQ patterns (DequantizeLinear → Conv/MatMul/Gemm → QuantizeLinear) into QLinearConv and
    /// QLinearMatMul (`QuantizedFusion`), before anything is folded.
    public var recognizesQDQ: Bool = false

    public init(
        activations: [String: Set<String>] = [:], foldsBatchNormalization: Bool = false, biases: Set<String> = [],
        recognizesGelu: Bool = false, recognizesSwish: Bool = false, maxPools: Set<String> = [],
        recognizesAttention: Bool = false
    ) {
        self.recognizesAttention = recognizesAttention
        self.recognizesSwish = recognizesSwish
        self.activations = activations
        self.foldsBatchNormalization = foldsBatchNormalization
        self.biases = biases
        self.recognizesGelu = recognizesGelu
        self.maxPools = maxPools
    }

    /// No rewriting: every node runs as written.
    public static let none = FusionRules()

    /// The attribute naming the activation a fused producer applies (not an ONNX attribute; the leading
    /// underscore keeps it apart from any ONNX name).
    public static let activationAttribute = "_fused_activation"

    /// With a fused Clip: its bounds (floats; absent bounds are ±infinity).
    public static let clipLowAttribute = "_fused_clip_min"
    public static let clipHighAttribute = "_fused_clip_max"

    /// The attribute marking a producer that also applies a 2x2, stride-2 max pool to its output.
    public static let maxPoolAttribute = "_fused_max_pool_2x2"

    /// Whether `node` is a MaxPool a producer can absorb: 2x2 window, stride 2, no padding or dilation, floor
    /// mode, no indices output.
    static func isAbsorbableMaxPool(_ node: Node) -> Bool {
        guard node.opType == "MaxPool", node.domain.isEmpty, node.inputs.count == 1, node.outputs.count == 1,
            (try? node.ints("kernel_shape")) == [2, 2], (try? node.ints("strides")) == [2, 2],
            ((try? node.ints("pads")) ?? [0, 0, 0, 0]) == [0, 0, 0, 0],
            ((try? node.ints("dilations")) ?? [1, 1]) == [1, 1], (try? node.int("ceil_mode", default: 0)) == 0,
            ["NOTSET", "VALID"].contains((try? node.string("auto_pad", default: "NOTSET")) ?? "")
        else { return false }
        return true
    }
}

extension Fusion {
    /// MatMul(Q [· a], Transpose(K) [· b]) [· c or / c] [+ mask] → Softmax(last axis) → MatMul(·, V) becomes
    /// Attention(Q, K, V [, mask]) with scale a·b·c: float32 operands of rank 3 (one head per leading index) or 4
    /// ([batch, heads, length, size]), every intermediate read only by the next node. Returns the nodes removed.
    static func fuseAttention(
        _ nodes: inout [LiveNode?], consumers: inout [String: [Int]], known: [String: Tensor], graphOutputs: Set<String>
    ) -> Int {
        var producer: [String: Int] = [:]
        for (index, entry) in nodes.enumerated() {
            for output in entry?.node.outputs ?? [] where !output.isEmpty { producer[output] = index }
        }
        func onlyReader(of value: String) -> Int? {
            guard !graphOutputs.contains(value), let readers = consumers[value], readers.count == 1,
                let reader = nodes[readers[0]], reader.node.domain.isEmpty,
                reader.node.inputs.filter({ $0 == value }).count == 1
            else { return nil }
            return readers[0]
        }
        func scalar(_ name: String) -> Double? {
            guard let t = known[name], t.shape.elementCount == 1, t.dtype == .float32 else { return nil }
            return (try? t.scalars(as: Float.self).first).flatMap { $0.map(Double.init) }
        }
        /// `value` with a constant scalar factor peeled off (a Mul read only by `reader`).
        func unscaled(_ value: String, reader: Int) -> (value: String, factor: Double, node: Int?) {
            guard let p = producer[value], let mul = nodes[p], mul.node.opType == "Mul", mul.node.domain.isEmpty,
                mul.node.inputs.count == 2, onlyReader(of: value) == reader
            else { return (value, 1, nil) }
            if let c = scalar(mul.node.inputs[1]) { return (mul.node.inputs[0], c, p) }
            if let c = scalar(mul.node.inputs[0]) { return (mul.node.inputs[1], c, p) }
            return (value, 1, nil)
        }
        var removed = 0
        for index in nodes.indices {
            guard let first = nodes[index], first.node.opType == "MatMul", first.node.domain.isEmpty,
                first.node.inputs.count == 2, let scores = first.outputTypes.first, scores.dtype == .float32,
                [3, 4].contains(scores.shape.rank)
            else { continue }
            let rank = scores.shape.rank
            let q = unscaled(first.node.inputs[0], reader: index)
            let kt = unscaled(first.node.inputs[1], reader: index)
            guard let t = producer[kt.value], let transpose = nodes[t], transpose.node.opType == "Transpose",
                transpose.node.domain.isEmpty, onlyReader(of: kt.value) == (kt.node ?? index),
                (try? transpose.node.ints("perm")) == Array(0..<(rank - 2)) + [rank - 1, rank - 2]
            else { continue }
            var scale = q.factor * kt.factor
            var chain: [Int] = [index]
            var current = first.node.outputs[0]
            // An optional scale, then an optional mask.
            if let next = onlyReader(of: current), let node = nodes[next], ["Mul", "Div"].contains(node.node.opType),
                node.node.inputs.first == current, let c = scalar(node.node.inputs[1]), c != 0
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
                guard
                    let maskType = known[other].map({ TensorType(dtype: $0.dtype, shape: $0.shape) })
                        ?? nodes.compactMap({ $0 }).first(where: { $0.node.outputs.contains(other) }).flatMap({ entry in
                            entry.node.outputs.firstIndex(of: other).map { entry.outputTypes[$0] }
                        }),
                    maskType.dtype == .float32, maskType.shape.rank <= rank,
                    maskType.shape.dimensions.dropLast(2).allSatisfy({ $0 == 1 })
                else { continue }
                mask = other
                chain.append(next)
                current = node.node.outputs[0]
            }
            guard let s = onlyReader(of: current), let softmax = nodes[s], softmax.node.opType == "Softmax",
                softmax.node.inputs.first == current,
                let axis = try? softmax.node.int("axis", default: -1), axis == -1 || axis == rank - 1,
                let m = onlyReader(of: softmax.node.outputs[0]), let second = nodes[m],
                second.node.opType == "MatMul", second.node.inputs.count == 2,
                second.node.inputs[0] == softmax.node.outputs[0]
            else { continue }
            var attributes: [String: AttributeValue] = ["scale": .float(Float(scale))]
            if rank == 3 {
                attributes["q_num_heads"] = .int(1)
                attributes["kv_num_heads"] = .int(1)
            }
            let attention = Node(
                name: first.node.name.isEmpty ? second.node.name : first.node.name, opType: "Attention",
                inputs: [q.value, transpose.node.inputs[0], second.node.inputs[1]] + (mask.map { [$0] } ?? []),
                outputs: second.node.outputs, attributes: attributes)
            nodes[m] = (attention, second.outputTypes)
            for gone in chain + [s, t] + [q.node, kt.node].compactMap({ $0 }) { nodes[gone] = nil }
            removed += chain.count + 2 + (q.node == nil ? 0 : 1) + (kt.node == nil ? 0 : 1)
        }
        return removed
    }
}

/// The plan-time rewrites `FusionRules` asks for. A pair is fused only when the intermediate value has exactly
/// one consumer and is not a graph output, so no value anyone can observe disappears.
enum Fusion {
    typealias LiveNode = (node: Node, outputTypes: [TensorType])

    static func apply(
        _ live: [LiveNode], rules: FusionRules, graphOutputs: Set<String>, known: inout [String: Tensor],
        types: inout [String: TensorType]
    ) -> (nodes: [LiveNode], fused: Int) {
        guard
            rules.foldsBatchNormalization || !rules.activations.isEmpty || !rules.biases.isEmpty
                || rules.recognizesGelu || rules.recognizesSwish || !rules.maxPools.isEmpty || rules.recognizesAttention
        else { return (live, 0) }
        var nodes: [LiveNode?] = live
        var consumers: [String: [Int]] = [:]
        for (index, entry) in live.enumerated() {
            for input in entry.node.inputs where !input.isEmpty { consumers[input, default: []].append(index) }
        }
        /// The single node reading `value` (as its first input), when it is the only reader and not an output.
        func soleConsumer(of value: String) -> Int? {
            guard !graphOutputs.contains(value), let readers = consumers[value], readers.count == 1,
                let reader = nodes[readers[0]], reader.node.inputs.first == value,
                reader.node.inputs.dropFirst().allSatisfy({ $0 != value })
            else { return nil }
            return readers[0]
        }
        /// The single reader of `value` whatever input position it reads it at.
        func onlyReader(of value: String) -> Int? {
            guard !graphOutputs.contains(value), let readers = consumers[value], readers.count == 1,
                let reader = nodes[readers[0]], reader.node.domain.isEmpty,
                reader.node.inputs.filter({ $0 == value }).count == 1
            else { return nil }
            return readers[0]
        }
        func scalar(_ name: String) -> Double? {
            guard let t = known[name], t.shape.elementCount == 1 else { return nil }
            switch t.dtype {
            case .float32: return (try? t.scalars(as: Float.self).first).flatMap { $0.map(Double.init) }
            case .float64: return (try? t.scalars(as: Double.self).first) ?? nil
            default: return nil
            }
        }
        /// The other input of a binary node reading `value`.
        func otherInput(_ node: Node, than value: String) -> String? {
            guard node.inputs.count == 2 else { return nil }
            return node.inputs[0] == value ? node.inputs[1] : node.inputs[0]
        }
        /// A Clip's bounds when they are known now (attributes before opset 11, constant scalar inputs after);
        /// nil for a Clip whose bounds are computed at run time. Other activations: no bounds.
        func clipBounds(_ node: Node) -> (low: Float, high: Float)? {
            // A fused Swish is SiLU (alpha 1) only.
            if node.opType == "Swish" { return (try? node.float("alpha", default: 1)) == 1 ? (0, 0) : nil }
            guard node.opType == "Clip" else { return (0, 0) }
            if node.inputs.count == 1 {
                guard let low = try? node.float("min", default: -.greatestFiniteMagnitude),
                    let high = try? node.float("max", default: .greatestFiniteMagnitude)
                else { return nil }
                return (low, high)
            }
            func bound(_ index: Int, _ absent: Float) -> Float? {
                guard index < node.inputs.count, !node.inputs[index].isEmpty else { return absent }
                guard let t = known[node.inputs[index]], t.dtype == .float32, t.shape.elementCount == 1 else {
                    return nil
                }
                return (try? t.scalars(as: Float.self).first) ?? nil
            }
            guard let low = bound(1, -.infinity), let high = bound(2, .infinity) else { return nil }
            return (low, high)
        }
        var fused = 0
        if rules.recognizesGelu {
            for index in live.indices {
                guard let div = nodes[index], div.node.domain.isEmpty, div.node.outputs.count == 1,
                    div.node.inputs.count == 2, let x = div.node.inputs.first, let c = scalar(div.node.inputs[1]),
                    (div.node.opType == "Div" && abs(c - 2.0.squareRoot()) < 1e-6)
                        || (div.node.opType == "Mul" && abs(c - 0.5.squareRoot()) < 1e-6),
                    let e = onlyReader(of: div.node.outputs[0]), let erf = nodes[e], erf.node.opType == "Erf",
                    let a = onlyReader(of: erf.node.outputs[0]), let add = nodes[a], add.node.opType == "Add",
                    otherInput(add.node, than: erf.node.outputs[0]).flatMap(scalar) == 1,
                    let m = onlyReader(of: add.node.outputs[0]), let mul = nodes[m], mul.node.opType == "Mul",
                    otherInput(mul.node, than: add.node.outputs[0]) == x,
                    let h = onlyReader(of: mul.node.outputs[0]), let half = nodes[h], half.node.opType == "Mul",
                    otherInput(half.node, than: mul.node.outputs[0]).flatMap(scalar) == 0.5
                else { continue }
                let gelu = Node(
                    name: div.node.name.isEmpty ? half.node.name : div.node.name, opType: "Gelu", inputs: [x],
                    outputs: half.node.outputs, attributes: ["approximate": .string("none")])
                nodes[index] = (gelu, half.outputTypes)
                for removed in [e, a, m, h] { nodes[removed] = nil }
                // x is now read once (by the Gelu), so its producer may take the Gelu in its store.
                consumers[x] = consumers[x]?.filter { $0 != m }
                fused += 4
            }
        }
        if rules.recognizesAttention {
            fused += fuseAttention(&nodes, consumers: &consumers, known: known, graphOutputs: graphOutputs)
        }
        if rules.recognizesSwish {
            for index in live.indices {
                guard let sigmoid = nodes[index], sigmoid.node.domain.isEmpty, sigmoid.node.opType == "Sigmoid",
                    sigmoid.node.outputs.count == 1, let x = sigmoid.node.inputs.first, !x.isEmpty,
                    let m = onlyReader(of: sigmoid.node.outputs[0]), let mul = nodes[m], mul.node.opType == "Mul",
                    otherInput(mul.node, than: sigmoid.node.outputs[0]) == x,
                    mul.outputTypes.first == sigmoid.outputTypes.first
                else { continue }
                let swish = Node(
                    name: sigmoid.node.name.isEmpty ? mul.node.name : sigmoid.node.name, opType: "Swish", inputs: [x],
                    outputs: mul.node.outputs, attributes: ["alpha": .float(1)])
                // The Swish takes the Mul's place (its output's consumers come after it).
                nodes[m] = (swish, mul.outputTypes)
                nodes[index] = nil
                // x is now read once (by the Swish), so its producer may take the Swish in its store.
                consumers[x] = consumers[x]?.filter { $0 != index }
                fused += 1
            }
        }
        for index in live.indices {
            guard var entry = nodes[index], entry.node.domain.isEmpty, entry.node.outputs.count == 1 else { continue }
            if rules.biases.contains(entry.node.opType), entry.node.inputs.count == 2,
                let weight = known[entry.node.inputs[1]], weight.shape.rank == 2,
                let next = onlyReader(of: entry.node.outputs[0]), let add = nodes[next], add.node.opType == "Add",
                let biasName = otherInput(add.node, than: entry.node.outputs[0]), let bias = known[biasName],
                bias.dtype == weight.dtype, bias.shape.elementCount == weight.shape[1],
                bias.shape.rank <= (entry.outputTypes.first?.shape.rank ?? 0),
                bias.shape.dimensions.dropLast().allSatisfy({ $0 == 1 }),
                add.outputTypes.first?.shape == entry.outputTypes.first?.shape
            {
                var node = entry.node
                node.inputs.append(biasName)
                node.outputs = add.node.outputs
                entry = (node, add.outputTypes)
                nodes[index] = entry
                nodes[next] = nil
                fused += 1
            }
            if rules.foldsBatchNormalization, entry.node.opType == "Conv",
                let next = soleConsumer(of: entry.node.outputs[0]), let bn = nodes[next],
                bn.node.opType == "BatchNormalization", bn.node.domain.isEmpty,
                let folded = foldBatchNormalization(conv: entry.node, bn: bn.node, known: &known, types: &types)
            {
                entry = (folded, bn.outputTypes)
                nodes[index] = entry
                nodes[next] = nil
                fused += 1
            }
            // float32 producers, and float16/bfloat16 ones (their kernels run widened to float32): the fused kernels apply the
            // activation in float32 stores, before any rounding to float16.
            if let allowed = rules.activations[entry.node.opType], entry.node.domain.isEmpty,
                entry.outputTypes.count == 1,
                entry.outputTypes.first?.dtype == .float32 || entry.outputTypes.first?.dtype == .float16
                    || entry.outputTypes.first?.dtype == .bfloat16,
                entry.node.attributes[FusionRules.activationAttribute] == nil,
                let next = soleConsumer(of: entry.node.outputs[0]), let activation = nodes[next],
                activation.node.domain.isEmpty, allowed.contains(activation.node.opType),
                activation.node.inputs.count == 1 || activation.node.opType == "Clip",
                // Only the erf form of GELU fuses (the kernels apply ck_gelu).
                activation.node.opType != "Gelu"
                    || (try? activation.node.string("approximate", default: "none")) == "none",
                activation.node.outputs.count == 1,
                let bounds = clipBounds(activation.node)
            {
                var node = entry.node
                node.attributes[FusionRules.activationAttribute] = .string(activation.node.opType)
                if activation.node.opType == "Clip" {
                    node.attributes[FusionRules.clipLowAttribute] = .float(bounds.low)
                    node.attributes[FusionRules.clipHighAttribute] = .float(bounds.high)
                }
                node.outputs = activation.node.outputs
                entry = (node, activation.outputTypes)
                nodes[index] = entry
                nodes[next] = nil
                fused += 1
            }
            // A max pool commutes with Relu and Clip (monotonic), not with Swish: that pair stays two kernels.
            if rules.maxPools.contains(entry.node.opType), entry.node.attributes[FusionRules.maxPoolAttribute] == nil,
                (try? entry.node.string(FusionRules.activationAttribute, default: "")) != "Swish",
                entry.outputTypes.first?.shape.rank == 4, let next = soleConsumer(of: entry.node.outputs[0]),
                let pool = nodes[next], FusionRules.isAbsorbableMaxPool(pool.node)
            {
                var node = entry.node
                node.attributes[FusionRules.maxPoolAttribute] = .int(1)
                node.outputs = pool.node.outputs
                nodes[index] = (node, pool.outputTypes)
                nodes[next] = nil
                fused += 1
            }
        }
        return (nodes.compactMap { $0 }, fused)
    }

    /// Conv(x, W, b) → BatchNormalization(scale, B, mean, var, ε) as Conv(x, W·s, (b − mean)·s + B) with
    /// s = scale / √(var + ε) per output channel, computed in double precision. Nil when any parameter is not a
    /// plan-time float32 constant of the expected shape, or the BatchNormalization is not in inference form.
    private static func foldBatchNormalization(
        conv: Node, bn: Node, known: inout [String: Tensor], types: inout [String: TensorType]
    ) -> Node? {
        guard conv.inputs.count >= 2, bn.inputs.count == 5, bn.outputs.count == 1,
            (try? bn.int("training_mode", default: 0)) == 0,
            let epsilon = try? bn.float("epsilon", default: 1e-5),
            let weight = known[conv.inputs[1]], weight.dtype == .float32, weight.shape.rank >= 3,
            let weights = try? weight.scalars(as: Float.self)
        else { return nil }
        let channels = weight.shape[0]
        var parameters: [[Float]] = []
        for name in bn.inputs[1...4] {
            guard let tensor = known[name], tensor.dtype == .float32, tensor.shape.elementCount == channels,
                let values = try? tensor.scalars(as: Float.self)
            else { return nil }
            parameters.append(values)
        }
        var bias = [Float](repeating: 0, count: channels)
        if conv.inputs.count > 2, !conv.inputs[2].isEmpty {
            guard let tensor = known[conv.inputs[2]], tensor.dtype == .float32, tensor.shape.elementCount == channels,
                let values = try? tensor.scalars(as: Float.self)
            else { return nil }
            bias = values
        }
        let (scale, shift, mean, variance) = (parameters[0], parameters[1], parameters[2], parameters[3])
        let perChannel = weights.count / max(channels, 1)
        var foldedWeights = weights
        var foldedBias = bias
        for o in 0..<channels {
            let s = Double(scale[o]) / (Double(variance[o]) + Double(epsilon)).squareRoot()
            for i in 0..<perChannel {
                foldedWeights[o * perChannel + i] = Float(Double(weights[o * perChannel + i]) * s)
            }
            foldedBias[o] = Float((Double(bias[o]) - Double(mean[o])) * s + Double(shift[o]))
        }
        let output = bn.outputs[0]
        let weightName = "\u{0}\(output):folded_weight", biasName = "\u{0}\(output):folded_bias"
        guard let w = try? Tensor(shape: weight.shape, scalars: foldedWeights),
            let b = try? Tensor(shape: [channels], scalars: foldedBias)
        else { return nil }
        known[weightName] = w
        known[biasName] = b
        types[weightName] = TensorType(dtype: .float32, shape: weight.shape)
        types[biasName] = TensorType(dtype: .float32, shape: [channels])
        var node = conv
        node.inputs = [conv.inputs[0], weightName, biasName]
        node.outputs = [output]
        return node
    }
}
