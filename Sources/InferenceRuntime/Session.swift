import InferenceGraph
import InferenceTensor

/// Time spent in each phase of one run, in nanoseconds. Copies are host↔device transfers of the
/// inputs and outputs; on the CPU they are memory copies into and out of the plan's arena.
public struct RunTimings: Sendable, Equatable {
    public var copyInNanoseconds: UInt64
    public var computeNanoseconds: UInt64
    public var copyOutNanoseconds: UInt64
    /// Set when this run had to plan (first run for these input shapes).
    public var planNanoseconds: UInt64
    /// The same three phases timed by device events (GPU backends); nil on the CPU, or when the device's
    /// timestamps could not be read.
    public var device: DeviceTimings?
    /// Whether the plan's kernels ran as one recorded unit (a CUDA graph) in this run, or why not.
    public var replay: ReplayState = .pending

    public var totalNanoseconds: UInt64 { copyInNanoseconds + computeNanoseconds + copyOutNanoseconds }

    public init(
        copyInNanoseconds: UInt64, computeNanoseconds: UInt64, copyOutNanoseconds: UInt64, planNanoseconds: UInt64
    ) {
        self.copyInNanoseconds = copyInNanoseconds
        self.computeNanoseconds = computeNanoseconds
        self.copyOutNanoseconds = copyOutNanoseconds
        self.planNanoseconds = planNanoseconds
    }
}

/// A run's phases as the device timed them (events recorded on its queue between the phases).
public struct DeviceTimings: Sendable, Equatable {
    public var copyInNanoseconds: UInt64
    public var computeNanoseconds: UInt64
    public var copyOutNanoseconds: UInt64

    public init(copyInNanoseconds: UInt64, computeNanoseconds: UInt64, copyOutNanoseconds: UInt64) {
        self.copyInNanoseconds = copyInNanoseconds
        self.computeNanoseconds = computeNanoseconds
        self.copyOutNanoseconds = copyOutNanoseconds
    }
}

/// The result of one run.
public struct RunResult: Sendable {
    public var outputs: [NamedTensor]
    public var timings: RunTimings
}

/// Runs one graph on one backend. Plans once per set of input shapes (shape inference, memory plan,
/// buffers, kernels, packed weights) and reuses the plan for every later run with those shapes.
public final class Session {
    public let graph: Graph
    public let backend: any Backend
    /// Evaluates nodes whose inputs are known at plan time (constant folding); nil disables folding.
    public let evaluator: (any ConstantEvaluator)?
    private let valueKeyedInputs: Set<String>
    private var plans: [PlanKey: PlanEntry] = [:]
    /// Staged plans by the node they split at, shared by every input shape that splits there.
    private var staged: [[String]: StagedPlan] = [:]

    /// A plan for one set of input shapes: bound to the backend, or staged around a data-dependent node.
    enum PlanEntry {
        case bound(BoundPlan)
        case staged(StagedPlan)
    }

    /// How many stages enclose this session (`StagedPlan` sets it on the sessions it makes); bounded, so a model
    /// with thousands of chained data-dependent nodes is an error instead of a stack overflow.
    var stageDepth = 0
    public static let stageLimit = 64

    /// Plans kept per session; beyond it (shapes that vary from run to run, e.g. after a NonZero) the oldest
    /// plans are dropped.
    static let planLimit = 64

    /// Plans are specific to input shapes, and to the values of shape-like inputs.
    private struct PlanKey: Hashable {
        var shapes: [Shape]
        var values: [[UInt8]]
    }

    /// - Parameter evaluator: folds constant subgraphs at plan time; defaults to the backend when it can.
    /// - Throws: `GraphError` when the graph is malformed, `RuntimeError.unsupportedOperator` naming the
    ///   first node neither the backend nor the evaluator has a kernel for.
    /// Whether nodes the backend has no kernel for run on the host evaluator (`HostFallbackKernel`).
    public let hostFallback: Bool

