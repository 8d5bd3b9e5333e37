import Foundation
import InferenceTensor
import InferenceTestSupport
import Testing

/// What the project writes must read back bit-exactly, here and in numpy.
struct NPYRoundTripTests {
    /// The element types NumPy holds as they are (bfloat16 is written as float32: `bfloat16IsWrittenAsFloat32`).
    static let numpyTypes = DType.allCases.filter { $0 != .bfloat16 }

    /// NumPy has no bfloat16: .npy and .npz files get the same values as float32, exactly.
    @Test func bfloat16IsWrittenAsFloat32() throws {
        let values: [Float] = [1, -2.5, 0.15625, .infinity, 3.0e38, 0]
        let tensor = try Tensor(shape: [2, 3], scalars: values.map { BFloat16($0) })
        let back = try NumPyFile.encodeNPY(tensor).withUnsafeBytes { try NumPyFile.decodeNPY($0, source: "memory") }
        #expect(back.dtype == .float32)
        #expect(try back.scalars(as: Float.self) == values.map { BFloat16($0).float })
    }

    static func sample(_ dtype: DType, shape: Shape) throws -> Tensor {
        var tensor = try Tensor(zeros: dtype, shape: shape)
        try tensor.withUnsafeMutableBytes { bytes in
            for i in bytes.indices { bytes[i] = UInt8(truncatingIfNeeded: i &* 73 &+ 11) }
            if dtype == .bool { for i in bytes.indices { bytes[i] &= 1 } }
        }
        return tensor
    }

    static let shapes: [Shape] = [[2, 3, 4], [7], [], [0], [3, 0, 2]]

    @Test(arguments: Self.numpyTypes)
    func roundTripsInProcess(_ dtype: DType) throws {
        let directory = try TestEnvironment.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        for (index, shape) in Self.shapes.enumerated() {
            let tensor = try Self.sample(dtype, shape: shape)
            let path = directory.appendingPathComponent("\(index).npy").path
            try NumPyFile.writeNPY(tensor, path: path)
            let back = try NumPyFile.readNPY(path: path)
            #expect(back.bitwiseEqual(tensor), "\(dtype) \(shape)")
            // Headers are padded so the data starts on a 64-byte boundary.
            let size = try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int ?? 0
            #expect((size - tensor.byteCount) % 64 == 0)
        }
    }

