import ArgumentParser
import InferenceBench
import InferenceGraph
import InferenceRuntime
import InferenceTensor

/// `--precision`: which precisions a command runs a float32 model in (converted at load, `PrecisionConversion`),
/// and the parity of each against the float32 model on the same inputs.
enum PrecisionChoice {
    static let help =
        "fp32 (the model as written), fp16 (float16 weights and activations) or int8 (dynamic "
        + "quantization of MatMul/Gemm); the report compares its outputs with the fp32 model's."

    /// - Throws: `ValidationError` naming an unknown or repeated precision.
    static func parse(_ text: String, option: String = "--precision", single: Bool = false) throws -> [Precision] {
        let items = text.split(separator: ",", omittingEmptySubsequences: false).map {
            String($0.filter { $0 != " " }).lowercased()
        }
        var result: [Precision] = []
        for item in items {
            guard let precision = Precision(rawValue: item) else {
                throw ValidationError("\(option): unknown precision '\(item)'; use fp32, fp16 or int8")
            }
            guard !result.contains(precision) else { throw ValidationError("\(option): '\(item)' is listed twice") }
            result.append(precision)
        }
        if single && result.count != 1 { throw ValidationError("\(option) takes one precision") }
        return result
    }

    /// The model in `precision`, with a note on stderr saying what changed.
    /// - Throws: `InputError` naming the model when it cannot be converted.
    static func convert(
        _ graph: Graph, to precision: Precision, model: String
    ) throws -> (Graph, PrecisionConversionReport?) {
        guard precision != .fp32 else { return (graph, nil) }
        guard graph.runtimeInputs.allSatisfy({ $0.dtype != .float16 }) else {
            throw InputError(
                description: "\(model): --precision \(precision) converts float32 models; this one is float16 already")
        }
        do {
            let (converted, report) = try PrecisionConversion.convert(graph, to: precision)
            printError("note: \(model) converted to \(report.summary)")
            for note in report.notes { printError("note: \(note)") }
            return (converted, report)
        } catch let error as PrecisionConversion.Unsupported {
            throw InputError(description: "\(model): \(error.description)")
        }
    }
}
