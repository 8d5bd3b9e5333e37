import CPUBackend
import GPUBackend
import InferenceBench
import InferenceGraph
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

/// What the user asked for with `--device`.
enum DeviceRequest: Equatable, CustomStringConvertible {
    case cpu, gpu, auto
    case specific(DeviceID)

    /// Parses `cpu`, `gpu`, `auto`, `cuda[:N]`, `opencl[:N]`; nil for anything else.
    init?(argument: String) {
        let lowered = argument.lowercased()
        switch lowered {
        case "cpu": self = .cpu
        case "gpu": self = .gpu
        case "auto": self = .auto
        default:
            let parts = lowered.split(separator: ":", omittingEmptySubsequences: false)
            guard let kind = parts.first.flatMap({ DeviceKind(rawValue: String($0)) }), kind != .cpu, parts.count <= 2
            else {
                return nil
            }
            let index = parts.count == 2 ? Int(parts[1]) : 0
            guard let index, index >= 0 else { return nil }
            self = .specific(DeviceID(kind, index))
        }
    }

    var description: String {
        switch self {
        case .cpu: "cpu"
        case .gpu: "gpu"
        case .auto: "auto"
        case .specific(let id): id.description
        }
    }
}

/// A device choice that could not be honoured. Never silently replaced by another device.
struct DeviceSelectionError: Error, CustomStringConvertible {
    var description: String
}

/// The backend a run will use, and why, when that differs from the plain request.
struct DeviceSelection {
    var requested: DeviceRequest
    var backend: any Backend
    /// Why this device was chosen (set for `auto`).
    var reason: String?
    /// What folds constants for this device's sessions: nil on the CPU (the backend itself does), one CPU backend
    /// per GPU selection, shared by all its sessions.
    let evaluator: (any ConstantEvaluator)?

    init(requested: DeviceRequest, backend: any Backend, reason: String?, threads: Int? = nil) {
        self.requested = requested
        self.backend = backend
        self.reason = reason
        evaluator = backend is CPUBackend ? nil : CPUBackend(threads: threads)
    }

    /// A session for `graph` on this device, constants folded by `evaluator`.
    /// - Throws: what `Session` throws for operators no backend here runs.
    func session(_ graph: Graph, hostFallback: Bool = true) throws -> Session {
        try Session(graph: graph, backend: backend, evaluator: evaluator, hostFallback: hostFallback)
    }

    /// How the seed lines name the device: `CPU`, `GPU`, or the device id for a non-GPU OpenCL device.
    var displayClass: String {
        if let openCL = backend as? OpenCLBackend {
            return openCL.deviceType == "gpu" ? "GPU" : "\(backend.device) (OpenCL \(openCL.deviceType))"
        }
        return backend.device.displayClass
    }

    /// Resolves a request to a backend.
    /// - Throws: `DeviceSelectionError` naming what was looked for and what to do instead.
    static func resolve(_ request: DeviceRequest, threads: Int? = nil) throws -> DeviceSelection {
        switch request {
        case .cpu:
            return DeviceSelection(requested: request, backend: CPUBackend(threads: threads), reason: nil)
        case .auto:
            let probes = GPUDiscovery.probe()
            if let gpu = GPUDiscovery.firstGPU(in: probes) {
                return DeviceSelection(
                    requested: request, backend: CPUBackend(threads: threads),
                    reason: "found \(gpu.name) (\(gpu.id)), but there is no measured crossover yet; running on the CPU")
            }
            return DeviceSelection(
                requested: request, backend: CPUBackend(threads: threads),
                reason: "no GPU found (\(summary(of: probes))); running on the CPU")
        case .gpu:
            let probes = GPUDiscovery.probe()
            if let gpu = GPUDiscovery.firstGPU(in: probes) {
                let backend: any Backend =
                    gpu.id.kind == .cuda ? try CUDABackend(index: gpu.id.index) : try OpenCLBackend(index: gpu.id.index)
                return DeviceSelection(requested: request, backend: backend, reason: nil, threads: threads)
            }
            throw DeviceSelectionError(
                description: """
                    no GPU found. Looked for:
                      CUDA:   \(probes.first { $0.runtime == .cuda }.map(describe) ?? "not probed")
                      OpenCL: \(probes.first { $0.runtime == .opencl }.map(describe) ?? "not probed")
                    Use --device cpu, or --device auto to fall back to the CPU. `inference devices` shows what was found.
                    """)
        case .specific(let id):
            let probes = GPUDiscovery.probe()
            guard let probe = probes.first(where: { $0.runtime == id.kind }) else {
                throw DeviceSelectionError(description: "unknown device \(id)")
            }
            guard let device = probe.devices.first(where: { $0.id == id }) else {
                let found =
                    probe.devices.isEmpty
                    ? describe(probe)
                    : "\(probe.devices.count) device(s): \(probe.devices.map(\.id.description).joined(separator: ", "))"
                throw DeviceSelectionError(
                    description: "no device \(id): \(found). Use --device cpu, or `inference devices` to list devices.")
            }
            _ = device
            let backend: any Backend =
                id.kind == .cuda ? try CUDABackend(index: id.index) : try OpenCLBackend(index: id.index)
            return DeviceSelection(requested: request, backend: backend, reason: nil, threads: threads)
        }
    }