    @Test(arguments: [false, true])
    func npzRoundTrips(compressed: Bool) throws {
        let directory = try TestEnvironment.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let arrays = try Self.numpyTypes.map {
            NamedTensor(name: "x_\($0)", tensor: try Self.sample($0, shape: [3, 5]))
        }
        let path = directory.appendingPathComponent("all.npz").path
        try NumPyFile.writeNPZ(arrays, path: path, compressed: compressed)
        let back = try NumPyFile.readNPZ(path: path)
        #expect(back.map(\.name) == arrays.map(\.name))
        for (a, b) in zip(arrays, back) { #expect(a.tensor.bitwiseEqual(b.tensor), "\(a.name)") }
    }

    /// Members larger than the archive code's 256 KiB chunks, both compressible and not, and an empty archive.
    @Test(arguments: [false, true])
    func largeMembersAndEmptyArchives(compressed: Bool) throws {
        let directory = try TestEnvironment.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        var state: UInt32 = 12345
        let noise = (0..<700_000).map { _ -> Float in
            state = state &* 1_664_525 &+ 1_013_904_223
            return Float(bitPattern: state >> 2)
        }
        let arrays = [
            NamedTensor(name: "noise", tensor: try Tensor(shape: [700, 1000], scalars: noise)),
            NamedTensor(
                name: "ramp", tensor: try Tensor(shape: [600_000], scalars: (0..<600_000).map { Float($0 % 97) })),
        ]
        let path = directory.appendingPathComponent("big.npz").path
        try NumPyFile.writeNPZ(arrays, path: path, compressed: compressed)
        let back = try NumPyFile.readNPZ(path: path)
        #expect(back.map(\.name) == ["noise", "ramp"])
        for (a, b) in zip(arrays, back) { #expect(a.tensor.bitwiseEqual(b.tensor), "\(a.name)") }
        let empty = directory.appendingPathComponent("empty.npz").path
        try NumPyFile.writeNPZ([], path: empty, compressed: compressed)
        #expect(try NumPyFile.readNPZ(path: empty).isEmpty)
    }

    /// A member compressed with a method other than stored/deflated is named in a clear error.
    @Test func unsupportedCompressionMethodIsNamed() throws {
        let directory = try TestEnvironment.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("m.npz").path
        try NumPyFile.writeNPZ(
            [NamedTensor(name: "x", tensor: try Tensor(shape: [2], scalars: [Float(1), 2]))], path: path)
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        // Method field of the central directory entry (signature PK\u{1}\u{2}, then 8 bytes, then the method).
        guard let entry = bytes.indices.first(where: { bytes[$0...].starts(with: [0x50, 0x4B, 0x01, 0x02]) }) else {
            Issue.record("no central directory entry")
            return
        }
        bytes[entry + 10] = 14  // LZMA
        try bytes.write(to: URL(fileURLWithPath: path))
        do {
            _ = try NumPyFile.readNPZ(path: path)
            Issue.record("an LZMA member was accepted")
        } catch {
            #expect(error.source == "\(path):x.npy")
            #expect(error.description.contains("compression method 14 is not supported"))
        }
    }

    @Test func failedWriteLeavesNoFile() throws {
        let tensor = try Tensor(shape: [1], scalars: [Float(1)])
        #expect(throws: NPYError.self) { try NumPyFile.writeNPY(tensor, path: "/nonexistent-dir/x.npy") }
        #expect(throws: NPYError.self) {
            try NumPyFile.writeNPZ([NamedTensor(name: "x", tensor: tensor)], path: "/nonexistent-dir/x.npz")
        }
    }

    /// numpy reads every file this project writes and finds the same values.
    @Test func numpyReadsWhatWeWrite() throws {
        guard let python = TestEnvironment.python else {
            if TestEnvironment.pythonRequired { Issue.record("reference Python missing: run scripts/setup-python-env") }
            return
        }
        let directory = try TestEnvironment.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        var manifest: [[String: Any]] = []
        for dtype in Self.numpyTypes {
            for (index, shape) in Self.shapes.enumerated() {
                let tensor = try Self.sample(dtype, shape: shape)
                let name = "\(dtype)_\(index).npy"
                try NumPyFile.writeNPY(tensor, path: directory.appendingPathComponent(name).path)
                let hex = tensor.withUnsafeBytes { $0.map { String(format: "%02x", $0) }.joined() }
                manifest.append(["file": name, "dtype": dtype.rawValue, "shape": shape.dimensions, "hex": hex])
            }
        }
        let arrays = try Self.numpyTypes.map {
            NamedTensor(name: "x_\($0)", tensor: try Self.sample($0, shape: [3, 5]))
        }
        try NumPyFile.writeNPZ(arrays, path: directory.appendingPathComponent("stored.npz").path, compressed: false)
        try NumPyFile.writeNPZ(arrays, path: directory.appendingPathComponent("deflated.npz").path, compressed: true)
        for archive in ["stored.npz", "deflated.npz"] {
            for array in arrays {
                let hex = array.tensor.withUnsafeBytes { $0.map { String(format: "%02x", $0) }.joined() }
                manifest.append([
                    "file": archive, "member": array.name, "dtype": array.tensor.dtype.rawValue, "shape": [3, 5],
                    "hex": hex,
                ])
            }
        }
        let manifestURL = directory.appendingPathComponent("manifest.json")
        try JSONSerialization.data(withJSONObject: manifest).write(to: manifestURL)
        let script = TestEnvironment.packageRoot.appendingPathComponent("scripts/check-npy-with-numpy.py").path
        let result = try ProcessRunner.run(python, [script, directory.path])
        #expect(result.status == 0, "numpy check failed:\n\(result.stdout)\n\(result.stderr)")
        #expect(result.stdout.contains("checked \(manifest.count) arrays"))
    }
}
