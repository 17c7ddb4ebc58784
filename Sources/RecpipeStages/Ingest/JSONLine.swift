/// A scanner for one JSON Lines record: a flat object whose values are strings, numbers,
/// booleans or null (nested values are skipped). Numbers keep their source text, so a key
/// written as `196` is stored as the text `196`.
enum JSONLine {
    enum Value: Equatable {
        case string(String)
        case number(String)
        case bool(Bool)
        case null
        case nested
    }

    struct Malformed: Error {
        let offset: Int
        let problem: String
    }

    static func parseObject(_ b: UnsafeBufferPointer<UInt8>) throws(Malformed) -> [String: Value] {
        var scanner = Scanner(bytes: b)
        scanner.skipSpace()
        try scanner.expect(UInt8(ascii: "{"))
        var object: [String: Value] = [:]
        scanner.skipSpace()
        if scanner.peek() == UInt8(ascii: "}") {
            scanner.i += 1
        } else {
            while true {
                scanner.skipSpace()
                let key = try scanner.string()
                scanner.skipSpace()
                try scanner.expect(UInt8(ascii: ":"))
                scanner.skipSpace()
                object[key] = try scanner.value()
                scanner.skipSpace()
                if scanner.peek() == UInt8(ascii: ",") { scanner.i += 1; continue }
                try scanner.expect(UInt8(ascii: "}"))
                break
            }
        }
        scanner.skipSpace()
        guard scanner.i == b.count else { throw Malformed(offset: scanner.i, problem: "text after the object") }
        return object
    }

    private struct Scanner {
        let bytes: UnsafeBufferPointer<UInt8>
        var i = 0

        func peek() -> UInt8? { i < bytes.count ? bytes[i] : nil }

        mutating func skipSpace() {
            while let c = peek(), c == 0x20 || c == 0x09 || c == 0x0A || c == 0x0D { i += 1 }
        }

        mutating func expect(_ c: UInt8) throws(Malformed) {
            guard peek() == c else {
                throw Malformed(offset: i, problem: "expected '\(Character(Unicode.Scalar(c)))'")
            }
            i += 1
        }

        mutating func value() throws(Malformed) -> Value {
            guard let c = peek() else { throw Malformed(offset: i, problem: "missing value") }
            switch c {
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "{"), UInt8(ascii: "["): try skipNested(); return .nested
            case UInt8(ascii: "t"): try literal("true"); return .bool(true)
            case UInt8(ascii: "f"): try literal("false"); return .bool(false)
            case UInt8(ascii: "n"): try literal("null"); return .null
            default: return .number(try number())
            }
        }

        mutating func literal(_ word: String) throws(Malformed) {
            for c in word.utf8 {
                guard peek() == c else { throw Malformed(offset: i, problem: "invalid literal") }
                i += 1
            }
        }

        mutating func number() throws(Malformed) -> String {
            let start = i
            if peek() == UInt8(ascii: "-") { i += 1 }
            var digits = 0
            while let c = peek(), (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9")) || c == UInt8(ascii: ".")
                || c == UInt8(ascii: "e") || c == UInt8(ascii: "E") || c == UInt8(ascii: "+") || c == UInt8(ascii: "-")
            {
                if c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") { digits += 1 }
                i += 1
            }
            guard digits > 0 else { throw Malformed(offset: start, problem: "invalid value") }
            return String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self)
        }

        mutating func string() throws(Malformed) -> String {
            try expect(UInt8(ascii: "\""))
            var out: [UInt8] = []
            while true {
                guard let c = peek() else { throw Malformed(offset: i, problem: "unterminated string") }
                i += 1
                if c == UInt8(ascii: "\"") { break }
                if c < 0x20 { throw Malformed(offset: i - 1, problem: "control character in string") }
                if c != UInt8(ascii: "\\") { out.append(c); continue }
                guard let e = peek() else { throw Malformed(offset: i, problem: "unterminated escape") }
                i += 1
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if (0xD800...0xDBFF).contains(scalar) {
                        guard peek() == UInt8(ascii: "\\") else { throw Malformed(offset: i, problem: "lone surrogate") }
                        i += 1
                        try expect(UInt8(ascii: "u"))
                        let low = try hex4()
                        guard (0xDC00...0xDFFF).contains(low) else { throw Malformed(offset: i, problem: "lone surrogate") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    }
                    guard let unicode = Unicode.Scalar(scalar) else { throw Malformed(offset: i, problem: "lone surrogate") }
                    out.append(contentsOf: Array(String(Character(unicode)).utf8))
                default:
                    throw Malformed(offset: i - 1, problem: "invalid escape")
                }
            }
            // The caller has checked that the whole line is valid UTF-8.
            return String(decoding: out, as: UTF8.self)
        }

        mutating func hex4() throws(Malformed) -> UInt32 {
            var value: UInt32 = 0
            for _ in 0..<4 {
                guard let c = peek() else { throw Malformed(offset: i, problem: "short \\u escape") }
                let digit: UInt32
                switch c {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(c - UInt8(ascii: "0"))
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(c - UInt8(ascii: "a") + 10)
                case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(c - UInt8(ascii: "A") + 10)
                default: throw Malformed(offset: i, problem: "bad \\u escape")
                }
                value = value << 4 | digit
                i += 1
            }
            return value
        }

        mutating func skipNested() throws(Malformed) {
            var depth = 0
            repeat {
                guard let c = peek() else { throw Malformed(offset: i, problem: "unterminated value") }
                if c == UInt8(ascii: "\"") { _ = try string(); continue }
                if c == UInt8(ascii: "{") || c == UInt8(ascii: "[") { depth += 1 }
                if c == UInt8(ascii: "}") || c == UInt8(ascii: "]") { depth -= 1 }
                i += 1
            } while depth > 0
        }
    }
}
