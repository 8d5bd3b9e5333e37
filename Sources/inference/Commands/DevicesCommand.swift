import ArgumentParser
import CPUBackend
import GPUBackend
import InferenceBench
import InferenceRuntime

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

struct DevicesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "devices",
        abstract: "List the CPU and every GPU runtime tried, with what was found or why it is missing.")

    @Flag(name: .long, help: "Print one JSON object instead of text.")
    var json = false

    func run() throws {
        let cpu = CPUInfo.current
        let probes = GPUDiscovery.probe()
        let gpu = GPUDiscovery.firstGPU(in: probes)
        let settingProblems = SettingsCheck.problems()
        if json {
            let report = DevicesReport(
                cpu: .init(
                    name: cpu.modelName, logicalCores: cpu.logicalCores, features: cpu.features,
                    kernelIsa: cpu.kernelISA, blas: CPUBackend.runtimeBLAS),
                runtimes: probes.map { probe in
                    .init(
                        runtime: probe.runtime.rawValue, searched: probe.searched, library: probe.loadedLibrary,
                        version: probe.version, problem: probe.problem,
                        devices: probe.devices.map {
                            .init(
                                id: $0.id.description, name: $0.name, type: $0.type, memoryBytes: $0.memoryBytes,
                                computeUnits: $0.computeUnits, detail: $0.detail)
                        })
                },
                gpu: gpu?.id.description, settingProblems: settingProblems)
            let encoder = ReportJSON.encoder(pretty: true)
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
            return
        }
        var lines = ["cpu"]
        lines.append("  \(cpu.modelName), \(cpu.logicalCores) logical cores")
        lines.append(
            "  SIMD: \(cpu.features.isEmpty ? "none detected" : cpu.features.joined(separator: " ")); kernels use \(cpu.kernelISA)"
        )
        lines.append(
            "  BLAS: \(CPUBackend.runtimeBLAS ?? "none found (GEMMs run the packed kernel; INFERENCE_BLAS names one)")")
        for probe in probes {
            let title = probe.runtime == .cuda ? "CUDA" : "OpenCL"
            lines.append("")
            lines.append("\(title) (looked for \(probe.searched.joined(separator: ", ")))")
            if let library = probe.loadedLibrary {
                lines.append("  library: \(library)\(probe.version.map { $0.isEmpty ? "" : ", version \($0)" } ?? "")")
            }
            for device in probe.devices {
                let memory = cFormat("%.1f GiB", Double(device.memoryBytes) / 1_073_741_824)
                lines.append(
                    "  \(device.id): \(device.name) [\(device.type)], \(memory), \(device.computeUnits) compute units, \(device.detail)"
                )
            }
            if let problem = probe.problem { lines.append("  unavailable: \(problem)") }
        }
        lines.append("")
        if let gpu {
            let runs =
                gpu.id.kind == .opencl
                ? "runs there (OpenCL backend)" : "runs there (CUDA backend)"
            lines.append("--device gpu would use \(gpu.id) (\(gpu.name)) and \(runs)")
        } else {
            lines.append(
                "--device gpu: no GPU found; --device auto runs on the CPU; --device opencl:N runs on any OpenCL device listed above"
            )
        }
        if !settingProblems.isEmpty {
            lines.append("")
            lines.append("settings ignored:")
            for problem in settingProblems { lines.append("  \(problem)") }
        }
        print(lines.joined(separator: "\n"))
    }
}

struct DevicesReport: Encodable {
    struct CPU: Encodable {
        var name: String
        var logicalCores: Int
        var features: [String]
        var kernelIsa: String
        /// The run-time OpenBLAS for the largest GEMMs, or nil.
        var blas: String?
    }

    struct Device: Encodable {
        var id: String
        var name: String
        var type: String
        var memoryBytes: Int
        var computeUnits: Int
        var detail: String
    }

    struct Runtime: Encodable {
        var runtime: String
        var searched: [String]
        var library: String?
        var version: String?
        var problem: String?
        var devices: [Device]
    }

    var cpu: CPU
    var runtimes: [Runtime]
    var gpu: String?
    /// Environment settings whose values were not accepted (see docs, environment variables).
    var settingProblems: [String]
}
