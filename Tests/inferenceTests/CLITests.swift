import Foundation
import InferenceTensor
import InferenceTestSupport
import Testing

/// Runs the real `inference` binary and checks stdout, stderr and the exit code.
struct CLITests {
    func inference(_ arguments: String...) throws -> ProcessOutput {
        try ProcessRunner.run(TestEnvironment.inferenceBinary, arguments)
    }

    func inference(_ arguments: [String], environment: [String: String]? = nil) throws -> ProcessOutput {
        try ProcessRunner.run(TestEnvironment.inferenceBinary, arguments, environment: environment)
    }

    /// `Inference time: <t> ms` with a positive number.
    func checkTimeLine(_ line: Substring) {
        #expect(line.hasPrefix("Inference time: ") && line.hasSuffix(" ms"), "\(line)")
        let number = line.dropFirst("Inference time: ".count).dropLast(" ms".count)
        let value = Double(number) ?? -1
        #expect(value > 0, "time must be measured and non-zero: \(line)")
    }

    @Test func seedSingleSample() throws {
        let result = try inference("--device", "cpu", "--input", "data/sample1.npy")
        #expect(result.status == 0, "\(result.stderr)")
        let lines = result.stdout.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
        #expect(lines.count == 3, "\(result.stdout)")
        guard lines.count == 3 else { return }
        #expect(lines[0] == "Processing input on CPU...")
        #expect(lines[1] == "Prediction: 0.87")
        checkTimeLine(lines[2])
        #expect(result.stderr.isEmpty, "\(result.stderr)")
    }

    @Test func seedBatch() throws {
        let result = try inference("--device", "cpu", "--input", "data/batch_samples.npy")
        #expect(result.status == 0, "\(result.stderr)")
        let lines = result.stdout.split(separator: "\n")
        #expect(lines.count == 3)
        guard lines.count == 3 else { return }
        #expect(lines[0] == "Processing batch input on CPU...")
        #expect(lines[1].hasPrefix("Predictions: ["))
        let values = lines[1].dropFirst("Predictions: [".count).dropLast().split(separator: ", ").compactMap {
            Float($0)
        }
        #expect(values.count == 4)
        #expect(values.map { ($0 * 100).rounded() / 100 } == [0.87, 0.45, 0.92, 0.33])
        checkTimeLine(lines[2])
    }

    @Test func gpuWithoutGPUFailsCleanly() throws {
        // Hide any CUDA driver so the test means the same on every machine.
        let result = try inference(
            ["--device", "gpu", "--input", "data/sample1.npy"], environment: ["LD_LIBRARY_PATH": "/nonexistent"])
        let probe = try inference(["devices", "--json"])
        let hasGPU = probe.stdout.contains("\"gpu\" : \"")
        if hasGPU { return }  // A real GPU machine: covered by the GPU checks.
        #expect(result.status != 0)
        #expect(result.stdout.isEmpty, "stdout must stay empty: \(result.stdout)")
        #expect(result.stderr.contains("no GPU found"))
        #expect(result.stderr.contains("libcuda.so.1"))
        #expect(result.stderr.contains("OpenCL"))
        #expect(result.stderr.contains("--device cpu"))
        #expect(result.stderr.contains("--device auto"))
        #expect(!result.stderr.contains("Fatal error"))
    }

    @Test func autoFallsBackToCPUAndSaysSo() throws {
        let result = try inference("--device", "auto", "--input", "data/batch_samples.npy")
        #expect(result.status == 0)
        #expect(result.stdout.hasPrefix("Processing batch input on CPU...\n"))
        #expect(result.stderr.contains("--device auto chose cpu"))
    }

    @Test func jsonReport() throws {
        let result = try inference("--input", "data/batch_samples.npy", "--json", "--repeat", "5")
        #expect(result.status == 0, "\(result.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        #expect(object["device"] as? String == "cpu")
        #expect(object["requested_device"] as? String == "cpu")
        #expect(object["batch_size"] as? Int == 4)
        let outputs = try #require(object["outputs"] as? [[String: Any]])
        #expect(outputs.first?["shape"] as? [Int] == [4, 1])
        #expect((outputs.first?["values"] as? [Double])?.count == 4)
        let timings = try #require(object["timings_ms"] as? [String: Any])
        #expect(timings["repeats"] as? Int == 5)
        for key in [
            "model_load", "plan", "first_run", "warm_p50", "warm_p99", "copy_in_p50", "compute_p50", "copy_out_p50",
        ] {
            #expect((timings[key] as? Double ?? -1) >= 0, "\(key)")
        }
        #expect((timings["warm_p50"] as? Double ?? 0) > 0)
    }

