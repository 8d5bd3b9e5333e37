import InferenceGraph
import InferenceRuntime
import InferenceTensor

/// Einsum on any float type: every output element sums the product of the operands over the labels the output
/// drops, accumulated in double precision. Strides per label are summed for repeated labels (diagonals) and
/// zero on broadcast ellipsis axes.
enum EinsumKernels {
    static func make(_ node: BoundNode) throws -> any Kernel {
        let operands = try node.inputs.indices.map { try node.input($0) }
        let y = try node.output(0)
        let equation = try node.parameters(EinsumEquation.self)
        let labels = equation.sizes.count
        let outputSet = Set(equation.output)
        let contracted = (0..<labels).filter { !outputSet.contains($0) }
        // Loop order: output labels (row-major), then contracted labels.
        let order = equation.output + contracted
        let sizes = order.map { equation.sizes[$0] }
        var strides: [[Int]] = []  // [operand][loop position]
        for (operand, value) in zip(equation.operands, operands) {
            let own = rowMajorStrides(value.shape.dimensions)
            var perLabel = [Int](repeating: 0, count: labels)
            for (axis, label) in operand.enumerated() where value.shape[axis] != 1 { perLabel[label] += own[axis] }
            strides.append(order.map { perLabel[$0] })
        }
        let ios = operands.map { ElementIO.for($0.type.dtype) }
        let pointers = try operands.map { UnsafeRawPointer(try $0.raw()) }
        let out = ElementIO.for(y.type.dtype), dst = try y.raw()
        let outCount = y.count
        let inner = contracted.reduce(1) { $0 * equation.sizes[$1] }
        let innerSizes = Array(sizes[equation.output.count...])
        let outerSizes = Array(sizes[..<equation.output.count])
        let outerStrides = strides.map { Array($0[..<equation.output.count]) }
        let innerStrides = strides.map { Array($0[equation.output.count...]) }
        let count = operands.count
        var outerIndex = [Int](repeating: 0, count: outerSizes.count)
        var innerIndex = [Int](repeating: 0, count: innerSizes.count)
        var base = [Int](repeating: 0, count: count)
        var offsets = [Int](repeating: 0, count: count)
        return ClosureKernel {
            for a in 0..<outerIndex.count { outerIndex[a] = 0 }
            for o in 0..<count { base[o] = 0 }
            for flat in 0..<outCount {
                var sum = 0.0
                for a in 0..<innerIndex.count { innerIndex[a] = 0 }
                for o in 0..<count { offsets[o] = base[o] }
                for _ in 0..<inner {
                    var product = 1.0
                    for o in 0..<count { product *= ios[o].load(pointers[o], offsets[o]) }
                    sum += product
                    // Odometer step over the contracted labels, keeping the offsets current.
                    var a = innerIndex.count - 1
                    while a >= 0 {
                        innerIndex[a] += 1
                        for o in 0..<count { offsets[o] += innerStrides[o][a] }
                        if innerIndex[a] < innerSizes[a] { break }
                        for o in 0..<count { offsets[o] -= innerStrides[o][a] * innerSizes[a] }
                        innerIndex[a] = 0
                        a -= 1
                    }
                }
                out.store(dst, flat, sum)
                var a = outerIndex.count - 1
                while a >= 0 {
                    outerIndex[a] += 1
                    for o in 0..<count { base[o] += outerStrides[o][a] }
                    if outerIndex[a] < outerSizes[a] { break }
                    for o in 0..<count { base[o] -= outerStrides[o][a] * outerSizes[a] }
                    outerIndex[a] = 0
                    a -= 1
                }
            }
        }
    }
}
