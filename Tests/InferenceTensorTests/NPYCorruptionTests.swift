import Foundation
import InferenceTensor
import Testing

/// Broken files give a typed error naming the file and the problem, never a crash.
struct NPYCorruptionTests {
    /// A valid float32 (2, 3) file of 1.5s.
    static let valid: [UInt8] = {
        let one = Float(1.5).bitPattern
        let element = (0..<4).map { UInt8(truncatingIfNeeded: one >> (8 * $0)) }
        return NPYHeader(dtype: .float32, dimensions: [2, 3]).encoded() + (0..<6).flatMap { _ in element }
    }()

    func decode(_ bytes: [UInt8]) throws(NPYError) -> Tensor {
        let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 16)
        defer { copy.deallocate() }
        copy.copyBytes(from: bytes)
        return try NumPyFile.decodeNPY(UnsafeRawBufferPointer(copy), source: "test.npy")
    }

    func problem(_ bytes: [UInt8]) -> NPYError.Problem? {
        do {
            _ = try decode(bytes)
            return nil
        } catch {
            #expect(error.source == "test.npy")
            return error.problem
        }
    }

    /// A file with the given header dict text, padded like numpy does, followed by `data` bytes.
    func file(header: String, data: [UInt8] = [], version: UInt8 = 1) -> [UInt8] {
        var body = Array(header.utf8)
        let prefix = version == 1 ? 10 : 12
        while (prefix + body.count + 1) % 64 != 0 { body.append(0x20) }
        body.append(0x0A)
        var out: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, version, 0]
        if version == 1 {
            out += [UInt8(body.count & 0xFF), UInt8(body.count >> 8)]
        } else {
            out += [UInt8(body.count & 0xFF), UInt8(body.count >> 8), 0, 0]
        }
        return out + body + data
    }

    @Test func everyTruncationIsATypedError() {
        for length in 0..<Self.valid.count {
            let p = problem(Array(Self.valid.prefix(length)))
            #expect(p != nil, "prefix of \(length) bytes was accepted")
            switch p {
            case .badMagic?, .truncatedHeader?, .truncatedData?: break
            default: Issue.record("prefix of \(length) bytes: unexpected \(String(describing: p))")
            }
        }
        #expect(problem(Self.valid) == nil)
    }

    @Test func trailingBytesAreASizeMismatch() {
        #expect(problem(Self.valid + [0, 0, 0, 0]) == .trailingData(expectedBytes: 24, actualBytes: 28))
    }

    @Test func badMagic() {
        var bytes = Self.valid
        bytes[1] = UInt8(ascii: "X")
        #expect(problem(bytes) == .badMagic)
        #expect(problem(Array("PK\u{3}\u{4}not numpy at all".utf8)) == .badMagic)
    }

    @Test func unsupportedVersion() {
        var bytes = Self.valid
        bytes[6] = 4
        #expect(problem(bytes) == .unsupportedVersion(major: 4, minor: 0))
    }

    @Test func headerNotADict() {
        #expect(problem(file(header: "['descr', '<f4']")) == .headerNotDict)
    }

    @Test func malformedHeaders() {
        let cases = [
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), ",
            "{'descr': '<f4' 'fortran_order': False}",
            "{'descr: '<f4'}",
            "{descr: 1}",
        ]
        for header in cases {
            guard case .headerSyntax? = problem(file(header: header)) else {
                Issue.record(
                    "accepted or misreported: \(header) -> \(String(describing: problem(file(header: header))))")
                continue
            }
        }
    }

    @Test func missingKeys() {
        #expect(problem(file(header: "{'fortran_order': False, 'shape': (1,), }")) == .missingKey("descr"))
        #expect(problem(file(header: "{'descr': '<f4', 'shape': (1,), }")) == .missingKey("fortran_order"))
        #expect(problem(file(header: "{'descr': '<f4', 'fortran_order': False, }")) == .missingKey("shape"))
    }

    @Test func objectAndStructuredDTypesAreRejected() {
        guard
            case .unsupportedDType(let descr, _)? = problem(
                file(header: "{'descr': '|O', 'fortran_order': False, 'shape': (2,), }"))
        else {
            Issue.record("object dtype accepted")
            return
        }
        #expect(descr == "|O")
        guard
            case .unsupportedDType? = problem(
                file(header: "{'descr': [('x', '<f4'), ('y', '<i4')], 'fortran_order': False, 'shape': (2,), }"))
        else {
            Issue.record("structured dtype accepted")
            return
        }
        for descr in ["<U8", "|S4", "<c8", "<M8[ns]", "<f3", "<i16"] {
            guard
                case .unsupportedDType? = problem(
                    file(header: "{'descr': '\(descr)', 'fortran_order': False, 'shape': (1,), }"))
            else {
                Issue.record("\(descr) accepted")
                continue
            }
        }
    }

    @Test func shapeAndDataSizeMismatch() {
        let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 3), }"
        #expect(
            problem(file(header: header, data: [UInt8](repeating: 0, count: 20)))
                == .truncatedData(expectedBytes: 36, actualBytes: 20))
        #expect(
            problem(file(header: header, data: [UInt8](repeating: 0, count: 40)))
                == .trailingData(expectedBytes: 36, actualBytes: 40))
    }

    @Test func absurdSizesFailBeforeAllocating() {
        let huge = "{'descr': '<f8', 'fortran_order': False, 'shape': (4611686018427387904, 4), }"
        #expect(problem(file(header: huge)) == .absurdSize(dimensions: [4611686018427387904, 4]))
        let large = "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000, 1000000), }"
        #expect(problem(file(header: large)) == .truncatedData(expectedBytes: 4_000_000_000_000, actualBytes: 0))
        guard case .badShape? = problem(file(header: "{'descr': '<f4', 'fortran_order': False, 'shape': (-1, 2), }"))
        else {
            Issue.record("negative dimension accepted")
            return
        }
        guard
            case .badShape? = problem(
                file(header: "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999,), }"))
        else {
            Issue.record("overflowing dimension accepted")
            return
        }
    }

    @Test func version2And3HeadersAndPython2Longs() throws {
        let data = [UInt8](repeating: 0, count: 8)
        let v2 = try decode(
            file(header: "{'descr': '<i4', 'fortran_order': False, 'shape': (2L,), }", data: data, version: 2))
        #expect(v2.shape == [2])
        let v3 = try decode(
            file(header: "{\"descr\": \"<u2\", \"fortran_order\": False, \"shape\": (4,)}", data: data, version: 3))
        #expect(v3.dtype == .uint16)
    }

    @Test func missingFileAndDirectory() {
        #expect(throws: NPYError(source: "/nonexistent/x.npy", problem: .fileNotFound)) {
            try NumPyFile.readArrays(path: "/nonexistent/x.npy")
        }
        do {
            _ = try NumPyFile.readArrays(path: "/tmp")
            Issue.record("directory accepted")
        } catch {
            #expect(error.problem == .io("is a folder, not a regular file; give the path of a file"))
        }
    }

    @Test func corruptArchives() throws {
        let directory = try FileManager.default.url(
            for: .itemReplacementDirectory, in: .userDomainMask, appropriateFor: URL(fileURLWithPath: "/tmp"),
            create: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let fixtures = Bundle.module.bundleURL.appendingPathComponent("Fixtures/npy")
        for name in ["stored.npz", "deflated.npz"] {
            let bytes = try Data(contentsOf: fixtures.appendingPathComponent(name))
            // Truncations, and single-byte corruptions across the whole archive.
            var variants: [Data] = stride(from: 4, to: bytes.count, by: max(1, bytes.count / 40)).map {
                bytes.prefix($0)
            }
            for position in stride(from: 0, to: bytes.count, by: max(1, bytes.count / 60)) {
                var corrupted = bytes
                corrupted[position] ^= 0x5A
                variants.append(corrupted)
            }
            for (index, variant) in variants.enumerated() {
                let path = directory.appendingPathComponent("\(index)-\(name)").path
                try variant.write(to: URL(fileURLWithPath: path))
                do {
                    let arrays = try NumPyFile.readArrays(path: path)
                    // A flipped byte in a name or timestamp can leave the data valid; then it must be intact.
                    for array in arrays where array.name == "a" { #expect(array.tensor.shape == [4, 10]) }
                } catch {
                    #expect(error.source.hasPrefix(path), "error names \(error.source), not the file")
                }
            }
        }
    }
}
