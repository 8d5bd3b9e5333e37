import InferenceTensor

/// Plans QDQ-format models (QuantizeLinear/DequantizeLinear around each quantized node, as onnxruntime's
/// `quantize_static` writes them) into integer kernels:
///
///     DQ(xq) ─┐
///     DQ(wq) ─┼─ Conv / MatMul / Gemm ─ [Relu] ─ Q  ⇒  QLinearConv / QLinearMatMul (xq, wq, [bias q]) ─ y q
///     DQ(bq) ─┘
///
/// The integer node reads the quantized tensors directly, sums in int32 exactly and requantizes once, which is
/// what the float path (dequantize, float GEMM, quantize) approximates. Only what the integer kernels compute
/// exactly is rewritten: 8-bit tensors, scales and zero points that are initializers, per-tensor activations,
/// weights per tensor or per output channel, an int32 bias whose scale is the product of the input and weight
/// scales (as the quantizer writes it), and a Relu between the node and its Q (a clamp at the zero point).
/// Dequantize nodes left without readers are removed.
public enum QuantizedFusion {
    /// The attribute a rewritten QLinearMatMul/QLinearConv carries when it also applies a Relu (not an ONNX
    /// attribute; the leading underscore keeps it apart from any ONNX name).
    public static let reluAttribute = "_fused_relu"
    /// The node dynamic quantization's MatMulInteger → Cast(float) → Mul(scale) becomes: inputs A, B, A's and B's
    /// zero points (as MatMulInteger's) and the scale (one value or one per column); float32 output
    /// float(A·B) · scale, the same two roundings in the same order (not an ONNX operator: the leading underscore
    /// keeps it apart from any ONNX name).
    public static let scaledMatMulInteger = "_ScaledMatMulInteger"
    /// The node Add(DQ(a), DQ(b)) → [Relu] → Q becomes: inputs a, a's scale and zero point, b, its scale and zero
    /// point, y's scale and zero point (onnxruntime's QLinearAdd order), per-tensor 8-bit throughout; the same
    /// roundings as the three nodes (not an ONNX operator: the leading underscore keeps it apart from any ONNX name).
    public static let qlinearAdd = "_QLinearAdd"
    /// The node DQ(x) → depthwise Conv (one filter per channel) → [Relu] → Q becomes: inputs x, its scale and zero
    /// point, the Conv's (float) weights and bias (or ""), y's scale and zero point, per-tensor 8-bit activations;
    /// the Conv's attributes. The float kernel's values with the dequantization folded into its input and the
    /// quantization into its output, the same roundings as the three nodes (not an ONNX operator: the leading
    /// underscore keeps it apart from any ONNX name).
    public static let qdqDepthwiseConv = "_QDQDepthwiseConv"

    /// - Parameter standardOperatorsOnly: only QLinearConv and QLinearMatMul (`FusionRules.qdqStandardOperatorsOnly`).
    public static func rewrite(_ graph: Graph, standardOperatorsOnly: Bool = false) -> Graph {
        var pass = Rewrite(graph)
        var changed = false
        for index in pass.nodes.indices where pass.fuse(at: index) { changed = true }
        if !standardOperatorsOnly {
            for index in pass.nodes.indices where pass.fuseScaled(at: index) { changed = true }
            for index in pass.nodes.indices where pass.fuseAdd(at: index) { changed = true }
            for index in pass.nodes.indices where pass.fuseDepthwise(at: index) { changed = true }
            for index in pass.nodes.indices where pass.fuseMaxPool(at: index) { changed = true }
        }
        guard changed else { return graph }
        pass.removeUnreadDequantizations()
        var result = graph
        result.nodes = pass.nodes.compactMap { $0 }
        result.initializers = pass.initializers
        return result
    }

    /// The graph under rewriting: its nodes (nil where one was removed), who writes and how many read each value.
    struct Rewrite {
        var producer: [String: Int] = [:]
        var readers: [String: Int] = [:]
        let graphOutputs: Set<String>
        var initializers: [String: Tensor]
        var nodes: [Node?]

        init(_ graph: Graph) {
            for (index, node) in graph.nodes.enumerated() {
                for output in node.outputs where !output.isEmpty { producer[output] = index }
                for input in node.inputs where !input.isEmpty { readers[input, default: 0] += 1 }
            }
            graphOutputs = Set(graph.outputs.map(\.name))
            initializers = graph.initializers
            nodes = graph.nodes.map { $0 }
        }

