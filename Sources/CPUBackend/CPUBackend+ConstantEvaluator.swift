import InferenceGraph
import InferenceRuntime
import InferenceTensor

/// The CPU backend folds constant subgraphs at plan time for every session, CPU or GPU: it runs the
/// node once with its own kernels and hands back the outputs as tensors.
extension CPUBackend: ConstantEvaluator {
    public func canEvaluate(opType: String, domain: String) -> Bool { kernels.knows(opType: opType, domain: domain) }

    public func evaluate(node: Node, opset: Int, inputs: [Tensor?], outputTypes: [TensorType]) throws -> [Tensor] {
        var boundInputs: [BoundValue?] = []
        for tensor in inputs {
            guard let tensor else {
                boundInputs.append(nil)
                continue
            }
            let buffer = try allocate(bytes: max(tensor.byteCount, 1))
            let slice = BufferSlice(buffer: buffer, offset: 0, byteCount: tensor.byteCount)
            try tensor.withUnsafeBytes { try copy(from: $0, to: slice) }
            boundInputs.append(
                BoundValue(type: TensorType(dtype: tensor.dtype, shape: tensor.shape), slice: slice, constant: tensor))
        }
        var boundOutputs: [BoundValue] = []
        for type in outputTypes {
            let buffer = try allocate(bytes: max(type.byteCount, 1))
            boundOutputs.append(
                BoundValue(
                    type: type, slice: BufferSlice(buffer: buffer, offset: 0, byteCount: type.byteCount), constant: nil)
            )
        }
        let step = PlannedStep(node: node, opset: opset, inputs: [], outputs: [])
        let bound = BoundNode(step: step, inputs: boundInputs, outputs: boundOutputs)
        let dtype = KernelRegistry.dispatchType(of: step, inputs: boundInputs, outputs: boundOutputs)
        // The kernel a session would run: float16 and bfloat16 nodes widened to float32 where that is the way.
        guard let kernel = try WidenedKernel.make(bound, backend: self) else {
            throw RuntimeError.unsupportedOperator(
                node: node.displayName, opType: node.opType, domain: node.domain, opset: opset, dtype: dtype,
                device: "cpu",
                supported: kernels.operatorNames)
        }
        try kernel.run()
        return try boundOutputs.map { value in
            var tensor = try Tensor(uninitialized: value.type.dtype, shape: value.type.shape)
            try tensor.withUnsafeMutableBytes { try copy(from: value.slice, to: $0) }
            return tensor
        }
    }
}
