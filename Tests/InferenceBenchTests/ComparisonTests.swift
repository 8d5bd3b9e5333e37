import InferenceBench
import InferenceRuntime
import InferenceTensor
import Testing

/// The comparison's arithmetic and verdict on measurements made up by hand, so every number is known.
struct ComparisonTests {
    /// `count` warm runs of `milliseconds` each (a copy share of `copy` of every run).
    func runs(_ milliseconds: Double, count: Int = 20, copy: Double = 0) -> [RunTimings] {
        let total = UInt64(milliseconds * 1e6)
        let copies = UInt64(Double(total) * copy)
        return (0..<count).map { _ in
            RunTimings(
                copyInNanoseconds: copies / 2, computeNanoseconds: total - copies,
                copyOutNanoseconds: copies - copies / 2,
                planNanoseconds: 0)
        }
    }

    func coldStart(_ milliseconds: Double) -> ColdStart {
        var cold = ColdStart()
        cold.record("first run", nanoseconds: UInt64(milliseconds * 1e6))
        return cold
    }

    func output(_ values: [Float]) throws -> [NamedTensor] {
        [NamedTensor(name: "y", tensor: try Tensor(shape: [1, values.count], scalars: values))]
    }

    @Test func theFasterWarmDeviceWinsAndPaysBackItsColdStart() throws {
        // cpu: 2 ms cold, 1 ms warm; gpu: 10 ms cold, 0.25 ms warm, 60% of it copies.
        // Break-even: the smallest n with 10 + (n - 1)·0.25 <= 2 + (n - 1)·1, n - 1 >= 8 / 0.75 = 10.67, n = 12.
        let report = ComparisonReport(
            model: "m", batch: 1,
            runs: [
                DeviceResult(
                    device: "cpu", deviceName: "CPU", samples: runs(1), coldStart: coldStart(2),
                    outputs: try output([0.1, 0.9])),
                DeviceResult(
                    device: "gpu", deviceName: "GPU", samples: runs(0.25, copy: 0.6), coldStart: coldStart(10),
                    outputs: try output([0.9, 0.1])),
            ])
        #expect(report.winner == "gpu")
        #expect(report.breakEven.count == 1)
        #expect(report.breakEven.first?.calls == 12)
        #expect(report.speedups.first?.speedup == 4)
        #expect(report.devices[1].split.copyShare > 0.59 && report.devices[1].split.copyShare < 0.61)
        #expect(report.devices[1].parity.flippedPredictions == 1)
        #expect(report.devices[0].parity.likelyCause == "reference")
        #expect(report.verdict.hasPrefix("gpu wins at batch 1: warm p50 0.250 ms vs 1.000 ms on cpu (4.00x"))
        #expect(report.verdict.contains("gpu pays off after 12 calls (cold start included)"))
        #expect(report.verdict.contains("predictions flip on gpu (1)"))
        // Identical runs: no variation warning, but 20 runs are too few for a p99 claim.
        #expect(report.warnings.count == 2)
        #expect(report.warnings.allSatisfy { $0.contains("is not a p99 claim") })
    }

    @Test func aDeviceSlowerWarmNeverPaysOff() throws {
        let report = ComparisonReport(
            model: "m", batch: 8,
            runs: [
                DeviceResult(device: "cpu", deviceName: "CPU", samples: runs(1), coldStart: coldStart(1)),
                DeviceResult(device: "gpu", deviceName: "GPU", samples: runs(2), coldStart: coldStart(50)),
            ])
        #expect(report.winner == "cpu")
        #expect(report.breakEven.first?.calls == nil)
        #expect(report.verdict.hasPrefix("cpu wins at batch 8"))
        #expect(!report.verdict.contains("pays off"))
        #expect(report.devices[0].throughputPerS == 8000)
    }

    @Test func pricesGiveTheCheapestDeviceAndTheLoadFromWhichAnotherIsCheaper() throws {
        // cpu: 1000/s at $0.10/h; gpu: 4000/s at $1.00/h. Per million: cpu 0.1 / 3.6 = $0.0278,
        // gpu 1.0 / 14.4 = $0.0694; the cpu is cheapest flat out.
        let prices = try Prices.parse("cpu=0.10,gpu=1.00")
        let report = ComparisonReport(
            model: "m", batch: 1,
            runs: [
                DeviceResult(device: "cpu", deviceName: "CPU", samples: runs(1), coldStart: coldStart(1)),
                DeviceResult(device: "gpu", deviceName: "GPU", samples: runs(0.25), coldStart: coldStart(1)),
            ], prices: prices)
        let cpu = try #require(report.devices[0].cost?.dollarsPerMillion)
        let gpu = try #require(report.devices[1].cost?.dollarsPerMillion)
        #expect(abs(cpu - 0.1 / 3.6) < 1e-9)
        #expect(abs(gpu - 1.0 / 14.4) < 1e-9)
        #expect(report.verdict.contains("cheapest flat out: cpu at $0.02778 per million"))
    }

    @Test func oneDeviceIsReportedAlone() throws {
        let report = ComparisonReport(
            model: "m", batch: 1,
            runs: [DeviceResult(device: "cpu", deviceName: "CPU", samples: runs(0.5), coldStart: coldStart(1))])
        #expect(report.verdict == "cpu is the only device: warm p50 0.500 ms.")
        #expect(report.breakEven.isEmpty)
        #expect(report.table.contains("Verdict: cpu is the only device"))
    }

    @Test func interleavedRoundsShareTheRunsAndHonourTheMinimumTime() throws {
        var order: [Int] = []
        let bodies: [() throws -> RunTimings] = (0..<2).map { index in
            {
                order.append(index)
                return RunTimings(
                    copyInNanoseconds: 0, computeNanoseconds: 1_000_000, copyOutNanoseconds: 0, planNanoseconds: 0)
            }
        }
        var rounds: [Int] = []
        let samples = try Measurement.interleaved(bodies, warmup: 1, repeats: 7, rounds: 3) { rounds.append($0) }
        #expect(samples.map(\.runs.count) == [7, 7])
        #expect(rounds == [1, 2, 3])
        // Warm-up 0, 1; round 1 runs 3 each (7 = 3 + 2 + 2), device 0 first.
        #expect(Array(order.prefix(8)) == [0, 1, 0, 0, 0, 1, 1, 1])
        // 1 ms a run: 20 ms per device needs more rounds than the three.
        let longer = try Measurement.interleaved(bodies, warmup: 0, repeats: 3, rounds: 3, minimumSeconds: 0.02)
        #expect(longer.allSatisfy { $0.runs.count >= 20 })
    }
}
