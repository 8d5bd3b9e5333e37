/// The dict at the start of a .npy file: dtype (with byte order), memory order and shape.
public struct NPYHeader: Equatable, Sendable {
    public var dtype: DType
    /// True when multi-byte elements are stored big-endian.
    public var bigEndian: Bool
    public var fortranOrder: Bool
    public var dimensions: [Int]

    public init(dtype: DType, bigEndian: Bool = false, fortranOrder: Bool = false, dimensions: [Int]) {
        self.dtype = dtype
        self.bigEndian = bigEndian
        self.fortranOrder = fortranOrder
        self.dimensions = dimensions
    }

    static let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]  // \x93NUMPY

    /// The NumPy `descr` string, e.g. `<f4`, `|b1`.
    public var descr: String {
        let order = dtype.byteSize == 1 ? "|" : (bigEndian ? ">" : "<")
        let kind: String
        switch dtype {
        case .float16, .float32, .float64: kind = "f"
        // numpy has no bfloat16: the writers store it as float32 (exact); opaque 2-byte items otherwise.
        case .bfloat16: kind = "V"
        case .int8, .int16, .int32, .int64: kind = "i"
        case .uint8, .uint16, .uint32, .uint64: kind = "u"
        case .bool: kind = "b"
        }
        return "\(order)\(kind)\(dtype.byteSize)"
    }

    /// Parses a `descr` string into a dtype and byte order.
    /// - Throws: `NPYError.Problem.unsupportedDType` naming the descr and why.
    static func parseDescr(_ descr: String) throws(NPYError.Problem) -> (DType, bigEndian: Bool) {
        var chars = Substring(descr)
        var bigEndian = false
        if let first = chars.first, "<>|=".contains(first) {
            bigEndian = first == ">"
            chars = chars.dropFirst()
        }
        guard let kind = chars.first else { throw .unsupportedDType(descr: descr, reason: "empty type code") }
        let sizeText = chars.dropFirst()
        let unsupported: [Character: String] = [
            "O": "object arrays hold Python objects, not numbers; save a numeric array",
            "U": "string arrays are not numeric", "S": "byte-string arrays are not numeric",
            "a": "byte-string arrays are not numeric", "V": "void/structured arrays are not supported",
            "c": "complex numbers are not supported", "M": "datetime arrays are not supported",
            "m": "timedelta arrays are not supported",
        ]
        if let reason = unsupported[kind] { throw .unsupportedDType(descr: descr, reason: reason) }
        if kind == "?" && sizeText.isEmpty { return (.bool, false) }
        guard let size = Int(sizeText) else { throw .unsupportedDType(descr: descr, reason: "bad item size") }
        let dtype: DType? =
            switch (kind, size) {
            case ("f", 2): .float16
            case ("f", 4): .float32
            case ("f", 8): .float64
            case ("i", 1): .int8
            case ("i", 2): .int16
            case ("i", 4): .int32
            case ("i", 8): .int64
            case ("u", 1): .uint8
            case ("u", 2): .uint16
            case ("u", 4): .uint32
            case ("u", 8): .uint64
            case ("b", 1), ("?", 1): .bool
            default: nil
            }
        guard let dtype else {
            throw .unsupportedDType(
                descr: descr,
                reason: "no \(size)-byte '\(kind)' type (float16/32/64, int8-64, uint8-64, bool are supported)")
        }
        return (dtype, dtype.byteSize > 1 && bigEndian)
    }

    /// Parses the header dict text.
    /// - Throws: the problem found: not a dict, syntax, missing key, unsupported dtype, bad shape.
    static func parse(_ text: String) throws(NPYError.Problem) -> NPYHeader {
        var parser = PythonLiteralParser(text)
        let dict = try parser.parseDict()
        guard case .string(let descr)? = dict["descr"] else {
            if case .list? = dict["descr"] {
                throw .unsupportedDType(descr: "[...]", reason: "structured (record) dtypes are not supported")
            }
            throw dict["descr"] == nil ? .missingKey("descr") : .headerSyntax("'descr' is not a string")
        }
        guard case .bool(let fortran)? = dict["fortran_order"] else {
            throw dict["fortran_order"] == nil
                ? .missingKey("fortran_order") : .headerSyntax("'fortran_order' is not True/False")
        }
        guard case .tuple(let dimensions)? = dict["shape"] else {
            throw dict["shape"] == nil ? .missingKey("shape") : .badShape("'shape' is not a tuple of integers")
        }
        let (dtype, bigEndian) = try parseDescr(descr)
        return NPYHeader(dtype: dtype, bigEndian: bigEndian, fortranOrder: fortran, dimensions: dimensions)
    }

    /// The complete preamble (magic, version, length, dict, padding, newline), padded to 64 bytes.
    public func encoded() -> [UInt8] {
        let shapeText: String =
            switch dimensions.count {
            case 0: "()"
            case 1: "(\(dimensions[0]),)"
            default: "(" + dimensions.map(String.init).joined(separator: ", ") + ")"
            }
        let dict = "{'descr': '\(descr)', 'fortran_order': \(fortranOrder ? "True" : "False"), 'shape': \(shapeText), }"
        var body = Array(dict.utf8)
        // Version 1.0 has a 2-byte length; larger headers need 2.0 (4-byte length).
        let version1Prefix = 6 + 2 + 2
        let useVersion2 = body.count + 1 + 64 + version1Prefix > Int(UInt16.max)
        let prefix = useVersion2 ? 12 : version1Prefix
        let total = (prefix + body.count + 1 + 63) / 64 * 64
        body += [UInt8](repeating: 0x20, count: total - prefix - body.count - 1)
        body.append(0x0A)
        var out = Self.magic
        if useVersion2 {
            out += [2, 0]
            let length = UInt32(body.count)
            out += (0..<4).map { UInt8(truncatingIfNeeded: length >> (8 * $0)) }
        } else {
            out += [1, 0]
            let length = UInt16(body.count)
            out += [UInt8(truncatingIfNeeded: length), UInt8(truncatingIfNeeded: length >> 8)]
        }
        return out + body
    }
}

