import Foundation
import InferenceBench
import InferenceTensor
import Testing

/// The statistics, break-even, crossover, cost and energy arithmetic behind compare and bench, against cases
/// computed by hand (or with Python's exact binomial sums, noted beside each).
struct TradeoffTests {
    // MARK: early stopping (MLPerf LoadGen's rule, confidence 0.99, no tolerance)

    @Test func earlyStoppingMatchesLoadGensPublishedCounts() {
        // LoadGen: 64 queries for a p90 claim with one overshoot, 459 for a p99 claim with none,
        // 662 as the MultiStream (p99, one overshoot) minimum.
        #expect(EarlyStopping.minimumRuns(percentile: 90, overshoots: 1) == 64)
        #expect(EarlyStopping.minimumRuns(percentile: 99, overshoots: 0) == 459)
        #expect(EarlyStopping.minimumRuns(percentile: 99, overshoots: 1) == 662)
        // Python: min h with sum_{x<=t} C(h+t, x) 0.1^x 0.9^(h+t-x) < 0.01: t = 0 -> 44, t = 2 -> h + t = 81.
        #expect(EarlyStopping.minimumRuns(percentile: 90, overshoots: 0) == 44)
        #expect(EarlyStopping.minimumRuns(percentile: 90, overshoots: 2) == 81)
    }

    @Test func earlyStoppingEstimate() {
        let values = (1...100).map(Double.init)
        // The largest overshoot count whose claim 100 runs support (t = 2 needs 81 runs).
        let estimate = EarlyStopping.estimate(values, percentile: 90)
        let t = estimate.overshoots
        #expect(t >= 1)
        #expect(EarlyStopping.minimumRuns(percentile: 90, overshoots: t) <= 100)
        #expect(EarlyStopping.minimumRuns(percentile: 90, overshoots: t + 1) > 100)
        #expect(estimate.value == Double(100 - t + 1))  // the t-th largest value
        // Too few runs: no estimate, and the count needed.
        let short = EarlyStopping.estimate(Array(values.prefix(20)), percentile: 99)
        #expect(short.value == nil && short.runsNeeded == 662 && short.runs == 20)
    }

    // MARK: confidence intervals

    @Test func orderStatisticIntervalOfTheMedian() {
        // n = 20: the 95% interval of the median lies between the 6th and 15th smallest values (exact 95.9%).
        let interval = Statistics((1...20).map(Double.init)).percentileInterval(50, confidence: 0.95)
        #expect(interval.lower == 6 && interval.upper == 15)
    }

    @Test func tailIntervalNeedsEnoughRuns() {
        // 100 runs cannot bound a p99 from above at 95% (P(max < p99) = 0.99^100 = 0.366 > 0.025).
        let short = Statistics((1...100).map(Double.init)).percentileInterval(99)
        #expect(short.upper == nil)
        // 1000 runs: ranks 983 and 997 (Python, exact binomial sums).
        let long = Statistics((1...1000).map(Double.init)).percentileInterval(99)
        #expect(long.lower == 983 && long.upper == 997)
    }

    @Test func bootstrapRatioCoversTheTrueRatioAndIsReproducible() {
        var generator = SplitMix64(seed: 7)
        let a = (0..<200).map { _ in 2.0 + Double(generator.next() % 1000) / 10_000 }
        let b = (0..<200).map { _ in 1.0 + Double(generator.next() % 1000) / 10_000 }
        guard let interval = Bootstrap.ratioOfMedians(a, b), let lower = interval.lower, let upper = interval.upper
        else {
            Issue.record("no interval")
            return
        }
        let ratio = Statistics(a).median / Statistics(b).median
        #expect(lower <= ratio && ratio <= upper)
        #expect(lower > 1.8 && upper < 2.2)
        #expect(Bootstrap.ratioOfMedians(a, b) == interval)
        #expect(Bootstrap.ratioOfMedians([1], [0]) == nil)
    }

    @Test func coefficientOfVariation() {
        let s = Statistics([9, 10, 11])
        #expect(abs(s.coefficientOfVariation - 0.1) < 1e-12)
        #expect(Statistics([0, 0]).coefficientOfVariation == 0)
    }

    // MARK: break-even and crossovers

    @Test func breakEvenCountsTheWholeColdStart() {
        // cold 300 ms vs 5 ms; warm 1 ms vs 4 ms: 300 + (n-1) <= 5 + 4(n-1) -> n - 1 >= 98.33 -> n = 100.
        #expect(Crossover.breakEvenCalls(cold: 300, warm: 1, baselineCold: 5, baselineWarm: 4) == 100)
        #expect(Crossover.breakEvenCalls(cold: 5, warm: 1, baselineCold: 10, baselineWarm: 4) == 1)
        #expect(Crossover.breakEvenCalls(cold: 300, warm: 5, baselineCold: 5, baselineWarm: 4) == nil)
        // Exactly paid back at n = 3: 10 + 2·1 = 12 = 2 + 2·5.
        #expect(Crossover.breakEvenCalls(cold: 10, warm: 1, baselineCold: 2, baselineWarm: 5) == 3)
    }

    @Test func crossoverIsTheBatchFromWhichADeviceStaysAhead() {
        let gpu = [1: 10.0, 2: 12, 4: 9, 8: 5, 16: 6]
        let cpu = [1: 2.0, 2: 4, 4: 8, 8: 16, 16: 32]
        // Lower is better: ahead at 4 and from 8 on, but behind at... 4 (9 > 8), so from 8.
        #expect(Crossover.firstBatch(gpu, cpu, better: <) == 8)
        #expect(Crossover.firstBatch(cpu, gpu, better: <) == nil)
        #expect(Crossover.firstBatch([1: 1, 2: 1], [1: 2, 2: 2], better: <) == 1)
    }

