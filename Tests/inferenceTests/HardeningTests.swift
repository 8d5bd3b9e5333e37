import Foundation
import InferenceTensor
import InferenceTestSupport
import Testing

/// Hostile and careless inputs through the real binary: every one is a clear error (non-zero exit, empty
/// stdout, a message naming the file, node or option) or correct behaviour; never a trap, hang or destroyed file.
struct HardeningTests {
    func inference(_ arguments: [String], environment: [String: String]? = nil, timeout: TimeInterval = 60) throws
        -> ProcessOutput
    {
        try ProcessRunner.run(TestEnvironment.inferenceBinary, arguments, environment: environment, timeout: timeout)
    }

    /// A clean failure: non-zero exit, nothing on stdout, no crash report, the phrases on stderr.
    func expectCleanFailure(
        _ result: ProcessOutput, _ phrases: [String], sourceLocation: SourceLocation = #_sourceLocation
    ) {
        #expect(result.status != 0, "exit \(result.status)", sourceLocation: sourceLocation)
        #expect(result.status < 128, "killed by a signal: \(result.stderr)", sourceLocation: sourceLocation)
        #expect(result.stdout.isEmpty, "stdout: \(result.stdout)", sourceLocation: sourceLocation)
        #expect(!result.stderr.contains("Fatal error"), "\(result.stderr)", sourceLocation: sourceLocation)
        for phrase in phrases {
            #expect(
                result.stderr.contains(phrase), "missing '\(phrase)' in: \(result.stderr)",
                sourceLocation: sourceLocation)
        }
    }

    /// Runs a Python script (onnx, numpy) with `arguments`; nil when no reference Python exists here.
    func python(_ script: String, _ arguments: [String]) throws -> Bool {
        guard let python = TestEnvironment.python else {
            if TestEnvironment.pythonRequired { Issue.record("reference Python missing") }
            return false
        }
        let made = try ProcessRunner.run(python, ["-c", script] + arguments)
        #expect(made.status == 0, "\(made.stderr)")
        return made.status == 0
    }

    /// A Gemm model whose weight `w` (4 x 2 float32, 32 bytes) is external data with the given record.
    static let externalModelScript = """
        import sys, onnx
        from onnx import helper, TensorProto as T
        path, location, offset, length = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
        w = onnx.TensorProto(); w.name = 'w'; w.data_type = T.FLOAT; w.dims.extend([4, 2])
        w.data_location = T.EXTERNAL
        w.external_data.add(key='location', value=location)
        if offset != '-': w.external_data.add(key='offset', value=offset)
        if length != '-': w.external_data.add(key='length', value=length)
        g = helper.make_graph([helper.make_node('MatMul', ['x', 'w'], ['y'])], 'g',
            [helper.make_tensor_value_info('x', T.FLOAT, [1, 4])], [helper.make_tensor_value_info('y', T.FLOAT, [1, 2])], [w])
        onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid('', 13)]), path)
        """

    // MARK: Security

    @Test func externalDataStaysInsideTheModelsRealFolder() throws {
        let root = try TestEnvironment.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        let models = root.appendingPathComponent("models")
        let sibling = root.appendingPathComponent("models_other")
        try FileManager.default.createDirectory(at: models, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: sibling, withIntermediateDirectories: true)
        try Data(count: 32).write(to: sibling.appendingPathComponent("key.bin"))
        try Data(count: 32).write(to: models.appendingPathComponent("w.bin"))
        // A symlinked file and a symlinked folder inside the model's folder, both pointing out of it.
        try FileManager.default.createSymbolicLink(
            atPath: models.appendingPathComponent("link.bin").path, withDestinationPath: sibling.path + "/key.bin")
        try FileManager.default.createSymbolicLink(
            atPath: models.appendingPathComponent("linkdir").path, withDestinationPath: sibling.path)
        let input = root.appendingPathComponent("x.npy").path
        try NumPyFile.writeNPY(try Tensor(shape: [1, 4], scalars: [Float](repeating: 1, count: 4)), path: input)
        let cases: [(location: String, phrase: String)] = [
            ("../models_other/key.bin", "outside the model's folder"),
            ("link.bin", "outside the model's folder"),
            ("linkdir/key.bin", "outside the model's folder"),
            ("/etc/hostname", "not a relative path"),
        ]
        for (index, item) in cases.enumerated() {
            let model = models.appendingPathComponent("m\(index).onnx").path
            guard try python(Self.externalModelScript, [model, item.location, "0", "32"]) else { return }
            let result = try inference(["--model", model, "--input", input])
            expectCleanFailure(result, [model, item.phrase])
        }
        // The same record inside the folder works.
        let good = models.appendingPathComponent("good.onnx").path
        guard try python(Self.externalModelScript, [good, "w.bin", "0", "32"]) else { return }
        let ok = try inference(["--model", good, "--input", input])
        #expect(ok.status == 0, "\(ok.stderr)")
    }

    @Test func externalDataRecordsAreCheckedBeforeReading() throws {
        let root = try TestEnvironment.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        try Data(count: 32).write(to: root.appendingPathComponent("w.bin"))
        // A sparse 8 GiB file: reading it whole would take gigabytes of memory.
        let big = root.appendingPathComponent("big.bin").path
        #expect(FileManager.default.createFile(atPath: big, contents: nil))
        #expect(truncate(big, 8 << 30) == 0)
        let input = root.appendingPathComponent("x.npy").path
        try NumPyFile.writeNPY(try Tensor(shape: [1, 4], scalars: [Float](repeating: 1, count: 4)), path: input)
        let cases: [(location: String, offset: String, length: String, phrase: String)] = [
            ("w.bin", "0", "-5", "length '-5'"),
            ("w.bin", "0", "9223372036854775807", "runs past the end"),
            ("w.bin", "-1", "32", "offset '-1'"),
            ("w.bin", "64", "-", "past the end"),
            ("w.bin", "0", "16", "holds 16 bytes"),
            ("big.bin", "0", "-", "but the shape needs 32"),
        ]
        for (index, item) in cases.enumerated() {
            let model = root.appendingPathComponent("m\(index).onnx").path
            guard try python(Self.externalModelScript, [model, item.location, item.offset, item.length]) else { return }
            let result = try inference(["--model", model, "--input", input])
            expectCleanFailure(result, [model, item.phrase])
        }
        // Offset and length inside a large file: only the tensor's 32 bytes are read.
        let model = root.appendingPathComponent("inside.onnx").path
        guard try python(Self.externalModelScript, [model, "big.bin", "4096", "32"]) else { return }
        let ok = try inference(["--model", model, "--input", input])
        #expect(ok.status == 0, "\(ok.stderr)")
    }

    @Test func aProfileOthersCanWriteIsRefused() throws {
        let root = try TestEnvironment.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        let profile = root.appendingPathComponent("p.json").path
        try """
        {"model": "builtin:linear", "machine": "test", "created": "t", "baseline": "cpu",
         "accelerator": "opencl:0", "crossover_batch": 1, "measured_batches": [1]}
        """.write(toFile: profile, atomically: true, encoding: .utf8)
        #expect(chmod(profile, 0o666) == 0)
        let result = try inference(["--device", "auto", "--profile", profile, "--input", "data/sample1.npy"])
        expectCleanFailure(result, [profile, "writable by other users"])
    }

    @Test func profilesAreKeyedByTheModel() throws {
        let root = try TestEnvironment.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        let profile = root.appendingPathComponent("p.json").path
        try """
        {"model": "builtin:mlp", "machine": "test", "created": "t", "baseline": "cpu",
         "accelerator": "opencl:0", "crossover_batch": 1, "measured_batches": [1]}
        """.write(toFile: profile, atomically: true, encoding: .utf8)
        let result = try inference(["--device", "auto", "--profile", profile, "--input", "data/sample1.npy"])
        expectCleanFailure(result, [profile, "builtin:mlp", "builtin:linear"])
    }

    // MARK: Crashes and hangs

    @Test func sliceStepsAtTheIntegerLimitsAreShapesNotTraps() throws {
        let root = try TestEnvironment.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        let script = """
            import sys, numpy as np, onnx
            from onnx import helper, numpy_helper, TensorProto as T
            step = int(sys.argv[2])
            inits = [numpy_helper.from_array(np.array([v], np.int64), n) for n, v in
                     [('s', 0 if step > 0 else -1), ('e', 9223372036854775807 if step > 0 else -9223372036854775808),
                      ('a', 0), ('k', step)]]
            g = helper.make_graph([helper.make_node('Slice', ['x', 's', 'e', 'a', 'k'], ['y'])], 'g',
                [helper.make_tensor_value_info('x', T.FLOAT, [5])], [helper.make_tensor_value_info('y', T.FLOAT, None)], inits)
            onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid('', 13)]), sys.argv[1])
            """
        let input = root.appendingPathComponent("x.npy").path
        try NumPyFile.writeNPY(try Tensor(shape: [5], scalars: [Float]([1, 2, 3, 4, 5])), path: input)
        for (step, expected) in [("9223372036854775807", "1.0"), ("-9223372036854775808", "5.0")] {
            let model = root.appendingPathComponent("slice\(step.hasPrefix("-") ? "n" : "p").onnx").path
            guard try python(script, [model, step]) else { return }
            let inspect = try inference(["inspect", "--model", model])
            #expect(inspect.status == 0, "\(inspect.stderr)")
            let run = try inference(["--model", model, "--input", input])
            #expect(run.status == 0, "\(run.stderr)")
            #expect(run.stdout.contains("Prediction: \(expected)\n"), "\(run.stdout)")
        }
    }

    /// Found by the ONNX fuzzer: pads of Int64.min made `abs` trap in shape inference (Pad, Conv, ConvTranspose).
    @Test func padsAtTheIntegerLimitsAreShapeErrors() throws {
        let root = try TestEnvironment.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        let script = """
            import sys, numpy as np, onnx
            from onnx import helper, numpy_helper, TensorProto as T
            p = numpy_helper.from_array(np.array([0, -2**63, 0, 0], np.int64), 'p')
            pad = helper.make_graph([helper.make_node('Pad', ['x', 'p'], ['y'])], 'g',
                [helper.make_tensor_value_info('x', T.FLOAT, ['n', 10])], [helper.make_tensor_value_info('y', T.FLOAT, None)], [p])
            onnx.save(helper.make_model(pad, opset_imports=[helper.make_opsetid('', 13)]), sys.argv[1])
            w = numpy_helper.from_array(np.ones((1, 1, 3), np.float32), 'w')
            conv = helper.make_graph([helper.make_node('Conv', ['x', 'w'], ['y'], pads=[-2**63, 0])], 'g',
                [helper.make_tensor_value_info('x', T.FLOAT, [1, 1, 10])], [helper.make_tensor_value_info('y', T.FLOAT, None)], [w])
            onnx.save(helper.make_model(conv, opset_imports=[helper.make_opsetid('', 13)]), sys.argv[2])
            """
        let pad = root.appendingPathComponent("pad.onnx").path
        let conv = root.appendingPathComponent("conv.onnx").path
        guard try python(script, [pad, conv]) else { return }
        expectCleanFailure(try inference(["--model", pad, "--input", "data/sample1.npy"]), ["out of range"])
        let x = root.appendingPathComponent("x.npy").path
        try NumPyFile.writeNPY(try Tensor(shape: [1, 1, 10], scalars: [Float](repeating: 1, count: 10)), path: x)
        expectCleanFailure(try inference(["--model", conv, "--input", x]), ["window attributes out of range"])
        for model in [pad, conv] {
            let inspect = try inference(["inspect", "--model", model])
            #expect(
                inspect.status == 0 && inspect.stdout.contains("not computed"), "\(inspect.stdout)\(inspect.stderr)")
        }
    }

    /// Depthwise convolutions and max pools whose strides and pads are near 2^31 (a 2x2 output from a 4x4 input):
    /// the scratch sizes derived from them are checked (an unchecked product once trapped or could wrap).
    @Test func windowsWithHugeStridesRunOrFailCleanly() throws {
        let root = try TestEnvironment.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        let script = """
            import sys, numpy as np, onnx
            from onnx import helper, numpy_helper, TensorProto as T
            s, p = 2**31 - 1, [2**30, 2**30, 2**30 - 2, 2**30 - 2]
            w = numpy_helper.from_array(np.ones((2, 1, 3, 3), np.float32), 'w')
            b = numpy_helper.from_array(np.array([1.5, -2], np.float32), 'b')
            nodes = [helper.make_node('Conv', ['x', 'w', 'b'], ['c'], group=2, strides=[s, s], pads=p),
                     helper.make_node('MaxPool', ['x'], ['m'], kernel_shape=[3, 3], strides=[s, s], pads=p)]
            g = helper.make_graph(nodes, 'g', [helper.make_tensor_value_info('x', T.FLOAT, [1, 2, 4, 4])],
                [helper.make_tensor_value_info('c', T.FLOAT, None), helper.make_tensor_value_info('m', T.FLOAT, None)], [w, b])
            onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid('', 13)]), sys.argv[1])
            """
        let model = root.appendingPathComponent("strides.onnx").path
        guard try python(script, [model]) else { return }
        let x = root.appendingPathComponent("x.npy").path
        try NumPyFile.writeNPY(try Tensor(shape: [1, 2, 4, 4], scalars: [Float](repeating: 1, count: 32)), path: x)
        let result = try inference(["--model", model, "--input", x, "--json", "--repeat", "1"])
        #expect(result.status == 0, "\(result.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        let outputs = try #require(object["outputs"] as? [[String: Any]])
        // Every window but the first row and column lies wholly in the padding, and so does the first (it starts
        // 2^30 before the image): the convolution gives its bias, the max pool -infinity (the padding's value).
        #expect(outputs.first?["shape"] as? [Int] == [1, 2, 2, 2])
        #expect(outputs.first?["values"] as? [Double] == [1.5, 1.5, 1.5, 1.5, -2, -2, -2, -2])
        #expect(outputs.last?["values"] as? [String] == [String](repeating: "-Infinity", count: 8))
    }

    @Test func negativeSequenceLengthsAreAnError() throws {
        let root = try TestEnvironment.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        let model = root.appendingPathComponent("lstm.onnx").path
        let inputs = root.appendingPathComponent("in.npz").path
        let script = """
            import sys, numpy as np, onnx
            from onnx import helper, numpy_helper, TensorProto as T
            rng = np.random.default_rng(1)
            W = numpy_helper.from_array(rng.standard_normal((1, 8, 3)).astype(np.float32), 'W')
            R = numpy_helper.from_array(rng.standard_normal((1, 8, 2)).astype(np.float32), 'R')
            g = helper.make_graph([helper.make_node('LSTM', ['x', 'W', 'R', '', 'lens'], ['y'], hidden_size=2)], 'g',
                [helper.make_tensor_value_info('x', T.FLOAT, [4, 1, 3]), helper.make_tensor_value_info('lens', T.INT32, [1])],
                [helper.make_tensor_value_info('y', T.FLOAT, None)], [W, R])
            onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid('', 14)]), sys.argv[1])
            np.savez(sys.argv[2], x=np.ones((4, 1, 3), np.float32), lens=np.array([-1], np.int32))
            """
        guard try python(script, [model, inputs]) else { return }
        expectCleanFailure(try inference(["--model", model, "--input", inputs]), ["sequence_lens[0] is -1"])
    }

    @Test func numericOptionsHaveLimits() throws {
        let cases: [([String], String)] = [
            (["bench", "--batch-sizes", "1,1"], "listed twice"),
            (["calibrate", "--batch-sizes", "2,2", "--device", "opencl:0"], "listed twice"),
            (["bench", "--batch-sizes", "9223372036854775807"], "--batch-sizes"),
            (["bench", "--batch-sizes", "1099511627776"], "--batch-sizes"),
            (["bench", "--batch-sizes", ""], "--batch-sizes is empty"),
            (["bench", "--devices", ""], "--devices is empty"),
            (["bench", "--repeat", "1000000000000"], "--repeat must be between 1 and"),
            (["--input", "data/sample1.npy", "--warmup", "1000000000000"], "--warmup must be between 0 and"),
            (["--input", "data/sample1.npy", "--repeat", "-5"], "--repeat must be between 1 and"),
            (["--input", "data/sample1.npy", "--threads", "-1"], "--threads must be between 1 and"),
            (["frobnicate"], "unknown command or argument 'frobnicate'"),
        ]
        for (arguments, phrase) in cases {
            let result = try inference(arguments, timeout: 20)
            expectCleanFailure(result, [phrase])
        }
    }

    /// A model file past protobuf's 2 GiB is refused from its size (a sparse file: nothing is read).
    @Test func modelsOverTheProtobufLimitAreRefusedUnread() throws {
        let root = try TestEnvironment.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        let big = root.appendingPathComponent("big.onnx").path
        #expect(FileManager.default.createFile(atPath: big, contents: nil))
        #expect(truncate(big, 3 << 30) == 0)
        let started = Date()
        expectCleanFailure(try inference(["inspect", "--model", big]), [big, "over protobuf's 2 GiB limit"])
        #expect(Date().timeIntervalSince(started) < 10)
    }

    @Test func fifosAreRefusedNotOpenedForever() throws {
        let root = try TestEnvironment.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        let fifo = root.appendingPathComponent("pipe.npy").path
        #expect(mkfifo(fifo, 0o600) == 0)
        let fifoModel = root.appendingPathComponent("pipe.onnx").path
        #expect(mkfifo(fifoModel, 0o600) == 0)
        expectCleanFailure(try inference(["--input", fifo], timeout: 20), [fifo, "FIFO"])
        expectCleanFailure(
            try inference(["--model", fifoModel, "--input", "data/sample1.npy"], timeout: 20), [fifoModel, "FIFO"])
        // A FIFO as an external data file.
        let weights = root.appendingPathComponent("w.bin").path
        #expect(mkfifo(weights, 0o600) == 0)
        let model = root.appendingPathComponent("m.onnx").path
        guard try python(Self.externalModelScript, [model, "w.bin", "0", "32"]) else { return }
        let input = root.appendingPathComponent("x.npy").path
        try NumPyFile.writeNPY(try Tensor(shape: [1, 4], scalars: [Float](repeating: 1, count: 4)), path: input)
        expectCleanFailure(try inference(["--model", model, "--input", input], timeout: 20), ["w.bin", "FIFO"])
    }

    // MARK: Data safety

    @Test func outputsReplaceOnlyRegularFilesAndFailBeforeTheRun() throws {
        let root = try TestEnvironment.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        let fifo = root.appendingPathComponent("out.npy").path
        #expect(mkfifo(fifo, 0o600) == 0)
        expectCleanFailure(try inference(["--input", "data/sample1.npy", "--output", fifo]), [fifo, "FIFO"])
        var info = stat()
        #expect(lstat(fifo, &info) == 0 && (info.st_mode & S_IFMT) == S_IFIFO, "the FIFO was replaced")
        let folder = root.appendingPathComponent("chart.svg").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let started = Date()
        expectCleanFailure(
            try inference(["bench", "--model", "builtin:linear", "--devices", "cpu", "--plot", folder]),
            [folder, "folder"])
        #expect(Date().timeIntervalSince(started) < 10, "the sweep ran before the target was checked")
        let missing = root.appendingPathComponent("no/such/folder/chart.svg").path
        expectCleanFailure(
            try inference(["bench", "--model", "builtin:linear", "--devices", "cpu", "--plot", missing]),
            ["does not exist"])
        expectCleanFailure(
            try inference(["calibrate", "--device", "opencl:0", "--output", root.path]), [root.path, "folder"])
        // A device node is never replaced (as root, a rename over /dev/null would succeed).
        expectCleanFailure(
            try inference(["bench", "--model", "builtin:linear", "--devices", "cpu", "--plot", "/dev/null"]),
            ["/dev/null", "character device"])
        #expect(lstat("/dev/null", &info) == 0 && (info.st_mode & S_IFMT) == S_IFCHR)
    }

    // MARK: Wrong answers and ambiguity

    @Test func nonFiniteOutputsGiveValidJSONAndIntegersStayExact() throws {
        let root = try TestEnvironment.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        let model = root.appendingPathComponent("m.onnx").path
        let inputs = root.appendingPathComponent("in.npz").path
        let script = """
            import sys, numpy as np, onnx
            from onnx import helper, TensorProto as T
            g = helper.make_graph([helper.make_node('Div', ['x', 'z'], ['y']), helper.make_node('Identity', ['i'], ['j'])], 'g',
                [helper.make_tensor_value_info('x', T.FLOAT, [3]), helper.make_tensor_value_info('z', T.FLOAT, [3]),
                 helper.make_tensor_value_info('i', T.INT64, [2])],
                [helper.make_tensor_value_info('y', T.FLOAT, [3]), helper.make_tensor_value_info('j', T.INT64, [2])])
            onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid('', 13)]), sys.argv[1])
            np.savez(sys.argv[2], x=np.array([0, 1, -1], np.float32), z=np.zeros(3, np.float32),
                     i=np.array([2**53 + 1, -2**63], np.int64))
            """
        guard try python(script, [model, inputs]) else { return }
        let result = try inference(["--model", model, "--input", inputs, "--json", "--repeat", "2"])
        #expect(result.status == 0, "\(result.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        let outputs = try #require(object["outputs"] as? [[String: Any]])
        #expect(outputs.first?["values"] as? [String] == ["NaN", "Infinity", "-Infinity"])
        #expect(result.stdout.contains("[9007199254740993,-9223372036854775808]"), "\(result.stdout)")
        // Text mode prints the integer output exactly too (here through a model whose only output is int64).
        let intModel = root.appendingPathComponent("int.onnx").path
        let intScript = """
            import sys, onnx
            from onnx import helper, TensorProto as T
            g = helper.make_graph([helper.make_node('Identity', ['i'], ['j'])], 'g',
                [helper.make_tensor_value_info('i', T.INT64, [2])], [helper.make_tensor_value_info('j', T.INT64, [2])])
            onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid('', 13)]), sys.argv[1])
            """
        guard try python(intScript, [intModel]) else { return }
        let ints = root.appendingPathComponent("i.npy").path
        try NumPyFile.writeNPY(try Tensor(shape: [2], scalars: [Int64(1 << 53) + 1, Int64.min]), path: ints)
        let exact = try inference(["--model", intModel, "--input", ints])
        #expect(exact.status == 0, "\(exact.stderr)")
        #expect(exact.stdout.contains("[9007199254740993, -9223372036854775808]"), "\(exact.stdout)")
    }

    @Test func integerRangeIsExactAbove2To53() throws {
        let root = try TestEnvironment.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        let model = root.appendingPathComponent("range.onnx").path
        let script = """
            import sys, numpy as np, onnx
            from onnx import helper, numpy_helper, TensorProto as T
            inits = [numpy_helper.from_array(np.array(v, np.int64), n) for n, v in
                     [('s', 2**53 + 1), ('l', 2**53 + 4), ('d', 1)]]
            g = helper.make_graph([helper.make_node('Range', ['s', 'l', 'd'], ['r']), helper.make_node('Add', ['r', 'x'], ['y'])],
                'g', [helper.make_tensor_value_info('x', T.INT64, [3])], [helper.make_tensor_value_info('y', T.INT64, [3])], inits)
            onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid('', 13)]), sys.argv[1])
            """
        guard try python(script, [model]) else { return }
        let zeros = root.appendingPathComponent("x.npy").path
        try NumPyFile.writeNPY(try Tensor(shape: [3], scalars: [Int64](repeating: 0, count: 3)), path: zeros)
        let result = try inference(["--model", model, "--input", zeros])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(
            result.stdout.contains("[9007199254740993, 9007199254740994, 9007199254740995]"), "\(result.stdout)")
    }

    @Test func duplicatesAreErrorsNamingTheDuplicate() throws {
        let root = try TestEnvironment.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        let model = root.appendingPathComponent("twice.onnx").path
        let archive = root.appendingPathComponent("twice.npz").path
        let script = """
            import sys, zipfile, io, numpy as np, onnx
            from onnx import helper, numpy_helper, TensorProto as T
            a = numpy_helper.from_array(np.ones((1, 10), np.float32), 'b')
            b = numpy_helper.from_array(np.zeros((1, 10), np.float32), 'b')
            g = helper.make_graph([helper.make_node('Add', ['x', 'b'], ['y'])], 'g',
                [helper.make_tensor_value_info('x', T.FLOAT, [1, 10])], [helper.make_tensor_value_info('y', T.FLOAT, [1, 10])], [a, b])
            onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid('', 13)]), sys.argv[1])
            with zipfile.ZipFile(sys.argv[2], 'w') as z:
                for value in (1, 2):
                    buffer = io.BytesIO(); np.save(buffer, np.full(10, value, np.float32))
                    z.writestr('x.npy', buffer.getvalue())
            """
        guard try python(script, [model, archive]) else { return }
        expectCleanFailure(
            try inference(["--model", model, "--input", "data/sample1.npy"]), ["initializer 'b' is defined twice"])
        expectCleanFailure(try inference(["--input", archive]), [archive, "two members are named 'x'"])
        expectCleanFailure(
            try inference(["--input", "x=data/sample1.npy", "--input", "x=data/sample1.npy"]),
            ["two inputs are named 'x'"])
    }

    @Test func benchSkipsBatchSizesAFixedBatchModelCannotTake() throws {
        let root = try TestEnvironment.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        let model = root.appendingPathComponent("fixed.onnx").path
        let script = """
            import sys, onnx
            from onnx import helper, TensorProto as T
            g = helper.make_graph([helper.make_node('Relu', ['x'], ['y'])], 'g',
                [helper.make_tensor_value_info('x', T.FLOAT, [1, 10])], [helper.make_tensor_value_info('y', T.FLOAT, [1, 10])])
            onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid('', 13)]), sys.argv[1])
            """
        guard try python(script, [model]) else { return }
        let mixed = try inference([
            "bench", "--model", model, "--devices", "cpu", "--batch-sizes", "1,8", "--repeat", "2", "--format", "json",
        ])
        #expect(mixed.status == 0, "\(mixed.stderr)")
        #expect(mixed.stderr.contains("fixed batch of 1; batch 8 skipped"), "\(mixed.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(mixed.stdout.utf8)) as? [String: Any])
        let sweep = try #require((object["models"] as? [[String: Any]])?.first)
        #expect((sweep["points"] as? [[String: Any]])?.compactMap { $0["batch"] as? Int } == [1])
        expectCleanFailure(
            try inference(["bench", "--model", model, "--devices", "cpu", "--batch-sizes", "8", "--repeat", "2"]),
            ["none of the batch sizes"])
    }

    @Test func nestedIfReadsValuesFromAnyEnclosingScope() throws {
        let root = try TestEnvironment.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        let model = root.appendingPathComponent("nested.onnx").path
        let inputs = root.appendingPathComponent("in.npz").path
        let script = """
            import sys, numpy as np, onnx
            from onnx import helper, TensorProto as T
            def branch(name, op, out):
                return helper.make_graph([helper.make_node(op, ['x', 'x'], [out])], name, [],
                                         [helper.make_tensor_value_info(out, T.FLOAT, [2])])
            outer_then = helper.make_graph([helper.make_node('If', ['c2'], ['ot'], then_branch=branch('it', 'Add', 'a'),
                else_branch=branch('ie', 'Sub', 'b'))], 'ot', [], [helper.make_tensor_value_info('ot', T.FLOAT, [2])])
            outer_else = helper.make_graph([helper.make_node('Neg', ['x'], ['oe'])], 'oe', [],
                                           [helper.make_tensor_value_info('oe', T.FLOAT, [2])])
            g = helper.make_graph([helper.make_node('If', ['c1'], ['y'], then_branch=outer_then, else_branch=outer_else)], 'g',
                [helper.make_tensor_value_info('x', T.FLOAT, [2]), helper.make_tensor_value_info('c1', T.BOOL, []),
                 helper.make_tensor_value_info('c2', T.BOOL, [])], [helper.make_tensor_value_info('y', T.FLOAT, [2])])
            m = helper.make_model(g, opset_imports=[helper.make_opsetid('', 13)])
            onnx.checker.check_model(m)
            onnx.save(m, sys.argv[1])
            np.savez(sys.argv[2], x=np.array([1, 2], np.float32), c1=np.array(True), c2=np.array(True))
            """
        guard try python(script, [model, inputs]) else { return }
        let result = try inference(["--model", model, "--input", inputs, "--json", "--repeat", "2"])
        #expect(result.status == 0, "\(result.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        #expect((object["outputs"] as? [[String: Any]])?.first?["values"] as? [Double] == [2, 4])
    }

    // MARK: Messages

    @Test func settingsThatAreWrongAreReported() throws {
        let environment = [
            "INFERENCE_CPU_ISA": "garbage", "INFERENCE_GPU_POOL_MB": "-1", "INFERENCE_BLAS": "/etc/passwd",
        ]
        let result = try inference(["--input", "data/sample1.npy"], environment: environment)
        #expect(result.status == 0, "\(result.stderr)")
        for phrase in ["INFERENCE_CPU_ISA='garbage'", "INFERENCE_GPU_POOL_MB='-1'", "INFERENCE_BLAS='/etc/passwd'"] {
            #expect(result.stderr.contains(phrase), "\(result.stderr)")
        }
        let devices = try inference(["devices"], environment: environment)
        #expect(devices.stdout.contains("settings ignored:") && devices.stdout.contains("INFERENCE_CPU_ISA='garbage'"))
    }

    @Test func unknownDomainsAreNamed() throws {
        let root = try TestEnvironment.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        let model = root.appendingPathComponent("custom.onnx").path
        let script = """
            import sys, onnx
            from onnx import helper, TensorProto as T
            g = helper.make_graph([helper.make_node('Relu', ['x'], ['y'], domain='com.example')], 'g',
                [helper.make_tensor_value_info('x', T.FLOAT, ['n', 10])], [helper.make_tensor_value_info('y', T.FLOAT, ['n', 10])])
            onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid('', 13), helper.make_opsetid('com.example', 1)]), sys.argv[1])
            """
        guard try python(script, [model]) else { return }
        expectCleanFailure(
            try inference(["--model", model, "--input", "data/sample1.npy"]), ["Relu of domain 'com.example'"])
    }
}
