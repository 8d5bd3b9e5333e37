import ArgumentParser
import CPUBackend
import GPUBackend
import InferenceGraph
import InferenceRuntime
import InferenceTensor
import ONNXImport

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

struct InspectCommand: ReportingCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Describe a model: inputs, outputs, opsets, operators, parameters, FLOPs per sample, support.")

    @Option(name: .long, help: ArgumentHelp("The model: builtin:NAME or an .onnx file.", valueName: "model"))
    var model: String = "builtin:linear"

    @Option(
        name: .customLong("dim"),
        help: ArgumentHelp(
            "Value for a symbolic dimension when counting FLOPs (default 1), e.g. --dim seq=128.", valueName: "name=n"))
    var dimensions: [String] = []

    @Flag(name: .long, help: "Print one JSON object instead of text.")
    var json = false

    func execute() throws {
        var overrides: [String: Int] = [:]
        for entry in dimensions {
            let parts = entry.split(separator: "=")
            guard parts.count == 2, let value = Int(parts[1]), value > 0 else {
                throw ValidationError("--dim expects name=positive integer, got '\(entry)'")
            }
            overrides[String(parts[0])] = value
        }
        let summary = try Summary(model: model, overrides: overrides)
        if json {
            try printJSON(summary)
        } else {
            printText(summary)
        }
    }

    /// What `inspect` reports of a model, read once.
    struct Summary {
        var graph: Graph
        var opsets: [String: Int]
        var counts: [String: Int]
        var unsupported: [String]
        var parameters: Int
        var parameterBytes: Int
        var flops: Int?
        var flopsNote: String
        var symbolic: Set<String>
        var overrides: [String: Int]
        var precision: ModelPrecision

        init(model: String, overrides: [String: Int]) throws {
            let graph = try ModelSource.load(model)
            var opsets = graph.opsetImports
            if opsets.isEmpty { opsets[""] = 0 }
            var counts: [String: Int] = [:]
            func visit(_ g: Graph) {
                for node in g.nodes {
                    counts[node.domain.isEmpty ? node.opType : "\(node.domain).\(node.opType)", default: 0] += 1
                    for case .graph(let sub) in node.attributes.values { visit(sub) }
                }
            }
            visit(graph)
            let backend = CPUBackend()
            let unsupported = counts.keys.filter { name in
                let parts = name.split(separator: ".", maxSplits: 1)
                let (domain, op) = parts.count == 2 ? (String(parts[0]), String(parts[1])) : ("", name)
                return !backend.kernels.knows(opType: op, domain: domain)
                    && !Session.runsWithoutKernel(opType: op, domain: domain)
            }.sorted()
            let parameters = graph.initializers.values.reduce(0) { $0 + $1.elementCount }
            let parameterBytes = graph.initializers.values.reduce(0) { $0 + $1.byteCount }

            // FLOPs per sample: plan with every symbolic dimension at 1 (or its --dim value).
            var flops: Int?
            var flopsNote = ""
            if unsupported.isEmpty {
                var types: [String: TensorType] = [:]
                for input in graph.runtimeInputs {
                    let dims = (input.dimensions ?? []).map { dim -> Int in
                        switch dim {
                        case .fixed(let n): return n
                        case .symbolic(let name): return overrides[name] ?? 1
                        }
                    }
                    types[input.name] = TensorType(dtype: input.dtype, shape: Shape(dims))
                }
                do {
                    let plan = try ExecutionPlan(
                        graph: graph.capturingOuterValues(), inputTypes: types, evaluator: backend)
                    flops = FLOPCounter.count(plan)
                } catch {
                    flopsNote = "not computed: \(error)"
                }
            } else {
                flopsNote = "not computed: the model has unsupported operators"
            }
            let symbolic = Set(
                graph.runtimeInputs.flatMap {
                    ($0.dimensions ?? []).compactMap { dim -> String? in
                        if case .symbolic(let name) = dim { return name }
                        return nil
                    }
                })
            self.graph = graph
            self.opsets = opsets
            self.counts = counts
            self.unsupported = unsupported
            self.parameters = parameters
            self.parameterBytes = parameterBytes
            self.flops = flops
            self.flopsNote = flopsNote
            self.symbolic = symbolic
            self.overrides = overrides
            self.precision = ModelPrecision(graph)
        }
    }

    func printJSON(_ summary: Summary) throws {
        let (graph, opsets, counts, unsupported, parameters, parameterBytes, flops, precision) = (
            summary.graph, summary.opsets, summary.counts, summary.unsupported, summary.parameters,
            summary.parameterBytes, summary.flops, summary.precision
        )
        let report = InspectReport(
            model: model, name: graph.name,
            opsets: Dictionary(
                uniqueKeysWithValues: opsets.map { ($0.key.isEmpty ? "ai.onnx" : $0.key, $0.value) }),
            inputs: graph.runtimeInputs.map {
                .init(name: $0.name, dtype: $0.dtype.rawValue, shape: $0.dimensions?.map(\.description) ?? [])
            },
            outputs: graph.outputs.map {
                .init(name: $0.name, dtype: $0.dtype.rawValue, shape: $0.dimensions?.map(\.description) ?? [])
            },
            operators: counts, nodes: counts.values.reduce(0, +), parameters: parameters,
            parameterBytes: parameterBytes, flopsPerSample: flops, unsupportedOperators: unsupported,
            weightTypes: precision.weightTypes, quantization: precision.quantization)
        let encoder = ReportJSON.encoder(pretty: true, snakeCase: false)
        let data = try encoder.encode(report)
        print(String(decoding: data, as: UTF8.self))
    }

    func printText(_ summary: Summary) {
        let (graph, opsets, counts, unsupported, parameters, parameterBytes, flops, precision) = (
            summary.graph, summary.opsets, summary.counts, summary.unsupported, summary.parameters,
            summary.parameterBytes, summary.flops, summary.precision
        )
        let (symbolic, overrides, flopsNote) = (summary.symbolic, summary.overrides, summary.flopsNote)
        var lines: [String] = []
        lines.append("model: \(model) (graph '\(graph.name)')")
        lines.append(
            "opsets: "
                + opsets.sorted { $0.key < $1.key }.map { "\($0.key.isEmpty ? "ai.onnx" : $0.key) \($0.value)" }.joined(
                    separator: ", "))
        lines.append("inputs:")
        for input in graph.runtimeInputs { lines.append("  \(input.name): \(input.dtype) \(input.shapeDescription)") }
        lines.append("outputs:")
        for output in graph.outputs { lines.append("  \(output.name): \(output.dtype) \(output.shapeDescription)") }
        lines.append(
            "parameters: \(Formatting.grouped(parameters)) (\(Formatting.bytes(parameterBytes))) in \(graph.initializers.count) initializers"
        )
        lines.append(
            "weights by type: "
                + precision.weightTypes.sorted { ($1.value, $0.key) < ($0.value, $1.key) }.map {
                    "\($0.key) ×\($0.value)"
                }
                .joined(separator: ", "))
        lines.append("quantized: \(precision.quantization ?? "no")")
        let sorted = counts.sorted { ($1.value, $0.key) < ($0.value, $1.key) }
        lines.append(
            "operators (\(counts.values.reduce(0, +)) nodes): "
                + sorted.map { "\($0.key) ×\($0.value)" }.joined(separator: ", "))
        if let flops {
            let at =
                symbolic.isEmpty
                ? "" : " (with " + symbolic.sorted().map { "\($0)=\(overrides[$0] ?? 1)" }.joined(separator: ", ") + ")"
            lines.append("FLOPs per sample: \(Formatting.grouped(flops))\(at)")
        } else {
            lines.append("FLOPs per sample: \(flopsNote)")
        }
        lines.append(
            "cpu: "
                + (unsupported.isEmpty
                    ? "every operator supported" : "unsupported: \(unsupported.joined(separator: ", "))"))
        let openCLKernels = GPUKernelTable.operatorNames
        let gpuMissing = counts.keys.filter { !openCLKernels.contains($0) && !["Shape", "Size"].contains($0) }.sorted()
        lines.append(
            "opencl: "
                + (gpuMissing.isEmpty
                    ? "every operator has a kernel"
                    : "no kernel for \(gpuMissing.joined(separator: ", ")) (they run on the host between device kernels, or are folded when their inputs are constant)")
        )
        lines.append("cuda: the same kernels as opencl")
        print(lines.joined(separator: "\n"))
    }
}

