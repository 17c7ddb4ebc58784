import Foundation
import GRDB
import Logging
import RecpipeTestSupport
import Testing
@testable import RecpipeStages
@testable import RecpipeStore

@Suite(.tags(.medium)) struct IngestFormatTests {
    let expected = [
        StoredRawRow(line: 2, user: "196", item: "242", rating: 3, ts: 881_250_949),
        StoredRawRow(line: 3, user: "186", item: "302", rating: 3.5, ts: 891_717_742),
    ]

    func check(_ name: String, _ text: String, format: InputFormat? = nil, sniffed: InputFormat,
               firstLine: Int = 2, columns: SourceColumns = SourceColumns(), lines: [Int]? = nil) throws {
        let scratch = Scratch()
        let store = try scratch.store()
        let file = scratch.write(name, text)
        try ingest(store, [file], format: format, columns: columns)
        let rows = try rawRows(store)
        let lines = lines ?? [firstLine, firstLine + 1]
        #expect(rows == zip(expected, lines).map { var r = $0; r.line = $1; return r }, "\(name)")
        let stored = try store.queue.read { try String.fetchOne($0, sql: "SELECT format FROM ingest_batches") }
        #expect(stored == sniffed.rawValue)
    }

    @Test func csv() throws {
        try check("events.csv", "user_id,item_id,rating,timestamp\n196,242,3,881250949\n186,302,3.5,891717742\n", sniffed: .csv)
    }

    @Test func csvWithMappedColumnsAndISOTime() throws {
        try check("events.csv", "when,who,what,stars,extra\n1997-12-04T15:55:49Z,196,242,3,x\n1998-04-04T19:22:22Z,186,302,3.5,y\n",
                  sniffed: .csv, columns: SourceColumns(user: "who", item: "what", rating: "stars", timestamp: "when"))
    }

    @Test func tsv() throws {
        try check("events.tsv", "user\titem\trating\tts\n196\t242\t3\t881250949\n186\t302\t3.5\t891717742\n", sniffed: .tsv)
    }

    @Test func jsonLines() throws {
        try check("events.jsonl", """
            {"user": "196", "item": 242, "rating": 3, "timestamp": 881250949}

            {"item": "302", "user": 186, "rating": "3.5", "timestamp": "1998-04-04T19:22:22Z", "extra": [1, 2]}
            """, sniffed: .jsonl, firstLine: 1, lines: [1, 3])
    }

    @Test func movielensUData() throws {
        try check("u.data", "196\t242\t3\t881250949\n186\t302\t3.5\t891717742\n", sniffed: .movielensUData, firstLine: 1)
    }

    @Test func movielensDat() throws {
        try check("ratings.dat", "196::242::3::881250949\r\n186::302::3.5::891717742\r\n", sniffed: .movielensDat, firstLine: 1)
    }

    @Test func movielensCSV() throws {
        try check("ratings.csv", "userId,movieId,rating,timestamp\n196,242,3.0,881250949\n186,302,3.5,891717742", sniffed: .movielensCSV)
    }

    @Test func recbole() throws {
        try check("ml.inter", "user_id:token\titem_id:token\trating:float\ttimestamp:float\n196\t242\t3\t881250949\n186\t302\t3.5\t891717742\n",
                  sniffed: .recbole)
    }

    @Test func explicitFormatOverridesSniffing() throws {
        try check("events.txt", "196\t242\t3\t881250949\n186\t302\t3.5\t891717742\n", format: .movielensUData,
                  sniffed: .movielensUData, firstLine: 1)
    }

    @Test func gzipVariants() throws {
        let scratch = Scratch()
        let store = try scratch.store()
        let csv = try scratch.writeGzip("events.csv.gz", "user,item,rating,ts\n196,242,3,881250949\n186,302,3.5,891717742\n")
        let dat = try scratch.writeGzip("ratings.dat.gz", "196::242::3::881250949\n186::302::3.5::891717742\n")
        try ingest(store, [csv, dat])
        let rows = try rawRows(store)
        #expect(rows.count == 4)
        #expect(Array(rows[0..<2]) == expected)
        #expect(rows[2].user == "196" && rows[3].rating == 3.5)
        let formats = try store.queue.read { try String.fetchAll($0, sql: "SELECT format FROM ingest_batches ORDER BY batch_id") }
        #expect(formats == ["csv", "movielens-dat"])
    }

    @Test func corruptGzipFails() throws {
        let scratch = Scratch()
        let store = try scratch.store()
        let file = scratch.write("broken.csv.gz", bytes: [0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0xff, 0xff, 0x00])
        let report = try ingest(store, [file])
        #expect(report.failures.count == 1)
        guard case .unreadable? = report.failures.first else { Issue.record("expected an unreadable source, got \(report.failures)"); return }
        #expect(try count(store, "raw_interactions") == 0)
    }

    @Test func quotedCSV() throws {
        let scratch = Scratch()
        let store = try scratch.store()
        let file = scratch.write("q.csv", """
            user,item,rating
            "Smith, J.",\"The ""Best"" Film\",4
            plain,"multi
            line",5
            """)
        try ingest(store, [file], maxRejected: 0.5)
        let rows = try rawRows(store)
        #expect(rows == [StoredRawRow(line: 2, user: "Smith, J.", item: #"The "Best" Film"#, rating: 4, ts: nil)])
        // A quoted field may span lines, but a key may not hold a newline (a control character).
        #expect(try store.queue.read { try String.fetchAll($0, sql: "SELECT line || ' ' || reason FROM ingest_rejects") } == ["3 control_character"])
    }

    @Test func sqliteQuery() throws {
        let scratch = Scratch()
        let sourcePath = scratch.path("app.sqlite")
        let source = try DatabaseQueue(path: sourcePath)
        try source.write { db in
            try db.execute(sql: """
                CREATE TABLE plays (account TEXT, track INTEGER, stars REAL, played_at TEXT);
                INSERT INTO plays VALUES ('196', 242, 3, '1997-12-04T15:55:49Z'), ('186', 302, 3.5, '1998-04-04T19:22:22Z'),
                                         (NULL, 1, 1, '2000-01-01');
                """)
        }
        let store = try scratch.store()
        let columns = SourceColumns(user: "account", item: "track", rating: "stars", timestamp: "played_at")
        let query = "SELECT account, track, stars, played_at FROM plays ORDER BY rowid"
        let report = try ingest(store, [sourcePath], format: .sqlite, columns: columns, query: query, maxRejected: 0.5)
        #expect(report.failures.isEmpty)
        #expect(try rawRows(store) == expected.map { var r = $0; r.line -= 1; return r })
        #expect(try rejects(store).map(\.reason) == ["empty_key"])
        // The same rows again are recognised and skipped.
        let again = try ingest(store, [sourcePath], format: .sqlite, columns: columns, query: query, maxRejected: 0.5)
        #expect(again.summary.first?.contains("skipped") == true)
        #expect(try count(store, "raw_interactions") == 2)
        #expect(try count(store, "ingest_batches") == 1)
    }

    @Test func badQueryIsAUsageError() throws {
        let scratch = Scratch()
        let sourcePath = scratch.path("app.sqlite")
        try DatabaseQueue(path: sourcePath).write { try $0.execute(sql: "CREATE TABLE t (user TEXT, item TEXT)") }
        let store = try scratch.store()
        let report = try ingest(store, [sourcePath], format: .sqlite, query: "SELECT nope FROM t")
        guard case .badOption? = report.failures.first else { Issue.record("expected a bad query option, got \(report.failures)"); return }
    }
}

