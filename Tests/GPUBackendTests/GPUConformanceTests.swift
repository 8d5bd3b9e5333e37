import BuiltinModels
import CPUBackend
import Foundation
import GPUBackend
import InferenceGraph
import InferenceRuntime
import InferenceTensor
import InferenceTestSupport
import ONNXImport
import Testing

/// Every GPU device present: each CUDA device, then each OpenCL device (PoCL's CPU device in CI). The suites
/// below run each case on every one of them.
enum GPUTestDevices {
    static let all: [any Backend] = GPUDiscovery.acceleratorIDs(in: GPUDiscovery.probe()).compactMap { id in
        switch id.kind {
        case .cuda: try? CUDABackend(index: id.index)
        case .opencl: try? OpenCLBackend(index: id.index)
        case .cpu: nil
        }
    }

    /// Each GPU device opened twice, with `first` and `second` over the process's environment (a nil value removes
    /// the variable), for comparing two ways of running the same model.
    static func pairs(_ first: [String: String?], _ second: [String: String?]) -> [(any Backend, any Backend)] {
        func environment(_ changes: [String: String?]) -> [String: String] {
            var result = ProcessEnvironment.variables
            for (key, value) in changes { result[key] = value }
            return result
        }
        let (a, b) = (environment(first), environment(second))
        return GPUDiscovery.acceleratorIDs(in: GPUDiscovery.probe()).compactMap { id in
            switch id.kind {
            case .cuda:
                guard let x = try? CUDABackend(index: id.index, environment: a),
                    let y = try? CUDABackend(index: id.index, environment: b)
                else { return nil }
                return (x, y)
            case .opencl:
                guard let x = try? OpenCLBackend(index: id.index, environment: a),
                    let y = try? OpenCLBackend(index: id.index, environment: b)
                else { return nil }
                return (x, y)
            case .cpu: return nil
            }
        }
    }
}

/// Every GPU kernel against the CPU backend on fresh random inputs, and whole models end to end, on every GPU
/// device present (CI installs PoCL); elsewhere the suite is skipped by name. The single-operator cases are data
/// (`ConformanceCase.all`); a unary operator's cases come from its `UnaryOperators` row.
@Suite(.enabled(if: !GPUTestDevices.all.isEmpty, "no GPU device (install pocl-opencl-icd for OpenCL)"))
struct GPUConformanceTests {
    static let precision = TestEnvironment.packageRoot.appendingPathComponent(
        "Tests/ONNXImportTests/Fixtures/precision")

    static func random(_ count: Int, in range: ClosedRange<Float> = -2...2) -> [Float] {
        (0..<count).map { _ in Float.random(in: range) }
    }

    func compare(_ graph: Graph, _ inputs: [NamedTensor], tolerance: Double = 1e-4, _ label: String) throws {
        for device in GPUTestDevices.all { try compare(graph, inputs, on: device, tolerance: tolerance, label) }
    }

    func compare(
        _ graph: Graph, _ inputs: [NamedTensor], on device: any Backend, tolerance: Double = 1e-4, _ label: String
    ) throws {
        let label = "\(label) on \(device.device)"
        let cpu = try Session(graph: graph, backend: CPUBackend()).run(inputs).outputs
        let gpu = try Session(graph: graph, backend: device, evaluator: CPUBackend()).run(inputs).outputs
        #expect(cpu.count == gpu.count)
        for (a, b) in zip(cpu, gpu) {
            #expect(a.tensor.shape == b.tensor.shape, "\(label): \(a.tensor.shape) vs \(b.tensor.shape)")
            let report = ToleranceReport.compare(
                try b.tensor.scalars(as: Float.self), try a.tensor.scalars(as: Float.self), relative: tolerance,
                absolute: 1e-5)
            #expect(report.passed, "\(label) \(a.name): \(report)")
        }
    }

