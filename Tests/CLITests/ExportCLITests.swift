import Foundation
import GRDB
import RecpipeTestSupport
import Testing

/// `recpipe export`: the serving snapshot, run as the real CLI.
@Suite(.serialized, .tags(.large)) struct ExportCLITests {
    /// Opens a snapshot read only, as a serving machine would.
    func snapshot(_ path: String) throws -> DatabaseQueue {
        var config = Configuration()
        config.readonly = true
        return try DatabaseQueue(path: path, configuration: config)
    }

    /// Every row of `sql`, each as one text, sorted.
    func rows(_ sql: String, in queue: DatabaseQueue) throws -> [String] {
        try queue.read { db in
            try Row.fetchAll(db, sql: sql).map { row in row.databaseValues.map { "\($0)" }.joined(separator: "|") }.sorted()
        }
    }

    static let views = ["recommendations", "recommendations_with_items", "recommendations_explained", "recommended_items",
                        "live_recommendation_run"]

    /// The snapshot's views give exactly what the database's give; it holds the live run
    /// only, the metadata, and a popular list without hidden items; it is read only and
    /// has no WAL.
    @Test func snapshotHoldsTheLiveListsAndTheirViews() throws {
        let (dir, db) = try publishedDatabase()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // A second run, then back: the database holds two runs' rows, one of them live.
        try recpipeSucceeding(["score", "--db", "recs.sqlite", "--model", "ease", "--k", "5"], in: dir)
        try recpipeSucceeding(["rollback", "--db", "recs.sqlite"], in: dir)
        let database = try DatabaseQueue(path: db)
        let items = try database.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM items") }
        let mostPopular = try database.write { db -> String in
            try db.execute(sql: "INSERT INTO item_metadata (item_key, title, category) SELECT item_key, 'Title ' || item_key, 'c' FROM items")
            let top = try String.fetchOne(db, sql: "SELECT item_key FROM items ORDER BY train_interactions DESC, item_idx LIMIT 1")!
            try db.execute(sql: "INSERT INTO item_availability (item_key, hidden) VALUES (?, 1)", arguments: [top])
            return top
        }

        let export = try recpipe(["export", "--db", "recs.sqlite", "--out", "serving.sqlite"], in: dir)
        #expect(export.status == 0, "\(export.stderr)")
        #expect(export.stdout.contains("300 users, 3000 rows"), "\(export.stdout)")
        let path = dir + "/serving.sqlite"
        let serving = try snapshot(path)
        for view in Self.views {
            let expected = try rows("SELECT * FROM \(view)", in: database)
            #expect(!expected.isEmpty)
            #expect(try rows("SELECT * FROM \(view)", in: serving) == expected, "\(view)")
        }
        try serving.read { db in
            let tables = try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            #expect(tables == ["item_metadata", "live_recommendations", "models", "popular_items", "recommendation_rows",
                               "score_runs", "serving_snapshot"])
            #expect(try Int.fetchOne(db, sql: "SELECT count(DISTINCT run_id) FROM recommendation_rows") == 1)
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM item_metadata") == items)
            let info = try Row.fetchOne(db, sql: "SELECT * FROM serving_snapshot")!
            #expect(info["users"] as Int == 300 && info["rows"] as Int == 3000 && info["model_kind"] as String == "ease")
            let popular = try String.fetchAll(db, sql: "SELECT item_key FROM popular_items ORDER BY rank")
            #expect(popular.count == 10 && !popular.contains(mostPopular))
            #expect(try String.fetchAll(db, sql: "PRAGMA integrity_check") == ["ok"])
            #expect(try String.fetchOne(db, sql: "PRAGMA journal_mode") != "wal")
        }
        let mode = (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int) ?? 0
        #expect(mode & 0o222 == 0, "mode \(String(mode, radix: 8))")
        #expect(!FileManager.default.fileExists(atPath: path + "-wal"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.contains(".tmp-") }.isEmpty)
    }

    /// A second export replaces the snapshot with the lists live now; the output may name
    /// only a snapshot; with nothing published it exits 65; a killed export's temporary file
    /// goes away.
    @Test func exportReplacesOnlySnapshots() throws {
        let (dir, db) = try publishedDatabase()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try recpipeSucceeding(["export", "--db", "recs.sqlite", "--out", "serving.sqlite"], in: dir)
        try recpipeSucceeding(["score", "--db", "recs.sqlite", "--model", "ease", "--k", "3"], in: dir)
        // Left by an export killed with -9: its process is gone.
        let gone = Process()
        gone.executableURL = URL(fileURLWithPath: "/bin/true")
        try gone.run()
        gone.waitUntilExit()
        let abandoned = dir + "/.serving.sqlite.tmp-\(gone.processIdentifier)"
        _ = FileManager.default.createFile(atPath: abandoned, contents: Data("partial".utf8))
        try recpipeSucceeding(["export", "serving", "--db", "recs.sqlite", "--out", "serving.sqlite"], in: dir)
        #expect(!FileManager.default.fileExists(atPath: abandoned))
        #expect(try rows("SELECT * FROM recommendations", in: snapshot(dir + "/serving.sqlite"))
            == rows("SELECT * FROM recommendations", in: DatabaseQueue(path: db)))
        #expect(try snapshot(dir + "/serving.sqlite").read { try Int.fetchOne($0, sql: "SELECT max(rank) FROM recommendations") } == 3)

        let before = try liveLists(db)
        let overDatabase = try recpipe(["export", "--db", "recs.sqlite", "--out", "recs.sqlite"], in: dir)
        #expect(overDatabase.status == 64 && overDatabase.stderr.contains("it is the database"), "\(overDatabase.stderr)")
        #expect(try liveLists(db) == before)
        try FileManager.default.copyItem(atPath: db, toPath: dir + "/other.sqlite")
        let overOther = try recpipe(["export", "--db", "recs.sqlite", "--out", "other.sqlite"], in: dir)
        #expect(overOther.status == 64 && overOther.stderr.contains("not a recpipe serving snapshot"), "\(overOther.stderr)")
        #expect(try liveLists(dir + "/other.sqlite") == before && integrity(dir + "/other.sqlite") == "ok")
        let noDirectory = try recpipe(["export", "--db", "recs.sqlite", "--out", "missing/serving.sqlite"], in: dir)
        #expect(noDirectory.status == 66 && noDirectory.stderr.contains("missing/serving.sqlite"), "\(noDirectory.stderr)")

        try recpipeSucceeding(["migrate", "--db", "empty.sqlite"], in: dir)
        let nothing = try recpipe(["export", "--db", "empty.sqlite", "--out", "empty-serving.sqlite"], in: dir)
        #expect(nothing.status == 65 && nothing.stderr.contains("no live lists yet"), "\(nothing.stderr)")
        #expect(nothing.stderr.split(separator: "\n").count == 1)
        #expect(!FileManager.default.fileExists(atPath: dir + "/empty-serving.sqlite"))
    }

    /// Exports while publishes move the live lists back and forth: every snapshot holds one
    /// complete set, the one live at some moment.
    @Test func exportsDuringPublishesAreWhole() throws {
        let (dir, db) = try publishedDatabase()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let lists = "SELECT user_key, group_concat(item_key, ' ') FROM (SELECT * FROM recommendations ORDER BY user_key, rank) GROUP BY user_key"
        let first = try rows(lists, in: DatabaseQueue(path: db))
        try recpipeSucceeding(["score", "--db", "recs.sqlite", "--model", "ease", "--k", "4"], in: dir)
        let second = try rows(lists, in: DatabaseQueue(path: db))
        #expect(first != second)
        // A shell loop of rollbacks, each a publish in its own process.
        let loop = Process()
        loop.executableURL = URL(fileURLWithPath: "/bin/sh")
        loop.arguments = ["-c", "for i in $(seq 1 40); do '\(recpipeBinary)' rollback --db recs.sqlite --wait --quiet >/dev/null || exit 1; done"]
        loop.currentDirectoryURL = URL(fileURLWithPath: dir)
        try loop.run()
        var exports = 0
        while loop.isRunning || exports < 3 {
            try recpipeSucceeding(["export", "--db", "recs.sqlite", "--out", "serving.sqlite"], in: dir)
            let exported = try rows(lists, in: snapshot(dir + "/serving.sqlite"))
            #expect(exported == first || exported == second)
            exports += 1
        }
        loop.waitUntilExit()
        #expect(loop.terminationStatus == 0)
        #expect(exports >= 3)
    }

    /// The clients the README shows: the sqlite3 shell and Python's sqlite3 module (each
    /// skipped where it is not installed).
    @Test func clientsReadTheSnapshot() throws {
        let (dir, db) = try publishedDatabase()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try recpipeSucceeding(["export", "--db", "recs.sqlite", "--out", "serving.sqlite"], in: dir)
        let user = try DatabaseQueue(path: db).read { try String.fetchOne($0, sql: "SELECT min(user_key) FROM recommendations")! }
        let expected = try DatabaseQueue(path: db).read {
            try String.fetchAll($0, sql: "SELECT item_key FROM recommendations WHERE user_key = ? ORDER BY rank", arguments: [user])
        }
        let python = """
            import sqlite3, sys
            db = sqlite3.connect("file:serving.sqlite?mode=ro", uri=True)
            query = '''SELECT rank, item_key, source FROM recommendations WHERE user_key = :user
                       UNION ALL
                       SELECT rank, item_key, 'fallback-popular' FROM popular_items
                       WHERE NOT EXISTS (SELECT 1 FROM recommendations WHERE user_key = :user)
                       ORDER BY rank'''
            for user in sys.argv[1:]:
                print(" ".join(item for _, item, _ in db.execute(query, {"user": user})))
            """
        if try recpipeShell("command -v python3 >/dev/null") == 0 {
            let out = try shellOutput(["python3", "-c", python, user, "never-seen"], in: dir)
            let lines = out.split(separator: "\n").map(String.init)
            #expect(lines.first == expected.joined(separator: " "))
            #expect(lines.count == 2 && lines[1].split(separator: " ").count == 10)
        }
        if try recpipeShell("command -v sqlite3 >/dev/null") == 0 {
            let out = try shellOutput(["sqlite3", "-readonly", "serving.sqlite",
                                       "SELECT item_key FROM recommendations WHERE user_key = '\(user)' ORDER BY rank"], in: dir)
            #expect(out.split(separator: "\n").map(String.init) == expected)
        }
    }

    /// Runs a program; returns its standard output (failing the test on a non-zero exit).
    func shellOutput(_ arguments: [String], in dir: String) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: dir)
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "\(arguments.first ?? "") exited \(process.terminationStatus)")
        return String(decoding: data, as: UTF8.self)
    }
}
