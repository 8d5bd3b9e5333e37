import BuiltinModels
import CPUBackend
import InferenceBench
import InferenceRuntime
import InferenceTensor

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// Each device's fixed cost per run and its rate on dense math, measured once per machine on builtin:mlp
/// (the batch-1 latency as the fixed cost, the batch 1 → 64 slope as the rate) and cached as JSON next to the
/// profiles. A rough model: `calibrate` measures the real crossover.
struct DeviceRates: Codable {
    struct Rate: Codable {
        var overheadMs: Double
        var gflops: Double
    }

    var machine: String
    var devices: [String: Rate]

    /// The cache file, or nil (with the reason) when there is no private cache folder: then rates are measured
    /// every time and not kept.
    static var path: Result<String, CacheFolderError> {
        Result { try CacheFolder.path() + "/device-rates.json" }.mapError {
            $0 as? CacheFolderError ?? CacheFolderError(description: "\($0)")
        }
    }

    static func loadOrMeasure(selections: [DeviceSelection], threads: Int?) throws -> DeviceRates {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let path = try? Self.path.get()
        if let path, let bytes = try? UserFiles.readAll(path, limit: 1 << 20, ownedByCurrentUser: true),
            let cached = try? decoder.decode(DeviceRates.self, from: Data(bytes)),
            cached.machine == CPUInfo.current.modelName,
            selections.allSatisfy({ cached.devices[$0.backend.device.description] != nil })
        {
            return cached
        }
        switch Self.path {
        case .success(let path): printError("note: measuring device rates once for --device auto (cached in \(path))")
        case .failure(let reason): printError("note: measuring device rates for --device auto (not cached: \(reason))")
        }
        let graph = try BuiltinModels.graph(named: "mlp")
        let multiplyAdds: Int = 784 * 512 + 512 * 512 + 512 * 10
        let flopsPerSample = 2.0 * Double(multiplyAdds)
        var rates = DeviceRates(machine: CPUInfo.current.modelName, devices: [:])
        for selection in selections {
            let session = try selection.session(graph)
            func p50(batch: Int) throws -> Double {
                let x = try Tensor(shape: [batch, 784], scalars: [Float](repeating: 0.5, count: batch * 784))
                let feeds = [NamedTensor(name: "input", tensor: x)]
                return try Measurement.repeatRuns(warmup: 2, repeats: 5) { try session.run(feeds).timings }.total.median
                    / 1e6
            }
            let small = try p50(batch: 1)
            let large = try p50(batch: 64)
            let gflops = flopsPerSample * 63 / max(large - small, 1e-6) / 1e6
            // The batch-1 latency stands for the fixed cost: launches, copies, synchronization.
            rates.devices[selection.backend.device.description] = Rate(overheadMs: small, gflops: gflops)
        }
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        if let path, let data = try? encoder.encode(rates) {
            do {
                try CacheFolder.createFolders(for: path)
                try UserFiles.write(Array(data), to: path, mode: 0o600)
            } catch {
                printError("note: device rates not cached: \(error)")
            }
        }
        return rates
    }
}