    /// - Parameter hostFallback: run nodes the device has no kernel for on the evaluator's backend (a CPU), with
    ///   their inputs and outputs copied; false makes such nodes `unsupportedOperator` errors.
    public init(
        graph: Graph, backend: any Backend, evaluator: (any ConstantEvaluator)? = nil, hostFallback: Bool = true
    ) throws {
        let graph = graph.capturingOuterValues()
        _ = try graph.topologicallySorted()
        let evaluator = evaluator ?? (backend as? any ConstantEvaluator)
        func allNodes(_ graph: Graph) -> [(Node, Int)] {
            graph.nodes.flatMap { node -> [(Node, Int)] in
                var result = [(node, graph.opset(for: node))]
                for case .graph(let subgraph) in node.attributes.values { result += allNodes(subgraph) }
                return result
            }
        }
        for (node, opset) in allNodes(graph) {
            let known =
                backend.kernels.knows(opType: node.opType, domain: node.domain)
                || (evaluator?.canEvaluate(opType: node.opType, domain: node.domain) ?? false)
                || Self.runsWithoutKernel(opType: node.opType, domain: node.domain)
            guard known else {
                throw RuntimeError.unsupportedOperator(
                    node: node.displayName, opType: node.opType, domain: node.domain, opset: opset,
                    dtype: nil, device: backend.device.description, supported: backend.kernels.operatorNames)
            }
        }
        self.graph = graph
        self.backend = backend
        self.evaluator = evaluator
        self.hostFallback = hostFallback
        self.valueKeyedInputs = ShapeInference.valueKeyedInputs(of: graph)
    }

    /// Operators a session runs itself on any backend, with no kernel: Shape and Size (read from types), Loop and
    /// Scan (their body per iteration), and the data-dependent operators run on the host between stages.
    public static func runsWithoutKernel(opType: String, domain: String) -> Bool {
        ((domain.isEmpty || domain == "ai.onnx") && ["Shape", "Size", "Loop", "Scan"].contains(opType))
            || DataDependentOperators.function(opType: opType, domain: domain) != nil
    }

    /// Number of plans built so far (one per distinct set of input shapes).
    public var planCount: Int { plans.count }

    /// Runs the graph. Inputs are matched by name; a graph with one input accepts one tensor of any name.
    /// - Throws: `RuntimeError` for missing, extra or mistyped inputs and device failures; `ShapeError`
    ///   when the input shapes do not fit the graph.
    public func run(_ inputs: [NamedTensor]) throws -> RunResult {
        let ordered = try match(inputs)
        var key = PlanKey(shapes: ordered.map(\.shape), values: [])
        var inputValues: [String: Tensor] = [:]
        if !valueKeyedInputs.isEmpty {
            // Small inputs only: a large tensor is data, whatever it feeds.
            for (info, tensor) in zip(graph.runtimeInputs, ordered)
            where valueKeyedInputs.contains(info.name) && tensor.elementCount <= 4096 {
                key.values.append(tensor.withUnsafeBytes { Array($0) })
                inputValues[info.name] = tensor
            }
        }
        var planNanoseconds: UInt64 = 0
        let plan: PlanEntry
        if let cached = plans[key] {
            plan = cached
        } else {
            let start = MonotonicClock.nanoseconds()
            plan = try makePlan(inputs: ordered, inputValues: inputValues)
            if plans.count >= Self.planLimit, let oldest = plans.keys.first { plans[oldest] = nil }
            plans[key] = plan
            planNanoseconds = MonotonicClock.nanoseconds() - start
        }
        switch plan {
        case .bound(let bound):
            var timings = try bound.execute(inputs: ordered)
            timings.planNanoseconds = planNanoseconds
            return RunResult(outputs: bound.takeOutputs(), timings: timings)
        case .staged(let stagedPlan):
            var (outputs, timings) = try stagedPlan.run(ordered)
            timings.planNanoseconds += planNanoseconds
            timings.replay = .unavailable("the model runs in stages around \(stagedPlan.node.displayName)")
            return RunResult(outputs: outputs, timings: timings)
        }
    }