/// `inspect --json`: the model's interface, operators, size and cost.
private struct InspectReport: Encodable {
    struct Value: Encodable {
        var name: String
        var dtype: String
        var shape: [String]
    }
    var model: String
    var name: String
    var opsets: [String: Int]
    var inputs: [Value]
    var outputs: [Value]
    var operators: [String: Int]
    var nodes: Int
    var parameters: Int
    var parameterBytes: Int
    /// null when it could not be computed (unsupported operators, shapes unknown until run time).
    var flopsPerSample: Int?
    var unsupportedOperators: [String]
    /// Initializers per element type, and how the model is quantized (null when it is not).
    var weightTypes: [String: Int]
    var quantization: String?

    enum CodingKeys: String, CodingKey {
        case model, name, opsets, inputs, outputs, operators, nodes, parameters, quantization
        case parameterBytes = "parameter_bytes"
        case flopsPerSample = "flops_per_sample"
        case unsupportedOperators = "unsupported_operators"
        case weightTypes = "weight_types"
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(model, forKey: .model)
        try c.encode(name, forKey: .name)
        try c.encode(opsets, forKey: .opsets)
        try c.encode(inputs, forKey: .inputs)
        try c.encode(outputs, forKey: .outputs)
        try c.encode(operators, forKey: .operators)
        try c.encode(nodes, forKey: .nodes)
        try c.encode(parameters, forKey: .parameters)
        try c.encode(parameterBytes, forKey: .parameterBytes)
        try c.encode(flopsPerSample, forKey: .flopsPerSample)
        try c.encode(unsupportedOperators, forKey: .unsupportedOperators)
        try c.encode(weightTypes, forKey: .weightTypes)
        try c.encode(quantization, forKey: .quantization)
    }
}
