import CPUBackend
import Foundation
import InferenceGraph
import InferenceRuntime
import InferenceTensor
import Testing

/// MaxPool on bytes (`ck_maxpool_8`): int8 and uint8 models' MaxPool against the window formula, and
/// DequantizeLinear → MaxPool → QuantizeLinear with one scale and zero point planned into it (the same bits as the
/// three nodes in float).
struct QuantizedMaxPoolTests {
    struct Case: CustomStringConvertible, Sendable {
        var kernel: Int, stride: Int, pad: Int, ceil: Bool = false, height: Int, width: Int, signed: Bool
        var description: String {
            "k\(kernel) s\(stride) p\(pad)\(ceil ? " ceil" : "") \(height)x\(width)\(signed ? " int8" : "")"
        }
    }

    /// ResNet's 3x3/2 pad 1 over rows of 16-output groups and a partial last one, 2x2/2, stride 1, a 5x5 ceil-mode
    /// window whose last one hangs past the edge, stride 3 (outputs one at a time), int8.
    static let cases: [Case] = [
        Case(kernel: 3, stride: 2, pad: 1, height: 40, width: 75, signed: false),
        Case(kernel: 2, stride: 2, pad: 0, height: 16, width: 34, signed: true),
        Case(kernel: 3, stride: 1, pad: 1, height: 9, width: 37, signed: false),
        Case(kernel: 5, stride: 2, pad: 2, ceil: true, height: 14, width: 20, signed: true),
        Case(kernel: 3, stride: 3, pad: 0, ceil: true, height: 11, width: 13, signed: false),
    ]

    static func attributes(_ c: Case) -> [String: AttributeValue] {
        [
            "kernel_shape": .ints([c.kernel, c.kernel]), "strides": .ints([c.stride, c.stride]),
            "pads": .ints([c.pad, c.pad, c.pad, c.pad]), "ceil_mode": .int(c.ceil ? 1 : 0),
        ]
    }

    static func input(_ c: Case, planes: Int) throws -> Tensor {
        var rng = SplitMix64(seed: UInt64(c.kernel * 100 + c.width))
        let bytes = (0..<planes * c.height * c.width).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        let shape: Shape = [1, planes, c.height, c.width]
        return c.signed
            ? try Tensor(shape: shape, scalars: bytes.map { Int8(bitPattern: $0) })
            : try Tensor(shape: shape, scalars: bytes)
    }

    static func values(_ t: Tensor, signed: Bool) throws -> [Int] {
        signed ? try t.scalars(as: Int8.self).map(Int.init) : try t.scalars(as: UInt8.self).map(Int.init)
    }

    @Test(arguments: cases) func bytesMatchTheWindows(_ c: Case) throws {
        let planes = 3
        let graph = Graph(
            name: "pool", inputs: [ValueInfo(name: "x", dtype: c.signed ? .int8 : .uint8, dimensions: nil)],
            outputs: [ValueInfo(name: "y", dtype: c.signed ? .int8 : .uint8, dimensions: nil)],
            nodes: [
                Node(name: "pool", opType: "MaxPool", inputs: ["x"], outputs: ["y"], attributes: Self.attributes(c))
            ])
        let x = try Self.input(c, planes: planes)
        let xs = try Self.values(x, signed: c.signed)
        let span = c.height + 2 * c.pad - c.kernel
        let outH = (c.ceil ? (span + c.stride - 1) / c.stride : span / c.stride) + 1
        let outW =
            (c.ceil
                ? (c.width + 2 * c.pad - c.kernel + c.stride - 1) / c.stride
                : (c.width + 2 * c.pad - c.kernel) / c.stride) + 1
        var want: [Int] = []
        for p in 0..<planes {
            for oy in 0..<outH {
                for ox in 0..<outW {
                    var best = Int.min
                    for ky in 0..<c.kernel {
                        for kx in 0..<c.kernel {
                            let (iy, ix) = (oy * c.stride + ky - c.pad, ox * c.stride + kx - c.pad)
                            guard iy >= 0, iy < c.height, ix >= 0, ix < c.width else { continue }
                            best = max(best, xs[(p * c.height + iy) * c.width + ix])
                        }
                    }
                    want.append(best)
                }
            }
        }
        for threads in [1, 2] {
            let y = try Session(graph: graph, backend: CPUBackend(threads: threads)).run([
                NamedTensor(name: "x", tensor: x)
            ])
            .outputs[0].tensor
            #expect(y.shape == [1, planes, outH, outW], "\(c)")
            let got = try Self.values(y, signed: c.signed)
            #expect(got == want, "\(c), \(threads) threads: \(zip(got, want).filter { $0 != $1 }.count) differ")
        }
    }