@Suite(.tags(.medium)) struct IngestRejectTests {
    /// One file holding a row for every reject reason among good rows.
    @Test func everyReasonIsRecordedWithItsLine() throws {
        let scratch = Scratch()
        let store = try scratch.store()
        var lines = ["user,item,rating,ts"]
        for k in 0..<20 { lines.append("u\(k),i\(k),4,1000") }
        let bad: [(String, RejectReason)] = [
            ("u1,i1,4", .columnCount),
            (",i1,4,1000", .emptyKey),
            ("u1,,4,1000", .emptyKey),
            ("u1,i1,great,1000", .badRating),
            ("u1,i1,NaN,1000", .nonFiniteRating),
            ("u1,i1,inf,1000", .nonFiniteRating),
            ("u1,i1,4,yesterday", .badTimestamp),
            ("u1,\"i1\"x,4,1000", .badQuoting),
            (String(repeating: "k", count: 2000) + ",i1,4,1000", .oversizedField),
        ]
        for (line, _) in bad { lines.append(line) }
        var bytes = Array((lines.joined(separator: "\n") + "\n").utf8)
        bytes += [0x75, 0xFF, 0x2C, 0x69, 0x2C, 0x34, 0x2C, 0x31, 0x0A]  // u\xFF,i,4,1
        let file = scratch.write("bad.csv", bytes: bytes)
        let report = try ingest(store, [file], maxRejected: 0.5)
        #expect(report.failures.isEmpty)
        #expect(try count(store, "raw_interactions") == 20)
        let stored = try rejects(store)
        #expect(stored.map(\.reason) == bad.map(\.1.rawValue) + ["invalid_utf8"])
        #expect(stored.map(\.line) == Array(22...(22 + bad.count)))
        let batch = try store.queue.read { try Row.fetchOne($0, sql: "SELECT * FROM ingest_batches")! }
        #expect(batch["rows_read"] as Int == 20 + bad.count + 1)
        #expect(batch["rows_accepted"] as Int == 20)
        #expect(batch["rows_rejected"] as Int == bad.count + 1)
        let raw = try store.queue.read { try String.fetchOne($0, sql: "SELECT raw FROM ingest_rejects WHERE reason = 'bad_rating'") }
        #expect(raw == "u1,i1,great,1000")
    }

    @Test func jsonRejects() throws {
        let scratch = Scratch()
        let store = try scratch.store()
        var lines: [String] = []
        for k in 0..<10 { lines.append(#"{"user": "u\#(k)", "item": "i\#(k)"}"#) }
        lines += [#"{"user": "u1"}"#, #"{"user": null, "item": "x"}"#, #"{"user": "u", "item": "i""#,
                  #"{"user": "", "item": "i"}"#, #"{"user": "u", "item": "i", "rating": "nan"}"#,
                  #"{"user": "u", "item": "i", "timestamp": "soon"}"#]
        let file = scratch.write("e.jsonl", lines.joined(separator: "\n"))
        try ingest(store, [file], maxRejected: 0.5)
        #expect(try rejects(store).map(\.reason) ==
                ["missing_field", "missing_field", "malformed_json", "empty_key", "non_finite_rating", "bad_timestamp"])
        #expect(try count(store, "raw_interactions") == 10)
    }

    @Test func tooManyRejectsStoresNothing() throws {
        let scratch = Scratch()
        let store = try scratch.store()
        var lines = ["user,item,rating"]
        for k in 0..<8 { lines.append("u\(k),i\(k),4") }
        lines += ["u,i,bad", "u,i,worse"]  // 20% > 10%
        let file = scratch.write("mostly.csv", lines.joined(separator: "\n"))
        let report = try ingest(store, [file])
        guard case .tooManyRejects(let path, 2, 10, 0.10, _, false)? = report.failures.first else {
            Issue.record("expected tooManyRejects, got \(report.failures)")
            return
        }
        #expect(path == file)
        #expect(report.failures.first!.localizedDescription.hasPrefix("\(file): 2 of 10 rows rejected"))
        // No row stored; the refusal recorded with its rejects.
        #expect(try count(store, "raw_interactions") == 0)
        #expect(try count(store, "ingest_rejects") == 2)
        #expect(try store.queue.read { try String.fetchAll($0, sql: "SELECT status FROM ingest_batches") } == ["refused"])
        // With a looser threshold the same content is still skipped as refused, unless retried.
        #expect(try ingest(store, [file], maxRejected: 0.2).failures.count == 1)
        #expect(try ingest(store, [file], maxRejected: 0.2, retryRefused: true).failures.isEmpty)
        #expect(try count(store, "raw_interactions") == 8)
        #expect(try store.queue.read { try String.fetchAll($0, sql: "SELECT status FROM ingest_batches") } == ["stored"])
        #expect(try count(store, "ingest_rejects") == 2)
    }

    @Test func emptyMissingAndHeaderOnlySourcesFail() throws {
        let scratch = Scratch()
        let store = try scratch.store()
        let empty = scratch.write("empty.csv", "")
        let headerOnly = scratch.write("header.csv", "user,item\n")
        let good = scratch.write("good.csv", "user,item\na,b\n")
        let report = try ingest(store, [empty, scratch.path("missing.csv"), headerOnly, good])
        #expect(report.failures == [.emptySource(path: empty), .unreadable(path: scratch.path("missing.csv"), reason: "no such file"),
                                    .emptySource(path: headerOnly)])
        // The good file after the failures is still stored.
        #expect(try rawRows(store) == [StoredRawRow(line: 2, user: "a", item: "b", rating: nil, ts: nil)])
    }

    @Test func headerWithoutUserOrItemFails() throws {
        let scratch = Scratch()
        let store = try scratch.store()
        let file = scratch.write("odd.csv", "a,b,c\n1,2,3\n")
        let report = try ingest(store, [file])
        guard case .badHeader(let path, let reason)? = report.failures.first else {
            Issue.record("expected badHeader, got \(report.failures)")
            return
        }
        #expect(path == file && reason.contains("--user-col"))
    }

    @Test func oversizedLineIsRejectedAndReadingGoesOn() throws {
        let scratch = Scratch()
        let store = try scratch.store()
        var text = "user,item\n"
        for k in 0..<30 { text += "u\(k),i\(k)\n" }
        text += "x," + String(repeating: "y", count: 3 << 20) + "\n"
        text += "last,one\n"
        let file = scratch.write("big.csv", text)
        try ingest(store, [file])
        #expect(try count(store, "raw_interactions") == 31)
        #expect(try rejects(store).map(\.reason) == ["oversized_field"])
        #expect(try rejects(store).map(\.line) == [32])
        #expect(try rawRows(store).last == StoredRawRow(line: 33, user: "last", item: "one", rating: nil, ts: nil))
    }
}

