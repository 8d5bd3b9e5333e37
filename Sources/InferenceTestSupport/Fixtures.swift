import Foundation
import InferenceGraph
import InferenceRuntime
import InferenceTensor
import ONNXImport

/// A fixture model from a folder of them: `NAME.onnx`, its inputs `NAME.inputs.npz` and the reference outputs
/// `NAME.<expected>.npz` (onnxruntime's).
public struct FixtureModel {
    public var graph: Graph
    public var inputs: [NamedTensor]
    public var expected: [NamedTensor]

    /// - Throws: what loading the model or the archives throws.
    public init(_ directory: URL, _ name: String, expected: String = "outputs") throws {
        graph = try ONNXModelLoader.load(path: directory.appendingPathComponent("\(name).onnx").path)
        inputs = try NumPyFile.readNPZ(path: directory.appendingPathComponent("\(name).inputs.npz").path)
        self.expected = try NumPyFile.readNPZ(path: directory.appendingPathComponent("\(name).\(expected).npz").path)
    }

    /// The inputs' types, for planning the model by hand.
    public var inputTypes: [String: TensorType] {
        Dictionary(
            uniqueKeysWithValues: inputs.map { ($0.name, TensorType(dtype: $0.tensor.dtype, shape: $0.tensor.shape)) })
    }

    /// How `outputs` differ from the reference: shapes, float32 values beyond rtol/atol (NumPy's allclose rule),
    /// other element types bit for bit. Empty when they match.
    public func problems(
        _ outputs: [NamedTensor], label: String, relative: Double = 1e-4, absolute: Double = 1e-5
    ) -> [String] {
        var problems: [String] = []
        for (got, want) in zip(outputs, expected) {
            guard got.tensor.shape == want.tensor.shape else {
                problems.append("\(label) \(got.name): shape \(got.tensor.shape), expected \(want.tensor.shape)")
                continue
            }
            guard want.tensor.dtype == .float32 else {
                if !got.tensor.bitwiseEqual(want.tensor) { problems.append("\(label) \(got.name) differs") }
                continue
            }
            guard let a = try? got.tensor.scalars(as: Float.self), let b = try? want.tensor.scalars(as: Float.self)
            else {
                problems.append("\(label) \(got.name): not float32")
                continue
            }
            let report = ToleranceReport.compare(a, b, relative: relative, absolute: absolute)
            if !report.passed { problems.append("\(label) \(got.name): \(report)") }
        }
        return problems
    }
}
