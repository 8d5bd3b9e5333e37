import ArgumentParser

/// A command whose failures print one `error: ...` line on stderr and exit 1, leaving stdout empty;
/// argument mistakes stay ArgumentParser's (usage and exit 64).
protocol ReportingCommand: ParsableCommand {
    func execute() throws
}

extension ReportingCommand {
    func run() throws {
        do {
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