@Suite(.tags(.medium)) struct IngestIdempotenceTests {
    @Test func reingestingTheSameContentIsSkipped() throws {
        let scratch = Scratch()
        let store = try scratch.store()
        let a = scratch.write("day1.csv", "user,item\na,x\nb,y\n")
        try ingest(store, [a])
        let copy = scratch.write("day1-copy.csv", "user,item\na,x\nb,y\n")
        let report = try ingest(store, [a, copy])
        #expect(report.summary.allSatisfy { $0.contains("already ingested as batch 1") })
        #expect(try count(store, "raw_interactions") == 2)
        let b = scratch.write("day2.csv", "user,item\nc,z\n")
        try ingest(store, [a, b])
        #expect(try count(store, "raw_interactions") == 3)
        let hashes = try store.queue.read { try String.fetchAll($0, sql: "SELECT content_hash FROM ingest_batches ORDER BY batch_id") }
        #expect(hashes == [SHA256.hex("user,item\na,x\nb,y\n"), SHA256.hex("user,item\nc,z\n")])
    }

    @Test func directoriesExpandToTheirFilesInNameOrder() throws {
        let scratch = Scratch()
        let store = try scratch.store()
        try FileManager.default.createDirectory(atPath: scratch.path("in"), withIntermediateDirectories: true)
        scratch.write("in/b.csv", "user,item\nb,1\n")
        scratch.write("in/a.csv", "user,item\na,1\n")
        scratch.write("in/.hidden", "junk")
        try ingest(store, [scratch.path("in")])
        #expect(try rawRows(store).map(\.user) == ["a", "b"])
    }

    @Test func largeFileCrossesBufferBoundaries() throws {
        let scratch = Scratch()
        let store = try scratch.store()
        var text = "user,item,rating,ts\n"
        for k in 0..<300_000 { text += "user\(k % 997),item\(k % 1013),\(k % 5 + 1),\(1_000_000 + k)\n" }
        let file = scratch.write("big.csv", text)
        try ingest(store, [file])
        let rows = try rawRows(store)
        #expect(rows.count == 300_000)
        for k in stride(from: 0, to: 300_000, by: 7919) {
            #expect(rows[k] == StoredRawRow(line: k + 2, user: "user\(k % 997)", item: "item\(k % 1013)",
                                      rating: Double(k % 5 + 1), ts: Int64(1_000_000 + k)))
        }
    }
}

