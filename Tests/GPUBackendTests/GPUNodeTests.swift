import CPUBackend
import Foundation
import GPUBackend
import InferenceRuntime
import InferenceTestSupport
import Testing

/// The ONNX backend node tests on every GPU device present (PoCL's OpenCL device in CI; CUDA devices where
/// there are any): every case whose operators the GPU kernel table supports must match the ONNX reference
/// outputs, like on the CPU (ONNXNodeTests). Constant subgraphs fold on the CPU.
@Suite(.enabled(if: !GPUTestDevices.all.isEmpty, "no GPU device (install pocl-opencl-icd for OpenCL)"))
struct GPUNodeTests {
    @Test func nodeTestsPassOnEveryDevice() throws {
        for device in GPUTestDevices.all { try nodeTestsPass(on: device) }
    }

    func nodeTestsPass(on device: any Backend) throws {
        let name = device.device.description
        guard let directory = ONNXNodeTestRunner.dataDirectory else {
            if TestEnvironment.pythonRequired {
                Issue.record("ONNX node tests missing: run scripts/setup-python-env (onnx==1.22.0)")
            }
            return
        }
        let evaluator = CPUBackend(threads: 1)
        let summary = try ONNXNodeTestRunner.runAll(
            directory: directory, label: "\(name) \(device.deviceName)",
            reportPath: TestEnvironment.packageRoot.appendingPathComponent(".build/onnx-node-tests-\(name).txt")
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
            "\(summary.failures.count) node tests failed on \(name); see .build/onnx-node-tests-\(name).txt")
        #expect(summary.passed > 1185)
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
                "\(op) cases skipped on \(name): \(summary.skips["operator \(op) on float32"] ?? [])")
        }
        // The integer convolutions and DynamicQuantizeLinear have device kernels too.
        for key in [
            "operator ConvInteger on uint8", "operator QLinearConv on uint8",
            "operator DynamicQuantizeLinear on float32",
        ] {
            #expect(!summary.skips.keys.contains(key), "\(key): \(summary.skips[key] ?? [])")
        }
    }

    /// With host fallback (the default), nodes the GPU kernel table lacks run on the CPU between device kernels:
    /// every case the CPU passes passes on a GPU session too, fallback nodes and device nodes mixed.
    @Test func nodeTestsPassWithHostFallbackOnEveryDevice() throws {
        for device in GPUTestDevices.all { try nodeTestsPassWithHostFallback(on: device) }
    }

    func nodeTestsPassWithHostFallback(on device: any Backend) throws {
        let name = device.device.description
        guard let directory = ONNXNodeTestRunner.dataDirectory else { return }
        let evaluator = CPUBackend(threads: 1)
        let summary = try ONNXNodeTestRunner.runAll(
            directory: directory, label: "\(name) \(device.deviceName) with host fallback",
            reportPath: TestEnvironment.packageRoot.appendingPathComponent(
                ".build/onnx-node-tests-\(name)-fallback.txt")
        ) {
            try Session(graph: $0, backend: device, evaluator: evaluator)
        }
        print(summary.report)
        #expect(
            summary.failures.isEmpty,
            "\(summary.failures.count) node tests failed on \(name) with host fallback; see .build/onnx-node-tests-\(name)-fallback.txt"
        )
        #expect(summary.passed > 1310)
    }
}
