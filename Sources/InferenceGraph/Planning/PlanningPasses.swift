import InferenceTensor

/// The passes that turn a graph and concrete input types into an `ExecutionPlan`, in the order the plan runs them:
///
/// 1. `foldConstants`: shape inference node by node; nodes whose inputs are all known are evaluated now.
/// 2. `Fusion.apply`: the node pairs and patterns the backend runs as one kernel (`FusionRules`).
/// 3. `intern`: every value gets an index, a type and a storage class; nodes become `PlannedStep`s carrying their
///    operator's parameters resolved once (`OperatorDefinitions`).
/// 4. `planViews`: Reshape and its kin become aliases of their input; `planConcatInPlace`: a Concat's inputs become
///    blocks of its output, written there by their producers. Both steps are dropped.
/// 5. `liveness`: the step range each value is live in.
/// 6. `assignMemory`: arena offsets from `MemoryPlanner`, shared by values whose lifetimes do not overlap.
///
/// Each pass is a function of what the one before it returned, so each is tested on its own (InferenceGraphTests).
public enum PlanningPasses {
    /// A node that runs when the plan runs, with its outputs' types.
    public typealias LiveNode = (node: Node, outputTypes: [TensorType])

    /// What constant folding leaves for the passes after it.
    public struct Folding {
        /// The nodes still to run, in execution order.
        public var live: [LiveNode]
        /// Values known at plan time: initializers, runtime inputs given as values, and folded outputs.
        public var known: [String: Tensor]
        /// Every value's type so far.
        public var types: [String: TensorType]
        /// Nodes evaluated at plan time.
        public var foldedCount: Int
    }

    /// Infers every node's output types in topological order and evaluates, once, the nodes whose inputs are all
    /// known (data-dependent host operators, values read from types such as Shape, and whatever `evaluator` can
    /// run), unless folding would materialize far more than it reads (`ExecutionPlan.blowsUp`).
    /// - Throws: `DataDependentShape` at the first node whose output shape needs a run-time value; `ShapeError`,
    ///   `GraphError` or what the evaluator throws.
    public static func foldConstants(
        graph: Graph, inputTypes: [String: TensorType], inputValues: [String: Tensor],
        evaluator: (any ConstantEvaluator)?
    ) throws -> Folding {
        var types = inputTypes
        var known = graph.initializers
        for (name, tensor) in inputValues { known[name] = tensor }
        for (name, tensor) in known { types[name] = TensorType(dtype: tensor.dtype, shape: tensor.shape) }
        var live: [LiveNode] = []
        var folded = 0
        for node in try graph.topologicallySorted() {
            let opset = graph.opset(for: node)
            func allInputsKnown() -> Bool { node.inputs.allSatisfy { $0.isEmpty || known[$0] != nil } }
            func knownInputs() -> [Tensor?] { node.inputs.map { $0.isEmpty ? nil : known[$0] } }
            if let host = DataDependentOperators.function(opType: node.opType, domain: node.domain), allInputsKnown() {
                for (name, value) in zip(node.outputs, try host(node, opset, knownInputs())) where !name.isEmpty {
                    known[name] = value
                    types[name] = TensorType(dtype: value.dtype, shape: value.shape)
                }
                folded += 1
                continue
            }
            let outputs = try inferOutputs(of: node, opset: opset, types: types, known: known, evaluator: evaluator)
            for (name, type) in zip(node.outputs, outputs) where !name.isEmpty { types[name] = type }
            if let direct = try ShapeInference.planTimeValue(node, opset: opset, types: types) {
                known[node.outputs[0]] = direct
                folded += 1
                continue
            }
            if allInputsKnown(), let evaluator, evaluator.canEvaluate(opType: node.opType, domain: node.domain),
                !ShapeInference.neverFolded.contains(node.opType),
                !ExecutionPlan.blowsUp(node, outputs: outputs, known: known)
            {
                let values = try evaluator.evaluate(
                    node: node, opset: opset, inputs: knownInputs(), outputTypes: outputs)
                for (name, value) in zip(node.outputs, values) where !name.isEmpty { known[name] = value }
                folded += 1
                continue
            }
            live.append((node, outputs))
        }
        return Folding(live: live, known: known, types: types, foldedCount: folded)
    }

