import Foundation
import GRDB
import Logging
import RecpipeStore
import RecpipeTestSupport
import Testing

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
