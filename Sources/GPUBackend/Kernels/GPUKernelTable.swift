import InferenceGraph
import InferenceRuntime
import InferenceTensor

/// The GPU kernel table, shared by the OpenCL and CUDA backends (each a `GPUKernelHost`) over one kernel source
/// (Sources/GPUKernelText). Operators not listed here run on the host between device kernels
/// (`HostFallbackKernel`) or are folded at plan time; `inference inspect` and errors list the difference.
public enum GPUKernelTable {
    /// Operator names the OpenCL backend has kernels for.
    public static var operatorNames: [String] { registry.operatorNames }

    /// What planning rewrites for the GPUs: QDQ models' quantized convolutions (group 1) and matrix products into
    /// QLinearConv and QLinearMatMul, which the integer GEMM runs (exact int32 sums, one requantization, the CPU's
    /// bytes); nothing else is fused.
    static var fusion: FusionRules {
        var rules = FusionRules.none
        rules.recognizesQDQ = true
        rules.qdqStandardOperatorsOnly = true
        return rules
    }

    static let registry: KernelRegistry = {
        var table: [KernelRegistration] = []
        let floats: Set<DType> = [.float32]
        func add(
            _ ops: [String], dtypes: Set<DType> = floats, narrowNative: Bool = false,
            _ make: @escaping @Sendable (BoundNode, any GPUKernelHost) throws -> any Kernel
        ) {
            for op in ops {
                table.append(
                    KernelRegistration(op, dtypes: dtypes, narrowNative: narrowNative) { node, backend in
                        guard let backend = backend as? any GPUKernelHost else {
                            throw RuntimeError.device("GPU kernel on a non-GPU backend")
                        }
                        try requireInt32Extents(node)
                        return try make(node, backend)
                    })
            }
        }
        // Kernels over every float storage type (float16 and bfloat16 read and written as such, float32 arithmetic).
        let storages: Set<DType> = [.float32, .float16, .bfloat16]
        add(["Gemm"], dtypes: storages, narrowNative: true, makeGemm)
        add(["MatMul"], dtypes: storages, narrowNative: true, makeMatMul)
        // The unary operators' table (UnaryOperators): every row has its op code in the kernel source.
        add(UnaryOperators.all.map(\.name), dtypes: storages, narrowNative: true, makeUnary)
        add(["Shrink"], dtypes: storages, narrowNative: true) { node, backend in
            let a = node.step.node
            let x = try node.inputs.first.flatMap { $0 }.unwrap(node, "input"), y = try firstOutput(node)
            return try unaryLaunch(
                backend, x: x, y: y, code: .shrink, alpha: try a.float("lambd", default: 0.5),
                beta: try a.float("bias", default: 0), storage: try Storage(node, backend, x, y))
        }
        let anyType = Set(DType.allCases)
        let integers: Set<DType> = [.int8, .int16, .int32, .int64, .uint8, .uint16, .uint32, .uint64]
        add(["Identity", "Dropout", "Reshape", "Flatten", "Squeeze", "Unsqueeze"], dtypes: anyType) {
            node, backend in
            if node.step.node.opType == "Dropout" && node.outputs.count > 1 {
                throw RuntimeError.unsupportedAttribute(
                    node: node.step.node.displayName, detail: "Dropout's mask output on the GPU")
            }
            // Dropout is the identity only in inference mode: a training_mode input must be a constant false.
            if node.step.node.opType == "Dropout", node.inputs.count > 2, let training = node.inputs[2] {
                guard let constant = training.constant, (try? constant.scalars(as: UInt8.self))?.first == 0 else {
                    throw RuntimeError.unsupportedAttribute(
                        node: node.step.node.displayName, detail: "training_mode not a constant false on the GPU")
                }
            }
            return try makeCopy(node, backend)
        }
        add(["Add", "Sub", "Mul", "Div", "Pow", "Mod", "PRelu"], dtypes: storages, narrowNative: true, makeBinary)
        add(["Sum", "Mean", "Max", "Min"], makeVariadic)
        add(["Add", "Sub", "Mul", "Div", "Mod", "Sum", "Max", "Min"], dtypes: integers, makeIntegerArithmetic)
        add(["Clip"], makeClip)
        add(["And", "Or", "Xor", "Not"], dtypes: [.bool], makeLogic)
        add(["ArgMax", "ArgMin"], makeArgReduce)
        add(["Tile"], dtypes: anyType, makeTile)
        add(["Pad"], makePad)
        add(["Resize"], makeResize)
        add(["ConvTranspose"], makeConvTranspose)
        add(["Transpose"], dtypes: anyType, makeTranspose)
        add(["Expand"], dtypes: anyType, makeExpand)
        add(["Slice"], dtypes: anyType, makeSlice)
        add(["Concat"], dtypes: anyType, makeConcat)
        add(["Split"], dtypes: anyType, makeSplit)
        add(["Gather"], dtypes: anyType, makeGather)
        add(["GatherElements"], dtypes: anyType, makeGatherElements)
        add(["GatherND"], dtypes: anyType, makeGatherND)
        add(["ScatterElements", "Scatter"], dtypes: anyType, makeScatterElements)
        add(["ScatterND"], dtypes: anyType, makeScatterND)
        add(["Trilu"], dtypes: anyType, makeTrilu)
        add(["CumSum"], makeCumSum)
        add(["IsNaN", "IsInf"], makeFloatClass)
        add(["Attention"], makeAttention)
        add(["RMSNormalization"], makeRMSNormalization)
        add(["RotaryEmbedding"], makeRotaryEmbedding)
        add(["Hardmax", "LpNormalization"], makeAxisLines)
        add(["TopK"], makeTopK)
        add(["GridSample"], makeGridSample)
        add(["DepthToSpace", "SpaceToDepth"], dtypes: anyType, makeRearrange)
        add(["InstanceNormalization", "GroupNormalization"], makeGroupNorm)
        add(["LRN"], makeLRN)
        add(["OneHot"], dtypes: [.int64, .float32], makeOneHot)
        add(["BitwiseAnd", "BitwiseOr", "BitwiseXor", "BitwiseNot", "BitShift"], dtypes: integers, makeBitwise)
        add(
            ["Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"], dtypes: integers.union([.float32]),
            makeCompare)
        add(["Where"], dtypes: anyType, makeWhere)
        add(
            [
                "ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceSumSquare", "ReduceProd", "ReduceL2",
                "ReduceL1", "ReduceLogSum", "ReduceLogSumExp",
            ], makeReduce)
        add(
            ["Cast", "CastLike"], dtypes: [.float32, .int32, .int64, .bool, .float16, .bfloat16, .uint8, .int8],
            makeCast)
        add(["Softmax", "LogSoftmax"], dtypes: storages, narrowNative: true, makeSoftmax)
        // Quantized operators (8-bit data, float32 scales); other forms take the host fallback.
        add(["QuantizeLinear"], dtypes: [.float32], makeQuantize)
        add(["DequantizeLinear"], dtypes: [.int8, .uint8], makeDequantize)
        add(["MatMulInteger", "QLinearMatMul"], dtypes: [.int8, .uint8], makeIntegerMatMul)
        add(["ConvInteger", "QLinearConv"], dtypes: [.int8, .uint8], makeIntegerConv)
        add(["DynamicQuantizeLinear"], dtypes: [.float32], makeDynamicQuantize)
        add(["LayerNormalization"], dtypes: storages, narrowNative: true, makeLayerNorm)
        add(["Conv"], dtypes: storages, narrowNative: true, makeConv)
        add(["MaxPool", "AveragePool", "LpPool"], dtypes: storages, narrowNative: true, makePool)
        add(["GlobalAveragePool", "GlobalMaxPool"], dtypes: storages, narrowNative: true, makeGlobalPool)
        add(["BatchNormalization"], dtypes: storages, narrowNative: true, makeBatchNorm)
        add(["LSTM", "GRU"], makeRecurrent)
        // If reads its condition back and runs a branch session on the same device.
        table.append(KernelRegistration("If", dtypes: [.bool]) { try IfKernel(node: $0, backend: $1) })
        return KernelRegistry(table)
    }()

