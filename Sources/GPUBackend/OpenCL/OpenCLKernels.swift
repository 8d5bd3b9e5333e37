import InferenceGraph
import InferenceRuntime
import InferenceTensor

/// One argument of a kernel launch.
enum KernelArgument {
    /// An OpenCL memory object.
    case buffer(OpaquePointer)
    /// A CUDA device address.
    case address(UInt64)
    case int(Int32)
    case float(Float)
}

/// A kernel of the built program with its arguments set once at plan time; `run` only enqueues it.
final class OpenCLNodeKernel: Kernel {
    private let backend: OpenCLBackend
    private let kernel: OpaquePointer
    private let global: [Int]
    private let local: [Int]?
    /// Keeps metadata buffers alive as long as the kernel refers to them.
    private let retained: [AnyObject]

    init(
        backend: OpenCLBackend, name: String, arguments: [KernelArgument], global: [Int], local: [Int]? = nil,
        retained: [AnyObject] = []
    ) throws {
        self.backend = backend
        self.kernel = try backend.makeKernel(name)
        // With a work-group size, whole groups: the global size rounded up in every dimension.
        self.global = global.enumerated().map { axis, size in
            let group = local.map { axis < $0.count ? max($0[axis], 1) : 1 } ?? 1
            return (max(size, 1) + group - 1) / group * group
        }
        self.local = local.map { sizes in global.indices.map { $0 < sizes.count ? max(sizes[$0], 1) : 1 } }
        self.retained = retained
        for (index, argument) in arguments.enumerated() {
            let status: Int32
            switch argument {
            case .buffer(let memory):
                var value: OpaquePointer? = memory
                status = backend.cl.clSetKernelArg(kernel, UInt32(index), MemoryLayout<OpaquePointer>.size, &value)
            case .address:
                throw RuntimeError.device("a CUDA address was passed to an OpenCL kernel")
            case .int(var value):
                status = backend.cl.clSetKernelArg(kernel, UInt32(index), 4, &value)
            case .float(var value):
                status = backend.cl.clSetKernelArg(kernel, UInt32(index), 4, &value)
            }
            try backend.cl.check(status, "clSetKernelArg(\(name), \(index))")
        }
    }

    func run() throws {
        try global.withUnsafeBufferPointer { size in
            try (local ?? []).withUnsafeBufferPointer { group in
                try backend.cl.check(
                    backend.cl.clEnqueueNDRangeKernel(
                        backend.queue, kernel, UInt32(size.count), nil, size.baseAddress,
                        local == nil ? nil : group.baseAddress, 0, nil, nil),
                    "clEnqueueNDRangeKernel")
            }
        }
    }
}

/// The OpenCL backend's kernel table (float32). Operators not listed here run only where the planner
/// folds them on the CPU (shape computations); `inference inspect` and errors list the difference.
public enum GPUKernelTable {
    /// Operator names the OpenCL backend has kernels for.
    public static var operatorNames: [String] { registry.operatorNames }

