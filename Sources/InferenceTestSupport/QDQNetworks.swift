import InferenceGraph
import InferenceTensor

/// QDQ-format networks as onnxruntime's `quantize_static` writes them (DequantizeLinear → Conv → [Relu] →
/// QuantizeLinear per layer, per-channel int8 weights, per-tensor activations), for the tests of the int8 kernels and
/// of planning's int8 layouts.
public struct QDQNetwork {
    public var nodes: [Node] = []
    public var initializers: [String: Tensor] = [:]
    /// int8 activations (zero points shifted by -128) instead of uint8.
    public let signed: Bool
    private var rng: SplitMix64

    public init(signed: Bool = false, seed: UInt64 = 7) {
        self.signed = signed
        rng = SplitMix64(seed: seed)
    }

    /// A scale and zero point for the activation tensor `value` (the Q that writes it and the DQs that read it).
    private mutating func parameters(_ value: String) throws {
        guard initializers["s_" + value] == nil else { return }
        let scale = Float(rng.next() % 40 + 10) / 1000
        let zero = Int(rng.next() % 40) + 100
        initializers["s_" + value] = try Tensor(shape: [], scalars: [scale])
        initializers["z_" + value] =
            signed ? try Tensor(shape: [], scalars: [Int8(zero - 128)]) : try Tensor(shape: [], scalars: [UInt8(zero)])
    }

    /// A convolution `name` from `input` (cin channels) to `output` (cout channels): k x k window padded k / 2,
    /// `stride`, `group` groups (cin for a depthwise layer), a float bias for depthwise layers, an optional Relu.
    public mutating func conv(
        _ name: String, _ input: String, _ output: String, cin: Int, cout: Int, kernel k: Int, stride: Int = 1,
        group: Int = 1, relu: Bool = false, dilation: Int = 1, attributes extra: [String: AttributeValue] = [:]
    ) throws {
        try parameters(input)
        try parameters(output)
        let perGroup = cin / group
        let weights = (0..<cout * perGroup * k * k).map { _ in Int8(truncatingIfNeeded: rng.next() % 255) }
        initializers[name + "_wq"] = try Tensor(shape: [cout, perGroup, k, k], scalars: weights)
        // Weight scales that keep the signal's size from layer to layer: 73 is the weights' root mean square.
        let taps = Float(perGroup * k * k)
        initializers[name + "_ws"] = try Tensor(
            shape: [cout],
            scalars: (0..<cout).map { _ in Float(rng.next() % 100 + 100) / 100 / (73 * taps.squareRoot()) })
        initializers[name + "_wz"] = try Tensor(shape: [cout], scalars: [Int8](repeating: 0, count: cout))
        nodes.append(
            Node(
                name: name + "_dqx", opType: "DequantizeLinear", inputs: [input, "s_" + input, "z_" + input],
                outputs: [name + "_xf"]))
        nodes.append(
            Node(
                name: name + "_dqw", opType: "DequantizeLinear", inputs: [name + "_wq", name + "_ws", name + "_wz"],
                outputs: [name + "_wf"], attributes: ["axis": .int(0)]))
        var inputs = [name + "_xf", name + "_wf"]
        if group > 1 {
            initializers[name + "_b"] = try Tensor(
                shape: [cout], scalars: (0..<cout).map { _ in Float(Int(rng.next() % 200) - 100) / 100 })
            inputs.append(name + "_b")
        }
        let pad = dilation * (k / 2)
        var attributes: [String: AttributeValue] = [
            "group": .int(group), "pads": .ints([pad, pad, pad, pad]), "strides": .ints([stride, stride]),
            "dilations": .ints([dilation, dilation]),
        ]
        attributes.merge(extra) { $1 }
        nodes.append(
            Node(
                name: name, opType: "Conv", inputs: inputs, outputs: [name + (relu ? "_c" : "_r")],
                attributes: attributes))
        if relu {
            nodes.append(Node(name: name + "_relu", opType: "Relu", inputs: [name + "_c"], outputs: [name + "_r"]))
        }
        nodes.append(
            Node(
                name: name + "_q", opType: "QuantizeLinear", inputs: [name + "_r", "s_" + output, "z_" + output],
                outputs: [output]))
    }

    /// A residual addition `name` of two activation tensors of one shape.
    public mutating func add(_ name: String, _ a: String, _ b: String, _ output: String) throws {
        try parameters(output)
        nodes.append(
            Node(
                name: name + "_dqa", opType: "DequantizeLinear", inputs: [a, "s_" + a, "z_" + a], outputs: [name + "_a"]
            ))
        nodes.append(
            Node(
                name: name + "_dqb", opType: "DequantizeLinear", inputs: [b, "s_" + b, "z_" + b], outputs: [name + "_b"]
            ))
        nodes.append(Node(name: name, opType: "Add", inputs: [name + "_a", name + "_b"], outputs: [name + "_s"]))
        nodes.append(
            Node(
                name: name + "_q", opType: "QuantizeLinear", inputs: [name + "_s", "s_" + output, "z_" + output],
                outputs: [output]))
    }

    /// The graph reading activation `input` and returning `output` dequantized as "y".
    public mutating func graph(input: String, output: String) throws -> Graph {
        try parameters(input)
        nodes.append(
            Node(
                name: "dqy", opType: "DequantizeLinear", inputs: [output, "s_" + output, "z_" + output], outputs: ["y"])
        )
        return Graph(
            name: "qdq", inputs: [ValueInfo(name: input, dtype: signed ? .int8 : .uint8, dimensions: nil)],
            outputs: [ValueInfo(name: "y", dtype: .float32, dimensions: nil)], nodes: nodes,
            initializers: initializers, opsetImports: ["": 17])
    }

    /// Inverted-residual blocks as QDQ MobileNetV2 has them: a 3x3 stem (cin -> c), a block with its residual
    /// addition (1x1 c -> 6c, depthwise 3x3, 1x1 -> c, Add), a block whose depthwise layer has `stride` (1x1 ->
    /// `out` channels, no addition), and a 3x3 layer to 8 channels read by the output's DequantizeLinear.
    public static func invertedResiduals(cin: Int, c: Int, out: Int, stride: Int, signed: Bool = false) throws -> Graph
    {
        var net = QDQNetwork(signed: signed, seed: UInt64(cin * 100 + c * 10 + out + stride))
        try net.conv("stem", "x", "a0", cin: cin, cout: c, kernel: 3, relu: true)
        try net.conv("b1_expand", "a0", "b1_e", cin: c, cout: 6 * c, kernel: 1, relu: true)
        try net.conv("b1_dw", "b1_e", "b1_d", cin: 6 * c, cout: 6 * c, kernel: 3, group: 6 * c, relu: true)
        try net.conv("b1_project", "b1_d", "b1_p", cin: 6 * c, cout: c, kernel: 1)
        try net.add("b1_add", "b1_p", "a0", "a1")
        try net.conv("b2_expand", "a1", "b2_e", cin: c, cout: 6 * c, kernel: 1, relu: true)
        try net.conv(
            "b2_dw", "b2_e", "b2_d", cin: 6 * c, cout: 6 * c, kernel: 3, stride: stride, group: 6 * c, relu: true)
        try net.conv("b2_project", "b2_d", "a2", cin: 6 * c, cout: out, kernel: 1)
        try net.conv("head", "a2", "h", cin: out, cout: 8, kernel: 3)
        return try net.graph(input: "x", output: "h")
    }
}
