import CMallocCounter
import CPUBackend
import Foundation
import InferenceBench
import InferenceRuntime
import InferenceTensor
import ONNXImport

// Times one model at one batch size in process, the same way ort_bench.c times onnxruntime:
//   runtime-bench MODEL.onnx BATCH MIN_SECONDS [THREADS]
// Input: uniform random floats shaped like the model's single input with the batch dimension set.
// Prints one JSON object: p50/p90/p99/mean/min in milliseconds, runs, samples per second.

let arguments = CommandLine.arguments
guard arguments.count >= 4, let batch = Int(arguments[2]), let minSeconds = Double(arguments[3]) else {
    FileHandle.standardError.write(Data("usage: runtime-bench MODEL.onnx BATCH MIN_SECONDS [THREADS]\n".utf8))
    exit(2)
}
do {
    let graph = try ONNXModelLoader.load(path: arguments[1])
    guard let input = graph.runtimeInputs.first, let dims = input.dimensions else {
        throw ONNXImportError(source: arguments[1], problem: "the benchmark needs one input with a known rank")
    }
    let shape = dims.enumerated().map { index, dim -> Int in
        if case .fixed(let n) = dim { return n }
        return index == 0 ? batch : 1
    }
    let count = shape.reduce(1, *)
    // SplitMix64: fast enough for 16M values (the system generator makes a syscall per draw).
    var state: UInt64 = 0x9E37_79B9_7F4A_7C15
    let values = (0..<count).map { _ -> Float in
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return Float((z ^ (z >> 31)) >> 40) / Float(1 << 24)
    }
    let tensor = try Tensor(shape: Shape(shape), scalars: values)
    let threads = arguments.count > 4 ? Int(arguments[4]) : nil
    let session = try Session(graph: graph, backend: CPUBackend(threads: threads))
    let feeds = [NamedTensor(name: input.name, tensor: tensor)]
    let prepared = try session.prepare(feeds)
    let inputs = [tensor]
    // Warm-up, then count heap allocations over up to 100 prepared runs (this binary wraps malloc), fewer
    // when runs are long (a 4096³ GEMM takes a second).
    let warmStart = MonotonicClock.nanoseconds()
    for _ in 0..<3 { _ = try prepared.run(inputs) }
    let perRun = Double(MonotonicClock.nanoseconds() - warmStart) / 3e9
    let counted = max(3, min(100, Int(minSeconds / max(perRun, 1e-9))))
    malloc_counter_start()
    for _ in 0..<counted { _ = try prepared.run(inputs) }
    let allocations = Double(malloc_counter_stop()) / Double(counted)
    // Timed from outside each run, as ort_bench.c times onnxruntime's Run: at least 10 runs and MIN_SECONDS.
    let samples = try Measurement.repeatRuns(
        warmup: .count(0), repeats: .seconds(minSeconds), minimumRuns: 10, maximumRuns: 200_000
    ) { try Measurement.wallTime { _ = try prepared.run(inputs) } }
    let total = samples.total
    func percentile(_ q: Double) -> Double { total.percentile(q) / 1e6 }
    let mean = total.mean / 1e6
    let report: [String: Any] = [
        "runtime": "inference", "batch": batch, "runs": total.count, "p50_ms": percentile(50),
        "p90_ms": percentile(90),
        "p99_ms": percentile(99), "min_ms": total.minimum / 1e6, "mean_ms": mean,
        "samples_per_s": Double(batch) / (percentile(50) / 1e3), "allocations_per_run": allocations,
    ]
    let data = try JSONSerialization.data(withJSONObject: report, options: [.sortedKeys])
    print(String(decoding: data, as: UTF8.self))
} catch {
    FileHandle.standardError.write(Data("runtime-bench: \(error)\n".utf8))
    exit(1)
}