@Suite(.tags(.medium)) struct IngestFailureTests {
    /// A read error deep into a file (here a truncated gzip stream) fails the source after
    /// many rows were parsed and written: the whole source must roll back.
    @Test func truncatedGzipAfterManyRowsStoresNothing() throws {
        let scratch = Scratch()
        let store = try scratch.store()
        var text = "user,item,ts\n"
        for k in 0..<200_000 { text += "u\(k % 5003),i\(k % 7919),\(1_600_000_000 + k)\n" }
        let whole = try scratch.writeGzip("whole.csv.gz", text)
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: whole)))
        let cut = scratch.write("cut.csv.gz", bytes: Array(bytes[0..<(bytes.count * 3 / 4)]))
        let report = try ingest(store, [cut])
        #expect(report.failures == [.unreadable(path: cut, reason: "gzip stream is truncated")])
        for table in ["raw_interactions", "ingest_rejects"] { #expect(try count(store, table) == 0) }
        #expect(try store.queue.read { try String.fetchAll($0, sql: "SELECT status FROM ingest_batches") } == ["refused"])
        #expect(try ingest(store, [whole]).failures.isEmpty)
        #expect(try count(store, "raw_interactions") == 200_000)
    }
}

/// Log events kept for a test to read.
final class CapturedLog: LogHandler, @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [(String, Logger.Metadata)] = []
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        lock.withLock { lines.append(("\(event.message)", event.metadata ?? [:])) }
    }

    var events: [(String, Logger.Metadata)] { lock.withLock { lines } }
}

