import CKernels
import CPUBackend
import Foundation
import InferenceGraph
import InferenceRuntime
import InferenceTensor
import Testing

/// Depthwise chains passed channels last (`ChannelsLastChains`): 1x1 expansion → depthwise → 1x1 projection, with
/// and without a squeeze-and-excitation reader of the depthwise output, give the values of the same graph kept in
/// planes (whose kernels are tested against double references), on 1 and 2 threads, on the ISA path this run uses;
/// planning marks exactly the values the rules allow; a model naming the attributes where the kernels cannot read
/// that layout is refused with the node's name.
struct ChannelsLastChainTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var inChannels: Int, channels: Int, outChannels: Int, height: Int, width: Int, kernel: Int, stride: Int
        /// The activation after each of the three convolutions ("" for none).
        var activations: [String]
        /// A squeeze-and-excitation block (pool, gate, Mul) between the depthwise layer and the projection.
        var excitation = false
        /// The gate as the Mul's first input.
        var gateFirst = false
        var bias = true
        var testDescription: String {
            "\(inChannels)->\(channels)->\(outChannels) at \(height)x\(width) k\(kernel) s\(stride) \(activations)"
                + (excitation ? " SE" : "") + (bias ? "" : " no bias")
        }
    }

    static let cases: [Case] = [
        // MobileNetV2's late blocks: whole blocks of 16 channels, 7x7 and 14x14 planes, Relu6.
        Case(
            inChannels: 16, channels: 96, outChannels: 24, height: 14, width: 14, kernel: 3, stride: 1,
            activations: ["Clip", "Clip", ""]),
        Case(
            inChannels: 24, channels: 144, outChannels: 40, height: 14, width: 14, kernel: 3, stride: 2,
            activations: ["Clip", "Clip", ""]),
        // Channels not a multiple of either vector width (a partial block), odd planes, 5x5 and 7x7 windows.
        Case(
            inChannels: 10, channels: 40, outChannels: 12, height: 9, width: 11, kernel: 5, stride: 1,
            activations: ["HardSwish", "HardSwish", ""]),
        Case(
            inChannels: 7, channels: 36, outChannels: 9, height: 13, width: 10, kernel: 7, stride: 2,
            activations: ["Relu", "Swish", "Relu"], bias: false),
        Case(
            inChannels: 3, channels: 20, outChannels: 5, height: 30, width: 29, kernel: 3, stride: 2,
            activations: ["", "", ""]),
        // Rows of more than one strip, split by rows on two threads.
        Case(
            inChannels: 8, channels: 48, outChannels: 16, height: 40, width: 20, kernel: 3, stride: 1,
            activations: ["Swish", "Swish", ""]),
        // Squeeze-and-excitation blocks: their pool and gate multiply read the depthwise output channels last.
        Case(
            inChannels: 16, channels: 64, outChannels: 16, height: 14, width: 14, kernel: 5, stride: 2,
            activations: ["Swish", "Swish", ""], excitation: true),
        Case(
            inChannels: 8, channels: 52, outChannels: 12, height: 28, width: 28, kernel: 3, stride: 1,
            activations: ["HardSwish", "HardSwish", ""], excitation: true, gateFirst: true),
        // 28x28 planes: four times as wide as the ends.
        Case(
            inChannels: 8, channels: 48, outChannels: 12, height: 28, width: 28, kernel: 3, stride: 1,
            activations: ["Clip", "Clip", ""]),
    ]

    static func random(_ count: Int) -> [Float] { (0..<count).map { _ in Float.random(in: -1...1) } }

    static func conv(
        _ name: String, _ input: String, _ output: String, weight: String, bias: String?,
        attributes: [String: AttributeValue]
    ) -> Node {
        Node(
            name: name, opType: "Conv", inputs: [input, weight] + (bias.map { [$0] } ?? []), outputs: [output],
            attributes: attributes)
    }

    /// The chain's graph: each convolution followed by its activation as exporters write it.
    static func graph(_ c: Case) throws -> Graph {
        var nodes: [Node] = []
        var initializers: [String: Tensor] = [
            "lo": try Tensor(shape: [], scalars: [Float(0)]), "hi": try Tensor(shape: [], scalars: [Float(6)]),
        ]
        func activate(_ kind: String, _ value: String, _ name: String) -> String {
            let out = "\(name)_act"
            switch kind {
            case "": return value
            case "Clip": nodes.append(Node(opType: "Clip", inputs: [value, "lo", "hi"], outputs: [out]))
            case "Swish":
                nodes.append(Node(opType: "Sigmoid", inputs: [value], outputs: ["\(name)_sig"]))
                nodes.append(Node(opType: "Mul", inputs: [value, "\(name)_sig"], outputs: [out]))
            default: nodes.append(Node(opType: kind, inputs: [value], outputs: [out]))
            }
            return out
        }
        func layer(
            _ name: String, _ input: String, filters: Int, perFilter: [Int], attributes: [String: AttributeValue]
        )
            throws -> String
        {
            initializers["\(name)_w"] = try Tensor(
                shape: Shape([filters] + perFilter), scalars: random(filters * perFilter.reduce(1, *)))
            if c.bias { initializers["\(name)_b"] = try Tensor(shape: [filters], scalars: random(filters)) }
            nodes.append(
                conv(
                    name, input, name, weight: "\(name)_w", bias: c.bias ? "\(name)_b" : nil, attributes: attributes))
            return name
        }
        let pad = c.kernel / 2
        var v = activate(
            c.activations[0],
            try layer("expand", "x", filters: c.channels, perFilter: [c.inChannels, 1, 1], attributes: [:]),
            "expand")
        v = activate(
            c.activations[1],
            try layer(
                "depthwise", v, filters: c.channels, perFilter: [1, c.kernel, c.kernel],
                attributes: [
                    "group": .int(c.channels), "strides": .ints([c.stride, c.stride]),
                    "pads": .ints([pad, pad, pad, pad]),
                ]), "depthwise")
        if c.excitation {
            nodes.append(Node(name: "pool", opType: "GlobalAveragePool", inputs: [v], outputs: ["pooled"]))
            nodes.append(Node(opType: "Sigmoid", inputs: ["pooled"], outputs: ["gate"]))
            nodes.append(
                Node(
                    name: "scale", opType: "Mul", inputs: c.gateFirst ? ["gate", v] : [v, "gate"], outputs: ["excited"])
            )
            v = "excited"
        }
        v = activate(
            c.activations[2],
            try layer("project", v, filters: c.outChannels, perFilter: [c.channels, 1, 1], attributes: [:]), "project")
        nodes.append(Node(opType: "Identity", inputs: [v], outputs: ["y"]))
        return Graph(
            name: "chain", inputs: [ValueInfo(name: "x", dtype: .float32, dimensions: nil)],
            outputs: [ValueInfo(name: "y", dtype: .float32, dimensions: nil)], nodes: nodes, initializers: initializers)
    }

    /// The marks planning puts on each convolution: (reads channels last, writes channels last) by node name.
    static func marks(_ graph: Graph, _ c: Case) throws -> [String: (Bool, Bool)] {
        let plan = try ExecutionPlan(
            graph: graph,
            inputTypes: ["x": TensorType(dtype: .float32, shape: [1, c.inChannels, c.height, c.width])],
            fusion: CPUBackend(threads: 1).fusion)
        var result: [String: (Bool, Bool)] = [:]
        for step in plan.steps where ["Conv", "GlobalAveragePool", "Mul"].contains(step.node.opType) {
            result[step.node.name] = (
                step.node.attributes[FusionRules.channelsLastInputAttribute] != nil,
                step.node.attributes[FusionRules.channelsLastOutputAttribute] != nil
            )
        }
        return result
    }

    @Test(arguments: cases) func matchesThePlanesLayout(_ c: Case) throws {
        let graph = try Self.graph(c)
        let marks = try Self.marks(graph, c)
        let outWidth = (c.width + 2 * (c.kernel / 2) - c.kernel) / c.stride + 1
        if ck_depthwise_nhwc_lanes() > 0 {
            // The ends at most half as wide as the depthwise layer (a quarter over 28x28 and more).
            let thin = c.channels / (outWidth >= 28 ? 4 : 2)
            let output = c.outChannels <= thin, input = c.inChannels <= thin
            #expect(marks["expand"]?.0 == false && marks["expand"]?.1 == input, "\(marks)")
            #expect(marks["depthwise"]?.0 == input && marks["depthwise"]?.1 == output, "\(marks)")
            #expect(marks["project"]?.0 == output && marks["project"]?.1 == false, "\(marks)")
            if c.excitation {
                #expect(marks["pool"]?.0 == output && marks["pool"]?.1 == false, "\(marks)")
                #expect(marks["scale"]?.0 == output && marks["scale"]?.1 == output, "\(marks)")
            }
        } else {
            #expect(marks.values.allSatisfy { !$0.0 && !$0.1 }, "\(marks)")
        }
        let feeds = [
            NamedTensor(
                name: "x",
                tensor: try Tensor(
                    shape: [1, c.inChannels, c.height, c.width],
                    scalars: Self.random(c.inChannels * c.height * c.width)))
        ]
        let planes = try Session(graph: graph, backend: CPUBackend(threads: 1, channelsLast: false)).run(feeds)
            .outputs[0].tensor.scalars(as: Float.self)
        for threads in [1, 2] {
            let chained = try Session(graph: graph, backend: CPUBackend(threads: threads)).run(feeds).outputs[0].tensor
                .scalars(as: Float.self)
            // The 1x1 layers may run another kernel over planes (the direct one sums the bias first), so the two
            // differ in the last bits; a value read in the wrong layout differs by about its own size.
            let differing = zip(chained, planes).filter { abs($0.0 - $0.1) > 2e-5 * max(1, abs($0.1)) }.count
            let largest = zip(chained, planes).map { abs($0.0 - $0.1) }.max() ?? 0
            #expect(
                chained.count == planes.count && differing == 0,
                "\(c.testDescription), \(threads) threads: \(differing) of \(planes.count) differ, by up to \(largest)")
        }
    }

    /// Planning's limits: equal widths at both ends, rows of 48 and more, a depthwise output read by two nodes.
    @Test func marksOnlyWhereTheRulesAllow() throws {
        guard ck_depthwise_nhwc_lanes() > 0 else { return }
        let equal = Case(
            inChannels: 32, channels: 32, outChannels: 32, height: 14, width: 14, kernel: 3, stride: 1,
            activations: ["Relu", "", "Relu"])
        #expect(try Self.marks(Self.graph(equal), equal).values.allSatisfy { !$0.0 && !$0.1 })
        let wide = Case(
            inChannels: 8, channels: 48, outChannels: 8, height: 8, width: 56, kernel: 3, stride: 1,
            activations: ["", "", ""])
        #expect(try Self.marks(Self.graph(wide), wide).values.allSatisfy { !$0.0 && !$0.1 })
        // Over 28x28 planes, ends wider than a quarter (MobileNetV3's 40 -> 120 -> 40): neither side.
        let excited = Case(
            inChannels: 16, channels: 48, outChannels: 16, height: 28, width: 28, kernel: 3, stride: 1,
            activations: ["", "", ""], excitation: true)
        #expect(try Self.marks(Self.graph(excited), excited).values.allSatisfy { !$0.0 && !$0.1 })
        // The depthwise output read by a third node besides an excitation block's pool and Mul: its output stays
        // in planes, its input too (a 14x14 plane passes it only over planes of 14 and less: here 7x7, so it does).
        var graph = try Self.graph(
            Case(
                inChannels: 16, channels: 64, outChannels: 16, height: 14, width: 14, kernel: 3, stride: 2,
                activations: ["", "", ""], excitation: true))
        graph.nodes.append(Node(opType: "Relu", inputs: ["depthwise"], outputs: ["side"]))
        graph.outputs.append(ValueInfo(name: "side", dtype: .float32, dimensions: nil))
        let plan = try ExecutionPlan(
            graph: graph, inputTypes: ["x": TensorType(dtype: .float32, shape: [1, 16, 14, 14])],
            fusion: CPUBackend(threads: 1).fusion)
        for step in plan.steps {
            let marked = (
                step.node.attributes[FusionRules.channelsLastInputAttribute] != nil,
                step.node.attributes[FusionRules.channelsLastOutputAttribute] != nil
            )
            switch step.node.name {
            case "expand": #expect(marked == (false, true))
            case "depthwise": #expect(marked == (true, false))
            default: #expect(marked == (false, false), "\(step.node.name)")
            }
        }
    }

    /// A model naming the attributes itself on layers the channels-last kernels do not run is refused, naming the
    /// node, rather than read in the wrong layout.
    @Test(arguments: [FusionRules.channelsLastInputAttribute, FusionRules.channelsLastOutputAttribute])
    func attributesOnOtherLayersAreRefused(_ attribute: String) throws {
        let cases: [(name: String, weight: [Int], attributes: [String: AttributeValue])] = [
            ("dense3x3", [4, 4, 3, 3], ["pads": .ints([1, 1, 1, 1])]),
            ("strided1x1", [4, 4, 1, 1], ["strides": .ints([2, 2])]),
            ("dilatedDepthwise", [4, 1, 3, 3], ["group": .int(4), "dilations": .ints([2, 2])]),
        ]
        for c in cases {
            var attributes = c.attributes
            attributes[attribute] = .int(1)
            let graph = Graph(
                name: "marked", inputs: [ValueInfo(name: "x", dtype: .float32, dimensions: nil)],
                outputs: [ValueInfo(name: "y", dtype: .float32, dimensions: nil)],
                nodes: [Self.conv(c.name, "x", "y", weight: "w", bias: nil, attributes: attributes)],
                initializers: ["w": try Tensor(shape: Shape(c.weight), scalars: Self.random(c.weight.reduce(1, *)))])
            let feeds = [NamedTensor(name: "x", tensor: try Tensor(shape: [1, 4, 9, 9], scalars: Self.random(324)))]
            do {
                _ = try Session(graph: graph, backend: CPUBackend(threads: 1)).run(feeds)
                Issue.record("\(c.name) with \(attribute) ran")
            } catch {
                #expect("\(error)".contains(c.name), "\(error)")
                #expect("\(error)".contains(attribute), "\(error)")
            }
        }
    }
}

