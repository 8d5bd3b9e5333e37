import InferenceGraph
import InferenceRuntime
import InferenceTensor

/// MinMax calibration for static int8: runs the float32 model on calibration inputs with every value
/// `StaticQuantization` needs exposed as an extra output, and keeps each one's smallest and largest element.
public enum Calibration {
    /// - Throws: what planning or running the model throws, naming the input set that failed.
    public static func ranges(
        _ graph: Graph, inputs: [[NamedTensor]], backend: any Backend
    ) throws -> [String: (low: Float, high: Float)] {
        let targets = StaticQuantization.calibrationTargets(graph)
        var probe = graph
        let existing = Set(graph.outputs.map(\.name))
        for name in targets where !existing.contains(name) {
            probe.outputs.append(ValueInfo(name: name, dtype: .float32, dimensions: nil))
        }
        let session = try Session(graph: probe, backend: backend)
        var ranges: [String: (low: Float, high: Float)] = [:]
        for feeds in inputs {
            for output in try session.run(feeds).outputs where targets.contains(output.name) {
                guard output.tensor.dtype == .float32 else { continue }
                try output.tensor.withUnsafeBufferPointer(as: Float.self) { values in
                    var low = ranges[output.name]?.low ?? .infinity, high = ranges[output.name]?.high ?? -.infinity
                    for value in values where value.isFinite {
                        low = min(low, value)
                        high = max(high, value)
                    }
                    ranges[output.name] = (low, high)
                }
            }
        }
        return ranges
    }
}
