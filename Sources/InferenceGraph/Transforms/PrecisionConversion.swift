import InferenceTensor

/// The arithmetic precision a model runs in: what `--precision` asks for.
public enum Precision: String, CaseIterable, Sendable, Codable, CustomStringConvertible {
    case fp32, fp16, bf16, int8

    public var description: String { rawValue }
}

/// What a conversion did, for the user (stderr) and the JSON records.
public struct PrecisionConversionReport: Sendable, Codable, Equatable {
    public var precision: Precision
    /// Initializers stored in the new type (float16 weights, int8 weights).
    public var convertedInitializers: Int = 0
    public var weightBytesBefore: Int = 0
    public var weightBytesAfter: Int = 0
    /// MatMul/Gemm nodes now computed on int8 (dynamic quantization).
    public var quantizedNodes: Int = 0
    /// Weights beyond float16's range, clamped to ±65504.
    public var clampedValues: Int = 0
    /// What stayed float32 and why, one line each.
    public var notes: [String] = []
    /// int8 with calibration data: activation ranges measured (MinMax) instead of computed per run.
    public var calibrated = false

    public init(precision: Precision) { self.precision = precision }

    public var summary: String {
        var parts: [String] = []
        switch precision {
        case .fp32: return "fp32: the model as written"
        case .fp16, .bf16:
            parts.append(
                "\(convertedInitializers) float32 weights stored as \(precision == .bf16 ? "bfloat16" : "float16")")
            if clampedValues > 0 { parts.append("\(clampedValues) values beyond ±65504 clamped") }
            parts.append("inputs and outputs stay float32 (cast at the edges)")
        case .int8 where calibrated:
            parts.append(
                "\(quantizedNodes) Conv/MatMul/Gemm nodes statically quantized (int8 weights per channel, uint8 "
                    + "activations with calibrated ranges, planned into integer kernels)")
        case .int8:
            parts.append(
                "\(quantizedNodes) MatMul/Gemm nodes dynamically quantized (int8 weights per column, uint8 activations per tensor)"
            )
        }
        let size = { (bytes: Int) -> String in
            bytes >= 1_048_576
                ? "\(Double(bytes * 10 / 1_048_576) / 10) MiB" : "\(Double(bytes * 10 / 1024) / 10) KiB"
        }
        parts.append("weights \(size(weightBytesBefore)) -> \(size(weightBytesAfter))")
        return "\(precision): " + parts.joined(separator: "; ")
    }
}

/// Converts a float32 model to another precision at load, the way the standard converters do:
/// - fp16 (onnxconverter-common's `convert_float_to_float16` with `keep_io_types`): float32 weights become
///   float16, Cast-to-float32 nodes cast to float16, and the float32 inputs and outputs keep their type through
///   Casts at the edges; weights read as scales or sizes (Resize, Upsample, shape-like inputs) stay float32.
///   Nodes without float16 kernels compute in float32 and round their outputs to float16 (`WidenedKernel`).
/// - int8 (onnxruntime's `quantize_dynamic`): every MatMul, and Gemm without transposed A or scaling, whose
///   weights are a constant 2-D matrix runs as DynamicQuantizeLinear (per-tensor uint8 activations, computed per
///   run) + MatMulInteger on symmetric int8 weights with one scale per output column, then scaled back to
///   float32 (and the bias added). Other nodes stay float32.
/// - bf16: as fp16 with bfloat16 (float32's exponent range, 8 significant bits; nothing clamped).
public enum PrecisionConversion {
    public struct Unsupported: Error, CustomStringConvertible {
        public var description: String
    }

    /// - Parameter ranges: for int8, calibrated activation ranges (`Calibration.ranges`): static quantization
    ///   instead of dynamic.
    public static func convert(
        _ graph: Graph, to precision: Precision, ranges: [String: (low: Float, high: Float)]? = nil
    ) throws -> (Graph, PrecisionConversionReport) {
        var report = PrecisionConversionReport(precision: precision)
        report.weightBytesBefore = graph.initializers.values.reduce(0) { $0 + $1.byteCount }
        let graph = precision == .fp32 ? graph : foldingConstantIdentities(graph)
        var result = graph
        switch precision {
        case .int8 where ranges != nil:
            report.calibrated = true
            result = try StaticQuantization.quantize(graph, ranges: ranges ?? [:], report: &report)
        case .fp32:
            break
        case .bf16:
            result = try toFloat16(graph, report: &report, brain: true)
        case .fp16:
            result = try toFloat16(graph, report: &report)
        case .int8:
            result = try dynamicInt8(graph, report: &report)
        }
        report.weightBytesAfter = result.initializers.values.reduce(0) { $0 + $1.byteCount }
        return (result, report)
    }

