import InferenceTensor

/// One dimension of a declared value shape: a number, or a name such as `batch` that is fixed per run.
public enum Dimension: Hashable, Sendable, CustomStringConvertible {
    case fixed(Int)
    case symbolic(String)

    public var description: String {
        switch self {
        case .fixed(let n): String(n)
        case .symbolic(let name): name
        }
    }
}

/// A graph input or output as declared: name, element type and shape (nil rank when unknown).
public struct ValueInfo: Hashable, Sendable {
    public var name: String
    public var dtype: DType
    public var dimensions: [Dimension]?

    public init(name: String, dtype: DType, dimensions: [Dimension]?) {
        self.name = name
        self.dtype = dtype
        self.dimensions = dimensions
    }

    /// `(batch, 10)`, or `(?)` when the rank is unknown.
    public var shapeDescription: String {
        guard let dimensions else { return "(?)" }
        return dimensions.count == 1
            ? "(\(dimensions[0]),)" : "(" + dimensions.map(\.description).joined(separator: ", ") + ")"
    }

    /// Whether a concrete shape fits the declared one (same rank, equal fixed dimensions).
    public func accepts(_ shape: Shape) -> Bool {
        guard let dimensions else { return true }
        guard dimensions.count == shape.rank else { return false }
        for (declared, actual) in zip(dimensions, shape.dimensions) {
            if case .fixed(let n) = declared, n != actual { return false }
        }
        return true
    }
}

/// A dataflow graph: the plain intermediate form every model is imported into.
/// Values are named by strings; an empty input name marks an absent optional input.
public struct Graph: Sendable {
    public var name: String
    public var inputs: [ValueInfo]
    public var outputs: [ValueInfo]
    public var nodes: [Node]
    /// Constant tensors (weights), by value name.
    public var initializers: [String: Tensor]
    /// Operator set version per domain ("" is the default ONNX domain).
    public var opsetImports: [String: Int]

    public init(
        name: String, inputs: [ValueInfo], outputs: [ValueInfo], nodes: [Node],
        initializers: [String: Tensor] = [:], opsetImports: [String: Int] = ["": 17]
    ) {
        self.name = name
        self.inputs = inputs
        self.outputs = outputs
        self.nodes = nodes
        self.initializers = initializers
        self.opsetImports = opsetImports
    }

    /// The opset version that governs a node's semantics.
    public func opset(for node: Node) -> Int {
        opsetImports[node.domain] ?? opsetImports[node.domain == "ai.onnx" ? "" : node.domain] ?? 1
    }

    /// Graph inputs the caller must feed (declared inputs that are not also initializers).
    public var runtimeInputs: [ValueInfo] { inputs.filter { initializers[$0.name] == nil } }

    /// Nodes in an order where every value is produced before it is consumed.
    /// - Throws: `GraphError` for a value nobody produces, a value produced twice, or a cycle.
    public func topologicallySorted() throws(GraphError) -> [Node] {
        var producer: [String: Int] = [:]
        for (index, node) in nodes.enumerated() {
            for output in node.outputs where !output.isEmpty {
                if producer[output] != nil || initializers[output] != nil
                    || inputs.contains(where: { $0.name == output })
                {
                    throw .duplicateValue(name: output, node: node.displayName)
                }
                producer[output] = index
            }
        }
        let available = Set(inputs.map(\.name)).union(initializers.keys)
        var indegree = [Int](repeating: 0, count: nodes.count)
        var consumers = [[Int]](repeating: [], count: nodes.count)
        for (index, node) in nodes.enumerated() {
            for input in node.inputs where !input.isEmpty {
                if let p = producer[input] {
                    indegree[index] += 1
                    consumers[p].append(index)
                } else if !available.contains(input) {
                    throw .danglingValue(name: input, node: node.displayName)
                }
            }
        }
        var ready = indegree.indices.filter { indegree[$0] == 0 }.reversed() as [Int]
        var order: [Node] = []
        order.reserveCapacity(nodes.count)
        while let next = ready.popLast() {
            order.append(nodes[next])
            for consumer in consumers[next].reversed() {
                indegree[consumer] -= 1
                if indegree[consumer] == 0 { ready.append(consumer) }
            }
        }
        guard order.count == nodes.count else {
            let stuck = indegree.indices.filter { indegree[$0] > 0 }.map { nodes[$0].displayName }
            throw .cycle(nodes: stuck)
        }
        for output in outputs where producer[output.name] == nil && !available.contains(output.name) {
            throw .danglingValue(name: output.name, node: "graph output")
        }
        return order
    }
}

/// A graph that cannot be executed as written.
public enum GraphError: Error, Equatable, CustomStringConvertible {
    case danglingValue(name: String, node: String)
    case duplicateValue(name: String, node: String)
    case cycle(nodes: [String])

    public var description: String {
        switch self {
        case .danglingValue(let name, let node):
            "\(node) reads value '\(name)', which no node, input or initializer provides"
        case .duplicateValue(let name, let node): "\(node) writes value '\(name)', which is already defined"
        case .cycle(let nodes): "the graph has a cycle through: \(nodes.joined(separator: ", "))"
        }
    }
}