    /// A node's output types; a shape that needs a run-time value becomes `DataDependentShape`.
    private static func inferOutputs(
        of node: Node, opset: Int, types: [String: TensorType], known: [String: Tensor],
        evaluator: (any ConstantEvaluator)?
    ) throws -> [TensorType] {
        do {
            return try ShapeInference.inferNode(node, opset: opset, types: types, known: known, evaluator: evaluator)
        } catch let error as ShapeError {
            guard case .valueNeeded(_, let detail) = error else { throw error }
            throw DataDependentShape(node: node, detail: detail)
        } catch let error as DataDependentShape {
            // A node inside this node's subgraph: the whole node waits for run-time values.
            throw DataDependentShape(node: node, detail: error.description)
        }
    }

    /// Values by index, and the steps, inputs and outputs that refer to them.
    public struct Interned {
        public var values: [PlannedValue]
        public var steps: [PlannedStep]
        /// The constants the steps or outputs read, by value name.
        public var constants: [String: Tensor]
        /// Per graph runtime input: its value, or nil when the plan took its value at plan time.
        public var inputs: [Int?]
        public var outputs: [Int]
    }

    /// Gives every value a step reads or writes, and every graph input and output, an index and a storage class
    /// (constant or arena; offsets come later). An omitted optional output gets a placeholder value of its own so
    /// kernels see a fixed output count.
    /// - Throws: `GraphError.danglingValue` for a value with no type.
    public static func intern(
        graph: Graph, live: [LiveNode], known: [String: Tensor], types: [String: TensorType],
        inputValues: [String: Tensor]
    ) throws -> Interned {
        var types = types
        var index: [String: Int] = [:]
        var result = Interned(values: [], steps: [], constants: [:], inputs: [], outputs: [])
        func intern(_ name: String) throws -> Int {
            if let existing = index[name] { return existing }
            guard let type = types[name] else { throw GraphError.danglingValue(name: name, node: "plan") }
            index[name] = result.values.count
            if let constant = known[name] {
                result.constants[name] = constant
                result.values.append(PlannedValue(name: name, type: type, storage: .constant))
            } else {
                result.values.append(PlannedValue(name: name, type: type, storage: .arena(offset: 0)))
            }
            return result.values.count - 1
        }
        for input in graph.runtimeInputs {
            result.inputs.append(inputValues[input.name] == nil ? try intern(input.name) : nil)
        }
        for (node, outputTypes) in live {
            let ins = try node.inputs.map { name -> Int? in name.isEmpty ? nil : try intern(name) }
            let outs = try node.outputs.enumerated().map { position, name -> Int in
                guard name.isEmpty else { return try intern(name) }
                let placeholder = "\u{0}\(node.displayName):output\(position)"
                if position < outputTypes.count { types[placeholder] = outputTypes[position] }
                return try intern(placeholder)
            }
            let opset = graph.opset(for: node)
            let context = ShapeInferenceContext(
                node: node, opset: opset, inputs: node.inputs.map { $0.isEmpty ? nil : types[$0] },
                constants: node.inputs.map { $0.isEmpty ? nil : known[$0] })
            result.steps.append(
                PlannedStep(
                    node: node, opset: opset, inputs: ins, outputs: outs,
                    // A parser that fails here leaves the step without parameters: its kernel parses the node
                    // itself and reports the problem where the node is bound.
                    parameters: try? OperatorDefinitions.parameters(for: context)))
        }
        result.outputs = try graph.outputs.map { try intern($0.name) }
        return result
    }