    /// The graph with every Identity of an initializer folded away (exporters share equal weights that way, e.g.
    /// PyTorch's all-zero folded biases, or one layer's weights used by several), so that weights are recognized
    /// as constants: nodes read the initializer itself, and one shared weight stays one tensor (converted once, not
    /// once per reader). Initializers then read by no node are dropped. With subgraphs (which may read the
    /// Identity's output by name) the initializer is copied under the Identity's output name instead.
    static func foldingConstantIdentities(_ graph: Graph) -> Graph {
        var result = graph
        let subgraphs = hasSubgraphs(graph)
        var source: [String: String] = [:]
        var kept: [Node] = []
        for var node in graph.nodes {
            node.inputs = node.inputs.map { source[$0] ?? $0 }
            if node.opType == "Identity", node.domain.isEmpty, node.inputs.count == 1, node.outputs.count == 1,
                let tensor = result.initializers[node.inputs[0]],
                !graph.outputs.contains(where: { $0.name == node.outputs[0] })
            {
                if subgraphs {
                    result.initializers[node.outputs[0]] = tensor
                } else {
                    source[node.outputs[0]] = node.inputs[0]
                }
                continue
            }
            kept.append(node)
        }
        result.nodes = kept
        if !subgraphs {
            let read = Set(result.nodes.flatMap(\.inputs)).union(result.outputs.map(\.name))
            result.initializers = result.initializers.filter { read.contains($0.key) }
        }
        return result
    }

    static func hasSubgraphs(_ graph: Graph) -> Bool {
        graph.nodes.contains { node in
            node.attributes.values.contains { if case .graph = $0 { true } else { false } }
        }
    }

    // MARK: float16

    /// Slots whose float values are scales, regions or sizes, not data: they keep float32.
    static let float32Slots: [String: Set<Int>] = ["Resize": [1, 2], "Upsample": [1], "RoiAlign": [1]]

    /// Float32 initializers read as data become the narrow type (float16 clamps to ±65504); one also read as a
    /// scale keeps its float32 value and gets a narrow copy. Returns the renamed copies.
    private static func narrowInitializers(
        _ graph: Graph, into result: inout Graph, data: Set<String>, keep: Set<String>, brain: Bool,
        report: inout PrecisionConversionReport
    ) throws -> [String: String] {
        let flag = brain ? "bf16" : "fp16"
        var renamed: [String: String] = [:]
        for (name, tensor) in graph.initializers where tensor.dtype == .float32 && data.contains(name) {
            var clamped = 0
            let values = try tensor.scalars(as: Float.self).map { value -> Float in
                if !brain && value.isFinite && abs(value) > 65504 {
                    clamped += 1
                    return value < 0 ? -65504 : 65504
                }
                return value
            }
            report.clampedValues += clamped
            let half =
                brain
                ? try Tensor(shape: tensor.shape, scalars: values.map { BFloat16($0) })
                : try Tensor(shape: tensor.shape, scalars: values.map { Float16($0) })
            report.convertedInitializers += 1
            if keep.contains(name) {
                // Read as data and as a scale: the data readers get a float16 copy.
                let copy = name + "_\(flag)"
                result.initializers[copy] = half
                renamed[name] = copy
            } else {
                result.initializers[name] = half
            }
        }
        return renamed
    }

