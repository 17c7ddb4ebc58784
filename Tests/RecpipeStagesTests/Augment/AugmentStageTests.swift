import Foundation
import GRDB
import RecpipeTestSupport
import Testing
@testable import RecpipeModels
@testable import RecpipeStages
@testable import RecpipeStore

/// A small, fast augment configuration.
func smallAugment(_ configure: (inout AugmentStage.Config) -> Void = { _ in }) throws -> AugmentStage {
    var config = AugmentStage.Config()
    config.gan.generatorHidden = [32]
    config.gan.discriminatorHidden = [16, 8]
    config.gan.epochs = 6
    config.gan.batchSize = 32
    config.gan.evaluateEvery = 2
    config.gan.generatorLearningRate = 1e-3
    config.gan.discriminatorLearningRate = 1e-3
    config.probeUsers = 40
    config.selection.usersBelow = 30
    configure(&config)
    return try AugmentStage(config: config)
}

@Suite(.tags(.medium)) struct AugmentStageTests {
    @Test func writesSyntheticInteractionsApartFromTheRealOnes() throws {
        let (scratch, store) = try TrainStageTests().prepared()
        _ = scratch
        let realBefore = try store.queue.read { try Row.fetchAll($0, sql: "SELECT * FROM interactions ORDER BY user_idx, item_idx") }
        let report = try StageRunner.run(try smallAugment(), store: store, logger: quietLogger)
        #expect(report.rowsOut > 0)
        try store.queue.read { db throws in
            #expect(try Row.fetchAll(db, sql: "SELECT * FROM interactions ORDER BY user_idx, item_idx") == realBefore,
                    "nothing synthetic enters the real tables")
            let run = try #require(try Row.fetchOne(db, sql: "SELECT * FROM augment_runs"))
            #expect(run["rows"] as Int == report.rowsOut)
            #expect(run["clean_run_id"] as Int64 == (try Int64.fetchOne(db, sql: "SELECT max(run_id) FROM clean_runs")))
            let modelID: Int64 = run["model_id"]
            #expect(try String.fetchOne(db, sql: "SELECT kind FROM models WHERE model_id = ?", arguments: [modelID]) == "cfgan")
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM gan_training_log WHERE model_id = ?", arguments: [modelID]) == 6)
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM gan_training_log WHERE validation_ndcg100 IS NOT NULL") == 3)
            // Only training users below the threshold, only items they do not have, at most
            // ⌈½·count⌉ each.
            #expect(try Int.fetchOne(db, sql: """
                SELECT count(*) FROM augmented_interactions a JOIN users u USING (user_idx) WHERE u.role <> 'train'
                """) == 0)
            #expect(try Int.fetchOne(db, sql: """
                SELECT count(*) FROM augmented_interactions a JOIN interactions x USING (user_idx, item_idx)
                """) == 0)
            let tooMany = try Int.fetchOne(db, sql: """
                SELECT count(*) FROM (
                    SELECT a.user_idx, count(*) AS n,
                        (SELECT count(*) FROM interactions x WHERE x.user_idx = a.user_idx AND x.part = 'train') AS real
                    FROM augmented_interactions a GROUP BY a.user_idx)
                WHERE real >= 30 OR n > (real + 1) / 2
                """)
            #expect(tooMany == 0)
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM augmented_interactions_by_key") == report.rowsOut)
        }
    }

    @Test func longTailModeTakesOnlyTailItemsAndMinScoreFilters() throws {
        let (scratch, store) = try TrainStageTests().prepared()
        _ = scratch
        try StageRunner.run(try smallAugment { $0.selection.longTail = true }, store: store, logger: quietLogger)
        let data = try TrainingData.load(store)
        let isHead = Evaluation.head(counts: Popularity(train: data.train).counts)
        let items = try store.queue.read { try Int.fetchAll($0, sql: "SELECT item_idx FROM augmented_interactions") }
        #expect(!items.isEmpty)
        #expect(items.allSatisfy { !isHead[$0] })
        try StageRunner.run(try smallAugment { $0.selection.minScore = 2 }, store: store, logger: quietLogger)
        try store.queue.read { db throws in
            let last = try Int64.fetchOne(db, sql: "SELECT max(run_id) FROM augment_runs")!
            #expect(try Int.fetchOne(db, sql: "SELECT rows FROM augment_runs WHERE run_id = ?", arguments: [last]) == 0,
                    "no generator output reaches 2")
        }
    }

    @Test func aDivergingGeneratorFailsAndStoresNothing() throws {
        let (scratch, store) = try TrainStageTests().prepared()
        _ = scratch
        let stage = try smallAugment { $0.gan.generatorLearningRate = .greatestFiniteMagnitude }
        #expect(throws: StageError.self) { try StageRunner.run(stage, store: store, logger: quietLogger) }
        #expect(try count(store, "models") == 0)
        #expect(try count(store, "augment_runs") == 0)
        #expect(try count(store, "augmented_interactions") == 0)
        #expect(try store.queue.read { try String.fetchOne($0, sql: "SELECT status FROM stage_runs ORDER BY run_id DESC") } == "failed")
    }

    @Test func trainingWithAugmentationRecordsItAndEvaluationComparesBoth() throws {
        let (scratch, store) = try TrainStageTests().prepared()
        _ = scratch
        #expect(throws: StageError.self, "no augment run yet") {
            try StageRunner.run(try TrainStageTests().small { $0.augmentedWeight = 0.5 }, store: store, logger: quietLogger)
        }
        try StageRunner.run(try TrainStageTests().small(), store: store, logger: quietLogger)
        try StageRunner.run(try smallAugment(), store: store, logger: quietLogger)
        try StageRunner.run(try TrainStageTests().small { $0.augmentedWeight = 0.5; $0.publish = false }, store: store, logger: quietLogger)
        try store.queue.read { db throws in
            let json = try #require(try String.fetchOne(db, sql: """
                SELECT hyperparameters FROM models WHERE kind = 'multvae' ORDER BY model_id DESC LIMIT 1
                """))
            let augmentRun = try Int64.fetchOne(db, sql: "SELECT run_id FROM augment_runs")!
            let rows = try Int.fetchOne(db, sql: "SELECT rows FROM augment_runs")!
            #expect(json.contains(#""augmentation":{"rows":\#(rows),"run_id":\#(augmentRun),"weight":0.5}"#), "\(json)")
        }
        let report = try StageRunner.run(try EvaluateStage(config: .init()), store: store, logger: quietLogger)
        let models = try store.queue.read { try String.fetchAll($0, sql: "SELECT DISTINCT model FROM evaluation") }
        #expect(Set(models) == ["popularity", "multvae", "multvae+augmented", "cfgan"])
        #expect(report.summary.contains { $0.hasPrefix("augmentation ablation (multvae") })
        #expect(report.summary.contains { $0.hasPrefix("augmentation goal") })
    }

    @Test func warmStartContinuesFromThePublishedGenerator() throws {
        let (scratch, store) = try TrainStageTests().prepared()
        // Nothing published yet: from scratch.
        try StageRunner.run(try smallAugment { $0.warmStart = true; $0.gan.epochs = 2 }, store: store, logger: quietLogger)
        try TrainStageTests().addUsersWithNewItems(store, scratch)
        try StageRunner.run(try smallAugment { $0.warmStart = true; $0.gan.epochs = 2 }, store: store, logger: quietLogger)
        try store.queue.read { db throws in
            let rows = try Row.fetchAll(db, sql: "SELECT model_id, warm_start_from, status FROM models ORDER BY model_id")
            #expect(rows.map { $0["warm_start_from"] as Int64? } == [nil, 1])
            #expect(rows.map { $0["status"] as String } == ["retired", "published"])
        }
        #expect(throws: StageError.self, "the hidden layers differ") {
            try StageRunner.run(try smallAugment { $0.warmStart = true; $0.gan.generatorHidden = [16] }, store: store, logger: quietLogger)
        }
    }

    @Test func anAugmentedWarmStartContinuesTheAugmentedLine() throws {
        let (scratch, store) = try TrainStageTests().prepared()
        _ = scratch
        try StageRunner.run(try TrainStageTests().small(), store: store, logger: quietLogger)                     // 1, published
        try StageRunner.run(try smallAugment(), store: store, logger: quietLogger)                                // 2, the CFGAN
        let augmented = { (warm: Bool) in
            try TrainStageTests().small { $0.augmentedWeight = 0.5; $0.publish = false; $0.warmStart = warm; $0.model.epochs = 2 }
        }
        try StageRunner.run(try augmented(true), store: store, logger: quietLogger)    // 3: no augmented model yet, from the published
        try StageRunner.run(try augmented(true), store: store, logger: quietLogger)    // 4: from 3
        try StageRunner.run(try TrainStageTests().small { $0.warmStart = true; $0.model.epochs = 2 }, store: store, logger: quietLogger)  // 5: from 1
        let from = try store.queue.read { try Int64?.fetchAll($0, sql: "SELECT warm_start_from FROM models ORDER BY model_id") }
        #expect(from == [nil, nil, 1, 3, 1])
    }

    @Test func ablationArithmetic() {
        let change = AugmentationAblation.change([0.2, 0.4, 0.6], [0.3, 0.4, 0.8])
        #expect(abs(change.without - 0.4) < 1e-12 && abs(change.with - 0.5) < 1e-12)
        #expect(abs(change.relative - 0.25) < 1e-12)
        // Differences 0.1, 0, 0.2: standard deviation 0.1, standard error 0.1/√3, over 0.4.
        #expect(abs(change.relativeStandardError - 0.1 / 3.0.squareRoot() / 0.4) < 1e-12)
    }
}
