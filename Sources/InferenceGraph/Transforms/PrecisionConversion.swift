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

    public var summary: String {
        var parts: [String] = []
        switch precision {
        case .fp32: return "fp32: the model as written"
        case .fp16:
            parts.append("\(convertedInitializers) float32 weights stored as float16")
            if clampedValues > 0 { parts.append("\(clampedValues) values beyond ±65504 clamped") }
            parts.append("inputs and outputs stay float32 (cast at the edges)")
        case .int8:
            parts.append(
                "\(quantizedNodes) MatMul/Gemm nodes dynamically quantized (int8 weights per column, uint8 activations per tensor)"
            )
        case .bf16: break
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
/// - bf16 is refused: the runtime has no bfloat16 tensors yet.
public enum PrecisionConversion {
    public struct Unsupported: Error, CustomStringConvertible {
        public var description: String
    }

    public static func convert(_ graph: Graph, to precision: Precision) throws -> (Graph, PrecisionConversionReport) {
        var report = PrecisionConversionReport(precision: precision)
        report.weightBytesBefore = graph.initializers.values.reduce(0) { $0 + $1.byteCount }
        var result = graph
        switch precision {
        case .fp32:
            break
        case .bf16:
            throw Unsupported(description: "--precision bf16 is not supported yet (no bfloat16 tensors); use fp16")
        case .fp16:
            result = try toFloat16(graph, report: &report)
        case .int8:
            result = try dynamicInt8(graph, report: &report)
        }
        report.weightBytesAfter = result.initializers.values.reduce(0) { $0 + $1.byteCount }
        return (result, report)
    }

    static func hasSubgraphs(_ graph: Graph) -> Bool {
        graph.nodes.contains { node in
            node.attributes.values.contains { if case .graph = $0 { true } else { false } }
        }
    }

    // MARK: float16

    /// Slots whose float values are scales, regions or sizes, not data: they keep float32.
    static let float32Slots: [String: Set<Int>] = ["Resize": [1, 2], "Upsample": [1], "RoiAlign": [1]]

    private static func toFloat16(_ graph: Graph, report: inout PrecisionConversionReport) throws -> Graph {
        guard !hasSubgraphs(graph) else {
            throw Unsupported(description: "--precision fp16: models with If, Loop or Scan are not converted yet")
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
        var renamed: [String: String] = [:]
        for (name, tensor) in graph.initializers where tensor.dtype == .float32 && data.contains(name) {
            let values = try tensor.scalars(as: Float.self)
            var clamped = 0
            let halves = values.map { value -> Float16 in
                if value.isFinite && abs(value) > 65504 {
                    clamped += 1
                    return value < 0 ? -65504 : 65504
                }
                return Float16(value)
            }
            report.clampedValues += clamped
            let half = try Tensor(shape: tensor.shape, scalars: halves)
            report.convertedInitializers += 1
            if keep.contains(name) {
                // Read as data and as a scale: the data readers get a float16 copy.
                let copy = name + "_fp16"
                result.initializers[copy] = half
                renamed[name] = copy
            } else {
                result.initializers[name] = half
            }
        }
        var nodes: [Node] = []
        // Float32 graph inputs: cast once to float16 for their readers.
        for input in graph.runtimeInputs where input.dtype == .float32 {
            let half = input.name + "_fp16"
            renamed[input.name] = half
            nodes.append(
                Node(
                    name: "\(input.name) to float16", opType: "Cast", inputs: [input.name], outputs: [half],
                    attributes: ["to": .int(10)]))
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
            if node.opType == "Cast", case .int(1)? = node.attributes["to"] { node.attributes["to"] = .int(10) }
            if node.opType == "ConstantOfShape" {
                // Its default value is a float32 zero.
                let value = node.attributes["value"].flatMap { if case .tensor(let t) = $0 { t } else { nil } }
                if value == nil || value?.dtype == .float32 {
                    let floats = try value?.scalars(as: Float.self) ?? [0]
                    node.attributes["value"] = .tensor(
                        try Tensor(shape: value?.shape ?? Shape([1]), scalars: floats.map { Float16($0) }))
                }
            }
            node.outputs = node.outputs.map { outputs.contains($0) ? $0 + "_fp16" : $0 }
            nodes.append(node)
        }
        for output in graph.outputs where outputs.contains(output.name) {
            nodes.append(
                Node(
                    name: "\(output.name) to float32", opType: "Cast", inputs: [output.name + "_fp16"],
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
