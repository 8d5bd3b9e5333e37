import Foundation
import InferenceTestSupport
import Testing

/// A running `inference serve` on 127.0.0.1 (any free port), stopped with SIGTERM.
final class RunningServer {
    let process = Process()
    let port: Int
    private let errors: Pipe
    private var collected = Data()

    init(_ arguments: [String]) throws {
        process.executableURL = TestEnvironment.inferenceBinary
        process.arguments = ["serve", "--port", "0"] + arguments
        process.currentDirectoryURL = TestEnvironment.packageRoot
        errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        // The first stderr line that names the address: "serving NAMES on http://127.0.0.1:PORT (...)".
        let deadline = Date().addingTimeInterval(60)
        var found: Int?
        while found == nil && Date() < deadline && process.isRunning {
            let chunk = errors.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            collected.append(chunk)
            let text = String(decoding: collected, as: UTF8.self)
            if let range = text.range(of: "http://127.0.0.1:") {
                let digits = text[range.upperBound...].prefix { $0.isNumber }
                if let value = Int(digits), text[range.upperBound...].dropFirst(digits.count).first != nil {
                    found = value
                }
            }
        }
        guard let found else {
            process.terminate()
            throw ServeTestError(description: "the server did not start: \(String(decoding: collected, as: UTF8.self))")
        }
        port = found
    }

    var url: String { "127.0.0.1:\(port)" }

    /// SIGTERM, then the exit status (graceful shutdown finishes in-flight requests and exits 0).
    func stop() -> Int32 {
        if process.isRunning { kill(process.processIdentifier, SIGTERM) }
        process.waitUntilExit()
        return process.terminationStatus
    }

    deinit { if process.isRunning { process.terminate() } }
}

struct ServeTestError: Error, CustomStringConvertible { var description: String }

/// `inference serve` against the real Triton HTTP client and raw HTTP on loopback (Tests/serve/client_checks.py).
struct ServeTests {
    func python() throws -> URL? {
        guard let python = TestEnvironment.python else {
            if TestEnvironment.pythonRequired { Issue.record("reference Python missing") }
            return nil
        }
        let probe = try ProcessRunner.run(python, ["-c", "import tritonclient.http, yaml"])
        guard probe.status == 0 else {
            if TestEnvironment.pythonRequired { Issue.record("tritonclient missing: run scripts/setup-python-env") }
            return nil
        }
        return python
    }

    func clientChecks(_ server: RunningServer, _ mode: [String]) throws -> ProcessOutput? {
        guard let python = try python() else { return nil }
        let work = try TestEnvironment.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let script = TestEnvironment.packageRoot.appendingPathComponent("Tests/serve/client_checks.py").path
        return try ProcessRunner.run(
            python, [script, server.url, TestEnvironment.inferenceBinary.path, work.path] + mode, timeout: 300)
    }

    @Test func tritonClientProtocol() throws {
        let server = try RunningServer(["--model", "builtin:linear", "--model", "builtin:mlp"])
        guard let result = try clientChecks(server, ["protocol"]) else { return }
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        print(result.stdout, terminator: "")
        #expect(server.stop() == 0)
    }

    @Test func malformedRequestsGet400AndTheServerStaysUp() throws {
        let server = try RunningServer(["--model", "builtin:linear", "--max-body-mb", "1"])
        guard let result = try clientChecks(server, ["malformed"]) else { return }
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        print(result.stdout, terminator: "")
        #expect(server.stop() == 0)
    }

    /// 8 concurrent clients × 25 requests: every answer equal to the CLI's, none lost, batches formed; p50/p99
    /// and the batch sizes are printed.
    @Test func boundedLoadIsBatchedAndCorrect() throws {
        let server = try RunningServer([
            "--model", "builtin:mlp", "--max-batch", "8", "--max-queue-delay", "2ms", "--threads", "1", "--price",
            "cpu=3.6",
        ])
        guard let result = try clientChecks(server, ["load", "8", "25"]) else { return }
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        print(result.stdout, terminator: "")
        #expect(server.stop() == 0)
    }

    /// With a profile saying PoCL's device wins from batch 4, a single request stays on the CPU and a burst of 8
    /// concurrent ones is batched and sent to opencl:0 (counted in /metrics).
    @Test func routesBurstsToTheAcceleratorAndSinglesToTheCPU() throws {
        let devices = try ProcessRunner.run(TestEnvironment.inferenceBinary, ["devices", "--json"])
        guard devices.stdout.contains("\"opencl:0\"") else { return }
        let work = try TestEnvironment.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let profile = work.appendingPathComponent("profile.json")
        try Data(
            """
            {"model": "builtin:mlp", "machine": "test", "created": "2026-12-05T00:00:00Z", "baseline": "cpu",
             "accelerator": "opencl:0", "crossover_batch": 4, "measured_batches": [1, 4, 16]}
            """.utf8
        ).write(to: profile)
        let server = try RunningServer([
            "--model", "builtin:mlp", "--device", "cpu,opencl:0", "--profile", profile.path, "--max-batch", "8",
            "--max-queue-delay", "100ms",
        ])
        guard let result = try clientChecks(server, ["route"]) else { return }
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        print(result.stdout, terminator: "")
        #expect(server.stop() == 0)
    }

