import ArgumentParser
import CPUBackend
import InferenceRuntime

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// The environment settings that are set to values the runtime does not accept (`RuntimeSettings`).
enum SettingsCheck {
    static func problems() -> [String] {
        RuntimeSettings.problems(in: ProcessInfo.processInfo.environment)
            + [CPUBackend.blasSettingProblem].compactMap { $0 }
    }
}

/// A command whose failures print one `error: ...` line on stderr and exit 1, leaving stdout empty;
/// argument mistakes stay ArgumentParser's (usage and exit 64).
protocol ReportingCommand: ParsableCommand {
    func execute() throws
}

extension ReportingCommand {
    func run() throws {
        do {
            for problem in SettingsCheck.problems() { printError("warning: \(problem)") }
            try execute()
        } catch let error as ExitCode {
            throw error
        } catch let error as ValidationError {
            throw error
        } catch {
            printError("error: \(error)")
            throw ExitCode.failure
        }
    }
}
