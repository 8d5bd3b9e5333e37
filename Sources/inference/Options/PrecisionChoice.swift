import ArgumentParser
import CPUBackend
import InferenceBench
import InferenceGraph
import InferenceRuntime
import InferenceTensor

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// `--precision`: which precisions a command runs a float32 model in (converted at load, `PrecisionConversion`),
/// and the parity of each against the float32 model on the same inputs.
enum PrecisionChoice {
    static let help =
        "fp32 (the model as written), fp16 or bf16 (float16 / bfloat16 weights and activations) or int8 (dynamic "
        + "quantization of MatMul/Gemm, or static QDQ of Conv/MatMul/Gemm with --calibration-data); the report "
        + "compares its outputs with the fp32 model's."
    static let calibrationHelp =
        "With --precision int8: a folder of .npy/.npz inputs (one sample or batch per file) "
        + "whose activation ranges (min/max) calibrate static quantization."

    /// The calibration inputs in `folder`: every .npy and .npz file, in name order, matched to the model's inputs.
    /// - Throws: `InputError` naming the folder when it holds none or a file does not fit the model.
    static func calibrationInputs(_ folder: String, for graph: Graph) throws -> [[NamedTensor]] {
        guard let real = UserFiles.realPath(folder),
            let names = try? FileManager.default.contentsOfDirectory(atPath: real)
        else { throw InputError(description: "--calibration-data: '\(folder)' is not a readable folder") }
        let files = names.filter { $0.hasSuffix(".npy") || $0.hasSuffix(".npz") }.sorted()
        guard !files.isEmpty else {
            throw InputError(description: "--calibration-data: '\(folder)' holds no .npy or .npz files")
        }
        guard files.count <= 10_000 else {
            throw InputError(
                description: "--calibration-data: '\(folder)' holds \(files.count) files; at most 10000 are read")
        }
        return try files.map { try LoadedInputs.load(arguments: [real + "/" + $0], for: graph).tensors }
    }

    /// - Throws: `ValidationError` naming an unknown or repeated precision.
    static func parse(_ text: String, option: String = "--precision", single: Bool = false) throws -> [Precision] {
        let items = text.split(separator: ",", omittingEmptySubsequences: false).map {
            String($0.filter { $0 != " " }).lowercased()
        }
        var result: [Precision] = []
        for item in items {
            guard let precision = Precision(rawValue: item) else {
                throw ValidationError("\(option): unknown precision '\(item)'; use fp32, fp16, bf16 or int8")
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
        _ graph: Graph, to precision: Precision, model: String, calibration: String? = nil, threads: Int? = nil
    ) throws -> (Graph, PrecisionConversionReport?) {
        guard precision != .fp32 else { return (graph, nil) }
        var ranges: [String: (low: Float, high: Float)]?
        if let calibration {
            guard precision == .int8 else {
                throw ValidationError("--calibration-data calibrates --precision int8, not \(precision)")
            }
            let samples = try calibrationInputs(calibration, for: graph)
            ranges = try Calibration.ranges(graph, inputs: samples, backend: CPUBackend(threads: threads))
            printError(
                "note: calibrated \(ranges?.count ?? 0) activation ranges on \(samples.count) inputs from \(calibration)"
            )
        }
        guard graph.runtimeInputs.allSatisfy({ $0.dtype != .float16 }) else {
            throw InputError(
                description: "\(model): --precision \(precision) converts float32 models; this one is float16 already")
        }
        do {
            let (converted, report) = try PrecisionConversion.convert(graph, to: precision, ranges: ranges)
            printError("note: \(model) converted to \(report.summary)")
            for note in report.notes { printError("note: \(note)") }
            return (converted, report)
        } catch let error as PrecisionConversion.Unsupported {
            throw InputError(description: "\(model): \(error.description)")
        }
    }
}
