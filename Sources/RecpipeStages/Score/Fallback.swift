import Foundation
import RecpipeModels
import RecpipeNumerics
import RecpipeStore

extension ScoreStage {
    /// What the fallback lists were.
    struct Fallbacks {
        var rows = 0
        /// The writer's seconds.
        var seconds = 0.0
        var itemUsers = 0
        var popularUsers = 0
        /// The item-based model behind the `fallback-item` lists.
        var itemModel: Int64?
    }

    /// Lists for the users of `raw_interactions` the split does not hold (left out by the
    /// k-core filter, or new since the last clean), in the same set: from their known items
    /// through the published EASE (else EDLAE, else ItemKNN) model where it knows any of them
    /// (`fallback-item`), else the most popular items of the split they have not had
    /// (`fallback-popular`). The business rules apply as to every list.
    func writeFallbacks(_ context: StageContext, k: Int, maxPerCategory: Int?, runID: Int64,
                        to connection: RawConnection) throws -> Fallbacks {
        let store = context.store
        let outside = try store.queue.read { try Split.usersOutsideTheSplit(in: $0) }
        var result = Fallbacks()
        guard !outside.isEmpty else { return result }
        let itemModel = try store.queue.read { db -> (any StorableModel, ModelStore.Record)? in
            for kind in [ModelKind.ease, .edlae, .itemknn] {
                if let id = try ModelStore.published(kind: kind, in: db) { return try ModelStore.load(id, in: db) }
            }
            return nil
        }
        var popularUsers = outside
        if let (model, record) = itemModel, model.nonFiniteTensor() == nil {
            let position = Dictionary(uniqueKeysWithValues: record.itemKeys.enumerated().map { (ExactKey($1), Int32($0)) })
            let known = outside.map { entry in Array(Set(entry.items.compactMap { position[ExactKey($0)] })).sorted() }
            let chosen = outside.indices.filter { !known[$0].isEmpty }
            popularUsers = outside.indices.filter { known[$0].isEmpty }.map { outside[$0] }
            if !chosen.isEmpty {
                let keys = chosen.map { outside[$0].user }
                let rules = try Self.rules(store, itemKeys: record.itemKeys, userKeys: keys, maxPerCategory: maxPerCategory, now: Clock.isoNow())
                let history = CSRMatrix(cols: record.itemKeys.count, rowsOfColumns: chosen.map { known[$0] })
                let written = try Self.write(model, history, users: 0..<keys.count, k: min(k, model.items), batch: config.batchUsers,
                                              userKeys: keys, itemKeys: record.itemKeys, rules: rules.ranking, source: .fallbackItem,
                                              explainer: config.reasons ? Explanations.explainer(for: model) : nil,
                                              runID: runID, to: connection)
                (result.rows, result.seconds) = (result.rows + written.rows, result.seconds + written.seconds)
                result.itemUsers = keys.count
                result.itemModel = record.modelID
            }
        }
        if !popularUsers.isEmpty {
            let items = try store.queue.read { try Split.itemsByPopularity(in: $0) }
            if !items.isEmpty {
                let itemKeys = items.map(\.item)
                let position = Dictionary(uniqueKeysWithValues: itemKeys.enumerated().map { (ExactKey($1), Int32($0)) })
                let keys = popularUsers.map(\.user)
                let history = CSRMatrix(cols: itemKeys.count, rowsOfColumns: popularUsers.map { entry in
                    Array(Set(entry.items.compactMap { position[ExactKey($0)] })).sorted()
                })
                let rules = try Self.rules(store, itemKeys: itemKeys, userKeys: keys, maxPerCategory: maxPerCategory, now: Clock.isoNow())
                let popularity = Popularity(counts: items.map { Float($0.interactions) })
                let written = try Self.write(popularity, history, users: 0..<keys.count, k: min(k, itemKeys.count), batch: config.batchUsers,
                                              userKeys: keys, itemKeys: itemKeys, rules: rules.ranking, source: .fallbackPopular,
                                              runID: runID, to: connection)
                (result.rows, result.seconds) = (result.rows + written.rows, result.seconds + written.seconds)
                result.popularUsers = keys.count
            }
        }
        context.logger.info("fallback lists written", metadata: [
            "users_outside_split": "\(outside.count)", "fallback_item": "\(result.itemUsers)",
            "fallback_popular": "\(result.popularUsers)", "item_model": "\(result.itemModel.map(String.init) ?? "none")",
        ])
        return result
    }
}
