import Foundation
import GRDB
import Testing

@Suite(.serialized) struct RetentionCLITests {
    func sizes(_ db: String) -> (database: Int, wal: Int) {
        func size(_ path: String) -> Int { (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0 }
        return (size(db), size(db + "-wal"))
    }

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
            for step in night {
                let result = try recpipe(step + ["--quiet"], in: dir)
                guard result.status == 0 else { throw CLIFailure(command: step, result: result) }
            }
            let (database, wal) = sizes(db)
            total.append(database + wal)
            print("night \(n): database \(database) bytes, WAL \(wal) bytes")
        }
        #expect(Double(total[9]) <= 1.25 * Double(total[3]), "sizes by night: \(total)")
        let queue = try DatabaseQueue(path: db)
        try queue.read { db throws in
            #expect(try String.fetchOne(db, sql: "PRAGMA integrity_check") == "ok")
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
            let step = ["train", "--db", db, "--model", "ease", "--lambda", "100", "--no-gate", "--keep-retired", "5"]
            let result = try recpipe(step + ["--quiet"], in: dir)
            guard result.status == 0 else { throw CLIFailure(command: step, result: result) }
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
