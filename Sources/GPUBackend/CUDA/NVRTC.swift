import InferenceTensor

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Where CUDA's user-space libraries (NVRTC, cuBLAS) are looked for, in order: the dynamic loader's own
/// search (LD_LIBRARY_PATH, the ld.so cache), `$CUDA_HOME/lib64`, `/usr/local/cuda/lib64`, and the
/// `nvidia/<package>/lib` folders that NVIDIA's PyPI wheels (as installed by PyTorch) put in a Python
/// environment: the active virtualenv, the user's and the system's site-packages.
enum CUDALibrarySearch {
    /// Candidate paths for `soname`, most preferred first; `wheel` is the wheel's folder under `nvidia/`.
    static func candidates(soname: String, wheel: String, environment: [String: String]) -> [String] {
        var paths = [soname]
        var directories: [String] = []
        if let home = environment["CUDA_HOME"] ?? environment["CUDA_PATH"] { directories.append(home + "/lib64") }
        directories.append("/usr/local/cuda/lib64")
        var prefixes: [String] = []
        if let venv = environment["VIRTUAL_ENV"] { prefixes.append(venv + "/lib") }
        if let home = environment["HOME"] { prefixes.append(home + "/.local/lib") }
        prefixes += ["/usr/local/lib", "/usr/lib"]
        for prefix in prefixes {
            for python in pythonDirectories(in: prefix) {
                for site in ["site-packages", "dist-packages"] {
                    directories.append("\(prefix)/\(python)/\(site)/nvidia/\(wheel)/lib")
                }
            }
        }
        paths += directories.map { "\($0)/\(soname)" }
        return paths
    }

    /// `python3.*` folders directly under `prefix`.
    private static func pythonDirectories(in prefix: String) -> [String] {
        guard let directory = opendir(prefix) else { return [] }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name.hasPrefix("python3") { names.append(name) }
        }
        return names.sorted()
    }

    /// Opens the first candidate that loads.
    static func open(soname: String, wheel: String, environment: [String: String]) throws(GPURuntimeError)
        -> DynamicLibrary
    {
        let paths = candidates(soname: soname, wheel: wheel, environment: environment)
        do {
            return try DynamicLibrary.open(paths)
        } catch {
            throw .libraryNotFound(
                names: [soname],
                detail: "looked in the loader's path, CUDA_HOME, /usr/local/cuda and Python's nvidia/\(wheel)")
        }
    }
}

/// NVRTC, CUDA's run-time compiler, loaded with dlopen: compiles the shared kernel source to PTX for the exact
/// device, so a driver older than the NVRTC that made the committed PTX still gets kernels it can load.
struct NVRTC: @unchecked Sendable {
    let library: DynamicLibrary
    let version: (major: Int, minor: Int)
    private let nvrtcCreateProgram:
        @convention(c) (
            UnsafeMutablePointer<OpaquePointer?>, UnsafePointer<CChar>?, UnsafePointer<CChar>?, Int32,
            UnsafePointer<UnsafePointer<CChar>?>?, UnsafePointer<UnsafePointer<CChar>?>?
        ) -> Int32
    private let nvrtcCompileProgram:
        @convention(c) (OpaquePointer?, Int32, UnsafePointer<UnsafePointer<CChar>?>?) -> Int32
    private let nvrtcGetPTXSize: @convention(c) (OpaquePointer?, UnsafeMutablePointer<Int>) -> Int32
    private let nvrtcGetPTX: @convention(c) (OpaquePointer?, UnsafeMutablePointer<CChar>?) -> Int32
    private let nvrtcGetProgramLogSize: @convention(c) (OpaquePointer?, UnsafeMutablePointer<Int>) -> Int32
    private let nvrtcGetProgramLog: @convention(c) (OpaquePointer?, UnsafeMutablePointer<CChar>?) -> Int32
    private let nvrtcDestroyProgram: @convention(c) (UnsafeMutablePointer<OpaquePointer?>) -> Int32

    static let symbols = [
        "nvrtcVersion", "nvrtcCreateProgram", "nvrtcCompileProgram", "nvrtcGetPTXSize", "nvrtcGetPTX",
        "nvrtcGetProgramLogSize", "nvrtcGetProgramLog", "nvrtcDestroyProgram",
    ]

