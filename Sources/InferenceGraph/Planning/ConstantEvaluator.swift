import InferenceTensor

/// Computes a node whose inputs are all known at plan time, so the plan holds its outputs as constants
/// (constant folding). The CPU backend provides one; GPU sessions use it too.
public protocol ConstantEvaluator: Sendable {
    /// Whether this evaluator has a kernel for the operator.
    func canEvaluate(opType: String, domain: String) -> Bool

    /// Runs one node on known inputs (nil for omitted optional inputs) and returns its outputs.
    /// - Throws: when the node cannot be evaluated (the plan then fails with that error).
    func evaluate(node: Node, opset: Int, inputs: [Tensor?], outputTypes: [TensorType]) throws -> [Tensor]
}