    /// float16, or bfloat16 when `brain` (float32's range: nothing to clamp; 8 significant bits instead of 11).
    private static func toFloat16(
        _ graph: Graph, report: inout PrecisionConversionReport, brain: Bool = false
    ) throws -> Graph {
        let flag = brain ? "bf16" : "fp16"
        let code = brain ? 16 : 10
        guard !hasSubgraphs(graph) else {
            throw Unsupported(description: "--precision \(flag): models with If, Loop or Scan are not converted yet")
        }
        /// A float32 array as the narrow type.
        func narrow(_ values: [Float], shape: Shape) throws -> Tensor {
            if brain { return try Tensor(shape: shape, scalars: values.map { BFloat16($0) }) }
            return try Tensor(shape: shape, scalars: values.map { Float16($0) })
        }
        var keep: Set<String> = []
        var data: Set<String> = []
        for node in graph.nodes {
            let slots = (float32Slots[node.opType] ?? []).union(ShapeInference.shapeLikeInputs[node.opType] ?? [])
            for (slot, name) in node.inputs.enumerated() where !name.isEmpty {
                if slots.contains(slot) { keep.insert(name) } else { data.insert(name) }
            }
        }
        var result = graph
        var renamed = try narrowInitializers(
            graph, into: &result, data: data, keep: keep, brain: brain, report: &report)
        var nodes: [Node] = []
        // Float32 graph inputs: cast once to float16 for their readers.
        for input in graph.runtimeInputs where input.dtype == .float32 {
            let half = input.name + "_\(flag)"
            renamed[input.name] = half
            nodes.append(
                Node(
                    name: "\(input.name) to \(flag)", opType: "Cast", inputs: [input.name], outputs: [half],
                    attributes: ["to": .int(code)]))
        }
        let outputs = Set(graph.outputs.filter { $0.dtype == .float32 }.map(\.name))
        // An output that is also a graph input (or an initializer) passes straight through.
        for output in graph.outputs where outputs.contains(output.name) {
            if graph.initializers[output.name] != nil || graph.runtimeInputs.contains(where: { $0.name == output.name })
            {
                throw Unsupported(description: "--precision fp16: output '\(output.name)' is not computed by a node")
            }
        }
        for var node in graph.nodes {
            let slots = (float32Slots[node.opType] ?? []).union(ShapeInference.shapeLikeInputs[node.opType] ?? [])
            node.inputs = node.inputs.enumerated().map { slot, name in
                slots.contains(slot) ? name : (renamed[name] ?? name)
            }
            if node.opType == "Cast", case .int(1)? = node.attributes["to"] { node.attributes["to"] = .int(code) }
            if node.opType == "ConstantOfShape" {
                // Its default value is a float32 zero.
                let value = node.attributes["value"].flatMap { if case .tensor(let t) = $0 { t } else { nil } }
                if value == nil || value?.dtype == .float32 {
                    let floats = try value?.scalars(as: Float.self) ?? [0]
                    node.attributes["value"] = .tensor(
                        try narrow(floats, shape: value?.shape ?? Shape([1])))
                }
            }
            node.outputs = node.outputs.map { outputs.contains($0) ? $0 + "_\(flag)" : $0 }
            nodes.append(node)
        }
        for output in graph.outputs where outputs.contains(output.name) {
            nodes.append(
                Node(
                    name: "\(output.name) to float32", opType: "Cast", inputs: [output.name + "_\(flag)"],
                    outputs: [output.name], attributes: ["to": .int(1)]))
        }
        result.nodes = nodes
        return result
    }

    // MARK: int8 (dynamic)

