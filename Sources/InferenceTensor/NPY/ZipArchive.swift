import SystemZlib

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// One member of a ZIP archive, as its central directory describes it.
struct ZipMember {
    var name: String
    /// 0 = stored, 8 = deflated.
    var method: UInt16
    var crc32: UInt32
    var compressedSize: Int
    var uncompressedSize: Int
    var localHeaderOffset: Int
}

/// Reads the ZIP archives NumPy writes (`np.savez`, `np.savez_compressed`): stored or deflated members,
/// ZIP64 sizes and offsets, one disk. Bytes come through `pread`, so a member streams into its consumer
/// without the archive ever being held in memory; every size and offset is checked against the file
/// before it is used, and every member's CRC-32 is verified.
struct ZipReader {
    let path: String
    let fd: Int32
    let size: Int
    private(set) var members: [ZipMember] = []

    init(path: String, fd: Int32, size: Int) throws(NPYError) {
        self.path = path
        self.fd = fd
        self.size = size
        members = try readCentralDirectory()
    }

    private func fail(_ detail: String) -> NPYError { NPYError(source: path, problem: .notAnArchive(detail)) }

    /// Reads exactly `count` bytes at `offset`, or fails naming what was being read.
    private func bytes(at offset: Int, count: Int, _ what: String) throws(NPYError) -> [UInt8] {
        guard offset >= 0, count >= 0, offset <= size, count <= size - offset else {
            throw fail("the \(what) lies outside the file (offset \(offset), \(count) bytes, file \(size) bytes)")
        }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: count, alignment: 1)
        defer { buffer.deallocate() }
        guard try readFully(buffer, at: offset) == count else { throw fail("the file ended while reading the \(what)") }
        return Array(buffer)
    }

    private func readFully(_ buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws(NPYError) -> Int {
        var done = 0
        while done < buffer.count, let base = buffer.baseAddress {
            let n = pread(fd, base + done, buffer.count - done, off_t(offset + done))
            if n < 0 {
                if errno == EINTR { continue }
                throw NPYError(source: path, problem: .io("read failed: \(String(cString: strerror(errno)))"))
            }
            if n == 0 { break }
            done += n
        }
        return done
    }

    private func readCentralDirectory() throws(NPYError) -> [ZipMember] {
        guard size >= 22 else { throw fail("\(size) bytes is too short for a zip archive") }
        // The end-of-central-directory record is the last 22 bytes plus a comment of up to 65535.
        let tailStart = max(0, size - (22 + 0xFFFF))
        let tail = try bytes(at: tailStart, count: size - tailStart, "end of the archive")
        var found: Int?
        var index = tail.count - 22
        while index >= 0 {
            if tail.u32(index) == 0x0605_4B50 && index + 22 + Int(tail.u16(index + 20)) <= tail.count {
                found = index
                break
            }
            index -= 1
        }
        guard let eocd = found else { throw fail("no end-of-central-directory record") }
        var count = Int(tail.u16(eocd + 10))
        var directorySize = Int(tail.u32(eocd + 12))
        var directoryOffset = Int(tail.u32(eocd + 16))
        guard tail.u16(eocd + 4) == 0 && tail.u16(eocd + 6) == 0 else {
            throw fail("multi-disk archives are not supported")
        }
        if count == 0xFFFF || directorySize == 0xFFFF_FFFF || directoryOffset == 0xFFFF_FFFF {
            // ZIP64: a locator just before the record points at the ZIP64 end record.
            let locatorAt = tailStart + eocd - 20
            let locator = try bytes(at: locatorAt, count: 20, "ZIP64 locator")
            guard locator.u32(0) == 0x0706_4B50 else { throw fail("ZIP64 fields without a ZIP64 locator") }
            let record = try bytes(at: try locator.offset64(8, fail), count: 56, "ZIP64 end record")
            guard record.u32(0) == 0x0606_4B50 else { throw fail("the ZIP64 locator points at no ZIP64 end record") }
            count = try record.offset64(32, fail)
            directorySize = try record.offset64(40, fail)
            directoryOffset = try record.offset64(48, fail)
        }
        guard count <= directorySize / 46 + 1 else {
            throw fail("the directory claims \(count) members in \(directorySize) bytes")
        }
        let directory = try bytes(at: directoryOffset, count: directorySize, "central directory")
        var members: [ZipMember] = []
        var at = 0
        for _ in 0..<count {
            guard at + 46 <= directory.count, directory.u32(at) == 0x0201_4B50 else {
                throw fail("central directory entry \(members.count + 1) is damaged")
            }
            let flags = directory.u16(at + 8)
            let nameLength = Int(directory.u16(at + 28))
            let extraLength = Int(directory.u16(at + 30))
            let commentLength = Int(directory.u16(at + 32))
            let end = at + 46 + nameLength + extraLength + commentLength
            guard end <= directory.count else { throw fail("central directory entry \(members.count + 1) is cut off") }
            let name = String(decoding: directory[(at + 46)..<(at + 46 + nameLength)], as: UTF8.self)
            guard flags & 1 == 0 else { throw fail("member '\(name)' is encrypted") }
            var member = ZipMember(
                name: name, method: directory.u16(at + 10), crc32: directory.u32(at + 16),
                compressedSize: Int(directory.u32(at + 20)), uncompressedSize: Int(directory.u32(at + 24)),
                localHeaderOffset: Int(directory.u32(at + 42)))
            try applyZip64(
                Array(directory[(at + 46 + nameLength)..<(at + 46 + nameLength + extraLength)]), to: &member)
            members.append(member)
            at = end
        }
        return members
    }

    /// Replaces the 0xFFFFFFFF size and offset fields with the 64-bit values of the ZIP64 extra field.
    private func applyZip64(_ extra: [UInt8], to member: inout ZipMember) throws(NPYError) {
        var at = 0
        while at + 4 <= extra.count {
            let id = extra.u16(at)
            let length = Int(extra.u16(at + 2))
            guard at + 4 + length <= extra.count else { break }
            if id == 1 {
                var field = at + 4
                func next() throws(NPYError) -> Int {
                    guard field + 8 <= at + 4 + length else { throw fail("member '\(member.name)': short ZIP64 field") }
                    defer { field += 8 }
                    return try extra.offset64(field, fail)
                }
                if member.uncompressedSize == 0xFFFF_FFFF { member.uncompressedSize = try next() }
                if member.compressedSize == 0xFFFF_FFFF { member.compressedSize = try next() }
                if member.localHeaderOffset == 0xFFFF_FFFF { member.localHeaderOffset = try next() }
                return
            }
            at += 4 + length
        }
    }

    /// Streams a member's uncompressed bytes to `sink` in chunks, then checks its size and CRC-32.
    func extract(
        _ member: ZipMember, source: String, into sink: (UnsafeRawBufferPointer) throws(NPYError) -> Void
    ) throws(NPYError) {
        func bad(_ detail: String) -> NPYError { NPYError(source: source, problem: .notAnArchive(detail)) }
        let local = try bytes(at: member.localHeaderOffset, count: 30, "local header of '\(member.name)'")
        guard local.u32(0) == 0x0403_4B50 else { throw bad("the member's local header is damaged") }
        let dataStart = member.localHeaderOffset + 30 + Int(local.u16(26)) + Int(local.u16(28))
        guard dataStart <= size, member.compressedSize <= size - dataStart else {
            throw bad("the member's data runs past the end of the file")
        }
        var crc: UInt = crc32(0, nil, 0)
        var produced = 0
        let chunk = 1 << 18
        let input = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 16)
        defer { input.deallocate() }
        func deliver(_ buffer: UnsafeRawBufferPointer) throws(NPYError) {
            guard buffer.count <= member.uncompressedSize - produced else {
                throw bad("the member holds more than its declared \(member.uncompressedSize) bytes")
            }
            produced += buffer.count
            crc = crc32(crc, buffer.baseAddress?.assumingMemoryBound(to: Bytef.self), uInt(buffer.count))
            try sink(buffer)
        }
        switch member.method {
        case 0:
            guard member.compressedSize == member.uncompressedSize else {
                throw bad("a stored member whose sizes differ (\(member.compressedSize) vs \(member.uncompressedSize))")
            }
            var offset = 0
            while offset < member.compressedSize {
                let want = min(chunk, member.compressedSize - offset)
                let got = try readFully(
                    UnsafeMutableRawBufferPointer(rebasing: input[0..<want]), at: dataStart + offset)
                guard got == want else { throw bad("the file ended inside the member") }
                try deliver(UnsafeRawBufferPointer(rebasing: input[0..<want]))
                offset += want
            }
        case 8:
            try inflate(from: dataStart, count: member.compressedSize, input: input, bad: bad, deliver: deliver)
        default:
            throw bad("compression method \(member.method) is not supported (only stored and deflated)")
        }
        guard produced == member.uncompressedSize else {
            throw bad("the member holds \(produced) bytes, its directory entry says \(member.uncompressedSize)")
        }
        guard UInt32(truncatingIfNeeded: crc) == member.crc32 else { throw bad("CRC-32 mismatch: the data is corrupt") }
    }

    private func inflate(
        from start: Int, count: Int, input: UnsafeMutableRawBufferPointer, bad: (String) -> NPYError,
        deliver: (UnsafeRawBufferPointer) throws(NPYError) -> Void
    ) throws(NPYError) {
        var stream = z_stream()
        guard inflateInit2_(&stream, -15, zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw NPYError(source: path, problem: .allocationFailed(bytes: MemoryLayout<z_stream>.size))
        }
        defer { inflateEnd(&stream) }
        let output = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 18, alignment: 16)
        defer { output.deallocate() }
        var offset = 0
        var finished = false
        while !finished {
            if stream.avail_in == 0 {
                guard offset < count else { throw bad("the compressed data ends before the deflate stream does") }
                let want = min(input.count, count - offset)
                let got = try readFully(UnsafeMutableRawBufferPointer(rebasing: input[0..<want]), at: start + offset)
                guard got == want else { throw bad("the file ended inside the member") }
                offset += want
                stream.next_in = input.baseAddress?.assumingMemoryBound(to: Bytef.self)
                stream.avail_in = uInt(want)
            }
            stream.next_out = output.baseAddress?.assumingMemoryBound(to: Bytef.self)
            stream.avail_out = uInt(output.count)
            let status = SystemZlib.inflate(&stream, Z_NO_FLUSH)
            switch status {
            case Z_OK, Z_BUF_ERROR: break
            case Z_STREAM_END: finished = true
            default:
                let message = stream.msg.map { String(cString: $0) } ?? "status \(status)"
                throw bad("the deflated data is corrupt (\(message))")
            }
            let made = output.count - Int(stream.avail_out)
            if made > 0 { try deliver(UnsafeRawBufferPointer(rebasing: output[0..<made])) }
            if status == Z_BUF_ERROR && made == 0 && stream.avail_in == 0 && offset >= count {
                throw bad("the compressed data ends before the deflate stream does")
            }
        }
    }
}

