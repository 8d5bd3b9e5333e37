import Foundation
import InferenceTensor
import Testing

/// The one place files are opened and written: regular files only, real paths, nothing but a regular file replaced.
struct UserFilesTests {
    @Test func readsOnlyRegularFiles() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("userfiles-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let fifo = folder.appendingPathComponent("fifo").path
        #expect(mkfifo(fifo, 0o600) == 0)
        #expect(throws: FileAccessError.self) { try UserFiles.openForReading(fifo) }
        #expect(throws: FileAccessError.self) { try UserFiles.openForReading(folder.path) }
        #expect(throws: FileAccessError.self) { try UserFiles.openForReading("/dev/zero") }
        do { _ = try UserFiles.openForReading(folder.appendingPathComponent("missing").path) } catch {
            #expect(error.isMissing)
        }
        let file = folder.appendingPathComponent("f").path
        try UserFiles.write(Array("hello".utf8), to: file)
        #expect(try UserFiles.readAll(file, limit: 100) == Array("hello".utf8))
        #expect(throws: FileAccessError.self) { try UserFiles.readAll(file, limit: 4) }
        #expect(chmod(file, 0o666) == 0)
        #expect(throws: FileAccessError.self) { try UserFiles.readAll(file, limit: 100, ownedByCurrentUser: true) }
    }

    @Test func resolvesModelRelativePathsInsideTheRealFolder() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("userfiles-\(UUID().uuidString)")
        let models = root.appendingPathComponent("m")
        let other = root.appendingPathComponent("m_other")
        try FileManager.default.createDirectory(
            at: models.appendingPathComponent("sub"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: other, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        try Data([1]).write(to: models.appendingPathComponent("sub/w.bin"))
        try Data([1]).write(to: other.appendingPathComponent("k.bin"))
        try FileManager.default.createSymbolicLink(
            atPath: models.appendingPathComponent("out").path, withDestinationPath: other.path)
        #expect(try UserFiles.resolveInside(folder: models.path, location: "sub/w.bin").hasSuffix("/m/sub/w.bin"))
        #expect(
            try UserFiles.resolveInside(folder: models.path, location: "sub/../sub/w.bin").hasSuffix("/m/sub/w.bin"))
        for location in ["../m_other/k.bin", "out/k.bin", "/etc/hostname", "", "missing.bin"] {
            #expect(throws: FileAccessError.self, "\(location)") {
                try UserFiles.resolveInside(folder: models.path, location: location)
            }
        }
    }

    @Test func outputsReplaceOnlyRegularFiles() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("userfiles-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let fifo = folder.appendingPathComponent("fifo").path
        #expect(mkfifo(fifo, 0o600) == 0)
        #expect(throws: FileAccessError.self) { try UserFiles.write([1], to: fifo) }
        #expect(throws: FileAccessError.self) { try UserFiles.write([1], to: folder.path) }
        #expect(throws: FileAccessError.self) { try UserFiles.write([1], to: "/dev/null") }
        #expect(throws: FileAccessError.self) { try UserFiles.write([1], to: folder.path + "/missing/x") }
        var info = stat()
        #expect(lstat(fifo, &info) == 0 && (info.st_mode & S_IFMT) == S_IFIFO)
        let file = folder.appendingPathComponent("out").path
        try UserFiles.write([1, 2], to: file)
        try UserFiles.write([3], to: file)
        #expect(try UserFiles.readAll(file, limit: 10) == [3])
        // No temporary files are left behind.
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted() == ["fifo", "out"])
    }
}
