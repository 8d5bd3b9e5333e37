#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// The op codes of the `unary` kernel in the GPU kernel source (`enum unary_op` in
/// Sources/GPUKernelText/kernels/02_elementwise.cl; a test checks the two agree name by name).
public enum GPUUnaryCode: Int32, CaseIterable, Sendable {
    case relu = 0, sigmoid, tanh, exp, log, sqrt, neg, abs, erf, gelu, leakyRelu, identity, reciprocal, floor, ceil
    case hardSigmoid, elu, hardSwish, softplus, sin, cos, round, selu, celu, thresholdedRelu, mish, softsign, sign
    case clip, scale, geluTanh, tan, asin, acos, atan, sinh, cosh, asinh, acosh, atanh, shrink, swish
}

/// One elementwise unary operator: its name, the element types it takes, its attributes read once, its scalar
/// function, and its GPU op code. Shape inference, the CPU kernel table and the GPU kernel table all read
/// `UnaryOperators.all`, so adding a unary operator is one row here plus its test cases (and a SIMD entry in
/// the CPU backend where one is worth having).
public struct UnaryOperator: Sendable {
    /// The element types a unary operator accepts.
    public enum Types: Sendable {
        /// float32, float64, float16 (bfloat16 through widening).
        case floats
        /// Every signed and unsigned integer and float type.
        case numbers
    }

    /// The node's attributes an operator reads, resolved once at plan time.
    public struct Parameters: Sendable, Equatable {
        public var alpha: Float = 0
        public var beta: Float = 0
        /// A variant of the operator (Gelu's tanh approximation).
        public var alternate = false
    }

    public var name: String
    public var types: Types
    public var gpuCode: GPUUnaryCode
    /// The GPU op code when `Parameters.alternate` is set.
    public var alternateGPUCode: GPUUnaryCode?
    /// Reads and checks the node's attributes.
    public var parameters: @Sendable (Node) throws -> Parameters
    /// The operator in double precision (rounded once to the output type by the kernels).
    public var function: @Sendable (Parameters) -> @Sendable (Double) -> Double

    /// The GPU op code for these parameters.
    public func gpuCode(for parameters: Parameters) -> GPUUnaryCode {
        parameters.alternate ? (alternateGPUCode ?? gpuCode) : gpuCode
    }

    /// The scalar function with the node's attributes bound.
    /// - Throws: `AttributeError` or `ShapeError` for an attribute of the wrong type or value.
    public func scalar(for node: Node) throws -> @Sendable (Double) -> Double { function(try parameters(node)) }
}

/// The table of elementwise unary operators (ONNX default domain).
public enum UnaryOperators {
    typealias Parameters = UnaryOperator.Parameters

    /// A row without attributes.
    static func row(
        _ name: String, _ code: GPUUnaryCode, types: UnaryOperator.Types = .floats,
        _ function: @escaping @Sendable (Double) -> Double
    ) -> UnaryOperator {
        UnaryOperator(
            name: name, types: types, gpuCode: code, parameters: { _ in Parameters() }, function: { _ in function })
    }

    /// A row reading `alpha` (and `beta`, when named) with their ONNX defaults.
    static func row(
        _ name: String, _ code: GPUUnaryCode, alpha: (name: String, default: Float),
        beta: (name: String, default: Float)? = nil,
        _ function: @escaping @Sendable (Double, Double) -> @Sendable (Double) -> Double
    ) -> UnaryOperator {
        UnaryOperator(
            name: name, types: .floats, gpuCode: code,
            parameters: { node in
                var p = Parameters()
                p.alpha = try node.float(alpha.name, default: alpha.default)
                if let beta { p.beta = try node.float(beta.name, default: beta.default) }
                return p
            },
            function: { p in function(Double(p.alpha), Double(p.beta)) })
    }

