import InferenceTensor

/// Errors from planning and running a model on a backend.
public enum RuntimeError: Error, Equatable, CustomStringConvertible {
    /// No kernel for an operator; names the node, opset and what the backend does support.
    case unsupportedOperator(
        node: String, opType: String, domain: String, opset: Int, dtype: DType?, device: String, supported: [String])
    case outOfMemory(device: String, bytes: Int)
    case missingInput(name: String, expected: [String])
    case unexpectedInput(name: String, expected: [String])
    case inputType(name: String, expected: String, actual: String)
    case inputShape(name: String, expected: String, actual: String)
    case invalidNode(node: String, detail: String)
    /// A supported operator used with an attribute value this runtime does not implement.
    case unsupportedAttribute(node: String, detail: String)
    case device(String)

    /// Whether the error says the backend lacks an operator, element type or attribute (not bad data).
    public var isUnsupported: Bool {
        switch self {
        case .unsupportedOperator, .unsupportedAttribute: true
        default: false
        }
    }

    public var description: String {
        switch self {
        case .unsupportedOperator(let node, let opType, let domain, let opset, let dtype, let device, let supported):
            domain.isEmpty || domain == "ai.onnx"
                ? "\(node): operator \(opType) (opset \(opset)\(dtype.map { ", \($0)" } ?? "")) is not supported on \(device). "
                    + "Supported operators: \(supported.joined(separator: ", "))"
                : "\(node): operator \(opType) of domain '\(domain)' (opset \(opset)) is not supported on \(device): "
                    + "only operators of the default ONNX domain (and their listed opsets) run; "
                    + "export the model without custom-domain operators"
        case .outOfMemory(let device, let bytes): "\(device): out of memory allocating \(bytes) bytes"
        case .missingInput(let name, let expected):
            "missing model input '\(name)' (the model's inputs: \(expected.joined(separator: ", ")))"
        case .unexpectedInput(let name, let expected):
            "the model has no input named '\(name)' (its inputs: \(expected.joined(separator: ", ")))"
        case .inputType(let name, let expected, let actual): "input '\(name)': expected \(expected), got \(actual)"
        case .inputShape(let name, let expected, let actual):
            "input '\(name)': expected shape \(expected), got \(actual)"
        case .invalidNode(let node, let detail): "\(node): \(detail)"
        case .unsupportedAttribute(let node, let detail): "\(node): \(detail) is not supported"
        case .device(let message): message
        }
    }
}