    private static func dynamicInt8(_ graph: Graph, report: inout PrecisionConversionReport) throws -> Graph {
        var result = graph
        var nodes: [Node] = []
        /// One DynamicQuantizeLinear per activation, shared by the nodes that read it.
        var quantized: [String: (q: String, scale: String, zero: String)] = [:]
        var counter = 0
        for node in graph.nodes {
            guard node.domain.isEmpty || node.domain == "ai.onnx", node.opType == "MatMul" || node.opType == "Gemm",
                node.inputs.count >= 2, let weights = graph.initializers[node.inputs[1]], weights.dtype == .float32,
                weights.shape.rank == 2, weights.shape.elementCount >= 64, graph.initializers[node.inputs[0]] == nil,
                let output = node.outputs.first
            else {
                nodes.append(node)
                continue
            }
            var transB = false
            var bias: String?
            if node.opType == "Gemm" {
                let transA = try node.int("transA", default: 0)
                let alpha = try node.float("alpha", default: 1), beta = try node.float("beta", default: 1)
                guard transA == 0 && alpha == 1 && beta == 1 else {
                    nodes.append(node)
                    continue
                }
                transB = try node.int("transB", default: 0) != 0
                if node.inputs.count > 2, !node.inputs[2].isEmpty { bias = node.inputs[2] }
            }
            counter += 1
            let prefix = "\(node.displayName.isEmpty ? "node\(counter)" : node.displayName)_int8_\(counter)"
            let (wq, ws) = try quantizeColumns(weights, transposed: transB)
            result.initializers[prefix + "_w"] = wq
            result.initializers[prefix + "_w_scale"] = ws
            report.convertedInitializers += 1
            report.quantizedNodes += 1
            let x = node.inputs[0]
            let q: (q: String, scale: String, zero: String)
            if let existing = quantized[x] {
                q = existing
            } else {
                q = (prefix + "_xq", prefix + "_x_scale", prefix + "_x_zero")
                quantized[x] = q
                nodes.append(
                    Node(
                        name: prefix + "_quantize", opType: "DynamicQuantizeLinear", inputs: [x],
                        outputs: [q.q, q.scale, q.zero]))
            }
            nodes.append(
                Node(
                    name: prefix + "_matmul", opType: "MatMulInteger", inputs: [q.q, prefix + "_w", q.zero],
                    outputs: [prefix + "_sums"]))
            nodes.append(
                Node(
                    name: prefix + "_cast", opType: "Cast", inputs: [prefix + "_sums"], outputs: [prefix + "_float"],
                    attributes: ["to": .int(1)]))
            nodes.append(
                Node(
                    name: prefix + "_scale", opType: "Mul", inputs: [q.scale, prefix + "_w_scale"],
                    outputs: [prefix + "_scales"]))
            let scaled = bias == nil ? output : prefix + "_scaled"
            nodes.append(
                Node(
                    name: prefix + "_rescale", opType: "Mul", inputs: [prefix + "_float", prefix + "_scales"],
                    outputs: [scaled]))
            if let bias {
                nodes.append(Node(name: prefix + "_bias", opType: "Add", inputs: [scaled, bias], outputs: [output]))
            }
        }
        // Float weights no node reads any more.
        let read = Set(nodes.flatMap(\.inputs))
        for name in graph.initializers.keys where !read.contains(name) && result.initializers[name] != nil {
            if !graph.inputs.contains(where: { $0.name == name }) { result.initializers[name] = nil }
        }
        result.nodes = nodes
        if report.quantizedNodes == 0 {
            report.notes.append("no MatMul or Gemm with constant 2-D weights: nothing to quantize")
        }
        return result
    }

    /// Symmetric int8 per output column: scale = max |w| / 127 over the column (1 for an all-zero column),
    /// q = round_half_even(w / scale). Returns K x N weights and N scales.
    public static func quantizeColumns(_ weights: Tensor, transposed: Bool) throws -> (Tensor, Tensor) {
        let values = try weights.scalars(as: Float.self)
        let rows = weights.shape[0], columns = weights.shape[1]
        let k = transposed ? columns : rows, n = transposed ? rows : columns
        func at(_ i: Int, _ j: Int) -> Float { transposed ? values[j * columns + i] : values[i * columns + j] }
        var scales = [Float](repeating: 1, count: n)
        for j in 0..<n {
            var largest: Float = 0
            for i in 0..<k where at(i, j).isFinite { largest = max(largest, abs(at(i, j))) }
            if largest > 0 { scales[j] = largest / 127 }
        }
        var quantized = [Int8](repeating: 0, count: k * n)
        for i in 0..<k {
            for j in 0..<n {
                let q = (at(i, j) / scales[j]).rounded(.toNearestOrEven)
                quantized[i * n + j] = q.isNaN ? 0 : Int8(min(max(q, -127), 127))
            }
        }
        return (try Tensor(shape: Shape([k, n]), scalars: quantized), try Tensor(shape: Shape([n]), scalars: scales))
    }
}

/// The precision a model was exported in, as `inspect` reports it.
public struct ModelPrecision: Sendable, Equatable {
    /// Initializers per element type ("float32": 12, "int8": 6).
    public var weightTypes: [String: Int]
    /// How the model is quantized, in words; nil when it is not.
    public var quantization: String?

