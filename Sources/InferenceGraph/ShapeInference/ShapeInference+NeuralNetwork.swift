import InferenceTensor

extension ShapeInference {
    static func registerNeuralNetwork(into table: inout [String: ShapeFunction]) {
        for register in [
            registerConvolutionAndPooling, registerGlobalPoolingAndNormalization, registerResize, registerRecurrent,
        ] { register(&table) }
    }

    /// Conv, ConvTranspose, MaxPool, AveragePool, LpPool.
    private static func registerConvolutionAndPooling(into table: inout [String: ShapeFunction]) {
        table[key(domain: "", opType: "Conv")] = { context in
            let x = try context.input(0)
            let w = try context.input(1)
            guard x.shape.rank >= 3, w.shape.rank == x.shape.rank else {
                throw context.mismatch("Conv needs X (N, C, ...) and W of the same rank, got \(x.shape) and \(w.shape)")
            }
            let group = try context.node.int("group", default: 1)
            guard group > 0, x.shape[1] == w.shape[1] * group, w.shape[0] % group == 0 else {
                throw context.mismatch(
                    "X \(x.shape) has \(x.shape[1]) channels; W \(w.shape) with group \(group) needs \(w.shape[1] * group)"
                )
            }
            let kernel = try context.node.ints("kernel_shape") ?? Array(w.shape.dimensions.dropFirst(2))
            guard kernel == Array(w.shape.dimensions.dropFirst(2)) else {
                throw context.mismatch("kernel_shape \(kernel) does not match the weights \(w.shape)")
            }
            if context.has(2), try context.input(2).shape.elementCount != w.shape[0] {
                throw context.mismatch("the bias must have \(w.shape[0]) values")
            }
            let geometry = try ConvGeometry.parseForward(context)
            return [TensorType(dtype: x.dtype, shape: Shape([x.shape[0], w.shape[0]] + geometry.output))]
        }

        table[key(domain: "", opType: "ConvTranspose")] = { context in
            let x = try context.input(0)
            let w = try context.input(1)
            guard x.shape.rank >= 3, w.shape.rank == x.shape.rank, x.shape[1] == w.shape[0] else {
                throw context.mismatch(
                    "ConvTranspose needs X (N, C, ...) and W (C, M/group, ...), got \(x.shape) and \(w.shape)")
            }
            let group = try context.node.int("group", default: 1)
            let kernel = try context.node.ints("kernel_shape") ?? Array(w.shape.dimensions.dropFirst(2))
            let groups = try context.node.int("group", default: 1)
            guard groups > 0, x.shape[1] % groups == 0, kernel == Array(w.shape.dimensions.dropFirst(2)) else {
                throw context.mismatch(
                    "group \(groups) and kernel_shape \(kernel) do not fit X \(x.shape) and W \(w.shape)")
            }
            if context.has(2), try context.input(2).shape.elementCount != w.shape[1] * groups {
                throw context.mismatch("the bias must have \(w.shape[1] * groups) values")
            }
            let geometry = try ConvGeometry.parseTransposed(context)
            return [TensorType(dtype: x.dtype, shape: Shape([x.shape[0], w.shape[1] * group] + geometry.output))]
        }

        let pool: ShapeFunction = { context in
            let x = try context.input(0)
            guard x.shape.rank >= 3 else { throw context.mismatch("pooling needs (N, C, ...) input, got \(x.shape)") }
            let geometry = try ConvGeometry.parseForward(context, weightIndex: nil)
            let y = TensorType(dtype: x.dtype, shape: Shape(Array(x.shape.dimensions.prefix(2)) + geometry.output))
            return context.node.outputs.count > 1 ? [y, TensorType(dtype: .int64, shape: y.shape)] : [y]
        }
        table[key(domain: "", opType: "MaxPool")] = pool
        table[key(domain: "", opType: "AveragePool")] = pool
        table[key(domain: "", opType: "LpPool")] = pool
    }

    /// GlobalAveragePool, GlobalMaxPool, BatchNormalization, LayerNormalization.
    private static func registerGlobalPoolingAndNormalization(into table: inout [String: ShapeFunction]) {

        let global: ShapeFunction = { context in
            let x = try context.input(0)
            guard x.shape.rank >= 2 else {
                throw context.mismatch("global pooling needs (N, C, ...) input, got \(x.shape)")
            }
            return [
                TensorType(
                    dtype: x.dtype,
                    shape: Shape(Array(x.shape.dimensions.prefix(2)) + [Int](repeating: 1, count: x.shape.rank - 2)))
            ]
        }
        table[key(domain: "", opType: "GlobalAveragePool")] = global
        table[key(domain: "", opType: "GlobalMaxPool")] = global

        table[key(domain: "", opType: "BatchNormalization")] = { context in
            let x = try context.input(0)
            guard x.shape.rank >= 2 else { throw context.mismatch("BatchNormalization needs (N, C, ...) input") }
            for i in 1...4 where try context.input(i).shape.elementCount != x.shape[1] {
                throw context.mismatch("input \(i) must have \(x.shape[1]) values (one per channel)")
            }
            return [x] + context.node.outputs.dropFirst().map { _ in TensorType(dtype: x.dtype, shape: [x.shape[1]]) }
        }

        table[key(domain: "", opType: "LayerNormalization")] = { context in
            let x = try context.input(0)
            let axis = try context.axis(try context.node.int("axis", default: -1), rank: x.shape.rank)
            let normalized = Shape(Array(x.shape.dimensions[axis...]))
            for index in [1, 2] where context.has(index) {
                let parameter = try context.input(index).shape
                guard parameter.rank <= normalized.rank, broadcast(parameter, normalized) == normalized else {
                    throw context.mismatch(
                        "input \(index) of shape \(parameter) does not broadcast to the normalized shape \(normalized)")
                }
            }
            var statsDims = x.shape.dimensions
            for i in axis..<statsDims.count { statsDims[i] = 1 }
            let stats = TensorType(dtype: .float32, shape: Shape(statsDims))
            return [x] + context.node.outputs.dropFirst().map { _ in stats }
        }
    }