@Suite(.tags(.medium)) struct IngestProgressTests {
    /// Progress counts the bytes of the file as stored (compressed), across sources, in MB.
    @Test func progressCountsFileBytesAcrossSources() throws {
        let scratch = Scratch()
        // 3 MB of CSV that compresses well, then a plain 1.5 MB file.
        let rows = (0..<150_000).map { "u\($0 % 997),i\($0 % 313),4\n" }.joined()
        let compressed = try scratch.writeGzip("a.csv.gz", "user_id,item_id,rating\n" + rows)
        let plain = scratch.write("b.csv", "user_id,item_id,rating\n" + String(repeating: "u1,i1,5\n", count: 200_000))
        let sizes = try [compressed, plain].map { try FileByteSource.size(path: $0) }
        let captured = CapturedLog()
        let context = StageContext(store: try scratch.store(), logger: Logger(label: "test") { _ in captured }, runID: 1)
        let progress = IngestProgress(totalBytes: sizes.reduce(0, +), context: context, interval: 0)
        var decompressed = 0
        for (path, size) in zip([compressed, plain], sizes) {
            let source = try openByteSource(path: path) { progress.reading($0) }
            let buffer = UnsafeMutableRawPointer.allocate(byteCount: 1 << 16, alignment: 16)
            defer { buffer.deallocate() }
            while case let n = try source.read(into: buffer, count: 1 << 16), n > 0 { decompressed += n }
            progress.finished(source: size)
        }
        #expect(decompressed > sizes.reduce(0, +))  // the counts are of file bytes, not decompressed ones
        let events = captured.events.filter { $0.0 == "progress" }
        let done = events.compactMap { Int("\($0.1["done"] ?? "")") }
        let totalMB = (sizes.reduce(0, +) + (1 << 20) - 1) >> 20
        #expect(events.count >= 2 && events.allSatisfy { "\($0.1["unit"] ?? "")" == "MB" && "\($0.1["total"] ?? "")" == "\(totalMB)" })
        #expect(done == done.sorted() && done.last == totalMB)
    }

    /// The ingest stage reports its progress over all its sources.
    @Test func ingestLogsProgressOverItsSources() throws {
        let scratch = Scratch()
        let rows = (0..<120_000).map { "u\($0 % 997),i\($0 % 313),4\n" }.joined()
        let files = [scratch.write("a.csv", "user_id,item_id,rating\n" + rows), try scratch.writeGzip("b.csv.gz", "user_id,item_id,rating\n" + rows)]
        let total = try files.reduce(0) { $0 + (try FileByteSource.size(path: $1)) }
        let captured = CapturedLog()
        IngestStage.progressInterval = 0
        defer { IngestStage.progressInterval = 2 }
        try StageRunner.run(try IngestStage(config: IngestStage.Config(sources: files)), store: try scratch.store(), logger: Logger(label: "test") { _ in captured })
        let done = captured.events.filter { $0.0 == "progress" }.map { "\($0.1["done"] ?? "")/\($0.1["total"] ?? "")" }
        let mb = (total + (1 << 20) - 1) >> 20
        #expect(done.count >= 2 && done.allSatisfy { $0.hasSuffix("/\(mb)") } && done.last == "\(mb)/\(mb)", "\(done)")
    }
}

