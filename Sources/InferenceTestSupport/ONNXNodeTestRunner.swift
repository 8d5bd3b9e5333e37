import Foundation
import InferenceGraph
import InferenceRuntime
import InferenceTensor
import ONNXImport

/// Runs the ONNX backend node tests (model.onnx + test_data_set_0/input_N.pb, output_N.pb per case) that the
/// onnx 1.22.0 wheel ships, on any backend. Cases needing an operator, element type or attribute value the
/// backend does not support are skipped with the reason; every other case must pass.
public enum ONNXNodeTestRunner {
    /// The node test folder: `INFERENCE_ONNX_NODE_TESTS`, else the onnx package in `.venv`.
    public static var dataDirectory: URL? {
        if let path = ProcessInfo.processInfo.environment["INFERENCE_ONNX_NODE_TESTS"] {
            return URL(fileURLWithPath: path)
        }
        let lib = TestEnvironment.packageRoot.appendingPathComponent(".venv/lib")
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: lib.path)) ?? []
        for version in versions.sorted() where version.hasPrefix("python") {
            let candidate = lib.appendingPathComponent("\(version)/site-packages/onnx/backend/test/data/node")
            if FileManager.default.fileExists(atPath: candidate.path) { return candidate }
        }
        return nil
    }

    public enum Outcome {
        case passed
        case failed(String)
        case skipped(String)
    }

    /// Totals over every case, and the report text (also written to `reportPath`).
    public struct Summary {
        public var passed = 0
        public var failures: [(String, String)] = []
        public var skips: [String: [String]] = [:]
        public var report = ""
    }

    /// Runs every case in `directory` with sessions from `makeSession`; with `reference`, every case that passes
    /// must also agree with that session's outputs (another backend) within rtol 1e-4, atol 1e-5, bit for bit
    /// for other element types.
    public static func runAll(
        directory: URL, label: String, reportPath: URL, makeSession: (Graph) throws -> Session,
        reference: ((Graph) throws -> Session)? = nil
    ) throws -> Summary {
        let cases = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasPrefix("test_") }
            .sorted()
        var summary = Summary()
        for name in cases {
            switch run(
                caseDirectory: directory.appendingPathComponent(name), makeSession: makeSession, reference: reference)
            {
            case .passed: summary.passed += 1
            case .failed(let why): summary.failures.append((name, why))
            case .skipped(let why): summary.skips[why, default: []].append(name)
            }
        }
        let skipped = summary.skips.values.reduce(0) { $0 + $1.count }
        var report =
            "ONNX node tests (\(label)): \(summary.passed) passed, \(summary.failures.count) failed, \(skipped) skipped\n"
        for (name, why) in summary.failures { report += "  FAIL \(name): \(why)\n" }
        for (why, names) in summary.skips.sorted(by: { $0.value.count > $1.value.count }) {
            report +=
                "  skip \(names.count) (\(why)): \(names.prefix(4).joined(separator: ", "))\(names.count > 4 ? ", ..." : "")\n"
        }
        summary.report = report
        try? report.write(to: reportPath, atomically: true, encoding: .utf8)
        return summary
    }

    /// A case's inputs (input_N.pb, named as the graph declares them) and expected outputs (output_N.pb).
    static func testData(_ dataSet: URL, graph: Graph) throws -> ([NamedTensor], [Tensor]) {
        var inputs: [NamedTensor] = []
        var expected: [Tensor] = []
        let declared = graph.inputs
        var index = 0
        while case let url = dataSet.appendingPathComponent("input_\(index).pb"),
            FileManager.default.fileExists(atPath: url.path)
        {
            let tensor = try ONNXTensor.decode(serialized: try Data(contentsOf: url), source: url.lastPathComponent)
            let name = index < declared.count ? declared[index].name : tensor.name
            if !name.isEmpty { inputs.append(NamedTensor(name: name, tensor: tensor.tensor)) }
            index += 1
        }
        index = 0
        while case let url = dataSet.appendingPathComponent("output_\(index).pb"),
            FileManager.default.fileExists(atPath: url.path)
        {
            expected.append(
                try ONNXTensor.decode(serialized: try Data(contentsOf: url), source: url.lastPathComponent).tensor)
            index += 1
        }
        return (inputs, expected)
    }

    public static func run(
        caseDirectory: URL, makeSession: (Graph) throws -> Session, reference: ((Graph) throws -> Session)? = nil
    ) -> Outcome {
        let model = caseDirectory.appendingPathComponent("model.onnx").path
        let graph: Graph
        do { graph = try ONNXModelLoader.load(path: model) } catch let error as ONNXImportError {
            if error.problem.contains("not supported") { return .skipped("import: \(error.problem)") }
            return .failed("import: \(error)")
        } catch {
            return .failed("import: \(error)")
        }
        let inputs: [NamedTensor], expected: [Tensor]
        do {
            (inputs, expected) = try testData(caseDirectory.appendingPathComponent("test_data_set_0"), graph: graph)
        } catch let error as ONNXImportError where error.problem.contains("not supported") {
            return .skipped("data: \(error.problem)")
        } catch {
            return .failed("data: \(error)")
        }
        let outputs: [NamedTensor]
        do {
            let session = try makeSession(graph)
            outputs = try session.run(inputs).outputs
        } catch let error as RuntimeError {
            switch error {
            case .unsupportedOperator(_, let op, _, _, let dtype, _, _):
                return .skipped("operator \(op)\(dtype.map { " on \($0)" } ?? "")")
            case .unsupportedAttribute(_, let detail): return .skipped("attribute \(detail)")
            default: return .failed("run: \(error)")
            }
        } catch {
            return .failed("run: \(error)")
        }
        guard outputs.count == expected.count else {
            return .failed("\(outputs.count) outputs, expected \(expected.count)")
        }
        for (index, (actual, wanted)) in zip(outputs, expected).enumerated() {
            let got = actual.tensor
            guard got.dtype == wanted.dtype, got.shape == wanted.shape else {
                return .failed("output \(index): got \(got.dtype)\(got.shape), expected \(wanted.dtype)\(wanted.shape)")
            }
            if got.dtype.isFloatingPoint {
                let a = Self.doubles(got), e = Self.doubles(wanted)
                // The ONNX backend test defaults: rtol 1e-3, atol 1e-7.
                let report = ToleranceReport.compare(
                    a.map { Float($0) }, e.map { Float($0) }, relative: 1e-3, absolute: 1e-7)
                if !report.passed { return .failed("output \(index): \(report)") }
            } else if !got.bitwiseEqual(wanted) {
                return .failed("output \(index): values differ")
            }
        }
        guard let reference else { return .passed }
        let other: [NamedTensor]
        do {
            other = try reference(graph).run(inputs).outputs
        } catch {
            return .failed("reference run: \(error)")
        }
        for (index, (actual, wanted)) in zip(outputs, other).enumerated() {
            if actual.tensor.dtype.isFloatingPoint {
                let report = ToleranceReport.compare(
                    Self.doubles(actual.tensor).map { Float($0) }, Self.doubles(wanted.tensor).map { Float($0) },
                    relative: 1e-4, absolute: 1e-5)
                if !report.passed { return .failed("output \(index) against the reference backend: \(report)") }
            } else if !actual.tensor.bitwiseEqual(wanted.tensor) {
                return .failed("output \(index) differs from the reference backend")
            }
        }
        return .passed
    }

    static func doubles(_ tensor: Tensor) -> [Double] {
        switch tensor.dtype {
        case .float32: (try? tensor.scalars(as: Float.self).map { Double($0) }) ?? []
        case .float64: (try? tensor.scalars(as: Double.self)) ?? []
        case .float16: (try? tensor.scalars(as: Float16.self).map { Double(Float($0)) }) ?? []
        case .bfloat16: (try? tensor.scalars(as: BFloat16.self).map { Double($0.float) }) ?? []
        default: []
        }
    }
}
