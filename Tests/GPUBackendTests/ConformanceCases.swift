import InferenceGraph

/// One single-operator conformance case: the node, its input shapes and value ranges, and how its outputs are
/// compared with the CPU's (`sumTerms`: a sum of that many products per output, compared against the float32
/// summation bound; nil: elementwise within rtol 1e-4). `GPUConformanceTests` runs each on every GPU device.
struct ConformanceCase: Sendable, CustomStringConvertible {
    var op: String
    var shapes: [[Int]]
    var attributes: [String: AttributeValue] = [:]
    var opset = 17
    /// Per input (the last repeats); values are drawn uniformly from them.
    var ranges: [ClosedRange<Float>] = [-2...2]
    var sumTerms: Int?

    var description: String { "\(op) \(shapes)\(attributes.isEmpty ? "" : " \(attributes.keys.sorted())")" }

    /// Where a unary operator is defined and its float32 result well conditioned, for drawing inputs.
    static func domain(of op: String) -> ClosedRange<Float> {
        switch op {
        case "Log", "Sqrt", "Reciprocal": 0.1...4
        case "Acosh": 1.1...4
        case "Asin", "Acos", "Atanh": -0.9...0.9
        case "Tan": -1.4...1.4
        default: -2...2
        }
    }

    static let unary: [ConformanceCase] =
        UnaryOperators.all.map { row in
            ConformanceCase(op: row.name, shapes: [[3, 7, 5]], opset: 24, ranges: [domain(of: row.name)])
        } + [ConformanceCase(op: "Gelu", shapes: [[3, 7, 5]], attributes: ["approximate": .string("tanh")], opset: 24)]

    static let binary: [ConformanceCase] = [
        [[4, 5], [4, 5]], [[4, 5], [5]], [[2, 1, 5], [3, 1]], [[], [3, 2]],
        [[2, 3, 4, 5], [1, 3, 1, 5]],
    ].flatMap { shapes in ["Add", "Sub", "Mul", "Div", "Max", "Min"].map { ConformanceCase(op: $0, shapes: shapes) } }

    static let linearAlgebra: [ConformanceCase] =
        [(0, 0), (0, 1), (1, 0), (1, 1)].map { transA, transB in
            ConformanceCase(
                op: "Gemm", shapes: [transA == 1 ? [7, 5] : [5, 7], transB == 1 ? [9, 7] : [7, 9], [9]],
                attributes: ["transA": .int(transA), "transB": .int(transB), "alpha": .float(0.5), "beta": .float(2)],
                sumTerms: 7 + 2)
        }
        + [[[2, 3, 4, 5], [2, 3, 5, 6]], [[6, 5], [5, 7]], [[2, 6, 5], [5, 7]], [[5, 7], [3, 7, 2]]].map {
            ConformanceCase(op: "MatMul", shapes: $0, sumTerms: 7)
        }

    static let layout: [ConformanceCase] = [
        ConformanceCase(op: "Identity", shapes: [[3, 7, 5]]),
        ConformanceCase(op: "Transpose", shapes: [[2, 3, 4, 5]], attributes: ["perm": .ints([0, 2, 3, 1])]),
        ConformanceCase(op: "Softmax", shapes: [[3, 4, 9]]),
        ConformanceCase(op: "LogSoftmax", shapes: [[3, 4, 9]]),
        ConformanceCase(
            op: "LayerNormalization", shapes: [[3, 4, 8], [8], [8]],
            attributes: ["axis": .int(-1), "epsilon": .float(1e-3)]),
        // Variance (the last input) must be positive.
        ConformanceCase(
            op: "BatchNormalization", shapes: [[2, 3, 4, 4], [3], [3], [3], [3]],
            ranges: [-2...2, -2...2, -2...2, -2...2, 0.5...1]),
    ]

    /// At most 3 input channels × 3 × 3 products (plus bias, and the 1/n of averages) per output.
    static let convolution: [ConformanceCase] = [
        ConformanceCase(
            op: "Conv", shapes: [[2, 4, 9, 8], [6, 2, 3, 3], [6]],
            attributes: [
                "group": .int(2), "pads": .ints([1, 2, 1, 0]), "strides": .ints([2, 1]), "dilations": .ints([1, 2]),
            ], sumTerms: 29),
        ConformanceCase(
            op: "Conv", shapes: [[1, 3, 7, 7], [5, 3, 3, 3]],
            attributes: ["auto_pad": .string("SAME_UPPER"), "strides": .ints([2, 2])], sumTerms: 29),
        ConformanceCase(
            op: "ConvTranspose", shapes: [[2, 4, 5, 6], [4, 3, 3, 2], [6]],
            attributes: [
                "group": .int(2), "strides": .ints([2, 3]), "pads": .ints([1, 0, 0, 1]),
                "output_padding": .ints([1, 1]), "dilations": .ints([1, 2]),
            ], sumTerms: 29),
        ConformanceCase(
            op: "ConvTranspose", shapes: [[1, 3, 9], [3, 2, 4]],
            attributes: ["strides": .ints([2]), "pads": .ints([1, 2])],
            sumTerms: 29),
        ConformanceCase(
            op: "MaxPool", shapes: [[2, 3, 9, 9]],
            attributes: ["kernel_shape": .ints([3, 3]), "strides": .ints([2, 2]), "pads": .ints([1, 1, 1, 1])]),
        ConformanceCase(
            op: "AveragePool", shapes: [[2, 3, 9, 9]],
            attributes: [
                "kernel_shape": .ints([3, 3]), "strides": .ints([2, 2]), "pads": .ints([1, 1, 1, 1]),
                "ceil_mode": .int(1),
            ], sumTerms: 29),
        ConformanceCase(
            op: "AveragePool", shapes: [[1, 2, 6, 6]],
            attributes: ["kernel_shape": .ints([2, 2]), "pads": .ints([1, 1, 1, 1]), "count_include_pad": .int(1)],
            sumTerms: 29),
        ConformanceCase(op: "GlobalAveragePool", shapes: [[2, 5, 4, 3]], sumTerms: 29),
        ConformanceCase(op: "GlobalMaxPool", shapes: [[2, 5, 4, 3]]),
    ]

    static let all = unary + binary + linearAlgebra + layout + convolution
}
