import Foundation
import GRDB
import RecpipeTestSupport
import Testing
@testable import RecpipeModels
@testable import RecpipeStages
@testable import RecpipeStore

@Suite(.tags(.medium)) struct ScoreStageTests {
    func trained() throws -> (Scratch, Store) {
        let (scratch, store) = try TrainStageTests().prepared()
        try StageRunner.run(try TrainStageTests().small(), store: store, logger: quietLogger)
        return (scratch, store)
    }

    func score(_ store: Store, k: Int = 10) throws {
        var config = ScoreStage.Config()
        config.k = k
        try StageRunner.run(try ScoreStage(config: config), store: store, logger: quietLogger)
    }

    @Test func everyUserGetsKUnseenItemsInRankOrder() throws {
        let (scratch, store) = try trained()
        _ = scratch
        try score(store)
        try store.queue.read { db throws in
            let users = try Int.fetchOne(db, sql: "SELECT count(*) FROM users")!
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM recommendations") == users * 10)
            // Ranks 1..10 for each user, scores not increasing down the list.
            #expect(try Int.fetchOne(db, sql: """
                SELECT count(*) FROM (SELECT user_key, min(rank) a, max(rank) b, count(DISTINCT item_key) n
                                      FROM recommendations GROUP BY user_key) WHERE a != 1 OR b != 10 OR n != 10
                """) == 0)
            #expect(try Int.fetchOne(db, sql: """
                SELECT count(*) FROM recommendations a JOIN recommendations b
                  ON a.user_key = b.user_key AND b.rank = a.rank + 1 WHERE b.score > a.score
                """) == 0)
            // Nothing the user already has.
            #expect(try Int.fetchOne(db, sql: """
                SELECT count(*) FROM recommendations r JOIN users u ON u.user_key = r.user_key
                JOIN items i ON i.item_key = r.item_key
                JOIN interactions x ON x.user_idx = u.user_idx AND x.item_idx = i.item_idx
                """) == 0)
            #expect(try Int64.fetchOne(db, sql: "SELECT DISTINCT model_id FROM recommendations") == 1)
            // Where the run's time went.
            let times = try LiveLists.times(in: db)
            #expect(times?.rows == users * 10)
            #expect((times?.writing ?? -1) > 0 && (times?.writing ?? .infinity) < 60)
            #expect((times?.publishing ?? -1) > 0 && (times?.publishing ?? .infinity) < 60)
        }
    }

    @Test func anotherRunReplacesTheSetAtomicallyAndAnUnfinishedOneStaysInvisible() throws {
        let (scratch, store) = try trained()
        _ = scratch
        try score(store, k: 5)
        let first = try store.queue.read { try Int64.fetchOne($0, sql: "SELECT run_id FROM live_recommendations")! }
        // A run killed while writing: its rows are there but not live.
        try store.queue.write { db in
            try db.execute(sql: "INSERT INTO stage_runs (stage, status, started_at) VALUES ('score', 'running', 'x')")
            let killed = db.lastInsertedRowID
            try db.execute(sql: "INSERT INTO score_runs (run_id, model_id, k, users, rows, created_at) VALUES (?, 1, 5, 1, 1, 'x')",
                           arguments: [killed])
            try db.execute(sql: "INSERT INTO recommendation_rows (run_id, user_key, rank, item_key, score) VALUES (?, 'ghost', 1, 'nothing', 9)", arguments: [killed])
        }
        try store.queue.read { db throws in
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM recommendations WHERE user_key = 'ghost'") == 0)
            #expect(try Int64.fetchOne(db, sql: "SELECT DISTINCT run_id FROM recommendations") == first)
        }
        // A reader holding a snapshot keeps seeing the old complete set while the next
        // run publishes; a new reader sees only the new set.
        let reader = try DatabasePool(path: store.path)
        try reader.read { db throws in
            let before = try Int.fetchOne(db, sql: "SELECT count(*) FROM recommendations")!
            try score(store, k: 7)
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM recommendations") == before)
            #expect(try Int64.fetchOne(db, sql: "SELECT DISTINCT run_id FROM recommendations") == first)
        }
        try store.queue.read { db throws in
            #expect(try Int.fetchAll(db, sql: "SELECT DISTINCT rank FROM recommendations ORDER BY rank") == Array(1...7))
            #expect(try Int64.fetchAll(db, sql: "SELECT DISTINCT run_id FROM recommendation_rows ORDER BY run_id")
                    == [first, try Int64.fetchOne(db, sql: "SELECT run_id FROM live_recommendations")!],
                    "unfinished runs' rows are removed; the set the publish replaced stays for rollback")
            #expect(try Int64.fetchOne(db, sql: "SELECT previous_run_id FROM live_recommendations") == first)
        }
        // The consumer views follow the live set.
        try store.queue.write { db in
            let item = try String.fetchOne(db, sql: "SELECT item_key FROM recommendations WHERE rank = 1 LIMIT 1")!
            try db.execute(sql: "INSERT INTO item_metadata (item_key, title, category) VALUES (?, 'A title', 'drama')",
                           arguments: [item])
            let live = try Row.fetchOne(db, sql: "SELECT * FROM live_recommendation_run")!
            #expect(live["run_id"] as Int64 == (try Int64.fetchOne(db, sql: "SELECT run_id FROM live_recommendations")))
            #expect(live["model_kind"] as String == "multvae")
            #expect(live["k"] as Int == 7)
            let rows = try Int.fetchOne(db, sql: "SELECT count(*) FROM recommendations")!
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM recommendations_with_items") == rows)
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM recommendations_with_items WHERE title = 'A title'")
                    == Int.fetchOne(db, sql: "SELECT count(*) FROM recommendations WHERE item_key = ?", arguments: [item]))
            #expect(try Int.fetchOne(db, sql: "SELECT sum(users) FROM recommended_items") == rows)
            #expect(try Int.fetchOne(db, sql: "SELECT users FROM recommended_items WHERE item_key = ?", arguments: [item])
                    == Int.fetchOne(db, sql: "SELECT count(DISTINCT user_key) FROM recommendations WHERE item_key = ?", arguments: [item]))
        }
        // A third publish drops the first set; the second stays for rollback.
        let second = try store.queue.read { try Int64.fetchOne($0, sql: "SELECT run_id FROM live_recommendations")! }
        try score(store, k: 6)
        try store.queue.read { db throws in
            let third = try Int64.fetchOne(db, sql: "SELECT run_id FROM live_recommendations")!
            #expect(try Int64.fetchAll(db, sql: "SELECT DISTINCT run_id FROM recommendation_rows ORDER BY run_id") == [second, third])
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM recommendation_rows WHERE run_id = ?", arguments: [second])
                    == 7 * (try Int.fetchOne(db, sql: "SELECT count(*) FROM users")!))
        }
    }

    /// Shards start on the whole run's batch boundaries, so each user is scored in the same
    /// batch, of the same shape, by the same code as in one process: the lists and scores are
    /// compared exactly (as text), which is right for identical computations on one machine.
    @Test(arguments: [1, 2, 3, 5])
    func shardsScoredApartAndMergedGiveTheSameLists(shards: Int) throws {
        let (scratch, store) = try trained()
        let batch = 64  // 300 users: 5 batches, the last one partial
        func config() -> ScoreStage.Config {
            var config = ScoreStage.Config()
            config.k = 8
            config.batchUsers = batch
            return config
        }
        try StageRunner.run(try ScoreStage(config: config()), store: store, logger: quietLogger)
        func lists() throws -> [String] {
            try store.queue.read { try String.fetchAll($0, sql: """
                SELECT user_key || ':' || rank || ':' || item_key || ':' || score FROM recommendations ORDER BY user_key, rank
                """) }
        }
        let whole = try lists()
        func shard(_ i: Int, of n: Int) throws -> String {
            var config = config()
            config.shard = ScoreStage.Shard(index: i, count: n, output: scratch.path("shard-\(i).sqlite"))
            try StageRunner.run(try ScoreStage(config: config), store: store, logger: quietLogger)
            return config.shard!.output
        }
        func merge(_ files: [String]) throws {
            var config = config()
            config.merge = files
            try StageRunner.run(try ScoreStage(config: config), store: store, logger: quietLogger)
        }
        let files = try (0..<shards).map { try shard($0, of: shards) }
        // Users are scored in the byte order of their keys (the table's key order), so each
        // shard holds a range of that order.
        let ranges = try files.map { file -> (first: String, last: String) in
            let connection = try RawConnection(path: file, mode: .readOnly)
            var keys: [String] = []
            try connection.forEachRow("SELECT min(user_key), max(user_key) FROM recommendation_rows") { keys = [$0.string(0), $0.string(1)] }
            return (keys[0], keys[1])
        }
        for (a, b) in zip(ranges, ranges.dropFirst()) {
            #expect(a.last.utf8.lexicographicallyPrecedes(b.first.utf8), "shard ranges \(a) and \(b) overlap in key order")
        }
        for i in 0..<shards {
            let range = ScoreStage.Shard(index: i, count: shards, output: "").users(of: 300, batch: batch)
            #expect(range.lowerBound % batch == 0 && (range.upperBound % batch == 0 || range.upperBound == 300))
        }
        let live = try store.queue.read { try Int64.fetchOne($0, sql: "SELECT run_id FROM live_recommendations") }
        #expect(try lists() == whole, "scoring a shard leaves the live set alone")
        if shards > 1 {
            // Missing or repeated shards are refused and the live set stays.
            #expect(throws: StageError.self) { try merge(Array(files.dropLast())) }
            #expect(throws: StageError.self) { try merge(files.dropLast() + [files[0]]) }
            // A shard file whose run was cut off before it finished.
            let cut = try RawConnection(path: files.last!)
            try cut.execute("DELETE FROM shard_info")
            #expect(throws: StageError.self) { try merge(files) }
            #expect(try store.queue.read { try Int64.fetchOne($0, sql: "SELECT run_id FROM live_recommendations") } == live)
            _ = try shard(shards - 1, of: shards)
        }
        try merge(files.reversed())
        #expect(try lists() == whole, "the merged shards give the same lists and scores, bit for bit")
        #expect(try store.queue.read { try Int64.fetchOne($0, sql: "SELECT run_id FROM live_recommendations") } != live)
    }

    @Test func scoringWithoutAModelFails() throws {
        let (scratch, store) = try TrainStageTests().prepared()
        _ = scratch
        #expect(throws: StageError.self) { try score(store) }
        #expect(try count(store, "live_recommendations") == 0)
    }
}

/// Trains each of `kinds` as a baseline with a small grid, on the store's current split.
func trainBaselines(_ store: Store, _ kinds: [ModelKind] = [.ease, .itemknn, .ials]) throws {
    for kind in kinds {
        var config = TrainStage.Config()
        config.kind = kind
        config.ease.lambdas = [10, 100]
        config.itemKNN.neighbours = [5, 20]
        config.itemKNN.shrinks = [0, 10]
        config.ials.factors = [8]
        config.ials.regularizations = [0.1, 1]
        config.ials.alphas = [1]
        config.ials.iterations = 4
        try StageRunner.run(try TrainStage(config: config), store: store, logger: quietLogger)
    }
}