        /// A DequantizeLinear producing `value`, with its quantized input, scale and zero point.
        struct Dequantized {
            var index: Int
            var quantized: String
            var scale: String
            var zero: String
            var axis: Int
        }
        func dequantized(_ value: String) -> Dequantized? {
            guard let index = producer[value], let node = nodes[index], node.opType == "DequantizeLinear",
                node.domain.isEmpty || node.domain == "ai.onnx", node.inputs.count == 3,
                (try? node.int("block_size", default: 0)) == 0
            else { return nil }
            guard let zero = initializers[node.inputs[2]], zero.dtype == .int8 || zero.dtype == .uint8,
                let scale = initializers[node.inputs[1]], scale.dtype == .float32
            else { return nil }
            return Dequantized(
                index: index, quantized: node.inputs[0], scale: node.inputs[1], zero: node.inputs[2],
                axis: (try? node.int("axis", default: 1)) ?? 1)
        }
        func count(_ name: String) -> Int? { initializers[name]?.shape.elementCount }
        func floats(_ name: String) -> [Float]? { try? initializers[name]?.scalars(as: Float.self) }
        /// The sole reader of `value` and its index, when `value` is not a graph output.
        func soleReader(_ value: String, after start: Int) -> (Int, Node)? {
            guard readers[value] == 1, !graphOutputs.contains(value) else { return nil }
            for index in (start + 1)..<nodes.count {
                if let node = nodes[index], node.inputs.contains(value) { return (index, node) }
            }
            return nil
        }
        /// The Q that ends the pattern (after an optional Relu), with per-tensor 8-bit parameters.
        func quantizeAfter(_ value: String, from start: Int) -> (relu: Int?, q: Int, node: Node)? {
            guard var (index, node) = soleReader(value, after: start) else { return nil }
            var relu: Int?
            if node.opType == "Relu", let output = node.outputs.first, let next = soleReader(output, after: index) {
                relu = index
                (index, node) = next
            }
            guard node.opType == "QuantizeLinear", node.inputs.count == 3, count(node.inputs[1]) == 1,
                let zero = initializers[node.inputs[2]], zero.dtype == .int8 || zero.dtype == .uint8,
                zero.shape.elementCount == 1, initializers[node.inputs[1]]?.dtype == .float32
            else { return nil }
            return (relu, index, node)
        }
        /// An int32 bias whose scale is input scale × weight scale (per output channel), as quantizers write it.
        func quantizedBias(_ value: String, input: Dequantized, weight: Dequantized, channels: Int) -> String? {
            guard let producerIndex = producer[value], let node = nodes[producerIndex],
                node.opType == "DequantizeLinear", node.inputs.count >= 2,
                let bias = initializers[node.inputs[0]], bias.dtype == .int32, bias.shape.elementCount == channels,
                let scales = floats(node.inputs[1]), let inputScale = floats(input.scale)?.first,
                let weightScales = floats(weight.scale)
            else { return nil }
            if node.inputs.count > 2, !node.inputs[2].isEmpty {
                guard let zeros = try? initializers[node.inputs[2]]?.integerValues(), zeros.allSatisfy({ $0 == 0 })
                else { return nil }
            }
            for channel in 0..<channels {
                let expected = inputScale * weightScales[weightScales.count == 1 ? 0 : channel]
                let actual = scales[scales.count == 1 ? 0 : channel]
                guard abs(actual - expected) <= 1e-6 * abs(expected) else { return nil }
            }
            return node.inputs[0]
        }