    /// `--precision int8` on the builtin MLP: the record carries the conversion, the fp32 time and the parity; the
    /// seed's three lines stay on stdout.
    @Test func runAtAnotherPrecision() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("precision-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let samples = directory.appendingPathComponent("x.npy").path
        let values = (0..<(4 * 784)).map { Float(($0 * 7919) % 1000) / 1000 }
        try NumPyFile.write(
            [NamedTensor(name: "x", tensor: try Tensor(shape: Shape([4, 784]), scalars: values))], path: samples)
        let text = try inference("--model", "builtin:mlp", "--input", samples, "--precision", "int8")
        #expect(text.status == 0, "\(text.stderr)")
        #expect(text.stdout.split(separator: "\n").count == 3)
        #expect(text.stderr.contains("int8 vs fp32 on cpu:") && text.stderr.contains("predictions flipped"))

        let result = try inference(
            "--model", "builtin:mlp", "--input", samples, "--precision", "fp16", "--json", "--repeat", "3")
        #expect(result.status == 0, "\(result.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        #expect(object["precision"] as? String == "fp16")
        let comparison = try #require(object["precision_comparison"] as? [String: Any])
        let conversion = try #require(comparison["conversion"] as? [String: Any])
        #expect((conversion["converted_initializers"] as? Int ?? 0) > 0)
        #expect((conversion["weight_bytes_after"] as? Int ?? .max) < (conversion["weight_bytes_before"] as? Int ?? 0))
        let parity = try #require(comparison["parity"] as? [String: Any])
        #expect(parity["predictions"] as? Int == 4)
        #expect((parity["max_abs_difference"] as? Double ?? 1) < 0.01)
        #expect((comparison["fp32_warm_p50_ms"] as? Double ?? 0) > 0 && (comparison["speedup"] as? Double ?? 0) > 0)

        for (value, phrase) in [("fp8", "unknown precision 'fp8'"), ("fp32,int8", "takes one precision")] {
            let bad = try inference("--input", "data/sample1.npy", "--precision", value)
            #expect(bad.status != 0 && bad.stdout.isEmpty && bad.stderr.contains(phrase), "\(bad.stderr)")
        }
    }