    /// Identity and the Reshape family: a copy of the bytes (4-byte elements through `unary`'s identity).
    static func makeCopy(_ node: BoundNode, _ backend: any GPUKernelHost) throws -> any Kernel {
        let x = try node.inputs.first.flatMap { $0 }.unwrap(node, "input")
        let y = try firstOutput(node)
        guard x.type.dtype.byteSize != 4 else { return try unaryLaunch(backend, x: x, y: y, code: .identity) }
        let count = min(x.type.byteCount, y.type.byteCount)
        guard count > 0 else { return SequenceKernel(parts: []) }
        let (xb, xo) = try backend.arguments(for: x, elementBytes: 1),
            (yb, yo) = try backend.arguments(for: y, elementBytes: 1)
        return try backend.kernel("copy_bytes", arguments: [xb, xo, yb, yo, .int(Int32(count))], global: [count])
    }

    /// A row of `UnaryOperators`: its parameters read once, its op code chosen by them.
    static func makeUnary(_ node: BoundNode, _ backend: any GPUKernelHost) throws -> any Kernel {
        let x = try node.inputs.first.flatMap { $0 }.unwrap(node, "input")
        let y = try firstOutput(node)
        let a = node.step.node
        // An operator without a row is an error at plan time, never a silent identity.
        guard let unary = UnaryOperators.byName[a.opType] else {
            throw unsupported(node, "no GPU code for \(a.opType)")
        }
        let parameters = try node.parameters(UnaryOperator.Parameters.self)
        return try unaryLaunch(
            backend, x: x, y: y, code: unary.gpuCode(for: parameters), alpha: parameters.alpha, beta: parameters.beta,
            storage: try Storage(node, backend, x, y))
    }

