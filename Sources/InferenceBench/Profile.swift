import InferenceRuntime

/// Time per node and per operator type over profiled runs (`PreparedRun.runProfiled`), with shares of the total,
/// call counts, GFLOP/s where FLOPs are counted, and each node's kernel; and the Chrome trace of one mean run.
public struct Profile: Sendable {
    /// One node: its mean time per run.
    public struct Node: Sendable, Encodable {
        public var name: String
        public var opType: String
        public var implementation: String
        public var meanMs: Double
        public var share: Double
        public var flops: Int
        /// Nil where the node's FLOPs are not counted (data movement).
        public var gflops: Double?
    }

    /// All nodes of one operator type.
    public struct Operator: Sendable, Encodable {
        public var opType: String
        public var meanMs: Double
        public var share: Double
        public var calls: Int
        public var gflops: Double?
    }

    /// Profiled runs measured.
    public var runs: Int
    /// Nodes in run order.
    public var nodes: [Node]
    /// Operator types, most time first.
    public var operators: [Operator]
    /// The mean of the profiled runs' compute phase (the kernels, each followed by a device synchronization).
    public var profiledComputeMs: Double
    /// The sum of the nodes' mean times: within a few percent of `profiledComputeMs` (the clock reads between).
    public var nodeSumMs: Double

    /// Aggregates per-node totals over `runs` profiled runs.
    /// - Parameters:
    ///   - steps: the plan's steps (`PreparedRun.steps`).
    ///   - nodeNanoseconds: each step's total over the runs.
    ///   - computeNanoseconds: the runs' compute phases, summed.
    public init(steps: [ProfiledStep], nodeNanoseconds: [Double], computeNanoseconds: Double, runs: Int) {
        let count = Double(max(runs, 1))
        let means = nodeNanoseconds.map { $0 / count / 1e6 }
        let total = means.reduce(0, +)
        func rate(_ flops: Int, _ ms: Double) -> Double? { flops > 0 && ms > 0 ? Double(flops) / (ms * 1e6) : nil }
        nodes = zip(steps, means).map { step, ms in
            Node(
                name: step.name, opType: step.opType, implementation: step.implementation, meanMs: ms,
                share: total > 0 ? ms / total : 0, flops: step.flops, gflops: rate(step.flops, ms))
        }
        var byType: [String: (ms: Double, calls: Int, flops: Int)] = [:]
        for node in nodes {
            let entry = byType[node.opType] ?? (0, 0, 0)
            byType[node.opType] = (entry.ms + node.meanMs, entry.calls + 1, entry.flops + node.flops)
        }
        operators = byType.map { type, entry in
            Operator(
                opType: type, meanMs: entry.ms, share: total > 0 ? entry.ms / total : 0, calls: entry.calls,
                gflops: rate(entry.flops, entry.ms))
        }.sorted { ($0.meanMs, $1.opType) > ($1.meanMs, $0.opType) }
        self.runs = runs
        profiledComputeMs = computeNanoseconds / count / 1e6
        nodeSumMs = total
    }

    /// The mean run as a Chrome trace (the JSON object format; Perfetto and chrome://tracing open it): one
    /// complete event per node, back to back in run order, times in microseconds.
    public func chromeTrace(process: String) -> [String: TraceValue] {
        var events: [TraceValue] = [
            .object([
                "name": .string("process_name"), "ph": .string("M"), "pid": .int(1),
                "args": .object(["name": .string(process)]),
            ])
        ]
        var start = 0.0
        for node in nodes {
            let duration = node.meanMs * 1000
            var args: [String: TraceValue] = ["op": .string(node.opType), "kernel": .string(node.implementation)]
            if let gflops = node.gflops { args["gflops"] = .double(gflops) }
            events.append(
                .object([
                    "name": .string(node.name), "cat": .string(node.opType), "ph": .string("X"), "ts": .double(start),
                    "dur": .double(duration), "pid": .int(1), "tid": .int(1), "args": .object(args),
                ]))
            start += duration
        }
        return ["traceEvents": .array(events), "displayTimeUnit": .string("ms")]
    }
}

/// A JSON value for traces (heterogeneous objects that Codable structs do not describe well).
public indirect enum TraceValue: Sendable, Encodable {
    case string(String)
    case int(Int)
    case double(Double)
    case array([TraceValue])
    case object([String: TraceValue])

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .string(let v): try container.encode(v)
        case .int(let v): try container.encode(v)
        case .double(let v): try container.encode(v.isFinite ? v : 0)
        case .array(let v): try container.encode(v)
        case .object(let v): try container.encode(v)
        }
    }
}
