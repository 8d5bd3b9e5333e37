import InferenceGraph
import InferenceRuntime
import InferenceTensor
import Testing

@testable import CPUBackend

/// Transpose: permutations that are a batch of matrix transposes (the blocked register path) and ones that are not
/// (the strided copy), against an index-by-index reference, at one and two threads; sizes cut 8x8 blocks at the
/// edges and the two-thread split inside a batch.
struct TransposeTests {
    /// y[i] = x[offset(i)] by the definition of the permutation.
    static func reference(_ x: [Float], shape: [Int], perm: [Int]) -> [Float] {
        let inStrides = shape.indices.map { axis in shape[(axis + 1)...].reduce(1, *) }
        let outShape = perm.map { shape[$0] }
        var y = [Float](repeating: 0, count: x.count)
        var index = [Int](repeating: 0, count: outShape.count)
        for flat in 0..<x.count {
            var rest = flat
            for axis in (0..<outShape.count).reversed() {
                index[axis] = rest % outShape[axis]
                rest /= outShape[axis]
            }
            y[flat] = x[zip(index, perm).reduce(0) { $0 + $1.0 * inStrides[$1.1] }]
        }
        return y
    }

    static let cases: [([Int], [Int])] = [
        ([1, 96, 56, 56], [0, 2, 3, 1]),  // NCHW -> NHWC (ConvNeXt)
        ([1, 56, 56, 96], [0, 3, 1, 2]),  // and back
        ([2, 13, 7, 11], [0, 2, 3, 1]),  // a batch, no dimension a multiple of 8
        ([3, 5, 17, 9], [0, 1, 3, 2]),  // the last two axes (attention keys)
        ([37, 29], [1, 0]),
        ([1, 1, 19, 1, 23], [0, 4, 2, 3, 1]),  // unit axes dropped: a 19 x 23 transpose
        ([4, 6, 8, 10], [1, 0, 3, 2]),  // two swaps: the strided copy
        ([2, 3, 4, 5], [3, 1, 0, 2]),
        ([1, 2, 3, 5, 7], [0, 2, 1, 3, 4]),  // a channel shuffle: contiguous runs
    ]

    @Test(arguments: [1, 2])
    func transposesMatchTheDefinition(threads: Int) throws {
        for (shape, perm) in Self.cases {
            let count = shape.reduce(1, *)
            let x = (0..<count).map { Float($0) }
            let graph = Graph(
                name: "transpose",
                inputs: [ValueInfo(name: "x", dtype: .float32, dimensions: shape.map { .fixed($0) })],
                outputs: [ValueInfo(name: "y", dtype: .float32, dimensions: nil)],
                nodes: [
                    Node(
                        name: "t", opType: "Transpose", inputs: ["x"], outputs: ["y"], attributes: ["perm": .ints(perm)]
                    )
                ],
                initializers: [:], opsetImports: ["": 17])
            let session = try Session(graph: graph, backend: CPUBackend(threads: threads))
            let y = try #require(
                session.run([NamedTensor(name: "x", tensor: try Tensor(shape: Shape(shape), scalars: x))]).outputs.first
            )
            #expect(y.tensor.shape.dimensions == perm.map { shape[$0] }, "\(shape) \(perm)")
            #expect(
                try y.tensor.scalars(as: Float.self) == Self.reference(x, shape: shape, perm: perm), "\(shape) \(perm)")
        }
    }

    @Test func permutationsThatAreMatrixTransposes() throws {
        #expect(
            try #require(TensorOpKernels.batchedMatrixTranspose(dimensions: [1, 96, 56, 56], perm: [0, 2, 3, 1])) == (
                1, 96, 3136
            ))
        #expect(
            try #require(TensorOpKernels.batchedMatrixTranspose(dimensions: [2, 4, 5, 6], perm: [0, 1, 3, 2])) == (
                8, 5, 6
            ))
        #expect(try #require(TensorOpKernels.batchedMatrixTranspose(dimensions: [3, 4], perm: [1, 0])) == (1, 3, 4))
        #expect(
            try #require(TensorOpKernels.batchedMatrixTranspose(dimensions: [1, 2, 3], perm: [0, 2, 1])) == (1, 2, 3))
        #expect(TensorOpKernels.batchedMatrixTranspose(dimensions: [4, 6, 8, 10], perm: [1, 0, 3, 2]) == nil)
        #expect(TensorOpKernels.batchedMatrixTranspose(dimensions: [2, 3, 4], perm: [0, 1, 2]) == nil)
        #expect(TensorOpKernels.batchedMatrixTranspose(dimensions: [2, 3], perm: [0, 0]) == nil)
        #expect(TensorOpKernels.batchedMatrixTranspose(dimensions: [2, 3], perm: [0, 5]) == nil)
    }
}