    /// One `unary` launch (y may be x: every work-item reads and writes its own element).
    static func unaryLaunch(
        _ backend: any GPUKernelHost, x: BoundValue, y: BoundValue, code: GPUUnaryCode, alpha: Float = 0,
        beta: Float = 0, storage: Storage = .float32
    ) throws -> any Kernel {
        let (xb, xo) = try backend.arguments(for: x, elementBytes: storage.bytes),
            (yb, yo) = try backend.arguments(for: y, elementBytes: storage.bytes)
        let count = y.type.shape.elementCount
        return try backend.kernel(
            "unary" + storage.suffix,
            arguments: [xb, xo, yb, yo, .int(Int32(count)), .int(code.rawValue), .float(alpha), .float(beta)],
            global: [count])
    }

    static func makeGemm(_ node: BoundNode, _ backend: any GPUKernelHost) throws -> any Kernel {
        let a = try node.inputs[0].unwrap(node, "A"), b = try node.inputs[1].unwrap(node, "B")
        let y = try firstOutput(node)
        let attributes = node.step.node
        let transA = try attributes.int("transA", default: 0), transB = try attributes.int("transB", default: 0)
        let alpha = try attributes.float("alpha", default: 1), beta = try attributes.float("beta", default: 1)
        let (m, n) = (y.type.shape[0], y.type.shape[1])
        let k = transA != 0 ? a.type.shape[0] : a.type.shape[1]
        let c = node.inputs.count > 2 ? node.inputs[2] : nil
        let storage = try Storage(node, backend, [a, b, y] + (c.map { [$0] } ?? []))
        if backend.hasLibraryGemm {
            // Gemm's C, broadcast into Y first; the library then adds beta · Y.
            let prologue = try c.map { c in
                try stridedCopy(
                    backend, x: c, y: y, dims: [m, n],
                    xStrides: broadcastStrides(c.type.shape, rank: 2).map { Int($0) },
                    yStrides: [n, 1])
            }
            let gemm = LibraryGemm(
                a: a, b: b, y: y, m: m, n: n, k: k, transA: transA != 0, transB: transB != 0, alpha: alpha,
                beta: c == nil ? 0 : beta)
            if let kernel = try backend.libraryGemm(gemm, prologue: prologue) { return kernel }
        }
        return try tiledGemm(
            backend, a: a, b: b, c: c, y: y, m: m, n: n, k: k, transA: transA != 0, transB: transB != 0, alpha: alpha,
            beta: beta, offsets: [(0, 0)], storage: storage)
    }

    /// One `gemm_tiled` launch: Y[s] = alpha · op(A) · op(B) (+ beta · C) for each batch member s, reading A and B
    /// at the element offsets `offsets[s]`; Y's members are m·n apart.
    static func tiledGemm(
        _ backend: any GPUKernelHost, a: BoundValue, b: BoundValue, c: BoundValue? = nil, y: BoundValue, m: Int,
        n: Int, k: Int, transA: Bool = false, transB: Bool = false, alpha: Float = 1, beta: Float = 0,
        offsets: [(Int, Int)], storage: Storage = .float32
    ) throws -> any Kernel {
        guard m * n * offsets.count > 0 else { return SequenceKernel(parts: []) }
        let (metaArgument, metaKeep) = try backend.metadata(offsets.flatMap { [Int32($0.0), Int32($0.1)] })
        let bytes = storage.bytes
        let (ab, ao) = try backend.arguments(for: a, elementBytes: bytes),
            (bb, bo) = try backend.arguments(for: b, elementBytes: bytes),
            (yb, yo) = try backend.arguments(for: y, elementBytes: bytes)
        let (cb, co) = try backend.arguments(for: c ?? a, elementBytes: bytes)
        let cDims = c?.type.shape.dimensions ?? [1]
        let cRows = cDims.count == 2 ? cDims[0] : 1
        let cCols = cDims.last ?? 1
        return try backend.kernel(
            "gemm_tiled" + storage.suffix,
            arguments: [
                ab, ao, bb, bo, cb, co, yb, yo, .int(Int32(m)), .int(Int32(n)), .int(Int32(k)), .int(transA ? 1 : 0),
                .int(transB ? 1 : 0), .float(alpha), .float(beta), .int(Int32(cRows)), .int(Int32(cCols)),
                .int(c == nil ? 0 : 1), metaArgument,
            ],
            global: [n, m, offsets.count], local: [16, 16, 1], retained: [metaKeep])
    }

