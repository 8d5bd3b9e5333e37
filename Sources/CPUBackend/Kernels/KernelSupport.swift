import CKernels
import InferenceGraph
import InferenceRuntime
import InferenceTensor

/// A kernel whose work was bound at creation into one closure (pointers, sizes and attributes captured).
final class ClosureKernel: Kernel {
    private let body: () throws -> Void

    init(_ body: @escaping () throws -> Void) { self.body = body }

    func run() throws { try body() }
}

extension BoundNode {
    var name: String { step.node.displayName }
    var attributes: Node { step.node }
    var opset: Int { step.opset }

    func fail(_ detail: String) -> RuntimeError { .invalidNode(node: name, detail: detail) }

    /// A required input. - Throws: `RuntimeError.invalidNode` when it is omitted.
    func input(_ index: Int) throws -> BoundValue {
        guard index < inputs.count, let value = inputs[index] else { throw fail("required input \(index) is missing") }
        return value
    }

    func optionalInput(_ index: Int) -> BoundValue? { index < inputs.count ? inputs[index] : nil }

    /// A required output. - Throws: `RuntimeError.invalidNode` when the node has fewer outputs.
    func output(_ index: Int) throws -> BoundValue {
        guard index < outputs.count else { throw fail("output \(index) is missing") }
        return outputs[index]
    }

    /// The values of a constant integer input (weights, folded values); nil when it is not constant.
    func constantInts(_ index: Int) throws -> [Int]? {
        guard let value = optionalInput(index), let tensor = value.constant else { return nil }
        return try tensor.integerValues()
    }

    /// The activation planning fused into this node (`FusionRules.activationAttribute`), none when absent.
    /// - Throws: `RuntimeError.invalidNode` for an activation the CPU kernels cannot apply.
    func fusedActivation() throws -> FusedActivation {
        switch try attributes.string(FusionRules.activationAttribute, default: "") {
        case "": return .none
        case "Relu": return FusedActivation(kind: ck_activation_relu, low: 0, high: 0)
        case "Swish": return FusedActivation(kind: ck_activation_swish, low: 0, high: 0)
        case "Gelu": return FusedActivation(kind: ck_activation_gelu, low: 0, high: 0)
        case "HardSwish": return FusedActivation(kind: ck_activation_hard_swish, low: 0, high: 0)
        case "Clip":
            return FusedActivation(
                kind: ck_activation_clip, low: try attributes.float(FusionRules.clipLowAttribute, default: -.infinity),
                high: try attributes.float(FusionRules.clipHighAttribute, default: .infinity))
        case let other: throw fail("cannot apply a fused \(other)")
        }
    }

    /// A context for reusing the graph's shape helpers (attribute and input resolution) in kernels.
    var shapeContext: ShapeInferenceContext {
        ShapeInferenceContext(
            node: step.node, opset: step.opset, inputs: inputs.map { $0?.type }, constants: inputs.map { $0?.constant })
    }
}

extension BoundValue {
    var shape: Shape { type.shape }
    var count: Int { type.shape.elementCount }

    func pointer<T>(_: T.Type) throws -> UnsafeMutablePointer<T> {
        try slice.hostPointer().bindMemory(to: T.self, capacity: max(count, 1))
    }

    func raw() throws -> UnsafeMutableRawPointer { try slice.hostPointer() }
}

/// Row-major strides of a dimension list, in elements.
func rowMajorStrides(_ dims: [Int]) -> [Int] { ShapeInference.rowMajorStrides(dims) }

/// Calls `body` with each row-major multi-index of `dims` and a running flat index.
func forEachIndex(_ dims: [Int], _ body: (_ index: [Int], _ flat: Int) -> Void) {
    let count = dims.reduce(1, *)
    guard count > 0 else { return }
    var index = [Int](repeating: 0, count: dims.count)
    for flat in 0..<count {
        body(index, flat)
        var axis = dims.count - 1
        while axis >= 0 {
            index[axis] += 1
            if index[axis] < dims[axis] { break }
            index[axis] = 0
            axis -= 1
        }
    }
}

/// For every output element, the element offset in an operand broadcast to the output shape.
func broadcastOffsets(operand: Shape, output: Shape) -> [Int] {
    let rank = output.rank
    let padded = [Int](repeating: 1, count: rank - operand.rank) + operand.dimensions
    let strides = rowMajorStrides(padded)
    var offsets = [Int](repeating: 0, count: output.elementCount)
    forEachIndex(output.dimensions) { index, flat in
        var offset = 0
        for axis in 0..<rank where padded[axis] != 1 { offset += index[axis] * strides[axis] }
        offsets[flat] = offset
    }
    return offsets
}

/// Element types the numeric kernels are generic over, with conversions to and from Double.
protocol KernelScalar: TensorElement, Comparable {
    init(kernelDouble value: Double)
    var kernelDouble: Double { get }
    static var kernelZero: Self { get }
}

extension Float: KernelScalar {
    init(kernelDouble value: Double) { self = Float(value) }
    var kernelDouble: Double { Double(self) }
    static var kernelZero: Float { 0 }
}

extension Double: KernelScalar {
    init(kernelDouble value: Double) { self = value }
    var kernelDouble: Double { self }
    static var kernelZero: Double { 0 }
}

