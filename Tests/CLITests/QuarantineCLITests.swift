import Foundation
import GRDB
import RecpipeTestSupport
import Testing

@Suite(.serialized, .tags(.large)) struct QuarantineCLITests {
    /// A poison file in the nightly's drop folder no longer stops every night: the run goes
    /// on with the other files, the refusal is recorded with its reason, counted in the
    /// metrics, and the next night skips it with a warning.
    @Test func aPoisonFileDoesNotStopTheNightly() throws {
        let dir = scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/drop", withIntermediateDirectories: true)
        let synth = try recpipe(["synth", "--out", "drop/events.csv", "--users", "300", "--items", "200", "--interactions", "8000"], in: dir)
        #expect(synth.status == 0)
        try "user,item,timestamp\n".write(toFile: dir + "/drop/header-only.csv", atomically: true, encoding: .utf8)
        try """
            name: nightly
            database: recs.sqlite
            stages:
              ingest: { uses: ingest, with: { sources: "\(dir)/drop/*.csv" } }
              clean:  { uses: clean, needs: [ingest], with: { heldout_users: 30 } }
              train:  { uses: train, needs: [clean], with: { model: popularity } }
              score:  { uses: score, needs: [train], with: { model: popularity, k: 10 } }
            """.write(toFile: dir + "/nightly.yaml", atomically: true, encoding: .utf8)
        let first = try recpipe(["run", "nightly.yaml", "--metrics", "nightly.prom"], in: dir)
        #expect(first.status == 0, "\(first.stderr)")
        let refusedLines = first.stderr.split(separator: "\n").filter { $0.contains("source refused") }
        #expect(refusedLines.count == 1 && refusedLines[0].contains("header-only.csv: no data rows"), "\(first.stderr)")
        let metrics = try String(contentsOfFile: dir + "/nightly.prom", encoding: .utf8)
        #expect(metrics.contains("recpipe_ingest_refused_sources{pipeline=\"nightly\"} 1.0"), "\(metrics)")
        // The README's query lists it.
        let listed = try DatabaseQueue(path: dir + "/recs.sqlite").read { db in
            try Row.fetchAll(db, sql: "SELECT source, reason, content_hash FROM ingest_batches WHERE status = 'refused' ORDER BY batch_id")
        }
        #expect(listed.count == 1 && (listed[0]["source"] as String).hasSuffix("header-only.csv"))
        #expect(try liveLists(dir + "/recs.sqlite").count > 0)

        // A second file lands: ingest reruns, skips the refused one with a warning.
        let more = try recpipe(["synth", "--out", "drop/more.csv", "--users", "50", "--items", "200", "--interactions", "600",
                                "--seed", "9"], in: dir)
        #expect(more.status == 0)
        let second = try recpipe(["run", "nightly.yaml", "--metrics", "nightly.prom"], in: dir)
        #expect(second.status == 0, "\(second.stderr)")
        #expect(second.stderr.contains("source skipped: its content was refused before"), "\(second.stderr)")
        #expect(try String(contentsOfFile: dir + "/nightly.prom", encoding: .utf8)
            .contains("recpipe_ingest_refused_sources{pipeline=\"nightly\"} 1.0"))

        // By hand with --strict, the refused file fails the command: 65.
        let strict = try recpipe(["ingest", "--db", "recs.sqlite", "--strict", "drop/header-only.csv"], in: dir)
        #expect(strict.status == 65, "\(strict.stderr)")
        // An empty drop folder: 66, one line; accepted with --allow-empty.
        try FileManager.default.createDirectory(atPath: dir + "/empty", withIntermediateDirectories: true)
        let empty = try recpipe(["ingest", "--db", "recs.sqlite", "empty"], in: dir)
        #expect(empty.status == 66)
        let errorLines = empty.stderr.split(separator: "\n").filter { $0.contains(" error ") }
        #expect(errorLines.count == 1 && errorLines[0].contains("empty: cannot read: the directory holds no files"), "\(empty.stderr)")
        #expect(try recpipe(["ingest", "--db", "recs.sqlite", "--allow-empty", "empty"], in: dir).status == 0)
        #expect(try recpipe(["ingest", "--db", "recs.sqlite", "nothing-*.csv"], in: dir).status == 66)
    }

    /// A file name can hold a newline: the log still has one line per event, and nothing a
    /// source holds can pass for an error line of its own.
    @Test func logLinesCannotBeForged() throws {
        let dir = scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let evil = "x\n2026-01-01T00:00:00Z error forged\r.csv"
        try "user,item\n".write(toFile: dir + "/" + evil, atomically: true, encoding: .utf8)
        let result = try recpipe(["ingest", "--db", "recs.sqlite", evil], in: dir)
        #expect(result.status == 0, "\(result.stderr)")
        let lines = result.stderr.split(separator: "\n", omittingEmptySubsequences: false).filter { !$0.isEmpty }
        #expect(lines.allSatisfy { $0.wholeMatch(of: /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ (debug|info|notice|warning|error|critical) .*/) != nil },
                "\(lines)")
        #expect(!result.stderr.contains("\n2026-01-01T00:00:00Z error forged"))
        #expect(result.stderr.contains(#"x\n2026-01-01T00:00:00Z error forged\r.csv"#), "\(result.stderr)")
    }
}