    static func makeMatMul(_ node: BoundNode, _ backend: any GPUKernelHost) throws -> any Kernel {
        let a = try node.inputs[0].unwrap(node, "A"), b = try node.inputs[1].unwrap(node, "B")
        let y = try firstOutput(node)
        let storage = try Storage(node, backend, a, b, y)
        let aDims = a.type.shape.rank == 1 ? [1] + a.type.shape.dimensions : a.type.shape.dimensions
        let bDims = b.type.shape.rank == 1 ? b.type.shape.dimensions + [1] : b.type.shape.dimensions
        let m = aDims[aDims.count - 2], k = aDims[aDims.count - 1], n = bDims[bDims.count - 1]
        // Batch axes broadcast numpy-style: each output batch member reads one A and one B matrix.
        let aBatchDims = Array(aDims.dropLast(2)), bBatchDims = Array(bDims.dropLast(2))
        let rank = max(aBatchDims.count, bBatchDims.count)
        let aPadded = [Int](repeating: 1, count: rank - aBatchDims.count) + aBatchDims
        let bPadded = [Int](repeating: 1, count: rank - bBatchDims.count) + bBatchDims
        let outBatch = zip(aPadded, bPadded).map { max($0, $1) }
        let batch = outBatch.reduce(1, *)
        guard batch * m * n > 0 else { return SequenceKernel(parts: []) }
        func offsets(_ dims: [Int], matrix: Int) -> [Int] {
            var strides = [Int](repeating: 0, count: rank)
            var running = matrix
            for axis in stride(from: rank - 1, through: 0, by: -1) {
                strides[axis] = dims[axis] == 1 ? 0 : running
                running *= dims[axis]
            }
            return (0..<batch).map { s in
                var rest = s, offset = 0
                for axis in stride(from: rank - 1, through: 0, by: -1) {
                    offset += (rest % outBatch[axis]) * strides[axis]
                    rest /= outBatch[axis]
                }
                return offset
            }
        }
        let aOffsets = offsets(aPadded, matrix: m * k), bOffsets = offsets(bPadded, matrix: k * n)
        // A vendor GEMM takes one stride per operand: equal batches, or one side shared by all.
        func uniform(_ values: [Int]) -> Int? {
            let step = values.count > 1 ? values[1] - values[0] : 0
            return values.indices.allSatisfy { values[$0] == $0 * step } ? step : nil
        }
        if backend.hasLibraryGemm, let strideA = uniform(aOffsets), let strideB = uniform(bOffsets) {
            let gemm = LibraryGemm(
                a: a, b: b, y: y, m: m, n: n, k: k, batch: batch, strideA: strideA, strideB: strideB, strideY: m * n)
            if let kernel = try backend.libraryGemm(gemm, prologue: nil) { return kernel }
        }
        return try tiledGemm(
            backend, a: a, b: b, y: y, m: m, n: n, k: k, offsets: Array(zip(aOffsets, bOffsets)), storage: storage)
    }

    /// The storage type of a kernel written once over the float storage types (`CK_LOAD_F16` and the like in the
    /// kernel source): the suffix of its name and the size of its elements. float16 and bfloat16 are read and
    /// written as such and computed in float32, so such a kernel gives the bits of its float32 kernel between two
    /// casts with a third of the launches and memory traffic.
    struct Storage {
        let suffix: String
        let bytes: Int
        static let float32 = Storage(suffix: "", bytes: 4)
        static let float16 = Storage(suffix: "_f16", bytes: 2)
        static let bfloat16 = Storage(suffix: "_bf16", bytes: 2)

        private init(suffix: String, bytes: Int) {
            self.suffix = suffix
            self.bytes = bytes
        }

        /// The storage of a node whose `values` all have one float type. - Throws: an unsupported attribute for
        /// mixed or non-float types (the float32 kernel then runs between casts, or the host), and for float16 and
        /// bfloat16 where the backend keeps them widened (`INFERENCE_GPU_HALF=0`).
        init(_ node: BoundNode, _ backend: any GPUKernelHost, _ values: BoundValue...) throws {
            try self.init(node, backend, values)
        }

        init(_ node: BoundNode, _ backend: any GPUKernelHost, _ values: [BoundValue]) throws {
            let types = Set(values.map(\.type.dtype))
            switch types.count == 1 ? types.first : nil {
            case .float32: self = .float32
            case .float16 where backend.narrowKernels: self = .float16
            case .bfloat16 where backend.narrowKernels: self = .bfloat16
            default:
                throw RuntimeError.unsupportedAttribute(
                    node: node.step.node.displayName,
                    detail:
                        "\(node.step.node.opType) on \(types.map(\.description).sorted().joined(separator: " and ")) "
                        + "on the GPU (one float type per node)")
            }
        }
    }

    /// The float kernels read every operand as float32: anything else (Pow's exponent may be an integer tensor,
    /// a comparison may compare integers) is a clear error rather than reinterpreted bits.
    static func requireFloat32(_ node: BoundNode, _ values: BoundValue...) throws {
        guard let other = values.first(where: { $0.type.dtype != .float32 }) else { return }
        throw RuntimeError.unsupportedAttribute(
            node: node.step.node.displayName,
            detail: "\(node.step.node.opType) with a \(other.type.dtype) operand on the GPU (float32 only)")
    }

    static func makeBinary(_ node: BoundNode, _ backend: any GPUKernelHost) throws -> any Kernel {
        guard node.inputs.count == 2 else {
            throw RuntimeError.unsupportedAttribute(
                node: node.step.node.displayName, detail: "more than two inputs on the GPU")
        }
        let a = try node.inputs[0].unwrap(node, "A"), b = try node.inputs[1].unwrap(node, "B")
        let y = try firstOutput(node)
        let storage = try Storage(node, backend, a, b, y)
        let op = node.step.node.opType
        guard
            var code = ["Add": 0, "Sub": 1, "Mul": 2, "Div": 3, "Pow": 4, "Max": 5, "Min": 6, "PRelu": 9, "Mod": 8][op]
        else { throw unsupported(node, "no GPU binary code for \(op)") }
        if try op == "Mod" && node.step.node.int("fmod", default: 0) != 0 { code = 7 }
        return try binaryLaunch(backend, a: a, b: b, y: y, code: code, storage: storage)
    }