    /// Resize.
    private static func registerResize(into table: inout [String: ShapeFunction]) {

        table[key(domain: "", opType: "Resize")] = { context in
            let x = try context.input(0)
            let rank = x.shape.rank
            let axes = try (context.node.ints("axes") ?? Array(0..<rank)).map { try context.axis($0, rank: rank) }
            var dims = x.shape.dimensions
            let sizesIndex = 3, scalesIndex = context.opset >= 11 ? 2 : 1
            if context.opset >= 11, context.has(sizesIndex), let sizes = try context.constantInts(sizesIndex),
                !sizes.isEmpty
            {
                guard sizes.count == axes.count else {
                    throw context.mismatch("sizes \(sizes) do not fit axes \(axes)")
                }
                let policy = try context.node.string("keep_aspect_ratio_policy", default: "stretch")
                guard sizes.allSatisfy({ $0 >= 0 && $0 < 1 << 40 }) else {
                    throw context.mismatch("Resize sizes \(sizes) must be between 0 and 2^40")
                }
                if policy == "stretch" {
                    for (i, axis) in axes.enumerated() { dims[axis] = sizes[i] }
                } else {
                    let ratios = axes.enumerated().map { Double(sizes[$0.offset]) / Double(x.shape[$0.element]) }
                    let scale = policy == "not_larger" ? ratios.min() ?? 1 : ratios.max() ?? 1
                    for axis in axes {
                        let size = (Double(x.shape[axis]) * scale).rounded()
                        guard size.isFinite, size >= 0, size < Double(1 << 40) else {
                            throw context.mismatch("Resize to \(size) elements")
                        }
                        dims[axis] = Int(size)
                    }
                }
            } else if let scales = try context.constantFloats(scalesIndex), !scales.isEmpty {
                guard scales.count == axes.count else {
                    throw context.mismatch("scales \(scales) do not fit axes \(axes)")
                }
                for (i, axis) in axes.enumerated() {
                    let size = (Float(x.shape[axis]) * scales[i]).rounded(.down)
                    guard size.isFinite, size >= 0, size < Float(1 << 40) else {
                        throw context.mismatch("Resize scale \(scales[i]) on axis \(axis) gives \(size) elements")
                    }
                    dims[axis] = Int(size)
                }
            } else if context.has(sizesIndex) || context.has(scalesIndex) {
                throw context.valueNeeded("Resize needs scales or sizes known when the model is planned")
            } else {
                throw context.mismatch("Resize needs scales or sizes")
            }
            return [TensorType(dtype: x.dtype, shape: Shape(dims))]
        }
    }

    /// LSTM, GRU, RNN.
    private static func registerRecurrent(into table: inout [String: ShapeFunction]) {

        let recurrent: ShapeFunction = { context in
            let x = try context.input(0)
            let w = try context.input(1)
            guard x.shape.rank == 3, w.shape.rank == 3 else { throw context.mismatch("X and W must be 3-D") }
            let layout = try context.node.int("layout", default: 0)
            let hidden = try context.node.int("hidden_size", default: 0)
            let directions = w.shape[0]
            guard hidden > 0 else { throw context.mismatch("hidden_size is required") }
            let (seq, batch) = layout == 0 ? (x.shape[0], x.shape[1]) : (x.shape[1], x.shape[0])
            // Every weight must have exactly the shape the equations index, or kernels would read past them.
            let gates = context.node.opType == "LSTM" ? 4 : (context.node.opType == "RNN" ? 1 : 3)
            let direction = try context.node.string("direction", default: "forward")
            guard directions == (direction == "bidirectional" ? 2 : 1) else {
                throw context.mismatch("W has \(directions) directions, direction is \(direction)")
            }
            let expected: [Int: [Int]] = [
                1: [directions, gates * hidden, x.shape[2]], 2: [directions, gates * hidden, hidden],
                3: [directions, 2 * gates * hidden], 4: [batch],
                5: layout == 0 ? [directions, batch, hidden] : [batch, directions, hidden],
                6: layout == 0 ? [directions, batch, hidden] : [batch, directions, hidden],
                7: [directions, 3 * hidden],
            ]
            for (index, dims) in expected where context.has(index) && (context.node.opType == "LSTM" || index < 6) {
                let actual = try context.input(index).shape.dimensions
                guard actual == dims else {
                    throw context.mismatch("input \(index) has shape \(actual), expected \(dims)")
                }
            }
            guard context.has(2) else { throw context.mismatch("R is required") }
            let y: Shape = layout == 0 ? [seq, directions, batch, hidden] : [batch, seq, directions, hidden]
            let state: Shape = layout == 0 ? [directions, batch, hidden] : [batch, directions, hidden]
            var outputs = [TensorType(dtype: x.dtype, shape: y), TensorType(dtype: x.dtype, shape: state)]
            if context.node.opType == "LSTM" { outputs.append(TensorType(dtype: x.dtype, shape: state)) }
            return Array(outputs.prefix(context.node.outputs.count))
        }
        table[key(domain: "", opType: "LSTM")] = recurrent
        table[key(domain: "", opType: "GRU")] = recurrent
        table[key(domain: "", opType: "RNN")] = recurrent
    }
}