    /// For operators linear in each input (Gemm, MatMul, Conv, AveragePool): both devices compute float32 sums of
    /// `terms` products in their own order, so they may differ by twice the summation bound. Σ|terms| per output
    /// is the same graph run on |inputs| (positive α and β).
    func compareSums(_ graph: Graph, _ inputs: [NamedTensor], terms: Int, _ label: String) throws {
        let absolute = try inputs.map {
            NamedTensor(
                name: $0.name,
                tensor: try Tensor(shape: $0.tensor.shape, scalars: $0.tensor.scalars(as: Float.self).map(abs)))
        }
        let cpu = try Session(graph: graph, backend: CPUBackend()).run(inputs).outputs
        let magnitudes = try Session(graph: graph, backend: CPUBackend()).run(absolute).outputs
        for device in GPUTestDevices.all {
            let gpu = try Session(graph: graph, backend: device, evaluator: CPUBackend()).run(inputs).outputs
            #expect(cpu.count == gpu.count)
            for ((a, b), m) in zip(zip(cpu, gpu), magnitudes) {
                #expect(a.tensor.shape == b.tensor.shape, "\(label): \(a.tensor.shape) vs \(b.tensor.shape)")
                let report = ToleranceReport.compareSums(
                    try b.tensor.scalars(as: Float.self), try a.tensor.scalars(as: Float.self).map(Double.init),
                    magnitudes: try m.tensor.scalars(as: Float.self).map(Double.init), terms: terms, computations: 2.01)
                #expect(report.passed, "\(label) on \(device.device) \(a.name): \(report)")
            }
        }
    }

    /// One node of `op` reading inputs x0, x1, ... of `shapes`, drawn uniformly from `ranges` (the last range
    /// repeats for the remaining inputs).
    func single(
        _ op: String, _ shapes: [[Int]], attributes: [String: AttributeValue] = [:], opset: Int = 17, outputs: Int = 1,
        ranges: [ClosedRange<Float>] = [-2...2]
    ) throws -> (Graph, [NamedTensor]) {
        let names = shapes.indices.map { "x\($0)" }
        let graph = Graph(
            name: op,
            inputs: zip(names, shapes).map { ValueInfo(name: $0, dtype: .float32, dimensions: $1.map { .fixed($0) }) },
            outputs: (0..<outputs).map { ValueInfo(name: "y\($0)", dtype: .float32, dimensions: nil) },
            nodes: [
                Node(
                    name: op, opType: op, inputs: names, outputs: (0..<outputs).map { "y\($0)" }, attributes: attributes
                )
            ],
            opsetImports: ["": opset])
        let inputs = try zip(names, shapes).enumerated().map { index, pair in
            let range = ranges[min(index, ranges.count - 1)]
            return NamedTensor(
                name: pair.0,
                tensor: try Tensor(shape: Shape(pair.1), scalars: Self.random(pair.1.reduce(1, *), in: range)))
        }
        return (graph, inputs)
    }

    /// Every single-operator case on every device: elementwise within rtol 1e-4, sums of products within twice
    /// the float32 summation bound.
    @Test(arguments: ConformanceCase.all)
    func caseMatchesTheCPU(_ c: ConformanceCase) throws {
        let (graph, inputs) = try single(
            c.op, c.shapes, attributes: c.attributes, opset: c.opset, ranges: c.ranges)
        if let terms = c.sumTerms {
            try compareSums(graph, inputs, terms: terms, c.description)
        } else {
            try compare(graph, inputs, c.description)
        }
    }

    @Test(arguments: ["linear", "mlp", "cnn", "encoder"])
    func builtinModels(_ name: String) throws {
        let graph = try BuiltinModels.graph(named: name)
        let dims =
            graph.runtimeInputs[0].dimensions?.enumerated().map { index, dim -> Int in
                if case .fixed(let n) = dim { return n }
                return name == "encoder" ? 1 : 3
            } ?? []
        let x = try Tensor(shape: Shape(dims), scalars: (0..<dims.reduce(1, *)).map { _ in Float.random(in: 0...1) })
        try compare(graph, [NamedTensor(name: "input", tensor: x)], name)
    }