    /// `--device auto` for a batch: the calibration profile decides when there is one (an explicit file, or the
    /// one `inference calibrate` stored for this model); otherwise the CPU, with the reason. Never fails for
    /// lack of a GPU: a profile naming a device that is not here falls back to the CPU and says so.
    /// - Throws: `DeviceSelectionError` when an explicit profile cannot be read.
    static func resolveAuto(
        model: String, graph: Graph, batch: Int, profilePath: String?, threads: Int?
    ) throws -> DeviceSelection {
        let digest = try ModelDigest.of(model: model)
        let machine = CPUInfo.current.modelName
        let path: String
        if let profilePath {
            path = profilePath
        } else {
            do { path = try RoutingProfile.defaultPath(model: model, digest: digest, machine: machine) } catch {
                var selection = try estimate(graph: graph, model: model, batch: batch, threads: threads)
                selection.reason = (selection.reason ?? "") + "; no stored profile: \(error)"
                return selection
            }
        }
        var info = stat()
        guard lstat(path, &info) == 0 else {
            if let profilePath { throw DeviceSelectionError(description: "\(profilePath): no such profile file") }
            return try estimate(graph: graph, model: model, batch: batch, threads: threads)
        }
        let profile: RoutingProfile
        do { profile = try RoutingProfile.load(path: path) } catch let error as FileAccessError {
            throw DeviceSelectionError(description: "routing profile \(error)")
        } catch {
            throw DeviceSelectionError(
                description: "\(path): not a readable routing profile (\(error)); run `inference calibrate` again")
        }
        if let problem = profile.mismatch(model: model, digest: digest) {
            // An explicit profile for something else is the user's mistake; a stale cached one is only a note.
            if profilePath != nil {
                throw DeviceSelectionError(
                    description:
                        "\(path): this routing profile does not fit: \(problem); run `inference calibrate --model \(model)`"
                )
            }
            var selection = try estimate(graph: graph, model: model, batch: batch, threads: threads)
            selection.reason = (selection.reason ?? "") + "; ignored profile \(path): \(problem)"
            return selection
        }
        let (device, reason) = profile.route(batch: batch)
        var note = "\(reason) (profile \(path))"
        if profile.machine != machine { note += "; measured on \(profile.machine), not this CPU" }
        guard let request = DeviceRequest(argument: device) else {
            return DeviceSelection(
                requested: .auto, backend: CPUBackend(threads: threads),
                reason: "\(note); unknown device '\(device)', using the CPU")
        }
        do {
            var selection = try resolve(request, threads: threads)
            selection.requested = .auto
            selection.reason = note
            return selection
        } catch {
            return DeviceSelection(
                requested: .auto, backend: CPUBackend(threads: threads),
                reason: "\(note); \(device) is not available here (\(error)), using the CPU")
        }
    }

    /// Without a profile: the cost of each device estimated as fixed overhead + FLOPs / rate, from the model's
    /// FLOPs per sample and device rates measured once on builtin:mlp (cached next to the profiles).
    static func estimate(graph: Graph, model: String, batch: Int, threads: Int?) throws -> DeviceSelection {
        let accelerators = GPUDiscovery.acceleratorIDs(in: GPUDiscovery.probe())
        guard let accelerator = accelerators.first else {
            var selection = try resolve(.auto, threads: threads)
            selection.reason =
                (selection.reason ?? "") + "; run `inference calibrate --model \(model)` once a GPU is present"
            return selection
        }
        let cpu = DeviceSelection(requested: .auto, backend: CPUBackend(threads: threads), reason: nil)
        let other: DeviceSelection
        do { other = try resolve(.specific(accelerator), threads: threads) } catch {
            return DeviceSelection(
                requested: .auto, backend: cpu.backend,
                reason: "\(accelerator) is not usable (\(error)); running on the CPU")
        }
        let rates = try DeviceRates.loadOrMeasure(selections: [cpu, other], threads: threads)
        var types: [String: TensorType] = [:]
        for input in graph.runtimeInputs {
            let dims = (input.dimensions ?? []).map { dim -> Int in
                if case .fixed(let n) = dim { return n }
                return 1
            }
            types[input.name] = TensorType(dtype: input.dtype, shape: Shape(dims))
        }
        let flops = Double(
            FLOPCounter.count(
                try ExecutionPlan(graph: graph.capturingOuterValues(), inputTypes: types, evaluator: CPUBackend())))
        func cost(_ device: String) -> Double? {
            guard let rate = rates.devices[device] else { return nil }
            return rate.overheadMs + flops * Double(max(batch - 1, 0)) / (rate.gflops * 1e6)
        }
        guard let cpuCost = cost("cpu"), let otherCost = cost(accelerator.description) else {
            return DeviceSelection(
                requested: .auto, backend: cpu.backend, reason: "no device rates; running on the CPU")
        }
        let text =
            "estimate from \(cFormat("%.3g", flops / 1e6)) MFLOP/sample at batch \(batch): "
            + "cpu \(cFormat("%.4f", cpuCost)) ms, \(accelerator) \(cFormat("%.4f", otherCost)) ms "
            + "(device rates measured once, \((try? DeviceRates.path.get()) ?? "not cached")); "
            + "run `inference calibrate --model \(model)` for a measured crossover"
        var chosen = otherCost < cpuCost ? other : cpu
        chosen.requested = .auto
        chosen.reason = text
        return chosen
    }

    static func describe(_ probe: RuntimeProbe) -> String {
        if let problem = probe.problem { return problem }
        let gpus = probe.devices.filter { $0.type == "gpu" }
        if gpus.isEmpty {
            return
                "\(probe.loadedLibrary ?? probe.searched[0]) loaded; no GPU-type device (only: \(probe.devices.map { "\($0.name) [\($0.type)]" }.joined(separator: ", ")))"
        }
        return gpus.map { "\($0.name) (\($0.id))" }.joined(separator: ", ")
    }

    static func summary(of probes: [RuntimeProbe]) -> String {
        probes.map { "\($0.runtime == .cuda ? "CUDA" : "OpenCL"): \(describe($0))" }.joined(separator: "; ")
    }
}
