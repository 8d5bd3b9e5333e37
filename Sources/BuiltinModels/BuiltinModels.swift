import InferenceGraph
import InferenceTensor

/// Models built in code, named `builtin:NAME` on the command line, so the tool runs with no files.
public enum BuiltinModels {
    /// One entry of the registry.
    public struct Entry: Sendable {
        public var name: String
        public var summary: String
        public var build: @Sendable () throws -> Graph
    }

    /// The default model when none is given.
    public static let defaultName = "linear"

    public static let entries: [Entry] = [
        Entry(name: "linear", summary: "Linear(10 → 1) + sigmoid with fixed weights (the seed model)", build: linear),
        Entry(name: "mlp", summary: "MLP 784-512-512-10 with ReLU, seeded weights", build: mlp),
        Entry(name: "cnn", summary: "MNIST-like CNN: 2 x (3x3 conv, ReLU, 2x2 max pool), 2 dense layers", build: cnn),
        Entry(
            name: "encoder", summary: "one transformer encoder block: d=256, 4 heads, ffn 1024, seq 128", build: encoder
        ),
    ]

    public static var names: [String] { entries.map(\.name) }

    /// Builds the model called `name` (without the `builtin:` prefix).
    /// - Throws: `BuiltinModelError.unknown` listing the available names.
    public static func graph(named name: String) throws -> Graph {
        guard let entry = entries.first(where: { $0.name == name }) else {
            throw BuiltinModelError.unknown(name: name, available: names)
        }
        return try entry.build()
    }

    /// The seed model's weights: y = sigmoid(x · wᵀ + b) for 10 input features.
    public static let linearWeights: [Float] = [0.42, -0.31, 0.77, 0.15, -0.58, 0.36, 0.23, -0.12, 0.64, -0.27]
    public static let linearBias: Float = 0.1

    @Sendable static func linear() throws -> Graph {
        Graph(
            name: "builtin:linear",
            inputs: [ValueInfo(name: "input", dtype: .float32, dimensions: [.symbolic("batch"), .fixed(10)])],
            outputs: [ValueInfo(name: "probability", dtype: .float32, dimensions: [.symbolic("batch"), .fixed(1)])],
            nodes: [
                Node(
                    name: "linear", opType: "Gemm", inputs: ["input", "weight", "bias"], outputs: ["logit"],
                    attributes: ["transB": .int(1)]),
                Node(name: "sigmoid", opType: "Sigmoid", inputs: ["logit"], outputs: ["probability"]),
            ],
            initializers: [
                "weight": try Tensor(shape: [1, 10], scalars: linearWeights),
                "bias": try Tensor(shape: [1], scalars: [linearBias]),
            ])
    }

    @Sendable static func mlp() throws -> Graph {
        var rng = SplitMix64(seed: 0x1E5F_0001)
        let sizes = [784, 512, 512, 10]
        var nodes: [Node] = []
        var initializers: [String: Tensor] = [:]
        var current = "input"
        for layer in 0..<(sizes.count - 1) {
            let (fanIn, fanOut) = (sizes[layer], sizes[layer + 1])
            // PyTorch's default Linear init range: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
            let bound = 1 / Float(fanIn).squareRoot()
            initializers["fc\(layer + 1).weight"] = try Tensor(
                shape: [fanOut, fanIn], scalars: rng.uniform(count: fanOut * fanIn, bound: bound))
            initializers["fc\(layer + 1).bias"] = try Tensor(
                shape: [fanOut], scalars: rng.uniform(count: fanOut, bound: bound))
            let output = layer == sizes.count - 2 ? "logits" : "fc\(layer + 1)"
            nodes.append(
                Node(
                    name: "fc\(layer + 1)", opType: "Gemm",
                    inputs: [current, "fc\(layer + 1).weight", "fc\(layer + 1).bias"],
                    outputs: [output], attributes: ["transB": .int(1)]))
            current = output
            if layer < sizes.count - 2 {
                nodes.append(
                    Node(name: "relu\(layer + 1)", opType: "Relu", inputs: [current], outputs: ["relu\(layer + 1)"]))
                current = "relu\(layer + 1)"
            }
        }
        return Graph(
            name: "builtin:mlp",
            inputs: [ValueInfo(name: "input", dtype: .float32, dimensions: [.symbolic("batch"), .fixed(784)])],
            outputs: [ValueInfo(name: "logits", dtype: .float32, dimensions: [.symbolic("batch"), .fixed(10)])],
            nodes: nodes, initializers: initializers)
    }
}

