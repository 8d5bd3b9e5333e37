import InferenceGraph
import InferenceTensor

/// Loop and Scan: the body graph runs once per iteration through a session of its own (planned once per set of
/// body input shapes), on host tensors; loop-carried values and scan slices are copied between iterations.
/// The node's inputs end with the outer values its body reads (`Graph.capturingOuterValues`).
final class ControlFlowRunner {
    private let node: Node
    private let opset: Int
    private let body: Graph
    private let captureCount: Int
    private let backend: any Backend
    private let evaluator: (any ConstantEvaluator)?
    private var session: Session?
    /// Loops with no trip count stop when their condition does; this bounds a condition that never turns false.
    static let iterationLimit = 1_000_000

    init(node: Node, opset: Int, backend: any Backend, evaluator: (any ConstantEvaluator)?) throws {
        guard case .graph(let body)? = node.attributes["body"] else {
            throw RuntimeError.invalidNode(node: node.displayName, detail: "\(node.opType) needs a body graph")
        }
        if case .strings(let captures)? = node.attributes["captures"] {
            captureCount = captures.count
        } else {
            captureCount = 0
        }
        guard captureCount <= node.inputs.count, captureCount <= body.inputs.count else {
            throw RuntimeError.invalidNode(node: node.displayName, detail: "malformed captured values")
        }
        self.node = node
        self.opset = opset
        self.body = body
        self.backend = backend
        self.evaluator = evaluator
    }

    private func fail(_ detail: String) -> RuntimeError { .invalidNode(node: node.displayName, detail: detail) }

    /// Runs the body on tensors in the order of its declared inputs; the session is typed by the first call.
    private func runBody(_ tensors: [Tensor]) throws -> [Tensor] {
        guard tensors.count == body.inputs.count else {
            throw fail("the body takes \(body.inputs.count) inputs, given \(tensors.count)")
        }
        if session == nil {
            var typed = body
            typed.inputs = zip(body.inputs, tensors).map { ValueInfo(name: $0.name, dtype: $1.dtype, dimensions: nil) }
            session = try Session(graph: typed, backend: backend, evaluator: evaluator)
        }
        guard let session else { throw fail("the body could not be planned") }
        let named = zip(body.inputs, tensors).map { NamedTensor(name: $0.name, tensor: $1) }
        return try session.run(named).outputs.map(\.tensor)
    }