    static let registry: KernelRegistry = {
        var table: [KernelRegistration] = []
        let floats: Set<DType> = [.float32]
        func add(
            _ ops: [String], dtypes: Set<DType> = floats,
            _ make: @escaping @Sendable (BoundNode, any GPUKernelHost) throws -> any Kernel
        ) {
            for op in ops {
                table.append(
                    KernelRegistration(op, dtypes: dtypes) { node, backend in
                        guard let backend = backend as? any GPUKernelHost else {
                            throw RuntimeError.device("GPU kernel on a non-GPU backend")
                        }
                        try requireInt32Extents(node)
                        return try make(node, backend)
                    })
            }
        }
        add(["Gemm"], makeGemm)
        add(["MatMul"], makeMatMul)
        add(Array(unaryCodes.keys)) { node, backend in
            // An operator without a code is an error at plan time, never a silent identity.
            guard let code = unaryCodes[node.step.node.opType] else {
                throw unsupported(node, "no GPU code for \(node.step.node.opType)")
            }
            return try makeUnary(node, backend, code: code)
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
        add(["Add", "Sub", "Mul", "Div", "Pow", "Mod", "PRelu"], makeBinary)
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
        add(["Cast", "CastLike"], dtypes: [.float32, .int32, .int64, .bool, .float16, .bfloat16], makeCast)
        add(["Softmax", "LogSoftmax"], makeSoftmax)
        // Quantized operators (8-bit data, float32 scales); other forms take the host fallback.
        add(["QuantizeLinear"], dtypes: [.float32], makeQuantize)
        add(["DequantizeLinear"], dtypes: [.int8, .uint8], makeDequantize)
        add(["MatMulInteger", "QLinearMatMul"], dtypes: [.int8, .uint8], makeIntegerMatMul)
        add(["LayerNormalization"], makeLayerNorm)
        add(["Conv"], makeConv)
        add(["MaxPool", "AveragePool", "LpPool"], makePool)
        add(["GlobalAveragePool", "GlobalMaxPool"], makeGlobalPool)
        add(["BatchNormalization"], makeBatchNorm)
        add(["LSTM", "GRU"], makeRecurrent)
        // If reads its condition back and runs a branch session on the same device.
        table.append(KernelRegistration("If", dtypes: [.bool]) { try IfKernel(node: $0, backend: $1) })
        return KernelRegistry(table)
    }()

    static let unaryCodes: [String: Int] = [
        "Relu": 0, "Sigmoid": 1, "Tanh": 2, "Exp": 3, "Log": 4, "Sqrt": 5, "Neg": 6, "Abs": 7, "Erf": 8, "Gelu": 9,
        "LeakyRelu": 10, "Reciprocal": 12, "Floor": 13, "Ceil": 14, "HardSigmoid": 15, "Elu": 16, "HardSwish": 17,
        "Softplus": 18, "Sin": 19, "Cos": 20, "Round": 21, "Selu": 22, "Celu": 23, "ThresholdedRelu": 24, "Mish": 25,
        "Softsign": 26, "Sign": 27, "Tan": 31, "Asin": 32, "Acos": 33, "Atan": 34, "Sinh": 35, "Cosh": 36, "Asinh": 37,
        "Acosh": 38, "Atanh": 39, "Shrink": 40, "Swish": 41,
    ]

    /// Identity and the Reshape family: a copy of the bytes (4-byte elements through `unary`'s identity).
    static func makeCopy(_ node: BoundNode, _ backend: any GPUKernelHost) throws -> any Kernel {
        let x = try node.inputs.first.flatMap { $0 }.unwrap(node, "input")
        let y = try firstOutput(node)
        guard x.type.dtype.byteSize != 4 else { return try makeUnary(node, backend, code: 11) }
        let count = min(x.type.byteCount, y.type.byteCount)
        guard count > 0 else { return SequenceKernel(parts: []) }
        let (xb, xo) = try backend.arguments(for: x, elementBytes: 1),
            (yb, yo) = try backend.arguments(for: y, elementBytes: 1)
        return try backend.kernel("copy_bytes", arguments: [xb, xo, yb, yo, .int(Int32(count))], global: [count])
    }

    static func makeUnary(_ node: BoundNode, _ backend: any GPUKernelHost, code: Int) throws -> any Kernel {
        let x = try node.inputs.first.flatMap { $0 }.unwrap(node, "input")
        let y = try firstOutput(node)
        let a = node.step.node
        var code = code
        if a.opType == "Gelu" {
            switch try a.string("approximate", default: "none") {
            case "none": break
            case "tanh": code = 30
            case let other: throw RuntimeError.unsupportedAttribute(node: a.displayName, detail: "approximate=\(other)")
            }
        }
        let alpha: Float, beta: Float
        switch a.opType {
        case "LeakyRelu": (alpha, beta) = (try a.float("alpha", default: 0.01), 0)
        case "HardSigmoid": (alpha, beta) = (try a.float("alpha", default: 0.2), try a.float("beta", default: 0.5))
        case "Selu":
            alpha = try a.float("alpha", default: 1.67326319217681884765625)
            beta = try a.float("gamma", default: 1.05070102214813232421875)
        case "Shrink": (alpha, beta) = (try a.float("lambd", default: 0.5), try a.float("bias", default: 0))
        default: (alpha, beta) = (try a.float("alpha", default: 1), 0)
        }
        return try unaryLaunch(backend, x: x, y: y, code: code, alpha: alpha, beta: beta)
    }

    /// One `unary` launch (y may be x: every work-item reads and writes its own element).
    static func unaryLaunch(
        _ backend: any GPUKernelHost, x: BoundValue, y: BoundValue, code: Int, alpha: Float, beta: Float
    ) throws -> any Kernel {
        let (xb, xo) = try backend.arguments(for: x), (yb, yo) = try backend.arguments(for: y)
        let count = y.type.shape.elementCount
        return try backend.kernel(
            "unary",
            arguments: [xb, xo, yb, yo, .int(Int32(count)), .int(Int32(code)), .float(alpha), .float(beta)],
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
            beta: beta, offsets: [(0, 0)])
    }

    /// One `gemm_tiled` launch: Y[s] = alpha · op(A) · op(B) (+ beta · C) for each batch member s, reading A and B
    /// at the element offsets `offsets[s]`; Y's members are m·n apart.
    static func tiledGemm(
        _ backend: any GPUKernelHost, a: BoundValue, b: BoundValue, c: BoundValue? = nil, y: BoundValue, m: Int,
        n: Int, k: Int, transA: Bool = false, transB: Bool = false, alpha: Float = 1, beta: Float = 0,
        offsets: [(Int, Int)]
    ) throws -> any Kernel {
        guard m * n * offsets.count > 0 else { return SequenceKernel(parts: []) }
        let (metaArgument, metaKeep) = try backend.metadata(offsets.flatMap { [Int32($0.0), Int32($0.1)] })
        let (ab, ao) = try backend.arguments(for: a), (bb, bo) = try backend.arguments(for: b),
            (yb, yo) = try backend.arguments(for: y)
        let (cb, co) = try backend.arguments(for: c ?? a)
        let cDims = c?.type.shape.dimensions ?? [1]
        let cRows = cDims.count == 2 ? cDims[0] : 1
        let cCols = cDims.last ?? 1
        return try backend.kernel(
            "gemm_tiled",
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
            backend, a: a, b: b, y: y, m: m, n: n, k: k, offsets: Array(zip(aOffsets, bOffsets)))
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
        try requireFloat32(node, a, b)
        let op = node.step.node.opType
        guard
            var code = ["Add": 0, "Sub": 1, "Mul": 2, "Div": 3, "Pow": 4, "Max": 5, "Min": 6, "PRelu": 9, "Mod": 8][op]
        else { throw unsupported(node, "no GPU binary code for \(op)") }
        if try op == "Mod" && node.step.node.int("fmod", default: 0) != 0 { code = 7 }
        return try binaryLaunch(backend, a: a, b: b, y: y, code: code)
    }

    /// One broadcasting `binary` launch.
    static func binaryLaunch(
        _ backend: any GPUKernelHost, a: BoundValue, b: BoundValue, y: BoundValue, code: Int
    ) throws -> any Kernel {
        let rank = y.type.shape.rank
        let (metaArgument, metaKeep) = try backend.metadata(
            [Int32(rank)] + y.type.shape.dimensions.map { Int32($0) } + broadcastStrides(a.type.shape, rank: rank)
                + broadcastStrides(b.type.shape, rank: rank))
        let (ab, ao) = try backend.arguments(for: a), (bb, bo) = try backend.arguments(for: b),
            (yb, yo) = try backend.arguments(for: y)
        let count = y.type.shape.elementCount
        return try backend.kernel(
            "binary",
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
        func constant(_ index: Int, _ what: String) throws -> [Int]? {
            guard index < node.inputs.count, let value = node.inputs[index] else { return nil }
            guard let tensor = value.constant else {
                throw RuntimeError.unsupportedAttribute(
                    node: node.step.node.displayName, detail: "Slice \(what) computed at run time on the GPU")
            }
            return try tensor.integerValues()
        }
        let starts: [Int], ends: [Int], axes: [Int]?, steps: [Int]?
        if node.step.opset >= 10 {
            starts = try constant(1, "starts") ?? []
            ends = try constant(2, "ends") ?? []
            axes = try constant(3, "axes")
            steps = try constant(4, "steps")
        } else {
            starts = try node.step.node.ints("starts") ?? []
            ends = try node.step.node.ints("ends") ?? []
            axes = try node.step.node.ints("axes")
            steps = nil
        }
        guard
            let p = SliceParameters.resolve(shape: x.type.shape, starts: starts, ends: ends, axes: axes, steps: steps)
        else {
            throw RuntimeError.invalidNode(node: node.step.node.displayName, detail: "invalid slice parameters")
        }
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
        func bytes(_ type: DType) -> Int { type == .int64 ? 8 : (type == .bool ? 1 : (type.byteSize == 2 ? 2 : 4)) }
        let (xb, xo) = try backend.arguments(for: x, elementBytes: bytes(from))
        let (yb, yo) = try backend.arguments(for: y, elementBytes: bytes(to))
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
        guard outer * inner > 0 && n > 0 else { return SequenceKernel(parts: []) }
        let (xb, xo) = try backend.arguments(for: x), (yb, yo) = try backend.arguments(for: y)
        return try backend.kernel(
            "softmax_axis",
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
        let (xb, xo) = try backend.arguments(for: x), (sb, so) = try backend.arguments(for: scale),
            (yb, yo) = try backend.arguments(for: y)
        let (bb, bo) = try backend.arguments(for: bias ?? scale)
        let normalize = try backend.kernel(
            "layernorm_rows",
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

extension GPUKernelTable {
    static func shapeContext(_ node: BoundNode) -> ShapeInferenceContext {
        ShapeInferenceContext(
            node: node.step.node, opset: node.step.opset, inputs: node.inputs.map { $0?.type },
            constants: node.inputs.map { $0?.constant })
    }

    /// A window geometry over up to three spatial axes as the 3-D kernels read it: unit leading axes for 1-D
    /// and 2-D (size, window, stride and dilation 1, no padding).
    static func lifted(_ g: ConvGeometry) -> ConvGeometry {
        func lift(_ values: [Int], _ fill: Int) -> [Int] {
            [Int](repeating: fill, count: max(0, 3 - values.count)) + values
        }
        var lifted = g
        lifted.input = lift(g.input, 1)
        lifted.kernel = lift(g.kernel, 1)
        lifted.strides = lift(g.strides, 1)
        lifted.dilations = lift(g.dilations, 1)
        lifted.padsBegin = lift(g.padsBegin, 0)
        lifted.padsEnd = lift(g.padsEnd, 0)
        lifted.output = lift(g.output, 1)
        return lifted
    }

    /// The conv3d / conv_transpose3d metadata: [C, D, H, W, M, OD, OH, OW, KD, KH, KW, strides, dilations, pads,
    /// group] of a lifted geometry.
    static func convolutionMeta(_ g: ConvGeometry, channels: Int, outChannels: Int, group: Int) -> [Int] {
        [channels] + g.input + [outChannels] + g.output + g.kernel + g.strides + g.dilations + g.padsBegin + [group]
    }

    static func makeConv(_ node: BoundNode, _ backend: any GPUKernelHost) throws -> any Kernel {
        let x = try node.inputs[0].unwrap(node, "X"), w = try node.inputs[1].unwrap(node, "W")
        let bias = node.inputs.count > 2 ? node.inputs[2] : nil
        let y = try firstOutput(node)
        let rank = x.type.shape.rank
        guard (3...5).contains(rank) else { throw unsupported(node, "\(rank - 2)-D convolution on the GPU") }
        let kernel = try node.step.node.ints("kernel_shape") ?? Array(w.type.shape.dimensions.dropFirst(2))
        let g = lifted(
            try ConvGeometry.forward(
                shapeContext(node), input: Array(x.type.shape.dimensions.dropFirst(2)), kernel: kernel))
        if backend.convolution.asGemm, try node.step.node.int("group", default: 1) == 1 {
            return try convolutionAsGemm(backend, node, geometry: g, x: x, w: w, bias: bias, y: y)
        }
        return try convolutionLaunch(
            backend, node, "conv3d", geometry: g, x: x, w: w, bias: bias, y: y, outChannels: w.type.shape[0])
    }

    /// A view of part of a float32 value: `shape` from element `offset` on.
    static func view(_ value: BoundValue, offset: Int, shape: [Int]) -> BoundValue {
        let count = shape.reduce(1, *)
        return BoundValue(
            type: TensorType(dtype: .float32, shape: Shape(shape)),
            slice: BufferSlice(
                buffer: value.slice.buffer, offset: value.slice.offset + offset * 4, byteCount: count * 4),
            constant: nil)
    }

    /// Conv (group 1) as im2col + GEMM: the columns of as many images as fit the scratch limit at a time, then
    /// Y[n] = W[M, C·taps] · cols[n] as one batched GEMM (cuBLAS where found, else the kernel source's matmul),
    /// the bias broadcast into Y first (cuBLAS accumulates onto it) or added after.
    static func convolutionAsGemm(
        _ backend: any GPUKernelHost, _ node: BoundNode, geometry g: ConvGeometry, x: BoundValue, w: BoundValue,
        bias: BoundValue?, y: BoundValue
    ) throws -> any Kernel {
        let images = x.type.shape[0], channels = x.type.shape[1], filters = w.type.shape[0]
        let depth = channels * g.kernel.reduce(1, *), spatial = g.output.reduce(1, *)
        let imageColumns = depth * spatial
        let imageInput = channels * g.input.reduce(1, *), imageOutput = filters * spatial
        guard images * imageOutput > 0 else { return SequenceKernel(parts: []) }
        guard imageColumns > 0 else {
            throw unsupported(node, "a convolution with an empty window on the GPU")
        }
        let chunk = max(1, min(images, backend.convolution.scratchBytes / (imageColumns * 4)))
        let scratchBytes = chunk * imageColumns * 4
        let scratch = try backend.allocate(bytes: scratchBytes)
        let columns = BoundValue(
            type: TensorType(dtype: .float32, shape: Shape([chunk * imageColumns])),
            slice: BufferSlice(buffer: scratch, offset: 0, byteCount: scratchBytes), constant: nil)
        let (metaArgument, metaKeep) = try backend.metadata(
            convolutionMeta(g, channels: channels, outChannels: filters, group: 1).map { Int32($0) })
        var parts: [any Kernel] = []
        let retained: [AnyObject] = [scratch, metaKeep]
        let library = backend.hasLibraryGemm
        if library, let bias {
            parts.append(
                try stridedCopy(
                    backend, x: bias, y: y, dims: [images, filters, spatial], xStrides: [0, 1, 0],
                    yStrides: [imageOutput, spatial, 1]))
        }
        for first in stride(from: 0, to: images, by: chunk) {
            let count = min(chunk, images - first)
            let input = view(x, offset: first * imageInput, shape: [count * imageInput])
            let output = view(y, offset: first * imageOutput, shape: [count, filters, spatial])
            let (xb, xo) = try backend.arguments(for: input), (cb, co) = try backend.arguments(for: columns)
            parts.append(
                try backend.kernel(
                    "im2col3d", arguments: [xb, xo, cb, co, .int(Int32(count * imageColumns)), metaArgument],
                    global: [count * imageColumns]))
            let gemm = LibraryGemm(
                a: w, b: columns, y: output, m: filters, n: spatial, k: depth, beta: bias == nil ? 0 : 1,
                batch: count, strideA: 0, strideB: imageColumns, strideY: imageOutput)
            if library, let kernel = try backend.libraryGemm(gemm, prologue: nil) {
                parts.append(kernel)
                continue
            }
            parts.append(
                try tiledGemm(
                    backend, a: w, b: columns, y: output, m: filters, n: spatial, k: depth,
                    offsets: (0..<count).map { (0, $0 * imageColumns) }))
            if let bias {
                let channelBias = BoundValue(
                    type: TensorType(dtype: .float32, shape: Shape([filters, 1])), slice: bias.slice, constant: nil)
                parts.append(try binaryLaunch(backend, a: output, b: channelBias, y: output, code: 0))
            }
        }
        return RetainingKernel(SequenceKernel(parts: parts), retained: retained)
    }

    /// One conv3d / conv_transpose3d launch over a lifted geometry, after checking the groups.
    static func convolutionLaunch(
        _ backend: any GPUKernelHost, _ node: BoundNode, _ name: String, geometry g: ConvGeometry, x: BoundValue,
        w: BoundValue, bias: BoundValue?, y: BoundValue, outChannels: Int
    ) throws -> any Kernel {
        let group = try node.step.node.int("group", default: 1)
        let channels = x.type.shape[1]
        guard group > 0, channels % group == 0, outChannels % group == 0 else {
            throw RuntimeError.invalidNode(
                node: node.step.node.displayName, detail: "group \(group) does not divide the channels")
        }
        let count = y.type.shape.elementCount
        guard count > 0 else { return SequenceKernel(parts: []) }
        let (metaArgument, metaKeep) = try backend.metadata(
            convolutionMeta(g, channels: channels, outChannels: outChannels, group: group).map { Int32($0) })
        let (xb, xo) = try backend.arguments(for: x), (wb, wo) = try backend.arguments(for: w),
            (yb, yo) = try backend.arguments(for: y)
        let (bb, bo) = try backend.arguments(for: bias ?? w)
        return try backend.kernel(
            name,
            arguments: [xb, xo, wb, wo, bb, bo, .int(bias == nil ? 0 : 1), yb, yo, .int(Int32(count)), metaArgument],
            global: [count], retained: [metaKeep])
    }

    static func makePool(_ node: BoundNode, _ backend: any GPUKernelHost) throws -> any Kernel {
        let x = try node.inputs[0].unwrap(node, "X")
        let y = try firstOutput(node)
        let rank = x.type.shape.rank
        guard (3...5).contains(rank) else { throw unsupported(node, "\(rank - 2)-D pooling on the GPU") }
        let a = node.step.node
        guard let kernel = try a.ints("kernel_shape") else {
            throw RuntimeError.invalidNode(node: a.displayName, detail: "kernel_shape is required")
        }
        let g = lifted(
            try ConvGeometry.forward(
                shapeContext(node), input: Array(x.type.shape.dimensions.dropFirst(2)), kernel: kernel,
                ceilMode: try a.int("ceil_mode", default: 0) != 0))
        let indices = a.opType == "MaxPool" && node.outputs.count > 1 ? node.outputs[1] : nil
        let meta =
            g.input + g.output + g.kernel + g.strides + g.dilations + g.padsBegin + g.padsEnd + [
                a.opType == "MaxPool" ? 1 : 0, try a.int("count_include_pad", default: 0),
                try a.int("storage_order", default: 0), a.opType == "LpPool" ? try a.int("p", default: 2) : 0,
            ]
        if a.opType == "LpPool", !(1...64).contains(meta[meta.count - 1]) {
            throw RuntimeError.invalidNode(node: a.displayName, detail: "p must be between 1 and 64")
        }
        let count = y.type.shape.elementCount
        guard count > 0 else { return SequenceKernel(parts: []) }
        let (metaArgument, metaKeep) = try backend.metadata(meta.map { Int32($0) })
        let (xb, xo) = try backend.arguments(for: x), (yb, yo) = try backend.arguments(for: y)
        let (ib, io) = try backend.arguments(for: indices ?? y, elementBytes: indices == nil ? 4 : 8)
        return try backend.kernel(
            "pool3d",
            arguments: [xb, xo, yb, yo, ib, io, .int(indices == nil ? 0 : 1), .int(Int32(count)), metaArgument],
            global: [count], retained: [metaKeep])
    }

    static func makeGlobalPool(_ node: BoundNode, _ backend: any GPUKernelHost) throws -> any Kernel {
        let x = try node.inputs[0].unwrap(node, "X")
        let y = try firstOutput(node)
        let planes = x.type.shape[0] * x.type.shape[1]
        let spatial = x.type.shape.dimensions.dropFirst(2).reduce(1, *)
        let (xb, xo) = try backend.arguments(for: x), (yb, yo) = try backend.arguments(for: y)
        return try backend.kernel(
            "global_pool",
            arguments: [
                xb, xo, yb, yo, .int(Int32(planes)), .int(Int32(spatial)),
                .int(node.step.node.opType == "GlobalMaxPool" ? 1 : 0),
            ],
            global: [planes])
    }

    static func makeBatchNorm(_ node: BoundNode, _ backend: any GPUKernelHost) throws -> any Kernel {
        guard node.outputs.count == 1, try node.step.node.int("training_mode", default: 0) == 0 else {
            throw RuntimeError.unsupportedAttribute(node: node.step.node.displayName, detail: "training mode")
        }
        let x = try node.inputs[0].unwrap(node, "X")
        let parameters = try (1...4).map { try backend.arguments(for: node.inputs[$0].unwrap(node, "parameter \($0)")) }
        let y = try firstOutput(node)
        let (xb, xo) = try backend.arguments(for: x), (yb, yo) = try backend.arguments(for: y)
        let count = y.type.shape.elementCount
        let channels = x.type.shape[1]
        let spatial = x.type.shape.dimensions.dropFirst(2).reduce(1, *)
        let epsilon = try node.step.node.float("epsilon", default: 1e-5)
        var arguments: [KernelArgument] = [xb, xo]
        for (buffer, offset) in parameters { arguments += [buffer, offset] }
        arguments += [yb, yo, .int(Int32(count)), .int(Int32(channels)), .int(Int32(spatial)), .float(epsilon)]
        return try backend.kernel("batchnorm", arguments: arguments, global: [count])
    }
}

extension Optional where Wrapped == BoundValue {
    func unwrap(_ node: BoundNode, _ what: String) throws -> BoundValue {
        guard let value = self else {
            throw RuntimeError.invalidNode(node: node.step.node.displayName, detail: "missing input \(what)")
        }
        return value
    }
}

/// Several launches run as one node (Concat and Split copy each part separately).
final class SequenceKernel: Kernel {
    let parts: [any Kernel]
    init(parts: [any Kernel]) { self.parts = parts }
    func run() throws { for part in parts { try part.run() } }
}