    public init(_ graph: Graph) {
        var types: [String: Int] = [:]
        for tensor in graph.initializers.values { types[tensor.dtype.rawValue, default: 0] += 1 }
        weightTypes = types
        var counts: [String: Int] = [:]
        for node in graph.nodes { counts[node.opType, default: 0] += 1 }
        let integer = ["QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger"].filter { counts[$0] != nil }
        let dequantize = counts["DequantizeLinear"] ?? 0, quantize = counts["QuantizeLinear"] ?? 0
        if counts["DynamicQuantizeLinear"] != nil {
            quantization =
                "dynamic int8 (\(counts["DynamicQuantizeLinear"] ?? 0) DynamicQuantizeLinear, "
                + integer.map { "\(counts[$0] ?? 0) \($0)" }.joined(separator: ", ") + ")"
        } else if !integer.isEmpty {
            quantization =
                "integer operators (" + integer.map { "\(counts[$0] ?? 0) \($0)" }.joined(separator: ", ") + ")"
        } else if dequantize > 0 && quantize > 0 {
            quantization =
                "QDQ (\(quantize) QuantizeLinear, \(dequantize) DequantizeLinear; Conv/MatMul/Gemm between them run as "
                + "QLinearConv/QLinearMatMul on the CPU)"
        } else if dequantize > 0 {
            quantization = "weights only (\(dequantize) DequantizeLinear of stored weights)"
        } else {
            quantization = nil
        }
    }
}

/// Static int8 (onnxruntime's `quantize_static` in QDQ format, MinMax calibration): activations quantized per tensor
/// to uint8 with ranges measured on calibration inputs, weights to int8 per output channel (symmetric), biases to
/// int32 at the product of the two scales; QuantizeLinear/DequantizeLinear pairs are written around every Conv,
/// MatMul and Gemm with constant weights (and after the Relu that follows one), and `QuantizedFusion` then plans
/// each into QLinearConv or QLinearMatMul.
public enum StaticQuantization {
    /// The float32 values whose ranges calibration must measure: the inputs and outputs (after a sole Relu) of the
    /// nodes to quantize.
    public static func calibrationTargets(_ graph: Graph) -> [String] {
        let graph = PrecisionConversion.foldingConstantIdentities(graph)
        var targets: [String] = []
        var seen: Set<String> = []
        for (index, node) in graph.nodes.enumerated() where quantizable(node, graph) {
            for name in [node.inputs[0], output(of: index, graph).value] where seen.insert(name).inserted {
                targets.append(name)
            }
        }
        return targets
    }

    static func quantizable(_ node: Node, _ graph: Graph) -> Bool {
        guard node.domain.isEmpty || node.domain == "ai.onnx", node.inputs.count >= 2,
            let weights = graph.initializers[node.inputs[1]], weights.dtype == .float32,
            graph.initializers[node.inputs[0]] == nil, node.outputs.count == 1
        else { return false }
        switch node.opType {
        case "Conv":
            // Grouped and depthwise convolutions stay float (see QuantizedFusion): no pair around them.
            return (weights.shape.rank == 4 || weights.shape.rank == 3) && (try? node.int("group", default: 1)) == 1
        case "MatMul": return weights.shape.rank == 2
        case "Gemm":
            return weights.shape.rank == 2 && (try? node.int("transA", default: 0)) == 0
                && (try? node.float("alpha", default: 1)) == 1 && (try? node.float("beta", default: 1)) == 1
        default: return false
        }
    }

    /// The value to quantize after node `index`: its output, or the output of a Relu that is its only reader.
    static func output(of index: Int, _ graph: Graph) -> (value: String, relu: Int?) {
        let value = graph.nodes[index].outputs[0]
        let readers = graph.nodes.indices.filter { graph.nodes[$0].inputs.contains(value) }
        if readers.count == 1, let reader = readers.first, graph.nodes[reader].opType == "Relu",
            !graph.outputs.contains(where: { $0.name == value })
        {
            return (graph.nodes[reader].outputs[0], reader)
        }
        return (value, nil)
    }

