import InferenceGraph
import InferenceTensor
import Testing

/// Resize's output shape from scales or sizes a model file controls: out-of-range values are shape errors naming
/// the node, never a trap (the ONNX fuzzer found scales whose product overflowed Int).
struct ResizeShapeTests {
    func infer(scales: [Float]? = nil, sizes: [Int64]? = nil) throws -> [TensorType] {
        let inputs = ["x", "", scales == nil ? "" : "scales"] + (sizes == nil ? [] : ["sizes"])
        let node = Node(name: "resize", opType: "Resize", inputs: inputs, outputs: ["y"])
        var known: [String: Tensor] = [:]
        if let scales { known["scales"] = try Tensor(shape: [scales.count], scalars: scales) }
        if let sizes { known["sizes"] = try Tensor(shape: [sizes.count], scalars: sizes) }
        var types = ["x": TensorType(dtype: .float32, shape: [1, 2, 4, 4])]
        for (name, tensor) in known { types[name] = TensorType(dtype: tensor.dtype, shape: tensor.shape) }
        return try ShapeInference.inferNode(node, opset: 19, types: types, known: known)
    }

    @Test func validScalesAndSizesGiveTheShape() throws {
        #expect(try infer(scales: [1, 1, 2, 0.5]).first?.shape == [1, 2, 8, 2])
        #expect(try infer(sizes: [1, 2, 3, 5]).first?.shape == [1, 2, 3, 5])
    }

    @Test func outOfRangeScalesAndSizesAreShapeErrors() {
        for scales: [Float] in [[1, 1, 1e30, 1], [1, 1, .infinity, 1], [1, 1, .nan, 1], [1, 1, -2, 1]] {
            #expect(throws: ShapeError.self, "\(scales)") { try infer(scales: scales) }
        }
        for sizes: [Int64] in [[1, 2, -3, 4], [1, 2, 1 << 50, 4]] {
            #expect(throws: ShapeError.self, "\(sizes)") { try infer(sizes: sizes) }
        }
    }
}
