import CPUBackend
import Foundation
import GPUBackend
import InferenceRuntime
import InferenceTestSupport
import Testing

private let nodeTestDevice: OpenCLBackend? = try? OpenCLBackend(index: 0)

/// The ONNX backend node tests on the OpenCL backend (PoCL in CI): every case whose operators the GPU kernel
/// table supports must match the ONNX reference outputs, like on the CPU. Constant subgraphs fold on the CPU.
@Suite(.enabled(if: nodeTestDevice != nil, "no OpenCL device (install pocl-opencl-icd)"))
struct OpenCLNodeTests {
    @Test func nodeTestsPassOnOpenCL() throws {
        guard let device = nodeTestDevice else { return }
        guard let directory = ONNXNodeTestRunner.dataDirectory else {
            if TestEnvironment.pythonRequired {
                Issue.record("ONNX node tests missing: run scripts/setup-python-env (onnx==1.22.0)")
            }
            return
        }
        let evaluator = CPUBackend(threads: 1)
        let summary = try ONNXNodeTestRunner.runAll(
            directory: directory, label: "OpenCL \(device.deviceName)",
            reportPath: TestEnvironment.packageRoot.appendingPathComponent(".build/onnx-node-tests-opencl.txt")
        ) {
            // Device kernels only: nodes the GPU kernel table lacks are skips here, not host fallbacks.
            try Session(graph: $0, backend: device, evaluator: evaluator, hostFallback: false)
        } reference: {
            // Every case that passes must also match the CPU backend within rtol 1e-4.
            try Session(graph: $0, backend: evaluator)
        }
        print(summary.report)
        #expect(
            summary.failures.isEmpty,
            "\(summary.failures.count) node tests failed on OpenCL; see .build/onnx-node-tests-opencl.txt")
        #expect(summary.passed > 1170)
        // Operators with GPU kernels really ran (a missing kernel would turn their cases into skips).
        for op in [
            "Conv", "Gemm", "MatMul", "Softmax", "Transpose", "Expand", "Slice", "Concat", "Split", "Gather", "Resize",
            "ConvTranspose", "Pad", "Tile", "ArgMax", "ArgMin", "Clip", "Sum", "ReduceProd", "LSTM", "GRU", "MaxPool",
            "AveragePool", "LogSoftmax", "GatherElements", "GatherND", "ScatterElements", "ScatterND", "Trilu",
            "CumSum", "IsNaN", "IsInf", "Attention", "RMSNormalization", "RotaryEmbedding", "Hardmax",
            "LpNormalization",
        ] {
            #expect(
                !summary.skips.keys.contains("operator \(op) on float32"),
                "\(op) cases skipped on OpenCL: \(summary.skips["operator \(op) on float32"] ?? [])")
        }
    }

    /// With host fallback (the default), nodes the GPU kernel table lacks run on the CPU between device kernels:
    /// every case the CPU passes passes on an OpenCL session too, fallback nodes and device nodes mixed.
    @Test func nodeTestsPassOnOpenCLWithHostFallback() throws {
        guard let device = nodeTestDevice else { return }
        guard let directory = ONNXNodeTestRunner.dataDirectory else { return }
        let evaluator = CPUBackend(threads: 1)
        let summary = try ONNXNodeTestRunner.runAll(
            directory: directory, label: "OpenCL \(device.deviceName) with host fallback",
            reportPath: TestEnvironment.packageRoot.appendingPathComponent(".build/onnx-node-tests-opencl-fallback.txt")
        ) {
            try Session(graph: $0, backend: device, evaluator: evaluator)
        }
        print(summary.report)
        #expect(
            summary.failures.isEmpty,
            "\(summary.failures.count) node tests failed on OpenCL with host fallback; see .build/onnx-node-tests-opencl-fallback.txt"
        )
        #expect(summary.passed > 1310)
    }
}
