import Foundation

/// The unit of numeric timestamps in a source (`--time-unit`).
public enum TimeUnit: String, Codable, Sendable, CaseIterable {
    case s, ms, us
    var perSecond: Double {
        switch self {
        case .s: return 1
        case .ms: return 1e3
        case .us: return 1e6
        }
    }
}

/// Parsers for the fields of one input row. They work on the row's bytes in place and
/// allocate nothing on the common path.
enum FieldParsing {
    enum Number: Equatable {
        case value(Double)
        case notNumeric
        case nonFinite
    }

    /// Why a field cannot be stored: the reject reason and what to tell the operator.
    struct Problem: Error {
        let reason: RejectReason
        let detail: String
    }

    /// A user or item key: not too long, valid UTF-8, free of control characters, not empty.
    static func checkKey(_ key: UnsafeBufferPointer<UInt8>, name: String, maxBytes: Int) throws(Problem) {
        if key.count > maxBytes { throw Problem(reason: .oversizedField, detail: "\(name) key is \(key.count) bytes, limit \(maxBytes)") }
        if !isValidUTF8(key) { throw Problem(reason: .invalidUTF8, detail: "\(name) key is not valid UTF-8") }
        if let at = key.firstIndex(where: { $0 < 0x20 || $0 == 0x7F }) {
            throw Problem(reason: .controlCharacter, detail: String(format: "\(name) key has the control character 0x%02X at byte \(at + 1)", key[at]))
        }
        if key.isEmpty { throw Problem(reason: .emptyKey, detail: "empty \(name) key") }
    }

    /// A finite rating.
    static func rating(_ field: UnsafeBufferPointer<UInt8>, name: String = "rating") throws(Problem) -> Double {
        switch number(field) {
        case .value(let value): return value
        case .notNumeric: throw Problem(reason: .badRating, detail: "\(name) '\(displayText(field, limit: 40))' is not a number")
        case .nonFinite: throw Problem(reason: .nonFiniteRating, detail: "\(name) '\(displayText(field, limit: 40))' is not finite")
        }
    }

    /// A time (see `timestamp`), or a `bad_timestamp` problem. Numbers are in `unit`; one that
    /// is 10^11 seconds or more (past the year 5000) is refused: in seconds it is most likely
    /// milliseconds or microseconds.
    static func time(_ field: UnsafeBufferPointer<UInt8>, name: String = "timestamp", unit: TimeUnit = .s) throws(Problem) -> Int64 {
        if let seconds = timestamp(field, unit: unit) { return seconds }
        let bytes = trimmed(field)
        if !isISODate(bytes), case .value(let value) = number(bytes) {
            // A number, too large for its unit.
            let hint = unit == .s ? (abs(value) < 1e14 ? "looks like milliseconds; use --time-unit ms" : "looks like microseconds; use --time-unit us")
                : "is past the year 5000 in \(unit.rawValue)"
            throw Problem(reason: .badTimestamp, detail: "\(name) '\(displayText(field, limit: 40))' \(hint)")
        }
        throw Problem(reason: .badTimestamp,
                      detail: "\(name) '\(displayText(field, limit: 40))' is neither Unix seconds nor ISO 8601")
    }

    /// The largest accepted time, in seconds from 1970 (about the year 5138).
    static let maxSeconds = 1e11