    /// uint8 scale and zero point for a range, widened to hold 0 (so that zero padding is exact).
    public static func activationParameters(low: Float, high: Float) -> (scale: Float, zero: UInt8) {
        let low = min(low, 0), high = max(high, 0)
        guard high > low, (high - low).isFinite else { return (1, 0) }
        let scale = (high - low) / 255
        let zero = min(max((0 - low / scale).rounded(.toNearestOrEven), 0), 255)
        return (scale, UInt8(zero))
    }

    /// - Parameter ranges: min and max of each calibration target.
    /// - Throws: `PrecisionConversion.Unsupported` when a target has no range.
    public static func quantize(
        _ graph: Graph, ranges: [String: (low: Float, high: Float)], report: inout PrecisionConversionReport
    ) throws -> Graph {
        let graph = PrecisionConversion.foldingConstantIdentities(graph)
        var result = graph
        var nodes: [Node] = []
        var inserted: [String: String] = [:]  // float value -> its dequantized copy
        var counter = 0
        func parameters(_ value: String) throws -> (scale: String, zero: String) {
            let scaleName = value + "_qdq_scale", zeroName = value + "_qdq_zero"
            if result.initializers[scaleName] == nil {
                guard let range = ranges[value] else {
                    throw PrecisionConversion.Unsupported(description: "no calibration range for '\(value)'")
                }
                let (scale, zero) = activationParameters(low: range.low, high: range.high)
                result.initializers[scaleName] = try Tensor(shape: Shape([]), scalars: [scale])
                result.initializers[zeroName] = try Tensor(shape: Shape([]), scalars: [zero])
            }
            return (scaleName, zeroName)
        }
        /// Q then DQ of a float value; returns the dequantized name.
        func fakeQuantize(_ value: String, into list: inout [Node]) throws -> String {
            if let existing = inserted[value] { return existing }
            let (scale, zero) = try parameters(value)
            let q = value + "_qdq_q", dq = value + "_qdq_dq"
            list.append(Node(name: q, opType: "QuantizeLinear", inputs: [value, scale, zero], outputs: [q]))
            list.append(Node(name: dq, opType: "DequantizeLinear", inputs: [q, scale, zero], outputs: [dq]))
            inserted[value] = dq
            return dq
        }
        // Values produced by a quantized node (or its Relu) are re-quantized right after the producer.
        var quantizeAfter: [Int: String] = [:]
        var quantizedNodes: Set<Int> = []
        for (index, node) in graph.nodes.enumerated() where quantizable(node, graph) {
            quantizedNodes.insert(index)
            let (value, relu) = output(of: index, graph)
            quantizeAfter[relu ?? index] = value
        }
        var renames: [String: String] = [:]
        for (index, original) in graph.nodes.enumerated() {
            var node = original
            node.inputs = node.inputs.map { renames[$0] ?? $0 }
            if quantizedNodes.contains(index) {
                counter += 1
                let prefix = "\(node.displayName.isEmpty ? "node" : node.displayName)_int8_\(counter)"
                // The float value before any renaming: a quantized producer already made its dequantized copy.
                node.inputs[0] = try fakeQuantize(original.inputs[0], into: &nodes)
                let inputScale = try Float(
                    result.initializers[try parameters(original.inputs[0]).scale]?.scalars(as: Float.self).first
                        ?? 1)
                guard
                    try quantizeWeights(
                        of: &node, original: original, graph: graph, prefix: prefix, inputScale: inputScale,
                        into: &result, nodes: &nodes)
                else { continue }
                report.quantizedNodes += 1
                report.convertedInitializers += 1
            }
            if let value = quantizeAfter[index], graph.outputs.contains(where: { $0.name == value }) {
                // A graph output: the node writes a float value, and its quantize/dequantize pair writes the output
                // (as quantizers do), so that the node plans into an integer kernel too.
                let (scale, zero) = try parameters(value)
                let float = value + "_qdq_float", q = value + "_qdq_q"
                node.outputs[0] = float
                nodes.append(node)
                nodes.append(Node(name: q, opType: "QuantizeLinear", inputs: [float, scale, zero], outputs: [q]))
                nodes.append(
                    Node(
                        name: value + "_qdq_dq", opType: "DequantizeLinear", inputs: [q, scale, zero], outputs: [value])
                )
                continue
            }
            nodes.append(node)
            if let value = quantizeAfter[index] {
                // Readers after this point see the dequantized copy.
                let dq = try fakeQuantize(value, into: &nodes)
                renames[value] = dq
            }
        }
        result.nodes = nodes
        let read = Set(nodes.flatMap(\.inputs))
        for name in graph.initializers.keys where !read.contains(name) { result.initializers[name] = nil }
        return result
    }