    /// A bound plan, or a staged one when planning meets a node whose output shapes depend on run-time values.
    private func makePlan(inputs: [Tensor], inputValues: [String: Tensor]) throws -> PlanEntry {
        do {
            return .bound(
                try BoundPlan(
                    graph: graph, inputs: inputs, inputValues: inputValues, backend: backend, evaluator: evaluator,
                    hostFallback: hostFallback))
        } catch let split as DataDependentShape {
            guard stageDepth < Self.stageLimit else {
                throw RuntimeError.invalidNode(
                    node: split.node.displayName,
                    detail: "the model needs more than \(Self.stageLimit) stages of data-dependent shapes")
            }
            let key = split.node.outputs
            if let existing = staged[key] { return .staged(existing) }
            let plan = try StagedPlan(
                graph: graph, splittingAt: split.node, backend: backend, evaluator: evaluator, depth: stageDepth + 1)
            staged[key] = plan
            return .staged(plan)
        }
    }

    /// Plans (or reuses the plan) for these inputs and returns a handle whose `run` does no planning, no
    /// lookups and no heap allocation: the path for serving and benchmarking repeated calls.
    /// - Throws: what `run` throws for bad inputs or unsupported models.
    public func prepare(_ inputs: [NamedTensor]) throws -> PreparedRun {
        _ = try run(inputs)
        let ordered = try match(inputs)
        var key = PlanKey(shapes: ordered.map(\.shape), values: [])
        for (info, tensor) in zip(graph.runtimeInputs, ordered)
        where valueKeyedInputs.contains(info.name) && tensor.elementCount <= 4096 {
            key.values.append(tensor.withUnsafeBytes { Array($0) })
        }
        guard let plan = plans[key] else { throw RuntimeError.device("internal: the plan for these inputs is missing") }
        return PreparedRun(plan: plan, types: ordered.map { TensorType(dtype: $0.dtype, shape: $0.shape) })
    }

    /// Orders the given tensors as the graph's runtime inputs, checking names, types and declared shapes.
    private func match(_ inputs: [NamedTensor]) throws -> [Tensor] {
        let declared = graph.runtimeInputs
        let names = declared.map(\.name)
        var byName: [String: Tensor] = [:]
        if declared.count == 1 && inputs.count == 1, let only = inputs.first {
            byName[declared[0].name] = only.tensor
        } else {
            for input in inputs {
                guard names.contains(input.name) else {
                    throw RuntimeError.unexpectedInput(name: input.name, expected: names)
                }
                byName[input.name] = input.tensor
            }
        }
        return try declared.map { info in
            guard let tensor = byName[info.name] else {
                throw RuntimeError.missingInput(name: info.name, expected: names)
            }
            guard tensor.dtype == info.dtype else {
                throw RuntimeError.inputType(
                    name: info.name, expected: info.dtype.description, actual: tensor.dtype.description)
            }
            guard info.accepts(tensor.shape) else {
                throw RuntimeError.inputShape(
                    name: info.name, expected: info.shapeDescription, actual: tensor.shape.description)
            }
            return tensor
        }
    }
}

/// A plan ready to run for fixed input types (see `Session.prepare`).
public struct PreparedRun {
    let plan: Session.PlanEntry
    let types: [TensorType]
    private let staged = StagedOutputs()

    /// The outputs of a staged plan's last run (a bound plan keeps its own).
    private final class StagedOutputs {
        var outputs: [NamedTensor] = []
    }

    init(plan: Session.PlanEntry, types: [TensorType]) {
        self.plan = plan
        self.types = types
    }

    /// Runs on tensors in the order of the graph's runtime inputs, with the types the run was prepared for.
    /// Outputs land in `outputs`, overwritten by the next run. Allocates nothing when the caller holds no
    /// copies of earlier outputs and the model has no node whose output shapes depend on run-time values.
    /// - Throws: `RuntimeError.inputShape` when a tensor's type differs from the prepared one.
    public func run(_ inputs: [Tensor]) throws -> RunTimings {
        guard inputs.count == types.count else {
            throw RuntimeError.inputShape(name: "inputs", expected: "\(types.count) tensors", actual: "\(inputs.count)")
        }
        for index in inputs.indices
        where inputs[index].dtype != types[index].dtype || inputs[index].shape != types[index].shape {
            throw RuntimeError.inputShape(
                name: "input \(index)", expected: types[index].description,
                actual: TensorType(dtype: inputs[index].dtype, shape: inputs[index].shape).description)
        }
        switch plan {
        case .bound(let bound): return try bound.execute(inputs: inputs)
        case .staged(let stagedPlan):
            // A fresh array: the caller's (often a literal) must not escape, or the bound path above, which only
            // reads it, would cost the caller a heap allocation per run.
            let (outputs, timings) = try stagedPlan.run(inputs.map { $0 })
            staged.outputs = outputs
            return timings
        }
    }