    /// The KServe manifests parse and carry the fields KServe requires, with options the binary takes.
    @Test func kserveManifestsAreWellFormed() throws {
        guard let python = try python() else { return }
        let script = TestEnvironment.packageRoot.appendingPathComponent("Tests/serve/manifest_checks.py").path
        let result = try ProcessRunner.run(
            python, [script, TestEnvironment.packageRoot.path, TestEnvironment.inferenceBinary.path])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        print(result.stdout, terminator: "")
    }

    /// `inference load` in process: each scenario's record, and the same scenario against `inference serve` on
    /// loopback; every query answered.
    @Test func loadScenariosInProcessAndAgainstTheServer() throws {
        func report(_ arguments: [String]) throws -> [String: Any] {
            let result = try ProcessRunner.run(TestEnvironment.inferenceBinary, ["load", "--json"] + arguments)
            #expect(result.status == 0, "\(result.stderr)")
            return try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        }
        func run(_ object: [String: Any]) throws -> [String: Any] {
            let policy = try #require((object["policies"] as? [[String: Any]])?.first)
            return try #require((policy["runs"] as? [[String: Any]])?.first)
        }
        let single = try run(
            try report(["--model", "builtin:linear", "--min-duration", "0.2s", "--min-queries", "100"]))
        #expect(single["scenario"] as? String == "single-stream")
        #expect((single["queries"] as? Int ?? 0) >= 100 && single["failed"] as? Int == 0)
        #expect(single["tail_percentile"] as? Double == 90)
        let latency = try #require(single["latency_ms"] as? [String: Double])
        for key in ["min", "mean", "max", "p50", "p90", "p95", "p97", "p99", "p99.9"] {
            #expect(latency[key] != nil, "\(key)")
        }
        let offline = try run(
            try report(["--model", "builtin:mlp", "--scenario", "offline", "--offline-samples", "256"]))
        #expect(offline["samples"] as? Int == 256 && offline["valid"] as? Bool == true)
        let server = try run(
            try report([
                "--model", "builtin:mlp", "--scenario", "server", "--rate", "400/s", "--min-duration", "0.2s",
                "--min-queries", "200", "--latency-bound", "50ms",
            ]))
        #expect(server["queries"] as? Int == 200 && server["scheduled_qps"] as? Double == 400)
        // 200 queries cannot support a p99 claim: INVALID, saying how many it needs.
        #expect(server["valid"] as? Bool == false)
        #expect((server["reasons"] as? [String])?.contains { $0.contains("459") } == true)

        let devices = try ProcessRunner.run(TestEnvironment.inferenceBinary, ["devices", "--json"])
        let pair = devices.stdout.contains("\"opencl:0\"") ? ["--device", "cpu,opencl:0"] : []
        let served = try RunningServer(["--model", "builtin:mlp"] + pair)
        let remote = try run(
            try report([
                "--model", "builtin:mlp", "--url", "http://\(served.url)", "--model-name", "mlp", "--scenario",
                "server",
                "--rate", "200/s", "--min-duration", "0.2s", "--min-queries", "100", "--latency-bound", "100ms",
            ]))
        #expect(remote["queries"] as? Int == 100 && remote["failed"] as? Int == 0, "\(remote)")
        #expect(served.stop() == 0)

        let bad = try ProcessRunner.run(TestEnvironment.inferenceBinary, ["load", "--scenario", "warp"])
        #expect(bad.status != 0 && bad.stderr.contains("--scenario"))
        let noRate = try ProcessRunner.run(TestEnvironment.inferenceBinary, ["load", "--rate", "0/s"])
        #expect(noRate.status != 0 && noRate.stderr.contains("--rate"))
    }

    /// A per-request timeout that passes in the queue is 503 (the batcher waits 300 ms for company here).
    @Test func requestTimeoutsAreHonoured() throws {
        let server = try RunningServer(["--model", "builtin:linear", "--max-queue-delay", "300ms"])
        guard let result = try clientChecks(server, ["timeout"]) else { return }
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(server.stop() == 0)
    }

    /// A full queue refuses at once (503) and keeps the queued requests.
    @Test func aFullQueueRefusesWith503() throws {
        let server = try RunningServer([
            "--model", "builtin:linear", "--max-queue", "1", "--max-batch", "2", "--max-queue-delay", "300ms",
        ])
        guard let result = try clientChecks(server, ["queuefull"]) else { return }
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(server.stop() == 0)
    }

