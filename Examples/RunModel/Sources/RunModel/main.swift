// Loads an ONNX model, runs it on the CPU with the inputs of an .npz archive, and prints each output's shape and
// largest difference from the expected outputs of a second archive (when given).
//
//     swift run --package-path Examples/RunModel RunModel model.onnx inputs.npz [expected.npz]
import CPUBackend
import InferenceRuntime
import InferenceTensor
import ONNXImport

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Writes a line to standard error.
func printError(_ line: String) {
    var bytes = Array(line.utf8)
    bytes.append(10)
    _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}

/// The largest absolute difference between two float32 tensors of the same size (infinity when sizes differ).
func largestDifference(_ got: Tensor, _ expected: Tensor) throws -> Double {
    let a = try got.scalars(as: Float.self)
    let b = try expected.scalars(as: Float.self)
    guard a.count == b.count else { return .infinity }
    var largest = 0.0
    for (x, y) in zip(a, b) { largest = max(largest, Double(abs(x - y))) }
    return largest
}

let arguments = CommandLine.arguments.dropFirst()
guard arguments.count == 2 || arguments.count == 3 else {
    printError("usage: RunModel model.onnx inputs.npz [expected.npz]")
    exit(2)
}
let paths = Array(arguments)
do {
    let graph = try ONNXModelLoader.load(path: paths[0])
    let inputs = try NumPyFile.readArrays(path: paths[1])
    let session = try Session(graph: graph, backend: CPUBackend())
    let result = try session.run(inputs)
    let expected = paths.count == 3 ? try NumPyFile.readArrays(path: paths[2]) : []
    var worst = 0.0
    for output in result.outputs {
        var line = "\(output.name): shape \(output.tensor.shape.dimensions)"
        if let reference = expected.first(where: { $0.name == output.name }) {
            let difference = try largestDifference(output.tensor, reference.tensor)
            worst = max(worst, difference)
            line += ", largest difference from expected \(difference)"
        }
        print(line)
    }
    if worst > 1e-3 {
        printError("outputs differ from the expected ones by \(worst)")
        exit(1)
    }
} catch {
    printError("error: \(error)")
    exit(1)
}
