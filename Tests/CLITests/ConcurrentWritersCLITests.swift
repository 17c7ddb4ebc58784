import Foundation
import GRDB
import Logging
import RecpipeStore
import RecpipeTestSupport
import Testing

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
