import CKernels
import InferenceGraph
import InferenceRuntime
import InferenceTensor

/// The CPU backend's kernel table: the one place that says which operators, opsets and element types
/// it runs. Kernels live in Kernels/, one file per operator family.
public enum CPUKernelTable {
    public static let registry: KernelRegistry = {
        var table: [KernelRegistration] = []
        func add(_ ops: [String], _ dtypes: Set<DType>, _ make: @escaping @Sendable (BoundNode) throws -> any Kernel) {
            for op in ops { table.append(KernelRegistration(op, dtypes: dtypes) { node, _ in try make(node) }) }
        }
        /// For kernels that split their work across the backend's threads.
        func add(
            _ ops: [String], _ dtypes: Set<DType>,
            split make: @escaping @Sendable (BoundNode, ParallelFor) throws -> any Kernel
        ) {
            for op in ops {
                table.append(
                    KernelRegistration(op, dtypes: dtypes) { node, backend in
                        try make(node, (backend as? CPUBackend)?.parallel ?? .serial)
                    })
            }
        }
        let floats: Set<DType> = [.float32]
        let allFloats: Set<DType> = [.float32, .float64, .float16]
        let signedNumbers: Set<DType> = allFloats.union([.int8, .int16, .int32, .int64])
        // Linear algebra.
        @Sendable func parallel(_ backend: any Backend) -> ParallelFor {
            (backend as? CPUBackend)?.parallel ?? .serial
        }
        table.append(KernelRegistration("Gemm", dtypes: floats) { try GemmKernel(node: $0, parallel: parallel($1)) })
        table.append(
            KernelRegistration("MatMul", dtypes: floats) { try MatMulKernel(node: $0, parallel: parallel($1)) })
        // Elementwise.
        // The unary operators' table (UnaryOperators): floats split across threads, every number type serially.
        let numbers = signedNumbers.union([.uint8, .uint16, .uint32, .uint64])
        for unary in UnaryOperators.all {
            switch unary.types {
            case .floats: add([unary.name], allFloats, split: UnaryKernels.make)
            case .numbers: add([unary.name], numbers, UnaryKernels.make)
            }
        }
        add(["Not"], [.bool], UnaryKernels.makeNot)
        add(["Identity", "Dropout"], allTypes, UnaryKernels.makeCopy)
        add(["Clip"], numericTypes, UnaryKernels.makeClip)
        add(["Cast", "CastLike"], allTypes, split: UnaryKernels.makeCast)
        add(
            ["Add", "Sub", "Mul", "Div", "Max", "Min"], numericTypes,
            split: { node, parallel in
                if node.step.node.attributes[FusionRules.channelsLastInputAttribute] != nil {
                    return try ChannelScaleKernel(node: node, parallel: parallel)
                }
                return node.inputs.count == 2
                    ? try BinaryKernels.make(node, parallel: parallel) : try BinaryKernels.makeVariadic(node)
            })
        add(["Pow"], numericTypes) { try BinaryKernels.make($0) }
        add(["Mod"], numericTypes) { try BinaryKernels.make($0) }
        add(["PRelu"], allFloats) { try BinaryKernels.make($0) }
        add(["Sum", "Mean"], numericTypes, BinaryKernels.makeVariadic)
        add(["Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"], allTypes) { try BinaryKernels.make($0) }
        add(["And", "Or", "Xor"], [.bool]) { try BinaryKernels.make($0) }
        add(["Where"], allTypes, BinaryKernels.makeWhere)
        // Normalization and activations over an axis.
        add(["Softmax", "LogSoftmax"], floats, split: NormalizationKernels.makeSoftmax)
        add(["BatchNormalization"], floats, split: NormalizationKernels.makeBatchNorm)
        table.append(
            KernelRegistration("LayerNormalization", dtypes: floats) {
                try NormalizationKernels.makeLayerNorm($0, parallel: parallel($1))
            })
        // Convolution and pooling.
        table.append(
            KernelRegistration("Conv", dtypes: floats) { node, backend in
                let algorithm = (backend as? CPUBackend)?.convolution ?? .automatic
                let attributes = node.step.node.attributes
                if attributes[FusionRules.channelsLastInputAttribute] != nil
                    || attributes[FusionRules.channelsLastOutputAttribute] != nil
                {
                    // A chain planning passes channels last (`ChannelsLastChains`): only these two kernels read
                    // and write that layout, and each refuses a shape it cannot run.
                    return try DepthwiseConvKernel.applies(node)
                        ? try DepthwiseConvKernel(node: node, parallel: parallel(backend))
                        : try ConvKernel(node: node, parallel: parallel(backend))
                }
                let pooled = attributes[FusionRules.maxPoolAttribute] != nil
                // Winograd pools in its own store; the other kernels pool from a scratch output.
                let winograd = try WinogradConvKernel.applies(node, algorithm: algorithm)
                let direct = try DirectConvKernel.applies(node, algorithm: algorithm)
                let activation = try node.fusedActivation()
                // im2col + GEMM applies every fused activation in its store, the depthwise kernel per row, the direct
                // kernel Relu and Clip in its store and the others per chunk of rows; Winograd gets a pass over its
                // output. A fused max pool does not commute with Swish or HardSwish: such pairs are not fused.
                func activated(_ kernel: any Kernel) throws -> any Kernel {
                    guard
                        !activation.isNone && activation.kind != ck_activation_relu && !(kernel is ConvKernel)
                            && !(kernel is DepthwiseConvKernel) && !(kernel is DirectConvKernel)
                    else { return kernel }
                    return try ActivatedKernel(
                        kernel, output: try node.output(0), activation: activation, parallel: parallel(backend))
                }
                if winograd && !direct {
                    return try activated(try WinogradConvKernel(node: node, parallel: parallel(backend)))
                }
                let make = { (node: BoundNode) throws -> any Kernel in
                    if try algorithm == .automatic && DepthwiseConvKernel.applies(node) {
                        return try DepthwiseConvKernel(node: node, parallel: parallel(backend))
                    }
                    if try DirectConvKernel.applies(node, algorithm: algorithm) {
                        return try DirectConvKernel(node: node, parallel: parallel(backend))
                    }
                    return try ConvKernel(node: node, parallel: parallel(backend))
                }
                return try activated(
                    pooled ? try PooledConvKernel(node: node, parallel: parallel(backend), make: make) : try make(node))
            })
        add(["ConvTranspose"], floats, split: { try ConvTransposeKernel(node: $0, parallel: $1) })
        add(["MaxPool", "AveragePool"], floats, split: PoolingKernels.make)
        add(["MaxPool"], [.int8, .uint8], split: PoolingKernels.makeBytes)
        add(["GlobalAveragePool", "GlobalMaxPool"], floats, split: PoolingKernels.makeGlobal)
        add(["Resize"], allFloats.union([.int8, .uint8, .int32, .int64]), split: ResizeKernels.make)
        // Control flow.
        table.append(
            KernelRegistration("If", dtypes: [.bool]) { node, backend in try IfKernel(node: node, backend: backend) })
        // Recurrent layers.
        add(["LSTM"], floats, split: { try RecurrentKernels.make($0, cell: .lstm, parallel: $1) })
        add(["GRU"], floats, split: { try RecurrentKernels.make($0, cell: .gru, parallel: $1) })
        add(["RNN"], floats, split: { try RecurrentKernels.make($0, cell: .rnn, parallel: $1) })
        // Reductions.
        add(
            [
                "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL2", "ReduceSumSquare",
                "ReduceL1", "ReduceLogSum", "ReduceLogSumExp",
            ], numericTypes, ReductionKernels.makeReduce)
        add(["ReduceMax", "ReduceMin"], [.bool], ReductionKernels.makeReduce)
        add(["ArgMax", "ArgMin"], numericTypes, ReductionKernels.makeArgReduce)
        // Data movement (any element type).
        add(["Reshape", "Flatten", "Squeeze", "Unsqueeze"], allTypes, TensorOpKernels.makeReshape)
        add(["Transpose"], allTypes, split: TensorOpKernels.makeTranspose)
        add(["Concat"], allTypes, split: TensorOpKernels.makeConcat)
        add(["Split"], allTypes, TensorOpKernels.makeSplit)
        add(["Slice"], allTypes, TensorOpKernels.makeSlice)
        add(["Gather"], allTypes, TensorOpKernels.makeGather)
        add(["Expand"], allTypes, TensorOpKernels.makeExpand)
        add(["Tile"], allTypes, TensorOpKernels.makeTile)
        add(["Pad"], allTypes, TensorOpKernels.makePad)
        add(["ConstantOfShape"], allTypes, TensorOpKernels.makeConstantOfShape)
        add(["Range"], numericTypes, TensorOpKernels.makeRange)
        add(["Shape", "Size"], allTypes, TensorOpKernels.makeShapeOf)
        // Indexing (any element type: bytes are copied exactly; indices out of range are errors).
        add(["GatherElements"], allTypes, IndexingKernels.makeGatherElements)
        add(["GatherND"], allTypes, IndexingKernels.makeGatherND)
        add(["ScatterElements", "Scatter"], allTypes, IndexingKernels.makeScatterElements)
        add(["ScatterND"], allTypes, IndexingKernels.makeScatterND)
        add(["Trilu"], allTypes, IndexingKernels.makeTrilu)
        add(["DepthToSpace", "SpaceToDepth"], allTypes, IndexingKernels.makeRearrange)
        add(["OneHot"], numericTypes, IndexingKernels.makeOneHot)
        // Scans, selection and normalization over an axis.
        add(["CumSum", "CumProd"], numericTypes, ScanAndSelectKernels.makeCumulative)
        add(["TopK"], numericTypes, ScanAndSelectKernels.makeTopK)
        add(["Hardmax"], allFloats, ScanAndSelectKernels.makeHardmax)
        add(["LpNormalization"], allFloats, ScanAndSelectKernels.makeLpNormalization)
        add(["RMSNormalization"], allFloats, ScanAndSelectKernels.makeRMSNormalization)
        add(["IsNaN", "IsInf"], allFloats, ScanAndSelectKernels.makePredicate)
        add(
            ["BitwiseAnd", "BitwiseOr", "BitwiseXor", "BitwiseNot", "BitShift"],
            [.int8, .int16, .int32, .int64, .uint8, .uint16, .uint32, .uint64], ScanAndSelectKernels.makeBitwise)
        add(["Einsum"], allFloats, EinsumKernels.make)
        // Normalization, pooling and sequence operators of style-transfer, diffusion and older CNN models.
        add(["InstanceNormalization", "GroupNormalization"], allFloats, NeuralNetworkExtras.makeGroupedNormalization)
        add(["LRN"], allFloats, NeuralNetworkExtras.makeLRN)
        add(["MeanVarianceNormalization"], allFloats, NeuralNetworkExtras.makeMeanVarianceNormalization)
        add(["LpPool"], allFloats, NeuralNetworkExtras.makeLpPool)
        add(["Shrink"], numericTypes, NeuralNetworkExtras.makeShrink)
        add(["EyeLike"], allTypes, NeuralNetworkExtras.makeEyeLike)
        add(["ReverseSequence"], allTypes, NeuralNetworkExtras.makeReverseSequence)
        add(["GridSample"], allFloats, GridSampleKernel.make)
        add(["RoiAlign"], allFloats, RoiAlignKernel.make)
        // Transformer blocks.
        add(["Attention"], allFloats, split: TransformerKernels.makeAttention)
        add(["RotaryEmbedding"], allFloats, TransformerKernels.makeRotaryEmbedding)
        // Quantized operators (int8/uint8 GEMM with exact int32 sums; quantize/dequantize per tensor, axis or block).
        add(["QuantizeLinear"], [.float32, .float16], split: QuantizationKernels.makeQuantize)
        add(
            ["DequantizeLinear"], [.int8, .uint8, .int16, .uint16, .int32], split: QuantizationKernels.makeDequantize)
        add(["DynamicQuantizeLinear"], floats, split: QuantizationKernels.makeDynamicQuantize)
        add(
            ["MatMulInteger"], [.int8, .uint8],
            split: { try IntegerMatMulKernel(node: $0, parallel: $1, quantizedOutput: false) })
        add([QuantizedFusion.qlinearAdd], [.int8, .uint8], split: QuantizationKernels.makeQLinearAdd)
        add(
            [QuantizedFusion.qdqDepthwiseConv], [.int8, .uint8],
            split: { try QDQDepthwiseKernel(node: $0, parallel: $1) })
        add(
            [QuantizedFusion.scaledMatMulInteger], [.int8, .uint8],
            split: { try IntegerMatMulKernel(node: $0, parallel: $1, quantizedOutput: false, scaledOutput: true) })
        add(
            ["QLinearMatMul"], [.int8, .uint8],
            split: { try IntegerMatMulKernel(node: $0, parallel: $1, quantizedOutput: true) })
        add(
            ["ConvInteger"], [.int8, .uint8],
            split: { try IntegerConvKernel(node: $0, parallel: $1, quantizedOutput: false) })
        add(
            ["QLinearConv"], [.int8, .uint8],
            split: { node, parallel -> any Kernel in
                if try IntegerDepthwiseKernel.applies(node) {
                    return try IntegerDepthwiseKernel(node: node, parallel: parallel)
                }
                return try IntegerConvKernel(node: node, parallel: parallel, quantizedOutput: true)
            })
        return KernelRegistry(table)
    }()
}