@Suite(.tags(.medium)) struct IngestTimeUnitTests {
    /// Millisecond times are refused as seconds (never stored as the year 50,000), with the
    /// hint in the reject; with --time-unit ms they are stored in seconds.
    @Test func millisecondsAreNotTakenForSeconds() throws {
        let scratch = Scratch()
        let store = try scratch.store()
        let file = scratch.write("ms.csv", "user,item,ts\nu1,i1,1709208000123\nu2,i2,1709208060456\n")
        let refused = try ingest(store, [file])
        guard case .tooManyRejects(_, 2, 2, _, let example, _)? = refused.failures.first else {
            Issue.record("expected the source refused, got \(refused.failures)"); return
        }
        #expect(example.contains("looks like milliseconds; use --time-unit ms"), "\(example)")
        #expect(try count(store, "raw_interactions") == 0)
        // One such row among good ones is rejected with its reason; the others are stored.
        let good = (0..<20).map { "u\($0),i\($0),1709208000" }.joined(separator: "\n")
        let mixed = try ingest(store, [scratch.write("mixed.csv", "user,item,ts\n\(good)\nu9,i9,1709208000123\n")])
        #expect(mixed.failures.isEmpty)
        let reasons = try store.queue.read { try String.fetchAll($0, sql: """
            SELECT r.reason || ': ' || r.detail FROM ingest_rejects r JOIN ingest_batches b USING (batch_id) WHERE b.status = 'stored'
            """) }
        #expect(reasons.count == 1 && reasons[0].hasPrefix("bad_timestamp: ") && reasons[0].contains("use --time-unit ms"), "\(reasons)")
        #expect(try count(store, "raw_interactions") == 20)
        let stored = try ingest(store, [scratch.write("ms2.csv", "user,item,ts\nu1,i1,1709208000123\n")], timeUnit: .ms)
        #expect(stored.failures.isEmpty)
        #expect(try store.queue.read { try Int64.fetchOne($0, sql: "SELECT ts FROM raw_interactions WHERE user_key = 'u1' ORDER BY rowid DESC") } == 1_709_208_000)
    }
}

@Suite(.tags(.medium)) struct IngestControlCharacterTests {
    /// A NUL (or any C0 control character, or DEL) in a key rejects the row: such keys would
    /// be cut short in C strings and two users could become one.
    @Test func keysWithControlCharactersAreRejected() throws {
        let scratch = Scratch()
        let store = try scratch.store()
        var bytes = Array("user,item\n".utf8)
        for k in 0..<40 { bytes += Array("u\(k),i\(k)\n".utf8) }
        bytes += Array("a".utf8) + [0x00] + Array("x,i1\n".utf8)  // line 42
        bytes += Array("a".utf8) + [0x00] + Array("y,i2\n".utf8)  // line 43: the same user once cut at the NUL
        bytes += Array("b,i".utf8) + [0x7F] + Array("\n".utf8)    // line 44
        bytes += Array("\"c\td\",i3\n".utf8)                   // line 45: a tab inside a quoted field
        let report = try ingest(store, [scratch.write("nul.csv", bytes: bytes)])
        #expect(report.failures.isEmpty)
        #expect(try count(store, "raw_interactions") == 40)
        let rejects = try store.queue.read { try Row.fetchAll($0, sql: "SELECT line, reason, detail FROM ingest_rejects ORDER BY line") }
        #expect(rejects.map { $0["line"] as Int } == [42, 43, 44, 45])
        #expect(rejects.allSatisfy { $0["reason"] == "control_character" })
        #expect((rejects[0]["detail"] as String) == "user key has the control character 0x00 at byte 2")
        #expect((rejects[2]["detail"] as String) == "item key has the control character 0x7F at byte 2")
    }
}
