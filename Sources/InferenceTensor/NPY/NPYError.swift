/// A NumPy file that cannot be read or written, with the file (or `archive.npz:member`) it came from.
public struct NPYError: Error, Equatable, CustomStringConvertible {
    /// What is wrong with the file.
    public enum Problem: Error, Equatable, Sendable {
        case fileNotFound
        case io(String)
        case badMagic
        case unsupportedVersion(major: UInt8, minor: UInt8)
        case truncatedHeader
        case headerNotDict
        case headerSyntax(String)
        case missingKey(String)
        case unsupportedDType(descr: String, reason: String)
        case badShape(String)
        case absurdSize(dimensions: [Int])
        case truncatedData(expectedBytes: Int, actualBytes: Int)
        case trailingData(expectedBytes: Int, actualBytes: Int)
        case notAnArchive(String)
        case memberNotFound(String)
        case allocationFailed(bytes: Int)
    }

    public var source: String
    public var problem: Problem

    public init(source: String, problem: Problem) {
        self.source = source
        self.problem = problem
    }

    public var description: String { "\(source): \(problemDescription)" }

    var problemDescription: String {
        switch problem {
        case .fileNotFound: "no such file"
        case .io(let message): message
        case .badMagic: "not a NumPy .npy file (the first bytes are not \\x93NUMPY)"
        case .unsupportedVersion(let major, let minor):
            "unsupported .npy format version \(major).\(minor) (supported: 1.0, 2.0, 3.0)"
        case .truncatedHeader: "truncated .npy header: the file ends before the header does"
        case .headerNotDict: "the .npy header is not a Python dict literal"
        case .headerSyntax(let detail): "malformed .npy header: \(detail)"
        case .missingKey(let key): "the .npy header has no '\(key)' key"
        case .unsupportedDType(let descr, let reason): "unsupported dtype '\(descr)': \(reason)"
        case .badShape(let detail): "bad shape in .npy header: \(detail)"
        case .absurdSize(let dimensions): "shape \(dimensions) is too large to hold in memory"
        case .truncatedData(let expected, let actual):
            "truncated data: the shape needs \(expected) bytes, the file has \(actual)"
        case .trailingData(let expected, let actual):
            "size mismatch: the shape needs \(expected) bytes of data, the file has \(actual)"
        case .notAnArchive(let detail): "not a readable .npz (zip) archive: \(detail)"
        case .memberNotFound(let name): "the archive has no array named '\(name)'"
        case .allocationFailed(let bytes): "cannot allocate \(bytes) bytes for the array"
        }
    }
}
