import Glibc

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

enum Formatting {
    /// `value` with exactly `decimals` digits after the point.
    static func fixed(_ value: Double, decimals: Int) -> String { cFormat("%.*f", Int32(decimals), value) }

    /// Milliseconds with at least three significant digits and never rounded to zero:
    /// `12.346`, `0.0846`, `0.000731`.
    static func milliseconds(nanoseconds: Double) -> String {
        let ms = nanoseconds / 1e6
        guard ms > 0 else { return "0.000" }
        let magnitude = Int(floor(log10(ms)))
        let decimals = max(3, 2 - magnitude)
        return fixed(ms, decimals: decimals)
    }

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

/// printf-style formatting of C numbers (`"%.1f"`, `"%11.0f"`, `"%.3g"`) without Foundation's locale machinery.
func cFormat(_ format: String, _ arguments: any CVarArg...) -> String {
    var buffer = [CChar](repeating: 0, count: 128)
    var needed = Int(withVaList(arguments) { vsnprintf(&buffer, buffer.count, format, $0) })
    if needed >= buffer.count {
        buffer = [CChar](repeating: 0, count: needed + 1)
        needed = Int(withVaList(arguments) { vsnprintf(&buffer, buffer.count, format, $0) })
    }
    return String(decoding: buffer.prefix(max(0, needed)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// The folder part of a path: `a/b/c.json` → `a/b`, `c.json` → `.`.
func parentDirectory(_ path: String) -> String {
    guard let slash = path.lastIndex(of: "/") else { return "." }
    return slash == path.startIndex ? "/" : String(path[..<slash])
}

extension String {
    /// Right-aligned in `width` columns (never truncated).
    func leftPad(_ width: Int) -> String { count >= width ? self : String(repeating: " ", count: width - count) + self }
    /// Left-aligned in `width` columns (never truncated).
    func rightPad(_ width: Int) -> String {
        count >= width ? self : self + String(repeating: " ", count: width - count)
    }
}