    /// Every run on the OpenCL device also carries its phases as timed by device events (markers on the
    /// profiling queue), consistent with the host's view: the compute phase took device time, and the device
    /// never reports more than the host waited.
    @Test func deviceEventsTimeEachPhase() throws {
        for openCL in GPUTestDevices.all {
            let graph = try BuiltinModels.graph(named: "cnn")
            let x = try Tensor(shape: [4, 1, 28, 28], scalars: (0..<(4 * 784)).map { _ in Float.random(in: 0...1) })
            let session = try Session(graph: graph, backend: openCL, evaluator: CPUBackend())
            for _ in 0..<5 {
                let timings = try session.run([NamedTensor(name: "input", tensor: x)]).timings
                let device = try #require(timings.device)
                #expect(device.computeNanoseconds > 0)
                let deviceTotal = device.copyInNanoseconds + device.computeNanoseconds + device.copyOutNanoseconds
                #expect(deviceTotal <= timings.totalNanoseconds + 1_000_000, "device \(device), host \(timings)")
            }
            // The CPU has no device clock of its own.
            let cpu = try Session(graph: graph, backend: CPUBackend()).run([NamedTensor(name: "input", tensor: x)])
            #expect(cpu.timings.device == nil)
        }
    }

    @Test(arguments: [
        "mlp", "cnn", "encoder", "elementwise", "shapes", "reductions", "convolutions", "recurrent", "control",
        "recurrent_variants", "volumes", "control_runtime",
    ])
    func fixtureModelsMatchOnnxruntime(_ name: String) throws {
        for device in GPUTestDevices.all { try fixtureModelMatchesOnnxruntime(name, on: device) }
    }

    func fixtureModelMatchesOnnxruntime(_ name: String, on device: any Backend) throws {
        let directory = TestEnvironment.packageRoot.appendingPathComponent("Tests/ONNXImportTests/Fixtures/models")
        let fixture = try FixtureModel(directory, name)
        let outputs = try Session(graph: fixture.graph, backend: device, evaluator: CPUBackend()).run(fixture.inputs)
            .outputs
        #expect(outputs.map(\.name) == fixture.expected.map(\.name))
        for problem in fixture.problems(outputs, label: "\(name) on \(device.device)") { Issue.record("\(problem)") }
    }

    /// float16 models (onnxruntime's converter) run on the device with no host fallback: half storage, each node
    /// widened to the float32 kernels by device casts; within two float16 steps of onnxruntime's outputs at the
    /// largest magnitude (PrecisionModelTests justifies the bound).
    @Test(arguments: ["mlp", "cnn", "encoder"])
    func float16ModelsRunOnTheDevice(_ name: String) throws {
        for openCL in GPUTestDevices.all {
            let fixture = try FixtureModel(Self.precision, "\(name)-fp16")
            let (graph, inputs, expected) = (fixture.graph, fixture.inputs, fixture.expected)
            let session = try Session(graph: graph, backend: openCL, evaluator: CPUBackend(), hostFallback: false)
            let outputs = try session.run(inputs).outputs
            for (got, want) in zip(outputs, expected) {
                #expect(got.tensor.dtype == .float16 && got.tensor.shape == want.tensor.shape)
                let a = try got.tensor.scalars(as: Float16.self).map { Double($0) }
                let b = try want.tensor.scalars(as: Float16.self).map { Double($0) }
                let scale = b.map(abs).max() ?? 1
                let difference = zip(a, b).map { abs($0 - $1) }.max() ?? .infinity
                #expect(difference <= scale / 512, "\(name): \(difference) against max |y| \(scale)")
            }
        }
    }

