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

/// A small, fast, seedable generator (SplitMix64) so builtin weights are the same on every machine.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Floats uniform in [-bound, bound), from the top 24 bits of each draw.
    public mutating func uniform(count: Int, bound: Float) -> [Float] {
        (0..<count).map { _ in (Float(next() >> 40) / Float(1 << 24) * 2 - 1) * bound }
    }
}