    @Test func compareAtAnotherPrecision() throws {
        let directory = TestEnvironment.packageRoot.appendingPathComponent("Tests/ONNXImportTests/Fixtures/models")
        let result = try inference(
            "compare", "--model", directory.appendingPathComponent("encoder.onnx").path, "--input",
            directory.appendingPathComponent("encoder.inputs.npz").path, "--devices", "cpu", "--precision", "int8",
            "--repeat", "3", "--json")
        #expect(result.status == 0, "\(result.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        #expect(object["precision"] as? String == "int8")
        let device = try #require((object["devices"] as? [[String: Any]])?.first)
        let parity = try #require(device["parity_with_fp32"] as? [String: Any])
        #expect(
            (parity["max_abs_difference"] as? Double ?? 1) > 0 && (parity["max_abs_difference"] as? Double ?? 1) < 0.05)
        #expect((object["verdict"] as? String ?? "").contains("at int8 against fp32"))
    }

    /// Static int8 from a folder of calibration inputs: the CNN's convolutions run as integer kernels.
    @Test func staticInt8WithCalibrationData() throws {
        let fixtures = TestEnvironment.packageRoot.appendingPathComponent("Tests/ONNXImportTests/Fixtures/models")
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "calibration-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let sample = try NumPyFile.readNPZ(path: fixtures.appendingPathComponent("cnn.inputs.npz").path)[0].tensor
        for index in 0..<4 {
            let values = try sample.scalars(as: Float.self).map { $0 * (0.8 + 0.1 * Float(index)) }
            try NumPyFile.writeNPY(
                try Tensor(shape: sample.shape, scalars: values),
                path: directory.appendingPathComponent("\(index).npy").path)
        }
        let model = fixtures.appendingPathComponent("cnn.onnx").path
        let input = fixtures.appendingPathComponent("cnn.inputs.npz").path
        let result = try inference(
            "profile", "--model", model, "--input", input, "--precision", "int8", "--calibration-data", directory.path,
            "--repeat", "2", "--json")
        #expect(result.status == 0, "\(result.stderr)")
        #expect(
            result.stderr.contains("calibrated") && result.stderr.contains("statically quantized"), "\(result.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        let operators = try #require(object["operators"] as? [[String: Any]]).compactMap { $0["op_type"] as? String }
        // The depthwise convolution stays float by design; the others and the classifier run as integer kernels.
        #expect(operators.contains("QLinearConv") && operators.contains("QLinearMatMul"), "\(operators)")

        let run = try inference(
            "--model", model, "--input", input, "--precision", "int8", "--calibration-data", directory.path, "--json")
        #expect(run.status == 0, "\(run.stderr)")
        let record = try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
        let comparison = try #require(record["precision_comparison"] as? [String: Any])
        #expect((comparison["conversion"] as? [String: Any])?["calibrated"] as? Bool == true)

        for (arguments, phrase) in [
            (["--precision", "fp16", "--calibration-data", directory.path], "calibrates --precision int8"),
            (["--precision", "int8", "--calibration-data", "/nonexistent-folder"], "not a readable folder"),
        ] {
            let bad = try inference(["--model", model, "--input", input] + arguments)
            #expect(bad.status != 0 && bad.stdout.isEmpty && bad.stderr.contains(phrase), "\(bad.stderr)")
        }
    }

    @Test func verboseGoesToStderr() throws {
        let result = try inference("--input", "data/sample1.npy", "--verbose", "--repeat", "7")
        #expect(result.status == 0)
        #expect(result.stdout.split(separator: "\n").count == 3)
        for phrase in ["plan:", "first run (cold", "warm over 7 runs: p50", "copy in", "compute", "copy out"] {
            #expect(result.stderr.contains(phrase), "missing '\(phrase)' in \(result.stderr)")
        }
    }

    @Test func outputFiles() throws {
        let directory = try TestEnvironment.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let npy = directory.appendingPathComponent("preds.npy").path
        let npz = directory.appendingPathComponent("preds.npz").path
        #expect(try inference("--input", "data/batch_samples.npy", "--output", npy).status == 0)
        #expect(try inference("--input", "data/batch_samples.npy", "--output", npz).status == 0)
        let y = try NumPyFile.readNPY(path: npy)
        #expect(y.shape == [4, 1])
        let z = try NumPyFile.readNPZ(path: npz)
        #expect(z.map(\.name) == ["probability"])
        #expect(z[0].tensor.bitwiseEqual(y))
    }

    @Test func wrongShapeNamesFileAndShapes() throws {
        let directory = try TestEnvironment.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("bad.npy").path
        try NumPyFile.writeNPY(try Tensor(shape: [3, 7], scalars: [Float](repeating: 1, count: 21)), path: path)
        let result = try inference("--input", path)
        #expect(result.status != 0)
        #expect(result.stdout.isEmpty)
        #expect(result.stderr.contains(path))
        #expect(result.stderr.contains("(3, 7)"))
        #expect(result.stderr.contains("(batch, 10)"))
    }

    @Test func integerInputIsRejectedFloat64Converted() throws {
        let directory = try TestEnvironment.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let ints = directory.appendingPathComponent("ints.npy").path
        try NumPyFile.writeNPY(try Tensor(shape: [10], scalars: [Int64](repeating: 1, count: 10)), path: ints)
        let bad = try inference("--input", ints)
        #expect(bad.status != 0)
        #expect(bad.stdout.isEmpty)
        #expect(bad.stderr.contains("int64") && bad.stderr.contains("float32") && bad.stderr.contains(ints))

        let doubles = directory.appendingPathComponent("doubles.npy").path
        let sample = try NumPyFile.readNPY(path: "data/sample1.npy").scalars(as: Float.self).map(Double.init)
        try NumPyFile.writeNPY(try Tensor(shape: [10], scalars: sample), path: doubles)
        let ok = try inference("--input", doubles)
        #expect(ok.status == 0)
        #expect(ok.stdout.contains("Prediction: 0.87\n"))
        #expect(ok.stderr.contains("converted float64 to float32"))
    }

    @Test func missingAndCorruptFiles() throws {
        let missing = try inference("--input", "data/nope.npy")
        #expect(missing.status != 0 && missing.stdout.isEmpty)
        #expect(missing.stderr.contains("data/nope.npy: no such file"))

        let directory = try TestEnvironment.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let truncated = directory.appendingPathComponent("truncated.npy")
        let bytes = try Data(contentsOf: TestEnvironment.packageRoot.appendingPathComponent("data/batch_samples.npy"))
        try bytes.prefix(bytes.count - 5).write(to: truncated)
        let result = try inference("--input", truncated.path)
        #expect(result.status != 0 && result.stdout.isEmpty)
        #expect(result.stderr.contains("truncated data"))
        #expect(!result.stderr.contains("Fatal error"))
    }

    @Test func badArguments() throws {
        let device = try inference("--device", "tpu", "--input", "data/sample1.npy")
        #expect(device.status != 0 && device.stdout.isEmpty)
        #expect(device.stderr.contains("unknown device 'tpu'"))
        let model = try inference("--model", "builtin:resnet", "--input", "data/sample1.npy")
        #expect(model.status != 0 && model.stderr.contains("builtin:linear"))
        let noDevice = try inference("--device", "opencl:7", "--input", "data/sample1.npy")
        #expect(noDevice.status != 0 && noDevice.stdout.isEmpty)
        #expect(noDevice.stderr.contains("opencl:7"))
    }

    @Test func devicesListsCPUAndRuntimes() throws {
        let text = try inference("devices")
        #expect(text.status == 0)
        #expect(text.stdout.hasPrefix("cpu\n"))
        #expect(text.stdout.contains("logical cores"))
        #expect(text.stdout.contains("CUDA (looked for libcuda.so.1"))
        #expect(text.stdout.contains("OpenCL (looked for libOpenCL.so.1"))
        let json = try inference("devices", "--json")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        let cpu = try #require(object["cpu"] as? [String: Any])
        #expect((cpu["logical_cores"] as? Int ?? 0) >= 1)
        #expect(cpu["features"] is [String])
        let runtimes = try #require(object["runtimes"] as? [[String: Any]])
        #expect(runtimes.map { $0["runtime"] as? String } == ["cuda", "opencl"])
        for runtime in runtimes {
            let devices = runtime["devices"] as? [Any] ?? []
            #expect(!devices.isEmpty || runtime["problem"] is String, "a runtime without devices must say why")
        }
    }

    /// INFERENCE_CPU_ISA narrows the kernels (scripts/test relies on it to test every path) and never widens them.
    @Test func cpuISAOverrideNarrowsAndNeverWidens() throws {
        func isa(_ value: String) throws -> String {
            let out = try inference(["devices"], environment: ["INFERENCE_CPU_ISA": value])
            #expect(out.status == 0)
            let line = out.stdout.split(separator: "\n").first { $0.contains("kernels use ") } ?? ""
            return String(line.split(separator: " ").last ?? "")
        }
        let widest = try isa("")
        #expect(["avx512", "avx2", "generic"].contains(widest))
        #expect(try isa("generic") == "generic")
        #expect(try isa("avx2") == (widest == "generic" ? "generic" : "avx2"))
        #expect(try isa("avx512") == widest)
        #expect(try isa("something-else") == widest)
    }

    @Test func mlpBuiltinRunsOnABatch() throws {
        let directory = try TestEnvironment.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("mnist.npz").path
        let x = try Tensor(shape: [3, 784], scalars: (0..<(3 * 784)).map { _ in Float.random(in: 0...1) })
        try NumPyFile.writeNPZ([NamedTensor(name: "input", tensor: x)], path: path, compressed: true)
        let result = try inference("--model", "builtin:mlp", "--input", path)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.hasPrefix("Processing batch input on CPU...\nPredictions: [["))
    }

    @Test func compareReportsEveryDeviceWithParityAndVerdict() throws {
        let result = try inference(
            "compare", "--input", "data/batch_samples.npy", "--repeat", "10", "--idle-gap", "0.05s", "--json")
        #expect(result.status == 0, "\(result.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        let devices = try #require(object["devices"] as? [[String: Any]])
        #expect(devices.first?["device"] as? String == "cpu")
        #expect(object["batch_size"] as? Int == 4)
        for device in devices {
            let warm = try #require(device["warm"] as? [String: Any])
            #expect((warm["p50_ms"] as? Double ?? 0) > 0)
            #expect(warm["runs"] as? Int == 10)
            let split = try #require(device["split"] as? [String: Any])
            #expect((split["copy_share"] as? Double).map { $0 >= 0 && $0 <= 1 } == true)
            // Device events on GPU devices (PoCL's OpenCL device in CI), none on the CPU.
            let deviceSplit = device["device_split"] as? [String: Any]
            if device["device"] as? String == "cpu" {
                #expect(deviceSplit == nil)
            } else {
                #expect((deviceSplit?["compute_p50_ms"] as? Double ?? 0) > 0, "\(device)")
            }
            let parity = try #require(device["parity"] as? [String: Any])
            #expect(parity["within_tolerance"] as? Bool == true, "\(device)")
            #expect(parity["flipped_predictions"] as? Int == 0)
            #expect(
                ["reference", "identical", "float32 rounding (a different summation order)"].contains(
                    parity["likely_cause"] as? String ?? ""))
            #expect((device["cold_start_ms"] as? Double ?? 0) > 0)
        }
        #expect(object["idle_gap_s"] as? Double == 0.05)
        for device in devices { #expect((device["after_idle_ms"] as? Double ?? 0) > 0) }
        let breakEven = try #require(object["break_even"] as? [[String: Any]])
        #expect(breakEven.count == devices.count - 1)
        let winner = try #require(object["winner"] as? String)
        #expect(devices.contains { $0["device"] as? String == winner })
        #expect((object["verdict"] as? String)?.contains(winner) == true)

        let text = try inference("compare", "--input", "data/sample1.npy", "--devices", "cpu", "--repeat", "5")
        #expect(text.status == 0)
        #expect(text.stdout.contains("Verdict: cpu is the only device"))
        let bad = try inference("compare", "--input", "data/sample1.npy", "--devices", "cpu,tpu")
        #expect(bad.status != 0 && bad.stdout.isEmpty)
    }
}

