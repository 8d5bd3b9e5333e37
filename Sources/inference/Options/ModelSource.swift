import BuiltinModels
import InferenceGraph
import ONNXImport

/// Where a model comes from: `builtin:NAME` or an .onnx file.
enum ModelSource {
    /// Loads the graph named by `--model`.
    /// - Throws: an error naming the model and what is available.
    static func load(_ argument: String) throws -> Graph {
        if argument.hasPrefix("builtin:") {
            return try BuiltinModels.graph(named: String(argument.dropFirst("builtin:".count)))
        }
        return try ONNXModelLoader.load(path: argument)
    }
}
