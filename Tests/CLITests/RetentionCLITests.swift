import Foundation
import GRDB
import RecpipeTestSupport
import Testing

@Suite(.serialized, .tags(.large)) struct RetentionCLITests {
    /// Ten nights of (train EASE, train Mult-VAE, score, evaluate) with the shipped
    /// retention: the files stop growing once the kept models are there.
    @Test func tenNightsKeepTheFilesBounded() throws {
        let (dir, db) = try publishedDatabase()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let night: [[String]] = [
            ["train", "--db", db, "--model", "ease", "--lambda", "100", "--no-gate"],
            ["train", "--db", db, "--model", "multvae", "--epochs", "2", "--hidden", "40", "--latent", "16"],
            ["score", "--db", db, "--k", "20"],
            ["evaluate", "--db", db],
        ]
        var total: [Int] = []
        for n in 1...10 {
            for step in night { try recpipeSucceeding(step, in: dir) }
            let (database, wal) = (fileSize(db), fileSize(db + "-wal"))
            total.append(database + wal)
            print("night \(n): database \(database) bytes, WAL \(wal) bytes")
        }
        #expect(Double(total[9]) <= 1.25 * Double(total[3]), "sizes by night: \(total)")
        #expect(try integrity(db) == "ok")
        let queue = try DatabaseQueue(path: db)
        try queue.read { db throws in
            #expect(try Int.fetchOne(db, sql: "PRAGMA foreign_key_check") == nil)
            // EASE: the published one and two retired ones keep their weights (plus any the
            // live and rollback sets or the last evaluation refer to: none, the lists are the
            // Mult-VAE's).
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM models WHERE kind = 'ease' AND pruned_at IS NULL") == 3)
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM models WHERE kind = 'ease'") == 11)
        }
    }

    @Test func pruneByHand() throws {
        let (dir, db) = try publishedDatabase()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for _ in 0..<3 {
            try recpipeSucceeding(["train", "--db", db, "--model", "ease", "--lambda", "100", "--no-gate", "--keep-retired", "5"], in: dir)
        }
        func stored() throws -> Int {
            try DatabaseQueue(path: db).read { try Int.fetchOne($0, sql: "SELECT count(*) FROM models WHERE pruned_at IS NULL")! }
        }
        #expect(try stored() == 4)
        // The model behind the live lists (the first EASE) is never removed; of the two
        // retired since, --keep-retired 0 removes both.
        let dry = try recpipe(["prune", "--db", db, "--keep-retired", "0", "--dry-run"], in: dir)
        #expect(dry.status == 0)
        #expect(dry.stdout.components(separatedBy: "\n").filter { $0.hasPrefix("would remove model ") }.count == 2, "\(dry.stdout)")
        #expect(try stored() == 4)
        let real = try recpipe(["prune", "--db", db, "--keep-retired", "0", "--vacuum"], in: dir)
        #expect(real.status == 0, "\(real.stderr)")
        #expect(real.stdout.components(separatedBy: "\n").filter { $0.hasPrefix("removed model ") }.count == 2, "\(real.stdout)")
        #expect(try stored() == 2)
        #expect(try liveLists(db).count > 0)
        #expect(try integrity(db) == "ok")
        let again = try recpipe(["prune", "--db", db, "--dry-run"], in: dir)
        #expect(again.stdout.hasPrefix("nothing to remove"))
        // Typos and impossible values: usage errors, nothing changed.
        for bad in [["prune", "--db", db, "--keep-retired", "-1"], ["prune", "--db", db, "--keep-evaluations", "0"],
                    ["prune", "--db", db, "--keep-retired", "two"], ["train", "--db", db, "--model", "ease", "--keep-retired", "-3"]] {
            let result = try recpipe(bad, in: dir)
            #expect(result.status == 64, "\(bad): \(result.stderr)")
        }
        #expect(try stored() == 2)
    }
}