        /// Rewrites the Conv, MatMul or Gemm at `index` with its Q/DQ neighbours into one QLinear node; false when
        /// the node is not such a pattern.
        mutating func fuse(at index: Int) -> Bool {
            guard let node = nodes[index], node.domain.isEmpty || node.domain == "ai.onnx" else { return false }
            let isConv = node.opType == "Conv", isMatMul = node.opType == "MatMul", isGemm = node.opType == "Gemm"
            guard isConv || isMatMul || isGemm, node.inputs.count >= 2, let output = node.outputs.first,
                let x = dequantized(node.inputs[0]), let w = dequantized(node.inputs[1]),
                count(x.scale) == 1, let weights = initializers[w.quantized],
                let pattern = quantizeAfter(output, from: index)
            else { return false }
            let wScaleCount = count(w.scale) ?? 0
            let rank = weights.shape.rank
            var weightName = w.quantized
            let channels: Int
            if isConv {
                // Grouped and depthwise convolutions stay in float: the integer kernel would run one small GEMM per
                // group, and the integer depthwise kernel measured no faster than the float path with its dequantize
                // and quantize passes (QDQ MobileNetV2's 17 depthwise layers, one thread: 2.2 ms in float with the
                // passes; the integer kernel 5.0 ms one plane at a time, 2.1-2.2 ms with channels in lanes: its exact
                // requantization per output costs as much as the multiply-adds). Depthwise layers become
                // `qdqDepthwiseConv` (`fuseDepthwise`), the float kernel without the passes.
                guard ((try? node.int("group", default: 1)) ?? 1) == 1 else { return false }
                channels = rank > 0 ? weights.shape[0] : 0
                guard wScaleCount == 1 || (wScaleCount == channels && w.axis == 0) else { return false }
            } else {
                guard rank == 2 else { return false }
                let transB = isGemm ? ((try? node.int("transB", default: 0)) ?? 0) != 0 : false
                if isGemm {
                    let plain =
                        (try? node.int("transA", default: 0)) == 0 && (try? node.float("alpha", default: 1)) == 1
                        && (try? node.float("beta", default: 1)) == 1
                    guard plain else { return false }
                }
                channels = transB ? weights.shape[0] : weights.shape[1]
                let perColumnAxis = transB ? 0 : 1
                guard
                    wScaleCount == 1
                        || (wScaleCount == channels && (w.axis == perColumnAxis || w.axis == perColumnAxis - 2))
                else { return false }
                if transB {
                    // QLinearMatMul reads B as K x N: store the transposed weights once.
                    guard let transposed = try? transpose2D(weights) else { return false }
                    weightName = w.quantized + "_qlinear_transposed"
                    initializers[weightName] = transposed
                }
            }
            var inputs = [x.quantized, x.scale, x.zero, weightName, w.scale, w.zero] + pattern.node.inputs[1...2]
            if node.inputs.count > 2, !node.inputs[2].isEmpty {
                guard let bias = quantizedBias(node.inputs[2], input: x, weight: w, channels: channels) else {
                    return false
                }
                inputs.append(bias)
            }
            replace(
                index, node, opType: isConv ? "QLinearConv" : "QLinearMatMul", inputs: inputs,
                attributes: isConv ? node.attributes : [:], pattern: pattern)
            return true
        }

        /// Puts a node of `opType` writing the pattern's Q output in place of `node` (at `index`), marks a Relu the
        /// pattern absorbs, removes that Relu and the Q, and moves the reader counts from `node`'s inputs to
        /// `inputs`.
        mutating func replace(
            _ index: Int, _ node: Node, opType: String, inputs: [String], attributes: [String: AttributeValue],
            pattern: (relu: Int?, q: Int, node: Node)
        ) {
            var attributes = attributes
            if pattern.relu != nil { attributes[reluAttribute] = .int(1) }
            nodes[index] = Node(
                name: node.name, opType: opType, inputs: inputs, outputs: pattern.node.outputs, attributes: attributes)
            if let relu = pattern.relu { nodes[relu] = nil }
            nodes[pattern.q] = nil
            for value in node.inputs where !value.isEmpty { readers[value, default: 1] -= 1 }
            for value in inputs where !value.isEmpty { readers[value, default: 0] += 1 }
        }

        /// Rewrites Add(DQ(a), DQ(b)) → [Relu] → Q (residual connections of QDQ CNNs) into one `qlinearAdd` node:
        /// per-tensor scales and zero points that are initializers; the DQs stay for any other reader.
        mutating func fuseAdd(at index: Int) -> Bool {
            guard let node = nodes[index], node.opType == "Add", node.domain.isEmpty || node.domain == "ai.onnx",
                node.inputs.count == 2, let output = node.outputs.first,
                let a = dequantized(node.inputs[0]), let b = dequantized(node.inputs[1]),
                count(a.scale) == 1, count(b.scale) == 1, count(a.zero) == 1, count(b.zero) == 1,
                initializers[a.scale]?.dtype == .float32, initializers[b.scale]?.dtype == .float32,
                let pattern = quantizeAfter(output, from: index)
            else { return false }
            let inputs = [a.quantized, a.scale, a.zero, b.quantized, b.scale, b.zero] + pattern.node.inputs[1...2]
            replace(index, node, opType: qlinearAdd, inputs: inputs, attributes: [:], pattern: pattern)
            return true
        }

