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

/// Renders a bench report as an SVG: latency and throughput against batch size, one line per device,
/// log-log axes, the crossover marked with a dashed line.
public enum SweepChart {
    public static let colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]

    public static func svg(_ report: BenchReport) -> String {
        let panelWidth = 420.0, panelHeight = 300.0, margin = 60.0
        let width = 2 * (panelWidth + margin) + margin
        let rowHeight = panelHeight + 2 * margin
        var out = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(rowHeight * Double(report.models.count)))" \
            font-family="Helvetica, Arial, sans-serif" font-size="12">
            <rect width="100%" height="100%" fill="white"/>

            """
        for (row, sweep) in report.models.enumerated() {
            let top = Double(row) * rowHeight + margin
            out +=
                "<text x=\"\(margin)\" y=\"\(top - 25)\" font-size=\"15\" font-weight=\"bold\">\(escape(sweep.model))</text>\n"
            out += panel(sweep, x: margin, y: top, width: panelWidth, height: panelHeight, title: "latency p50 (ms)") {
                $0.p50Ms
            }
            out += panel(
                sweep, x: 2 * margin + panelWidth + margin / 2, y: top, width: panelWidth, height: panelHeight,
                title: "throughput (samples/s)"
            ) { $0.throughputPerS }
        }
        return out + "</svg>\n"
    }

    private static func panel(
        _ sweep: BenchSweep, x: Double, y: Double, width: Double, height: Double, title: String,
        value: (BenchPoint) -> Double
    ) -> String {
        let points = sweep.points.filter { value($0) > 0 }
        guard let minBatch = points.map(\.batch).min(), let maxBatch = points.map(\.batch).max(),
            let minValue = points.map(value).min(), let maxValue = points.map(value).max()
        else { return "" }
        let bx0 = log2(Double(minBatch)), bx1 = max(log2(Double(maxBatch)), bx0 + 1)
        let vy0 = floor(log10(minValue)), vy1 = max(ceil(log10(maxValue)), vy0 + 1)
        func px(_ batch: Int) -> Double { x + (log2(Double(batch)) - bx0) / (bx1 - bx0) * width }
        func py(_ v: Double) -> Double { y + height - (log10(v) - vy0) / (vy1 - vy0) * height }
        var s =
            "<g>\n<rect x=\"\(x)\" y=\"\(y)\" width=\"\(width)\" height=\"\(height)\" fill=\"none\" stroke=\"#444\"/>\n"
        s += "<text x=\"\(x + width / 2)\" y=\"\(y - 8)\" text-anchor=\"middle\">\(title)</text>\n"
        s +=
            "<text x=\"\(x + width / 2)\" y=\"\(y + height + 36)\" text-anchor=\"middle\">batch size (log scale)</text>\n"
        var b = 1
        while b <= maxBatch {
            if b >= minBatch {
                let gx = px(b)
                s += "<line x1=\"\(gx)\" y1=\"\(y)\" x2=\"\(gx)\" y2=\"\(y + height)\" stroke=\"#e5e5e5\"/>\n"
                s += "<text x=\"\(gx)\" y=\"\(y + height + 16)\" text-anchor=\"middle\">\(b)</text>\n"
            }
            b *= 2
        }
        for decade in Int(vy0)...Int(vy1) {
            let gy = py(pow(10, Double(decade)))
            s += "<line x1=\"\(x)\" y1=\"\(gy)\" x2=\"\(x + width)\" y2=\"\(gy)\" stroke=\"#e5e5e5\"/>\n"
            s += "<text x=\"\(x - 6)\" y=\"\(gy + 4)\" text-anchor=\"end\">1e\(decade)</text>\n"
        }
        for (index, device) in sweep.devices.enumerated() {
            let color = colors[index % colors.count]
            let mine = points.filter { $0.device == device }.sorted { $0.batch < $1.batch }
            let path = mine.map { "\(px($0.batch)),\(py(value($0)))" }.joined(separator: " ")
            s += "<polyline points=\"\(path)\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\"/>\n"
            for p in mine {
                s += "<circle cx=\"\(px(p.batch))\" cy=\"\(py(value(p)))\" r=\"3.5\" fill=\"\(color)\"/>\n"
            }
            let ly = y + 18 + Double(index) * 18
            s +=
                "<line x1=\"\(x + 10)\" y1=\"\(ly - 4)\" x2=\"\(x + 30)\" y2=\"\(ly - 4)\" stroke=\"\(color)\" stroke-width=\"3\"/>\n"
            s += "<text x=\"\(x + 36)\" y=\"\(ly)\">\(escape(device))</text>\n"
        }
        for crossover in sweep.crossovers {
            if let batch = crossover.throughputBatch, batch >= minBatch {
                let cx = px(batch)
                s +=
                    "<line x1=\"\(cx)\" y1=\"\(y)\" x2=\"\(cx)\" y2=\"\(y + height)\" stroke=\"#333\" stroke-dasharray=\"5,4\"/>\n"
                s +=
                    "<text x=\"\(cx + 4)\" y=\"\(y + height - 8)\">\(escape(crossover.device)) wins from \(batch)</text>\n"
            }
        }
        return s + "</g>\n"
    }

    public static func escape(_ text: String) -> String {
        var out = ""
        for character in text {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            default: out.append(character)
            }
        }
        return out
    }
}
