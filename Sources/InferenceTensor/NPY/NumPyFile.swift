#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// A named array, as stored in an .npz archive or passed to a model input.
public struct NamedTensor: Sendable {
    public var name: String
    public var tensor: Tensor

    public init(name: String, tensor: Tensor) {
        self.name = name
        self.tensor = tensor
    }
}

/// Reading and writing NumPy's .npy and .npz files.
///
/// Reads every format version (1.0, 2.0, 3.0), both byte orders, C and Fortran order, and the dtypes of
/// `DType`; the result is always native-endian and row-major. Writes version 1.0 (2.0 for huge headers),
/// little-endian, C order, with headers padded to 64 bytes. Files are written to a temporary name and
/// renamed, so a failed write never leaves a partial file behind.
public enum NumPyFile {
    /// Reads a `.npy` file (or an `.npz` archive, returning its arrays in archive order).
    /// - Throws: `NPYError` naming the file and the problem.
    public static func readArrays(path: String) throws(NPYError) -> [NamedTensor] {
        if try looksLikeZip(path: path) { return try readNPZ(path: path) }
        let file = path.split(separator: "/").last.map(String.init) ?? path
        let name = file.lastIndex(of: ".").flatMap { $0 > file.startIndex ? String(file[..<$0]) : nil } ?? file
        return [NamedTensor(name: name, tensor: try readNPY(path: path))]
    }

