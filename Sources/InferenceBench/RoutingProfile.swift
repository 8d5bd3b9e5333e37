#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// A calibration result for one model on one machine: which device wins from which batch size.
/// Written by `inference calibrate`, read by `--device auto` (and by library users) to route each run.
public struct RoutingProfile: Codable, Sendable, Equatable {
    /// The model as named on the command line (`builtin:mlp`, a file path).
    public var model: String
    /// The CPU model of the machine measured (profiles do not carry across machines).
    public var machine: String
    public var created: String
    /// The device used below the crossover (the CPU).
    public var baseline: String
    /// The device used from the crossover on.
    public var accelerator: String
    /// Smallest batch size from which `accelerator` beats `baseline` on throughput; nil when it never did.
    public var crossoverBatch: Int?
    /// Batch sizes measured, for the record.
    public var measuredBatches: [Int]

    public init(
        model: String, machine: String, created: String, baseline: String, accelerator: String, crossoverBatch: Int?,
        measuredBatches: [Int]
    ) {
        self.model = model
        self.machine = machine
        self.created = created
        self.baseline = baseline
        self.accelerator = accelerator
        self.crossoverBatch = crossoverBatch
        self.measuredBatches = measuredBatches
    }

    /// The device for a batch size, and the reason in words.
    public func route(batch: Int) -> (device: String, reason: String) {
        guard let crossover = crossoverBatch else {
            return (baseline, "calibration found no batch size where \(accelerator) beats \(baseline)")
        }
        if batch >= crossover {
            return (accelerator, "calibration: \(accelerator) wins from batch \(crossover); this batch is \(batch)")
        }
        return (baseline, "calibration: \(accelerator) wins only from batch \(crossover); this batch is \(batch)")
    }

    /// Where profiles live unless `--profile` names a file: `$XDG_CACHE_HOME/inference/profiles` or
    /// `~/.cache/inference/profiles`, one file per model.
    public static func defaultPath(model: String) -> String {
        let environment = ProcessInfo.processInfo.environment
        let base = environment["XDG_CACHE_HOME"] ?? ((environment["HOME"] ?? "/tmp") + "/.cache")
        let key = String(model.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "." ? $0 : "_" })
        return "\(base)/inference/profiles/\(key).json"
    }

    /// Reads a profile. - Throws: when the file is unreadable or not a profile.
    public static func load(path: String) throws -> RoutingProfile {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try decoder.decode(RoutingProfile.self, from: data)
    }

    /// Writes the profile as JSON (snake_case keys), creating folders as needed.
    public func write(path: String) throws {
        let url = URL(fileURLWithPath: path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        try encoder.encode(self).write(to: url, options: .atomic)
    }
}
