import Foundation
import GRDB
import RecpipeTestSupport
import Testing
@testable import RecpipeModels
@testable import RecpipeStages
@testable import RecpipeStore

/// Poison sources are recorded as refused and passed over; the others are stored.
@Suite(.tags(.medium)) struct IngestQuarantineTests {
    struct Batch: Equatable {
        var source: String
        var status: String
        var rowsRead: Int
        var rowsRejected: Int
        var reason: String?
        var seenRun: Int64
    }

    func batches(_ store: Store) throws -> [Batch] {
        try store.queue.read { db in
            try Row.fetchAll(db, sql: """
                SELECT source, status, rows_read, rows_rejected, reason, seen_run_id FROM ingest_batches ORDER BY batch_id
                """).map {
                Batch(source: URL(fileURLWithPath: $0["source"]).lastPathComponent, status: $0["status"], rowsRead: $0["rows_read"],
                      rowsRejected: $0["rows_rejected"], reason: $0["reason"], seenRun: $0["seen_run_id"])
            }
        }
    }

    func latestRun(_ store: Store) throws -> Int64 {
        try store.queue.read { try Int64.fetchOne($0, sql: "SELECT max(run_id) FROM stage_runs WHERE stage = 'ingest'")! }
    }

    /// A drop folder holding a good file and three poison ones.
    func dropFolder(_ scratch: Scratch) throws -> String {
        let dir = scratch.path("drop")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        scratch.write("drop/a-good.csv", "user,item\n" + (0..<20).map { "u\($0),i\($0)" }.joined(separator: "\n") + "\n")
        scratch.write("drop/b-header-only.csv", "user,item\n")
        scratch.write("drop/c-bad.csv", "user,item,rating\n" + (0..<1500).map { "u\($0),i\($0),lots" }.joined(separator: "\n") + "\n")
        scratch.write("drop/d-broken.csv.gz", bytes: [0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0xff, 0xff, 0x00])
        return dir
    }

    @Test func poisonSourcesAreRecordedAndTheOthersStored() throws {
        let scratch = Scratch()
        let store = try scratch.store()
        let drop = try dropFolder(scratch)
        let report = try ingest(store, [drop], strict: false)
        #expect(report.failures.isEmpty)
        #expect(report.summary.filter { $0.hasPrefix("refused (batch ") }.count == 3, "\(report.summary)")
        let run = try latestRun(store)
        let recorded = try batches(store)
        #expect(recorded.map(\.source) == ["a-good.csv", "b-header-only.csv", "c-bad.csv", "d-broken.csv.gz"])
        #expect(recorded.map(\.status) == ["stored", "refused", "refused", "refused"])
        #expect(recorded[1].reason?.hasSuffix("b-header-only.csv: no data rows") == true, "\(recorded[1])")
        #expect(recorded[2].reason?.contains("1500 of 1500 rows rejected") == true, "\(recorded[2])")
        #expect(recorded[2].rowsRead == 1500 && recorded[2].rowsRejected == 1500)
        #expect(recorded[3].reason?.contains("cannot read") == true, "\(recorded[3])")
        #expect(recorded.allSatisfy { $0.seenRun == run })
        #expect(try count(store, "raw_interactions") == 20)
        // The refused file keeps its first thousand rejects, with their lines.
        try store.queue.read { db throws in
            let kept = try Int.fetchAll(db, sql: """
                SELECT line FROM ingest_rejects WHERE batch_id = (SELECT batch_id FROM ingest_batches WHERE source LIKE '%c-bad.csv')
                ORDER BY line
                """)
            #expect(kept.count == RowSink.keptRejects && kept.first == 2 && kept.last == 1001)
            #expect(try String.fetchOne(db, sql: "PRAGMA foreign_key_check") == nil)
        }

        // The next night: the same poison content is skipped without being read, and marked
        // as met by this run; the good file is a repeat.
        let again = try ingest(store, [drop], strict: false)
        #expect(again.failures.isEmpty)
        // (The broken gzip file too: its bytes, hence its hash, are known.)
        #expect(again.summary.filter { $0.contains("refused before as batch") }.count == 3, "\(again.summary)")
        let rerun = try latestRun(store)
        let after = try batches(store)
        #expect(after.count == 4)
        #expect(after[1...].allSatisfy { $0.seenRun == rerun } && after[0].seenRun == run)

        // Retried: read again and refused again, the record replaced, not repeated.
        let retried = try ingest(store, [drop], strict: false, retryRefused: true)
        #expect(retried.summary.filter { $0.hasPrefix("refused (batch ") }.count == 3)
        #expect(try batches(store).filter { $0.source == "c-bad.csv" }.count == 1)

        // Fixed upstream (new content): stored; the old refusal stays as the record.
        scratch.write("drop/c-bad.csv", "user,item,rating\n" + (0..<15).map { "u\($0),i\($0),4" }.joined(separator: "\n") + "\n")
        #expect(try ingest(store, [drop], strict: false).failures.isEmpty)
        #expect(try batches(store).filter { $0.source == "c-bad.csv" }.map(\.status) == ["refused", "stored"])
        #expect(try count(store, "raw_interactions") == 35)
    }

    @Test func strictFailsOnEveryRefusedSource() throws {
        let scratch = Scratch()
        let store = try scratch.store()
        let drop = try dropFolder(scratch)
        let report = try ingest(store, [drop], strict: true)
        #expect(report.failures.count == 3)
        #expect(try count(store, "raw_interactions") == 20)  // still stored: each source is its own transaction
        let again = try ingest(store, [drop], strict: true)
        #expect(again.failures.count == 3, "\(again.failures)")  // refused before: still failures
    }

    /// A multi-million-line file that fails line by line is judged on its first rows: reading
    /// stops, the rejects never pile up in memory (scripts/bench-hostile measures the
    /// 5,000,000-line case).
    @Test func aFileOfBadLinesStopsBeingReadEarly() throws {
        let scratch = Scratch()
        let store = try scratch.store()
        var text = "user,item,rating\n"
        text.reserveCapacity(200_000 * 14)
        for k in 0..<200_000 { text += "u\(k),i\(k),x\n" }
        let file = scratch.write("hostile.csv", text)
        let report = try ingest(store, [file], strict: false)
        #expect(report.failures.isEmpty)
        let batch = try batches(store)[0]
        #expect(batch.status == "refused")
        #expect(batch.rowsRead >= RowSink.judgeAfter && batch.rowsRead < 40_000, "\(batch)")
        #expect(batch.reason?.contains("of the first") == true && batch.reason?.contains("reading stopped") == true, "\(batch)")
        #expect(try count(store, "ingest_rejects") == RowSink.keptRejects)
        #expect(try count(store, "raw_interactions") == 0)
    }

    @Test func anEmptyDropFolderOrAPatternMatchingNothingIsAnError() throws {
        let scratch = Scratch()
        let store = try scratch.store()
        let empty = scratch.path("empty")
        try FileManager.default.createDirectory(atPath: empty + "/sub", withIntermediateDirectories: true)
        scratch.write("empty/.hidden", "user,item\na,b\n")
        let pattern = scratch.path("exports/*.csv")
        for source in [empty, pattern] {
            do {
                try ingest(store, [source], strict: false)
                Issue.record("\(source): expected an error")
            } catch let error as StageError {
                guard case .unreadable(source, let reason) = error else { Issue.record("\(error)"); continue }
                #expect(reason.contains("--allow-empty"), "\(reason)")
            }
        }
        #expect(try count(store, "ingest_batches") == 0)
        #expect(try ingest(store, [empty, pattern], strict: false, allowEmpty: true).failures.isEmpty)
        // A pattern that matches is expanded, sorted.
        try FileManager.default.createDirectory(atPath: scratch.path("exports"), withIntermediateDirectories: true)
        scratch.write("exports/2.csv", "user,item\nb,c\n")
        scratch.write("exports/1.csv", "user,item\na,b\n")
        try ingest(store, [pattern], strict: false)
        #expect(try batches(store).map(\.source) == ["1.csv", "2.csv"])
    }
}

