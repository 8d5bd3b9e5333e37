import InferenceGraph
import InferenceTensor

/// A node on float16 values run by the backend's float32 kernel (Conv, MatMul, Gemm, Softmax, pooling, recurrent
/// layers, elementwise arithmetic…): its float16 inputs are cast to float32 buffers, the float32 kernel runs, and its float32
/// results are cast back to float16 (rounded to nearest even). That is a float16 kernel with float32 arithmetic and
/// accumulation, the way onnxruntime runs such nodes on CPUs without float16 arithmetic; each node still rounds its
/// outputs to float16, so the model keeps float16 semantics between nodes. Constant float16 inputs (weights) are
/// converted once, when the plan is bound, and the float32 kernel packs them as usual.
public final class WidenedKernel: Kernel, DescribedKernel {
    private let casts: [any Kernel]
    private let kernel: any Kernel
    private let castsBack: [any Kernel]
    /// Keeps the float32 buffers alive as long as the kernels that point into them.
    private let buffers: [any DeviceBuffer]

    /// The kernel for a node, from the backend's table: for its own element type, or else widened from float16 to
    /// float32. - Returns: nil when the backend has neither.
    public static func make(_ node: BoundNode, backend: any Backend) throws -> (any Kernel)? {
        let step = node.step
        let dtype = KernelRegistry.dispatchType(of: step, inputs: node.inputs, outputs: node.outputs)
        let own = backend.kernels.lookup(
            opType: step.node.opType, domain: step.node.domain, opset: step.opset, dtype: dtype)
        if narrowTypes[dtype] != nil, let own, own.narrowNative {
            do {
                return try own.make(node, backend)
            } catch let error as RuntimeError where error.isUnsupported {
                // This node's form (mixed types, say) is left to the float32 kernel between casts.
            }
        }
        // Arithmetic on float16 runs faster widened (two vectorized casts around the float32 kernel, with its
        // fusions) than through a generic float16 path; operators that only move bytes keep their own kernels.
        if narrowTypes[dtype] != nil, !movesBytes.contains(step.node.opType),
            backend.kernels.lookup(
                opType: step.node.opType, domain: step.node.domain, opset: step.opset, dtype: .float32) != nil,
            let widened = try WidenedKernel(node: node, backend: backend)
        {
            return widened
        }
        return try own?.make(node, backend)
    }

    /// The types computed in float32 and stored narrow: float16 and bfloat16 (with their ONNX type codes).
    static let narrowTypes: [DType: Int] = [.float16: 10, .bfloat16: 16]

    /// Operators whose kernels copy elements without arithmetic: as fast on float16 as on float32.
    static let movesBytes: Set<String> = [
        "Identity", "Dropout", "Cast", "CastLike", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Concat",
        "Split", "Slice", "Gather", "Expand", "Tile", "Pad", "ConstantOfShape", "Shape", "Size", "GatherElements",
        "GatherND", "ScatterElements", "Scatter", "ScatterND", "Trilu", "DepthToSpace", "SpaceToDepth", "Where",
        "EyeLike", "ReverseSequence", "If", "Loop", "Scan",
    ]

    private init?(node: BoundNode, backend: any Backend) throws {
        let step = node.step
        func castStep(to code: Int) -> PlannedStep {
            PlannedStep(
                node: Node(
                    name: "\(step.node.displayName) (float32 cast)", opType: "Cast", inputs: ["x"], outputs: ["y"],
                    attributes: ["to": .int(code)]),
                opset: 21, inputs: [0], outputs: [1])
        }
        guard backend.kernels.lookup(opType: "Cast", domain: "", opset: 21, dtype: .float32) != nil else { return nil }
        var buffers: [any DeviceBuffer] = []
        func widened(_ value: BoundValue) throws -> BoundValue {
            let type = TensorType(dtype: .float32, shape: value.type.shape)
            let buffer = try backend.allocate(bytes: max(type.byteCount, 1))
            buffers.append(buffer)
            let slice = BufferSlice(buffer: buffer, offset: 0, byteCount: type.byteCount)
            var constant: Tensor?
            if let tensor = value.constant {
                let floats =
                    tensor.dtype == .bfloat16
                    ? try tensor.scalars(as: BFloat16.self).map(\.float)
                    : try tensor.scalars(as: Float16.self).map { Float($0) }
                let converted = try Tensor(shape: tensor.shape, scalars: floats)
                try converted.withUnsafeBytes { try backend.copy(from: $0, to: slice) }
                constant = converted
            }
            return BoundValue(type: type, slice: slice, constant: constant)
        }
        var casts: [any Kernel] = []
        var inputs: [BoundValue?] = []
        for value in node.inputs {
            guard let value, Self.narrowTypes[value.type.dtype] != nil else {
                inputs.append(value)
                continue
            }
            let wide = try widened(value)
            inputs.append(wide)
            if value.constant == nil {
                guard
                    let cast = backend.kernels.lookup(
                        opType: "Cast", domain: "", opset: 21, dtype: value.type.dtype)
                else { return nil }
                casts.append(
                    try cast.make(
                        BoundNode(step: castStep(to: 1), inputs: [value], outputs: [wide], evaluator: node.evaluator),
                        backend))
            }
        }
        var outputs: [BoundValue] = []
        var castsBack: [any Kernel] = []
        for value in node.outputs {
            guard let code = Self.narrowTypes[value.type.dtype] else {
                outputs.append(value)
                continue
            }
            let wide = try widened(value)
            outputs.append(wide)
            guard
                let back = backend.kernels.lookup(opType: "Cast", domain: "", opset: 21, dtype: .float32)
            else { return nil }
            castsBack.append(
                try back.make(
                    BoundNode(step: castStep(to: code), inputs: [wide], outputs: [value], evaluator: node.evaluator),
                    backend))
        }
        let inner = BoundNode(step: step, inputs: inputs, outputs: outputs, evaluator: node.evaluator)
        guard
            let registration = backend.kernels.lookup(
                opType: step.node.opType, domain: step.node.domain, opset: step.opset, dtype: .float32)
        else { return nil }
        kernel = try registration.make(inner, backend)
        self.casts = casts
        self.castsBack = castsBack
        self.buffers = buffers
    }

    public var replayable: Bool {
        kernel.replayable && casts.allSatisfy(\.replayable) && castsBack.allSatisfy(\.replayable)
    }

    public var kernelDescription: String {
        "widened to float32: "
            + ((kernel as? DescribedKernel)?.kernelDescription ?? String(describing: type(of: kernel)))
    }

    public func run() throws {
        for cast in casts { try cast.run() }
        try kernel.run()
        for cast in castsBack { try cast.run() }
    }
}