    /// One broadcasting `binary` launch.
    static func binaryLaunch(
        _ backend: any GPUKernelHost, a: BoundValue, b: BoundValue, y: BoundValue, code: Int,
        storage: Storage = .float32
    ) throws -> any Kernel {
        let rank = y.type.shape.rank
        let (metaArgument, metaKeep) = try backend.metadata(
            [Int32(rank)] + y.type.shape.dimensions.map { Int32($0) } + broadcastStrides(a.type.shape, rank: rank)
                + broadcastStrides(b.type.shape, rank: rank))
        let (ab, ao) = try backend.arguments(for: a, elementBytes: storage.bytes),
            (bb, bo) = try backend.arguments(for: b, elementBytes: storage.bytes),
            (yb, yo) = try backend.arguments(for: y, elementBytes: storage.bytes)
        let count = y.type.shape.elementCount
        return try backend.kernel(
            "binary" + storage.suffix,
            arguments: [
                ab, ao, bb, bo, yb, yo, .int(Int32(count)), .int(Int32(code)), metaArgument,
            ],
            global: [count], retained: [metaKeep])
    }

    static func makeTranspose(_ node: BoundNode, _ backend: any GPUKernelHost) throws -> any Kernel {
        let x = try node.inputs[0].unwrap(node, "data")
        let y = try firstOutput(node)
        let rank = x.type.shape.rank
        let perm = try node.step.node.ints("perm") ?? Array((0..<rank).reversed())
        let inStrides = contiguousStrides(x.type.shape.dimensions)
        // A strided copy: output axis a walks input axis perm[a].
        let dims = y.type.shape.dimensions
        return try stridedCopy(
            backend, x: x, y: y, dims: dims, xStrides: perm.map { inStrides[$0] }, yStrides: contiguousStrides(dims))
    }

    /// Row-major element strides of a shape.
    static func contiguousStrides(_ dims: [Int]) -> [Int] { ShapeInference.rowMajorStrides(dims) }

    /// One `strided_copy` launch over `dims`, reading x at xBase + Σ idx·xs and writing y at yBase + Σ idx·ys.
    static func stridedCopy(
        _ backend: any GPUKernelHost, x: BoundValue, y: BoundValue, dims: [Int], xStrides: [Int], yStrides: [Int],
        xBase: Int = 0, yBase: Int = 0
    ) throws -> any Kernel {
        let count = dims.reduce(1, *)
        guard count > 0 else { return SequenceKernel(parts: []) }
        return try elementwise(
            backend, "strided_copy", x: x, y: y, count: count,
            meta: [dims.count, xBase, yBase] + dims + xStrides + yStrides)
    }

    static func makeExpand(_ node: BoundNode, _ backend: any GPUKernelHost) throws -> any Kernel {
        let x = try node.inputs[0].unwrap(node, "input")
        let y = try firstOutput(node)
        let dims = y.type.shape.dimensions
        let xStrides = broadcastStrides(x.type.shape, rank: dims.count).map { Int($0) }
        return try stridedCopy(backend, x: x, y: y, dims: dims, xStrides: xStrides, yStrides: contiguousStrides(dims))
    }

    static func makeSlice(_ node: BoundNode, _ backend: any GPUKernelHost) throws -> any Kernel {
        let x = try node.inputs[0].unwrap(node, "data")
        let y = try firstOutput(node)
        // The kernel bakes starts, ends, axes and steps into its launch: values computed at run time are the host's.
        for index in node.inputs.indices.dropFirst().prefix(4) where node.step.opset >= 10 {
            if let value = node.inputs[index], value.constant == nil {
                throw RuntimeError.unsupportedAttribute(
                    node: node.step.node.displayName, detail: "Slice operand \(index) computed at run time on the GPU")
            }
        }
        let p = try node.parameters(SliceParameters.self)
        let inStrides = contiguousStrides(x.type.shape.dimensions)
        let base = zip(p.starts, inStrides).reduce(0) { $0 + $1.0 * $1.1 }
        let xStrides = zip(p.steps, inStrides).map { $0 * $1 }
        let dims = y.type.shape.dimensions
        return try stridedCopy(
            backend, x: x, y: y, dims: dims, xStrides: xStrides, yStrides: contiguousStrides(dims), xBase: base)
    }

    static func makeConcat(_ node: BoundNode, _ backend: any GPUKernelHost) throws -> any Kernel {
        let y = try firstOutput(node)
        let rank = y.type.shape.rank
        let raw = try node.step.node.int("axis", default: 0)
        let axis = raw < 0 ? raw + rank : raw
        let yStrides = contiguousStrides(y.type.shape.dimensions)
        var parts: [any Kernel] = []
        var at = 0
        for (index, input) in node.inputs.enumerated() {
            let x = try input.unwrap(node, "input \(index)")
            let dims = x.type.shape.dimensions
            parts.append(
                try stridedCopy(
                    backend, x: x, y: y, dims: dims, xStrides: contiguousStrides(dims), yStrides: yStrides,
                    yBase: at * yStrides[axis]))
            at += dims[axis]
        }
        return SequenceKernel(parts: parts)
    }