    /// `load` and `serve` refuse what they cannot do, naming the option or the file; a trace replays.
    @Test func loadAndServeErrorPathsAndTraces() throws {
        let work = try TestEnvironment.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let csv = work.appendingPathComponent("trace.csv")
        try Data("seconds,samples\n0,1\n0.01,2\n0.02,1\n".utf8).write(to: csv)
        let jsonl = work.appendingPathComponent("trace.jsonl")
        try Data("{\"seconds\": 0, \"samples\": 3}\n{\"seconds\": 0.01}\n".utf8).write(to: jsonl)
        for (trace, samples) in [(csv, 4), (jsonl, 4)] {
            let result = try ProcessRunner.run(
                TestEnvironment.inferenceBinary,
                [
                    "load", "--model", "builtin:linear", "--scenario", "server", "--arrivals", "trace:\(trace.path)",
                    "--min-duration", "0", "--min-queries", "1", "--json",
                ])
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stdout.contains("\"samples\" : \(samples)"), "\(result.stdout)")
        }
        let bad = work.appendingPathComponent("bad.csv")
        try Data("0,1\nsoon,2\n".utf8).write(to: bad)
        let empty = work.appendingPathComponent("empty.csv")
        try Data("seconds,samples\n".utf8).write(to: empty)
        let cases: [([String], String)] = [
            (["load", "--arrivals", "trace:\(bad.path)"], "bad.csv:2"),
            (["load", "--arrivals", "trace:\(empty.path)"], "no queries"),
            (["load", "--arrivals", "trace:/nonexistent/trace.csv"], "cannot read"),
            (["load", "--arrivals", "gamma:-1"], "gamma:CV"),
            (["load", "--plot", work.appendingPathComponent("p.svg").path], "--find-peak"),
            (["load", "--url", "http://127.0.0.1:1"], "--model-name"),
            (["load", "--url", "ftp://x", "--model-name", "m"], "--url"),
            (["load", "--device", "cpu,opencl:0,cuda:0"], "at most two"),
            (["load", "--model", "builtin:mlp", "--offline-samples", "1000000"], "1 GiB"),
            (["serve", "--device", "cpu,opencl:0,cuda:0"], "at most two"),
            (["serve", "--model", "a=builtin:linear", "--model", "a=builtin:mlp"], "two models are named 'a'"),
            (["serve", "--model", "a b=x.onnx"], "not a model name"),
            (["serve", "--price", "cpu=lots"], "--price"),
            (["compare", "--input", "data/sample1.npy", "--min-duration", "forever"], "--min-duration"),
            (["compare", "--input", "data/sample1.npy", "--energy-seconds", "100"], "--energy-seconds"),
        ]
        for (arguments, words) in cases {
            let result = try ProcessRunner.run(TestEnvironment.inferenceBinary, arguments)
            #expect(result.status != 0 && result.stdout.isEmpty, "\(arguments): \(result.stdout)")
            #expect(result.stderr.contains(words), "\(arguments): \(result.stderr)")
        }
    }

    /// SIGTERM while a request waits in the queue (500 ms of batching delay): the request is still answered and
    /// the server exits 0. The batching delay starts when the request arrives, so it must be long enough to
    /// cover the client's /metrics poll that sees it queued.
    @Test func gracefulShutdownFinishesInFlightRequests() throws {
        guard let python = try python() else { return }
        let server = try RunningServer(["--model", "builtin:linear", "--max-queue-delay", "500ms"])
        let work = try TestEnvironment.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let client = Process()
        client.executableURL = python
        client.arguments = [
            TestEnvironment.packageRoot.appendingPathComponent("Tests/serve/client_checks.py").path, server.url,
            TestEnvironment.inferenceBinary.path, work.path, "inflight",
        ]
        let output = Pipe()
        client.standardOutput = output
        client.standardError = output
        try client.run()
        // The client says "queued" once the server counts its request in flight (however long python takes to
        // start on a loaded machine); the server is stopped then.
        var text = ""
        while !text.contains("queued") {
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            text += String(decoding: chunk, as: UTF8.self)
        }
        #expect(server.stop() == 0)
        client.waitUntilExit()
        text += String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(client.terminationStatus == 0, "\(text)")
    }

    @Test func refusesBadOptionsAndBusyPorts() throws {
        let bad = try ProcessRunner.run(TestEnvironment.inferenceBinary, ["serve", "--max-queue-delay", "soon"])
        #expect(bad.status != 0 && bad.stderr.contains("--max-queue-delay"))
        let server = try RunningServer(["--model", "builtin:linear"])
        let busy = try ProcessRunner.run(
            TestEnvironment.inferenceBinary, ["serve", "--port", "\(server.port)", "--model", "builtin:linear"])
        #expect(busy.status != 0 && busy.stdout.isEmpty, "\(busy.stderr)")
        #expect(busy.stderr.contains("cannot serve"), "\(busy.stderr)")
        #expect(server.stop() == 0)
    }
}
