import InferenceTensor

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

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
    /// A digest of the model's content (`ModelDigest`): a profile routes only the model it was measured on.
    /// Nil in profiles written by hand or by older versions; those are matched by `model` alone.
    public var modelDigest: String?
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
        model: String, modelDigest: String? = nil, machine: String, created: String, baseline: String,
        accelerator: String, crossoverBatch: Int?, measuredBatches: [Int]
    ) {
        self.model = model
        self.modelDigest = modelDigest
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

    /// Where profiles live unless `--profile` names a file: `<cache folder>/profiles/<name>-<digest>.json`, one
    /// file per model content and machine (see `CacheFolder`).
    /// - Throws: `CacheFolderError` when no private cache folder can be found.
    public static func defaultPath(model: String, digest: String, machine: String) throws -> String {
        let name = model.split(separator: "/").last.map(String.init) ?? model
        let key = String(name.prefix(64).map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "." ? $0 : "_" })
        let machineKey = ModelDigest.hex(ModelDigest.hash(Array(machine.utf8))).prefix(8)
        return try CacheFolder.path() + "/profiles/\(key)-\(digest.prefix(16))-\(machineKey).json"
    }

    /// Checks that this profile was measured for `model` (by digest when the profile has one, else by name);
    /// returns the problem in words, or nil when it matches.
    public func mismatch(model: String, digest: String) -> String? {
        if let modelDigest {
            if modelDigest != digest {
                return "it was measured for another model (content digest \(modelDigest.prefix(16)), this model's is "
                    + "\(digest.prefix(16)))"
            }
        } else if self.model != model {
            return "it was measured for model '\(self.model)', not '\(model)'"
        }
        return nil
    }

    /// Reads a profile: a regular file of at most 1 MiB, owned by the user running this process and not writable by
    /// others (another user could otherwise plant a profile that routes this user's runs).
    /// - Throws: `FileAccessError` for those reasons, a decoding error when it is not a profile.
    public static func load(path: String) throws -> RoutingProfile {
        let data = Data(try UserFiles.readAll(path, limit: 1 << 20, ownedByCurrentUser: true))
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try decoder.decode(RoutingProfile.self, from: data)
    }

    /// Writes the profile as JSON (snake_case keys), creating the cache folders (mode 0700) as needed.
    /// - Throws: `FileAccessError`/`CacheFolderError` naming the path and the problem.
    public func write(path: String) throws {
        try CacheFolder.createFolders(for: path)
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        try UserFiles.write(Array(try encoder.encode(self)), to: path, mode: 0o600)
    }
}

/// A content digest of a model, for keying caches: 64-bit, fast (8 bytes per step), not cryptographic.
public enum ModelDigest {
    /// The digest of a model argument: the file's bytes, or the name itself for `builtin:NAME`.
    /// - Throws: `FileAccessError` when the file cannot be read.
    public static func of(model: String) throws -> String {
        if model.hasPrefix("builtin:") { return hex(hash(Array(model.utf8))) }
        let file = try UserFiles.openForReading(model)
        defer { file.close() }
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15 ^ UInt64(file.size)
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 8)
        defer { chunk.deallocate() }
        while true {
            let got = try file.read(into: chunk)
            if got == 0 { break }
            state = hash(UnsafeRawBufferPointer(rebasing: chunk[0..<got]), seed: state)
        }
        return hex(state)
    }

    public static func hash(_ bytes: [UInt8], seed: UInt64 = 0x9E37_79B9_7F4A_7C15) -> UInt64 {
        bytes.withUnsafeBytes { hash($0, seed: seed) }
    }

    static func hash(_ bytes: UnsafeRawBufferPointer, seed: UInt64) -> UInt64 {
        var h = seed
        func mix(_ word: UInt64) {
            h = (h ^ word) &* 0xFF51_AFD7_ED55_8CCD
            h ^= h >> 32
        }
        var i = 0
        while i + 8 <= bytes.count {
            mix(bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self))
            i += 8
        }
        var tail: UInt64 = 0
        var shift: UInt64 = 0
        while i < bytes.count {
            tail |= UInt64(bytes[i]) << shift
            shift += 8
            i += 1
        }
        mix(tail ^ (UInt64(bytes.count) << 56))
        return h
    }

    public static func hex(_ value: UInt64) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }
}