extension ChannelsLastChainTests {
    /// The pool and Mul of an excitation block take the layout only as planning marks them: a max pool, a Mul by
    /// something other than a [1, C, 1, 1] gate, or a mark naming no input are errors naming the node.
    @Test(arguments: ["max", "vector", "index"]) func excitationAttributesElsewhereAreRefused(_ kind: String) throws {
        let node: Node
        var initializers: [String: Tensor] = [:]
        switch kind {
        case "max":
            node = Node(
                name: "marked", opType: "GlobalMaxPool", inputs: ["x"], outputs: ["y"],
                attributes: [FusionRules.channelsLastInputAttribute: .int(1)])
        default:
            // A [W] vector broadcasts along the rows' positions, not the channels.
            initializers["s"] = try Tensor(
                shape: kind == "vector" ? [9] : [1, 4, 1, 1], scalars: Self.random(kind == "vector" ? 9 : 4))
            node = Node(
                name: "marked", opType: "Mul", inputs: ["x", "s"], outputs: ["y"],
                attributes: [FusionRules.channelsLastInputAttribute: .int(kind == "index" ? 3 : 1)])
        }
        let graph = Graph(
            name: "marked", inputs: [ValueInfo(name: "x", dtype: .float32, dimensions: nil)],
            outputs: [ValueInfo(name: "y", dtype: .float32, dimensions: nil)], nodes: [node],
            initializers: initializers)
        let feeds = [NamedTensor(name: "x", tensor: try Tensor(shape: [1, 4, 9, 9], scalars: Self.random(324)))]
        do {
            _ = try Session(graph: graph, backend: CPUBackend(threads: 1)).run(feeds)
            Issue.record("\(kind) ran")
        } catch {
            #expect(
                "\(error)".contains("marked") && "\(error)".contains(FusionRules.channelsLastInputAttribute), "\(error)"
            )
        }
    }
}