    /// The outputs of the last run.
    public var outputs: [NamedTensor] {
        switch plan {
        case .bound(let bound): bound.takeOutputs()
        case .staged: staged.outputs
        }
    }

    /// The planned steps in run order: one per kernel, what `runProfiled` times. A staged model is one step.
    public var steps: [ProfiledStep] {
        switch plan {
        case .bound(let bound): return bound.profiledSteps
        case .staged(let stagedPlan):
            return [
                ProfiledStep(
                    name: "stages around \(stagedPlan.node.displayName)", opType: stagedPlan.node.opType, flops: 0,
                    implementation: "StagedPlan (host)")
            ]
        }
    }

    /// Runs like `run`, but waits for the device after every kernel and adds each kernel's wall time (ns) to
    /// `nodeNanoseconds[i]` (one entry per `steps` element; recorded graphs are not replayed, so every kernel
    /// is timed alone). The returned timings' compute phase covers the timed kernels.
    /// - Throws: what `run` throws; `RuntimeError.inputShape` when `nodeNanoseconds` has the wrong length.
    public func runProfiled(_ inputs: [Tensor], nodeNanoseconds: inout [Double]) throws -> RunTimings {
        guard nodeNanoseconds.count == steps.count else {
            throw RuntimeError.inputShape(
                name: "node timings", expected: "\(steps.count) entries", actual: "\(nodeNanoseconds.count)")
        }
        switch plan {
        case .bound(let bound): return try bound.execute(inputs: inputs, nodeNanoseconds: &nodeNanoseconds)
        case .staged:
            let timings = try run(inputs)
            nodeNanoseconds[0] += Double(timings.totalNanoseconds)
            return timings
        }
    }
}

/// An execution plan bound to one backend: arena and weight buffers, kernels in order. Built once.
final class BoundPlan {
    let plan: ExecutionPlan
    let backend: any Backend
    private let kernels: [any Kernel]
    /// The kernels that report bad run-time data after the device finished (see `CheckedKernel`).
    private let checkedKernels: [any CheckedKernel]
    /// Device timestamps between the phases, where the backend has them.
    private let timer: (any DeviceEventTimer)?
    /// Per runtime input: where it is copied, or nil when the plan took its value at plan time.
    private let inputSlices: [BufferSlice?]
    private let outputSlices: [BufferSlice]
    private var outputs: [NamedTensor] = []
    /// The kernels as the backend replays them (a CUDA graph), recorded after the first run; nil runs them one by
    /// one. `replayState` says whether recording is still to be tried, done, or not possible and why.
    private var replayed: (any Kernel)?
    private(set) var replayState: ReplayState = .pending
    private var runs = 0
    /// Keeps the arena and constant buffers alive as long as the kernels that point into them.
    private let buffers: [any DeviceBuffer]