    /// QDQ models run on the device with no host fallback: planning makes their quantized convolutions and matrix
    /// products QLinearConv and QLinearMatMul (the integer GEMM), QuantizeLinear/DequantizeLinear kernels and the
    /// float operators run between them; within two output quantization steps of onnxruntime's unoptimized
    /// reference (float sums in another order can move a value across a rounding boundary), and the CPU's bytes
    /// (both plan the same integer nodes, whose sums are exact).
    @Test(arguments: ["mlp", "cnn", "encoder"])
    func qdqModelsRunOnTheDevice(_ name: String) throws {
        for openCL in GPUTestDevices.all {
            let fixture = try FixtureModel(Self.precision, "\(name)-qdq", expected: "reference")
            let (graph, inputs, expected) = (fixture.graph, fixture.inputs, fixture.expected)
            let last = try #require(graph.nodes.last { $0.opType == "DequantizeLinear" })
            let step = Double(try #require(graph.initializers[last.inputs[1]]?.scalars(as: Float.self).first))
            let session = try Session(graph: graph, backend: openCL, evaluator: CPUBackend(), hostFallback: false)
            let integer = try session.prepare(inputs).steps.filter { $0.implementation.contains("integer_gemm") }
            #expect(!integer.isEmpty, "\(name): no integer GEMM planned")
            let cpu = try Session(graph: graph, backend: CPUBackend()).run(inputs).outputs
            for ((got, want), reference) in zip(zip(try session.run(inputs).outputs, expected), cpu) {
                let a = try got.tensor.scalars(as: Float.self), b = try want.tensor.scalars(as: Float.self)
                let difference = zip(a, b).map { Double(abs($0 - $1)) }.max() ?? .infinity
                #expect(difference <= 2 * step + 1e-6, "\(name): \(difference), step \(step)")
                #expect(got.tensor.bitwiseEqual(reference.tensor), "\(name): not the CPU's bytes")
            }
        }
    }

    /// Cast between float32 and 8-bit integers as numbers on the device: truncation toward zero, saturation at both
    /// ends, NaN to 0, and back to float32, the CPU's bytes and values exactly.
    @Test(arguments: [DType.uint8, .int8]) func eightBitCastsMatchTheCPU(_ type: DType) throws {
        let values: [Float] = [
            0, 0.9, -0.9, 1.5, -1.5, 127.7, 128.2, -128.6, -129, 254.99, 255.5, 300, -300, .nan,
            .infinity, -.infinity, 42,
        ]
        let graph = Graph(
            name: "casts", inputs: [ValueInfo(name: "x", dtype: .float32, dimensions: nil)],
            outputs: [
                ValueInfo(name: "q", dtype: type, dimensions: nil),
                ValueInfo(name: "y", dtype: .float32, dimensions: nil),
            ],
            nodes: [
                Node(opType: "Cast", inputs: ["x"], outputs: ["q"], attributes: ["to": .int(type == .uint8 ? 2 : 3)]),
                Node(opType: "Cast", inputs: ["q"], outputs: ["y"], attributes: ["to": .int(1)]),
            ])
        let feeds = [NamedTensor(name: "x", tensor: try Tensor(shape: [values.count], scalars: values))]
        let cpu = try Session(graph: graph, backend: CPUBackend()).run(feeds).outputs
        for device in GPUTestDevices.all {
            let got = try Session(graph: graph, backend: device, evaluator: CPUBackend(), hostFallback: false)
                .run(feeds).outputs
            #expect(got[0].tensor.bitwiseEqual(cpu[0].tensor), "\(type) on \(device.device)")
            #expect(got[1].tensor.bitwiseEqual(cpu[1].tensor), "\(type) back to float32 on \(device.device)")
        }
    }

    /// A QLinearConv form the GPU kernel table does not take (float16 scales) is an error naming the node without
    /// host fallback, and with it runs on the CPU between device kernels and gives the CPU's bytes.
    @Test func unsupportedQLinearConvFallsBackOrNamesTheNode() throws {
        let graph = Graph(
            name: "q16", inputs: [ValueInfo(name: "x", dtype: .uint8, dimensions: nil)],
            outputs: [ValueInfo(name: "y", dtype: .uint8, dimensions: nil)],
            nodes: [
                Node(
                    name: "qconv", opType: "QLinearConv", inputs: ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz"],
                    outputs: ["y"])
            ],
            initializers: [
                "xs": try Tensor(shape: [], scalars: [Float16(0.1)]), "xz": try Tensor(shape: [], scalars: [UInt8(3)]),
                "w": try Tensor(shape: [2, 3, 1, 1], scalars: [Int8](arrayLiteral: 1, -2, 3, -4, 5, -6)),
                "ws": try Tensor(shape: [], scalars: [Float16(0.01)]),
                "wz": try Tensor(shape: [], scalars: [Int8(0)]),
                "ys": try Tensor(shape: [], scalars: [Float16(0.05)]), "yz": try Tensor(shape: [], scalars: [UInt8(7)]),
            ])
        let x = try Tensor(shape: [1, 3, 4, 4], scalars: (0..<48).map { UInt8($0 * 5) })
        let feeds = [NamedTensor(name: "x", tensor: x)]
        let cpu = try Session(graph: graph, backend: CPUBackend()).run(feeds).outputs[0].tensor
        for device in GPUTestDevices.all {
            #expect {
                _ = try Session(graph: graph, backend: device, evaluator: CPUBackend(), hostFallback: false).run(feeds)
            } throws: { error in String(describing: error).contains("qconv") }
            let got = try Session(graph: graph, backend: device, evaluator: CPUBackend()).run(feeds).outputs[0].tensor
            #expect(got.bitwiseEqual(cpu))
        }
    }

