#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

// The C library's calls under names that the types below (which have read, write and close methods) do not shadow.
private func systemRead(_ fd: Int32, _ buffer: UnsafeMutableRawPointer, _ count: Int) -> Int { read(fd, buffer, count) }
private func systemWrite(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int { write(fd, buffer, count) }
private func systemClose(_ fd: Int32) -> Int32 { close(fd) }

/// A file the user named could not be used: which file, and why, in words that say what to do.
public struct FileAccessError: Error, CustomStringConvertible, Equatable, Sendable {
    public var path: String
    public var problem: String
    /// True when the file does not exist (callers may word that case their own way).
    public var isMissing: Bool

    public init(path: String, problem: String, isMissing: Bool = false) {
        self.path = path
        self.problem = problem
        self.isMissing = isMissing
    }

    public var description: String { "\(path): \(problem)" }
}

/// A regular file opened for reading, with its size. Close it with `close()`.
public struct ReadableFile: Sendable {
    public let fd: Int32
    public let size: Int
    public let path: String

    /// Reads until `buffer` is full or the file ends; returns the bytes read.
    /// - Throws: `FileAccessError` when the read fails.
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(FileAccessError) -> Int {
        var offset = 0
        while offset < buffer.count, let base = buffer.baseAddress {
            let n = systemRead(fd, base + offset, buffer.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                throw FileAccessError(path: path, problem: "read failed: \(UserFiles.errorText(errno))")
            }
            if n == 0 { break }
            offset += n
        }
        return offset
    }

    /// Reads `count` bytes at `offset` into `buffer` (which must hold them).
    /// - Throws: `FileAccessError` when the file ends early or the read fails.
    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws(FileAccessError) {
        var done = 0
        while done < buffer.count, let base = buffer.baseAddress {
            let n = pread(fd, base + done, buffer.count - done, off_t(offset + done))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                let why = n == 0 ? "the file ends early" : UserFiles.errorText(errno)
                throw FileAccessError(
                    path: path, problem: "cannot read \(buffer.count) bytes at offset \(offset): \(why)")
            }
            done += n
        }
    }

    public func close() { _ = systemClose(fd) }
}

/// The one place where files named by a user or a model are opened and written.
///
/// Reading: regular files only (a FIFO, device or folder is refused before it can block or be misread), with
/// the size known before any byte is read. Paths that a model names relative to its own folder are resolved
/// to real paths (symlinks followed) and must stay inside the folder's real path. Writing: only a missing path
/// or a regular file is replaced, atomically (temporary file in the same folder, then rename), so a device
/// node, FIFO or folder at the target is never destroyed and a failed write leaves no partial file.
public enum UserFiles {
    /// The process environment, read from `environ` (this module does without Foundation).
    public static var processEnvironment: [String: String] {
        var result: [String: String] = [:]
        var cursor = environ
        while let entry = cursor.pointee {
            let text = String(cString: entry)
            if let equals = text.firstIndex(of: "=") {
                result[String(text[..<equals])] = String(text[text.index(after: equals)...])
            }
            cursor += 1
        }
        return result
    }

    static func errorText(_ code: Int32) -> String { String(cString: strerror(code)) }

