import Foundation
import InferenceTensor

// libFuzzer target for the NumPy readers: every input must decode or throw `NPYError`, never crash or hang.
// The first byte picks the reader: even → the in-memory .npy decoder, odd → the file readers (.npy or .npz,
// chosen by the file's magic), so the ZIP path is fuzzed too.

let scratchPath = FileManager.default.temporaryDirectory.appendingPathComponent("npyfuzz-\(getpid()).bin").path

func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data, size > 0 else { return 0 }
    let bytes = UnsafeRawBufferPointer(start: data + 1, count: size - 1)
    if data[0] & 1 == 0 {
        if let tensor = try? NumPyFile.decodeNPY(bytes, source: "fuzz.npy") {
            // A decoded tensor must be consistent with its shape.
            precondition(tensor.withUnsafeBytes { $0.count } == tensor.shape.elementCount * tensor.dtype.byteSize)
        }
    } else {
        _ = FileManager.default.createFile(atPath: scratchPath, contents: Data(bytes))
        _ = try? NumPyFile.readArrays(path: scratchPath)
        unlink(scratchPath)
    }
    return 0
}

@_silgen_name("LLVMFuzzerRunDriver")
func runFuzzerDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

var argc = CommandLine.argc
var argv = CommandLine.unsafeArgv
exit(runFuzzerDriver(&argc, &argv) { data, size in fuzzOne(data, size) })