    /// DQ → MaxPool → Q with the DQ's scale and zero point runs on the bytes; with another output scale it stays in
    /// float. Either way the bits of the three nodes.
    @Test(arguments: cases) func qdqPoolMatchesTheThreeNodes(_ c: Case) throws {
        for sameScale in [true, false] {
            let zero =
                c.signed ? try Tensor(shape: [], scalars: [Int8(-7)]) : try Tensor(shape: [], scalars: [UInt8(121)])
            let graph = Graph(
                name: "qpool", inputs: [ValueInfo(name: "x", dtype: c.signed ? .int8 : .uint8, dimensions: nil)],
                outputs: [ValueInfo(name: "y", dtype: .float32, dimensions: nil)],
                nodes: [
                    Node(name: "dq", opType: "DequantizeLinear", inputs: ["x", "s", "z"], outputs: ["xf"]),
                    Node(
                        name: "pool", opType: "MaxPool", inputs: ["xf"], outputs: ["pf"], attributes: Self.attributes(c)
                    ),
                    Node(
                        name: "q", opType: "QuantizeLinear", inputs: ["pf", sameScale ? "s" : "s2", "z"],
                        outputs: ["pq"]),
                    Node(name: "dqy", opType: "DequantizeLinear", inputs: ["pq", "s", "z"], outputs: ["y"]),
                ],
                initializers: [
                    "s": try Tensor(shape: [], scalars: [Float(0.0371)]),
                    "s2": try Tensor(shape: [], scalars: [Float(0.05)]), "z": zero,
                ], opsetImports: ["": 17])
            let x = try Self.input(c, planes: 4)
            let feeds = [NamedTensor(name: "x", tensor: x)]
            let plan = try ExecutionPlan(
                graph: graph, inputTypes: ["x": TensorType(dtype: x.dtype, shape: x.shape)],
                fusion: CPUBackend(threads: 1).fusion)
            let bytePool = plan.steps.contains { $0.node.opType == "MaxPool" && $0.node.inputs == ["x"] }
            #expect(bytePool == sameScale, "\(plan.steps.map(\.node.opType))")
            let reference = try Session(graph: graph, backend: CPUBackend(threads: 1, fuses: false)).run(feeds)
                .outputs[0].tensor.scalars(as: Float.self)
            for threads in [1, 2] {
                let got = try Session(graph: graph, backend: CPUBackend(threads: threads)).run(feeds).outputs[0].tensor
                    .scalars(as: Float.self)
                #expect(got.map(\.bitPattern) == reference.map(\.bitPattern), "\(c) same scale \(sameScale)")
            }
        }
    }