    static func kindName(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFDIR: "a folder"
        case S_IFIFO: "a FIFO (named pipe)"
        case S_IFCHR: "a character device"
        case S_IFBLK: "a block device"
        case S_IFSOCK: "a socket"
        case S_IFLNK: "a symbolic link"
        default: "not a regular file"
        }
    }

    /// Opens `path` for reading. Non-blocking at open (a FIFO with no writer would block forever), then
    /// checked with fstat on the open descriptor, so nothing can swap the file in between.
    /// - Throws: `FileAccessError` for a missing file, no permission, or anything but a regular file.
    public static func openForReading(_ path: String) throws(FileAccessError) -> ReadableFile {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)
        guard fd >= 0 else {
            let code = errno
            if code == ENOENT { throw FileAccessError(path: path, problem: "no such file", isMissing: true) }
            throw FileAccessError(path: path, problem: "cannot open: \(errorText(code))")
        }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            let message = errorText(errno)
            _ = close(fd)
            throw FileAccessError(path: path, problem: "cannot read its status: \(message)")
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            _ = close(fd)
            throw FileAccessError(
                path: path, problem: "is \(kindName(info.st_mode)), not a regular file; give the path of a file")
        }
        let flags = fcntl(fd, F_GETFL)
        if flags >= 0 { _ = fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) }
        return ReadableFile(fd: fd, size: Int(info.st_size), path: path)
    }

    /// Reads a whole regular file of at most `limit` bytes.
    /// With `ownedByCurrentUser`, the file must belong to this process's user and not be writable by others.
    /// - Throws: `FileAccessError` for the reasons of `openForReading`, or a file larger than `limit`.
    public static func readAll(_ path: String, limit: Int, ownedByCurrentUser: Bool = false) throws(FileAccessError)
        -> [UInt8]
    {
        let file = try openForReading(path)
        defer { file.close() }
        if ownedByCurrentUser {
            var info = stat()
            guard fstat(file.fd, &info) == 0, info.st_uid == geteuid() else {
                throw FileAccessError(
                    path: path, problem: "is not owned by this user; refused (delete it or fix its owner)")
            }
            guard info.st_mode & 0o022 == 0 else {
                throw FileAccessError(
                    path: path, problem: "is writable by other users; refused (chmod go-w it, or delete it)")
            }
        }
        guard file.size <= limit else {
            throw FileAccessError(path: path, problem: "is \(file.size) bytes, more than the \(limit) allowed")
        }
        var bytes = [UInt8](repeating: 0, count: file.size)
        var count = 0
        var failure: FileAccessError?
        bytes.withUnsafeMutableBytes { buffer in
            do throws(FileAccessError) { count = try file.read(into: buffer) } catch { failure = error }
        }
        if let failure { throw failure }
        return Array(bytes[0..<count])
    }

    /// The canonical absolute path of an existing file or folder (symlinks resolved), or nil.
    public static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// Resolves `location`, a path a model gives relative to its own `folder`, to a real path that lies inside
    /// the folder's real path (after every symlink). Absolute locations and any way out (`..`, a symlinked file
    /// or folder pointing elsewhere, a sibling folder sharing the name's prefix) are refused.
    /// - Throws: `FileAccessError` naming `location`.
    public static func resolveInside(folder: String, location: String) throws(FileAccessError) -> String {
        guard !location.isEmpty, !location.hasPrefix("/"), !location.contains("\0") else {
            throw FileAccessError(path: location, problem: "is not a relative path inside the model's folder")
        }
        guard let root = realPath(folder.isEmpty ? "." : folder) else {
            throw FileAccessError(path: folder, problem: "the model's folder cannot be resolved")
        }
        let joined = root == "/" ? "/" + location : root + "/" + location
        guard let resolved = realPath(joined) else {
            throw FileAccessError(
                path: location, problem: "not found in the model's folder \(root) (it must sit next to the model)",
                isMissing: true)
        }
        let prefix = root.hasSuffix("/") ? root : root + "/"
        guard resolved.hasPrefix(prefix) else {
            throw FileAccessError(
                path: location,
                problem: "lies outside the model's folder \(root) (resolves to \(resolved)); refused")
        }
        return resolved
    }

    /// Checks, before any work is done, that `path` can receive an output: it is missing or a regular file, and
    /// its folder exists and is writable.
    /// - Throws: `FileAccessError` saying what is in the way.
    public static func checkOutputTarget(_ path: String) throws(FileAccessError) {
        guard !path.isEmpty else { throw FileAccessError(path: path, problem: "an empty output path") }
        var info = stat()
        if lstat(path, &info) == 0 {
            guard (info.st_mode & S_IFMT) == S_IFREG else {
                throw FileAccessError(
                    path: path,
                    problem: "is \(kindName(info.st_mode)); outputs only replace regular files, give a file path")
            }
        } else if errno != ENOENT {
            throw FileAccessError(path: path, problem: "cannot be checked: \(errorText(errno))")
        }
        let folder = parentFolder(of: path)
        var folderInfo = stat()
        guard stat(folder, &folderInfo) == 0 else {
            throw FileAccessError(path: path, problem: "its folder \(folder) does not exist; create it first")
        }
        guard (folderInfo.st_mode & S_IFMT) == S_IFDIR else {
            throw FileAccessError(path: path, problem: "\(folder) is not a folder")
        }
        guard access(folder, W_OK) == 0 else {
            throw FileAccessError(path: path, problem: "its folder \(folder) is not writable")
        }
    }

    /// The folder part of a path ("." for a bare name).
    public static func parentFolder(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        let folder = String(path[..<slash])
        return folder.isEmpty ? "/" : folder
    }

    /// Writes a file atomically: `body` fills a temporary file in the target's folder, which then replaces
    /// `path` by rename; the target is checked again just before the rename.
    /// - Throws: `FileAccessError`, or what `body` throws; no temporary file is left behind.
    public static func writeAtomically<E: Error>(
        path: String, mode: mode_t = 0o644, _ body: (Int32) throws(E) -> Void
    ) throws -> Void {
        try checkOutputTarget(path)
        let temporary = "\(path).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode)
        guard fd >= 0 else {
            throw FileAccessError(path: path, problem: "cannot create: \(errorText(errno))")
        }
        do {
            try body(fd)
        } catch {
            _ = close(fd)
            unlink(temporary)
            throw error
        }
        if close(fd) != 0 {
            let message = errorText(errno)
            unlink(temporary)
            throw FileAccessError(path: path, problem: "cannot write: \(message)")
        }
        do { try checkOutputTarget(path) } catch {
            unlink(temporary)
            throw error
        }
        guard rename(temporary, path) == 0 else {
            let message = errorText(errno)
            unlink(temporary)
            throw FileAccessError(path: path, problem: "cannot write: \(message)")
        }
    }

    /// Writes all of `buffer` to `fd`.
    /// - Throws: `FileAccessError` naming `path` when the write fails (a full disk, a closed pipe).
    public static func writeAll(_ fd: Int32, _ buffer: UnsafeRawBufferPointer, path: String) throws(FileAccessError) {
        var offset = 0
        while offset < buffer.count, let base = buffer.baseAddress {
            let n = systemWrite(fd, base + offset, buffer.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                throw FileAccessError(path: path, problem: "write failed: \(errorText(errno))")
            }
            offset += n
        }
    }

    /// Writes `bytes` to `path` atomically (see `writeAtomically`).
    public static func write(_ bytes: [UInt8], to path: String, mode: mode_t = 0o644) throws {
        try writeAtomically(path: path, mode: mode) { fd throws(FileAccessError) in
            var failure: FileAccessError?
            bytes.withUnsafeBytes { buffer in
                do throws(FileAccessError) { try writeAll(fd, buffer, path: path) } catch { failure = error }
            }
            if let failure { throw failure }
        }
    }
}
