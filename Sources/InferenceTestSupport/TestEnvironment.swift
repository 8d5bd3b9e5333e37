import Foundation

/// Paths and tools the tests use: the package root, the built `inference` binary, the reference Python.
public enum TestEnvironment {
    /// The repository root (two levels above this file's folder).
    public static let packageRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The folder that holds the built products of this test run.
    public static var productsDirectory: URL {
        if let executable = Bundle.main.executableURL { return executable.deletingLastPathComponent() }
        return packageRoot.appendingPathComponent(".build/debug")
    }

    /// The `inference` binary: `INFERENCE_BINARY` if set, else the one built next to the tests.
    public static var inferenceBinary: URL {
        if let path = ProcessInfo.processInfo.environment["INFERENCE_BINARY"] { return URL(fileURLWithPath: path) }
        return productsDirectory.appendingPathComponent("inference")
    }

    /// The reference Python (with numpy): `INFERENCE_PYTHON`, else `.venv/bin/python` made by
    /// scripts/setup-python-env. Nil when neither exists; `pythonRequired` then decides whether tests fail.
    public static var python: URL? {
        if let path = ProcessInfo.processInfo.environment["INFERENCE_PYTHON"] { return URL(fileURLWithPath: path) }
        let venv = packageRoot.appendingPathComponent(".venv/bin/python")
        return FileManager.default.isExecutableFile(atPath: venv.path) ? venv : nil
    }

    /// True when the reference Python must be present (set by scripts/test, and so in CI).
    public static var pythonRequired: Bool { ProcessInfo.processInfo.environment["INFERENCE_REQUIRE_PYTHON"] == "1" }

    /// A fresh temporary directory, removed by the caller.
    public static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("inference-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}

/// The result of running a real process.
public struct ProcessOutput: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String
}

public enum ProcessRunner {
    /// Runs an executable to completion with a timeout, capturing stdout and stderr.
    /// - Throws: when the process cannot start or outlives `timeout` (it is then killed).
    public static func run(
        _ executable: URL, _ arguments: [String], currentDirectory: URL? = nil,
        environment: [String: String]? = nil, timeout: TimeInterval = 120
    ) throws -> ProcessOutput {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        process.currentDirectoryURL = currentDirectory ?? TestEnvironment.packageRoot
        if let environment {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        let directory = try TestEnvironment.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let outURL = directory.appendingPathComponent("stdout")
        let errURL = directory.appendingPathComponent("stderr")
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        let out = try FileHandle(forWritingTo: outURL)
        let err = try FileHandle(forWritingTo: errURL)
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning {
            if Date() > deadline {
                process.terminate()
                process.waitUntilExit()
                throw ProcessTimeout(command: ([executable.path] + arguments).joined(separator: " "))
            }
            usleep(2_000)
        }
        try out.close()
        try err.close()
        return ProcessOutput(
            status: process.terminationStatus,
            stdout: (try? String(contentsOf: outURL, encoding: .utf8)) ?? "",
            stderr: (try? String(contentsOf: errURL, encoding: .utf8)) ?? "")
    }
}

public struct ProcessTimeout: Error, CustomStringConvertible {
    public var command: String
    public var description: String { "timed out: \(command)" }
}
