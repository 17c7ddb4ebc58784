import Foundation
import RecpipeModels
import RecpipeStore

extension ScoreStage {
    /// The metric named NAME@K, checked against what `Evaluation.evaluate` reports per user.
    static func metric(_ text: String) throws -> (name: String, k: Int) {
        let perUser = ["recall@20", "recall@50", "ndcg@100", "precision@10", "hit_rate@10", "mrr@100"]
        let parts = text.lowercased().split(separator: "@")
        guard perUser.contains(text.lowercased()), parts.count == 2, let k = Int(parts[1]) else {
            throw StageError.badOption("--champion-metric must be one of \(perUser.joined(separator: ", ")), got '\(text)'")
        }
        return (String(parts[0]), k)
    }

    /// The model to score: the one named by id or kind, else the champion and why.
    func chooseModel(_ context: StageContext) throws -> (any StorableModel, ModelStore.Record, Champion.Choice?) {
        let store = context.store
        if config.modelID != nil || config.kind != nil {
            let (model, record) = try store.queue.read { db -> (any StorableModel, ModelStore.Record) in
                if let id = config.modelID { return try ModelStore.load(id, in: db) }
                let kind = config.kind!
                guard let id = try ModelStore.published(kind: kind, in: db) else {
                    throw StageError.missingInput("\(store.path): no published \(kind.rawValue) model; run train --model \(kind.rawValue) first")
                }
                return try ModelStore.load(id, in: db)
            }
            return (model, record, nil)
        }
        let choice = try champion(context)
        context.logger.info("champion chosen", metadata: ["model": "\(choice.chosen)", "reason": "\(choice.reason)"])
        let (model, record) = try store.queue.read { try ModelStore.load(choice.chosen, in: $0) }
        return (model, record, choice)
    }

    /// Judges the published models of every kind of the current split (trained on it, or kept
    /// for it by `train --retrain-threshold`), and the model behind the live lists, on the
    /// validation users (`Champion` says how it chooses).
    func champion(_ context: StageContext) throws -> Champion.Choice {
        let store = context.store
        let data = try TrainingData.load(store)
        let kinds = ModelKind.allCases.filter { $0 != .cfgan }
        let (published, onSplit, liveModel) = try store.queue.read { db -> ([ModelStore.Record], Set<Int64>, Int64?) in
            let records = try kinds.compactMap { kind in try ModelStore.published(kind: kind, in: db) }
                .map { try ModelStore.record($0, in: db) }
            let live = try LiveLists.summary(in: db)?.modelID
            return (records, try Models.onSplit(fingerprint: data.fingerprint, cleanRun: data.cleanRunID, in: db), live)
        }
        let candidates = published.filter { onSplit.contains($0.modelID) }
        // The incumbent: the live model, or the model of its kind published after it.
        var incumbentID = liveModel
        var incumbentOnSplit = false
        if let live = liveModel {
            if candidates.contains(where: { $0.modelID == live }) {
                incumbentOnSplit = true
            } else if let liveRecord = try? store.queue.read({ try ModelStore.record(live, in: $0) }) {
                if let successor = candidates.first(where: { $0.kind == liveRecord.kind }) {
                    incumbentID = successor.modelID
                    incumbentOnSplit = true
                }
            } else {
                incumbentID = nil  // pruned or gone: nothing to defend
            }
        }
        guard !candidates.isEmpty || incumbentID != nil else {
            throw StageError.missingInput("\(store.path): no published model trained on the current split; run recpipe train first (or score --model ID)")
        }
        let metric = try Self.metric(config.championMetric)
        let heldOut = data.validation
        let popularity = Popularity(train: data.train)
        func contender(_ id: Int64) throws -> Champion.Contender {
            let (recommender, record) = try store.queue.read { try ModelStore.load(id, over: data.itemKeys, in: $0) }
            let (users, lists) = Evaluation.topLists(recommender, on: heldOut, k: 100)
            let figures = Evaluation.evaluate(lists: lists, users: users, on: heldOut, trainCounts: popularity.counts,
                                              trainUsers: data.train.rows)
            let values = figures.first { $0.name == metric.name && $0.k == metric.k }?.perUser ?? []
            return Champion.Contender(modelID: id, kind: record.kind, perUser: values)
        }
        guard heldOut.foldIn.rows > 0 else {
            // Nothing to judge on: keep what is live where it is on the split, else the newest.
            let id = incumbentOnSplit ? incumbentID! : (candidates.map(\.modelID).max() ?? incumbentID!)
            let kind = (candidates.first { $0.modelID == id } ?? published.first { $0.modelID == id })?.kind ?? .multvae
            return Champion.Choice(metric: config.championMetric, users: 0, chosen: id,
                                   reason: "the split has no validation users to compare models on; model \(id) (\(kind.rawValue)) is \(incumbentOnSplit ? "live and stays" : "the newest published")",
                                   candidates: [])
        }
        let contenders = try candidates.map { try contender($0.modelID) }
        let incumbent = try incumbentID.map { id in try contenders.first { $0.modelID == id } ?? contender(id) }
        return Champion.decide(candidates: contenders, incumbent: incumbent, incumbentOnSplit: incumbentOnSplit,
                               margin: config.publishMargin, metric: config.championMetric, liveModel: liveModel)
    }
}
