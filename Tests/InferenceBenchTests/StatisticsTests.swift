import Foundation
import InferenceBench
import InferenceRuntime
import InferenceTensor
import Testing

struct StatisticsTests {
    /// Values checked against numpy.percentile (linear interpolation) and numpy.std(ddof=1).
    @Test func percentilesMatchNumpy() {
        let s = Statistics([15, 20, 35, 40, 50])
        #expect(s.percentile(0) == 15)
        #expect(s.percentile(50) == 35)
        #expect(s.percentile(40) == 29)  // np.percentile([15,20,35,40,50], 40) == 29.0
        #expect(s.percentile(90) == 46)  // == 46.0
        #expect(s.percentile(100) == 50)
        #expect(abs(s.standardDeviation - 14.404860290887) < 1e-9)
        #expect(s.mean == 32)
    }

    @Test func percentilesOfUnsortedSamples() {
        let values = (1...100).reversed().map(Double.init)
        let s = Statistics(values)
        #expect(s.median == 50.5)
        #expect(abs(s.percentile(99) - 99.01) < 1e-9)
        #expect(s.minimum == 1 && s.maximum == 100)
    }

    @Test func singleValue() {
        let s = Statistics([7])
        #expect(s.percentile(99) == 7 && s.standardDeviation == 0)
    }

    @Test func measurementCountsWarmupAndRepeats() throws {
        var calls = 0
        let samples = try Measurement.repeatRuns(warmup: 3, repeats: 5) {
            calls += 1
            return RunTimings(
                copyInNanoseconds: 1, computeNanoseconds: UInt64(calls), copyOutNanoseconds: 1, planNanoseconds: 0)
        }
        #expect(calls == 8)
        #expect(samples.runs.count == 5)
        #expect(samples.compute.median == 6)  // calls 4...8 were timed
        #expect(samples.total.median == 8)
    }
}

struct MeasurementBudgetTests {
    static func run() -> RunTimings {
        RunTimings(copyInNanoseconds: 0, computeNanoseconds: 1, copyOutNanoseconds: 0, planNanoseconds: 0)
    }

    @Test func aTimeBudgetKeepsToItsMinimumAndMaximumRuns() throws {
        // No time at all: the floor of 10 runs still holds.
        let floor = try Measurement.repeatRuns(warmup: .count(0), repeats: .seconds(0), minimumRuns: 10) { Self.run() }
        #expect(floor.runs.count == 10)
        // An hour of budget ends at the ceiling.
        var calls = 0
        let ceiling = try Measurement.repeatRuns(warmup: .count(2), repeats: .seconds(3600), maximumRuns: 25) {
            calls += 1
            return Self.run()
        }
        #expect(ceiling.runs.count == 25)
        #expect(calls == 27)  // two untimed warm-up runs first
    }

    @Test func wallTimeCountsTheWholeBodyAsCompute() {
        let timings = Measurement.wallTime { usleep(2000) }
        #expect(timings.computeNanoseconds >= 2_000_000)
        #expect(timings.copyInNanoseconds == 0 && timings.copyOutNanoseconds == 0)
    }

    @Test func timeBudgetsRunUntilTheTimeHasPassed() throws {
        var calls = 0
        let start = MonotonicClock.nanoseconds()
        let samples = try Measurement.repeatRuns(warmup: .seconds(0.02), repeats: .seconds(0.05)) {
            calls += 1
            usleep(1000)
            return RunTimings(
                copyInNanoseconds: 0, computeNanoseconds: 1_000_000, copyOutNanoseconds: 0, planNanoseconds: 0)
        }
        let elapsed = Double(MonotonicClock.nanoseconds() - start) / 1e9
        #expect(elapsed >= 0.07)
        #expect(samples.runs.count >= 10 && samples.runs.count < calls)
        #expect(
            try Measurement.repeatRuns(warmup: .count(0), repeats: .count(0)) {
                RunTimings(copyInNanoseconds: 0, computeNanoseconds: 0, copyOutNanoseconds: 0, planNanoseconds: 0)
            }.runs.count == 1)
    }
}

struct RoutingProfileTests {
    @Test func routesByCrossover() throws {
        var profile = RoutingProfile(
            model: "m", machine: "x", created: "t", baseline: "cpu", accelerator: "opencl:0", crossoverBatch: 32,
            measuredBatches: [1, 32, 64])
        #expect(profile.route(batch: 1).device == "cpu")
        #expect(profile.route(batch: 31).device == "cpu")
        #expect(profile.route(batch: 32).device == "opencl:0")
        profile.crossoverBatch = nil
        #expect(profile.route(batch: 1024).device == "cpu")
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("profile-\(UUID().uuidString)/p.json")
            .path
        try profile.write(path: path)
        #expect(try RoutingProfile.load(path: path) == profile)
        #expect(
            try RoutingProfile.defaultPath(model: "builtin:mlp", digest: "0123456789abcdef", machine: "m").contains(
                "inference/profiles/builtin_mlp-0123456789abcdef-"))
    }
}

/// The cache folder follows the XDG rules and never lands in a shared or relative place.
struct CacheFolderTests {
    @Test func followsXDGAndIgnoresEmptyOrRelativeValues() throws {
        let home = FileManager.default.temporaryDirectory.path
        #expect(
            try CacheFolder.path(environment: ["XDG_CACHE_HOME": "/x/cache", "HOME": home]) == "/x/cache/inference")
        #expect(
            try CacheFolder.path(environment: ["XDG_CACHE_HOME": "rel", "HOME": home]) == home + "/.cache/inference")
        #expect(try CacheFolder.path(environment: ["XDG_CACHE_HOME": "", "HOME": home]) == home + "/.cache/inference")
        // A relative, empty or missing HOME falls back to the account's home folder, never /tmp or the cwd.
        for environment in [["HOME": "relative"], ["HOME": ""], ["HOME": "/no/such/home"], [:]] {
            if let path = try? CacheFolder.path(environment: environment) {
                #expect(path.hasPrefix("/") && !path.hasPrefix("/tmp/") && !path.hasPrefix("/no/such/home"), "\(path)")
                #expect(path.hasSuffix("/.cache/inference"))
            }
        }
    }

    @Test func profilesAreKeyedByContentAndMachineAndWrittenPrivately() throws {
        let a = try RoutingProfile.defaultPath(
            model: "builtin:mlp", digest: try ModelDigest.of(model: "builtin:mlp"), machine: "m")
        let b = try RoutingProfile.defaultPath(
            model: "builtin:linear", digest: try ModelDigest.of(model: "builtin:linear"), machine: "m")
        let c = try RoutingProfile.defaultPath(
            model: "builtin:mlp", digest: try ModelDigest.of(model: "builtin:mlp"), machine: "n")
        #expect(a != b && a != c)
        let profile = RoutingProfile(
            model: "dir/model.onnx", modelDigest: "0123456789abcdef", machine: "m", created: "t", baseline: "cpu",
            accelerator: "opencl:0", crossoverBatch: 8, measuredBatches: [1, 8])
        #expect(profile.mismatch(model: "other/model.onnx", digest: "0123456789abcdef") == nil)
        #expect(profile.mismatch(model: "dir/model.onnx", digest: "fedcba9876543210") != nil)
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("profiles-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("a/b/p.json").path
        try profile.write(path: path)
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        let folderAttributes = try FileManager.default.attributesOfItem(atPath: folder.appendingPathComponent("a").path)
        #expect((folderAttributes[.posixPermissions] as? Int) == 0o700)
        #expect(try RoutingProfile.load(path: path) == profile)
    }
}
