import ArgumentParser

/// `--threads`, declared once for every command that runs a model on the CPU.
struct ThreadsOption: ParsableArguments {
    @Option(
        name: .long, parsing: .unconditional,
        help: ArgumentHelp("CPU threads (default: all logical cores).", valueName: "n"))
    var threads: Int?

    func validate() throws {
        if let threads { try OptionChecks.count(threads, "--threads", 1...4096) }
    }
}

/// `--devices`, for the commands that measure several devices side by side.
struct DeviceListOption: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp("Comma-separated devices; default: cpu and every CUDA and OpenCL device.", valueName: "list")
    )
    var devices: String?

    func validate() throws {
        if let devices { _ = try OptionChecks.deviceList(devices) }
    }
}

/// `--calibration-data`, for the commands that take `--precision int8`.
struct CalibrationDataOption: ParsableArguments {
    @Option(
        name: .customLong("calibration-data"), help: ArgumentHelp(PrecisionChoice.calibrationHelp, valueName: "folder"))
    var calibrationData: String?
}
