import Foundation
import GRDB
import RecpipeTestSupport
import Testing
@testable import RecpipeModels
@testable import RecpipeStages
@testable import RecpipeStore

@Suite(.tags(.medium)) struct RetentionTests {
    /// Trains a popularity model (cheap, a real stored model) with the gate off: it is
    /// published, the previous one retired, older ones pruned beyond `keep`.
    @discardableResult
    func train(_ store: Store, kind: ModelKind = .popularity, keep: Int = 2, publish: Bool = true) throws -> Int64 {
        var config = TrainStage.Config()
        config.kind = kind
        config.publish = publish
        config.publishMargin = nil
        config.ease.lambdas = [50]
        config.retention.keepRetired = keep
        try StageRunner.run(try TrainStage(config: config), store: store, logger: quietLogger)
        return try store.queue.read { try Int64.fetchOne($0, sql: "SELECT max(model_id) FROM models")! }
    }

    func score(_ store: Store, kind: ModelKind = .popularity) throws {
        var config = ScoreStage.Config()
        config.k = 5
        config.kind = kind
        try StageRunner.run(try ScoreStage(config: config), store: store, logger: quietLogger)
    }

    /// model_id → (status, has weights, pruned).
    func models(_ store: Store) throws -> [Int64: (status: String, weights: Bool, pruned: Bool)] {
        try store.queue.read { db throws in
            var result: [Int64: (String, Bool, Bool)] = [:]
            for row in try Row.fetchAll(db, sql: """
                SELECT model_id, status, pruned_at IS NOT NULL AS pruned,
                       EXISTS (SELECT 1 FROM model_weights w WHERE w.model_id = m.model_id) AS weights
                FROM models AS m
                """) {
                result[row["model_id"]] = (row["status"], row["weights"], row["pruned"])
            }
            return result
        }
    }

    @Test func publishingPrunesTheKindsOldestRetiredModelsButNeverALiveOrRollbackOne() throws {
        let (scratch, store) = try TrainStageTests().prepared()
        _ = scratch
        let first = try train(store)
        try score(store)
        let second = try train(store)
        try score(store)  // live: second's lists; rollback set: first's
        let ease = try train(store, kind: .ease)
        var ids = [first, second]
        for _ in 0..<4 { ids.append(try train(store, keep: 1)) }
        let all = try models(store)
        // Published: the newest. Kept by the policy: the newest retired one. Kept because
        // lists refer to them: first (rollback) and second (live). Pruned: the rest.
        #expect(all[ids[5]]! == ("published", true, false))
        #expect(all[ids[4]]! == ("retired", true, false))
        #expect(all[first]!.weights && all[second]!.weights)
        for id in [ids[2], ids[3]] {
            #expect(all[id]! == ("retired", false, true), "model \(id)")
        }
        // Another kind is not touched by popularity's publishing.
        #expect(all[ease]! == ("published", true, false))
        try store.queue.read { db throws in
            for table in ["model_items", "training_log", "model_weights"] {
                #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM \(table) WHERE model_id IN (?, ?)",
                                         arguments: [ids[2], ids[3]]) == 0, "\(table)")
            }
            // Loading a pruned model says so.
            #expect(throws: StageError.missingInput("model \(ids[2]) (popularity) was pruned at \(try String.fetchOne(db, sql: "SELECT pruned_at FROM models WHERE model_id = ?", arguments: [ids[2]])!): its weights are no longer stored")) {
                try ModelStore.load(ids[2], in: db)
            }
            #expect(try Int.fetchOne(db, sql: "PRAGMA foreign_key_check") == nil)
        }
        // Scoring the published model and rolling back still work.
        try score(store)
        try StageRunner.run(RollbackStage(), store: store, logger: quietLogger)
    }

    @Test func candidatesTheGateKeptBackArePrunedLikeRetiredOnes() throws {
        let (scratch, store) = try TrainStageTests().prepared()
        _ = scratch
        let published = try train(store)
        var candidates: [Int64] = []
        for _ in 0..<4 { candidates.append(try train(store, publish: false)) }
        let all = try models(store)
        #expect(all[published]! == ("published", true, false))
        #expect(all[candidates[3]]!.weights && all[candidates[2]]!.weights)
        #expect(all[candidates[1]]!.pruned && all[candidates[0]]!.pruned)
        // With --keep-retired 0 the candidate just stored keeps its weights (evaluate and a
        // later --model ID need it); the older ones go.
        let kept = try train(store, keep: 0, publish: false)
        let after = try models(store)
        #expect(after[kept]! == ("candidate", true, false))
        #expect(after[candidates[3]]!.pruned && after[candidates[2]]!.pruned)
    }

    @Test func evaluationsBeyondTheNewestKeepOnlyTheirAggregates() throws {
        let (scratch, store) = try TrainStageTests().prepared()
        _ = scratch
        try train(store)
        var config = EvaluateStage.Config()
        config.retention.keepEvaluations = 2
        for part in [EvaluateStage.Part.test, .validation, .test, .validation] {
            config.part = part
            try StageRunner.run(try EvaluateStage(config: config), store: store, logger: quietLogger)
        }
        try store.queue.read { db throws in
            let runs = try Int64.fetchAll(db, sql: "SELECT run_id FROM evaluation_runs ORDER BY run_id")
            #expect(runs.count == 4)
            for (index, run) in runs.enumerated() {
                let detail = try Int.fetchOne(db, sql: "SELECT count(*) FROM evaluation_users WHERE run_id = ?", arguments: [run])!
                let head = try Int.fetchOne(db, sql: "SELECT count(*) FROM evaluation_head_items WHERE run_id = ?", arguments: [run])!
                let aggregate = try Int.fetchOne(db, sql: "SELECT count(*) FROM evaluation WHERE run_id = ?", arguments: [run])!
                #expect(aggregate > 0)
                #expect((detail > 0 && head > 0) == (index >= 2), "run \(run)")
            }
        }
    }

    @Test func onlyTheNewestAugmentRunOfTheCurrentSplitKeepsItsRows() throws {
        let (scratch, store) = try TrainStageTests().prepared()
        _ = scratch
        var config = AugmentStage.Config()
        config.gan.generatorHidden = [16]
        config.gan.discriminatorHidden = [8]
        config.gan.epochs = 2
        config.selection.usersBelow = 1000
        config.retention.keepRetired = 0
        for _ in 0..<3 { try StageRunner.run(try AugmentStage(config: config), store: store, logger: quietLogger) }
        try store.queue.read { db throws in
            let runs = try Int64.fetchAll(db, sql: "SELECT run_id FROM augment_runs ORDER BY run_id")
            #expect(runs.count == 3)
            #expect(try Int64.fetchAll(db, sql: "SELECT DISTINCT run_id FROM augmented_interactions") == [runs[2]])
            // Generators: the published one keeps its weights; with --keep-retired 0 the two
            // older ones lose theirs but keep their rows, which augment_runs refers to.
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM models WHERE kind = 'cfgan' AND pruned_at IS NOT NULL") == 2)
            #expect(try Int.fetchOne(db, sql: "PRAGMA foreign_key_check") == nil)
        }
    }

    @Test func newDatabasesReturnFreedPagesToTheFileSystem() throws {
        let (scratch, store) = try TrainStageTests().prepared()
        _ = scratch
        #expect(try store.queue.read { try Int.fetchOne($0, sql: "PRAGMA auto_vacuum") } == 2)
        for _ in 0..<3 { try train(store, kind: .ease, keep: 0) }
        try store.queue.read { db throws in
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM models WHERE pruned_at IS NOT NULL") == 2)
            #expect(try Int.fetchOne(db, sql: "PRAGMA freelist_count") == 0)
        }
    }

    @Test func pruneConvertsAnOlderFileWithVacuumAndReportsWhatItRemoved() throws {
        let (scratch, store) = try TrainStageTests().prepared()
        _ = scratch
        // As a database made before incremental auto_vacuum: its mode is NONE.
        try store.queue.writeWithoutTransaction { try $0.execute(sql: "PRAGMA auto_vacuum = NONE; VACUUM") }
        #expect(try store.queue.read { try Int.fetchOne($0, sql: "PRAGMA auto_vacuum") } == 0)
        for _ in 0..<3 { try train(store, kind: .ease, keep: 2) }
        var config = PruneStage.Config()
        config.policy.keepRetired = 0
        config.vacuum = true
        let report = try StageRunner.run(try PruneStage(config: config), store: store, logger: quietLogger)
        #expect(report.summary.filter { $0.hasPrefix("removed model ") }.count == 2)
        try store.queue.read { db throws in
            #expect(try Int.fetchOne(db, sql: "PRAGMA auto_vacuum") == 2)
            #expect(try Int.fetchOne(db, sql: "PRAGMA freelist_count") == 0)
            #expect(try String.fetchOne(db, sql: "PRAGMA integrity_check") == "ok")
        }
        // Nothing left: a second prune says so.
        let again = try StageRunner.run(try PruneStage(config: config), store: store, logger: quietLogger)
        #expect(again.summary.first?.hasPrefix("nothing to remove") == true)
        #expect(throws: StageError.self) { try PruneStage(config: { var c = config; c.policy.keepRetired = -1; return c }()) }
    }
}
