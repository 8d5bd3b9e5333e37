import CKernels
import InferenceRuntime
import InferenceTensor

/// Unary elementwise operators over contiguous buffers.
final class UnaryKernel: Kernel {
    enum Op { case relu, sigmoid, identity }

    private let op: Op
    private let x: UnsafeMutableRawPointer
    private let y: UnsafeMutableRawPointer
    private let count: Int
    private let bytes: Int

    init(node: BoundNode, op: Op) throws {
        guard let input = node.inputs.first ?? nil, let output = node.outputs.first else {
            throw RuntimeError.invalidNode(node: node.step.node.displayName, detail: "needs one input and one output")
        }
        self.op = op
        x = try input.slice.hostPointer()
        y = try output.slice.hostPointer()
        count = output.type.shape.elementCount
        bytes = output.type.byteCount
    }

    func run() throws {
        switch op {
        case .relu:
            ck_relu(x.assumingMemoryBound(to: Float.self), y.assumingMemoryBound(to: Float.self), count)
        case .sigmoid:
            ck_sigmoid(x.assumingMemoryBound(to: Float.self), y.assumingMemoryBound(to: Float.self), count)
        case .identity:
            if x != y { y.copyMemory(from: x, byteCount: bytes) }
        }
    }
}

/// Binary float operators with NumPy broadcasting. Shapes are resolved at creation into an outer loop
/// over rows and an inner loop whose operands step by 1 (full) or 0 (broadcast).
final class BinaryKernel: Kernel {
    enum Op { case add, sub, mul, div }

    private let op: Op
    private let a: UnsafePointer<Float>
    private let b: UnsafePointer<Float>
    private let y: UnsafeMutablePointer<Float>
    private let layout: BroadcastLayout

    init(node: BoundNode, op: Op) throws {
        guard node.inputs.count == 2, let lhs = node.inputs[0], let rhs = node.inputs[1], let out = node.outputs.first
        else {
            throw RuntimeError.invalidNode(node: node.step.node.displayName, detail: "needs two inputs and one output")
        }
        self.op = op
        a = UnsafePointer(try lhs.slice.floatPointer())
        b = UnsafePointer(try rhs.slice.floatPointer())
        y = try out.slice.floatPointer()
        layout = BroadcastLayout(output: out.type.shape, a: lhs.type.shape, b: rhs.type.shape)
    }

    func run() throws {
        switch op {
        case .add: layout.apply(a, b, y) { $0 + $1 }
        case .sub: layout.apply(a, b, y) { $0 - $1 }
        case .mul: layout.apply(a, b, y) { $0 * $1 }
        case .div: layout.apply(a, b, y) { $0 / $1 }
        }
    }
}

/// A broadcast of two operands to an output shape, reduced to rows of the innermost (coalesced) dimension.
struct BroadcastLayout {
    /// Elements per inner row and each operand's step within it (0 or 1).
    let inner: Int
    let innerStrideA: Int
    let innerStrideB: Int
    /// Start offset of each operand for every output row.
    let rowOffsetsA: [Int]
    let rowOffsetsB: [Int]

    init(output: Shape, a: Shape, b: Shape) {
        let rank = output.rank
        func strides(_ shape: Shape) -> [Int] {
            let padded = [Int](repeating: 1, count: rank - shape.rank) + shape.dimensions
            var result = [Int](repeating: 0, count: rank)
            var running = 1
            for axis in stride(from: rank - 1, through: 0, by: -1) {
                result[axis] = padded[axis] == 1 ? 0 : running
                running *= padded[axis]
            }
            return result
        }
        var dims = output.dimensions
        var sa = strides(a)
        var sb = strides(b)
        // Coalesce trailing axes that are contiguous in both operands (or broadcast in both).
        while dims.count >= 2 {
            let last = dims.count - 1
            let mergeA = sa[last - 1] == sa[last] * dims[last]
            let mergeB = sb[last - 1] == sb[last] * dims[last]
            guard mergeA && mergeB else { break }
            dims[last - 1] *= dims[last]
            sa[last - 1] = sa[last]
            sb[last - 1] = sb[last]
            dims.removeLast()
            sa.removeLast()
            sb.removeLast()
        }
        if dims.isEmpty { dims = [1]; sa = [0]; sb = [0] }
        inner = dims[dims.count - 1]
        innerStrideA = sa[sa.count - 1]
        innerStrideB = sb[sb.count - 1]
        let outerDims = Array(dims.dropLast())
        let rows = outerDims.reduce(1, *)
        var offsetsA = [Int](repeating: 0, count: rows)
        var offsetsB = [Int](repeating: 0, count: rows)
        var index = [Int](repeating: 0, count: outerDims.count)
        var oa = 0
        var ob = 0
        for row in 0..<rows {
            offsetsA[row] = oa
            offsetsB[row] = ob
            var axis = outerDims.count - 1
            while axis >= 0 {
                index[axis] += 1
                oa += sa[axis]
                ob += sb[axis]
                if index[axis] < outerDims[axis] { break }
                oa -= sa[axis] * outerDims[axis]
                ob -= sb[axis] * outerDims[axis]
                index[axis] = 0
                axis -= 1
            }
        }
        rowOffsetsA = offsetsA
        rowOffsetsB = offsetsB
    }

    @inline(__always)
    func apply(
        _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
        _ f: (Float, Float) -> Float
    ) {
        let n = inner
        for row in 0..<rowOffsetsA.count {
            let pa = a + rowOffsetsA[row]
            let pb = b + rowOffsetsB[row]
            let py = y + row * n
            switch (innerStrideA, innerStrideB) {
            case (1, 1): for i in 0..<n { py[i] = f(pa[i], pb[i]) }
            case (1, 0): let s = pb[0]; for i in 0..<n { py[i] = f(pa[i], s) }
            case (0, 1): let s = pa[0]; for i in 0..<n { py[i] = f(s, pb[i]) }
            default: let v = f(pa[0], pb[0]); for i in 0..<n { py[i] = v }
            }
        }
    }
}
