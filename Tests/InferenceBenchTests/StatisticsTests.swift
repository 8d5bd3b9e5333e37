import Foundation
import InferenceBench
import InferenceRuntime
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
        #expect(RoutingProfile.defaultPath(model: "builtin:mlp").hasSuffix("inference/profiles/builtin_mlp.json"))
    }
}