/// `bench` output formats and its chart, parsed and rendered.
struct BenchCLITests {
    func inference(_ arguments: String...) throws -> ProcessOutput {
        try ProcessRunner.run(TestEnvironment.inferenceBinary, arguments)
    }

    /// `--precision`: every device at every precision, each non-fp32 variant's parity with fp32, and a verdict.
    @Test func precisionSweepParses() throws {
        let json = try inference(
            "bench", "--model", "builtin:mlp", "--batch-sizes", "1,8", "--repeat", "3", "--format", "json", "--devices",
            "cpu", "--precision", "fp32,fp16,int8")
        #expect(json.status == 0, "\(json.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        let model = try #require((object["models"] as? [[String: Any]])?.first)
        #expect(model["devices"] as? [String] == ["cpu fp32", "cpu fp16", "cpu int8"])
        #expect(model["precisions"] as? [String] == ["fp32", "fp16", "int8"])
        #expect((model["points"] as? [Any])?.count == 6)
        let parity = try #require(model["parity"] as? [[String: Any]])
        #expect(parity.map { $0["device"] as? String } == ["cpu fp16", "cpu int8"])
        for entry in parity {
            let numbers = try #require(entry["parity"] as? [String: Any])
            let predictions = try #require(numbers["predictions"] as? Int)
            let flipped = try #require(numbers["flipped"] as? Int)
            let difference = try #require(numbers["max_abs_difference"] as? Double)
            // The builtin MLP scores one value per sample: 1000 random samples, a few flips at most.
            #expect(predictions == 1000 && flipped <= 20)
            #expect(difference > 0 && difference < 0.05, "\(entry)")
        }
        let verdict = try #require(model["verdict"] as? String)
        #expect(verdict.contains("serves batch 1 in"), "\(verdict)")
        #expect(json.stderr.contains("converted to int8: 3 MatMul/Gemm nodes dynamically quantized"), "\(json.stderr)")

        let bad = try inference("bench", "--precision", "fp8")
        #expect(bad.status != 0 && bad.stdout.isEmpty && bad.stderr.contains("unknown precision 'fp8'"))
    }