    /// Dynamically quantized models (onnxruntime's quantize_dynamic: DynamicQuantizeLinear, then MatMulInteger or
    /// ConvInteger on the int8 weights) run on the device with no host fallback, their integer kernels included,
    /// and give the CPU's outputs: the scale, zero point and int32 sums are exact on both, so only the float
    /// operators after them may differ (summation order).
    @Test(arguments: ["mlp", "cnn", "encoder"])
    func dynamicInt8ModelsRunOnTheDevice(_ name: String) throws {
        for device in GPUTestDevices.all {
            let fixture = try FixtureModel(Self.precision, "\(name)-dynamic")
            let operators = Set(fixture.graph.nodes.map(\.opType))
            #expect(operators.contains("DynamicQuantizeLinear"), "\(operators)")
            let session = try Session(
                graph: fixture.graph, backend: device, evaluator: CPUBackend(), hostFallback: false)
            let cpu = try Session(graph: fixture.graph, backend: CPUBackend()).run(fixture.inputs).outputs
            for (got, want) in zip(try session.run(fixture.inputs).outputs, cpu) {
                let a = try got.tensor.scalars(as: Float.self), b = try want.tensor.scalars(as: Float.self)
                let scale = Double(b.map(abs).max() ?? 1)
                let difference = zip(a, b).map { Double(abs($0 - $1)) }.max() ?? .infinity
                #expect(difference <= 1e-5 * max(scale, 1), "\(name) on \(device.device): \(difference)")
            }
        }
    }

    /// The condition comes from a runtime input too large to key the plan by, so If runs on the device: it reads
    /// the condition back and runs the branch as a session on the same device, both ways.
    @Test func ifTakesEitherBranchOnTheDevice() throws {
        for openCL in GPUTestDevices.all {
            let directory = TestEnvironment.packageRoot.appendingPathComponent("Tests/ONNXImportTests/Fixtures/models")
            let graph = try ONNXModelLoader.load(path: directory.appendingPathComponent("control_runtime.onnx").path)
            let session = try Session(graph: graph, backend: openCL, evaluator: CPUBackend())
            for sign: Float in [1, -1] {
                let x = (0..<5000).map { sign * (Float($0 % 7) - 2.5) }
                let outputs = try session.run([NamedTensor(name: "x", tensor: try Tensor(shape: [5000], scalars: x))])
                let expected = sign > 0 ? x.map { $0 * 2 } : x.map { -$0 }
                #expect(try outputs.outputs[0].tensor.scalars(as: Float.self) == expected)
            }
        }
    }