    /// - Throws: `GPURuntimeError` when no NVRTC is found or it lacks a symbol.
    static func load(environment: [String: String]) throws(GPURuntimeError) -> NVRTC {
        let library = try CUDALibrarySearch.open(
            soname: "libnvrtc.so.12", wheel: "cuda_nvrtc", environment: environment)
        let found = try library.resolve(symbols)
        func fn<T>(_ name: String) -> T { unsafeBitCast(found[name].unsafelyUnwrapped, to: T.self) }
        let versionFunction: @convention(c) (UnsafeMutablePointer<Int32>, UnsafeMutablePointer<Int32>) -> Int32 = fn(
            "nvrtcVersion")
        var major: Int32 = 0, minor: Int32 = 0
        _ = versionFunction(&major, &minor)
        return NVRTC(
            library: library, version: (Int(major), Int(minor)), nvrtcCreateProgram: fn("nvrtcCreateProgram"),
            nvrtcCompileProgram: fn("nvrtcCompileProgram"), nvrtcGetPTXSize: fn("nvrtcGetPTXSize"),
            nvrtcGetPTX: fn("nvrtcGetPTX"), nvrtcGetProgramLogSize: fn("nvrtcGetProgramLogSize"),
            nvrtcGetProgramLog: fn("nvrtcGetProgramLog"), nvrtcDestroyProgram: fn("nvrtcDestroyProgram"))
    }

    /// The options scripts/generate-ptx uses, for the given virtual architecture (`compute_90`).
    static func options(architecture: String) -> [String] {
        ["--gpu-architecture=\(architecture)", "--fmad=true", "-default-device"]
    }

    /// Compiles `source` to PTX for `architecture`.
    /// - Throws: `GPURuntimeError.call` with NVRTC's log when the source does not compile.
    func compile(_ source: String, architecture: String) throws(GPURuntimeError) -> String {
        var program: OpaquePointer?
        let created = source.withCString { text in
            "kernels.cu".withCString { nvrtcCreateProgram(&program, text, $0, 0, nil, nil) }
        }
        guard created == 0 else { throw .call(function: "nvrtcCreateProgram", code: Int(created), message: "failed") }
        defer { _ = nvrtcDestroyProgram(&program) }
        let options = Self.options(architecture: architecture).map { strdup($0) }
        defer { options.forEach { free($0) } }
        let status = options.map { UnsafePointer($0) }.withUnsafeBufferPointer {
            nvrtcCompileProgram(program, Int32($0.count), $0.baseAddress)
        }
        guard status == 0 else {
            var size = 0
            _ = nvrtcGetProgramLogSize(program, &size)
            var log = [CChar](repeating: 0, count: max(size, 1))
            _ = nvrtcGetProgramLog(program, &log)
            let text = String(decoding: log.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw .call(function: "nvrtcCompileProgram(\(architecture))", code: Int(status), message: text)
        }
        var size = 0
        _ = nvrtcGetPTXSize(program, &size)
        var ptx = [CChar](repeating: 0, count: max(size, 1))
        let got = nvrtcGetPTX(program, &ptx)
        guard got == 0 else { throw .call(function: "nvrtcGetPTX", code: Int(got), message: "failed") }
        return String(decoding: ptx.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// PTX compiled at run time, kept on disk so only the first process on a machine pays for NVRTC: `ptx/` in the
/// private cache folder (`CacheFolder`: XDG rules, never a shared place), one file per source, architecture and
/// NVRTC version. A cached file is loaded only when it is a regular file owned by this user and not writable by
/// others: PTX is code the GPU runs.
enum PTXCache {
    static func directory(environment: [String: String]) -> String? {
        (try? CacheFolder.path(environment: environment)).map { $0 + "/ptx" }
    }

    /// The cache file for this source, architecture and compiler (FNV-1a of all three).
    static func path(source: String, architecture: String, compiler: String, environment: [String: String])
        -> String?
    {
        guard let directory = directory(environment: environment) else { return nil }
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in (source + "\u{0}" + architecture + "\u{0}" + compiler).utf8 {
            hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
        }
        let hex = String(hash, radix: 16)
        return "\(directory)/\(architecture)-\(String(repeating: "0", count: 16 - hex.count))\(hex).ptx"
    }

    static func read(_ path: String) -> String? {
        guard let bytes = try? UserFiles.readAll(path, limit: 64 << 20, ownedByCurrentUser: true), !bytes.isEmpty
        else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Writes through a temporary name and rename, so a concurrent reader never sees half a file. Best effort:
    /// a cache that cannot be written only costs the next process a compile.
    static func write(_ text: String, to path: String) {
        try? CacheFolder.createFolders(for: path)
        try? UserFiles.write(Array(text.utf8), to: path, mode: 0o600)
    }
}

/// The process environment, read from `environ` (the GPU backend does without Foundation).
public enum ProcessEnvironment {
    public static var variables: [String: String] { UserFiles.processEnvironment }
}