    /// Reshape and its kin only relabel bytes: their output shares its input's memory (one arena block, live as
    /// long as either is) and the step is dropped, so nothing is copied. Every value is written once, by the step
    /// that defines it, so sharing is safe.
    /// - Returns: the remaining steps, and per value the value whose memory it uses (itself when not a view).
    public static func planViews(steps: [PlannedStep], values: [PlannedValue]) -> (steps: [PlannedStep], aliasOf: [Int])
    {
        var aliasOf = Array(values.indices)
        let kept = steps.filter { step in
            guard ExecutionPlan.viewOperators.contains(step.node.opType), step.node.domain.isEmpty,
                step.outputs.count == 1, let input = step.inputs.first ?? nil, values[input].storage != .constant,
                values[step.outputs[0]].storage != .constant,
                values[input].type.dtype == values[step.outputs[0]].type.dtype,
                values[input].type.byteCount == values[step.outputs[0]].type.byteCount
            else { return true }
            aliasOf[step.outputs[0]] = root(input, in: aliasOf)
            return false
        }
        return (kept, aliasOf)
    }

    /// Concat in place: when a Concat's inputs are contiguous blocks of its output (every axis before the concat
    /// axis has size 1, as the channels of one image are) and each is a fresh value its producer writes (not a
    /// graph input, a constant, a view, or a block of another Concat), the producers write straight into their
    /// block of the output and the Concat step is dropped: no copy. Blocks start on `MemoryPlanner.alignment`.
    /// - Returns: the remaining steps, and per value its byte offset inside the value `aliasOf` now maps it to.
    public static func planConcatInPlace(steps: [PlannedStep], values: [PlannedValue], aliasOf: inout [Int]) -> (
        steps: [PlannedStep], offsets: [Int]
    ) {
        var offsets = [Int](repeating: 0, count: values.count)
        var produced = Set<Int>()
        for step in steps { produced.formUnion(step.outputs) }
        var kept: [PlannedStep] = []
        for step in steps {
            guard
                let blocks = concatBlocks(step, values: values, aliasOf: aliasOf, offsets: offsets, produced: produced)
            else {
                kept.append(step)
                continue
            }
            for (input, offset) in blocks {
                aliasOf[input] = step.outputs[0]
                offsets[input] = offset
            }
        }
        return (kept, offsets)
    }

    /// The byte offset of each input of a Concat that can be written in place, or nil. Leading inputs that are
    /// already, in order, the whole of an earlier in-place Concat's output (DenseNet's concatenation of every
    /// layer so far) make that output the new one's first block: each Concat is then a prefix of the last.
    private static func concatBlocks(
        _ step: PlannedStep, values: [PlannedValue], aliasOf: [Int], offsets: [Int], produced: Set<Int>
    ) -> [(Int, Int)]? {
        guard step.node.opType == "Concat", step.node.domain.isEmpty, step.outputs.count == 1 else { return nil }
        let output = step.outputs[0]
        let type = values[output].type
        let rank = type.shape.rank
        guard let raw = try? step.node.int("axis", default: Int.min), raw >= -rank, raw < rank,
            values[output].storage != .constant, aliasOf[output] == output
        else { return nil }
        let axis = raw < 0 ? raw + rank : raw
        guard type.shape.dimensions.prefix(axis).allSatisfy({ $0 == 1 }) else { return nil }
        let inputs = step.inputs.compactMap { $0 }
        guard inputs.count == step.inputs.count, inputs.count > 1, Set(inputs).count == inputs.count else { return nil }
        var blocks: [(Int, Int)] = []
        var offset = 0
        var prefix: Int?
        for input in inputs {
            let value = values[input]
            guard value.type.dtype == type.dtype, offset % MemoryPlanner.alignment == 0 else { return nil }
            if aliasOf[input] != input {
                // Part of an earlier Concat's output: only as the next block of a leading run of that output.
                let (root, at) = placement(input, aliasOf: aliasOf, offsets: offsets)
                guard blocks.isEmpty, prefix == nil || prefix == root, at == offset, root != output else { return nil }
                prefix = root
            } else {
                guard value.storage != .constant, produced.contains(input) else { return nil }
                blocks.append((input, offset))
            }
            offset += value.type.byteCount
        }
        if let prefix {
            guard values[prefix].storage != .constant, produced.contains(prefix),
                values[prefix].type.byteCount == blocks.first.map({ $0.1 }) ?? offset
            else { return nil }
            blocks.insert((prefix, 0), at: 0)
        }
        return offset == type.byteCount ? blocks : nil
    }

