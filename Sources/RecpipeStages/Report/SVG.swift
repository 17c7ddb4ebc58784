import Foundation

/// Small SVG charts drawn as text: no scripts, no fonts to fetch, no network.
enum SVG {
    struct Series {
        var name: String
        var points: [(x: Double, y: Double)]
        var color: String
        /// Points as dots, without a line between them.
        var dotsOnly = false
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    static func number(_ v: Double) -> String {
        if v == 0 { return "0" }
        if v == v.rounded(), abs(v) < 1e7 { return String(Int(v)) }
        if abs(v) >= 1000 || abs(v) < 0.01 { return String(format: "%.3g", v) }
        return String(format: abs(v) >= 10 ? "%.1f" : "%.3f", v)
    }

    /// A line chart with axes, ticks at the ends and a legend. `logY` plots log10(y).
    static func lineChart(title: String, xLabel: String, yLabel: String, series: [Series], width: Double = 560,
                          height: Double = 260, logY: Bool = false, verticalMarks: [(x: Double, label: String)] = [],
                          circled: [(x: Double, y: Double, label: String)] = []) -> String {
        let left = 64.0, right = 16.0, top = 28.0, bottom = 40.0
        let plotW = width - left - right, plotH = height - top - bottom
        let transform: (Double) -> Double = logY ? { log10(max($0, 1e-12)) } : { $0 }
        let xs = series.flatMap { $0.points.map(\.x) }, ys = series.flatMap { $0.points.map { transform($0.y) } }
        guard let x0 = xs.min(), let x1 = xs.max(), let y0 = ys.min(), let y1 = ys.max() else {
            return "<p class=\"empty\">\(escape(title)): no data</p>"
        }
        let xSpan = x1 > x0 ? x1 - x0 : 1, ySpan = y1 > y0 ? y1 - y0 : 1
        func px(_ x: Double) -> Double { left + (x - x0) / xSpan * plotW }
        func py(_ y: Double) -> Double { top + plotH - (transform(y) - y0) / ySpan * plotH }
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" role=\"img\" aria-label=\"\(escape(title))\">"
        svg += "<text x=\"\(left)\" y=\"16\" class=\"title\">\(escape(title))</text>"
        svg += "<rect x=\"\(left)\" y=\"\(top)\" width=\"\(plotW)\" height=\"\(plotH)\" class=\"frame\"/>"
        let yLow = logY ? pow(10, y0) : y0, yHigh = logY ? pow(10, y1) : y1
        svg += "<text x=\"\(left - 6)\" y=\"\(top + plotH)\" class=\"tick\" text-anchor=\"end\">\(number(yLow))</text>"
        svg += "<text x=\"\(left - 6)\" y=\"\(top + 10)\" class=\"tick\" text-anchor=\"end\">\(number(yHigh))</text>"
        svg += "<text x=\"\(left)\" y=\"\(top + plotH + 16)\" class=\"tick\">\(number(x0))</text>"
        svg += "<text x=\"\(left + plotW)\" y=\"\(top + plotH + 16)\" class=\"tick\" text-anchor=\"end\">\(number(x1))</text>"
        svg += "<text x=\"\(left + plotW / 2)\" y=\"\(height - 6)\" class=\"axis\" text-anchor=\"middle\">\(escape(xLabel))</text>"
        svg += "<text x=\"14\" y=\"\(top + plotH / 2)\" class=\"axis\" text-anchor=\"middle\" transform=\"rotate(-90 14 \(top + plotH / 2))\">\(escape(yLabel + (logY ? " (log)" : "")))</text>"
        for mark in verticalMarks where mark.x >= x0 && mark.x <= x1 {
            let x = px(mark.x)
            svg += "<line x1=\"\(x)\" y1=\"\(top)\" x2=\"\(x)\" y2=\"\(top + plotH)\" class=\"mark\"/>"
            svg += "<text x=\"\(x + 4)\" y=\"\(top + 12)\" class=\"tick\">\(escape(mark.label))</text>"
        }
        for (n, s) in series.enumerated() {
            if !s.dotsOnly {
                let points = s.points.map { String(format: "%.1f,%.1f", px($0.x), py($0.y)) }.joined(separator: " ")
                svg += "<polyline points=\"\(points)\" fill=\"none\" stroke=\"\(s.color)\" stroke-width=\"1.6\"/>"
            }
            if s.points.count == 1 || s.dotsOnly {
                for p in s.points {
                    svg += String(format: "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%@\"/>", px(p.x), py(p.y), s.color)
                }
            }
            svg += "<text x=\"\(left + plotW - 8)\" y=\"\(top + 14 + Double(n) * 14)\" class=\"legend\" text-anchor=\"end\" fill=\"\(s.color)\">\(escape(s.name))</text>"
        }
        for mark in circled {
            svg += String(format: "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"6\" class=\"chosen\"/>", px(mark.x), py(mark.y))
            svg += String(format: "<text x=\"%.1f\" y=\"%.1f\" class=\"tick\">%@</text>", px(mark.x) + 8, py(mark.y) - 6, escape(mark.label))
        }
        return svg + "</svg>"
    }
}
