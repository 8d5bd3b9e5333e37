import InferenceBench
import InferenceRuntime
import InferenceTensor

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// JSON for reports: snake_case keys; NaN and ±infinity (valid results of a model) as the strings "NaN",
/// "Infinity" and "-Infinity", since JSON has no number for them.
enum ReportJSON {
    static func encoder(pretty: Bool, snakeCase: Bool = true) -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = pretty ? [.sortedKeys, .prettyPrinted] : [.sortedKeys]
        if snakeCase { encoder.keyEncodingStrategy = .convertToSnakeCase }
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        return encoder
    }
}

/// A tensor's values as printed: floats as their shortest round-tripping decimal, integers exactly (an int64
/// above 2^53 prints every digit), booleans as 0 and 1.
enum OutputValues: Encodable {
    case float32([Float])
    case float64([Double])
    case signed([Int64])
    case unsigned([UInt64])

    init(_ tensor: Tensor) throws {
        switch tensor.dtype {
        case .float32: self = .float32(try tensor.scalars(as: Float.self))
        case .float16: self = .float32(try tensor.scalars(as: Float16.self).map { Float($0) })
        case .bfloat16: self = .float32(try tensor.scalars(as: BFloat16.self).map(\.float))
        case .float64: self = .float64(try tensor.scalars(as: Double.self))
        case .bool: self = .signed(try tensor.scalars(as: Bool.self).map { $0 ? 1 : 0 })
        case .int8: self = .signed(try tensor.scalars(as: Int8.self).map { Int64($0) })
        case .int16: self = .signed(try tensor.scalars(as: Int16.self).map { Int64($0) })
        case .int32: self = .signed(try tensor.scalars(as: Int32.self).map { Int64($0) })
        case .int64: self = .signed(try tensor.scalars(as: Int64.self))
        case .uint8: self = .unsigned(try tensor.scalars(as: UInt8.self).map { UInt64($0) })
        case .uint16: self = .unsigned(try tensor.scalars(as: UInt16.self).map { UInt64($0) })
        case .uint32: self = .unsigned(try tensor.scalars(as: UInt32.self).map { UInt64($0) })
        case .uint64: self = .unsigned(try tensor.scalars(as: UInt64.self))
        }
    }

    var count: Int {
        switch self {
        case .float32(let v): v.count
        case .float64(let v): v.count
        case .signed(let v): v.count
        case .unsigned(let v): v.count
        }
    }

    /// The values in `range` as text.
    func text(_ range: Range<Int>) -> [String] {
        switch self {
        case .float32(let v): v[range].map(Formatting.value)
        case .float64(let v): v[range].map { "\($0)" }
        case .signed(let v): v[range].map { "\($0)" }
        case .unsigned(let v): v[range].map { "\($0)" }
        }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .float32(let v): try container.encode(v)
        case .float64(let v): try container.encode(v)
        case .signed(let v): try container.encode(v)
        case .unsigned(let v): try container.encode(v)
        }
    }
}

enum Formatting {
    /// `value` with exactly `decimals` digits after the point.
    static func fixed(_ value: Double, decimals: Int) -> String { TextFormat.fixed(value, decimals: decimals) }

    /// Milliseconds with at least three significant digits and never rounded to zero:
    /// `12.346`, `0.0846`, `0.000731`.
    static func milliseconds(nanoseconds: Double) -> String { TextFormat.milliseconds(nanoseconds: nanoseconds) }

    /// A float as its shortest round-tripping decimal: `0.87`, `0.44999998`, `nan`.
    static func value(_ v: Float) -> String { "\(v)" }

    static func list(_ values: ArraySlice<Float>) -> String {
        "[" + values.map(value).joined(separator: ", ") + "]"
    }

    /// An integer with thousands separators: `1,234,567`.
    static func grouped(_ value: Int) -> String {
        let digits = String(value.magnitude)
        var out = ""
        for (index, digit) in digits.enumerated() {
            if index > 0 && (digits.count - index) % 3 == 0 { out.append(",") }
            out.append(digit)
        }
        return value < 0 ? "-" + out : out
    }

    static func bytes(_ count: Int) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(count)
        var unit = 0
        while value >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(count) B" : fixed(value, decimals: 1) + " " + units[unit]
    }
}

/// Writes a line to standard error (diagnostics never go to stdout).
func printError(_ text: String) { writeStandardError(text + "\n") }

/// Writes text to standard error as is (progress lines end in `\r`, not a newline).
func writeStandardError(_ text: String) {
    let bytes = Array(text.utf8)
    var done = 0
    while done < bytes.count {
        let n = bytes.withUnsafeBytes { buffer in
            buffer.baseAddress.map { write(2, $0 + done, buffer.count - done) } ?? 0
        }
        if n < 0 && errno == EINTR { continue }
        guard n > 0 else { return }
        done += n
    }
}

/// A one-line progress indicator on stderr for commands that run longer than a second: only when stderr is a
/// terminal (redirected output gets no control characters), and only once a second has passed.
struct Progress {
    private let enabled = isatty(2) != 0
    private let start = MonotonicClock.nanoseconds()
    private var shown = false
    /// Steps in all, when known (then a bar is drawn).
    var total: Int?

    init(total: Int?) { self.total = total }

    mutating func update(_ step: Int, _ label: String) {
        guard enabled, MonotonicClock.nanoseconds() - start > 1_000_000_000 else { return }
        if let total, total > 0 {
            let width = 24
            let done = min(width, width * step / total)
            let bar = String(repeating: "#", count: done) + String(repeating: ".", count: width - done)
            writeStandardError("\r\u{1B}[K[\(bar)] \(step)/\(total) \(label)")
        } else {
            writeStandardError("\r\u{1B}[K[\(step)] \(label)")
        }
        shown = true
    }

    mutating func finish() {
        if shown { writeStandardError("\r\u{1B}[K") }
        shown = false
    }
}