        /// Rewrites DQ(x) → depthwise Conv → [Relu] → Q (the depthwise layers of QDQ MobileNets, which stay in
        /// float: see `fuse`) into one `qdqDepthwiseConv` node: x per tensor with an initializer scale and zero
        /// point, weights [C, 1, kH, kW] for C channels in C groups (float, or the DequantizeLinear of an
        /// initializer); the weights and bias stay the Conv's inputs (folded to floats later), and x's DQ stays
        /// for any other reader. Measured on QDQ MobileNetV2 (one thread): the dequantize and quantize passes around
        /// its 17 depthwise layers were 0.6 ms of 5.1.
        mutating func fuseDepthwise(at index: Int) -> Bool {
            guard let node = nodes[index], node.opType == "Conv", node.domain.isEmpty || node.domain == "ai.onnx",
                node.inputs.count >= 2, let output = node.outputs.first, let x = dequantized(node.inputs[0]),
                count(x.scale) == 1, count(x.zero) == 1, initializers[x.scale]?.dtype == .float32,
                let groups = try? node.int("group", default: 1), groups > 1
            else { return false }
            let weightShape =
                dequantized(node.inputs[1]).flatMap { initializers[$0.quantized]?.shape }
                ?? initializers[node.inputs[1]]?.shape
            guard let shape = weightShape, shape.rank == 4, shape[0] == groups, shape[1] == 1,
                let pattern = quantizeAfter(output, from: index)
            else { return false }
            let bias = node.inputs.count > 2 ? node.inputs[2] : ""
            let inputs = [x.quantized, x.scale, x.zero, node.inputs[1], bias] + pattern.node.inputs[1...2]
            replace(
                index, node, opType: qdqDepthwiseConv, inputs: inputs, attributes: node.attributes, pattern: pattern)
            return true
        }

        /// Rewrites MatMulInteger → Cast(to float) → Mul by a scale into one `scaledMatMulInteger` node, as
        /// `quantize_dynamic` (and `--precision int8`) write them: B constant and 2-D, the scale a float32 constant
        /// or the product of DynamicQuantizeLinear's scale and a constant, either of 1 or N values (rank 1 at most,
        /// so it scales columns). The fused node takes the last Mul's place, after the scale's producer.
        mutating func fuseScaled(at index: Int) -> Bool {
            guard let node = nodes[index], node.domain.isEmpty || node.domain == "ai.onnx",
                node.opType == "MatMulInteger", (2...4).contains(node.inputs.count), let output = node.outputs.first,
                let weights = initializers[node.inputs[1]], weights.shape.rank == 2,
                let (castIndex, cast) = soleReader(output, after: index), cast.opType == "Cast",
                cast.domain.isEmpty, (try? cast.int("to", default: 0)) == 1, let castOutput = cast.outputs.first,
                let (mulIndex, mul) = soleReader(castOutput, after: castIndex), mul.opType == "Mul",
                mul.domain.isEmpty, mul.inputs.count == 2, let result = mul.outputs.first
            else { return false }
            let columns = weights.shape[1]
            let scale = mul.inputs[0] == castOutput ? mul.inputs[1] : mul.inputs[0]
            guard scale != castOutput, columnScale(scale, columns: columns) else { return false }
            var inputs = node.inputs
            while inputs.count < 4 { inputs.append("") }
            inputs.append(scale)
            nodes[mulIndex] = Node(
                name: node.name, opType: QuantizedFusion.scaledMatMulInteger, inputs: inputs, outputs: [result])
            nodes[index] = nil
            nodes[castIndex] = nil
            readers[output, default: 1] -= 1
            readers[castOutput, default: 1] -= 1
            return true
        }

