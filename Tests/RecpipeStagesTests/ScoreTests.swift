import Foundation
import GRDB
import RecpipeTestSupport
import Testing
@testable import RecpipeModels
@testable import RecpipeStages
@testable import RecpipeStore

@Suite struct ScoreStageTests {
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
            try db.execute(sql: "INSERT INTO recommendation_rows VALUES (?, 'ghost', 1, 'nothing', 9)", arguments: [killed])
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

@Suite struct EvaluateStageTests {
    /// In a temporal split the model is trained on what happened before the periods, and a
    /// test user's fold-in is their whole history before the test period (training and
    /// validation periods); the targets are what they did in it.
    @Test func temporalSplitJudgesTheModelTrainedBeforeThePeriod() throws {
        let (scratch, store) = try SplitTests().synthetic()
        _ = scratch
        try clean(store) { $0.split = .temporal; $0.minRating = nil; $0.testDays = 30; $0.validationDays = 30 }
        let data = try TrainingData.load(store)
        #expect(data.split == "temporal" && data.test.foldIn.rows > 0)
        try store.queue.read { db throws in
            let testCut = try Int64.fetchOne(db, sql: "SELECT test_cutoff FROM clean_runs")!
            for (row, user) in data.testUsers.enumerated() {
                let history = try Int32.fetchAll(db, sql: """
                    SELECT item_idx FROM interactions WHERE user_idx = ? AND part IN ('train', 'validation_te') ORDER BY item_idx
                    """, arguments: [user])
                let targets = try Int32.fetchAll(db, sql: "SELECT item_idx FROM interactions WHERE user_idx = ? AND part = 'test_te'",
                                                 arguments: [user])
                let foldIn = data.test.foldIn
                #expect(Array(foldIn.columns[foldIn.rowStart[row]..<foldIn.rowStart[row + 1]]) == history)
                #expect(data.test.targets[row] == Set(targets))
            }
            // Nothing the model trains on happened in the test period.
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM interactions WHERE part = 'train' AND ts >= ?",
                                     arguments: [testCut]) == 0)
        }
        try StageRunner.run(try TrainStageTests().small(), store: store, logger: quietLogger)
        let report = try StageRunner.run(try EvaluateStage(config: .init()), store: store, logger: quietLogger)
        #expect(report.summary.contains { $0.hasPrefix("multvae") })
        try store.queue.read { db throws in
            #expect(try Int.fetchOne(db, sql: "SELECT users FROM evaluation_runs") == data.test.targets.filter { !$0.isEmpty }.count)
            #expect(try Double.fetchOne(db, sql: "SELECT value FROM evaluation WHERE model = 'multvae' AND metric = 'ndcg'")! > 0)
        }
    }

    @Test func modelsAreEvaluatedSideBySideWithPerUserValues() throws {
        let (scratch, store) = try ScoreStageTests().trained()
        _ = scratch
        try trainBaselines(store)
        let report = try StageRunner.run(try EvaluateStage(config: .init()), store: store, logger: quietLogger)
        for model in ["popularity", "ease", "itemknn", "ials", "multvae"] { #expect(report.summary.contains { $0.hasPrefix(model) }) }
        try store.queue.read { db throws in
            #expect(try String.fetchAll(db, sql: "SELECT DISTINCT model FROM evaluation ORDER BY model") == ["ease", "ials", "itemknn", "multvae", "popularity"])
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM evaluation WHERE model = 'multvae'") == 10)
            let users = try Int.fetchOne(db, sql: "SELECT users FROM evaluation_runs")!
            #expect(users > 0)
            // Eight per-user metrics for each evaluated user and model.
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM evaluation_users") == 5 * 8 * users)
            // The aggregate is the mean of the per-user values.
            #expect(try Int.fetchOne(db, sql: """
                SELECT count(*) FROM evaluation e JOIN (
                    SELECT model, metric, k, avg(value) AS mean FROM evaluation_users GROUP BY model, metric, k) u
                USING (model, metric, k) WHERE abs(e.value - u.mean) > 1e-9
                """) == 0)
            // The head is stored with the run: as many items as counted, and more popular in
            // training than every item outside it (or tied with the least popular in it).
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM evaluation_head_items")
                    == Int.fetchOne(db, sql: "SELECT head_items FROM evaluation_runs"))
            let counts = try Dictionary(uniqueKeysWithValues: Row.fetchAll(db, sql: """
                SELECT i.item_key, count(*) AS n FROM interactions x JOIN items i USING (item_idx)
                WHERE x.part = 'train' GROUP BY i.item_key
                """).map { ($0["item_key"] as String, $0["n"] as Int) })
            let head = try Row.fetchAll(db, sql: "SELECT item_key, interactions FROM evaluation_head_items")
            #expect(!head.isEmpty && head.allSatisfy { counts[$0["item_key"]] == $0["interactions"] })
            let headKeys = Set(head.map { $0["item_key"] as String })
            let least = head.map { $0["interactions"] as Int }.min() ?? 0
            #expect(counts.filter { !headKeys.contains($0.key) }.values.allSatisfy { $0 <= least })
        }
    }
}

@Suite struct FeedbackStageTests {
    @Test func nothingPublishedYetIsNotAFailure() throws {
        let (scratch, store) = try ScoreStageTests().trained()
        _ = scratch
        let report = try StageRunner.run(try FeedbackStage(config: .init()), store: store, logger: quietLogger)
        #expect(report.summary == ["no live recommendations yet: nothing to score against"])
        #expect(try store.queue.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM closed_loop") } == 0)
        // Lists published, nothing new since: nothing measured either (not a hit rate of 0).
        try ScoreStageTests().score(store, k: 10)
        let quietNight = try StageRunner.run(try FeedbackStage(config: .init()), store: store, logger: quietLogger)
        #expect(quietNight.summary.last?.hasPrefix("nothing to score") == true, "\(quietNight.summary)")
        #expect(try store.queue.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM closed_loop") } == 0)
    }

    @Test func liveListsAreScoredAgainstWhatUsersDidNext() throws {
        let (scratch, store) = try ScoreStageTests().trained()
        try ScoreStageTests().score(store, k: 10)
        let (hitUser, hitItem, missUser, missItem) = try store.queue.read { db -> (String, String, String, String) in
            let users = try String.fetchAll(db, sql: "SELECT DISTINCT user_key FROM recommendations ORDER BY user_key LIMIT 2")
            let top = try String.fetchOne(db, sql: "SELECT item_key FROM recommendations WHERE user_key = ? AND rank = 1",
                                          arguments: [users[0]])!
            // An item outside the second user's list and history.
            let outside = try String.fetchOne(db, sql: """
                SELECT item_key FROM items WHERE item_key NOT IN (SELECT item_key FROM recommendations WHERE user_key = ?)
                AND item_key NOT IN (SELECT item_key FROM raw_interactions WHERE user_key = ?)
                ORDER BY item_idx LIMIT 1
                """, arguments: [users[1], users[1]])!
            return (users[0], top, users[1], outside)
        }
        let seenItem = try store.queue.read { db in
            try String.fetchOne(db, sql: "SELECT item_key FROM raw_interactions WHERE user_key = ? LIMIT 1", arguments: [missUser])!
        }
        // Ingested in the same second as the lists were published (here: a publish time that
        // reads as later than the ingest's clock): still after them, as the runs' order says.
        try store.queue.write { try $0.execute(sql: "UPDATE score_runs SET published_at = '2999-01-01T00:00:00Z'") }
        // A pair seen before the lists went live is not new: it does not count.
        try ingest(store, [scratch.write("next-day.csv",
                                         "user_id,item_id\n\(hitUser),\(hitItem)\n\(missUser),\(missItem)\n\(missUser),\(seenItem)\n")])
        let report = try StageRunner.run(try FeedbackStage(config: .init()), store: store, logger: quietLogger)
        #expect(report.summary.first?.contains("2 users with 2 new interactions") == true, "\(report.summary)")
        try store.queue.read { db throws in
            let row = try Row.fetchOne(db, sql: "SELECT * FROM closed_loop WHERE k = 10")!
            #expect(row["users"] as Int == 2 && row["new_interactions"] as Int == 2)
            #expect(row["hit_rate"] as Double == 0.5 && row["recall"] as Double == 0.5)
        }
    }
}

@Suite struct ReportTests {
    @Test func reportIsSelfContainedAndHasEverySection() throws {
        let (scratch, store) = try ScoreStageTests().trained()
        _ = scratch
        try ScoreStageTests().score(store, k: 20)
        try trainBaselines(store, [.ease, .itemknn])
        try StageRunner.run(try smallAugment(), store: store, logger: quietLogger)
        try StageRunner.run(try TrainStageTests().small { $0.augmentedWeight = 0.5; $0.publish = false }, store: store, logger: quietLogger)
        try StageRunner.run(try EvaluateStage(config: .init()), store: store, logger: quietLogger)
        let html = try Report.html(store)
        for section in ["<h2>Data</h2>", "<h2>Models</h2>", "<h2>Evaluation</h2>", "<h2>Popularity and the long tail</h2>",
                        "<h2>Run history</h2>", "Validation NDCG@100", "Training loss", "KL weight β", "head | long tail",
                        "Live recommendations by item popularity rank", "± ", "<h2>Augmentation</h2>",
                        "Generator training losses", "Output spread across users", "Ablation, multvae with and without",
                        "augmentation goal", "<h2>Closed loop: published lists against what users did next</h2>",
                        "No closed-loop figures yet"] {
            #expect(html.contains(section), "missing \(section)")
        }
        // Models' validation figures are shown as figures, not as the stored JSON.
        #expect(html.contains("ndcg@100 0.") && !html.contains("{&quot;ndcg") && !html.contains("{\"ndcg"))
        #expect(html.components(separatedBy: "<svg").count - 1 >= 6)
        // Nothing to fetch: no scripts, links or external sources.
        for forbidden in ["<script", "src=", "href=", "@import", "url("] { #expect(!html.contains(forbidden)) }
        // Every model evaluated appears in the table.
        for model in ["popularity", "ease", "itemknn", "multvae", "multvae+augmented", "cfgan"] {
            #expect(html.contains("<td>\(model)</td>"))
        }
    }

    @Test func reportOfAnEmptyDatabaseSaysSo() throws {
        let scratch = Scratch()
        let html = try Report.html(try scratch.store())
        #expect(html.contains("No clean run yet.") && html.contains("No model trained yet.") && html.contains("No evaluation yet.")
                && html.contains("No augment run yet."))
    }
}

@Suite struct SerialWorkerTests {
    final class Log: @unchecked Sendable { var values: [Int] = [] }
    struct Boom: Error {}

    @Test func runsJobsInOrderOnItsOwnThread() throws {
        let worker = SerialWorker(capacity: 1)
        let log = Log()
        for n in 0..<200 { try worker.submit { log.values.append(n); #expect(!Thread.isMainThread) } }
        try worker.finish()
        #expect(log.values == Array(0..<200))
    }

    @Test func theFirstFailureStopsTheRestAndIsRethrown() throws {
        let worker = SerialWorker(capacity: 1)
        let log = Log()
        do {
            try worker.submit { throw Boom() }
            for n in 0..<50 { try worker.submit { log.values.append(n) } }
        } catch is Boom {}
        #expect(throws: Boom.self) { try worker.finish() }
        #expect(log.values.isEmpty, "no job runs after a failure")
    }
}
