import Foundation
import GRDB
import Logging
import RecpipeStore
import RecpipeTestSupport
import Testing

/// A small database with an EASE model published and its top-10 lists live, built with the
/// real CLI in a fresh directory.
func publishedDatabase() throws -> (dir: String, db: String) {
    let dir = scratchDirectory()
    let steps: [[String]] = [
        ["synth", "--out", "events.csv", "--users", "300", "--items", "200", "--interactions", "8000", "--ratings"],
        ["ingest", "--db", "recs.sqlite", "events.csv"],
        ["clean", "--db", "recs.sqlite", "--heldout-users", "30"],
        ["train", "--db", "recs.sqlite", "--model", "ease", "--lambda", "100"],
        ["score", "--db", "recs.sqlite", "--model", "ease", "--k", "10"],
    ]
    for step in steps { try recpipeSucceeding(step, in: dir) }
    return (dir, dir + "/recs.sqlite")
}

struct CLIFailure: Error, CustomStringConvertible {
    var command: [String]
    var result: Result
    var description: String { "recpipe \(command.joined(separator: " ")) exited \(result.status): \(result.stderr)" }
}

/// Runs the CLI with --quiet; throws unless it exits 0.
func recpipeSucceeding(_ arguments: [String], in dir: String) throws {
    let result = try recpipe(arguments + ["--quiet"], in: dir)
    guard result.status == 0 else { throw CLIFailure(command: arguments, result: result) }
}