    static func sigmoid(_ x: Double) -> Double { x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x)) }
    static func softplus(_ x: Double) -> Double { x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)) }

    /// Every unary operator, one row each.
    public static let all: [UnaryOperator] = [
        row("Relu", .relu) { $0 > 0 ? $0 : ($0.isNaN ? $0 : 0) },
        row("Sigmoid", .sigmoid, sigmoid),
        row("Tanh", .tanh) { tanh($0) },
        row("Exp", .exp) { exp($0) },
        row("Log", .log) { log($0) },
        row("Sqrt", .sqrt) { $0.squareRoot() },
        row("Reciprocal", .reciprocal) { 1 / $0 },
        row("Erf", .erf) { erf($0) },
        row("Neg", .neg, types: .numbers) { -$0 },
        row("Abs", .abs, types: .numbers) { Swift.abs($0) },
        row("Sign", .sign, types: .numbers) { $0 > 0 ? 1 : ($0 < 0 ? -1 : ($0.isNaN ? $0 : 0)) },
        row("Floor", .floor, types: .numbers) { $0.rounded(.down) },
        row("Ceil", .ceil, types: .numbers) { $0.rounded(.up) },
        row("Round", .round) { $0.rounded(.toNearestOrEven) },
        row("Sin", .sin) { sin($0) },
        row("Cos", .cos) { cos($0) },
        row("Tan", .tan) { tan($0) },
        row("Asin", .asin) { asin($0) },
        row("Acos", .acos) { acos($0) },
        row("Atan", .atan) { atan($0) },
        row("Sinh", .sinh) { sinh($0) },
        row("Cosh", .cosh) { cosh($0) },
        row("Asinh", .asinh) { asinh($0) },
        row("Acosh", .acosh) { acosh($0) },
        row("Atanh", .atanh) { atanh($0) },
        row("Softplus", .softplus, softplus),
        row("Softsign", .softsign) { $0 / (1 + Swift.abs($0)) },
        row("Mish", .mish) { $0 * tanh(softplus($0)) },
        row("HardSwish", .hardSwish) { $0 * max(0, min(1, $0 / 6 + 0.5)) },
        row("LeakyRelu", .leakyRelu, alpha: ("alpha", 0.01)) { alpha, _ in { $0 >= 0 ? $0 : alpha * $0 } },
        row("Elu", .elu, alpha: ("alpha", 1)) { alpha, _ in { $0 >= 0 ? $0 : alpha * (exp($0) - 1) } },
        row("Celu", .celu, alpha: ("alpha", 1)) { alpha, _ in { max(0, $0) + min(0, alpha * (exp($0 / alpha) - 1)) } },
        row("Selu", .selu, alpha: ("alpha", 1.67326319217681884765625), beta: ("gamma", 1.05070102214813232421875)) {
            alpha, gamma in { $0 > 0 ? gamma * $0 : gamma * (alpha * exp($0) - alpha) }
        },
        row("ThresholdedRelu", .thresholdedRelu, alpha: ("alpha", 1)) { alpha, _ in { $0 > alpha ? $0 : 0 } },
        row("HardSigmoid", .hardSigmoid, alpha: ("alpha", 0.2), beta: ("beta", 0.5)) { alpha, beta in
            { max(0, min(1, alpha * $0 + beta)) }
        },
        row("Swish", .swish, alpha: ("alpha", 1)) { alpha, _ in { $0 * sigmoid(alpha * $0) } },
        UnaryOperator(
            name: "Gelu", types: .floats, gpuCode: .gelu, alternateGPUCode: .geluTanh,
            parameters: { node in
                switch try node.string("approximate", default: "none") {
                case "none": return Parameters()
                case "tanh": return Parameters(alternate: true)
                case let other:
                    throw ShapeError.mismatch(
                        node: node.displayName, detail: "approximate=\(other): use \"none\" or \"tanh\"")
                }
            },
            function: { p in
                guard p.alternate else { return { 0.5 * $0 * (1 + erf($0 / 2.0.squareRoot())) } }
                let c = (2 / Double.pi).squareRoot()
                return { 0.5 * $0 * (1 + tanh(c * ($0 + 0.044715 * $0 * $0 * $0))) }
            }),
    ]

    /// The rows by operator name.
    public static let byName: [String: UnaryOperator] = Dictionary(
        all.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
}