    init(
        graph: Graph, inputs: [Tensor], inputValues: [String: Tensor], backend: any Backend,
        evaluator: (any ConstantEvaluator)?, hostFallback: Bool
    ) throws {
        var types: [String: TensorType] = [:]
        for (info, tensor) in zip(graph.runtimeInputs, inputs) {
            types[info.name] = TensorType(dtype: tensor.dtype, shape: tensor.shape)
        }
        let plan = try ExecutionPlan(
            graph: graph, inputTypes: types, inputValues: inputValues, evaluator: evaluator, fusion: backend.fusion)
        let arena = try backend.allocate(bytes: max(plan.arenaBytes, MemoryPlanner.alignment))
        var buffers: [any DeviceBuffer] = [arena]
        var bound: [BoundValue] = []
        bound.reserveCapacity(plan.values.count)
        for value in plan.values {
            switch value.storage {
            case .arena(let offset):
                let slice = BufferSlice(buffer: arena, offset: offset, byteCount: value.type.byteCount)
                bound.append(BoundValue(type: value.type, slice: slice, constant: nil))
            case .constant:
                guard let tensor = plan.constants[value.name] else {
                    throw RuntimeError.invalidNode(node: "initializer '\(value.name)'", detail: "missing constant data")
                }
                let buffer = try backend.allocate(bytes: max(tensor.byteCount, 1))
                let slice = BufferSlice(buffer: buffer, offset: 0, byteCount: tensor.byteCount)
                try tensor.withUnsafeBytes { try backend.copy(from: $0, to: slice) }
                buffers.append(buffer)
                bound.append(BoundValue(type: value.type, slice: slice, constant: tensor))
            }
        }
        var kernels: [any Kernel] = []
        for step in plan.steps {
            let node = BoundNode(
                step: step, inputs: step.inputs.map { $0.map { bound[$0] } }, outputs: step.outputs.map { bound[$0] },
                evaluator: evaluator)
            let dtype = KernelRegistry.dispatchType(of: step, inputs: node.inputs, outputs: node.outputs)
            do {
                guard let kernel = try WidenedKernel.make(node, backend: backend) else {
                    throw RuntimeError.unsupportedOperator(
                        node: step.node.displayName, opType: step.node.opType, domain: step.node.domain,
                        opset: step.opset, dtype: dtype,
                        device: backend.device.description, supported: backend.kernels.operatorNames)
                }
                kernels.append(kernel)
            } catch let error as RuntimeError {
                // The device lacks this operator, type or attribute: the host evaluator's backend may have it.
                guard hostFallback, error.isUnsupported, let host = evaluator as? any Backend, host !== backend,
                    let fallback = try HostFallbackKernel(node: node, device: backend, host: host)
                else { throw error }
                kernels.append(fallback)
            }
        }
        self.plan = plan
        self.backend = backend
        self.kernels = kernels
        self.checkedKernels = kernels.compactMap { $0 as? any CheckedKernel }
        self.timer = try backend.makeEventTimer()
        self.buffers = buffers
        self.inputSlices = plan.inputs.map { $0.map { bound[$0].slice } }
        self.outputSlices = plan.outputs.map { bound[$0].slice }
        self.outputs = try plan.outputs.map { index in
            let value = plan.values[index]
            return NamedTensor(
                name: value.name, tensor: try Tensor(uninitialized: value.type.dtype, shape: value.type.shape))
        }
    }

    /// After the first run (which warmed up libraries such as cuBLAS), asks the backend to record the kernels
    /// for replay; a failed recording leaves the plan launching kernel by kernel.
    private func recordReplay() {
        guard kernels.allSatisfy(\.replayable) else {
            replayState = .unavailable("a node reads results back to the host while it runs")
            return
        }
        do {
            replayed = try backend.replay(kernels)
            replayState = replayed == nil ? .notOffered : .recorded
        } catch {
            replayState = .unavailable("recording failed: \(error)")
        }
    }

    /// Each kernel's node, operator, FLOPs and implementation (the kernel's type: the algorithm chosen).
    var profiledSteps: [ProfiledStep] {
        zip(plan.steps, kernels).map { step, kernel in
            ProfiledStep(
                name: step.node.name.isEmpty ? (step.node.outputs.first ?? "?") : step.node.name,
                opType: step.node.opType, flops: FLOPCounter.count(step: step, plan: plan),
                implementation: (kernel as? DescribedKernel)?.kernelDescription ?? String(describing: type(of: kernel)))
        }
    }

