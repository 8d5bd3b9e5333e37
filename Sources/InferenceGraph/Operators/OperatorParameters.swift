import InferenceTensor

/// An operator's attributes and operands resolved once, at plan time, into a typed value: `PlanningPasses.intern`
/// stores it on the `PlannedStep`, and shape inference, the CPU kernels and the GPU kernels read that value
/// instead of parsing the node again (`OperatorDefinitions` says which operators have one).
public protocol OperatorParameters: Sendable {}

extension ConvGeometry: OperatorParameters {}
extension AttentionGeometry: OperatorParameters {}
extension EinsumEquation: OperatorParameters {}
extension SliceParameters: OperatorParameters {}
extension UnaryOperator.Parameters: OperatorParameters {}

extension SliceParameters {
    /// Slice's starts, ends, axes and steps (inputs from opset 10, attributes before), resolved against X.
    /// - Throws: `ShapeError` for missing or invalid operands.
    public static func parse(_ context: ShapeInferenceContext) throws -> SliceParameters {
        let x = try context.input(0)
        let starts: [Int], ends: [Int], axes: [Int]?, steps: [Int]?
        if context.opset >= 10 {
            starts = try context.requiredInts(1, "starts")
            ends = try context.requiredInts(2, "ends")
            axes = context.has(3) ? try context.requiredInts(3, "axes") : nil
            steps = context.has(4) ? try context.requiredInts(4, "steps") : nil
        } else {
            starts = try context.node.ints("starts") ?? []
            ends = try context.node.ints("ends") ?? []
            axes = try context.node.ints("axes")
            steps = nil
        }
        guard let parameters = resolve(shape: x.shape, starts: starts, ends: ends, axes: axes, steps: steps) else {
            throw context.mismatch(
                "invalid slice of \(x.shape): starts \(starts), ends \(ends), axes \(axes ?? []), steps \(steps ?? [])")
        }
        return parameters
    }
}

extension ConvGeometry {
    /// Conv (and ConvInteger, QLinearConv: `weightIndex`) and the pools: the window from kernel_shape or the
    /// weights' spatial dimensions, over X's spatial dimensions.
    public static func parseForward(_ context: ShapeInferenceContext, weightIndex: Int? = 1) throws -> ConvGeometry {
        let x = try context.input(0)
        guard x.shape.rank >= 3 else { throw context.mismatch("needs (N, C, ...) input, got \(x.shape)") }
        let weights = try weightIndex.map { try context.input($0).shape.dimensions.dropFirst(2) }.map(Array.init)
        guard let kernel = try context.node.ints("kernel_shape") ?? weights else {
            throw context.mismatch("kernel_shape is required")
        }
        return try forward(
            context, input: Array(x.shape.dimensions.dropFirst(2)), kernel: kernel,
            ceilMode: try context.node.int("ceil_mode", default: 0) != 0)
    }

    /// ConvTranspose: the window from kernel_shape or the weights, and the output size its attributes give.
    public static func parseTransposed(_ context: ShapeInferenceContext) throws -> ConvGeometry {
        let x = try context.input(0), w = try context.input(1)
        let kernel = try context.node.ints("kernel_shape") ?? Array(w.shape.dimensions.dropFirst(2))
        return try transposed(context, input: Array(x.shape.dimensions.dropFirst(2)), kernel: kernel).0
    }
}

/// Which operators resolve their attributes and operands into an `OperatorParameters` value at plan time, and how.
public enum OperatorDefinitions {
    public typealias Parser = @Sendable (ShapeInferenceContext) throws -> any OperatorParameters

    static let parsers: [String: Parser] = {
        var table: [String: Parser] = [
            "Slice": { try SliceParameters.parse($0) },
            "Conv": { try ConvGeometry.parseForward($0) },
            "ConvInteger": { try ConvGeometry.parseForward($0) },
            "QLinearConv": { try ConvGeometry.parseForward($0, weightIndex: 3) },
            QuantizedFusion.qdqDepthwiseConv: { try ConvGeometry.parseForward($0, weightIndex: 3) },
            "MaxPool": { try ConvGeometry.parseForward($0, weightIndex: nil) },
            "AveragePool": { try ConvGeometry.parseForward($0, weightIndex: nil) },
            "LpPool": { try ConvGeometry.parseForward($0, weightIndex: nil) },
            "ConvTranspose": { try ConvGeometry.parseTransposed($0) },
            "Attention": { try ShapeInference.attentionGeometry($0) },
            "Einsum": { try EinsumEquation.parse($0) },
        ]
        for unary in UnaryOperators.all { table[unary.name] = { try unary.parameters($0.node) } }
        return table
    }()

    /// The node's parameters, or nil for an operator without a definition here (or outside the default domain).
    /// - Throws: what the operator's parser throws for attributes or operands that do not fit.
    public static func parameters(for context: ShapeInferenceContext) throws -> (any OperatorParameters)? {
        guard context.node.domain.isEmpty || context.node.domain == "ai.onnx",
            let parse = parsers[context.node.opType]
        else { return nil }
        return try parse(context)
    }
}
