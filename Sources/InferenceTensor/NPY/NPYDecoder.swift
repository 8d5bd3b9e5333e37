/// Decodes one .npy stream fed in chunks of any size: the preamble and header first, then the data,
/// which lands directly in the tensor's buffer (no intermediate copy of the whole file).
///
/// Use: `consume(_:)` for each chunk (or `fillData` to read straight into the buffer), then `finish()`.
struct NPYDecoder {
    let source: String
    /// Total bytes of the stream when known in advance; lets absurd shapes fail before any allocation.
    let totalBytes: Int?

    private var preamble: [UInt8] = []
    private var headerLength: Int?
    private(set) var header: NPYHeader?
    /// Created by the decoder and never shared until `finish`, so writing through its storage is safe.
    private var tensor: Tensor?
    private var dataBytes = 0
    private var expectedDataBytes = 0
    private var consumedBytes = 0

    init(source: String, totalBytes: Int?) {
        self.source = source
        self.totalBytes = totalBytes
    }

    private func fail(_ problem: NPYError.Problem) -> NPYError { NPYError(source: source, problem: problem) }

    private var lengthFieldSize: Int { preamble.count > 6 && preamble[6] == 1 ? 2 : 4 }

    /// Bytes still needed before the header is complete; 0 once it is parsed.
    var headerBytesWanted: Int {
        if header != nil { return 0 }
        guard preamble.count >= 8 else { return 10 - preamble.count }
        guard let headerLength else { return 8 + lengthFieldSize - preamble.count }
        return 8 + lengthFieldSize + headerLength - preamble.count
    }

    /// Feeds the next bytes of the stream.
    /// - Throws: `NPYError` as soon as the bytes seen so far cannot be a valid file.
    mutating func consume(_ chunk: UnsafeRawBufferPointer) throws(NPYError) {
        var offset = 0
        while offset < chunk.count && header == nil {
            let take = min(headerBytesWanted, chunk.count - offset)
            preamble.append(contentsOf: chunk[offset..<(offset + take)])
            offset += take
            consumedBytes += take
            try advanceHeader()
        }
        guard offset < chunk.count, let base = chunk.baseAddress else { return }
        let rest = chunk.count - offset
        let room = expectedDataBytes - dataBytes
        guard rest <= room else {
            throw fail(.trailingData(expectedBytes: expectedDataBytes, actualBytes: dataBytes + rest))
        }
        fillData { buffer in
            buffer.baseAddress?.copyMemory(from: base + offset, byteCount: rest)
            return rest
        }
    }

    private mutating func advanceHeader() throws(NPYError) {
        let magicSeen = min(6, preamble.count)
        guard preamble.prefix(magicSeen).elementsEqual(NPYHeader.magic.prefix(magicSeen)) else {
            throw fail(.badMagic)
        }
        if preamble.count >= 8 && headerLength == nil {
            let (major, minor) = (preamble[6], preamble[7])
            guard (1...3).contains(major) && minor == 0 else {
                throw fail(.unsupportedVersion(major: major, minor: minor))
            }
            if preamble.count >= 8 + lengthFieldSize {
                var length = 0
                for i in 0..<lengthFieldSize { length |= Int(preamble[8 + i]) << (8 * i) }
                headerLength = length
                if let totalBytes, 8 + lengthFieldSize + length > totalBytes { throw fail(.truncatedHeader) }
            }
        }
        guard let headerLength, preamble.count == 8 + lengthFieldSize + headerLength else { return }
        let body = preamble[(preamble.count - headerLength)...]
        // Versions 1 and 2 are latin-1, version 3 is UTF-8; the dict itself is ASCII either way.
        let text =
            preamble[6] == 3
            ? String(decoding: body, as: UTF8.self)
            : String(String.UnicodeScalarView(body.map { Unicode.Scalar($0) }))
        let parsed: NPYHeader
        do { parsed = try NPYHeader.parse(text) } catch { throw fail(error) }
        try startData(parsed)
    }

    private mutating func startData(_ parsed: NPYHeader) throws(NPYError) {
        let bytes: Int
        do { bytes = try Tensor.byteCount(dtype: parsed.dtype, dimensions: parsed.dimensions) } catch {
            throw fail(.absurdSize(dimensions: parsed.dimensions))
        }
        if let totalBytes {
            let available = totalBytes - consumedBytes
            if bytes > available { throw fail(.truncatedData(expectedBytes: bytes, actualBytes: available)) }
        }
        do {
            tensor = try Tensor(uninitialized: parsed.dtype, shape: Shape(parsed.dimensions))
        } catch {
            throw fail(.allocationFailed(bytes: bytes))
        }
        header = parsed
        expectedDataBytes = bytes
    }

    /// Bytes of data still expected after the header.
    var dataBytesWanted: Int { header == nil ? 0 : expectedDataBytes - dataBytes }

    /// Lets the caller write the next data bytes straight into the tensor's buffer.
    /// `body` gets the unfilled part of the buffer (possibly empty) and returns how many bytes it wrote.
    mutating func fillData<E: Error>(_ body: (UnsafeMutableRawBufferPointer) throws(E) -> Int) throws(E) {
        guard let tensor else { return }
        let unfilled = UnsafeMutableRawBufferPointer(
            start: tensor.storage.pointer + dataBytes, count: expectedDataBytes - dataBytes)
        let written = try body(unfilled)
        assert(written <= unfilled.count)
        dataBytes += written
        consumedBytes += written
    }

    /// Ends the stream: checks that all data arrived, then fixes byte order and memory order.
    /// - Throws: `truncatedHeader`/`truncatedData` when the stream ended early, `trailingData` when bytes remain.
    mutating func finish() throws(NPYError) -> Tensor {
        guard let header, let tensor else {
            if preamble.count < 6 { throw fail(preamble.isEmpty ? .badMagic : .truncatedHeader) }
            throw fail(.truncatedHeader)
        }
        guard dataBytes == expectedDataBytes else {
            throw fail(.truncatedData(expectedBytes: expectedDataBytes, actualBytes: dataBytes))
        }
        if let totalBytes, consumedBytes < totalBytes {
            throw fail(
                .trailingData(
                    expectedBytes: expectedDataBytes, actualBytes: expectedDataBytes + totalBytes - consumedBytes))
        }
        let buffer = UnsafeMutableRawBufferPointer(start: tensor.storage.pointer, count: expectedDataBytes)
        if header.bigEndian { NPYByteOrder.swapInPlace(buffer, elementSize: header.dtype.byteSize) }
        if header.dtype == .bool { NPYByteOrder.normalizeBools(buffer) }
        if header.fortranOrder && header.dimensions.count > 1 && tensor.elementCount > 1 {
            do { return try NPYByteOrder.fortranToRowMajor(tensor) } catch {
                throw fail(.allocationFailed(bytes: expectedDataBytes))
            }
        }
        return tensor
    }
}
