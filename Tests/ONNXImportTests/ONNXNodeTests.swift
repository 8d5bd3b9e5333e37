import CPUBackend
import Foundation
import InferenceRuntime
import InferenceTestSupport
import Testing

/// The ONNX backend node tests on the CPU backend (runner: InferenceTestSupport/ONNXNodeTestRunner).
struct ONNXNodeTests {
    @Test func nodeTestsPass() throws {
        guard let directory = ONNXNodeTestRunner.dataDirectory else {
            if TestEnvironment.pythonRequired {
                Issue.record("ONNX node tests missing: run scripts/setup-python-env (onnx==1.22.0)")
            }
            return
        }
        let backend = CPUBackend()
        let summary = try ONNXNodeTestRunner.runAll(
            directory: directory, label: "CPU",
            reportPath: TestEnvironment.packageRoot.appendingPathComponent(".build/onnx-node-tests.txt")
        ) { try Session(graph: $0, backend: backend) }
        print(summary.report)
        #expect(summary.failures.isEmpty, "\(summary.failures.count) node tests failed; see .build/onnx-node-tests.txt")
        #expect(summary.passed > 1250)
    }
}