    /// Integer arithmetic, comparisons and Where, and data movement of 8- and 1-byte elements, bit for bit
    /// against the CPU: division by zero gives 0, the most negative int64 divided by -1 wraps, Mod takes the
    /// divisor's sign, narrow types saturate.
    @Test func integerAndByteKernelsMatchTheCPU() throws {
        for openCL in GPUTestDevices.all {
            let graph = Graph(
                name: "integers",
                inputs: [
                    ValueInfo(name: "a", dtype: .int64, dimensions: [.fixed(2), .fixed(4)]),
                    ValueInfo(name: "b", dtype: .int64, dimensions: [.fixed(4)]),
                    ValueInfo(name: "s", dtype: .int8, dimensions: [.fixed(2), .fixed(4)]),
                ],
                outputs: [
                    ("sum", DType.int64), ("quotient", .int64), ("modulo", .int64), ("picked", .int64),
                    ("moved", .bool),
                    ("gathered", .int8), ("narrow", .int8), ("low", .int8),
                ].map { ValueInfo(name: $0.0, dtype: $0.1, dimensions: nil) },
                nodes: [
                    Node(name: "add", opType: "Add", inputs: ["a", "b"], outputs: ["sum"]),
                    Node(name: "div", opType: "Div", inputs: ["a", "b"], outputs: ["quotient"]),
                    Node(name: "mod", opType: "Mod", inputs: ["a", "b"], outputs: ["modulo"]),
                    Node(name: "less", opType: "Less", inputs: ["a", "b"], outputs: ["mask"]),
                    Node(name: "where", opType: "Where", inputs: ["mask", "a", "sum"], outputs: ["picked"]),
                    Node(
                        name: "transpose", opType: "Transpose", inputs: ["mask"], outputs: ["moved"],
                        attributes: ["perm": .ints([1, 0])]),
                    Node(name: "gather", opType: "Gather", inputs: ["s", "index"], outputs: ["gathered"]),
                    Node(name: "mul", opType: "Mul", inputs: ["s", "s"], outputs: ["narrow"]),
                    Node(name: "min", opType: "Min", inputs: ["s", "gathered", "narrow"], outputs: ["low"]),
                ],
                initializers: ["index": try Tensor(shape: [2], scalars: [Int64(1), 0])], opsetImports: ["": 17])
            let inputs = [
                NamedTensor(
                    name: "a", tensor: try Tensor(shape: [2, 4], scalars: [Int64.min, 7, -7, 9, 5, -5, 0, Int64.max])),
                NamedTensor(name: "b", tensor: try Tensor(shape: [4], scalars: [Int64(-1), 0, 3, -4])),
                NamedTensor(
                    name: "s", tensor: try Tensor(shape: [2, 4], scalars: [Int8(-128), 127, 12, -12, 3, 0, -1, 100])),
            ]
            let cpu = try Session(graph: graph, backend: CPUBackend()).run(inputs).outputs
            let gpu = try Session(graph: graph, backend: openCL, evaluator: CPUBackend()).run(inputs).outputs
            #expect(cpu.count == gpu.count)
            for (a, b) in zip(cpu, gpu) {
                #expect(a.tensor.dtype == b.tensor.dtype && a.tensor.bitwiseEqual(b.tensor), "\(a.name) differs")
            }
            let quotient = try cpu[1].tensor.scalars(as: Int64.self)
            #expect(quotient[0] == Int64.min && quotient[1] == 0)
        }
    }

