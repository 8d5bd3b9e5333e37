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
    /// With `recognizesQDQ`: only the standard ONNX operators (QLinearConv of group 1, QLinearMatMul with its int32
    /// bias and fused Relu), none of the private nodes (`_QLinearAdd`, `_QDQDepthwiseConv`, `_ScaledMatMulInteger`,
    /// byte MaxPool), for backends whose kernel tables have only the former (the GPUs).
    public var qdqStandardOperatorsOnly: Bool = false

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

    /// Chains of 1x1 convolution → depthwise convolution → 1x1 convolution (MobileNets, EfficientNets,
    /// ShuffleNets) pass the depthwise layer's input and output channels last (`ChannelsLastChains`), so none of the
    /// three transposes the wide tensors between planes and vector lanes.
    public var channelsLastDepthwise: Bool = false

    /// int8 networks (QLinearConv, `_QDQDepthwiseConv`, `_QLinearAdd`) keep the values between such nodes channels
    /// last (`QuantizedChannelsLast`), as their kernels read and write them without transposes.
    public var channelsLastQuantized: Bool = false

    /// Int attributes (1) marking a node that reads its first input, or writes its output, channels last
    /// ([N][H][W][C] in the value's [N, C, H, W] storage). Set only by planning, on values no one else reads.
    public static let channelsLastInputAttribute = "_channels_last_input"
    public static let channelsLastOutputAttribute = "_channels_last_output"

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

/// The plan-time rewrites `FusionRules` asks for, one method per pattern over the live nodes. A pair is fused only
/// when the intermediate value has exactly one consumer and is not a graph output, so no value anyone can observe
/// disappears.
enum Fusion {
    typealias LiveNode = PlanningPasses.LiveNode

    static func apply(
        _ live: [LiveNode], rules: FusionRules, graphOutputs: Set<String>, known: inout [String: Tensor],
        types: inout [String: TensorType]
    ) -> (nodes: [LiveNode], fused: Int) {
        guard
            rules.foldsBatchNormalization || !rules.activations.isEmpty || !rules.biases.isEmpty
                || rules.recognizesGelu || rules.recognizesSwish || !rules.maxPools.isEmpty || rules.recognizesAttention
                || rules.channelsLastDepthwise || rules.channelsLastQuantized
        else { return (live, 0) }
        var pass = Candidates(nodes: live, graphOutputs: graphOutputs, known: known, types: types)
        var fused = 0
        if rules.recognizesGelu { fused += pass.fuseGelu() }
        if rules.recognizesAttention { fused += pass.fuseAttention() }
        if rules.recognizesSwish { fused += pass.fuseSwish() }
        for index in live.indices { fused += pass.fuseIntoProducer(at: index, rules: rules) }
        if rules.channelsLastDepthwise { pass.markChannelsLastChains() }
        if rules.channelsLastQuantized { pass.markQuantizedChannelsLast() }
        known = pass.known
        types = pass.types
        return (pass.nodes.compactMap { $0 }, fused)
    }

    /// The live nodes under rewriting (nil where one was merged away), who reads each value, and the values and
    /// types known at plan time (folding a BatchNormalization adds weights).
    struct Candidates {
        var nodes: [LiveNode?]
        var consumers: [String: [Int]] = [:]
        let graphOutputs: Set<String>
        var known: [String: Tensor]
        var types: [String: TensorType]

        init(nodes live: [LiveNode], graphOutputs: Set<String>, known: [String: Tensor], types: [String: TensorType]) {
            nodes = live
            self.graphOutputs = graphOutputs
            self.known = known
            self.types = types
            for (index, entry) in live.enumerated() {
                for input in entry.node.inputs where !input.isEmpty { consumers[input, default: []].append(index) }
            }
        }

