import InferenceGraph
import InferenceTensor

/// One operator bound to its buffers. Created once per plan (parse attributes, resolve pointers, pack
/// weights); `run` is the hot path and must not allocate.
public protocol Kernel: AnyObject {
    /// Computes the node's outputs from its inputs. Work may still be in flight on the device on return;
    /// `Backend.synchronize` waits for it.
    /// - Throws: a backend error when the device reports one.
    func run() throws
    /// Whether the backend may record this kernel's work once and replay it (a CUDA graph): false for kernels
    /// that read results back to the host while they run (If).
    var replayable: Bool { get }
}

extension Kernel {
    public var replayable: Bool { true }
}

/// A kernel whose device work can find an error in user data (an index out of range) that it can only report once
/// the device has finished: the session calls `checkAfterRun` after every run's synchronize.
public protocol CheckedKernel: Kernel {
    /// - Throws: `RuntimeError.invalidNode` naming the node when its last run met bad data.
    func checkAfterRun() throws
}

/// Creates a kernel for a bound node. - Throws: `RuntimeError` when the node's attributes or types do
/// not fit the kernel.
public typealias KernelFactory = @Sendable (BoundNode, any Backend) throws -> any Kernel

/// One entry of a backend's kernel table: which operator, opsets and element types a factory handles.
public struct KernelRegistration: Sendable {
    public var opType: String
    public var domain: String
    public var opsets: ClosedRange<Int>
    public var dtypes: Set<DType>
    /// Whether the factory's own kernels for float16 and bfloat16 (of `dtypes`) are preferred to widening the
    /// node to the float32 kernel (`WidenedKernel`): true where the kernel reads and writes the narrow type
    /// itself with float32 arithmetic, which gives the widened kernel's bits with less memory traffic. A factory
    /// that throws an unsupported error for a node (mixed types, say) leaves it to the widened kernel.
    public var narrowNative: Bool
    public var make: KernelFactory

    public init(
        _ opType: String, domain: String = "", opsets: ClosedRange<Int> = 1...Int.max, dtypes: Set<DType>,
        narrowNative: Bool = false, make: @escaping KernelFactory
    ) {
        self.opType = opType
        self.domain = domain
        self.opsets = opsets
        self.dtypes = dtypes
        self.narrowNative = narrowNative
        self.make = make
    }
}

/// The table of kernels a backend supports, keyed by operator, domain, opset range and element type.
public struct KernelRegistry: Sendable {
    private var entries: [String: [KernelRegistration]] = [:]

    public init(_ registrations: [KernelRegistration] = []) {
        for registration in registrations { register(registration) }
    }

    private static func key(_ domain: String, _ opType: String) -> String {
        "\(domain == "ai.onnx" ? "" : domain):\(opType)"
    }

    public mutating func register(_ registration: KernelRegistration) {
        entries[Self.key(registration.domain, registration.opType), default: []].append(registration)
    }

    /// The registration for an operator at an opset and element type, if any.
    public func lookup(opType: String, domain: String, opset: Int, dtype: DType) -> KernelRegistration? {
        entries[Self.key(domain, opType)]?.first { $0.opsets.contains(opset) && $0.dtypes.contains(dtype) }
    }

    /// Whether any registration exists for the operator, regardless of opset and type.
    public func knows(opType: String, domain: String) -> Bool { entries[Self.key(domain, opType)] != nil }

    /// Every registration, sorted by operator name: what `inspect` and error messages list.
    public var registrations: [KernelRegistration] {
        entries.values.flatMap { $0 }.sorted { ($0.domain, $0.opType) < ($1.domain, $1.opType) }
    }

    /// The element type a node's kernel is looked up by: the type of the input that carries the data
    /// (the condition of Where and the indices of Gather are skipped; Cast and comparisons use input 0).
    public static func dispatchType(of step: PlannedStep, inputs: [BoundValue?], outputs: [BoundValue]) -> DType {
        let op = step.node.opType
        if op == "Where", inputs.count > 1, let x = inputs[1] { return x.type.dtype }
        if (op == "ConstantOfShape" || op == "Shape" || op == "Size"), let y = outputs.first { return y.type.dtype }
        return inputs.compactMap { $0 }.first?.type.dtype ?? outputs.first?.type.dtype ?? .float32
    }

    /// Operator names, sorted and unique.
    public var operatorNames: [String] {
        Array(Set(entries.values.flatMap { $0.map { $0.domain.isEmpty ? $0.opType : "\($0.domain).\($0.opType)" } }))
            .sorted()
    }
}

extension BoundNode {
    /// The node's operator parameters as the plan resolved them (`PlannedStep.parameters`), or resolved now from
    /// the bound values for a step that came without them.
    /// - Throws: what the operator's parser throws, or `RuntimeError.invalidNode` when the operator has no
    ///   parameters of type `T`.
    public func parameters<T: OperatorParameters>(_: T.Type) throws -> T {
        if let value = step.parameters as? T { return value }
        let context = ShapeInferenceContext(
            node: step.node, opset: step.opset, inputs: inputs.map { $0?.type }, constants: inputs.map { $0?.constant })
        guard let value = try OperatorDefinitions.parameters(for: context) as? T else {
            throw RuntimeError.invalidNode(node: step.node.displayName, detail: "\(step.node.opType) has no \(T.self)")
        }
        return value
    }
}