    static func makeSplit(_ node: BoundNode, _ backend: any GPUKernelHost) throws -> any Kernel {
        let x = try node.inputs[0].unwrap(node, "input")
        let rank = x.type.shape.rank
        let raw = try node.step.node.int("axis", default: 0)
        let axis = raw < 0 ? raw + rank : raw
        let xStrides = contiguousStrides(x.type.shape.dimensions)
        var parts: [any Kernel] = []
        var at = 0
        for y in node.outputs {
            let dims = y.type.shape.dimensions
            parts.append(
                try stridedCopy(
                    backend, x: x, y: y, dims: dims, xStrides: xStrides, yStrides: contiguousStrides(dims),
                    xBase: at * xStrides[axis]))
            at += dims[axis]
        }
        return SequenceKernel(parts: parts)
    }

    static func makeGather(_ node: BoundNode, _ backend: any GPUKernelHost) throws -> any Kernel {
        let x = try node.inputs[0].unwrap(node, "data")
        let indices = try node.inputs[1].unwrap(node, "indices")
        let y = try firstOutput(node)
        guard indices.type.dtype == .int64 else {
            throw RuntimeError.unsupportedAttribute(
                node: node.step.node.displayName, detail: "Gather with \(indices.type.dtype) indices on the GPU")
        }
        let rank = x.type.shape.rank
        let raw = try node.step.node.int("axis", default: 0)
        let axis = raw < 0 ? raw + rank : raw
        let dims = x.type.shape.dimensions
        let inner = dims[(axis + 1)...].reduce(1, *)
        let count = y.type.shape.elementCount
        guard count > 0 else { return SequenceKernel(parts: []) }
        let (metaArgument, metaKeep) = try backend.metadata(
            [Int32(dims[axis]), Int32(inner), Int32(indices.type.shape.elementCount)])
        let width = x.type.dtype.byteSize
        let (xb, xo) = try backend.arguments(for: x, elementBytes: width == 4 ? 4 : 1)
        let (yb, yo) = try backend.arguments(for: y, elementBytes: width == 4 ? 4 : 1)
        let (ib, io) = try backend.arguments(for: indices, elementBytes: 8)
        let flag = try indexFlag(node, backend, indices: indices, extents: [dims[axis]])
        let launch = try backend.kernel(
            width == 4 ? "gather_axis" : "gather_axis_bytes",
            arguments: [xb, xo, ib, io, yb, yo, .int(Int32(count))] + (width == 4 ? [] : [.int(Int32(width))])
                + [metaArgument, flag.argument],
            global: [count], retained: [metaKeep, flag.buffer])
        return checked(launch, node, backend, flag: flag)
    }

    /// Per-axis element strides of `shape` right-aligned to `rank`, 0 on broadcast axes.
    static func broadcastStrides(_ shape: Shape, rank: Int) -> [Int32] {
        let padded = [Int](repeating: 1, count: rank - shape.rank) + shape.dimensions
        var result = [Int32](repeating: 0, count: rank)
        var running = 1
        for axis in stride(from: rank - 1, through: 0, by: -1) {
            result[axis] = padded[axis] == 1 ? 0 : Int32(running)
            running *= padded[axis]
        }
        return result
    }

    static func makeCompare(_ node: BoundNode, _ backend: any GPUKernelHost) throws -> any Kernel {
        let a = try node.inputs[0].unwrap(node, "A"), b = try node.inputs[1].unwrap(node, "B")
        let y = try firstOutput(node)
        let integer = integerTypeCode(a.type.dtype)
        if integer == nil || b.type.dtype != a.type.dtype { try requireFloat32(node, a, b) }
        let codes = ["Equal": 0, "Less": 1, "Greater": 2, "LessOrEqual": 3, "GreaterOrEqual": 4]
        let rank = y.type.shape.rank
        let count = y.type.shape.elementCount
        guard count > 0 else { return SequenceKernel(parts: []) }
        let (metaArgument, metaKeep) = try backend.metadata(
            [Int32(rank)] + y.type.shape.dimensions.map { Int32($0) } + broadcastStrides(a.type.shape, rank: rank)
                + broadcastStrides(b.type.shape, rank: rank))
        let operandBytes = integer == nil ? 4 : 1
        let (ab, ao) = try backend.arguments(for: a, elementBytes: operandBytes),
            (bb, bo) = try backend.arguments(for: b, elementBytes: operandBytes)
        let (yb, yo) = try backend.arguments(for: y, elementBytes: 1)
        let op = KernelArgument.int(Int32(codes[node.step.node.opType] ?? 0))
        return try backend.kernel(
            integer == nil ? "compare" : "compare_int",
            arguments: [ab, ao, bb, bo, yb, yo, .int(Int32(count)), op] + (integer.map { [.int(Int32($0))] } ?? [])
                + [metaArgument],
            global: [count], retained: [metaKeep])
    }

