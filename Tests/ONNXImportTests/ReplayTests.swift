import CPUBackend
import Foundation
import InferenceGraph
import InferenceRuntime
import InferenceTensor
import ONNXImport
import Testing

/// How a session uses a backend that records plans for replay (what the CUDA backend does with CUDA graphs):
/// the first run launches kernel by kernel, later runs replay the recording; plans with an If never record; a
/// recording that fails leaves the kernels running one by one. The backend here runs on the CPU and records by
/// keeping the kernel list, so every answer can be checked against the plain CPU backend.
struct ReplayTests {
    final class RecordingBackend: Backend, @unchecked Sendable {
        let cpu = CPUBackend(threads: 1)
        var failRecording = false
        var recordings = 0
        var replays = 0

        var device: DeviceID { cpu.device }
        var deviceName: String { cpu.deviceName }
        var kernels: KernelRegistry { cpu.kernels }
        var fusion: FusionRules { cpu.fusion }
        func allocate(bytes: Int) throws -> any DeviceBuffer { try cpu.allocate(bytes: bytes) }
        func copy(from host: UnsafeRawBufferPointer, to destination: BufferSlice) throws {
            try cpu.copy(from: host, to: destination)
        }
        func copy(from source: BufferSlice, to host: UnsafeMutableRawBufferPointer) throws {
            try cpu.copy(from: source, to: host)
        }
        func synchronize() throws { try cpu.synchronize() }

        func replay(_ kernels: [any Kernel]) throws -> (any Kernel)? {
            if failRecording { throw RuntimeError.device("recording refused") }
            recordings += 1
            return Recorded(kernels: kernels, backend: self)
        }
    }

    final class Recorded: Kernel {
        let kernels: [any Kernel]
        unowned let backend: RecordingBackend
        init(kernels: [any Kernel], backend: RecordingBackend) {
            self.kernels = kernels
            self.backend = backend
        }
        func run() throws {
            backend.replays += 1
            for kernel in kernels { try kernel.run() }
        }
    }

    static let directory = Bundle.module.bundleURL.appendingPathComponent("Fixtures/models")

    func fixture(_ name: String) throws -> (Graph, [NamedTensor]) {
        (
            try ONNXModelLoader.load(path: Self.directory.appendingPathComponent("\(name).onnx").path),
            try NumPyFile.readNPZ(path: Self.directory.appendingPathComponent("\(name).inputs.npz").path)
        )
    }

    @Test func runsAfterTheFirstReplayTheRecording() throws {
        let (graph, inputs) = try fixture("cnn")
        let backend = RecordingBackend()
        let session = try Session(graph: graph, backend: backend, evaluator: CPUBackend())
        let expected = try Session(graph: graph, backend: CPUBackend(threads: 1)).run(inputs).outputs
        var states: [ReplayState] = []
        for _ in 0..<4 {
            let result = try session.run(inputs)
            states.append(result.timings.replay)
            #expect(result.outputs[0].tensor.bitwiseEqual(expected[0].tensor))
        }
        #expect(states == [.pending, .recorded, .recorded, .recorded])
        #expect(backend.recordings == 1 && backend.replays == 3)
    }

    @Test func aPlanWithAnIfIsNotRecorded() throws {
        let (graph, inputs) = try fixture("control_runtime")
        let backend = RecordingBackend()
        let session = try Session(graph: graph, backend: backend, evaluator: CPUBackend())
        _ = try session.run(inputs)
        let second = try session.run(inputs)
        #expect(second.timings.replay == .unavailable("a node reads results back to the host while it runs"))
        // Only the branch's own session (it ran twice, with no If inside) recorded its plan.
        #expect(backend.recordings == 1)
    }

    @Test func aFailedRecordingFallsBackToKernelByKernel() throws {
        let (graph, inputs) = try fixture("mlp")
        let backend = RecordingBackend()
        backend.failRecording = true
        let session = try Session(graph: graph, backend: backend, evaluator: CPUBackend())
        let expected = try Session(graph: graph, backend: CPUBackend(threads: 1)).run(inputs).outputs
        _ = try session.run(inputs)
        let second = try session.run(inputs)
        guard case .unavailable(let reason) = second.timings.replay else {
            Issue.record("expected a fallback, got \(second.timings.replay)")
            return
        }
        #expect(reason.contains("recording refused"))
        #expect(second.outputs[0].tensor.bitwiseEqual(expected[0].tensor))
        #expect(try session.run(inputs).outputs[0].tensor.bitwiseEqual(expected[0].tensor))
        #expect(backend.replays == 0)
    }

    @Test func theCPUOffersNoReplay() throws {
        let (graph, inputs) = try fixture("mlp")
        let session = try Session(graph: graph, backend: CPUBackend(threads: 1))
        _ = try session.run(inputs)
        #expect(try session.run(inputs).timings.replay == .notOffered)
    }
}
