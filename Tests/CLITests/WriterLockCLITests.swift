import Foundation
import GRDB
import Logging
import RecpipeStore
import RecpipeTestSupport
import Testing

@Suite(.serialized, .tags(.large)) struct WriterLockCLITests {
    /// A second writer exits with 75 naming the holder, whatever path names the file; with
    /// --wait it waits; readers never wait and never migrate.
    @Test func oneWriterPerDatabaseFile() throws {
        let (dir, db) = try publishedDatabase()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let before = try liveLists(db)
        try FileManager.default.createSymbolicLink(atPath: dir + "/link.sqlite", withDestinationPath: db)
        try FileManager.default.createDirectory(atPath: dir + "/sub", withIntermediateDirectories: true)
        #expect(link(db, dir + "/sub/hard.sqlite") == 0)
        var holder: Store? = try Store(path: db, logger: quietLogger, access: .init(command: "test holder"))
        for path in ["recs.sqlite", "./sub/../recs.sqlite", "link.sqlite", "sub/hard.sqlite"] {
            let second = try recpipe(["score", "--db", path, "--model", "ease", "--k", "5"], in: dir)
            #expect(second.status == 75, "\(path): \(second.stderr)")
            let lines = second.stderr.split(separator: "\n")
            // The holder is named beside the file's resolved path; a hard link elsewhere is
            // locked all the same, its holder unknown.
            let holder = path.hasPrefix("sub/hard") ? "(holder unknown)" : "(pid \(getpid()) on "
            #expect(lines.count == 1 && lines[0].contains("another command is writing this database \(holder)"), "\(path): \(second.stderr)")
        }
        #expect(try recpipe(["score", "--db", "recs.sqlite", "--model", "ease"], in: dir).stderr.contains(": test holder"))
        for command in [["migrate"], ["ingest", "events.csv"], ["clean"], ["train", "--model", "popularity"], ["evaluate"],
                        ["feedback"], ["rollback"], ["augment"]] {
            #expect(try recpipe([command[0], "--db", "recs.sqlite"] + command.dropFirst(), in: dir).status == 75, "\(command)")
        }
        let started = Date()
        let timedOut = try recpipe(["score", "--db", "recs.sqlite", "--model", "ease", "--wait", "1"], in: dir)
        #expect(timedOut.status == 75 && timedOut.stderr.contains("after waiting 1 s"), "\(timedOut.stderr)")
        #expect(Date().timeIntervalSince(started) >= 1)
        // Readers go on while the writer holds the lock, and so do shards (they only read it).
        let shard = try recpipe(["score", "--db", "recs.sqlite", "--model", "ease", "--shard", "0/2", "--shard-out", "s0.sqlite"], in: dir)
        #expect(shard.status == 0, "\(shard.stderr)")
        #expect(try recpipe(["recommend", "--db", "recs.sqlite", "--user", before.keys.sorted()[0]], in: dir).status == 0)
        #expect(try recpipe(["history", "--db", "recs.sqlite"], in: dir).status == 0)
        #expect(try recpipe(["report", "--db", "recs.sqlite", "--out", "report.html"], in: dir).status == 0)
        // A writer with a bare --wait gets the lock when the holder lets go.
        let waiting = try startRecpipe(["score", "--db", "link.sqlite", "--model", "ease", "--k", "5", "--wait"], in: dir)
        #expect(eventually { ((try? String(contentsOfFile: waiting.errorFile, encoding: .utf8)) ?? "").contains("waiting for the writer lock") })
        holder = nil
        waiting.waitUntilExit()
        #expect(waiting.terminationStatus == 0, "\((try? String(contentsOfFile: waiting.errorFile, encoding: .utf8)) ?? "")")
        #expect(try liveLists(db).values.allSatisfy { $0.split(separator: " ").count == 5 })
        _ = holder
    }

    /// Commands that only read never migrate: on an older schema they exit with 78 and say
    /// to run migrate.
    @Test func readersNeverMigrate() throws {
        let (dir, db) = try publishedDatabase()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let queue = try DatabaseQueue(path: db)
        let newest = try queue.write { db -> Int in
            let newest = try Int.fetchOne(db, sql: "SELECT max(version) FROM schema_migrations")!
            try db.execute(sql: "DELETE FROM schema_migrations WHERE version = ?", arguments: [newest])
            return newest
        }
        try """
            name: tiny
            database: recs.sqlite
            stages:
              score: { uses: score, with: { model: ease } }
            """.write(toFile: dir + "/tiny.yaml", atomically: true, encoding: .utf8)
        for command in [["recommend", "--db", "recs.sqlite", "--user", "u1"], ["history", "--db", "recs.sqlite"],
                        ["report", "--db", "recs.sqlite", "--out", "r.html"], ["plan", "tiny.yaml"], ["status", "tiny.yaml"]] {
            let result = try recpipe(command, in: dir)
            #expect(result.status == 78, "\(command): \(result.stderr)")
            #expect(result.stderr.contains("run recpipe migrate --db"), "\(command): \(result.stderr)")
        }
        #expect(try queue.read { try Int.fetchOne($0, sql: "SELECT max(version) FROM schema_migrations") } == newest - 1)
        // A database that does not exist yet plans as empty, and nothing is created.
        try """
            name: fresh
            database: fresh.sqlite
            stages:
              score: { uses: score }
            """.write(toFile: dir + "/fresh.yaml", atomically: true, encoding: .utf8)
        let plan = try recpipe(["plan", "fresh.yaml"], in: dir)
        #expect(plan.status == 0 && plan.stdout.contains("never run"), "\(plan.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir + "/fresh.sqlite"))
    }

    /// Another application's SQLite file is left as it was (not even switched to WAL) unless
    /// migrate --adopt is given.
    @Test func foreignDatabasesAreRefused() throws {
        let dir = scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let app = dir + "/app.sqlite"
        try DatabaseQueue(path: app).write { try $0.execute(sql: "CREATE TABLE orders (id INTEGER PRIMARY KEY, sku TEXT)") }
        try "user,item\nu1,i1\n".write(toFile: dir + "/e.csv", atomically: true, encoding: .utf8)
        let refused = try recpipe(["ingest", "--db", "app.sqlite", "e.csv"], in: dir)
        #expect(refused.status == 65, "\(refused.stderr)")
        #expect(refused.stderr.contains("app.sqlite: a SQLite database of another application") && refused.stderr.contains("--adopt"))
        let queue = try DatabaseQueue(path: app)
        #expect(try queue.read { try String.fetchAll($0, sql: "SELECT name FROM sqlite_master") } == ["orders"])
        #expect(try queue.read { try String.fetchOne($0, sql: "PRAGMA journal_mode") } == "delete")
        #expect(try recpipe(["recommend", "--db", "app.sqlite", "--user", "u1"], in: dir).status == 65)
        try "not a database at all".write(toFile: dir + "/text.sqlite", atomically: true, encoding: .utf8)
        #expect(try recpipe(["migrate", "--db", "text.sqlite"], in: dir).status == 65)
        let adopted = try recpipe(["migrate", "--db", "app.sqlite", "--adopt"], in: dir)
        #expect(adopted.status == 0, "\(adopted.stderr)")
        #expect(try recpipe(["ingest", "--db", "app.sqlite", "e.csv"], in: dir).status == 0)
    }
}