    static func makeWhere(_ node: BoundNode, _ backend: any GPUKernelHost) throws -> any Kernel {
        let c = try node.inputs[0].unwrap(node, "condition")
        let x = try node.inputs[1].unwrap(node, "X"), yv = try node.inputs[2].unwrap(node, "Y")
        guard let out = node.outputs.first, c.type.dtype == .bool, x.type.dtype == yv.type.dtype,
            out.type.dtype == x.type.dtype
        else {
            throw RuntimeError.unsupportedAttribute(
                node: node.step.node.displayName, detail: "Where with mixed element types on the GPU")
        }
        let width = x.type.dtype.byteSize
        let rank = out.type.shape.rank
        let count = out.type.shape.elementCount
        guard count > 0 else { return SequenceKernel(parts: []) }
        let (metaArgument, metaKeep) = try backend.metadata(
            [Int32(rank)] + out.type.shape.dimensions.map { Int32($0) } + broadcastStrides(c.type.shape, rank: rank)
                + broadcastStrides(x.type.shape, rank: rank) + broadcastStrides(yv.type.shape, rank: rank))
        let (cb, co) = try backend.arguments(for: c, elementBytes: 1)
        let bytes = x.type.dtype == .float32 ? 4 : 1
        let (xb, xo) = try backend.arguments(for: x, elementBytes: bytes),
            (yb, yo) = try backend.arguments(for: yv, elementBytes: bytes)
        let (ob, oo) = try backend.arguments(for: out, elementBytes: bytes)
        return try backend.kernel(
            x.type.dtype == .float32 ? "where_select" : "where_bytes",
            arguments: [cb, co, xb, xo, yb, yo, ob, oo, .int(Int32(count))]
                + (x.type.dtype == .float32 ? [] : [.int(Int32(width))]) + [metaArgument],
            global: [count], retained: [metaKeep])
    }

    static func makeReduce(_ node: BoundNode, _ backend: any GPUKernelHost) throws -> any Kernel {
        let x = try node.inputs[0].unwrap(node, "data")
        let y = try firstOutput(node)
        let context = ShapeInferenceContext(
            node: node.step.node, opset: node.step.opset, inputs: node.inputs.map { $0?.type },
            constants: node.inputs.map { $0?.constant })
        let rank = x.type.shape.rank
        let axes = Set(try ShapeInference.reductionAxes(context, rank: rank))
        let dims = x.type.shape.dimensions
        let strides = contiguousStrides(dims)
        let kept = (0..<rank).filter { !axes.contains($0) }, reduced = (0..<rank).filter { axes.contains($0) }
        let codes = [
            "ReduceSum": 0, "ReduceMean": 1, "ReduceMax": 2, "ReduceMin": 3, "ReduceSumSquare": 4, "ReduceProd": 5,
            "ReduceL2": 6, "ReduceL1": 7, "ReduceLogSum": 8, "ReduceLogSumExp": 9,
        ]
        guard let code = codes[node.step.node.opType] else {
            throw unsupported(node, "no GPU reduction code for \(node.step.node.opType)")
        }
        let count = y.type.shape.elementCount
        guard count > 0 else { return SequenceKernel(parts: []) }
        let values =
            [kept.count] + kept.map { dims[$0] } + kept.map { strides[$0] } + [reduced.count]
            + reduced.map { dims[$0] } + reduced.map { strides[$0] }
        let (metaArgument, metaKeep) = try backend.metadata(values.map { Int32($0) })
        let (xb, xo) = try backend.arguments(for: x), (yb, yo) = try backend.arguments(for: y)
        return try backend.kernel(
            "reduce",
            arguments: [
                xb, xo, yb, yo, .int(Int32(count)), .int(Int32(code)), metaArgument,
            ],
            global: [count], retained: [metaKeep])
    }

    static func makeCast(_ node: BoundNode, _ backend: any GPUKernelHost) throws -> any Kernel {
        let x = try node.inputs[0].unwrap(node, "input")
        let y = try firstOutput(node)
        let count = y.type.shape.elementCount
        guard count > 0 else { return SequenceKernel(parts: []) }
        let from = x.type.dtype, to = y.type.dtype
        if from == to { return try makeCopy(node, backend) }
        let name: String
        switch (from, to) {
        case (.float32, .int64): name = "cast_f32_i64"
        case (.int64, .float32): name = "cast_i64_f32"
        case (.float32, .int32): name = "cast_f32_i32"
        case (.int32, .float32): name = "cast_i32_f32"
        case (.float32, .bool): name = "cast_f32_u8"
        case (.float32, .uint8): name = "cast_f32_u8_number"
        case (.float32, .int8): name = "cast_f32_i8"
        case (.uint8, .float32): name = "cast_u8_number_f32"
        case (.int8, .float32): name = "cast_i8_f32"
        case (.bool, .float32): name = "cast_u8_f32"
        case (.int64, .bool): name = "cast_i64_u8"
        case (.int32, .bool): name = "cast_i32_u8"
        case (.bool, .int64): name = "cast_u8_i64"
        case (.bool, .int32): name = "cast_u8_i32"
        case (.int64, .int32): name = "cast_i64_i32"
        case (.int32, .int64): name = "cast_i32_i64"
        // float16 models: half storage, float32 arithmetic (the runtime widens nodes around these casts).
        case (.float16, .float32): name = "cast_f16_f32"
        case (.float32, .float16): name = "cast_f32_f16"
        case (.bfloat16, .float32): name = "cast_bf16_f32"
        case (.float32, .bfloat16): name = "cast_f32_bf16"
        default:
            throw RuntimeError.unsupportedAttribute(
                node: node.step.node.displayName, detail: "Cast from \(from) to \(to) on the GPU")
        }
        let (xb, xo) = try backend.arguments(for: x, elementBytes: from.byteSize)
        let (yb, yo) = try backend.arguments(for: y, elementBytes: to.byteSize)
        return try backend.kernel(
            name, arguments: [xb, xo, yb, yo, .int(Int32(count))],
            global: [count])
    }