/// Builds graphs with seeded weights in PyTorch's default init range.
struct GraphBuilder {
    var rng: SplitMix64
    var nodes: [Node] = []
    var initializers: [String: Tensor] = [:]
    var counter = 0

    init(seed: UInt64) { rng = SplitMix64(seed: seed) }

    mutating func weight(_ name: String, _ dims: [Int], fanIn: Int) throws -> String {
        let bound = 1 / Float(fanIn).squareRoot()
        initializers[name] = try Tensor(
            shape: Shape(dims), scalars: rng.uniform(count: dims.reduce(1, *), bound: bound))
        return name
    }

    mutating func constant(_ name: String, _ tensor: Tensor) -> String {
        initializers[name] = tensor
        return name
    }

    /// Appends a node and returns its (first) output name.
    @discardableResult
    mutating func add(_ op: String, _ inputs: [String], _ attributes: [String: AttributeValue] = [:]) -> String {
        counter += 1
        let output = "\(op.lowercased())_\(counter)"
        nodes.append(Node(name: output, opType: op, inputs: inputs, outputs: [output], attributes: attributes))
        return output
    }
}

extension BuiltinModels {
    @Sendable static func cnn() throws -> Graph {
        var b = GraphBuilder(seed: 0x1E5F_0002)
        var x = "input"
        for (index, (cin, cout)) in [(1, 32), (32, 64)].enumerated() {
            let w = try b.weight("conv\(index + 1).weight", [cout, cin, 3, 3], fanIn: cin * 9)
            let bias = try b.weight("conv\(index + 1).bias", [cout], fanIn: cin * 9)
            x = b.add("Conv", [x, w, bias], ["kernel_shape": .ints([3, 3]), "pads": .ints([1, 1, 1, 1])])
            x = b.add("Relu", [x])
            x = b.add("MaxPool", [x], ["kernel_shape": .ints([2, 2]), "strides": .ints([2, 2])])
        }
        x = b.add("Flatten", [x])
        x = b.add(
            "Gemm",
            [x, try b.weight("fc1.weight", [128, 3136], fanIn: 3136), try b.weight("fc1.bias", [128], fanIn: 3136)],
            ["transB": .int(1)])
        x = b.add("Relu", [x])
        x = b.add(
            "Gemm",
            [x, try b.weight("fc2.weight", [10, 128], fanIn: 128), try b.weight("fc2.bias", [10], fanIn: 128)],
            ["transB": .int(1)])
        b.nodes[b.nodes.count - 1].outputs = ["logits"]
        return Graph(
            name: "builtin:cnn",
            inputs: [
                ValueInfo(
                    name: "input", dtype: .float32, dimensions: [.symbolic("batch"), .fixed(1), .fixed(28), .fixed(28)])
            ],
            outputs: [ValueInfo(name: "logits", dtype: .float32, dimensions: [.symbolic("batch"), .fixed(10)])],
            nodes: b.nodes, initializers: b.initializers)
    }

