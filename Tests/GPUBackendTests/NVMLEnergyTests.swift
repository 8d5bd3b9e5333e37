import GPUBackend
import Testing

/// NVML's energy reader says why it cannot read a counter: here, with the loader pointed away from any NVIDIA
/// driver, the library is missing and the reason names it (on a GPU machine, `compare` reads the real counter).
struct NVMLEnergyTests {
    @Test func aMissingLibraryIsAReasonNotACrash() {
        switch NVMLEnergy.reader(index: 0) {
        case .success(let reader):
            // A machine with an NVIDIA driver: the counter reads and never goes backwards.
            let first = reader.read() ?? -1, second = reader.read() ?? -1
            #expect(first >= 0 && second >= first)
        case .failure(let reason):
            #expect("\(reason)".contains("libnvidia-ml") || "\(reason)".contains("nvml"), "\(reason)")
        }
    }
}