    @Test func jsonAndCSVParse() throws {
        let json = try inference(
            "bench", "--model", "builtin:linear", "--batch-sizes", "1,8,64", "--repeat", "3", "--format", "json")
        #expect(json.status == 0, "\(json.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        let models = try #require(object["models"] as? [[String: Any]])
        let points = try #require(models.first?["points"] as? [[String: Any]])
        let devices = try #require(models.first?["devices"] as? [String])
        #expect(points.count == 3 * devices.count)
        for point in points {
            let batch = try #require(point["batch"] as? Int)
            let p50 = try #require(point["p50_ms"] as? Double)
            let throughput = try #require(point["throughput_per_s"] as? Double)
            // Throughput is batch / p50 latency.
            #expect(abs(throughput - Double(batch) / (p50 / 1e3)) <= throughput * 1e-9)
            #expect((point["p99_ms"] as? Double ?? 0) >= p50)
        }
        #expect((models.first?["crossovers"] as? [Any])?.count == devices.count - 1)

        let csv = try inference(
            "bench", "--model", "builtin:linear", "--batch-sizes", "2,4", "--repeat", "2", "--format", "csv",
            "--devices", "cpu")
        #expect(csv.status == 0)
        let rows = csv.stdout.split(separator: "\n")
        let header =
            "model,device,batch,p50_ms,p90_ms,p99_ms,mean_ms,throughput_per_s,copy_share,first_run_ms,"
            + "coefficient_of_variation,dollars_per_million"
        #expect(rows.first.map(String.init) == header)
        #expect(rows.count == 3)
        #expect(
            rows.dropFirst().allSatisfy {
                $0.split(separator: ",", omittingEmptySubsequences: false).count == 12
                    && $0.hasPrefix("builtin:linear,cpu,")
            })
    }

    @Test func chartRendersToANonBlankImage() throws {
        let directory = try TestEnvironment.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let svg = directory.appendingPathComponent("chart.svg").path
        let png = directory.appendingPathComponent("chart.png").path
        let result = try inference(
            "bench", "--model", "builtin:mlp", "--batch-sizes", "1,4,16", "--repeat", "3", "--plot", svg)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("crossover") || !result.stdout.contains("opencl"))
        let text = try String(contentsOfFile: svg, encoding: .utf8)
        #expect(text.hasPrefix("<svg") && text.contains("<polyline") && text.contains("batch size"))
        guard
            let rsvg = ["/usr/bin/rsvg-convert", "/usr/local/bin/rsvg-convert"].first(where: {
                FileManager.default.isExecutableFile(atPath: $0)
            })
        else {
            if TestEnvironment.pythonRequired { Issue.record("rsvg-convert missing: apt-get install librsvg2-bin") }
            return
        }
        let rendered = try ProcessRunner.run(URL(fileURLWithPath: rsvg), [svg, "-o", png])
        #expect(rendered.status == 0, "\(rendered.stderr)")
        guard let python = TestEnvironment.python else { return }
        // Decode the PNG with the standard library and count pixels that are not white.
        let script = """
            import struct, sys, zlib
            data = open(sys.argv[1], 'rb').read()
            assert data[:8] == b'\\x89PNG\\r\\n\\x1a\\n'
            pos, idat, w, h, ctype = 8, b'', 0, 0, 0
            while pos < len(data):
                n, kind = struct.unpack('>I4s', data[pos:pos + 8]); body = data[pos + 8:pos + 8 + n]
                if kind == b'IHDR': w, h, depth, ctype = struct.unpack('>IIBB', body[:10])
                if kind == b'IDAT': idat += body
                pos += 12 + n
            raw = zlib.decompress(idat); bpp = 4 if ctype == 6 else 3; stride = w * bpp
            rows, prev = [], bytearray(stride)
            for y in range(h):
                f = raw[y * (stride + 1)]; line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
                for i in range(stride):
                    a = line[i - bpp] if i >= bpp else 0; b = prev[i]; c = prev[i - bpp] if i >= bpp else 0
                    if f == 1: line[i] = (line[i] + a) & 255
                    elif f == 2: line[i] = (line[i] + b) & 255
                    elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
                    elif f == 4:
                        p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                        line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
                rows.append(line); prev = line
            colored = sum(1 for line in rows for i in range(0, stride, bpp) if line[i:i + 3] != b'\\xff\\xff\\xff' and (bpp == 3 or line[i + 3] > 0))
            print(w, h, colored)
            sys.exit(0 if w > 500 and colored > 2000 else 1)
            """
        let check = try ProcessRunner.run(python, ["-c", script, png])
        #expect(check.status == 0, "blank or unreadable chart: \(check.stdout)\(check.stderr)")
    }
}

