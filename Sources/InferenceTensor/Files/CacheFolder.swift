#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// The cache folder could not be placed somewhere private.
public struct CacheFolderError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(description: String) { self.description = description }
}

/// Where the tool keeps profiles and measured device rates, following the XDG base directory rules:
/// `$XDG_CACHE_HOME/inference` when that is set to an absolute path, else `$HOME/.cache/inference` when HOME is
/// an absolute path to an existing folder, else the home folder of the user's account entry. Empty and relative
/// values are ignored (as the specification says); a home folder is never created, and nothing goes to a shared
/// place such as /tmp. Folders the tool creates are private (0700).
public enum CacheFolder {
    /// - Throws: `CacheFolderError` when no usable location exists.
    public static func path(environment: [String: String] = UserFiles.processEnvironment) throws -> String {
        if let xdg = environment["XDG_CACHE_HOME"], xdg.hasPrefix("/") { return trimmed(xdg) + "/inference" }
        if let home = environment["HOME"], home.hasPrefix("/"), isFolder(home) {
            return trimmed(home) + "/.cache/inference"
        }
        if let entry = getpwuid(geteuid()), let directory = entry.pointee.pw_dir {
            let home = String(cString: directory)
            if home.hasPrefix("/"), home != "/", isFolder(home) { return trimmed(home) + "/.cache/inference" }
        }
        throw CacheFolderError(
            description: "no private cache folder: set XDG_CACHE_HOME or HOME to an absolute path of an existing "
                + "folder, or pass --profile FILE")
    }

    /// Creates the folders above `file` that are missing, each private to the user; the home folder itself must
    /// already exist.
    /// - Throws: `FileAccessError` naming the folder that cannot be made.
    public static func createFolders(for file: String) throws {
        let folder = UserFiles.parentFolder(of: file)
        guard !isFolder(folder) else { return }
        var missing: [String] = []
        var current = folder
        while !isFolder(current) {
            missing.append(current)
            let parent = UserFiles.parentFolder(of: current)
            guard parent != current, parent != "." else { break }
            current = parent
        }
        guard isFolder(current) else {
            throw FileAccessError(path: folder, problem: "cannot be created: \(current) does not exist")
        }
        for path in missing.reversed() where mkdir(path, 0o700) != 0 && errno != EEXIST {
            throw FileAccessError(path: path, problem: "cannot be created: \(String(cString: strerror(errno)))")
        }
    }

    static func trimmed(_ path: String) -> String {
        var result = path
        while result.count > 1 && result.hasSuffix("/") { result.removeLast() }
        return result == "/" ? "" : result
    }

    static func isFolder(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
    }
}
