import InferenceGraph
import InferenceTensor

/// A node the device has no kernel for (an operator, element type or attribute its kernel table lacks), run by
/// the host backend (the CPU evaluator) instead: inputs copied from the device, the host kernel run, outputs
/// copied back. Bound once: host buffers and the host kernel are made when the plan is built. Profiles name it
/// `host fallback: ...`, so a user sees which nodes left the device.
final class HostFallbackKernel: Kernel, DescribedKernel {
    private let device: any Backend
    private let host: any Backend
    private let kernel: any Kernel
    /// Per runtime input: the device slice, a staging tensor and the host slice; constants are bound once.
    private var inputs: [(device: BufferSlice, staging: Tensor, host: BufferSlice)] = []
    private var outputs: [(host: BufferSlice, staging: Tensor, device: BufferSlice)] = []
    private let opType: String
    /// Keeps the host buffers alive as long as the host kernel that points into them.
    private let buffers: [any DeviceBuffer]

    /// - Returns: nil when the host backend has no kernel for the node either.
    init?(node: BoundNode, device: any Backend, host: any Backend) throws {
        var buffers: [any DeviceBuffer] = []
        func hostValue(_ value: BoundValue) throws -> BoundValue {
            let buffer = try host.allocate(bytes: max(value.type.byteCount, 1))
            buffers.append(buffer)
            let slice = BufferSlice(buffer: buffer, offset: 0, byteCount: value.type.byteCount)
            if let constant = value.constant { try constant.withUnsafeBytes { try host.copy(from: $0, to: slice) } }
            return BoundValue(type: value.type, slice: slice, constant: value.constant)
        }
        var hostInputs: [BoundValue?] = []
        for value in node.inputs {
            guard let value else {
                hostInputs.append(nil)
                continue
            }
            let bound = try hostValue(value)
            hostInputs.append(bound)
            if value.constant == nil {
                inputs.append(
                    (value.slice, try Tensor(uninitialized: value.type.dtype, shape: value.type.shape), bound.slice))
            }
        }
        var hostOutputs: [BoundValue] = []
        for value in node.outputs {
            let bound = try hostValue(value)
            hostOutputs.append(bound)
            outputs.append(
                (bound.slice, try Tensor(uninitialized: value.type.dtype, shape: value.type.shape), value.slice))
        }
        let step = node.step
        let bound = BoundNode(step: step, inputs: hostInputs, outputs: hostOutputs, evaluator: node.evaluator)
        guard let kernel = try WidenedKernel.make(bound, backend: host) else { return nil }
        self.kernel = kernel
        self.device = device
        self.host = host
        self.buffers = buffers
        opType = step.node.opType
    }

    /// Results are read back to the host while the plan runs.
    var replayable: Bool { false }

    var kernelDescription: String {
        "host fallback: " + ((kernel as? DescribedKernel)?.kernelDescription ?? String(describing: type(of: kernel)))
    }

    func run() throws {
        for index in inputs.indices {
            let input = inputs[index]
            try inputs[index].staging.withUnsafeMutableBytes { try device.copy(from: input.device, to: $0) }
            try inputs[index].staging.withUnsafeBytes { try host.copy(from: $0, to: input.host) }
        }
        try kernel.run()
        try host.synchronize()
        for index in outputs.indices {
            let output = outputs[index]
            try outputs[index].staging.withUnsafeMutableBytes { try host.copy(from: output.host, to: $0) }
            try outputs[index].staging.withUnsafeBytes { try device.copy(from: $0, to: output.device) }
        }
    }
}
