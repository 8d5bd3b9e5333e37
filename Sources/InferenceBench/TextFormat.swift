#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Numbers as the reports print them, without Foundation's locale machinery.
public enum TextFormat {
    /// `value` with exactly `decimals` digits after the point.
    public static func fixed(_ value: Double, decimals: Int) -> String { cFormat("%.*f", Int32(decimals), value) }

    /// Milliseconds with at least three significant digits and never rounded to zero:
    /// `12.346`, `0.0846`, `0.000731`.
    public static func milliseconds(nanoseconds: Double) -> String {
        let ms = nanoseconds / 1e6
        guard ms > 0 else { return "0.000" }
        let magnitude = Int(floor(log10(ms)))
        let decimals = max(3, 2 - magnitude)
        return fixed(ms, decimals: decimals)
    }
}

/// printf-style formatting of C numbers (`"%.1f"`, `"%11.0f"`, `"%.3g"`) without Foundation's locale machinery.
public func cFormat(_ format: String, _ arguments: any CVarArg...) -> String {
    var buffer = [CChar](repeating: 0, count: 128)
    var needed = Int(withVaList(arguments) { vsnprintf(&buffer, buffer.count, format, $0) })
    if needed >= buffer.count {
        buffer = [CChar](repeating: 0, count: needed + 1)
        needed = Int(withVaList(arguments) { vsnprintf(&buffer, buffer.count, format, $0) })
    }
    return String(decoding: buffer.prefix(max(0, needed)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

extension String {
    /// Right-aligned in `width` columns (never truncated).
    public func leftPad(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
    /// Left-aligned in `width` columns (never truncated).
    public func rightPad(_ width: Int) -> String {
        count >= width ? self : self + String(repeating: " ", count: width - count)
    }
}