    // MARK: money

    @Test func costPerMillionIsPriceOverThroughput() {
        // $3.60/h at 1000/s: $0.001 per second, 1000 inferences a second -> $1 per million.
        #expect(Cost.perMillion(dollarsPerHour: 3.6, throughput: 1000) == 1)
        #expect(Cost.perMillion(dollarsPerHour: 3.6, throughput: 0) == nil)
        // At 50/s a device that could serve 1000/s is paid for the hour anyway: $3.60/h / 180,000 per hour.
        let idle = Cost.atLoad(dollarsPerHour: 3.6, throughput: 1000, load: 50)
        #expect(idle?.devices == 1)
        #expect(abs((idle?.dollarsPerMillion ?? 0) - 20) < 1e-9)
        #expect(abs((idle?.utilization ?? 0) - 0.05) < 1e-12)
        // 2500/s needs three of them.
        let busy = Cost.atLoad(dollarsPerHour: 3.6, throughput: 1000, load: 2500)
        #expect(busy?.devices == 3)
        #expect(abs((busy?.dollarsPerMillion ?? 0) - 3 * 3.6 / 3600 / 2500 * 1e6) < 1e-9)
    }

    @Test func cheaperFromTheLoadWhereTheCPUNeedsMoreMachines() {
        // CPU $0.10/h at 100/s, GPU $3.20/h at 5000/s: 32 CPUs cost what one GPU does; the 33rd CPU is needed
        // just above 3200/s, where the GPU becomes cheaper.
        let load = Cost.cheaperFrom(a: (0.10, 100), b: (3.20, 5000), maxLoad: 1e6)
        #expect(load.map { $0 > 3200 && $0 < 3200.01 } == true)
        #expect(Cost.cheaperFrom(a: (0.10, 100), b: (3.20, 5000), maxLoad: 1000) == nil)
    }

    @Test func pricesParseAndRefuseNonsense() throws {
        let prices = try Prices.parse("cpu=0.10,CUDA:0=3.20")
        #expect(prices.price(of: "cpu") == 0.10 && prices.price(of: "cuda:0") == 3.20)
        for bad in ["cpu", "cpu=", "cpu=-1", "cpu=nan", "=1", "cpu=1,cpu=2", "cpu=inf"] {
            #expect(throws: PriceError.self) { try Prices.parse(bad) }
        }
    }

    // MARK: energy

    @Test func energyFromAFakePowercapTreeSubtractsIdle() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("powercap-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        let package = root + "/intel-rapl:0", core = root + "/intel-rapl:0:0", dram = root + "/intel-rapl:0:1"
        for (folder, name) in [(package, "package-0"), (core, "core"), (dram, "dram")] {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            try name.write(toFile: folder + "/name", atomically: true, encoding: .utf8)
            try "0".write(toFile: folder + "/energy_uj", atomically: true, encoding: .utf8)
            try "1000000000".write(toFile: folder + "/max_energy_range_uj", atomically: true, encoding: .utf8)
        }
        let sources = EnergySources.powercap(root: root)
        #expect(sources.counters.map(\.name) == ["package-0 (intel-rapl:0)", "dram (intel-rapl:0:1)"])
        #expect(sources.unavailable.isEmpty)

        // The package counter advances 1 J during the idle second and 10 J during the active window; each write
        // happens at a known point, so the arithmetic is exact up to the window's measured length.
        var packageJoules = 0.0
        func setPackage(_ joules: Double) throws {
            packageJoules = joules
            try String(Int(joules * 1e6)).write(toFile: package + "/energy_uj", atomically: true, encoding: .utf8)
        }
        var runs = 0
        let result = try EnergyMeter.measure(
            sources, idleSeconds: 1, activeSeconds: 0.05,
            sleep: { _ in
                usleep(100_000)
                try? setPackage(1)
            }
        ) {
            runs += 1
            if runs == 1 { try setPackage(packageJoules + 10) }
        }
        #expect(result.runs == runs)
        let idleWatts = try #require(result.idleWatts)
        #expect(idleWatts > 5 && idleWatts < 11)  // 1 J over a little more than 0.1 s
        // 10 J active minus idle power × window, per run.
        let expected = (10 - idleWatts * result.seconds) / Double(runs)
        #expect(abs((result.joulesPerInference ?? -1) - max(expected, 0)) < 1e-6)
        #expect(result.domains.count == 2)
    }

    @Test func energyCounterWraps() {
        let counter = EnergyCounter(name: "x", wrapJoules: 100, updateSeconds: 0.001) { 0 }
        #expect(counter.difference(from: 95, to: 5) == 10)
        #expect(counter.difference(from: 5, to: 95) == 90)
    }

    @Test func missingPowercapSaysWhy() {
        let sources = EnergySources.powercap(root: "/nonexistent/powercap")
        #expect(sources.counters.isEmpty)
        #expect(sources.unavailable.first?.contains("/nonexistent/powercap does not exist") == true)
        let result = EnergyMeter.measure(sources, idleSeconds: 0, activeSeconds: 0) {}
        #expect(result.joulesPerInference == nil && !result.unavailable.isEmpty)
    }
}
