import InferenceTensor

/// A typed attribute value, as ONNX defines them.
public enum AttributeValue: Sendable {
    case int(Int)
    case float(Float)
    case string(String)
    case tensor(Tensor)
    indirect case graph(Graph)
    case ints([Int])
    case floats([Float])
    case strings([String])
    case tensors([Tensor])
    indirect case graphs([Graph])
}

/// One operator application.
public struct Node: Sendable {
    public var name: String
    public var opType: String
    public var domain: String
    /// Value names; an empty string marks an omitted optional input.
    public var inputs: [String]
    public var outputs: [String]
    public var attributes: [String: AttributeValue]

    public init(
        name: String = "", opType: String, domain: String = "", inputs: [String], outputs: [String],
        attributes: [String: AttributeValue] = [:]
    ) {
        self.name = name
        self.opType = opType
        self.domain = domain
        self.inputs = inputs
        self.outputs = outputs
        self.attributes = attributes
    }

    /// `Gemm node 'fc1'`, or `Gemm node producing 'y'` for unnamed nodes: how errors name a node.
    public var displayName: String {
        if !name.isEmpty { return "\(opType) node '\(name)'" }
        return "\(opType) node producing '\(outputs.first ?? "?")'"
    }

    public func int(_ key: String, default value: Int) throws(AttributeError) -> Int {
        guard let attribute = attributes[key] else { return value }
        guard case .int(let v) = attribute else {
            throw AttributeError(node: displayName, attribute: key, expected: "int")
        }
        return v
    }

    public func float(_ key: String, default value: Float) throws(AttributeError) -> Float {
        guard let attribute = attributes[key] else { return value }
        switch attribute {
        case .float(let v): return v
        case .int(let v): return Float(v)
        default: throw AttributeError(node: displayName, attribute: key, expected: "float")
        }
    }

    public func ints(_ key: String) throws(AttributeError) -> [Int]? {
        guard let attribute = attributes[key] else { return nil }
        guard case .ints(let v) = attribute else {
            throw AttributeError(node: displayName, attribute: key, expected: "ints")
        }
        return v
    }

    public func floats(_ key: String) throws(AttributeError) -> [Float]? {
        guard let attribute = attributes[key] else { return nil }
        guard case .floats(let v) = attribute else {
            throw AttributeError(node: displayName, attribute: key, expected: "floats")
        }
        return v
    }

    public func string(_ key: String, default value: String) throws(AttributeError) -> String {
        guard let attribute = attributes[key] else { return value }
        guard case .string(let v) = attribute else {
            throw AttributeError(node: displayName, attribute: key, expected: "string")
        }
        return v
    }
}

/// An attribute present with the wrong type.
public struct AttributeError: Error, Equatable, CustomStringConvertible {
    public var node: String
    public var attribute: String
    public var expected: String

    public var description: String { "\(node): attribute '\(attribute)' must be of type \(expected)" }
}
