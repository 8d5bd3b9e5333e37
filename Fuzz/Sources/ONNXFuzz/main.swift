import CPUBackend
import Foundation
import InferenceGraph
import InferenceRuntime
import InferenceTensor
import ONNXImport

// libFuzzer target for the ONNX loader and planner: every input must load or throw `ONNXImportError`, and
// every model that loads must plan and run on small inputs or throw a typed error; never crash or hang.

let backend = CPUBackend()

func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data, size > 0 else { return 0 }
    let bytes = Data(bytes: data, count: size)
    guard let (graph, _) = try? ONNXModelLoader.load(data: bytes, source: "fuzz.onnx", baseDirectory: nil) else {
        return 0
    }
    guard let session = try? Session(graph: graph, backend: backend) else { return 0 }
    // Feed small tensors shaped like the declared inputs (symbolic dimensions as 2), zeros of the declared type.
    var feeds: [NamedTensor] = []
    for input in graph.runtimeInputs {
        let dims = (input.dimensions ?? []).map { dim -> Int in
            if case .fixed(let n) = dim { return min(max(n, 0), 64) }
            return 2
        }
        guard dims.reduce(1, *) <= 4096, let tensor = try? Tensor(zeros: input.dtype, shape: Shape(dims)) else {
            return 0
        }
        feeds.append(NamedTensor(name: input.name, tensor: tensor))
    }
    // Valid but huge models (a Resize to millions of elements) are slow, not wrong: plan first, run small ones.
    var types: [String: TensorType] = [:]
    for feed in feeds { types[feed.name] = TensorType(dtype: feed.tensor.dtype, shape: feed.tensor.shape) }
    guard let plan = try? ExecutionPlan(graph: graph.capturingOuterValues(), inputTypes: types, evaluator: backend),
        plan.arenaBytes < 1 << 24, FLOPCounter.count(plan) < 50_000_000
    else { return 0 }
    _ = try? session.run(feeds)
    return 0
}

@_silgen_name("LLVMFuzzerRunDriver")
func runFuzzerDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

var argc = CommandLine.argc
var argv = CommandLine.unsafeArgv
exit(runFuzzerDriver(&argc, &argv) { data, size in fuzzOne(data, size) })
