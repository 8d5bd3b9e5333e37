import Foundation
import InferenceGraph
import InferenceTestSupport
import Testing

@testable import GPUBackend

/// The committed PTX is what NVRTC makes from the current kernel source, and ptxas assembles it for every
/// architecture from sm_70 to sm_90 (NVRTC and ptxas come from pip wheels; no GPU needed).
struct PTXTests {
    @Test func committedPTXIsCurrentAndAssembles() throws {
        guard let python = TestEnvironment.python else {
            if TestEnvironment.pythonRequired { Issue.record("reference Python missing: run scripts/setup-python-env") }
            return
        }
        let script = TestEnvironment.packageRoot.appendingPathComponent("scripts/generate-ptx").path
        let result = try ProcessRunner.run(python, [script, "--check"], timeout: 300)
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("assembles for sm_70, sm_75, sm_80, sm_86, sm_89, sm_90"))
    }
}

/// NVRTC found at run time (here: the wheel in the project's virtualenv, found the way a user's PyTorch
/// environment would be) compiles the same source to the same PTX as scripts/generate-ptx, for any
/// architecture, and the result is served from the disk cache afterwards.
struct RuntimeNVRTCTests {
    @Test func runtimeCompileMatchesCommittedPTXAndCaches() throws {
        let venv = TestEnvironment.packageRoot.appendingPathComponent(".venv")
        guard FileManager.default.fileExists(atPath: venv.appendingPathComponent("bin/python").path) else {
            if TestEnvironment.pythonRequired { Issue.record("reference Python missing: run scripts/setup-python-env") }
            return
        }
        let cache = try TestEnvironment.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: cache) }
        let environment = ["VIRTUAL_ENV": venv.path, "XDG_CACHE_HOME": cache.path]
        let first = try #require(CUDABackend.compiledPTX(architecture: "compute_70", environment: environment))
        // Same compiler, options and source as the committed file.
        let same = try first.ptx.trimmingCharacters(in: .whitespacesAndNewlines) == committedPTX()
        #expect(same, "runtime PTX differs from the committed PTX")
        #expect(first.origin.contains("for compute_70"))
        let second = try #require(CUDABackend.compiledPTX(architecture: "compute_70", environment: environment))
        #expect(second.ptx == first.ptx)
        #expect(second.origin.contains("cached in \(cache.path)/inference/ptx/compute_70-"))
        // The exact architecture of a newer device (an H200 is compute_90).
        let hopper = try #require(CUDABackend.compiledPTX(architecture: "compute_90", environment: environment))
        #expect(hopper.ptx.contains(".target sm_90"))
        #expect(hopper.ptx.contains(".entry conv_transpose3d"))
        // An architecture NVRTC does not know yields nil, so the backend falls back to the committed PTX.
        let unknown = CUDABackend.compiledPTX(architecture: "compute_1", environment: environment)
        #expect(unknown == nil, "compiled for compute_1: \(unknown?.origin ?? "")")
    }

    /// The committed PTX file (the one the binary embeds).
    func committedPTX() throws -> String {
        let file = TestEnvironment.packageRoot.appendingPathComponent("Sources/GPUKernelText/kernels/gpu_kernels.ptx")
        return try String(contentsOf: file, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The binary carries the same PTX and names the NVRTC release that made it.
    @Test func embeddedPTXIsTheCommittedFile() throws {
        #expect(GPUKernelPTX.ptx.trimmingCharacters(in: .whitespacesAndNewlines) == (try committedPTX()))
        #expect(GPUKernelPTX.nvrtcVersion.split(separator: ".").count == 2)
        #expect(GPUKernelSource.source.hasPrefix("#ifdef __OPENCL_VERSION__"))
    }
}

/// The library search covers the places CUDA libraries live on a user's machine.
struct CUDALibrarySearchTests {
    @Test func candidatesCoverLoaderCUDAHomeAndPythonWheels() throws {
        let venv = try TestEnvironment.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: venv) }
        try FileManager.default.createDirectory(
            at: venv.appendingPathComponent("lib/python3.12/site-packages"), withIntermediateDirectories: true)
        let paths = CUDALibrarySearch.candidates(
            soname: "libcublas.so.12", wheel: "cublas",
            environment: ["CUDA_HOME": "/opt/cuda", "VIRTUAL_ENV": venv.path])
        #expect(paths.first == "libcublas.so.12")
        #expect(paths.contains("/opt/cuda/lib64/libcublas.so.12"))
        #expect(paths.contains("/usr/local/cuda/lib64/libcublas.so.12"))
        #expect(paths.contains("\(venv.path)/lib/python3.12/site-packages/nvidia/cublas/lib/libcublas.so.12"))
        #expect(throws: GPURuntimeError.self) {
            try CUDALibrarySearch.open(soname: "libnot-a-cuda-library.so.1", wheel: "none", environment: [:])
        }
    }
}

/// The unary kernel's op codes in the C source and `GPUUnaryCode` in the operator table are the same list.
struct UnaryCodeTests {
    @Test func kernelSourceEnumMatchesTheTable() throws {
        let source = GPUKernelSource.source
        let start = try #require(source.range(of: "enum unary_op {"))
        let end = try #require(source[start.upperBound...].range(of: "};"))
        var codes: [String: Int32] = [:]
        for line in source[start.upperBound..<end.lowerBound].split(separator: "\n") {
            let parts = line.split(separator: "=").map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2, let value = Int32(parts[1].trimmingCharacters(in: CharacterSet(charactersIn: ",")))
            else { continue }
            codes[parts[0]] = value
        }
        /// relu -> UNARY_RELU, leakyRelu -> UNARY_LEAKY_RELU
        func cName(_ code: GPUUnaryCode) -> String {
            var name = "UNARY_"
            for character in "\(code)" {
                if character.isUppercase { name += "_" }
                name += character.uppercased()
            }
            return name
        }
        #expect(codes.count == GPUUnaryCode.allCases.count)
        for code in GPUUnaryCode.allCases { #expect(codes[cName(code)] == code.rawValue, "\(cName(code))") }
        // Every row of the table has its own code, and the unary kernel handles it by name.
        for row in UnaryOperators.all {
            for code in [row.gpuCode] + (row.alternateGPUCode.map { [$0] } ?? []) {
                #expect(source.contains("case \(cName(code)): r = "), "\(row.name)")
            }
        }
        #expect(Set(UnaryOperators.all.map(\.gpuCode)).count == UnaryOperators.all.count)
    }
}