/// A file's size in bytes, 0 when it is not there.
func fileSize(_ path: String) -> Int { (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0 }

/// The live lists as one text per user (its items in rank order), and what pragma
/// integrity_check says.
func liveLists(_ db: String) throws -> [String: String] {
    let queue = try DatabaseQueue(path: db)
    return try queue.read { db in
        var lists: [String: String] = [:]
        for row in try Row.fetchAll(db, sql: "SELECT user_key, group_concat(item_key, ' ') AS items FROM (SELECT * FROM recommendations ORDER BY user_key, rank) GROUP BY user_key") {
            lists[row["user_key"]] = row["items"]
        }
        return lists
    }
}

/// What pragma integrity_check says: "ok", or its problems joined. SQLite 3.40.0 to 3.41.0
/// report "NULL value in T.C" for NOT NULL columns of WITHOUT ROWID tables whose primary key
/// is not their leading columns (augmented_interactions) when there is none: such a line
/// counts only if a query finds the NULL.
func integrity(_ path: String) throws -> String {
    try DatabaseQueue(path: path).read { db in
        let problems = try String.fetchAll(db, sql: "PRAGMA integrity_check").filter { line in
            guard let match = line.wholeMatch(of: /NULL value in (\w+)\.(\w+)/) else { return line != "ok" }
            return try Int.fetchOne(db, sql: "SELECT count(*) FROM \(match.1) WHERE \(match.2) IS NULL") != 0
        }
        return problems.isEmpty ? "ok" : problems.prefix(3).joined(separator: "; ")
    }
}


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

@Suite(.serialized, .tags(.large)) struct GuardedPublishingCLITests {
    /// The operator's mistakes end with one line and an exit code; the live lists stay
    /// complete and unchanged, and the database intact.
    @Test func mistakesLeaveTheLiveListsAlone() throws {
        let (dir, db) = try publishedDatabase()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let before = try liveLists(db)
        #expect(before.count > 200 && before.values.allSatisfy { $0.split(separator: " ").count == 10 })
        let queue = try DatabaseQueue(path: db)
        let users = try queue.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM users") }
        // A typo in a cut-off empties the split: refused, every table as it was.
        let clean = try recpipe(["clean", "--db", "recs.sqlite", "--split", "temporal", "--test-days", "4000"], in: dir)
        #expect(clean.status == 65, "\(clean.stderr)")
        #expect(clean.stderr.contains("--test-days 4000") && clean.stderr.contains("nothing changed"), "\(clean.stderr)")
        #expect(try queue.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM users") } == users)
        // The shard file or the report over the database: refused before anything is written.
        for arguments in [["score", "--db", "recs.sqlite", "--model", "ease", "--shard", "0/1", "--shard-out", "recs.sqlite"],
                          ["score", "--db", "recs.sqlite", "--model", "ease", "--shard", "0/1", "--shard-out", "recs.sqlite-wal"],
                          ["score", "--db", "recs.sqlite", "--model", "ease", "--shard", "0/1", "--shard-out", "events.csv"],
                          ["report", "--db", "recs.sqlite", "--out", "recs.sqlite"],
                          ["synth", "--out", "recs.sqlite"]] {
            let result = try recpipe(arguments, in: dir)
            #expect(result.status == 64 && result.stderr.contains("refusing to write there"), "\(arguments): \(result.stderr)")
        }
        #expect(FileManager.default.fileExists(atPath: dir + "/events.csv"))
        // A set covering too few users is not published.
        try queue.write { try $0.execute(sql: "DELETE FROM interactions WHERE user_idx >= 100; DELETE FROM users WHERE user_idx >= 100") }
        let shrunk = try recpipe(["score", "--db", "recs.sqlite", "--model", "ease"], in: dir)
        #expect(shrunk.status == 1 && shrunk.stderr.contains("below --min-users-fraction 0.5"), "\(shrunk.stderr)")
        #expect(try liveLists(db) == before)
        #expect(try integrity(db) == "ok")
    }

    /// A model with a non-finite weight is never scored; one that trains to NaN is never stored.
    @Test func nonFiniteModelsNeverReachTheLists() throws {
        let (dir, db) = try publishedDatabase()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let before = try liveLists(db)
        let queue = try DatabaseQueue(path: db)
        try queue.write { db in
            let row = try Row.fetchOne(db, sql: "SELECT model_id, tensor, chunk, data FROM model_weights JOIN models USING (model_id) WHERE kind = 'ease' LIMIT 1")!
            var data: Data = row["data"]
            data.replaceSubrange(0..<4, with: [0x00, 0x00, 0xC0, 0x7F])  // a float32 NaN, little-endian
            try db.execute(sql: "UPDATE model_weights SET data = ? WHERE model_id = ? AND tensor = ? AND chunk = ?",
                           arguments: [data, row["model_id"] as Int64, row["tensor"] as String, row["chunk"] as Int])
        }
        let score = try recpipe(["score", "--db", "recs.sqlite", "--model", "ease"], in: dir)
        #expect(score.status == 1 && score.stderr.contains("non-finite weight"), "\(score.stderr)")
        #expect(try liveLists(db) == before)
        let models = try queue.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM models") }
        let diverged = try recpipe(["train", "--db", "recs.sqlite", "--epochs", "3", "--learning-rate", "1e30", "--hidden", "16", "--latent", "4"], in: dir)
        #expect(diverged.status == 1, "\(diverged.stderr)")
        #expect(try queue.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM models") } == models)
    }

    /// Rollback points the live lists back at the set the last publish replaced, and a
    /// second rollback undoes the first.
    @Test func rollbackRestoresThePreviousSet() throws {
        let (dir, db) = try publishedDatabase()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let first = try liveLists(db)
        let score = try recpipe(["score", "--db", "recs.sqlite", "--model", "ease", "--k", "3"], in: dir)
        #expect(score.status == 0, "\(score.stderr)")
        let second = try liveLists(db)
        #expect(second != first)
        let rollback = try recpipe(["rollback", "--db", "recs.sqlite"], in: dir)
        #expect(rollback.status == 0, "\(rollback.stderr)")
        #expect(rollback.stdout.contains("live lists now from score run"))
        #expect(try liveLists(db) == first)
        #expect(try recpipe(["rollback", "--db", "recs.sqlite"], in: dir).status == 0)
        #expect(try liveLists(db) == second)
        let queue = try DatabaseQueue(path: db)
        try queue.read { db throws in
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM stage_runs WHERE stage = 'rollback' AND status = 'succeeded'") == 2)
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM score_runs WHERE rolled_back_at IS NOT NULL") == 1)
        }
        // With nothing kept, rollback says so and changes nothing.
        let fresh = try recpipe(["rollback", "--db", "new.sqlite"], in: dir)
        #expect(fresh.status == 65 && fresh.stderr.contains("nothing is published"), "\(fresh.stderr)")
    }

    /// Each exit code of the table, from a real case.
    @Test func exitCodes() throws {
        let (dir, db) = try publishedDatabase()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(try recpipe(["migrate", "--db", "recs.sqlite"], in: dir).status == 0)
        #expect(try recpipe(["score", "--db", "recs.sqlite", "--model", "ease", "--min-users-fraction", "2"], in: dir).status == 64)
        #expect(try recpipe(["score", "--db", "recs.sqlite", "--modle", "ease"], in: dir).status == 64)
        #expect(try recpipe(["ingest", "--db", "recs.sqlite", "missing.csv"], in: dir).status == 66)
        #expect(try recpipe(["recommend", "--db", "missing.sqlite", "--user", "u"], in: dir).status == 66)
        // An SQLite error: a view the command reads was dropped by hand.
        try DatabaseQueue(path: db).write { try $0.execute(sql: "DROP VIEW recommendations_with_items; DROP VIEW recommended_items; DROP VIEW recommendations") }
        let broken = try recpipe(["recommend", "--db", "recs.sqlite", "--user", "u1"], in: dir)
        #expect(broken.status == 70, "\(broken.stderr)")
        #expect(broken.stderr.split(separator: "\n").count == 1 && broken.stderr.contains("recs.sqlite: SQLite error: no such table: recommendations"), "\(broken.stderr)")
    }

    /// A full disk while scoring exits with 74 naming the database; the live lists stay.
    @Test func diskFullExits74() throws {
        guard getuid() == 0 else { return }  // mounting a tmpfs needs root
        let (dir, db) = try publishedDatabase()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let before = try liveLists(db)
        let size = fileSize(db)
        let mount = dir + "/small"
        try FileManager.default.createDirectory(atPath: mount, withIntermediateDirectories: true)
        let mounted = try recpipeShell("mount -t tmpfs -o size=\(size / 1024 + 256)k tmpfs '\(mount)'")
        guard mounted == 0 else { return }  // no permission to mount here: skip
        defer { _ = try? recpipeShell("umount '\(mount)'") }
        // Checkpointed into one file, then copied onto the small disk.
        try DatabaseQueue(path: db).writeWithoutTransaction { try $0.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)") }
        try FileManager.default.copyItem(atPath: db, toPath: mount + "/recs.sqlite")
        let full = try recpipe(["score", "--db", "small/recs.sqlite", "--model", "ease", "--k", "100"], in: dir)
        #expect(full.status == 74, "\(full.stderr)")
        #expect(full.stderr.contains("small/recs.sqlite") && full.stderr.contains("disk full or I/O error"), "\(full.stderr)")
        #expect(try liveLists(mount + "/recs.sqlite") == before)
        #expect(try integrity(mount + "/recs.sqlite") == "ok")
    }
}

@Suite(.serialized, .tags(.large)) struct WALCLITests {
    /// A service holding a read transaction across several publishes: every writer succeeds,
    /// the reader keeps its snapshot, and once it closes the next writer's checkpoint cuts
    /// the WAL back (to nothing: TRUNCATE).
    @Test func aReaderHoldingASnapshotDoesNotKeepTheWALBig() throws {
        let (dir, db) = try publishedDatabase()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func walSize() -> Int { fileSize(db + "-wal") }
        #expect(walSize() == 0, "each writer ends with a truncating checkpoint")
        var holding = Configuration()
        holding.allowsUnsafeTransactions = true  // the transaction stays open between accesses
        var reader: DatabaseQueue? = try DatabaseQueue(path: db, configuration: holding)
        let seen = try reader!.inDatabase { db -> Int in
            try db.execute(sql: "BEGIN")
            return try Int.fetchOne(db, sql: "SELECT count(*) FROM recommendations")!
        }
        var sizes: [Int] = []
        for k in [5, 6, 7] {
            let score = try recpipe(["score", "--db", "recs.sqlite", "--model", "ease", "--k", "\(k)"], in: dir)
            #expect(score.status == 0, "\(score.stderr)")
            #expect(score.stderr.contains("WAL not truncated: a reader holds an older snapshot"))
            sizes.append(walSize())
            #expect(try reader!.inDatabase { try Int.fetchOne($0, sql: "SELECT count(*) FROM recommendations") } == seen,
                    "the reader keeps its snapshot")
        }
        #expect(sizes[0] > 0 && sizes[2] >= sizes[0], "\(sizes)")
        try reader!.inDatabase { try $0.execute(sql: "COMMIT") }
        reader = nil
        #expect(try recpipe(["rollback", "--db", "recs.sqlite"], in: dir).status == 0)
        #expect(walSize() == 0, "the WAL is cut back once the reader is gone (it was \(sizes))")
        #expect(try integrity(db) == "ok")
    }
}

