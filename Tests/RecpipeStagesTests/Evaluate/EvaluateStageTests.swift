import Foundation
import GRDB
import RecpipeTestSupport
import Testing
@testable import RecpipeModels
@testable import RecpipeStages
@testable import RecpipeStore

@Suite(.tags(.medium)) struct EvaluateStageTests {
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