/// `--device auto` routes by batch size with a calibration profile.
struct AutoRoutingTests {
    @Test func profileRoutesSmallAndLargeBatchesToDifferentDevices() throws {
        let directory = try TestEnvironment.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let profile = directory.appendingPathComponent("profile.json").path
        let text = """
            {"model": "builtin:linear", "machine": "test", "created": "2026-01-01T00:00:00Z", "baseline": "cpu",
             "accelerator": "opencl:0", "crossover_batch": 4, "measured_batches": [1, 4, 16]}
            """
        try text.write(toFile: profile, atomically: true, encoding: .utf8)
        let devices = try ProcessRunner.run(TestEnvironment.inferenceBinary, ["devices", "--json"])
        let hasOpenCL = devices.stdout.contains("\"opencl:0\"")

        let small = try ProcessRunner.run(
            TestEnvironment.inferenceBinary,
            ["--device", "auto", "--profile", profile, "--input", "data/sample1.npy", "--json", "--repeat", "2"])
        #expect(small.status == 0, "\(small.stderr)")
        let smallReport = try #require(
            try JSONSerialization.jsonObject(with: Data(small.stdout.utf8)) as? [String: Any])
        #expect(smallReport["device"] as? String == "cpu")
        #expect(smallReport["requested_device"] as? String == "auto")
        #expect((smallReport["device_reason"] as? String)?.contains("from batch 4; this batch is 1") == true)