/// A parser for the small subset of Python literals that .npy headers use:
/// a dict of string keys to strings, booleans, tuples of non-negative integers and (rejected) lists.
struct PythonLiteralParser {
    enum Value: Equatable {
        case string(String)
        case bool(Bool)
        case tuple([Int])
        case list
        case none
    }

    private let bytes: [UInt8]
    private var index = 0

    init(_ text: String) { bytes = Array(text.utf8) }

    private mutating func skipSpace() {
        while index < bytes.count,
            bytes[index] == 0x20 || bytes[index] == 0x0A || bytes[index] == 0x09 || bytes[index] == 0x0D
        {
            index += 1
        }
    }

    private mutating func expect(_ byte: UInt8, _ what: String) throws(NPYError.Problem) {
        skipSpace()
        guard index < bytes.count, bytes[index] == byte else { throw .headerSyntax("expected \(what)") }
        index += 1
    }

    private mutating func peek() -> UInt8? {
        skipSpace()
        return index < bytes.count ? bytes[index] : nil
    }

    mutating func parseDict() throws(NPYError.Problem) -> [String: Value] {
        guard peek() == UInt8(ascii: "{") else { throw .headerNotDict }
        index += 1
        var dict: [String: Value] = [:]
        while true {
            if peek() == UInt8(ascii: "}") { index += 1; break }
            guard case .string(let key) = try parseValue() else { throw .headerSyntax("dict keys must be strings") }
            try expect(UInt8(ascii: ":"), "':' after key '\(key)'")
            dict[key] = try parseValue()
            if peek() == UInt8(ascii: ",") { index += 1; continue }
            try expect(UInt8(ascii: "}"), "',' or '}' in dict")
            break
        }
        skipSpace()
        guard index == bytes.count else { throw .headerSyntax("unexpected text after the dict") }
        return dict
    }

    private mutating func parseValue() throws(NPYError.Problem) -> Value {
        guard let c = peek() else { throw .headerSyntax("unexpected end of header") }
        switch c {
        case UInt8(ascii: "'"), UInt8(ascii: "\""):
            return .string(try parseString(quote: c))
        case UInt8(ascii: "("):
            return .tuple(try parseTuple())
        case UInt8(ascii: "["):
            try skipBracketed()
            return .list
        default:
            let start = index
            while index < bytes.count,
                (bytes[index] >= 0x41 && bytes[index] <= 0x5A) || (bytes[index] >= 0x61 && bytes[index] <= 0x7A)
            {
                index += 1
            }
            switch String(decoding: bytes[start..<index], as: UTF8.self) {
            case "True": return .bool(true)
            case "False": return .bool(false)
            case "None": return .none
            default: throw .headerSyntax("unexpected value at byte \(start)")
            }
        }
    }

    private mutating func parseString(quote: UInt8) throws(NPYError.Problem) -> String {
        index += 1
        var out: [UInt8] = []
        while index < bytes.count, bytes[index] != quote {
            if bytes[index] == UInt8(ascii: "\\") {
                index += 1
                guard index < bytes.count else { break }
            }
            out.append(bytes[index])
            index += 1
        }
        guard index < bytes.count else { throw .headerSyntax("unterminated string") }
        index += 1
        return String(decoding: out, as: UTF8.self)
    }

    private mutating func parseTuple() throws(NPYError.Problem) -> [Int] {
        index += 1
        var values: [Int] = []
        while true {
            guard let c = peek() else { throw .badShape("unterminated tuple") }
            if c == UInt8(ascii: ")") { index += 1; return values }
            guard c >= 0x30 && c <= 0x39 else {
                throw .badShape(c == UInt8(ascii: "-") ? "negative dimension" : "dimensions must be integers")
            }
            var value = 0
            while index < bytes.count, bytes[index] >= 0x30, bytes[index] <= 0x39 {
                let (times10, o1) = value.multipliedReportingOverflow(by: 10)
                let (sum, o2) = times10.addingReportingOverflow(Int(bytes[index] - 0x30))
                guard !o1, !o2 else { throw .badShape("dimension does not fit in 64 bits") }
                value = sum
                index += 1
            }
            if index < bytes.count, bytes[index] == UInt8(ascii: "L") { index += 1 }  // Python 2 long
            values.append(value)
            if peek() == UInt8(ascii: ",") { index += 1; continue }
            guard peek() == UInt8(ascii: ")") else { throw .badShape("expected ',' or ')' in shape") }
        }
    }

    private mutating func skipBracketed() throws(NPYError.Problem) {
        var depth = 0
        var quote: UInt8?
        while index < bytes.count {
            let c = bytes[index]
            index += 1
            if let q = quote {
                if c == q { quote = nil }
                continue
            }
            switch c {
            case UInt8(ascii: "'"), UInt8(ascii: "\""): quote = c
            case UInt8(ascii: "["), UInt8(ascii: "("): depth += 1
            case UInt8(ascii: "]"), UInt8(ascii: ")"):
                depth -= 1
                if depth == 0 { return }
            default: break
            }
        }
        throw .headerSyntax("unterminated list")
    }
}