    /// The value whose memory `value` lies in, and the byte offset there.
    static func placement(_ value: Int, aliasOf: [Int], offsets: [Int]) -> (root: Int, offset: Int) {
        var v = value
        var at = 0
        while aliasOf[v] != v {
            at += offsets[v]
            v = aliasOf[v]
        }
        return (v, at)
    }

    /// The value whose memory `value` uses, following views.
    public static func root(_ value: Int, in aliasOf: [Int]) -> Int {
        var r = value
        while aliasOf[r] != r { r = aliasOf[r] }
        return r
    }

    /// The step range each value is live in.
    public struct Lifetimes: Equatable {
        /// The step that writes the value; -1 for values no step writes (inputs, constants).
        public var firstDefinition: [Int]
        /// The last step that reads it; `steps.count` for graph outputs; -1 when nothing reads it.
        public var lastUse: [Int]
    }

    /// A value is live from the step that defines it (inputs: before step 0) to its last use; graph outputs stay
    /// live to the end. A view's uses count for the value it shares memory with.
    public static func liveness(steps: [PlannedStep], outputs: [Int], aliasOf: [Int]) -> Lifetimes {
        var lifetimes = Lifetimes(
            firstDefinition: [Int](repeating: -1, count: aliasOf.count),
            lastUse: [Int](repeating: -1, count: aliasOf.count))
        for (s, step) in steps.enumerated() {
            for o in step.outputs {
                lifetimes.firstDefinition[o] = s
                lifetimes.lastUse[o] = max(lifetimes.lastUse[o], s)
                // A block of a value (a Concat's input written in place) defines that value's memory first.
                let r = root(o, in: aliasOf)
                if r != o {
                    let first = lifetimes.firstDefinition[r]
                    lifetimes.firstDefinition[r] = first < 0 ? s : min(first, s)
                    lifetimes.lastUse[r] = max(lifetimes.lastUse[r], s)
                }
            }
            for case let i? in step.inputs {
                let r = root(i, in: aliasOf)
                lifetimes.lastUse[r] = max(lifetimes.lastUse[r], s)
            }
        }
        for o in outputs { lifetimes.lastUse[root(o, in: aliasOf)] = steps.count }
        return lifetimes
    }

    /// Arena offsets for every non-constant value, from `MemoryPlanner`: a view takes its root's, a Concat input
    /// written in place its root's plus its byte offset there (`offsets`, from `planConcatInPlace`).
    public static func assignMemory(
        values: inout [PlannedValue], aliasOf: [Int], offsets: [Int]? = nil, lifetimes: Lifetimes
    ) -> MemoryPlanner.Allocation {
        let allocation = MemoryPlanner.assign(
            sizes: values.indices.map {
                values[$0].storage == .constant || aliasOf[$0] != $0 ? nil : values[$0].type.byteCount
            },
            firstDefinition: lifetimes.firstDefinition, lastUse: lifetimes.lastUse)
        for i in values.indices {
            if let offset = allocation.offsets[root(i, in: aliasOf)], values[i].storage != .constant {
                // Plus the value's place inside the values it is a block of (0 for a view).
                var within = 0
                var v = i
                while aliasOf[v] != v {
                    within += offsets?[v] ?? 0
                    v = aliasOf[v]
                }
                values[i].storage = .arena(offset: offset + within)
            }
        }
        return allocation
    }
}