extension BFloat16: KernelScalar, Comparable {
    init(kernelDouble value: Double) { self.init(Float(value)) }
    var kernelDouble: Double { Double(float) }
    static var kernelZero: BFloat16 { BFloat16(bitPattern: 0) }
    public static func < (a: BFloat16, b: BFloat16) -> Bool { a.float < b.float }
}

extension Float16: KernelScalar {
    init(kernelDouble value: Double) { self = Float16(Float(value)) }
    var kernelDouble: Double { Double(Float(self)) }
    static var kernelZero: Float16 { 0 }
}

/// Integer element types: conversions from Double saturate, and NaN becomes 0.
protocol KernelInteger: KernelScalar, FixedWidthInteger {}

extension KernelInteger {
    init(kernelDouble value: Double) {
        if value.isNaN {
            self = 0
        } else if value >= Double(Self.max) {
            self = Self.max
        } else if value <= Double(Self.min) {
            self = Self.min
        } else {
            self = Self(value)
        }
    }
    var kernelDouble: Double { Double(self) }
    static var kernelZero: Self { 0 }
}

extension Int8: KernelInteger {}
extension Int16: KernelInteger {}
extension Int32: KernelInteger {}
extension Int64: KernelInteger {}
extension UInt8: KernelInteger {}
extension UInt16: KernelInteger {}
extension UInt32: KernelInteger {}
extension UInt64: KernelInteger {}

/// Calls `body` with the Swift type of a dtype (all numeric dtypes; bool excluded).
func withScalarType<R>(_ dtype: DType, _ body: (any KernelScalar.Type) throws -> R) throws -> R? {
    switch dtype {
    case .float32: return try body(Float.self)
    case .float64: return try body(Double.self)
    case .float16: return try body(Float16.self)
    case .bfloat16: return try body(BFloat16.self)
    case .int8: return try body(Int8.self)
    case .int16: return try body(Int16.self)
    case .int32: return try body(Int32.self)
    case .int64: return try body(Int64.self)
    case .uint8: return try body(UInt8.self)
    case .uint16: return try body(UInt16.self)
    case .uint32: return try body(UInt32.self)
    case .uint64: return try body(UInt64.self)
    case .bool: return nil
    }
}

let floatTypes: Set<DType> = [.float32]
let numericTypes: Set<DType> = [
    .float32, .float64, .float16, .int8, .int16, .int32, .int64, .uint8, .uint16, .uint32, .uint64,
]
let allTypes: Set<DType> = Set(DType.allCases)

/// An activation fused into a producer's store: Relu, Clip with its bounds (Relu6), Swish (SiLU) or GELU (erf).
struct FusedActivation: Equatable {
    var kind: ck_activation
    var low: Float
    var high: Float

    static let none = FusedActivation(kind: ck_activation_none, low: 0, high: 0)

    var isNone: Bool { kind == ck_activation_none }

    /// The ONNX operator this activation stands for.
    var name: String {
        switch kind {
        case ck_activation_relu: "Relu"
        case ck_activation_clip: "Clip"
        case ck_activation_swish: "Swish"
        case ck_activation_gelu: "Gelu"
        case ck_activation_hard_swish: "HardSwish"
        default: "none"
        }
    }

    /// The GEMM epilogue applying this activation after the biases.
    func epilogue(rowBias: UnsafePointer<Float>?, columnBias: UnsafePointer<Float>?) -> ck_epilogue {
        ck_epilogue(row_bias: rowBias, col_bias: columnBias, activation: kind, low: low, high: high)
    }

    /// Applies the activation over a finished output, for kernels without it in their store.
    func apply(_ y: UnsafeMutablePointer<Float>, count: Int) {
        if kind == ck_activation_relu {
            ck_relu(y, y, count)
        } else if kind == ck_activation_clip {
            ck_clip(y, y, count, low, high)
        } else if kind == ck_activation_swish {
            ck_swish(y, y, count, 1)
        } else if kind == ck_activation_gelu {
            ck_gelu(y, y, count)
        } else if kind == ck_activation_hard_swish {
            ck_hard_swish(y, y, count)
        }
    }
}

/// A kernel followed by its fused activation over the output, for kernels that do not apply it in their store;
/// large outputs split the pass across threads (EfficientNet's 16 -> 96 expansion at 112x112 spent 0.4 ms in a
/// Swish pass on one thread while the other waited).
final class ActivatedKernel: Kernel, DescribedKernel {
    private let inner: any Kernel
    private let y: UnsafeMutablePointer<Float>
    private let count: Int
    private let activation: FusedActivation
    private let parallel: ParallelFor
    private var task: ClosureTask?

    init(_ inner: any Kernel, output: BoundValue, activation: FusedActivation, parallel: ParallelFor) throws {
        self.inner = inner
        y = try output.pointer(Float.self)
        count = output.count
        self.activation = activation
        self.parallel = parallel
        if parallel.threads > 1 && count >= 1 << 15 {
            task = ClosureTask { [unowned self] _, begin, end in
                self.activation.apply(self.y + begin, count: end - begin)
            }
        }
    }

    func run() throws {
        try inner.run()
        if let task { parallel.run(task, count: count) } else { activation.apply(y, count: count) }
    }

    var kernelDescription: String {
        let name = (inner as? DescribedKernel)?.kernelDescription ?? String(describing: type(of: inner))
        return name + " + " + activation.name
    }
}
