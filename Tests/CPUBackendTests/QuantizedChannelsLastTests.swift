import CKernels
import CPUBackend
import Foundation
import InferenceGraph
import InferenceRuntime
import InferenceTensor
import InferenceTestSupport
import Testing

/// int8 networks passing channels last (`FusionRules.channelsLastQuantized`, where AVX-512 VNNI runs): the same
/// bytes as the network planned in planes, the marks where planning puts them, and the marks refused where a model
/// names them on layers that cannot take them.
struct QuantizedChannelsLastTests {
    struct Case: CustomStringConvertible, Sendable {
        var cin: Int, c: Int, out: Int, stride: Int, height: Int, width: Int
        var batch = 1, signed = false
        var description: String {
            "\(batch)x\(cin)x\(height)x\(width) c\(c) out\(out) s\(stride)\(signed ? " int8" : "")"
        }
    }

    /// Channel counts in whole quads and not (6: its values stay in planes), both depthwise strides, rows that span
    /// several position blocks, two images, int8 activations (read in planes by the 1x1 layers, written channels
    /// last).
    static let cases: [Case] = [
        Case(cin: 3, c: 8, out: 12, stride: 1, height: 14, width: 15),
        Case(cin: 4, c: 16, out: 24, stride: 2, height: 23, width: 20),
        Case(cin: 3, c: 6, out: 8, stride: 2, height: 9, width: 13),
        Case(cin: 3, c: 8, out: 16, stride: 1, height: 11, width: 9, batch: 2),
        Case(cin: 3, c: 8, out: 16, stride: 2, height: 12, width: 12, signed: true),
    ]

    static var runs: Bool { ck_qconv4_available() != 0 && ck_depthwise_dq_nhwc_available() != 0 }

    static func marks(_ graph: Graph, _ c: Case, backend: CPUBackend) throws -> [String: (Bool, Bool)] {
        let plan = try ExecutionPlan(
            graph: graph,
            inputTypes: [
                "x": TensorType(dtype: c.signed ? .int8 : .uint8, shape: [c.batch, c.cin, c.height, c.width])
            ],
            fusion: backend.fusion)
        var result: [String: (Bool, Bool)] = [:]
        for step in plan.steps {
            result[step.node.name] = (
                step.node.attributes[FusionRules.channelsLastInputAttribute] != nil,
                step.node.attributes[FusionRules.channelsLastOutputAttribute] != nil
            )
        }
        return result
    }

    @Test(arguments: cases) func matchesThePlanesLayout(_ c: Case) throws {
        let graph = try QDQNetwork.invertedResiduals(
            cin: c.cin, c: c.c, out: c.out, stride: c.stride, signed: c.signed)
        let marks = try Self.marks(graph, c, backend: CPUBackend(threads: 1))
        let planesMarks = try Self.marks(graph, c, backend: CPUBackend(threads: 1, channelsLast: false))
        #expect(planesMarks.values.allSatisfy { !$0.0 && !$0.1 }, "\(planesMarks)")
        if Self.runs {
            // Fused as QDQ models are (the nodes keep the Conv's names), marked between the stem and the head.
            let quads = c.c % 4 == 0 && !c.signed
            #expect(marks["stem"].map { $0 == (false, quads) } ?? false, "\(marks)")
            #expect(marks["b1_dw"].map { $0 == (true, !c.signed) } ?? false, "\(marks)")
            #expect(marks["b1_expand"].map { $0 == (quads, true) } ?? false, "\(marks)")
            #expect(marks["b1_project"].map { $0 == (!c.signed, quads) } ?? false, "\(marks)")
            #expect(marks["b2_project"].map { $0.0 == !c.signed } ?? false, "\(marks)")
            // The head's output is read by the graph output's DequantizeLinear: planes.
            #expect(marks["head"].map { $0.1 == false } ?? false, "\(marks)")
        } else {
            #expect(marks.values.allSatisfy { !$0.0 && !$0.1 }, "\(marks)")
        }
        var rng = SplitMix64(seed: 99)
        let count = c.batch * c.cin * c.height * c.width
        let bytes = (0..<count).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        let x =
            c.signed
            ? try Tensor(shape: [c.batch, c.cin, c.height, c.width], scalars: bytes.map { Int8(bitPattern: $0) })
            : try Tensor(shape: [c.batch, c.cin, c.height, c.width], scalars: bytes)
        let feeds = [NamedTensor(name: "x", tensor: x)]
        let planes = try Session(graph: graph, backend: CPUBackend(threads: 1, channelsLast: false)).run(feeds)
            .outputs[0].tensor.scalars(as: Float.self)
        #expect(Set(planes).count > 8, "the network's output is not constant: \(planes.prefix(20))")
        for threads in [1, 2] {
            let chained = try Session(graph: graph, backend: CPUBackend(threads: threads)).run(feeds).outputs[0].tensor
                .scalars(as: Float.self)
            // Integer sums and the depthwise layers' float sums in the same order: the same bits.
            let differing = zip(chained, planes).filter { $0.0.bitPattern != $0.1.bitPattern }.count
            #expect(
                chained.count == planes.count && differing == 0,
                "\(c), \(threads) threads: \(differing) of \(planes.count) differ")
        }
    }

    /// A model naming the marks on layers that cannot take them is refused, naming the node and the attribute: int8
    /// activations read into a QLinearConv (the in-place windows read unsigned quads), a QLinearConv at stride 3,
    /// a dilated depthwise layer.
    @Test(arguments: [FusionRules.channelsLastInputAttribute, FusionRules.channelsLastOutputAttribute])
    func marksElsewhereAreRefused(_ attribute: String) throws {
        let reads = attribute == FusionRules.channelsLastInputAttribute
        for kind in [reads ? "signed" : "stride3", "dilated"] {
            var net = QDQNetwork(signed: kind == "signed")
            let marked: [String: AttributeValue] = [attribute: .int(1)]
            switch kind {
            case "dilated":
                try net.conv("marked", "x", "y0", cin: 8, cout: 8, kernel: 3, group: 8, dilation: 2, attributes: marked)
            default:
                try net.conv(
                    "marked", "x", "y0", cin: 8, cout: 8, kernel: 1, stride: kind == "stride3" ? 3 : 1,
                    attributes: marked)
            }
            let graph = try net.graph(input: "x", output: "y0")
            let x =
                kind == "signed"
                ? try Tensor(shape: [1, 8, 6, 6], scalars: [Int8](repeating: 3, count: 288))
                : try Tensor(shape: [1, 8, 6, 6], scalars: [UInt8](repeating: 3, count: 288))
            do {
                _ = try Session(graph: graph, backend: CPUBackend(threads: 1)).run([NamedTensor(name: "x", tensor: x)])
                Issue.record("\(kind) with \(attribute) ran")
            } catch {
                #expect("\(error)".contains("marked"), "\(error)")
                #expect("\(error)".contains(attribute), "\(error)")
            }
        }
    }
}