        /// Whether `value` is a float32 constant of 1 or `columns` values and rank 1 at most, or the product of
        /// DynamicQuantizeLinear's scale and such a constant.
        func columnScale(_ value: String, columns: Int) -> Bool {
            func constant(_ name: String) -> Bool {
                guard let tensor = initializers[name], tensor.dtype == .float32, tensor.shape.rank <= 1 else {
                    return false
                }
                return tensor.shape.elementCount == 1 || tensor.shape.elementCount == columns
            }
            if constant(value) { return true }
            guard let index = producer[value], let node = nodes[index], node.opType == "Mul", node.domain.isEmpty,
                node.inputs.count == 2
            else { return false }
            func dynamicScale(_ name: String) -> Bool {
                guard let index = producer[name], let node = nodes[index], node.opType == "DynamicQuantizeLinear",
                    node.domain.isEmpty, node.outputs.count > 1
                else { return false }
                return node.outputs[1] == name
            }
            return (dynamicScale(node.inputs[0]) && constant(node.inputs[1]))
                || (dynamicScale(node.inputs[1]) && constant(node.inputs[0]))
        }

        /// Rewrites DQ(x) → MaxPool → Q with the DQ's scale and zero point (as quantizers write a max pool between
        /// quantized layers) into MaxPool on the bytes: dequantizing is increasing (scale > 0), so the max commutes
        /// with it, and Q(DQ(b)) is b (|(b - z)| ≤ 255 times a scale and divided by it errs far below a half). The
        /// padding, never the max in float, is the least byte, never the max either. The DQ stays for any other reader.
        mutating func fuseMaxPool(at index: Int) -> Bool {
            guard let node = nodes[index], node.opType == "MaxPool", node.domain.isEmpty || node.domain == "ai.onnx",
                node.inputs.count == 1, node.outputs.count == 1, let output = node.outputs.first,
                // The byte kernel's windows: 2-D, no dilation.
                ((try? node.ints("kernel_shape")) ?? nil)?.count == 2,
                ((try? node.ints("dilations")) ?? nil).map({ $0.allSatisfy { $0 == 1 } }) ?? true,
                let x = dequantized(node.inputs[0]), count(x.scale) == 1, count(x.zero) == 1,
                let scale = floats(x.scale)?.first, scale > 0, scale.isFinite,
                let (qIndex, q) = soleReader(output, after: index), q.opType == "QuantizeLinear",
                q.domain.isEmpty || q.domain == "ai.onnx", q.inputs.count == 3, q.inputs[0] == output,
                count(q.inputs[1]) == 1, floats(q.inputs[1])?.first?.bitPattern == scale.bitPattern,
                let qZero = initializers[q.inputs[2]], let xZero = initializers[x.zero], qZero.dtype == xZero.dtype,
                qZero.shape.elementCount == 1, let a = try? qZero.integerValues(), let b = try? xZero.integerValues(),
                a == b, (try? q.int("saturate", default: 1)) == 1
            else { return false }
            var pooled = node
            pooled.inputs = [x.quantized]
            pooled.outputs = q.outputs
            nodes[index] = pooled
            nodes[qIndex] = nil
            readers[node.inputs[0], default: 1] -= 1
            readers[x.quantized, default: 0] += 1
            for value in q.inputs where !value.isEmpty { readers[value, default: 1] -= 1 }
            return true
        }

        /// Dequantize nodes whose every output lost its readers.
        mutating func removeUnreadDequantizations() {
            for index in nodes.indices {
                guard let node = nodes[index], node.opType == "DequantizeLinear" else { continue }
                if node.outputs.allSatisfy({ (readers[$0] ?? 0) <= 0 && !graphOutputs.contains($0) }) {
                    nodes[index] = nil
                    for value in node.inputs where !value.isEmpty { readers[value, default: 1] -= 1 }
                }
            }
        }
    }

    private static func transpose2D(_ tensor: Tensor) throws -> Tensor {
        let rows = tensor.shape[0], columns = tensor.shape[1]
        var bytes = [UInt8](repeating: 0, count: rows * columns)
        tensor.withUnsafeBytes { source in
            for r in 0..<rows {
                for c in 0..<columns { bytes[c * rows + r] = source[r * columns + c] }
            }
        }
        let shape = Shape([columns, rows])
        if tensor.dtype == .int8 {
            return try Tensor(shape: shape, scalars: bytes.map { Int8(bitPattern: $0) })
        }
        return try Tensor(shape: shape, scalars: bytes)
    }
}
