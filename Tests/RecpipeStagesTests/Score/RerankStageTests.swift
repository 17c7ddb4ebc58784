import Foundation
import GRDB
import RecpipeTestSupport
import Testing
@testable import RecpipeModels
@testable import RecpipeStages
@testable import RecpipeStore

/// The trade-off evaluate records, and the operating point score applies by default.
@Suite(.tags(.medium)) struct RerankStageTests {
    func score(_ store: Store, _ configure: (inout ScoreStage.Config) -> Void = { _ in }) throws -> StageReport {
        var config = ScoreStage.Config()
        config.kind = .ease
        configure(&config)
        return try StageRunner.run(try ScoreStage(config: config), store: store, logger: quietLogger)
    }

    func liveLists(_ store: Store) throws -> [String: [String]] {
        try store.queue.read { db in
            var lists: [String: [String]] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT user_key, item_key FROM recommendations WHERE source = 'model' ORDER BY user_key, rank") {
                lists[row["user_key"], default: []].append(row["item_key"])
            }
            return lists
        }
    }

    @Test func evaluateRecordsTheCurveAndScoreAppliesItsOperatingPoint() throws {
        let (scratch, store) = try ScoreStageTests().trained()
        _ = scratch
        try trainBaselines(store, [.ease])
        // Before any evaluation: auto has nothing to apply, and says so.
        let before = try score(store)
        #expect(before.summary.contains { $0.hasPrefix("not re-ranked: no evaluation") })
        let own = try liveLists(store)
        var evaluate = EvaluateStage.Config()
        evaluate.maxNDCGLoss = 0.05
        let report = try StageRunner.run(try EvaluateStage(config: evaluate), store: store, logger: quietLogger)
        #expect(report.summary.contains { $0.hasPrefix("trade-off of ") })
        #expect(report.summary.contains { $0.hasPrefix("trade-off on the test users") })
        let grid = 1 + Tradeoff.grid.map(\.weights.count).reduce(0, +)
        let (easeID, chosen) = try store.queue.read { db throws -> (Int64, Row) in
            for part in ["validation", "test"] {
                // Every lever at every weight, for every model, on both parts.
                for model in ["ease", "multvae", "popularity"] {
                    #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM tradeoff_points WHERE model = ? AND part = ? AND lever != 'augmentation'",
                                             arguments: [model, part]) == grid, "\(model) \(part)")
                    #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM tradeoff_points WHERE model = ? AND part = ? AND chosen = 1",
                                             arguments: [model, part]) == 1, "one operating point for \(model) on \(part)")
                }
            }
            // The base point is the model's own figure in evaluation (test users).
            #expect(try Double.fetchOne(db, sql: """
                SELECT abs(t.ndcg_100 - e.value) FROM tradeoff_points t JOIN evaluation e ON e.run_id = t.run_id AND e.model = t.model
                WHERE t.model = 'ease' AND t.lever = 'none' AND t.part = 'test' AND e.metric = 'ndcg' AND e.k = 100
                """)! < 1e-12)
            // The policy, checked in SQL: the chosen validation point has the largest APLT@20
            // of those within 5% of the base point's NDCG@100.
            let chosen = try Row.fetchOne(db, sql: "SELECT * FROM tradeoff_points WHERE model = 'ease' AND part = 'validation' AND chosen = 1")!
            let base: Double = try Double.fetchOne(db, sql: "SELECT ndcg_100 FROM tradeoff_points WHERE model = 'ease' AND part = 'validation' AND lever = 'none'")!
            let best = try Double.fetchOne(db, sql: """
                SELECT max(aplt_20) FROM tradeoff_points WHERE model = 'ease' AND part = 'validation' AND lever != 'augmentation' AND ndcg_100 >= ?
                """, arguments: [0.95 * base])!
            #expect(abs((chosen["aplt_20"] as Double) - best) < 1e-12)
            #expect((chosen["ndcg_100"] as Double) >= 0.95 * base)
            // Paired standard errors on every point but the bases.
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM tradeoff_points WHERE lever != 'none' AND ndcg_100_change_se IS NULL") == 0)
            return (try Int64.fetchOne(db, sql: "SELECT model_id FROM models WHERE kind = 'ease' AND status = 'published'")!, chosen)
        }
        #expect(chosen["model_id"] == easeID)
        // score --rerank auto (the default) applies it and records it.
        let after = try score(store)
        let lever: String = chosen["lever"]
        let rerank = try store.queue.read { try String.fetchOne($0, sql: "SELECT rerank FROM score_runs WHERE run_id = (SELECT run_id FROM live_recommendations)") }
        let reranked = try liveLists(store)
        if lever == "none" {
            #expect(after.summary.contains { $0.hasPrefix("not re-ranked: evaluation run") })
            #expect(reranked == own)
        } else {
            #expect(after.summary.contains { $0.hasPrefix("re-ranked: \(lever) λ") })
            let json = try JSONSerialization.jsonObject(with: Data(rerank!.utf8)) as! [String: Any]
            #expect(json["lever"] as? String == lever && json["source"] as? String == "auto")
            #expect(abs((json["weight"] as! Double) - (chosen["setting"] as Double)) < 1e-12)
            #expect(reranked != own, "re-ranked lists differ from the model's own")
        }
        // Same users, same K, every list still its own items excluded.
        #expect(Set(reranked.keys) == Set(own.keys))
        #expect(reranked.allSatisfy { $0.value.count == own[$0.key]!.count && Set($0.value).count == $0.value.count })
        // --rerank none gives back the model's own order.
        _ = try score(store) { $0.rerank = .none }
        #expect(try liveLists(store) == own)
        #expect(try store.queue.read { try String.fetchOne($0, sql: "SELECT rerank FROM score_runs WHERE run_id = (SELECT run_id FROM live_recommendations)") } == nil)
        // A lever named with a weight: the head's share of the lists falls.
        _ = try score(store) { $0.rerank = .popularity; $0.tailWeight = 1 }
        let penalised = try liveLists(store)
        let head = try store.queue.read { db in
            Set(try String.fetchAll(db, sql: "SELECT item_key FROM evaluation_head_items WHERE run_id = (SELECT max(run_id) FROM evaluation_runs)"))
        }
        func headShare(_ lists: [String: [String]]) -> Double {
            let top = lists.values.flatMap { $0.prefix(20) }
            return Double(top.filter(head.contains).count) / Double(max(top.count, 1))
        }
        #expect(headShare(penalised) < headShare(own))
    }

    @Test func badRerankOptionsAreRefusedBeforeAnythingRuns() {
        func refused(_ configure: (inout ScoreStage.Config) -> Void) -> String? {
            var config = ScoreStage.Config()
            configure(&config)
            do { _ = try ScoreStage(config: config); return nil } catch { return "\(error)" }
        }
        #expect(refused { $0.rerank = .xquad }?.contains("needs --tail-weight") == true)
        #expect(refused { $0.rerank = .popularity; $0.tailWeight = 1.5 }?.contains("between 0 and 1") == true)
        #expect(refused { $0.tailWeight = 0.2 }?.contains("--tail-weight needs --rerank xquad or popularity") == true)
        #expect(refused { $0.rerank = .xquad; $0.tailWeight = 0.3 } == nil)
        var evaluate = EvaluateStage.Config()
        evaluate.maxNDCGLoss = -0.1
        #expect(throws: StageError.self) { try EvaluateStage(config: evaluate) }
    }
}