    /// `execute`, timing each kernel alone (the device synchronized after each).
    func execute(inputs: [Tensor], nodeNanoseconds: inout [Double]) throws -> RunTimings {
        for case let (tensor, slice?) in zip(inputs, inputSlices) {
            try tensor.withUnsafeBytes { try backend.copy(from: $0, to: slice) }
        }
        try backend.synchronize()
        let computeStart = MonotonicClock.nanoseconds()
        for (index, kernel) in kernels.enumerated() {
            let start = MonotonicClock.nanoseconds()
            try kernel.run()
            try backend.synchronize()
            try (kernel as? any CheckedKernel)?.checkAfterRun()
            nodeNanoseconds[index] += Double(MonotonicClock.nanoseconds() - start)
        }
        let computed = MonotonicClock.nanoseconds()
        for index in outputs.indices {
            let slice = outputSlices[index]
            try outputs[index].tensor.withUnsafeMutableBytes { try backend.copy(from: slice, to: $0) }
        }
        return RunTimings(
            copyInNanoseconds: 0, computeNanoseconds: computed - computeStart,
            copyOutNanoseconds: MonotonicClock.nanoseconds() - computed, planNanoseconds: 0)
    }

    /// Copies inputs in, runs every kernel, copies outputs out; each phase timed by the host clock after the
    /// device is idle, and by device events where the backend has them.
    func execute(inputs: [Tensor]) throws -> RunTimings {
        let start = MonotonicClock.nanoseconds()
        try timer?.record(0)
        for case let (tensor, slice?) in zip(inputs, inputSlices) {
            try tensor.withUnsafeBytes { try backend.copy(from: $0, to: slice) }
        }
        try timer?.record(1)
        try backend.synchronize()
        let copiedIn = MonotonicClock.nanoseconds()
        if runs == 1 { recordReplay() }
        runs += 1
        if let replayed {
            try replayed.run()
        } else {
            for kernel in kernels { try kernel.run() }
        }
        try timer?.record(2)
        try backend.synchronize()
        for kernel in checkedKernels { try kernel.checkAfterRun() }
        let computed = MonotonicClock.nanoseconds()
        for index in outputs.indices {
            let slice = outputSlices[index]
            try outputs[index].tensor.withUnsafeMutableBytes { try backend.copy(from: slice, to: $0) }
        }
        try timer?.record(3)
        let copiedOut = MonotonicClock.nanoseconds()
        var timings = RunTimings(
            copyInNanoseconds: copiedIn - start, computeNanoseconds: computed - copiedIn,
            copyOutNanoseconds: copiedOut - computed, planNanoseconds: 0)
        timings.replay = replayed == nil ? replayState : .recorded
        if let timer {
            timings.device = try DeviceTimings(
                copyInNanoseconds: timer.nanoseconds(from: 0, to: 1),
                computeNanoseconds: timer.nanoseconds(from: 1, to: 2),
                copyOutNanoseconds: timer.nanoseconds(from: 2, to: 3))
        }
        return timings
    }

    /// The outputs of the last run. The caller's copies share the buffers until the next run writes them,
    /// which then allocates fresh ones (copy on write), so returned results are never overwritten.
    func takeOutputs() -> [NamedTensor] { outputs }
}

/// Whether a plan's kernels run as one recorded unit (a CUDA graph).
public enum ReplayState: Sendable, Equatable {
    /// Not tried yet: recording happens at the second run.
    case pending
    /// Runs replay the recorded kernels.
    case recorded
    /// The backend runs kernels one by one (the CPU, OpenCL, CUDA with graphs turned off).
    case notOffered
    /// Kernels run one by one, for the reason given.
    case unavailable(String)
}

/// One kernel of a plan, as the profiler reports it.
public struct ProfiledStep: Sendable {
    /// The node's name (its first output's name when it has none).
    public var name: String
    public var opType: String
    /// Floating-point operations of one run (`FLOPCounter`), 0 where none are counted.
    public var flops: Int
    /// The kernel type that runs it, e.g. `WinogradConvKernel`, `DepthwiseConvKernel`, `ConvKernel` (im2col).
    public var implementation: String
}

/// A kernel that wraps another (e.g. adds a fused activation) and names what runs, for profiles.
public protocol DescribedKernel {
    /// The kernels that run, e.g. `DepthwiseConvKernel + Clip`.
    var kernelDescription: String { get }
}