    static func isISODate(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool { bytes.count >= 10 && bytes[4] == UInt8(ascii: "-") }

    /// Runs a field check on the bytes of a string.
    static func onText<T>(_ text: String, _ check: (UnsafeBufferPointer<UInt8>) throws(Problem) -> T) throws(Problem) -> T {
        var text = text
        let result = text.withUTF8 { bytes in Result { () throws(Problem) -> T in try check(bytes) } }
        return try result.get()
    }

    private static let powersOfTen: [Double] = (0...22).map { pow(10, Double($0)) }

    /// A decimal number such as `4`, `3.5`, `-1e3`. Surrounding spaces are ignored.
    static func number(_ field: UnsafeBufferPointer<UInt8>) -> Number {
        let bytes = trimmed(field)
        guard !bytes.isEmpty else { return .notNumeric }
        // Fast path: [-+]digits[.digits] with at most 15 significant digits, which a
        // single division by an exact power of ten rounds correctly.
        var i = 0, negative = false
        if bytes[0] == UInt8(ascii: "-") || bytes[0] == UInt8(ascii: "+") {
            negative = bytes[0] == UInt8(ascii: "-"); i = 1
        }
        var mantissa: UInt64 = 0, digits = 0, fraction = 0, sawPoint = false, simple = i < bytes.count
        while i < bytes.count {
            let c = bytes[i]
            if c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") {
                mantissa = mantissa &* 10 &+ UInt64(c - UInt8(ascii: "0"))
                digits += 1
                if sawPoint { fraction += 1 }
            } else if c == UInt8(ascii: ".") && !sawPoint {
                sawPoint = true
            } else {
                simple = false; break
            }
            i += 1
        }
        if simple && digits > 0 && digits <= 15 {
            let value = Double(mantissa) / powersOfTen[fraction]
            return .value(negative ? -value : value)
        }
        return slowNumber(bytes)
    }

    private static func slowNumber(_ bytes: UnsafeBufferPointer<UInt8>) -> Number {
        guard bytes.count < 128, let first = bytes.first,
              first != UInt8(ascii: " "), first != UInt8(ascii: "\t") else { return .notNumeric }
        // Hexadecimal floats are not decimal numbers.
        if bytes.contains(UInt8(ascii: "x")) || bytes.contains(UInt8(ascii: "X")) { return .notNumeric }
        return withUnsafeTemporaryAllocation(of: CChar.self, capacity: bytes.count + 1) { text in
            for (k, byte) in bytes.enumerated() { text[k] = CChar(bitPattern: byte) }
            text[bytes.count] = 0
            var end: UnsafeMutablePointer<CChar>?
            let value = strtod(text.baseAddress!, &end)
            guard let end, end - text.baseAddress! == bytes.count else { return .notNumeric }
            return value.isFinite ? .value(value) : .nonFinite
        }
    }

    /// A Unix time in `unit`, as whole seconds (a fraction is dropped) below `maxSeconds`, or
    /// an ISO 8601 date or date-time (`2024-03-01`, `2024-03-01T12:30:00Z`,
    /// `2024-03-01 12:30:00.250+02:00`; no zone = UTC).
    static func timestamp(_ field: UnsafeBufferPointer<UInt8>, unit: TimeUnit = .s) -> Int64? {
        let bytes = trimmed(field)
        guard !bytes.isEmpty else { return nil }
        if isISODate(bytes) { return isoTimestamp(bytes) }
        switch number(bytes) {
        case .value(let value) where abs(value / unit.perSecond) < maxSeconds:
            return Int64((value / unit.perSecond).rounded(.down))
        default:
            return nil
        }
    }

