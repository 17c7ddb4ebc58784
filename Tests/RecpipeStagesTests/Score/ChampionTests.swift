import Foundation
import GRDB
import RecpipeTestSupport
import Testing
@testable import RecpipeModels
@testable import RecpipeStages
@testable import RecpipeStore

/// The champion rules on hand-made per-user figures.
@Suite(.tags(.small)) struct ChampionTests {
    typealias C = Champion.Contender

    @Test func pairedStandardErrorIsThatOfTheMeanDifference() {
        // Differences 1, 2, 3, 4: mean 2.5, sample variance 5/3, standard error sqrt(5/3/4).
        let se = Evaluation.pairedStandardError([2, 4, 6, 8], [1, 2, 3, 4])
        #expect(abs(se - (5.0 / 3 / 4).squareRoot()) < 1e-12)
        #expect(Evaluation.pairedStandardError([1, 2, 3], [1, 2, 3]) == 0)
    }

    @Test func withNothingLiveTheBestWinsUnlessACheaperOneIsWithinOneStandardError() {
        let vae = C(modelID: 1, kind: .multvae, perUser: [0.30, 0.50, 0.40, 0.60])
        let closeEASE = C(modelID: 2, kind: .ease, perUser: [0.31, 0.48, 0.41, 0.58])  // mean 0.445 vs 0.45
        let weakEASE = C(modelID: 3, kind: .ease, perUser: [0.10, 0.20, 0.15, 0.25])
        let close = Champion.decide(candidates: [vae, closeEASE], incumbent: nil, incumbentOnSplit: false, margin: 0.02,
                                    metric: "ndcg@100", liveModel: nil)
        #expect(close.chosen == 2, "\(close.reason)")
        #expect(close.reason.contains("cheaper"))
        let clear = Champion.decide(candidates: [weakEASE, vae], incumbent: nil, incumbentOnSplit: false, margin: 0.02,
                                    metric: "ndcg@100", liveModel: nil)
        #expect(clear.chosen == 1, "\(clear.reason)")
        #expect(clear.candidates.map(\.modelID) == [3, 1])
        #expect(abs(clear.candidates[1].value - 0.45) < 1e-12)
    }

    @Test func theLiveModelStaysUnlessBeatenByMoreThanOnePairedStandardError() {
        let live = C(modelID: 7, kind: .ials, perUser: [0.30, 0.50, 0.40, 0.60])
        // Better on average by 0.0125, but the differences (0.05, −0.02, 0.04, −0.02) are noisy.
        let noisy = C(modelID: 8, kind: .ease, perUser: [0.35, 0.48, 0.44, 0.58])
        let kept = Champion.decide(candidates: [live, noisy], incumbent: live, incumbentOnSplit: true, margin: 0.02,
                                   metric: "ndcg@100", liveModel: 7)
        #expect(kept.chosen == 7, "\(kept.reason)")
        #expect(kept.candidates.first { $0.modelID == 7 }?.live == true)
        // Better for every user by about 0.05: it takes over.
        let clear = C(modelID: 9, kind: .multvae, perUser: [0.35, 0.56, 0.44, 0.66])
        let taken = Champion.decide(candidates: [live, clear], incumbent: live, incumbentOnSplit: true, margin: 0.02,
                                    metric: "ndcg@100", liveModel: 7)
        #expect(taken.chosen == 9, "\(taken.reason)")
        // A worse challenger never does.
        let worse = C(modelID: 10, kind: .popularity, perUser: [0.1, 0.1, 0.1, 0.1])
        #expect(Champion.decide(candidates: [worse, live], incumbent: live, incumbentOnSplit: true, margin: 0.02,
                                metric: "ndcg@100", liveModel: 7).chosen == 7)
    }

    @Test func aLiveModelFromAnotherSplitGivesWayOnlyWithinTheMargin() {
        let old = C(modelID: 4, kind: .multvae, perUser: [0.40, 0.40])
        let slightlyWorse = C(modelID: 5, kind: .ease, perUser: [0.395, 0.395])  // 0.9875 × the live figure
        let muchWorse = C(modelID: 6, kind: .ease, perUser: [0.30, 0.30])
        let within = Champion.decide(candidates: [slightlyWorse], incumbent: old, incumbentOnSplit: false, margin: 0.02,
                                     metric: "ndcg@100", liveModel: 4)
        #expect(within.chosen == 5, "\(within.reason)")
        #expect(within.candidates.map(\.modelID) == [5, 4], "the live model's figure is recorded too")
        let below = Champion.decide(candidates: [muchWorse], incumbent: old, incumbentOnSplit: false, margin: 0.02,
                                    metric: "ndcg@100", liveModel: 4)
        #expect(below.chosen == 4, "\(below.reason)")
        let noGate = Champion.decide(candidates: [muchWorse], incumbent: old, incumbentOnSplit: false, margin: nil,
                                     metric: "ndcg@100", liveModel: 4)
        #expect(noGate.chosen == 6)
    }

    @Test func unknownMetricsAreRefused() {
        var config = ScoreStage.Config()
        config.championMetric = "ndcg@10"
        #expect(throws: StageError.self) { try ScoreStage(config: config) }
        config.championMetric = "recall@20"
        #expect((try? ScoreStage(config: config)) != nil)
    }
}