    /// Reads one `.npy` file; its data goes straight from the file into the tensor's buffer.
    /// - Throws: `NPYError` naming the file and the problem.
    public static func readNPY(path: String) throws(NPYError) -> Tensor {
        let file = try OpenFile(path: path)
        defer { file.close() }
        var decoder = NPYDecoder(source: path, totalBytes: file.size)
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 256, alignment: 16)
        defer { scratch.deallocate() }
        while decoder.header == nil {
            let want = min(decoder.headerBytesWanted, scratch.count)
            let got = try file.read(into: UnsafeMutableRawBufferPointer(rebasing: scratch[0..<want]))
            if got == 0 { break }
            try decoder.consume(UnsafeRawBufferPointer(rebasing: scratch[0..<got]))
        }
        try decoder.fillData { buffer throws(NPYError) in try file.read(into: buffer) }
        return try decoder.finish()
    }

    /// Decodes a whole `.npy` image held in memory. `source` names it in errors.
    /// - Throws: `NPYError` naming `source` and the problem.
    public static func decodeNPY(_ bytes: UnsafeRawBufferPointer, source: String) throws(NPYError) -> Tensor {
        var decoder = NPYDecoder(source: source, totalBytes: bytes.count)
        try decoder.consume(bytes)
        return try decoder.finish()
    }

    /// The `.npy` image of a tensor: header then little-endian, row-major data.
    public static func encodeNPY(_ tensor: Tensor) -> [UInt8] {
        let tensor = tensor.numpyCompatible
        var out = NPYHeader(dtype: tensor.dtype, dimensions: tensor.shape.dimensions).encoded()
        tensor.withUnsafeBytes { out.append(contentsOf: $0) }
        return out
    }

    /// Writes a tensor as a `.npy` file.
    /// - Throws: `NPYError` naming the file when it cannot be written; no partial file is left.
    public static func writeNPY(_ tensor: Tensor, path: String) throws(NPYError) {
        let tensor = tensor.numpyCompatible
        let header = NPYHeader(dtype: tensor.dtype, dimensions: tensor.shape.dimensions).encoded()
        try writeAtomically(path: path) { fd throws(NPYError) in
            let headerBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: header.count, alignment: 1)
            defer { headerBuffer.deallocate() }
            headerBuffer.copyBytes(from: header)
            try writeAll(fd, UnsafeRawBufferPointer(headerBuffer), path: path)
            try writeAll(fd, UnsafeRawBufferPointer(start: tensor.storage.pointer, count: tensor.byteCount), path: path)
        }
    }

    /// Reads every array of an `.npz` archive (stored or deflated members, ZIP64 fields as numpy writes them).
    /// - Throws: `NPYError` naming `archive.npz:member` and the problem.
    public static func readNPZ(path: String) throws(NPYError) -> [NamedTensor] {
        let file = try OpenFile(path: path)
        defer { file.close() }
        let archive = try ZipReader(path: path, fd: file.fd, size: file.size)
        var result: [NamedTensor] = []
        var seen = Set<String>()
        for member in archive.members where !member.name.hasSuffix("/") {
            let name = member.name.hasSuffix(".npy") ? String(member.name.dropLast(4)) : member.name
            // numpy keeps the last of two members with one name, other readers the first: refuse to guess.
            guard seen.insert(name).inserted else {
                throw NPYError(
                    source: path, problem: .notAnArchive("two members are named '\(name)'; rewrite the archive"))
            }
            let source = "\(path):\(member.name)"
            var decoder = NPYDecoder(source: source, totalBytes: member.uncompressedSize)
            try archive.extract(member, source: source) { chunk throws(NPYError) in try decoder.consume(chunk) }
            result.append(NamedTensor(name: name, tensor: try decoder.finish()))
        }
        return result
    }

    /// Writes arrays as an `.npz` archive, each as `<name>.npy`; deflated when `compressed`.
    /// - Throws: `NPYError` naming the file when it cannot be written; no partial file is left.
    public static func writeNPZ(_ arrays: [NamedTensor], path: String, compressed: Bool = false) throws(NPYError) {
        try writeAtomically(path: path) { fd throws(NPYError) in
            var archive = ZipWriter(fd: fd, path: path)
            for array in arrays {
                let array = NamedTensor(name: array.name, tensor: array.tensor.numpyCompatible)
                let header = NPYHeader(dtype: array.tensor.dtype, dimensions: array.tensor.shape.dimensions).encoded()
                let data = UnsafeRawBufferPointer(start: array.tensor.storage.pointer, count: array.tensor.byteCount)
                let headerBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: header.count, alignment: 1)
                defer { headerBuffer.deallocate() }
                headerBuffer.copyBytes(from: header)
                try archive.add(
                    name: array.name + ".npy", parts: [UnsafeRawBufferPointer(headerBuffer), data], deflate: compressed)
            }
            try archive.finish()
        }
    }

    /// Writes `.npz` when the path ends in `.npz`, else a single `.npy` (then `arrays` must hold exactly one).
    /// - Throws: `NPYError` when several arrays would go to one `.npy`, or the write fails.
    public static func write(_ arrays: [NamedTensor], path: String) throws(NPYError) {
        if path.hasSuffix(".npz") { return try writeNPZ(arrays, path: path) }
        guard arrays.count == 1, let only = arrays.first else {
            throw NPYError(
                source: path, problem: .io("\(arrays.count) arrays cannot go into one .npy file; use a .npz path"))
        }
        try writeNPY(only.tensor, path: path)
    }

    // MARK: - POSIX plumbing

    private static func looksLikeZip(path: String) throws(NPYError) -> Bool {
        let file = try OpenFile(path: path)
        defer { file.close() }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4, alignment: 4)
        defer { buffer.deallocate() }
        let got = try file.read(into: buffer)
        return got == 4 && Array(buffer) == [0x50, 0x4B, 0x03, 0x04]
    }

    private static func writeAtomically(path: String, _ body: (Int32) throws(NPYError) -> Void) throws(NPYError) {
        do {
            try UserFiles.writeAtomically(path: path, body)
        } catch let error as NPYError {
            throw error
        } catch let error as FileAccessError {
            throw NPYError(source: path, problem: .io(error.problem))
        } catch {
            throw NPYError(source: path, problem: .io("\(error)"))
        }
    }

    private static func writeAll(_ fd: Int32, _ buffer: UnsafeRawBufferPointer, path: String) throws(NPYError) {
        do { try UserFiles.writeAll(fd, buffer, path: path) } catch {
            throw NPYError(source: path, problem: .io(error.problem))
        }
    }
}

/// A user's file opened for reading through `UserFiles` (regular files only), with errors as `NPYError`.
private struct OpenFile {
    let file: ReadableFile
    var fd: Int32 { file.fd }
    var size: Int { file.size }

    init(path: String) throws(NPYError) {
        do { file = try UserFiles.openForReading(path) } catch {
            throw NPYError(source: path, problem: error.isMissing ? .fileNotFound : .io(error.problem))
        }
    }

    /// Reads until `buffer` is full or the file ends; returns the bytes read.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws(NPYError) -> Int {
        do { return try file.read(into: buffer) } catch {
            throw NPYError(source: file.path, problem: .io(error.problem))
        }
    }

    func close() { file.close() }
}