    private static func isoTimestamp(_ b: UnsafeBufferPointer<UInt8>) -> Int64? {
        var i = 0
        func digits(_ n: Int) -> Int? {
            guard i + n <= b.count else { return nil }
            var value = 0
            for k in i..<(i + n) {
                let c = b[k]
                guard c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") else { return nil }
                value = value * 10 + Int(c - UInt8(ascii: "0"))
            }
            i += n
            return value
        }
        func expect(_ c: Character) -> Bool {
            guard i < b.count, b[i] == c.asciiValue! else { return false }
            i += 1
            return true
        }
        guard let year = digits(4), expect("-"), let month = digits(2), expect("-"), let day = digits(2),
              (1...12).contains(month), day >= 1, day <= daysIn(month: month, year: year)
        else { return nil }
        var seconds = Int64(daysFromCivil(year: year, month: month, day: day)) * 86_400
        if i == b.count { return seconds }
        guard b[i] == UInt8(ascii: "T") || b[i] == UInt8(ascii: " ") else { return nil }
        i += 1
        guard let hour = digits(2), expect(":"), let minute = digits(2), hour < 24, minute < 60 else { return nil }
        seconds += Int64(hour * 3600 + minute * 60)
        if expect(":") {
            guard let second = digits(2), second <= 60 else { return nil }
            seconds += Int64(second)
            if expect(".") || expect(",") {
                let before = i
                while i < b.count, b[i] >= UInt8(ascii: "0"), b[i] <= UInt8(ascii: "9") { i += 1 }
                guard i > before else { return nil }
            }
        }
        if i == b.count || expect("Z") || expect("z") { return i == b.count ? seconds : nil }
        guard i < b.count, b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") else { return nil }
        let sign: Int64 = b[i] == UInt8(ascii: "+") ? 1 : -1
        i += 1
        guard let offsetHours = digits(2), offsetHours <= 23 else { return nil }
        var offsetMinutes = 0
        if i < b.count {
            _ = expect(":")
            guard let m = digits(2), m < 60 else { return nil }
            offsetMinutes = m
        }
        guard i == b.count else { return nil }
        return seconds - sign * Int64(offsetHours * 3600 + offsetMinutes * 60)
    }

    static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (eras of 400 years, years
    /// starting in March so the leap day comes last).
    static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let shiftedMonth = (month + 9) % 12
        let dayOfYear = (153 * shiftedMonth + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    /// Strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF.
    static func isValidUTF8(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        var i = 0
        let n = bytes.count
        while i < n {
            let c = bytes[i]
            if c < 0x80 { i += 1; continue }
            let length: Int, lower: UInt8, upper: UInt8
            switch c {
            case 0xC2...0xDF: length = 2; lower = 0x80; upper = 0xBF
            case 0xE0: length = 3; lower = 0xA0; upper = 0xBF
            case 0xE1...0xEC, 0xEE...0xEF: length = 3; lower = 0x80; upper = 0xBF
            case 0xED: length = 3; lower = 0x80; upper = 0x9F
            case 0xF0: length = 4; lower = 0x90; upper = 0xBF
            case 0xF1...0xF3: length = 4; lower = 0x80; upper = 0xBF
            case 0xF4: length = 4; lower = 0x80; upper = 0x8F
            default: return false
            }
            guard i + length <= n, bytes[i + 1] >= lower, bytes[i + 1] <= upper else { return false }
            for k in 2..<max(2, length) where bytes[i + k] & 0xC0 != 0x80 { return false }
            i += length
        }
        return true
    }

    static func trimmed(_ field: UnsafeBufferPointer<UInt8>) -> UnsafeBufferPointer<UInt8> {
        guard let base = field.baseAddress else { return field }
        var start = 0, end = field.count
        while start < end, field[start] == UInt8(ascii: " ") || field[start] == UInt8(ascii: "\t") { start += 1 }
        while end > start, field[end - 1] == UInt8(ascii: " ") || field[end - 1] == UInt8(ascii: "\t") { end -= 1 }
        return UnsafeBufferPointer(start: base + start, count: end - start)
    }

    /// The text of a line for the rejects table: invalid UTF-8 replaced, cut at 1 KiB.
    static func displayText(_ bytes: UnsafeBufferPointer<UInt8>, limit: Int = 1024) -> String {
        let cut = UnsafeBufferPointer(rebasing: bytes[0..<min(bytes.count, limit)])
        let text = String(decoding: cut, as: UTF8.self)
        return bytes.count > limit ? text + "…" : text
    }
}

/// Parses a time given on the command line or in a manifest: Unix seconds or ISO 8601.
public func parseTimestamp(_ text: String) -> Int64? {
    var text = text
    return text.withUTF8 { FieldParsing.timestamp($0) }
}
