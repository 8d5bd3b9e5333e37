import Foundation

enum Formatting {
    /// Milliseconds with at least three significant digits and never rounded to zero:
    /// `12.346`, `0.0846`, `0.000731`.
    static func milliseconds(nanoseconds: Double) -> String {
        let ms = nanoseconds / 1e6
        guard ms > 0 else { return "0.000" }
        let magnitude = Int(floor(log10(ms)))
        let decimals = max(3, 2 - magnitude)
        return String(format: "%.\(decimals)f", ms)
    }

    /// A float as its shortest round-tripping decimal: `0.87`, `0.44999998`, `nan`.
    static func value(_ v: Float) -> String { "\(v)" }

    static func list(_ values: ArraySlice<Float>) -> String {
        "[" + values.map(value).joined(separator: ", ") + "]"
    }

    static func bytes(_ count: Int) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(count)
        var unit = 0
        while value >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(count) B" : String(format: "%.1f %@", value, units[unit])
    }
}

/// Writes a line to standard error (diagnostics never go to stdout).
func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}
