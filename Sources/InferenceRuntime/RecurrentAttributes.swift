import InferenceGraph

/// The attributes of an ONNX LSTM, GRU or RNN node, resolved once for every backend: directions, clip, layout, and
/// each gate activation with its alpha and beta (defaults filled in the order ONNX consumes them).
public struct RecurrentAttributes: Sendable {
    /// An activation function of a recurrent cell.
    public enum Function: Int32, Sendable {
        case sigmoid, tanh, relu, softsign, softplus, leakyRelu, thresholdedRelu, elu, hardSigmoid, affine, scaledTanh
    }

    public struct Activation: Sendable {
        public var function: Function
        public var alpha: Float
        public var beta: Float
    }

    public let isLSTM: Bool
    /// A plain RNN cell: one gate, one activation per direction.
    public let isRNN: Bool
    public let hidden: Int
    public let directions: Int
    public let reverseOnly: Bool
    public let clip: Float?
    public let linearBeforeReset: Bool
    /// 0: [seq, batch, ...]; 1: [batch, seq, ...].
    public let layout: Int
    /// Per direction f, g (and h for LSTM); f alone for RNN.
    public let activations: [Activation]

    /// - Throws: `RuntimeError.unsupportedAttribute` for input_forget=1 or an unknown activation,
    ///   `RuntimeError.invalidNode` for a missing hidden_size or too few activations.
    public init(_ node: Node) throws {
        isLSTM = node.opType == "LSTM"
        isRNN = node.opType == "RNN"
        hidden = try node.int("hidden_size", default: 0)
        guard hidden > 0 else {
            throw RuntimeError.invalidNode(node: node.displayName, detail: "hidden_size must be > 0")
        }
        let direction = try node.string("direction", default: "forward")
        guard ["forward", "reverse", "bidirectional"].contains(direction) else {
            throw RuntimeError.unsupportedAttribute(node: node.displayName, detail: "direction '\(direction)'")
        }
        directions = direction == "bidirectional" ? 2 : 1
        reverseOnly = direction == "reverse"
        clip = node.attributes["clip"] == nil ? nil : try node.float("clip", default: 0)
        linearBeforeReset = try node.int("linear_before_reset", default: 0) != 0
        layout = try node.int("layout", default: 0)
        if try node.int("input_forget", default: 0) != 0 {
            throw RuntimeError.unsupportedAttribute(node: node.displayName, detail: "input_forget=1")
        }
        let perDirection = isLSTM ? 3 : (isRNN ? 1 : 2)
        let names: [String]
        if case .strings(let given)? = node.attributes["activations"] {
            names = given
        } else {
            let one = isLSTM ? ["Sigmoid", "Tanh", "Tanh"] : (isRNN ? ["Tanh"] : ["Sigmoid", "Tanh"])
            names = Array([[String]](repeating: one, count: directions).joined())
        }
        guard names.count >= perDirection * directions else {
            throw RuntimeError.invalidNode(
                node: node.displayName,
                detail: "\(names.count) activations given, \(perDirection * directions) needed")
        }
        var alphas = (try? node.floats("activation_alpha")) ?? []
        var betas = (try? node.floats("activation_beta")) ?? []
        activations = try names.map { try Self.activation($0, alphas: &alphas, betas: &betas, node: node.displayName) }
    }

    /// The activation for `name`, consuming alpha/beta values in order for those that take them.
    static func activation(_ name: String, alphas: inout [Float], betas: inout [Float], node: String) throws
        -> Activation
    {
        func take(_ values: inout [Float], _ fallback: Float) -> Float {
            values.isEmpty ? fallback : values.removeFirst()
        }
        switch name.lowercased() {
        case "sigmoid": return Activation(function: .sigmoid, alpha: 0, beta: 0)
        case "tanh": return Activation(function: .tanh, alpha: 0, beta: 0)
        case "relu": return Activation(function: .relu, alpha: 0, beta: 0)
        case "softsign": return Activation(function: .softsign, alpha: 0, beta: 0)
        case "softplus": return Activation(function: .softplus, alpha: 0, beta: 0)
        case "leakyrelu": return Activation(function: .leakyRelu, alpha: take(&alphas, 0.01), beta: 0)
        case "thresholdedrelu": return Activation(function: .thresholdedRelu, alpha: take(&alphas, 1), beta: 0)
        case "elu": return Activation(function: .elu, alpha: take(&alphas, 1), beta: 0)
        case "hardsigmoid":
            return Activation(function: .hardSigmoid, alpha: take(&alphas, 0.2), beta: take(&betas, 0.5))
        case "affine": return Activation(function: .affine, alpha: take(&alphas, 1), beta: take(&betas, 0))
        case "scaledtanh": return Activation(function: .scaledTanh, alpha: take(&alphas, 1), beta: take(&betas, 1))
        default: throw RuntimeError.unsupportedAttribute(node: node, detail: "activation '\(name)'")
        }
    }

    /// Time steps, batch and input size of X ([seq, batch, input] in layout 0, [batch, seq, input] in layout 1).
    /// - Throws: `RuntimeError.invalidNode` naming `node` when X is not 3-D.
    public func sizes(of x: [Int], node: String) throws -> (sequence: Int, batch: Int, input: Int) {
        guard x.count == 3 else { throw RuntimeError.invalidNode(node: node, detail: "X must be 3-D, got \(x)") }
        return layout == 0 ? (x[0], x[1], x[2]) : (x[1], x[0], x[2])
    }
}
