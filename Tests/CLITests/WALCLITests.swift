import Foundation
import GRDB
import Logging
import RecpipeStore
import RecpipeTestSupport
import Testing

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
