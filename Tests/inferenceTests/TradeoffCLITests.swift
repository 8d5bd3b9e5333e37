import Foundation
import InferenceTestSupport
import Testing

/// The whole cost of a device through the binary: cold start from the process's start, energy with a value or a
/// reason, cost per million, statistics that say how far to trust them, and large outputs summarized.
struct TradeoffCLITests {
    func inference(_ arguments: [String], environment: [String: String]? = nil) throws -> ProcessOutput {
        try ProcessRunner.run(TestEnvironment.inferenceBinary, arguments, environment: environment)
    }

    func json(_ text: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }

    func hasOpenCL() throws -> Bool {
        try inference(["devices", "--json"]).stdout.contains("\"opencl:0\"")
    }

    /// On OpenCL the reported cold start (process start to first result, phases summed) is within 10 % of the
    /// process's own wall time minus its exit: the process clock at the report (after the first result only two
    /// short runs) is checked against the wall time the test measures from outside.
    @Test func coldStartCoversTheWholeProcess() throws {
        guard try hasOpenCL() else { return }
        var best: (reported: Double, untilReport: Double, wall: Double)?
        // The best of three: a scheduler hiccup must not fail the test.
        for _ in 0..<3 {
            let start = DispatchTime.now().uptimeNanoseconds
            let result = try inference([
                "--device", "opencl:0", "--input", "data/sample1.npy", "--json", "--repeat", "1", "--warmup", "0",
            ])
            let wall = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
            #expect(result.status == 0, "\(result.stderr)")
            let report = try json(result.stdout)
            let untilReport = try #require(report["process_elapsed_ms"] as? Double)
            let cold = try #require(report["cold_start"] as? [String: Any])
            let phases = try #require(cold["phases"] as? [[String: Any]])
            let names = phases.compactMap { $0["name"] as? String }
            #expect(names.first?.hasPrefix("process start-up") == true)
            #expect(names.contains("device (runtime library, context, kernel build)"))
            #expect(names.contains("first run"))
            let total = try #require(cold["total_ms"] as? Double)
            let clock = try #require(cold["since_process_start_ms"] as? Double)
            #expect(abs(total - clock) <= 0.05 * clock, "phases \(total) ms vs process clock \(clock) ms")
            if best.map({ total / untilReport > $0.reported / $0.untilReport }) ?? true {
                best = (total, untilReport, wall)
            }
        }
        let (reported, untilReport, wall) = try #require(best)
        // The process clock counts from the start: never more than the wall time, and most of it (the exit and
        // process creation are the rest).
        #expect(untilReport <= wall, "process clock \(untilReport) ms exceeds the wall time \(wall) ms")
        #expect(untilReport >= 0.5 * wall, "process clock \(untilReport) ms vs the wall time \(wall) ms")
        #expect(reported <= untilReport)
        #expect(
            reported >= 0.9 * untilReport,
            "cold start \(reported) ms is under 90% of the process's time to its report, \(untilReport) ms (wall \(wall) ms)"
        )
    }

    /// Energy in compare's JSON: on this machine a reason (no powercap here, or unreadable); with a readable
    /// powercap tree (given by INFERENCE_POWERCAP_ROOT, its counter advanced by the test while compare runs)
    /// a value per inference, per domain.
    @Test func energyHasAValueOrAReason() throws {
        let plain = try inference(["compare", "--input", "data/sample1.npy", "--devices", "cpu", "--json"])
        #expect(plain.status == 0, "\(plain.stderr)")
        let device = try #require((try json(plain.stdout)["devices"] as? [[String: Any]])?.first)
        let energy = try #require(device["energy"] as? [String: Any])
        let reasons = energy["unavailable"] as? [String] ?? []
        #expect(energy["joules_per_inference"] != nil || !reasons.isEmpty)
        if energy["joules_per_inference"] == nil { #expect(reasons.first?.contains("CPU energy") == true) }

        let root = FileManager.default.temporaryDirectory.appendingPathComponent("powercap-cli-\(getpid())")
        defer { try? FileManager.default.removeItem(at: root) }
        let zone = root.appendingPathComponent("intel-rapl:0")
        try FileManager.default.createDirectory(at: zone, withIntermediateDirectories: true)
        try "package-0".write(to: zone.appendingPathComponent("name"), atomically: true, encoding: .utf8)
        try "262143328850".write(
            to: zone.appendingPathComponent("max_energy_range_uj"), atomically: true, encoding: .utf8)
        let counter = zone.appendingPathComponent("energy_uj")
        try "0".write(to: counter, atomically: true, encoding: .utf8)
        // A package drawing about 10 W: 10,000 µJ a millisecond, written as the kernel would.
        let done = ManagedAtomicFlag()
        let writer = Thread {
            var microjoules = 0
            while !done.isSet {
                microjoules += 10_000
                try? String(microjoules).write(to: counter, atomically: true, encoding: .utf8)
                usleep(1000)
            }
        }
        writer.start()
        defer { done.set() }
        let faked = try inference(
            ["compare", "--input", "data/sample1.npy", "--devices", "cpu", "--json", "--energy-seconds", "0.3"],
            environment: ["INFERENCE_POWERCAP_ROOT": root.path])
        done.set()
        #expect(faked.status == 0, "\(faked.stderr)")
        let measured = try #require((try json(faked.stdout)["devices"] as? [[String: Any]])?.first?["energy"])
        let reading = try #require(measured as? [String: Any])
        let perInference = try #require(reading["joules_per_inference"] as? Double)
        #expect(perInference >= 0)
        #expect((reading["idle_watts"] as? Double ?? 0) > 1)
        let domains = reading["domains"] as? [[String: Any]] ?? []
        #expect(domains.first?["name"] as? String == "package-0 (intel-rapl:0)")
        #expect((reading["runs"] as? Int ?? 0) > 0)
    }

    /// Cost per million from --price: the hourly price over an hour of inferences at the measured throughput, and
    /// at a --load with the devices it needs.
    @Test func costPerMillionIsArithmeticOnTheMeasuredThroughput() throws {
        let result = try inference([
            "compare", "--input", "data/batch_samples.npy", "--devices", "cpu", "--json", "--price", "cpu=3.6",
            "--load", "50/s", "--energy-seconds", "0",
        ])
        #expect(result.status == 0, "\(result.stderr)")
        let report = try json(result.stdout)
        let device = try #require((report["devices"] as? [[String: Any]])?.first)
        let throughput = try #require(device["throughput_per_s"] as? Double)
        let p50 = try #require((device["warm"] as? [String: Any])?["p50_ms"] as? Double)
        #expect(abs(throughput - 4 / (p50 / 1000)) <= 1e-6 * throughput)
        let cost = try #require(device["cost"] as? [String: Any])
        let perMillion = try #require(cost["dollars_per_million"] as? Double)
        #expect(abs(perMillion - 3.6 / 3600 / throughput * 1e6) <= 1e-9 * perMillion)
        let atLoad = try #require(cost["at_load"] as? [String: Any])
        #expect(atLoad["devices"] as? Int == 1)
        #expect(abs((atLoad["dollars_per_million"] as? Double ?? 0) - 3.6 / 3600 / 50 * 1e6) < 1e-9)
        #expect((report["verdict"] as? String)?.contains("per million") == true)

        let bad = try inference(["compare", "--input", "data/sample1.npy", "--price", "cpu=free"])
        #expect(bad.status != 0 && bad.stdout.isEmpty && bad.stderr.contains("--price"))
        let badLoad = try inference(["compare", "--input", "data/sample1.npy", "--load", "-5/s"])
        #expect(badLoad.status != 0 && badLoad.stderr.contains("--load"))
    }

    /// The intervals, the variation and LoadGen's early-stopping count are in compare's JSON; with too few runs
    /// for a p99 claim the tool says how many it needs.
    @Test func statisticsSayHowFarToTrustThem() throws {
        let result = try inference([
            "compare", "--input", "data/sample1.npy", "--devices", "cpu", "--json", "--repeat", "30",
            "--energy-seconds", "0",
        ])
        #expect(result.status == 0, "\(result.stderr)")
        let device = try #require((try json(result.stdout)["devices"] as? [[String: Any]])?.first)
        let warm = try #require(device["warm"] as? [String: Any])
        let p50 = try #require(warm["p50_ms"] as? Double)
        let interval = try #require(warm["p50_interval_ms"] as? [String: Any])
        let lower = try #require(interval["lower"] as? Double), upper = try #require(interval["upper"] as? Double)
        #expect(lower <= p50 && p50 <= upper)
        #expect(interval["confidence"] as? Double == 0.95)
        #expect(warm["coefficient_of_variation"] is Double)
        let early = try #require(warm["p99_early_stopping"] as? [String: Any])
        #expect(early["runs_needed"] as? Int == 662 && early["runs"] as? Int == 30)
        #expect(result.stderr.contains("needs at least 662 runs"))
    }

    /// A large output prints as a one-line summary (shape, first values, range, argmax per sample) and says
    /// where the whole tensor goes; the seed's outputs stay exact (CLITests).
    @Test func largeOutputsAreSummarized() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("summary-\(getpid())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let input = folder.appendingPathComponent("x.npy")
        try NPYFixture.float32(shape: [32, 784], values: (0..<(32 * 784)).map { Float($0 % 17) / 17 }).write(to: input)
        let result = try inference(["--model", "builtin:mlp", "--input", input.path])
        #expect(result.status == 0, "\(result.stderr)")
        let lines = result.stdout.split(separator: "\n")
        #expect(lines.count == 3)
        guard lines.count == 3 else { return }
        #expect(lines[1].hasPrefix("Predictions: float32 [32, 10]; first ["))
        #expect(lines[1].contains("min ") && lines[1].contains("max ") && lines[1].contains("argmax ["))
        #expect(lines[1].count < 400)
        #expect(result.stderr.contains("320 values, summarized") && result.stderr.contains("--output"))
    }
}

/// A flag set once from one thread and read from another.
final class ManagedAtomicFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    var isSet: Bool { lock.withLock { value } }
    func set() { lock.withLock { value = true } }
}

/// A little-endian float32 .npy file in memory.
enum NPYFixture {
    static func float32(shape: [Int], values: [Float]) -> Data {
        let dims = shape.map(String.init).joined(separator: ", ") + (shape.count == 1 ? "," : "")
        var header = "{'descr': '<f4', 'fortran_order': False, 'shape': (\(dims)), }"
        while (10 + header.count + 1) % 64 != 0 { header += " " }
        header += "\n"
        var data = Data([0x93] + Array("NUMPY".utf8) + [1, 0])
        data.append(contentsOf: [UInt8(header.utf8.count & 0xFF), UInt8(header.utf8.count >> 8)])
        data.append(contentsOf: Array(header.utf8))
        for value in values { withUnsafeBytes(of: value.bitPattern.littleEndian) { data.append(contentsOf: $0) } }
        return data
    }
}
