import BuiltinModels
import InferenceGraph

/// Where a model comes from: `builtin:NAME` or a file path.
enum ModelSource {
    /// Loads the graph named by `--model`.
    /// - Throws: an error naming the model and what is available.
    static func load(_ argument: String) throws -> Graph {
        if argument.hasPrefix("builtin:") {
            return try BuiltinModels.graph(named: String(argument.dropFirst("builtin:".count)))
        }
        if argument.hasSuffix(".onnx") {
            throw ModelSourceError(
                description: """
                    \(argument): loading .onnx files is not available in this build yet. \
                    Use a builtin model: \(BuiltinModels.names.map { "builtin:\($0)" }.joined(separator: ", "))
                    """)
        }
        throw ModelSourceError(
            description: """
                \(argument): not a model name. Use builtin:NAME (\(BuiltinModels.names.joined(separator: ", "))) or a path to an .onnx file
                """)
    }
}

struct ModelSourceError: Error, CustomStringConvertible {
    var description: String
}
