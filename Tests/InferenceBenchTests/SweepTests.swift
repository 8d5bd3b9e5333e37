import InferenceBench
import Testing

/// The sweep's crossovers, verdict and CSV on points made up by hand.
struct SweepTests {
    /// cpu: 1 ms fixed + 0.1 ms per sample; gpu: 2 ms fixed + 0.01 ms per sample. The gpu is faster from
    /// batch 16 (3.6 vs 2.16 ms), and stays faster.
    func point(_ device: String, _ batch: Int, fixed: Double, perSample: Double) -> BenchPoint {
        let ms = fixed + perSample * Double(batch)
        return BenchPoint(
            device: device, batch: batch, p50Ms: ms, p90Ms: ms, p99Ms: ms, meanMs: ms,
            throughputPerS: Double(batch) / ms * 1000, copyShare: 0, firstRunMs: ms, coefficientOfVariation: 0)
    }

    func sweep() -> BenchSweep {
        let points = [1, 4, 16, 64].flatMap { batch in
            [
                point("cpu", batch, fixed: 1, perSample: 0.1),
                point("gpu", batch, fixed: 2, perSample: 0.01),
            ]
        }
        return BenchSweep(model: "m", devices: ["cpu", "gpu"], points: points)
    }

    @Test func crossoverIsTheFirstBatchFromWhichTheDeviceStaysAhead() {
        // batch 4: cpu 1.4 ms, gpu 2.04 ms (cpu ahead); batch 16: cpu 2.6, gpu 2.16 (gpu ahead from here).
        let crossovers = sweep().crossovers
        #expect(crossovers.count == 1)
        #expect(crossovers.first?.device == "gpu" && crossovers.first?.baseline == "cpu")
        #expect(crossovers.first?.throughputBatch == 16)
        #expect(crossovers.first?.latencyBatch == 16)
        #expect(crossovers.first?.costBatch == nil)
    }

    @Test func pricesCostEveryPointAndTheLoadFromWhichTheGPUIsCheaper() throws {
        var report = BenchReport(repeats: 20, threads: 2, models: [sweep()])
        report.apply(try Prices.parse("cpu=0.10,gpu=1.00"))
        let points = report.models[0].points
        #expect(points.allSatisfy { $0.dollarsPerMillion != nil })
        // At batch 64 the gpu serves 64 / 2.64 ms = 24,242/s, the cpu 64 / 7.4 ms = 8,649/s: per million
        // $1.00/h / (24242 * 3600) * 1e6 = $0.01146, $0.10/h / (8649 * 3600) * 1e6 = $0.00321.
        let gpu64 = try #require(points.first { $0.device == "gpu" && $0.batch == 64 }?.dollarsPerMillion)
        #expect(abs(gpu64 - 1.0 / (64 / 2.64 * 1000 * 3600) * 1e6) < 1e-9)
        // Ten times the price for 2.8 times the throughput: the cpu is cheaper at every batch size.
        #expect(report.models[0].crossovers.first?.costBatch == nil)
    }

    @Test func csvHasAHeaderAndOneRowPerPoint() {
        let csv = BenchReport(repeats: 20, threads: 2, models: [sweep()]).csv
        let lines = csv.split(separator: "\n")
        #expect(lines.first.map(String.init) == BenchReport.csvHeader)
        #expect(lines.count == 1 + 8)
        #expect(lines.dropFirst().allSatisfy { $0.split(separator: ",", omittingEmptySubsequences: false).count == 12 })
    }

    @Test func chartDrawsOnePanelPairPerModel() {
        let svg = SweepChart.svg(BenchReport(repeats: 20, threads: 2, models: [sweep()]))
        #expect(svg.hasPrefix("<svg") && svg.contains("</svg>"))
        #expect(svg.contains("gpu") && svg.contains("cpu"))
    }
}