    /// A dilated window: the QDQ pattern stays in float (the byte kernel has no dilation), and a byte MaxPool with one
    /// is an error naming the node.
    @Test func dilatedWindows() throws {
        let attributes: [String: AttributeValue] = [
            "kernel_shape": .ints([3, 3]), "strides": .ints([1, 1]), "dilations": .ints([2, 2]),
        ]
        let graph = Graph(
            name: "qpool", inputs: [ValueInfo(name: "x", dtype: .uint8, dimensions: nil)],
            outputs: [ValueInfo(name: "y", dtype: .uint8, dimensions: nil)],
            nodes: [
                Node(name: "dq", opType: "DequantizeLinear", inputs: ["x", "s", "z"], outputs: ["xf"]),
                Node(name: "pool", opType: "MaxPool", inputs: ["xf"], outputs: ["pf"], attributes: attributes),
                Node(name: "q", opType: "QuantizeLinear", inputs: ["pf", "s", "z"], outputs: ["y"]),
            ],
            initializers: [
                "s": try Tensor(shape: [], scalars: [Float(0.02)]), "z": try Tensor(shape: [], scalars: [UInt8(100)]),
            ], opsetImports: ["": 17])
        let x = try Tensor(shape: [1, 2, 9, 9], scalars: (0..<162).map { UInt8(truncatingIfNeeded: $0 * 37) })
        let feeds = [NamedTensor(name: "x", tensor: x)]
        let reference = try Session(graph: graph, backend: CPUBackend(threads: 1, fuses: false)).run(feeds).outputs[0]
            .tensor.scalars(as: UInt8.self)
        let got = try Session(graph: graph, backend: CPUBackend(threads: 1)).run(feeds).outputs[0].tensor
            .scalars(as: UInt8.self)
        #expect(got == reference)
        let bytes = Graph(
            name: "pool", inputs: [ValueInfo(name: "x", dtype: .uint8, dimensions: nil)],
            outputs: [ValueInfo(name: "y", dtype: .uint8, dimensions: nil)],
            nodes: [Node(name: "dilated", opType: "MaxPool", inputs: ["x"], outputs: ["y"], attributes: attributes)])
        #expect {
            _ = try Session(graph: bytes, backend: CPUBackend(threads: 1)).run(feeds)
        } throws: { "\($0)".contains("dilated") && "\($0)".contains("dilation") }
        // A 1-D window on bytes: an error naming the node, not a read past its rows.
        let line = Graph(
            name: "pool1d", inputs: [ValueInfo(name: "x", dtype: .uint8, dimensions: nil)],
            outputs: [ValueInfo(name: "y", dtype: .uint8, dimensions: nil)],
            nodes: [
                Node(
                    name: "line", opType: "MaxPool", inputs: ["x"], outputs: ["y"],
                    attributes: ["kernel_shape": .ints([3])])
            ])
        let row = try Tensor(shape: [1, 2, 9], scalars: (0..<18).map { UInt8($0) })
        #expect {
            _ = try Session(graph: line, backend: CPUBackend(threads: 1)).run([NamedTensor(name: "x", tensor: row)])
        } throws: { "\($0)".contains("line") && "\($0)".contains("2-D") }
    }

    /// Windows sized by attributes alone (a kernel of 2^31 - 1 columns over a 4-wide row, the padding making up the
    /// rest): on bytes the padded row, in float the window's positions over all outputs, are errors naming the node,
    /// not 4 GiB of rows or a 64 GiB table that trapped.
    @Test func hugeWindowsAreErrors() throws {
        let wide = (1 << 31) - 1
        let attributes: [String: AttributeValue] = [
            "kernel_shape": .ints([1, wide]), "pads": .ints([0, wide - 1, 0, 0]), "strides": .ints([1, 1]),
        ]
        for dtype in [DType.uint8, .float32] {
            let graph = Graph(
                name: "pool", inputs: [ValueInfo(name: "x", dtype: dtype, dimensions: nil)],
                outputs: [ValueInfo(name: "y", dtype: dtype, dimensions: nil)],
                nodes: [Node(name: "wide", opType: "MaxPool", inputs: ["x"], outputs: ["y"], attributes: attributes)])
            let x =
                dtype == .uint8
                ? try Tensor(shape: [1, 1, 1, 4], scalars: [UInt8(1), 2, 3, 4])
                : try Tensor(shape: [1, 1, 1, 4], scalars: [Float(1), 2, 3, 4])
            #expect {
                _ = try Session(graph: graph, backend: CPUBackend(threads: 2)).run([NamedTensor(name: "x", tensor: x)])
            } throws: { error in
                let text = "\(error)"
                return text.contains("'wide'") && text.contains(dtype == .uint8 ? "row" : "window positions")
            }
        }
    }
}
