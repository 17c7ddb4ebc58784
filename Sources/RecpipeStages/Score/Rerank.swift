import Foundation
import RecpipeModels
import RecpipeStore

extension ScoreStage {
    /// The re-ranking a run applies, what `score_runs.rerank` records of it (JSON), and a
    /// line saying which and why.
    struct RerankDecision {
        var reranking: Reranking?
        var json: String?
        var description: String
    }

    /// `score_runs.rerank`: what was applied and where it came from.
    struct RecordedRerank: Encodable {
        var evaluationRun: Int64?
        var lever: String
        var source: String
        var weight: Double?
        enum CodingKeys: String, CodingKey { case evaluationRun = "evaluation_run", lever, source, weight }

        func encoded() throws -> String {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            return String(decoding: try encoder.encode(self), as: UTF8.self)
        }
    }

    /// `--rerank`: none, a lever with `--tail-weight`, or (`auto`) the operating point the
    /// newest evaluation of the current split chose for `record`'s model.
    func reranking(_ context: StageContext, record: ModelStore.Record) throws -> RerankDecision {
        let store = context.store
        let lever: Reranking.Lever, weight: Double
        var evaluationRun: Int64?
        switch config.rerank {
        case .none:
            return RerankDecision(reranking: nil, json: nil, description: "not re-ranked (--rerank none)")
        case .xquad, .popularity:
            lever = Reranking.Lever(rawValue: config.rerank.rawValue)!
            weight = config.tailWeight!
        case .auto:
            let found = try store.queue.read { db -> (run: Int64, lever: String, setting: Double)? in
                guard let clean = try Split.latestRun(in: db) else { return nil }
                return try Tradeoffs.chosen(modelID: record.modelID, cleanRun: clean.runID, in: db)
            }
            guard let found else {
                context.logger.info("not re-ranked: no evaluation of this split has judged the model", metadata: [
                    "model": "\(record.modelID)", "hint": "run recpipe evaluate before score, or score --rerank none"])
                return RerankDecision(reranking: nil, json: nil, description: "not re-ranked: no evaluation of the current split has judged model \(record.modelID) (--rerank auto; run recpipe evaluate before score)")
            }
            guard let chosen = Reranking.Lever(rawValue: found.lever) else {
                let json = try RecordedRerank(evaluationRun: found.run, lever: "none", source: "auto").encoded()
                return RerankDecision(reranking: nil, json: json, description: "not re-ranked: evaluation run \(found.run) chose model \(record.modelID)'s own order (no re-ranking kept NDCG@100 within its --max-ndcg-loss on the validation users)")
            }
            (lever, weight, evaluationRun) = (chosen, found.setting, found.run)
        }
        // The head and the penalties from the split's training interactions, as evaluate
        // judged the re-ranking.
        let counts = try store.queue.read { db -> [Float] in
            var byKey: [String: Float] = [:]
            for (item, interactions) in try Split.itemsByPopularity(in: db) { byKey[item] = Float(interactions) }
            return record.itemKeys.map { byKey[$0] ?? 0 }
        }
        let reranking = Reranking(lever: lever, weight: weight, counts: counts)
        let source = evaluationRun.map { "auto: the operating point of evaluation run \($0)" } ?? "--rerank \(lever.rawValue) --tail-weight \(EvaluateStage.format(weight))"
        let json = try RecordedRerank(evaluationRun: evaluationRun, lever: lever.rawValue, source: evaluationRun == nil ? "option" : "auto",
                                      weight: weight).encoded()
        context.logger.info("re-ranking", metadata: [
            "lever": "\(lever.rawValue)", "weight": "\(EvaluateStage.format(weight))", "source": "\(evaluationRun == nil ? "option" : "auto")",
            "candidates": "\(Reranking.candidateFactor)×k",
        ])
        return RerankDecision(reranking: reranking, json: json, description: "\(lever.rawValue) λ \(EvaluateStage.format(weight)) over the best \(Reranking.candidateFactor)×K candidates (\(source))")
    }
}
