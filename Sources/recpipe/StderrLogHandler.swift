import Foundation
import Logging

/// One line per event on stderr: `2026-01-02T03:04:05Z info message key=value ...`. Whatever
/// the message and values hold (a rejected row's text, a file name), the event stays one
/// line: control characters are written as escapes (`\n`, `\u{1B}`), values with spaces,
/// quotes, `=` or escapes are quoted.
struct StderrLogHandler: LogHandler {
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]
    /// Where lines go instead of stderr (without their newline), e.g. around a progress line.
    var sink: (@Sendable (String) -> Void)?

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        var line = "\(Self.timestamp()) \(event.level) \(Self.escaped("\(event.message)"))"
        for key in merged.keys.sorted() { line += " \(key)=\(Self.quoted("\(merged[key]!)"))" }
        if let sink { return sink(line) }
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }

    static func quoted(_ value: String) -> String {
        let text = escaped(value)
        return text.isEmpty || text.contains(where: { $0 == " " || $0 == "\"" || $0 == "=" || $0 == "\\" })
            ? "\"" + text.replacingOccurrences(of: "\"", with: "\\\"") + "\"" : text
    }

    /// `value` with every character that could end or disguise a line escaped: C0 and C1
    /// control characters, DEL, the Unicode line and paragraph separators, and the
    /// backslash itself.
    static func escaped(_ value: String) -> String {
        guard value.unicodeScalars.contains(where: needsEscape) else { return value }
        var result = ""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            case _ where needsEscape(scalar): result += "\\u{" + String(scalar.value, radix: 16, uppercase: true) + "}"
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result
    }

    static func needsEscape(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value) || scalar.value == 0x2028 || scalar.value == 0x2029
            || scalar == "\\"
    }

    static func timestamp() -> String {
        var seconds = time(nil)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02dZ", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1,
                      Int(parts.tm_mday), Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec))
    }
}