    static func makeSoftmax(_ node: BoundNode, _ backend: any GPUKernelHost) throws -> any Kernel {
        let x = try node.inputs[0].unwrap(node, "input")
        let y = try firstOutput(node)
        let rank = x.type.shape.rank
        let raw = try node.step.node.int("axis", default: node.step.opset >= 13 ? -1 : 1)
        let axis = raw < 0 ? raw + rank : raw
        let dims = x.type.shape.dimensions
        guard (0..<max(rank, 1)).contains(axis) else {
            throw RuntimeError.invalidNode(node: node.step.node.displayName, detail: "axis \(raw) out of range")
        }
        // Before opset 13 the input is a matrix split at axis; from 13 on, one axis of it.
        let outer = dims[..<min(axis, dims.count)].reduce(1, *)
        let n = node.step.opset < 13 ? dims[min(axis, dims.count)...].reduce(1, *) : (rank == 0 ? 1 : dims[axis])
        let inner = node.step.opset < 13 || rank == 0 ? 1 : dims[(axis + 1)...].reduce(1, *)
        let storage = try Storage(node, backend, x, y)
        guard outer * inner > 0 && n > 0 else { return SequenceKernel(parts: []) }
        let (xb, xo) = try backend.arguments(for: x, elementBytes: storage.bytes),
            (yb, yo) = try backend.arguments(for: y, elementBytes: storage.bytes)
        return try backend.kernel(
            "softmax_axis" + storage.suffix,
            arguments: [
                xb, xo, yb, yo, .int(Int32(outer)), .int(Int32(n)), .int(Int32(inner)),
                .int(node.step.node.opType == "LogSoftmax" ? 1 : 0),
            ],
            global: [outer * inner])
    }

    static func makeLayerNorm(_ node: BoundNode, _ backend: any GPUKernelHost) throws -> any Kernel {
        let x = try node.inputs[0].unwrap(node, "X"), scale = try node.inputs[1].unwrap(node, "Scale")
        let bias = node.inputs.count > 2 ? node.inputs[2] : nil
        let y = try firstOutput(node)
        let rank = x.type.shape.rank
        let raw = try node.step.node.int("axis", default: -1)
        let axis = raw < 0 ? raw + rank : raw
        let dims = x.type.shape.dimensions
        let rows = dims[..<axis].reduce(1, *), n = dims[axis...].reduce(1, *)
        guard scale.type.shape.elementCount == n, (bias?.type.shape.elementCount ?? n) == n else {
            throw RuntimeError.unsupportedAttribute(
                node: node.step.node.displayName, detail: "broadcast scale or bias on the GPU")
        }
        let epsilon = try node.step.node.float("epsilon", default: 1e-5)
        let storage = try Storage(node, backend, [x, scale, y] + (bias.map { [$0] } ?? []))
        // The optional mean and InvStdDev outputs (float32) come from the float32 kernels: a narrow node with them
        // runs widened.
        guard storage.bytes == 4 || node.outputs.count == 1 else {
            throw unsupported(node, "LayerNormalization's statistics outputs on \(x.type.dtype)")
        }
        let bytes = storage.bytes
        let (xb, xo) = try backend.arguments(for: x, elementBytes: bytes),
            (sb, so) = try backend.arguments(for: scale, elementBytes: bytes),
            (yb, yo) = try backend.arguments(for: y, elementBytes: bytes)
        let (bb, bo) = try backend.arguments(for: bias ?? scale, elementBytes: bytes)
        let normalize = try backend.kernel(
            "layernorm_rows" + storage.suffix,
            arguments: [
                xb, xo, sb, so, bb, bo, .int(bias == nil ? 0 : 1), yb, yo, .int(Int32(rows)), .int(Int32(n)),
                .float(epsilon),
            ],
            global: [rows])
        guard node.outputs.count > 1 else { return normalize }
        // Mean, and InvStdDev when the node has that output.
        let hasInv = node.outputs.count > 2
        let (mb, mo) = try backend.arguments(for: node.outputs[1])
        let (ib, io) = try backend.arguments(for: hasInv ? node.outputs[2] : node.outputs[1])
        let statistics = try backend.kernel(
            "layernorm_stats",
            arguments: [
                xb, xo, mb, mo, ib, io, .int(hasInv ? 1 : 0), .int(Int32(rows)), .int(Int32(n)), .float(epsilon),
            ],
            global: [rows])
        return SequenceKernel(parts: [normalize, statistics])
    }
}