        /// The live node writing each value.
        func producers() -> [String: Int] {
            var producer: [String: Int] = [:]
            for (index, entry) in nodes.enumerated() {
                guard let entry else { continue }
                for output in entry.node.outputs where !output.isEmpty { producer[output] = index }
            }
            return producer
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

        /// A plan-time float scalar's value.
        func scalar(_ name: String) -> Double? {
            guard let t = known[name], t.shape.elementCount == 1 else { return nil }
            switch t.dtype {
            case .float32: return (try? t.scalars(as: Float.self).first).flatMap { $0.map(Double.init) }
            case .float64: return (try? t.scalars(as: Double.self).first) ?? nil
            default: return nil
            }
        }

        /// The other input of a binary node reading `value`.
        static func otherInput(_ node: Node, than value: String) -> String? {
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

        /// x·½·(1 + erf(x/√2)) as Div (or Mul by 1/√2), Erf, Add 1, Mul x, Mul ½ → one Gelu. Returns nodes removed.
        mutating func fuseGelu() -> Int {
            var fused = 0
            for index in nodes.indices {
                guard let div = nodes[index], div.node.domain.isEmpty, div.node.outputs.count == 1,
                    div.node.inputs.count == 2, let x = div.node.inputs.first, let c = scalar(div.node.inputs[1]),
                    (div.node.opType == "Div" && abs(c - 2.0.squareRoot()) < 1e-6)
                        || (div.node.opType == "Mul" && abs(c - 0.5.squareRoot()) < 1e-6),
                    let e = onlyReader(of: div.node.outputs[0]), let erf = nodes[e], erf.node.opType == "Erf",
                    let a = onlyReader(of: erf.node.outputs[0]), let add = nodes[a], add.node.opType == "Add",
                    Self.otherInput(add.node, than: erf.node.outputs[0]).flatMap(scalar) == 1,
                    let m = onlyReader(of: add.node.outputs[0]), let mul = nodes[m], mul.node.opType == "Mul",
                    Self.otherInput(mul.node, than: add.node.outputs[0]) == x,
                    let h = onlyReader(of: mul.node.outputs[0]), let half = nodes[h], half.node.opType == "Mul",
                    Self.otherInput(half.node, than: mul.node.outputs[0]).flatMap(scalar) == 0.5
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
            return fused
        }

        /// Mul(x, Sigmoid(x)) → Swish (alpha 1). Returns nodes removed.
        mutating func fuseSwish() -> Int {
            var fused = 0
            for index in nodes.indices {
                guard let sigmoid = nodes[index], sigmoid.node.domain.isEmpty, sigmoid.node.opType == "Sigmoid",
                    sigmoid.node.outputs.count == 1, let x = sigmoid.node.inputs.first, !x.isEmpty,
                    let m = onlyReader(of: sigmoid.node.outputs[0]), let mul = nodes[m], mul.node.opType == "Mul",
                    Self.otherInput(mul.node, than: sigmoid.node.outputs[0]) == x,
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
            return fused
        }

        /// A node merged into the producer before it: the producer's new form, and the position of the node taken.
        typealias Taken = (entry: LiveNode, removed: Int)

        /// What the node at `index` takes into its own store, in order: a bias Add, a BatchNormalization, an
        /// activation, a 2x2 max pool. Returns nodes removed.
        mutating func fuseIntoProducer(at index: Int, rules: FusionRules) -> Int {
            guard var entry = nodes[index], entry.node.domain.isEmpty, entry.node.outputs.count == 1 else { return 0 }
            var fused = 0
            for step in 0..<4 {
                let taken: Taken?
                switch step {
                case 0: taken = takeBias(entry, rules)
                case 1: taken = takeBatchNormalization(entry, rules)
                case 2: taken = takeActivation(entry, rules)
                default: taken = takeMaxPool(entry, rules)
                }
                guard let taken else { continue }
                entry = taken.entry
                nodes[index] = entry
                nodes[taken.removed] = nil
                fused += 1
            }
            return fused
        }

        /// MatMul then Add of a constant vector along the last axis: the bias becomes the MatMul's third input.
        func takeBias(_ entry: LiveNode, _ rules: FusionRules) -> Taken? {
            guard rules.biases.contains(entry.node.opType), entry.node.inputs.count == 2,
                let weight = known[entry.node.inputs[1]], weight.shape.rank == 2,
                let next = onlyReader(of: entry.node.outputs[0]), let add = nodes[next], add.node.opType == "Add",
                let biasName = Self.otherInput(add.node, than: entry.node.outputs[0]), let bias = known[biasName],
                bias.dtype == weight.dtype, bias.shape.elementCount == weight.shape[1],
                bias.shape.rank <= (entry.outputTypes.first?.shape.rank ?? 0),
                bias.shape.dimensions.dropLast().allSatisfy({ $0 == 1 }),
                add.outputTypes.first?.shape == entry.outputTypes.first?.shape
            else { return nil }
            var node = entry.node
            node.inputs.append(biasName)
            node.outputs = add.node.outputs
            return ((node, add.outputTypes), next)
        }

        /// Conv then an inference-mode BatchNormalization with constant parameters: folded into the weights.
        mutating func takeBatchNormalization(_ entry: LiveNode, _ rules: FusionRules) -> Taken? {
            guard rules.foldsBatchNormalization, entry.node.opType == "Conv",
                let next = soleConsumer(of: entry.node.outputs[0]), let bn = nodes[next],
                bn.node.opType == "BatchNormalization", bn.node.domain.isEmpty,
                let folded = Fusion.foldBatchNormalization(conv: entry.node, bn: bn.node, known: &known, types: &types)
            else { return nil }
            return ((folded, bn.outputTypes), next)
        }

        /// A producer then an activation it may apply in its store. float32 producers, and float16/bfloat16 ones
        /// (their kernels run widened to float32): the activation is applied before any rounding to float16.
        func takeActivation(_ entry: LiveNode, _ rules: FusionRules) -> Taken? {
            guard let allowed = rules.activations[entry.node.opType], entry.outputTypes.count == 1,
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
            else { return nil }
            var node = entry.node
            node.attributes[FusionRules.activationAttribute] = .string(activation.node.opType)
            if activation.node.opType == "Clip" {
                node.attributes[FusionRules.clipLowAttribute] = .float(bounds.low)
                node.attributes[FusionRules.clipHighAttribute] = .float(bounds.high)
            }
            node.outputs = activation.node.outputs
            return ((node, activation.outputTypes), next)
        }

        /// A producer then a 2x2, stride-2 max pool. A max pool commutes with Relu and Clip (monotonic), not with
        /// Swish or HardSwish (both dip below zero): those pairs stay two kernels.
        func takeMaxPool(_ entry: LiveNode, _ rules: FusionRules) -> Taken? {
            guard rules.maxPools.contains(entry.node.opType),
                entry.node.attributes[FusionRules.maxPoolAttribute] == nil,
                !["Swish", "HardSwish", "Gelu"].contains(
                    (try? entry.node.string(FusionRules.activationAttribute, default: "")) ?? ""),
                entry.outputTypes.first?.shape.rank == 4, let next = soleConsumer(of: entry.node.outputs[0]),
                let pool = nodes[next], FusionRules.isAbsorbableMaxPool(pool.node)
            else { return nil }
            var node = entry.node
            node.attributes[FusionRules.maxPoolAttribute] = .int(1)
            node.outputs = pool.node.outputs
            return ((node, pool.outputTypes), next)
        }
    }
}

extension Fusion {
    /// Conv(x, W, b) → BatchNormalization(scale, B, mean, var, ε) as Conv(x, W·s, (b − mean)·s + B) with
    /// s = scale / √(var + ε) per output channel, computed in double precision. Nil when any parameter is not a
    /// plan-time float32 constant of the expected shape, or the BatchNormalization is not in inference form.
    static func foldBatchNormalization(
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
