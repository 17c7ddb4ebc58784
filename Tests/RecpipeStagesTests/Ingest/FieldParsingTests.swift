import RecpipeTestSupport
import Testing
@testable import RecpipeStages

private func number(_ text: String) -> FieldParsing.Number {
    var text = text
    return text.withUTF8 { FieldParsing.number($0) }
}

private func valid(_ bytes: [UInt8]) -> Bool { bytes.withUnsafeBufferPointer { FieldParsing.isValidUTF8($0) } }

@Suite(.tags(.small)) struct FieldParsingTests {
    @Test(arguments: [("4", 4.0), ("3.5", 3.5), (" 5 ", 5.0), ("-1", -1.0), ("+2.25", 2.25), ("1e3", 1000.0),
                      ("0.1", 0.1), ("1234567890.123456789", 1234567890.123456789), (".5", 0.5)])
    func numbers(text: String, value: Double) {
        #expect(number(text) == .value(value))
    }

    @Test(arguments: ["", " ", "abc", "4 stars", "0x10", "1.2.3", "--1", "five"])
    func notNumbers(text: String) {
        #expect(number(text) == .notNumeric)
    }

    @Test(arguments: ["nan", "NaN", "inf", "-Infinity", "1e400"])
    func nonFinite(text: String) {
        #expect(number(text) == .nonFinite)
    }

    @Test(arguments: [
        ("881250949", Int64(881_250_949)), ("881250949.7", 881_250_949),
        ("1970-01-01", 0), ("2000-03-01", 951_868_800), ("2024-02-29T12:00:00Z", 1_709_208_000),
        ("2024-02-29 12:00:00", 1_709_208_000), ("2024-02-29T14:00:00+02:00", 1_709_208_000),
        ("2024-02-29T07:30:00-0430", 1_709_208_000), ("2024-02-29T12:00:00.250Z", 1_709_208_000),
        ("2024-02-29T12:00Z", 1_709_208_000), ("1969-12-31T23:59:59Z", -1),
    ])
    func timestamps(text: String, seconds: Int64) {
        #expect(parseTimestamp(text) == seconds)
    }

    @Test(arguments: ["", "yesterday", "2023-02-29", "2024-13-01", "2024-01-01T25:00:00", "2024-01-01T10:00:00X",
                      "2024-01-01T10:00:00+2", "nan", "2024-1-1"])
    func badTimestamps(text: String) {
        #expect(parseTimestamp(text) == nil)
    }

    /// Numeric times are read in the source's unit; a seconds value past the year 5000 is
    /// refused with a hint at the unit it most likely is.
    @Test func timeUnits() throws {
        func time(_ text: String, _ unit: TimeUnit) -> Result<Int64, FieldParsing.Problem> {
            Result { () throws(FieldParsing.Problem) -> Int64 in
                try FieldParsing.onText(text) { bytes throws(FieldParsing.Problem) in try FieldParsing.time(bytes, unit: unit) }
            }
        }
        #expect(try time("1709208000", .s).get() == 1_709_208_000)
        #expect(try time("1709208000123", .ms).get() == 1_709_208_000)
        #expect(try time("1709208000123456", .us).get() == 1_709_208_000)
        #expect(try time("2024-02-29T12:00:00Z", .ms).get() == 1_709_208_000, "ISO 8601 times ignore the unit")
        #expect(try time("99999999999", .s).get() == 99_999_999_999)
        for (text, unit, hint) in [("1709208000123", TimeUnit.s, "looks like milliseconds; use --time-unit ms"),
                                   ("1709208000123456", .s, "looks like microseconds; use --time-unit us"),
                                   ("1709208000123456", .ms, "is past the year 5000 in ms")] {
            guard case .failure(let problem) = time(text, unit) else { Issue.record("\(text) in \(unit) accepted"); continue }
            #expect(problem.reason == .badTimestamp && problem.detail.contains(hint), "\(problem.detail)")
        }
        #expect(parseTimestamp("1709208000123") == nil, "a cut-off in milliseconds is not taken as seconds")
    }

    @Test func utf8() {
        #expect(valid(Array("plain ascii".utf8)))
        #expect(valid(Array("Amélie, 東京, 🎬".utf8)))
        #expect(!valid([0xC3]))  // truncated
        #expect(!valid([0xC0, 0xAF]))  // overlong
        #expect(!valid([0xED, 0xA0, 0x80]))  // surrogate
        #expect(!valid([0xF4, 0x90, 0x80, 0x80]))  // above U+10FFFF
        #expect(!valid([0x61, 0xFF, 0x62]))
        #expect(!valid([0xE2, 0x82, 0x41]))  // bad continuation
    }

    @Test func jsonObjects() throws {
        var line = #"{"user": "u\u00e9\"1", "item": 42, "rating": 4.5, "ts": null, "tags": ["a", {"b": "}"}], "ok": true}"#
        let object = try line.withUTF8 { try JSONLine.parseObject($0) }
        #expect(object["user"] == .string("ué\"1"))
        #expect(object["item"] == .number("42"))
        #expect(object["rating"] == .number("4.5"))
        #expect(object["ts"] == .null)
        #expect(object["tags"] == .nested)
        #expect(object["ok"] == .bool(true))
        var surrogate = #"{"k": "\ud83c\udfac"}"#
        #expect(try surrogate.withUTF8 { try JSONLine.parseObject($0) }["k"] == .string("🎬"))
        for bad in [#"{"user": "a""#, #"{"user" "a"}"#, #"["a"]"#, #"{"a": 1} x"#, #"{"a": tru}"#, #"{"a": "\x"}"#] {
            var text = bad
            #expect(throws: JSONLine.Malformed.self, "\(bad)") { try text.withUTF8 { try JSONLine.parseObject($0) } }
        }
    }

    @Test func sniffing() {
        #expect(InputFormat.sniff(path: "x.inter", firstLine: "user_id:token\titem_id:token") == .recbole)
        #expect(InputFormat.sniff(path: "x.tsv", firstLine: "user_id:token\titem_id:token") == .recbole)
        #expect(InputFormat.sniff(path: "u.data", firstLine: "196\t242\t3\t881250949") == .movielensUData)
        #expect(InputFormat.sniff(path: "ratings.dat", firstLine: "1::1193::5::978300760") == .movielensDat)
        #expect(InputFormat.sniff(path: "ratings.csv", firstLine: "userId,movieId,rating,timestamp") == .movielensCSV)
        #expect(InputFormat.sniff(path: "events.csv.gz", firstLine: "user,item") == .csv)
        #expect(InputFormat.sniff(path: "events.txt", firstLine: "user\titem\tts") == .tsv)
        #expect(InputFormat.sniff(path: "events.log", firstLine: #"{"user": 1}"#) == .jsonl)
        #expect(InputFormat.sniff(path: "events.jsonl.gz", firstLine: "") == .jsonl)
    }
}
