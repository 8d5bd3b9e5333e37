import Foundation
import InferenceTestSupport
import Testing

/// `inference profile` through the real binary: tables, JSON, the Chrome trace, and node times that add up.
struct ProfileTests {
    @Test func nodeTimesAddUpAndTheOutputsParse() throws {
        let directory = try TestEnvironment.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let trace = directory.appendingPathComponent("trace.json").path
        let result = try ProcessRunner.run(
            TestEnvironment.inferenceBinary,
            ["profile", "--model", "builtin:cnn", "--repeat", "10", "--json", "--trace", trace, "--threads", "1"])
        #expect(result.status == 0, "\(result.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        let nodes = try #require(object["nodes"] as? [[String: Any]])
        let operators = try #require(object["operators"] as? [[String: Any]])
        #expect(nodes.count >= 3)
        #expect(operators.contains { $0["op_type"] as? String == "Conv" })
        #expect(nodes.allSatisfy { ($0["implementation"] as? String)?.hasSuffix("Kernel") == true })
        let profiled = try #require(object["profiled_compute_ms"] as? Double)
        let sum = nodes.compactMap { $0["mean_ms"] as? Double }.reduce(0, +)
        #expect(profiled > 0 && abs(sum - profiled) <= 0.1 * profiled, "nodes \(sum) ms, profiled run \(profiled) ms")
        let shares = nodes.compactMap { $0["share"] as? Double }.reduce(0, +)
        #expect(abs(shares - 1) < 1e-6)
        let conv = try #require(nodes.first { $0["op_type"] as? String == "Conv" })
        #expect((conv["gflops"] as? Double ?? 0) > 0)
        // The trace: Chrome's JSON object format with one complete event per node.
        let traceObject = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: trace))) as? [String: Any])
        let events = try #require(traceObject["traceEvents"] as? [[String: Any]])
        #expect(events.filter { $0["ph"] as? String == "X" }.count == nodes.count)
        // The text table names the slowest nodes and their kernels.
        let text = try ProcessRunner.run(
            TestEnvironment.inferenceBinary, ["profile", "--model", "builtin:mlp", "--repeat", "3", "--top", "2"])
        #expect(text.status == 0, "\(text.stderr)")
        #expect(text.stdout.contains("slowest nodes") && text.stdout.contains("GemmKernel"), "\(text.stdout)")
        // Bad options are errors naming them.
        let bad = try ProcessRunner.run(TestEnvironment.inferenceBinary, ["profile", "--repeat", "0"])
        #expect(bad.status != 0 && bad.stdout.isEmpty && bad.stderr.contains("--repeat"))
    }
}