        let large = try ProcessRunner.run(
            TestEnvironment.inferenceBinary,
            ["--device", "auto", "--profile", profile, "--input", "data/batch_samples.npy", "--json", "--repeat", "2"])
        #expect(large.status == 0, "\(large.stderr)")
        let largeReport = try #require(
            try JSONSerialization.jsonObject(with: Data(large.stdout.utf8)) as? [String: Any])
        if hasOpenCL {
            #expect(largeReport["device"] as? String == "opencl:0")
            #expect((largeReport["device_reason"] as? String)?.contains("wins from batch 4; this batch is 4") == true)
        } else {
            // No such device here: auto never fails, it falls back to the CPU and says why.
            #expect(largeReport["device"] as? String == "cpu")
            #expect((largeReport["device_reason"] as? String)?.contains("not available here") == true)
        }

        let missing = try ProcessRunner.run(
            TestEnvironment.inferenceBinary,
            ["--device", "auto", "--profile", "/nonexistent/p.json", "--input", "data/sample1.npy"])
        #expect(missing.status != 0 && missing.stdout.isEmpty && missing.stderr.contains("no such profile file"))
        let badGap = try ProcessRunner.run(
            TestEnvironment.inferenceBinary, ["compare", "--input", "data/sample1.npy", "--idle-gap", "soon"])
        #expect(badGap.status != 0 && badGap.stdout.isEmpty && badGap.stderr.contains("--idle-gap"))

        let broken = directory.appendingPathComponent("broken.json").path
        try "{}".write(toFile: broken, atomically: true, encoding: .utf8)
        let bad = try ProcessRunner.run(
            TestEnvironment.inferenceBinary, ["--device", "auto", "--profile", broken, "--input", "data/sample1.npy"])
        #expect(bad.status != 0 && bad.stdout.isEmpty && bad.stderr.contains("routing profile"))
    }

    @Test func calibrateWritesAProfileThatAutoReads() throws {
        let directory = try TestEnvironment.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let devices = try ProcessRunner.run(TestEnvironment.inferenceBinary, ["devices", "--json"])
        guard devices.stdout.contains("\"opencl:0\"") else { return }  // calibrate needs a second device
        let profile = directory.appendingPathComponent("p.json").path
        let result = try ProcessRunner.run(
            TestEnvironment.inferenceBinary,
            ["calibrate", "--model", "builtin:linear", "--batch-sizes", "1,16", "--repeat", "2", "--output", profile])
        #expect(result.status == 0, "\(result.stderr)")
        let object = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: profile))) as? [String: Any])
        #expect(object["baseline"] as? String == "cpu")
        #expect(object["accelerator"] as? String == "opencl:0")
        #expect(object["measured_batches"] as? [Int] == [1, 16])
        let run = try ProcessRunner.run(
            TestEnvironment.inferenceBinary, ["--device", "auto", "--profile", profile, "--input", "data/sample1.npy"])
        #expect(run.status == 0 && run.stderr.contains("profile \(profile)"))
    }
}