/// Writes a ZIP archive to a file descriptor, member by member, as NumPy's `savez` would: stored or
/// deflated, with ZIP64 fields only where a size or offset needs them.
struct ZipWriter {
    let fd: Int32
    let path: String
    private var offset = 0
    private var directory: [UInt8] = []
    private var count = 0

    init(fd: Int32, path: String) {
        self.fd = fd
        self.path = path
    }

    private func ioError(_ what: String) -> NPYError {
        NPYError(source: path, problem: .io("\(what): \(String(cString: strerror(errno)))"))
    }

    private func write(_ bytes: UnsafeRawBufferPointer, at position: Int) throws(NPYError) {
        var done = 0
        while done < bytes.count, let base = bytes.baseAddress {
            let n = pwrite(fd, base + done, bytes.count - done, off_t(position + done))
            if n < 0 {
                if errno == EINTR { continue }
                throw ioError("write failed")
            }
            done += n
        }
    }

    private func write(_ bytes: [UInt8], at position: Int) throws(NPYError) {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 1)
        defer { buffer.deallocate() }
        buffer.copyBytes(from: bytes)
        try write(UnsafeRawBufferPointer(buffer), at: position)
    }

    /// Adds a member whose content is `parts` concatenated (so a header and a tensor need not be joined).
    mutating func add(name: String, parts: [UnsafeRawBufferPointer], deflate: Bool) throws(NPYError) {
        let total = parts.reduce(0) { $0 + $1.count }
        let nameBytes = Array(name.utf8)
        // Decided before the data is written, with room for deflate's worst-case growth.
        let localZip64 = total >= 0xFF00_0000
        var header = [UInt8]()
        header.put32(0x0403_4B50)
        header.put16(localZip64 ? 45 : 20)
        header.put16(0)
        header.put16(deflate ? 8 : 0)
        header.put32(Self.dosTimestamp())
        header.put32(0)  // CRC-32, sizes: filled in after the data.
        header.put32(0)
        header.put32(0)
        header.put16(UInt16(nameBytes.count))
        header.put16(localZip64 ? 20 : 0)
        header.append(contentsOf: nameBytes)
        if localZip64 {
            header.put16(1)
            header.put16(16)
            header.put64(0)
            header.put64(0)
        }
        let headerOffset = offset
        try write(header, at: offset)
        offset += header.count
        var crc: UInt = crc32(0, nil, 0)
        for part in parts {
            crc = crc32(crc, part.baseAddress?.assumingMemoryBound(to: Bytef.self), uInt(part.count))
        }
        let compressed = deflate ? try writeDeflated(parts) : try writeStored(parts)
        // Patch the local header now that CRC and sizes are known.
        var patch = [UInt8]()
        patch.put32(UInt32(truncatingIfNeeded: crc))
        patch.put32(localZip64 ? 0xFFFF_FFFF : UInt32(compressed))
        patch.put32(localZip64 ? 0xFFFF_FFFF : UInt32(total))
        try write(patch, at: headerOffset + 14)
        if localZip64 {
            var sizes = [UInt8]()
            sizes.put64(UInt64(total))
            sizes.put64(UInt64(compressed))
            try write(sizes, at: headerOffset + 30 + nameBytes.count + 4)
        }
        let zip64 = localZip64 || compressed >= 0xFFFF_FFFF || headerOffset >= 0xFFFF_FFFF
        directory.put32(0x0201_4B50)
        directory.put16(zip64 ? 0x032D : 0x0314)  // made by Unix, spec 2.0 (4.5 with ZIP64)
        directory.put16(zip64 ? 45 : 20)
        directory.put16(0)
        directory.put16(deflate ? 8 : 0)
        directory.append(contentsOf: header[10..<14])
        directory.put32(UInt32(truncatingIfNeeded: crc))
        directory.put32(zip64 ? 0xFFFF_FFFF : UInt32(compressed))
        directory.put32(zip64 ? 0xFFFF_FFFF : UInt32(total))
        directory.put16(UInt16(nameBytes.count))
        directory.put16(zip64 ? 28 : 0)
        directory.put16(0)
        directory.put16(0)
        directory.put16(0)
        directory.put32(0o100644 << 16)
        directory.put32(zip64 ? 0xFFFF_FFFF : UInt32(headerOffset))
        directory.append(contentsOf: nameBytes)
        if zip64 {
            directory.put16(1)
            directory.put16(24)
            directory.put64(UInt64(total))
            directory.put64(UInt64(compressed))
            directory.put64(UInt64(headerOffset))
        }
        count += 1
    }

    private mutating func writeStored(_ parts: [UnsafeRawBufferPointer]) throws(NPYError) -> Int {
        var written = 0
        for part in parts {
            try write(part, at: offset)
            offset += part.count
            written += part.count
        }
        return written
    }

    private mutating func writeDeflated(_ parts: [UnsafeRawBufferPointer]) throws(NPYError) -> Int {
        var stream = z_stream()
        guard
            deflateInit2_(
                &stream, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY, zlibVersion(),
                Int32(MemoryLayout<z_stream>.size)) == Z_OK
        else { throw NPYError(source: path, problem: .allocationFailed(bytes: MemoryLayout<z_stream>.size)) }
        defer { deflateEnd(&stream) }
        let output = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 18, alignment: 16)
        defer { output.deallocate() }
        var written = 0
        for (index, part) in parts.enumerated() {
            let last = index == parts.count - 1
            var consumed = 0
            var status = Z_OK
            repeat {
                // avail_in is 32-bit: feed huge parts in slices.
                if stream.avail_in == 0 && consumed < part.count {
                    let slice = min(part.count - consumed, 1 << 30)
                    stream.next_in = UnsafeMutablePointer(
                        mutating: part.baseAddress.map { ($0 + consumed).assumingMemoryBound(to: Bytef.self) })
                    stream.avail_in = uInt(slice)
                    consumed += slice
                }
                stream.next_out = output.baseAddress?.assumingMemoryBound(to: Bytef.self)
                stream.avail_out = uInt(output.count)
                let finishing = last && consumed == part.count
                status = SystemZlib.deflate(&stream, finishing ? Z_FINISH : Z_NO_FLUSH)
                guard status == Z_OK || status == Z_STREAM_END || status == Z_BUF_ERROR else {
                    throw NPYError(source: path, problem: .io("compression failed (zlib status \(status))"))
                }
                let made = output.count - Int(stream.avail_out)
                try write(UnsafeRawBufferPointer(rebasing: output[0..<made]), at: offset)
                offset += made
                written += made
                if !finishing && stream.avail_in == 0 && consumed == part.count { break }
            } while status != Z_STREAM_END
        }
        if parts.isEmpty {
            // An empty member still needs a (two-byte) final deflate block.
            stream.next_out = output.baseAddress?.assumingMemoryBound(to: Bytef.self)
            stream.avail_out = uInt(output.count)
            _ = SystemZlib.deflate(&stream, Z_FINISH)
            let made = output.count - Int(stream.avail_out)
            try write(UnsafeRawBufferPointer(rebasing: output[0..<made]), at: offset)
            offset += made
            written += made
        }
        return written
    }

    /// Writes the central directory and the end records.
    mutating func finish() throws(NPYError) {
        let directoryOffset = offset
        try write(directory, at: offset)
        offset += directory.count
        var end = [UInt8]()
        let zip64 = count >= 0xFFFF || directory.count >= 0xFFFF_FFFF || directoryOffset >= 0xFFFF_FFFF
        if zip64 {
            let recordOffset = offset
            end.put32(0x0606_4B50)
            end.put64(44)
            end.put16(0x032D)
            end.put16(45)
            end.put32(0)
            end.put32(0)
            end.put64(UInt64(count))
            end.put64(UInt64(count))
            end.put64(UInt64(directory.count))
            end.put64(UInt64(directoryOffset))
            end.put32(0x0706_4B50)
            end.put32(0)
            end.put64(UInt64(recordOffset))
            end.put32(1)
        }
        end.put32(0x0605_4B50)
        end.put16(0)
        end.put16(0)
        end.put16(zip64 ? 0xFFFF : UInt16(count))
        end.put16(zip64 ? 0xFFFF : UInt16(count))
        end.put32(zip64 ? 0xFFFF_FFFF : UInt32(directory.count))
        end.put32(zip64 ? 0xFFFF_FFFF : UInt32(directoryOffset))
        end.put16(0)
        try write(end, at: offset)
        offset += end.count
    }

    /// The current UTC time as MS-DOS time (low 16 bits) and date (high 16 bits).
    private static func dosTimestamp() -> UInt32 {
        var now = time(nil)
        var parts = tm()
        guard gmtime_r(&now, &parts) != nil, parts.tm_year >= 80 else { return 0x0021_0000 }
        let date = UInt32(parts.tm_year - 80) << 9 | UInt32(parts.tm_mon + 1) << 5 | UInt32(parts.tm_mday)
        let clock = UInt32(parts.tm_hour) << 11 | UInt32(parts.tm_min) << 5 | UInt32(parts.tm_sec / 2)
        return date << 16 | clock
    }
}

extension [UInt8] {
    fileprivate func u16(_ at: Int) -> UInt16 { UInt16(self[at]) | UInt16(self[at + 1]) << 8 }
    fileprivate func u32(_ at: Int) -> UInt32 { UInt32(u16(at)) | UInt32(u16(at + 2)) << 16 }
    fileprivate func u64(_ at: Int) -> UInt64 { UInt64(u32(at)) | UInt64(u32(at + 4)) << 32 }
    /// A 64-bit size or offset that must fit an `Int`.
    fileprivate func offset64(_ at: Int, _ fail: (String) -> NPYError) throws(NPYError) -> Int {
        let value = u64(at)
        guard value <= UInt64(Int.max) else { throw fail("a ZIP64 size or offset of \(value) bytes") }
        return Int(value)
    }
    fileprivate mutating func put16(_ value: UInt16) { append(UInt8(value & 0xFF)); append(UInt8(value >> 8)) }
    fileprivate mutating func put32(_ value: UInt32) {
        put16(UInt16(value & 0xFFFF))
        put16(UInt16(value >> 16))
    }
    fileprivate mutating func put64(_ value: UInt64) {
        put32(UInt32(value & 0xFFFF_FFFF))
        put32(UInt32(value >> 32))
    }
}