/// Keys are kept byte for byte: exact or refused.
@Suite(.tags(.small)) struct ExactKeyTests {
    /// BLOB keys are refused; text is read with its byte length, so a zero byte or invalid
    /// UTF-8 inside it is seen and refused rather than cut or replaced.
    @Test func sqliteSourcesGiveKeysWhole() throws {
        let scratch = Scratch()
        let sourcePath = scratch.path("app.sqlite")
        try DatabaseQueue(path: sourcePath).write { db in
            try db.execute(sql: """
                CREATE TABLE t (user, item);
                INSERT INTO t VALUES ('alice', 'i1'), (X'626F62', 'i1'), (CAST(X'610062' AS TEXT), 'i2'),
                                     (CAST(X'FF61' AS TEXT), 'i3'), ('bob', X''), ('carol', 7), ('dave', 2.5);
                """)
        }
        let store = try scratch.store()
        let query = "SELECT user, item FROM t ORDER BY rowid"
        let report = try ingest(store, [sourcePath], format: .sqlite, columns: SourceColumns(user: "user", item: "item"),
                                query: query, maxRejected: 1, strict: false)
        #expect(report.failures.isEmpty)
        #expect(try rejects(store).map { "\($0.line) \($0.reason)" } == ["2 blob_key", "3 control_character", "4 invalid_utf8", "5 blob_key"])
        #expect(try rawRows(store).map { "\($0.user) \($0.item)" } == ["alice i1", "carol 7", "dave 2.5"])
        // The same rows hash the same: skipped.
        let again = try ingest(store, [sourcePath], format: .sqlite, columns: SourceColumns(user: "user", item: "item"),
                               query: query, maxRejected: 1, strict: false)
        #expect(again.summary.first?.contains("skipped") == true, "\(again.summary)")
    }

    /// "é" as one code point (NFC) and as e + combining accent (NFD) are equal Swift strings
    /// but different keys: two users, two items, through clean, training and scoring.
    @Test func nfcAndNFDSpellingsStayTwoKeys() throws {
        let scratch = Scratch()
        let store = try scratch.store()
        let nfc = "jos\u{E9}", nfd = "jose\u{301}"
        #expect(nfc == nfd && Array(nfc.utf8) != Array(nfd.utf8))
        var text = "user,item\n"
        for user in [nfc, nfd] {
            for item in 0..<6 { text += "\(user),item\(item)\n" }
        }
        for other in 0..<30 {
            for item in 0..<6 { text += "u\(other),item\((other + item) % 8)\n" }
        }
        // Two items spelled both ways too.
        for other in 0..<10 { text += "u\(other),caf\u{E9}\nu\(other + 10),cafe\u{301}\n" }
        try ingest(store, [scratch.write("keys.csv", text)])
        try clean(store) { $0.minRating = nil; $0.heldOutUsers = 3; $0.minUserInteractions = 1 }
        try store.queue.read { db throws in
            let users = try String.fetchAll(db, sql: "SELECT user_key FROM users WHERE user_key LIKE 'jos%'")
            #expect(Set(users.map { Array($0.utf8) }) == [Array(nfc.utf8), Array(nfd.utf8)])
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM items WHERE item_key LIKE 'caf%'") == 2)
        }
        var train = TrainStage.Config()
        train.kind = .popularity
        try StageRunner.run(try TrainStage(config: train), store: store, logger: quietLogger)
        var score = ScoreStage.Config()
        score.kind = .popularity
        score.k = 3
        try StageRunner.run(try ScoreStage(config: score), store: store, logger: quietLogger)
        try store.queue.read { db throws in
            #expect(try Int.fetchOne(db, sql: "SELECT count(DISTINCT user_key) FROM recommendations WHERE user_key LIKE 'jos%'") == 2)
        }
        let record = try store.queue.read { try ModelStore.record(try ModelStore.published(kind: .popularity, in: $0)!, in: $0) }
        let positions = record.positions(of: ["caf\u{E9}", "cafe\u{301}"])
        #expect(positions[0] != nil && positions[1] != nil && positions[0] != positions[1])
    }
}