    /// The GPU recurrent kernels read int32 sequence lengths (as ONNX specifies); int64 ones, which the CPU also
    /// takes, are a clear error on the GPU rather than misread memory.
    @Test func int64SequenceLengthsAreRefusedOnTheGPU() throws {
        for openCL in GPUTestDevices.all {
            let graph = Graph(
                name: "gru",
                inputs: [ValueInfo(name: "x", dtype: .float32, dimensions: [.fixed(2), .fixed(1), .fixed(3)])],
                outputs: [ValueInfo(name: "y", dtype: .float32, dimensions: nil)],
                nodes: [
                    Node(
                        name: "cell", opType: "GRU", inputs: ["x", "w", "r", "", "lens"], outputs: ["y"],
                        attributes: ["hidden_size": .int(4)])
                ],
                initializers: [
                    "w": try Tensor(shape: [1, 12, 3], scalars: [Float](repeating: 0.1, count: 36)),
                    "r": try Tensor(shape: [1, 12, 4], scalars: [Float](repeating: 0.1, count: 48)),
                    "lens": try Tensor(shape: [1], scalars: [Int64(2)]),
                ], opsetImports: ["": 17])
            let inputs = [NamedTensor(name: "x", tensor: try Tensor(shape: [2, 1, 3], scalars: Self.random(6)))]
            let cpu = try Session(graph: graph, backend: CPUBackend()).run(inputs).outputs
            #expect(cpu.count == 1)
            // By default the node falls back to the host and gives the CPU's answer.
            let fallback = try Session(graph: graph, backend: openCL, evaluator: CPUBackend()).run(inputs).outputs
            #expect(try fallback[0].tensor.scalars(as: Float.self) == cpu[0].tensor.scalars(as: Float.self))
            #expect {
                _ = try Session(graph: graph, backend: openCL, evaluator: CPUBackend(), hostFallback: false).run(inputs)
            } throws: { error in
                "\(error)".contains("cell") && "\(error)".contains("sequence_lens of type int64")
            }
        }
    }

    @Test func unsupportedOperatorNamesTheDevice() throws {
        for openCL in GPUTestDevices.all {
            // The CPU adds float64 tensors; the GPU kernels have no float64 arithmetic.
            let graph = Graph(
                name: "float64 add",
                inputs: [ValueInfo(name: "a", dtype: .float64, dimensions: [.fixed(3)])],
                outputs: [ValueInfo(name: "y", dtype: .float64, dimensions: nil)],
                nodes: [Node(name: "add_doubles", opType: "Add", inputs: ["a", "a"], outputs: ["y"])],
                opsetImports: ["": 17])
            let inputs = [NamedTensor(name: "a", tensor: try Tensor(shape: [3], scalars: [1.0, 2.0, 3.0]))]
            #expect(try Session(graph: graph, backend: CPUBackend()).run(inputs).outputs.count == 1)
            // With host fallback the node runs on the CPU between device kernels, and the profile says so.
            let session = try Session(graph: graph, backend: openCL, evaluator: CPUBackend())
            #expect(try session.run(inputs).outputs[0].tensor.scalars(as: Double.self) == [2, 4, 6])
            #expect(try session.prepare(inputs).steps.map(\.implementation) == ["host fallback: ClosureKernel"])
            do {
                _ = try Session(graph: graph, backend: openCL, evaluator: CPUBackend(), hostFallback: false).run(inputs)
                Issue.record("float64 Add accepted on OpenCL")
            } catch let error as RuntimeError {
                #expect(
                    error.description.contains(openCL.device.description) && error.description.contains("add_doubles")
                        && error.description.contains("float64"), "\(error)")
            }
        }
    }

    @Test func seedCommandsOnOpenCL() throws {
        let single = try ProcessRunner.run(
            TestEnvironment.inferenceBinary, ["--device", "opencl:0", "--input", "data/sample1.npy"])
        #expect(single.status == 0, "\(single.stderr)")
        let lines = single.stdout.split(separator: "\n")
        #expect(lines.count == 3)
        #expect(lines.first?.hasPrefix("Processing input on ") == true)
        #expect(lines.count > 1 && lines[1] == "Prediction: 0.87")
        let batch = try ProcessRunner.run(
            TestEnvironment.inferenceBinary, ["--device", "opencl:0", "--input", "data/batch_samples.npy"])
        #expect(batch.status == 0)
        #expect(batch.stdout.hasPrefix("Processing batch input on "))
        #expect(batch.stdout.contains("Predictions: [0.87, 0.45"))
    }
}
