import ArgumentParser
import InferenceBench

@main
struct Inference: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inference",
        abstract: "Run ONNX-style models on the CPU or a GPU, and measure which one to use.",
        discussion: """
            With no subcommand, `run` is assumed:
              inference --device cpu --input data/sample1.npy
            The embedded default model (builtin:linear, Linear(10 → 1) + sigmoid) runs when --model is omitted.
            """,
        version: "0.1.0",
        subcommands: [
            RunCommand.self, CompareCommand.self, BenchCommand.self, CalibrateCommand.self, DevicesCommand.self,
            InspectCommand.self, ProfileCommand.self, ServeCommand.self, LoadCommand.self,
        ],
        defaultSubcommand: RunCommand.self
    )

    /// Marks the process clock first, so cold starts are timed from the process's start.
    static func main() {
        ProcessClock.markMain()
        main(nil)
    }
}