    /// Per-channel int8 weights (and an int32 bias at input scale × weight scale) behind DequantizeLinear nodes, as
    /// quantize_static writes them; false when the node's weights or bias are not what that needs.
    static func quantizeWeights(
        of node: inout Node, original: Node, graph: Graph, prefix: String, inputScale: Float, into result: inout Graph,
        nodes: inout [Node]
    ) throws -> Bool {
        guard let weights = graph.initializers[original.inputs[1]] else { return false }
        let transB = node.opType == "Gemm" && ((try? node.int("transB", default: 0)) ?? 0) != 0
        // Per output channel: Conv's first axis, MatMul's last, a transposed Gemm's first.
        let axis = node.opType == "Conv" || transB ? 0 : 1
        let (wq, ws) = try quantizeChannels(weights, axis: axis)
        result.initializers[prefix + "_w"] = wq
        result.initializers[prefix + "_w_scale"] = ws
        result.initializers[prefix + "_w_zero"] = try Tensor(
            shape: ws.shape, scalars: [Int8](repeating: 0, count: ws.elementCount))
        nodes.append(
            Node(
                name: prefix + "_w_dq", opType: "DequantizeLinear",
                inputs: [prefix + "_w", prefix + "_w_scale", prefix + "_w_zero"],
                outputs: [prefix + "_w_float"],
                attributes: ["axis": .int(axis)]))
        node.inputs[1] = prefix + "_w_float"
        if node.inputs.count > 2, !node.inputs[2].isEmpty, let bias = graph.initializers[original.inputs[2]],
            bias.dtype == .float32
        {
            let scales = try ws.scalars(as: Float.self).map { $0 * inputScale }
            let values = try bias.scalars(as: Float.self)
            guard values.count == scales.count else { return false }
            let quantized = zip(values, scales).map { value, scale -> Int32 in
                let q = (value / scale).rounded(.toNearestOrEven)
                return q.isFinite ? Int32(max(min(q, 2_147_483_520), -2_147_483_520)) : 0
            }
            result.initializers[prefix + "_b"] = try Tensor(shape: bias.shape, scalars: quantized)
            result.initializers[prefix + "_b_scale"] = try Tensor(shape: bias.shape, scalars: scales)
            nodes.append(
                Node(
                    name: prefix + "_b_dq", opType: "DequantizeLinear",
                    inputs: [prefix + "_b", prefix + "_b_scale"], outputs: [prefix + "_b_float"],
                    attributes: ["axis": .int(0)]))
            node.inputs[2] = prefix + "_b_float"
        }
        return true
    }

    /// Symmetric int8 per channel along `axis` (0 or 1 of a 2-D matrix; 0 of a convolution's weights).
    static func quantizeChannels(_ weights: Tensor, axis: Int) throws -> (Tensor, Tensor) {
        let values = try weights.scalars(as: Float.self)
        let dims = weights.shape.dimensions
        let channels = dims[axis]
        let inner = dims[(axis + 1)...].reduce(1, *)
        func channel(_ flat: Int) -> Int { (flat / inner) % channels }
        var largest = [Float](repeating: 0, count: channels)
        for (flat, value) in values.enumerated() where value.isFinite {
            largest[channel(flat)] = max(largest[channel(flat)], abs(value))
        }
        let scales = largest.map { $0 > 0 ? $0 / 127 : 1 }
        let quantized = values.enumerated().map { flat, value -> Int8 in
            let q = (value / scales[channel(flat)]).rounded(.toNearestOrEven)
            return q.isNaN ? 0 : Int8(min(max(q, -127), 127))
        }
        return (
            try Tensor(shape: weights.shape, scalars: quantized), try Tensor(shape: Shape([channels]), scalars: scales)
        )
    }
}