    /// The body's output types for these input types, without running it.
    private func bodyOutputTypes(_ types: [TensorType]) throws -> [TensorType] {
        var inputTypes: [String: TensorType] = [:]
        for (info, type) in zip(body.inputs, types) { inputTypes[info.name] = type }
        return try body.inferOutputTypes(inputTypes: inputTypes, known: [:], evaluator: evaluator)
    }

    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        let main = Array(inputs.dropLast(captureCount))
        var captured: [Tensor] = []
        for value in inputs.suffix(captureCount) {
            guard let value else { throw fail("a value the body reads is missing") }
            captured.append(value)
        }
        switch node.opType {
        case "Loop": return try loop(main, captured: captured)
        case "Scan": return try scan(main, captured: captured)
        default: throw fail("not a control-flow operator")
        }
    }

    private func loop(_ inputs: [Tensor?], captured: [Tensor]) throws -> [Tensor] {
        let tripCount = try (inputs.first ?? nil).map { tensor -> Int in
            guard tensor.elementCount == 1, let value = try tensor.integerValues().first else {
                throw fail("the trip count M must be one integer")
            }
            return value
        }
        let conditionInput = try (inputs.count > 1 ? inputs[1] : nil).map { tensor -> Bool in
            guard tensor.elementCount == 1, let value = try tensor.integerValues().first else {
                throw fail("the condition must be one boolean")
            }
            return value != 0
        }
        if tripCount == nil && conditionInput == nil {
            throw fail("a Loop with neither a trip count nor a condition never ends")
        }
        var carried: [Tensor] = []
        for value in inputs.dropFirst(2) {
            guard let value else { throw fail("loop-carried initial values must all be given") }
            carried.append(value)
        }
        let scanCount = body.outputs.count - 1 - carried.count
        guard scanCount >= 0, body.inputs.count == 2 + carried.count + captured.count else {
            throw fail(
                "the body has \(body.inputs.count) inputs and \(body.outputs.count) outputs for \(carried.count) loop-carried values"
            )
        }
        var scans = [[Tensor]](repeating: [], count: scanCount)
        var condition = conditionInput ?? true
        var iteration = 0
        while condition && (tripCount.map { iteration < $0 } ?? true) {
            guard iteration < Self.iterationLimit else {
                throw fail("stopped after \(Self.iterationLimit) iterations: the loop's condition never turned false")
            }
            let results = try runBody(
                [try Tensor(shape: [], scalars: [Int64(iteration)]), try Tensor(shape: [], scalars: [condition])]
                    + carried + captured)
            guard results.count == body.outputs.count else { throw fail("the body produced \(results.count) outputs") }
            if conditionInput != nil {
                guard results[0].elementCount == 1, let value = try results[0].integerValues().first else {
                    throw fail("the body's condition output must be one boolean")
                }
                condition = value != 0
            }
            carried = Array(results[1..<1 + carried.count])
            for k in 0..<scanCount { scans[k].append(results[1 + carried.count + k]) }
            iteration += 1
        }
        var outputs = carried
        // With no iteration, scan outputs are empty with the element shape the body would produce.
        let elementTypes =
            iteration > 0
            ? nil
            : try? bodyOutputTypes(
                [TensorType(dtype: .int64, shape: []), TensorType(dtype: .bool, shape: [])]
                    + (carried + captured).map { TensorType(dtype: $0.dtype, shape: $0.shape) })
        for k in 0..<scanCount {
            var declared = body.outputs[1 + carried.count + k]
            if let type = elementTypes?[1 + carried.count + k] {
                declared = ValueInfo(
                    name: declared.name, dtype: type.dtype, dimensions: type.shape.dimensions.map { .fixed($0) })
            }
            outputs.append(try Self.stack(scans[k], axis: 0, empty: declared, node: node.displayName))
        }
        return outputs
    }

    private func scan(_ inputs: [Tensor?], captured: [Tensor]) throws -> [Tensor] {
        guard opset >= 9 else {
            throw RuntimeError.unsupportedAttribute(node: node.displayName, detail: "Scan of opset \(opset) (batched)")
        }
        let scanInputCount = try node.int("num_scan_inputs", default: -1)
        var values: [Tensor] = []
        for value in inputs {
            guard let value else { throw fail("every Scan input must be given") }
            values.append(value)
        }
        guard scanInputCount >= 1, scanInputCount <= values.count else {
            throw fail("num_scan_inputs \(scanInputCount) does not fit \(values.count) inputs")
        }
        let stateCount = values.count - scanInputCount
        let scanOutputCount = body.outputs.count - stateCount
        guard scanOutputCount >= 0, body.inputs.count == values.count + captured.count else {
            throw fail("the body's inputs and outputs do not fit \(stateCount) state values")
        }
        func attribute(_ name: String, count: Int) throws -> [Int] {
            let given = try node.ints(name) ?? [Int](repeating: 0, count: count)
            guard given.count == count else { throw fail("\(name) has \(given.count) entries for \(count) values") }
            return given
        }
        let inputAxes = try attribute("scan_input_axes", count: scanInputCount)
        let inputDirections = try attribute("scan_input_directions", count: scanInputCount)
        let outputAxes = try attribute("scan_output_axes", count: scanOutputCount)
        let outputDirections = try attribute("scan_output_directions", count: scanOutputCount)
        var sequences: [(tensor: Tensor, axis: Int, reversed: Bool)] = []
        var length: Int?
        for j in 0..<scanInputCount {
            let tensor = values[stateCount + j]
            let rank = tensor.shape.rank
            let axis = inputAxes[j] < 0 ? inputAxes[j] + rank : inputAxes[j]
            guard axis >= 0 && axis < rank else { throw fail("scan input axis \(inputAxes[j]) is out of range") }
            guard length == nil || length == tensor.shape[axis] else {
                throw fail("the scan inputs have different lengths (\(length ?? 0) and \(tensor.shape[axis]))")
            }
            length = tensor.shape[axis]
            sequences.append((tensor, axis, inputDirections[j] != 0))
        }
        let steps = length ?? 0
        var state = Array(values[..<stateCount])
        var collected = [[Tensor]](repeating: [], count: scanOutputCount)
        for t in 0..<steps {
            var slices: [Tensor] = []
            for sequence in sequences {
                let index = sequence.reversed ? steps - 1 - t : t
                var dims = sequence.tensor.shape.dimensions
                let slice = try DataDependentOperators.gatherSlices(
                    sequence.tensor, dimensions: dims, axis: sequence.axis, selected: [index])
                dims.remove(at: sequence.axis)
                slices.append(try slice.reshaped(Shape(dims)))
            }
            let results = try runBody(state + slices + captured)
            guard results.count == body.outputs.count else { throw fail("the body produced \(results.count) outputs") }
            state = Array(results[..<stateCount])
            for k in 0..<scanOutputCount { collected[k].append(results[stateCount + k]) }
        }
        var outputs = state
        for k in 0..<scanOutputCount {
            let elements = outputDirections[k] != 0 ? collected[k].reversed() : collected[k]
            let rank = (elements.first?.shape.rank ?? 0) + 1
            let axis = outputAxes[k] < 0 ? outputAxes[k] + rank : outputAxes[k]
            guard axis >= 0 && axis < rank else { throw fail("scan output axis \(outputAxes[k]) is out of range") }
            outputs.append(
                try Self.stack(elements, axis: axis, empty: body.outputs[stateCount + k], node: node.displayName))
        }
        return outputs
    }

    /// Stacks equally shaped tensors along a new axis; no tensors gives an empty tensor of the declared type.
    static func stack(_ elements: [Tensor], axis: Int, empty declared: ValueInfo, node: String) throws -> Tensor {
        guard let first = elements.first else {
            var dims = [0]
            for dimension in declared.dimensions ?? [] {
                if case .fixed(let n) = dimension { dims.append(n) } else { dims.append(0) }
            }
            return try Tensor(zeros: declared.dtype, shape: Shape(dims))
        }
        for element in elements where element.shape != first.shape || element.dtype != first.dtype {
            throw RuntimeError.invalidNode(
                node: node,
                detail: "iterations produced \(first.dtype)\(first.shape) and \(element.dtype)\(element.shape)")
        }
        var dims = first.shape.dimensions
        dims.insert(elements.count, at: axis)
        var result = try Tensor(uninitialized: first.dtype, shape: Shape(dims))
        let outer = first.shape.dimensions[..<axis].reduce(1, *)
        let innerBytes = first.shape.dimensions[axis...].reduce(1, *) * first.dtype.byteSize
        try result.withUnsafeMutableBytes { destination in
            guard let to = destination.baseAddress, innerBytes > 0 else { return }
            for (t, element) in elements.enumerated() {
                element.withUnsafeBytes { source in
                    guard let from = source.baseAddress else { return }
                    for o in 0..<outer {
                        (to + (o * elements.count + t) * innerBytes).copyMemory(
                            from: from + o * innerBytes, byteCount: innerBytes)
                    }
                }
            }
        }
        return result
    }
}