/// `score` without `--model` on real SQLite files.
@Suite(.tags(.medium)) struct ChampionScoreTests {
    func score(_ store: Store, model: ModelKind? = nil) throws {
        var config = ScoreStage.Config()
        config.k = 10
        config.kind = model
        try StageRunner.run(try ScoreStage(config: config), store: store, logger: quietLogger)
    }

    func live(_ store: Store) throws -> (model: Int64, kind: String, reason: String?, choice: String?) {
        try store.queue.read { db in
            let row = try Row.fetchOne(db, sql: """
                SELECT s.model_id, m.kind, s.choice_reason, s.choice FROM live_recommendations l JOIN score_runs s USING (run_id)
                JOIN models m ON m.model_id = s.model_id
                """)!
            return (row["model_id"], row["kind"], row["choice_reason"], row["choice"])
        }
    }

    @Test func withOnlyABaselineTrainedScoringPublishesIt() throws {
        let (scratch, store) = try TrainStageTests().prepared()
        _ = scratch
        try trainBaselines(store, [.ease])
        try score(store)
        let published = try live(store)
        #expect(published.kind == "ease")
        #expect(published.reason?.contains("nothing live yet") == true, "\(published.reason ?? "")")
    }

    /// The recorded figures are each model's validation NDCG@100 computed here on its own,
    /// and the choice follows the rules from them.
    @Test func theChampionIsChosenOnTheValidationUsersAndRecorded() throws {
        let (scratch, store) = try TrainStageTests().prepared()
        _ = scratch
        try StageRunner.run(try TrainStageTests().small(), store: store, logger: quietLogger)
        try trainBaselines(store, [.ease, .itemknn])
        try score(store)
        let published = try live(store)
        let choice = try JSONDecoder().decode(Champion.Choice.self, from: Data(published.choice!.utf8))
        #expect(choice.metric == "ndcg@100")
        #expect(Set(choice.candidates.map(\.kind)) == ["multvae", "ease", "itemknn"])
        let data = try TrainingData.load(store)
        for entry in choice.candidates {
            let model = try store.queue.read { try ModelStore.load(entry.modelID, in: $0).0 }
            let ndcg = Evaluation.meanNDCG(model, data.validation, k: 100)
            #expect(abs(ndcg - entry.value) < 1e-9, "model \(entry.modelID): recorded \(entry.value), computed \(ndcg)")
        }
        #expect(choice.chosen == published.model)
        #expect(choice.users == data.validation.targets.filter { !$0.isEmpty }.count)
        let best = choice.candidates.max { $0.value < $1.value }!
        let chosen = choice.candidates.first { $0.modelID == choice.chosen }!
        #expect(chosen.modelID == best.modelID || Champion.cost(ModelKind(rawValue: chosen.kind)!) < Champion.cost(ModelKind(rawValue: best.kind)!),
                "\(choice.reason)")
    }

    /// A worse challenger of another kind never replaces the live lists' model.
    @Test func theGateAcrossKindsKeepsTheLiveModelWhenTheChallengerIsWorse() throws {
        let (scratch, store) = try TrainStageTests().prepared()
        _ = scratch
        try trainBaselines(store, [.ease])
        try score(store, model: .ease)
        let ease = try live(store)
        #expect(ease.reason == nil, "a named model records no choice")
        try trainBaselines(store, [.popularity])
        try score(store)
        let after = try live(store)
        #expect(after.model == ease.model, "\(after.reason ?? "")")
        #expect(after.reason?.contains("stays") == true || after.reason?.contains("best") == true, "\(after.reason ?? "")")
        let choice = try JSONDecoder().decode(Champion.Choice.self, from: Data(after.choice!.utf8))
        let values = Dictionary(uniqueKeysWithValues: choice.candidates.map { ($0.kind, $0.value) })
        #expect(values["popularity"]! < values["ease"]!)
        #expect(choice.candidates.first { $0.kind == "ease" }?.live == true)
    }
}