    /// One post-norm transformer encoder block as PyTorch exports it (dynamic batch via Shape/Gather/Concat,
    /// GELU as x·½·(1 + erf(x/√2))).
    @Sendable static func encoder() throws -> Graph {
        let (d, heads, ffn, seq) = (256, 4, 1024, 128)
        let dk = d / heads
        var b = GraphBuilder(seed: 0x1E5F_0003)
        func ints(_ v: [Int64]) throws -> Tensor { try Tensor(shape: [v.count], scalars: v) }
        func scalar(_ v: Float) throws -> Tensor { try Tensor(shape: [], scalars: [v]) }
        let shape = b.add("Shape", ["input"])
        let batch = b.add(
            "Gather", [shape, b.constant("zero", try Tensor(shape: [], scalars: [Int64(0)]))], ["axis": .int(0)])
        let batch1 = b.add("Unsqueeze", [batch, b.constant("axis0", try ints([0]))])
        let split = b.add(
            "Concat",
            [
                batch1, b.constant("seq", try ints([Int64(seq)])), b.constant("heads", try ints([Int64(heads)])),
                b.constant("dk", try ints([Int64(dk)])),
            ], ["axis": .int(0)])
        let merge = b.add("Concat", [batch1, "seq", b.constant("dmodel", try ints([Int64(d)]))], ["axis": .int(0)])
        var projected: [String: String] = [:]
        for name in ["q", "k", "v"] {
            let w = try b.weight("\(name).weight", [d, d], fanIn: d), bias = try b.weight("\(name).bias", [d], fanIn: d)
            let y = b.add("Add", [b.add("MatMul", ["input", w]), bias])
            let r = b.add("Reshape", [y, split])
            projected[name] = b.add("Transpose", [r], ["perm": .ints(name == "k" ? [0, 2, 3, 1] : [0, 2, 1, 3])])
        }
        let scores = b.add(
            "Div",
            [
                b.add("MatMul", [projected["q"] ?? "", projected["k"] ?? ""]),
                b.constant("sqrt_dk", try scalar(Float(dk).squareRoot())),
            ])
        let attention = b.add("Softmax", [scores], ["axis": .int(-1)])
        let context = b.add(
            "Reshape",
            [
                b.add(
                    "Transpose", [b.add("MatMul", [attention, projected["v"] ?? ""])], ["perm": .ints([0, 2, 1, 3])]),
                merge,
            ])
        let out = b.add(
            "Add",
            [
                b.add("MatMul", [context, try b.weight("o.weight", [d, d], fanIn: d)]),
                try b.weight("o.bias", [d], fanIn: d),
            ])
        let ones = try Tensor(shape: [d], scalars: [Float](repeating: 1, count: d))
        let zeros = try Tensor(shape: [d], scalars: [Float](repeating: 0, count: d))
        let norm1 = b.add(
            "LayerNormalization",
            [b.add("Add", ["input", out]), b.constant("ln1.weight", ones), b.constant("ln1.bias", zeros)],
            ["axis": .int(-1), "epsilon": .float(1e-5)])
        let hidden = b.add(
            "Add",
            [
                b.add("MatMul", [norm1, try b.weight("ffn1.weight", [d, ffn], fanIn: d)]),
                try b.weight("ffn1.bias", [ffn], fanIn: d),
            ])
        let erf = b.add("Erf", [b.add("Div", [hidden, b.constant("sqrt2", try scalar(Float(2).squareRoot()))])])
        let gelu = b.add(
            "Mul",
            [
                b.add("Mul", [hidden, b.add("Add", [erf, b.constant("one", try scalar(1))])]),
                b.constant("half", try scalar(0.5)),
            ])
        let down = b.add(
            "Add",
            [
                b.add("MatMul", [gelu, try b.weight("ffn2.weight", [ffn, d], fanIn: ffn)]),
                try b.weight("ffn2.bias", [d], fanIn: ffn),
            ])
        b.add(
            "LayerNormalization",
            [b.add("Add", [norm1, down]), b.constant("ln2.weight", ones), b.constant("ln2.bias", zeros)],
            ["axis": .int(-1), "epsilon": .float(1e-5)])
        b.nodes[b.nodes.count - 1].outputs = ["output"]
        return Graph(
            name: "builtin:encoder",
            inputs: [
                ValueInfo(name: "input", dtype: .float32, dimensions: [.symbolic("batch"), .fixed(seq), .fixed(d)])
            ],
            outputs: [
                ValueInfo(name: "output", dtype: .float32, dimensions: [.symbolic("batch"), .fixed(seq), .fixed(d)])
            ],
            nodes: b.nodes, initializers: b.initializers)
    }
}

/// A `builtin:` name that does not exist.
public enum BuiltinModelError: Error, Equatable, CustomStringConvertible {
    case unknown(name: String, available: [String])

    public var description: String {
        switch self {
        case .unknown(let name, let available):
            "no builtin model named '\(name)' (available: \(available.map { "builtin:\($0)" }.joined(separator: ", ")))"
        }
    }
}