/// Runs a shell command; returns its exit status.
func recpipeShell(_ command: String) throws -> Int32 {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/sh")
    process.arguments = ["-c", command + " 2>/dev/null"]
    try process.run()
    process.waitUntilExit()
    return process.terminationStatus
}

/// Pairs of real writer processes started at the same moment, many times, while a reader
/// watches the live lists: the reader never sees fewer users than before, and afterwards
/// every user has one complete list.
@Suite(.serialized, .tags(.large)) struct ConcurrentWritersCLITests {
    @Test func pairsOfWritersNeverEmptyTheLiveLists() throws {
        let (dir, db) = try publishedDatabase()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try """
            name: rescore
            database: recs.sqlite
            stages:
              score: { uses: score, with: { model: ease, k: 10 } }
            """.write(toFile: dir + "/rescore.yaml", atomically: true, encoding: .utf8)
        let usersBefore = try liveLists(db).count
        let score = ["score", "--db", "recs.sqlite", "--model", "ease", "--k", "10", "--wait"]
        let pairs: [(String, [String], [String])] = [
            ("score+score", score, score),
            ("score+train", score, ["train", "--db", "recs.sqlite", "--model", "ease", "--lambda", "50", "--wait"]),
            ("clean+score", ["clean", "--db", "recs.sqlite", "--heldout-users", "30", "--wait"], score),
            ("run+score", ["run", "rescore.yaml", "--force", "--wait"], score),
        ]
        // The reader: a plain SQLite connection, as a service would hold one.
        final class Watch: @unchecked Sendable {
            let lock = NSLock()
            var fewest = Int.max, reads = 0, stop = false
        }
        let watch = Watch()
        let reader = Thread {
            guard let queue = try? DatabaseQueue(path: db) else { return }
            while !watch.lock.withLock({ watch.stop }) {
                if let users = try? queue.read({ try Int.fetchOne($0, sql: "SELECT count(DISTINCT user_key) FROM recommendations") }) {
                    watch.lock.withLock { watch.fewest = min(watch.fewest, users); watch.reads += 1 }
                }
                usleep(2_000)
            }
        }
        reader.start()
        for trial in 0..<3 {
            for (name, a, b) in pairs {
                let first = try startRecpipe(a + ["--quiet"], in: dir), second = try startRecpipe(b + ["--quiet"], in: dir)
                first.waitUntilExit()
                second.waitUntilExit()
                for process in [first, second] {
                    #expect(process.terminationStatus == 0,
                            "trial \(trial) \(name): \((try? String(contentsOfFile: process.errorFile, encoding: .utf8)) ?? "")")
                }
            }
        }
        watch.lock.withLock { watch.stop = true }
        while reader.isExecuting { usleep(10_000) }
        let (fewest, reads) = watch.lock.withLock { (watch.fewest, watch.reads) }
        #expect(reads > 10)
        #expect(fewest >= usersBefore, "a reader saw \(fewest) users with lists, \(usersBefore) before")
        let after = try liveLists(db)
        #expect(after.count >= usersBefore)
        #expect(after.values.allSatisfy { Set($0.split(separator: " ")).count == 10 }, "every user has one complete list")
        try DatabaseQueue(path: db).read { db throws in
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM (SELECT user_key FROM recommendations GROUP BY user_key HAVING count(*) != 10 OR max(rank) != 10)") == 0)
        }
        #expect(try integrity(db) == "ok")
    }
}
