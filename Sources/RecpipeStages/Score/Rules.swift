import Foundation
import RecpipeModels
import RecpipeNumerics
import RecpipeStore

extension ScoreStage {
    /// The business rules a scoring run applies, in the model's item positions, with the
    /// digest and summary its `score_runs` row records.
    public struct AppliedRules: Sendable {
        public var ranking: RankingRules
        /// nil where it was not asked for (the fallback lists apply the run's rules again).
        public var digest: String?
        /// JSON: what was left out and the cap.
        public var summary: String
        public var unavailable: Int
        public var exclusions: Int
    }

    /// Reads the rules in force at `now` for the users `userKeys` (by user_idx) and the
    /// model's items. Rules naming items the model does not know, or users who are not in
    /// the split, have nothing to leave out.
    /// `digest`: also hash the rule tables, in the same transaction and the same scan of the
    /// exclusions (once per run: at ML-20M size they are millions of rows).
    public static func rules(_ store: Store, itemKeys: [String], userKeys: [String], maxPerCategory: Int?, now: String,
                      digest wantsDigest: Bool = false) throws -> AppliedRules {
        let position = Dictionary(uniqueKeysWithValues: itemKeys.enumerated().map { (ExactKey($1), $0) })
        let row = Dictionary(uniqueKeysWithValues: userKeys.enumerated().map { (ExactKey($1), $0) })
        return try store.queue.read { db in
            var blocked = [Bool](repeating: false, count: itemKeys.count)
            var unavailable = 0
            for key in try BusinessRules.unavailableItems(at: now, in: db) {
                if let p = position[ExactKey(key)], !blocked[p] {
                    blocked[p] = true
                    unavailable += 1
                }
            }
            var byUser: [Int: [Int32]] = [:]
            var exclusions = 0
            // The rows come by user: the user's key is looked up once for all of them.
            var lastUser: [UInt8] = [], lastRow: Int?
            func exclude(_ user: UnsafeBufferPointer<UInt8>, _ item: UnsafeBufferPointer<UInt8>) {
                if !user.elementsEqual(lastUser) || lastUser.isEmpty {
                    lastUser = Array(user)
                    lastRow = row[ExactKey(String(decoding: user, as: UTF8.self))]
                }
                guard let r = lastRow, let p = position[ExactKey(String(decoding: item, as: UTF8.self))] else { return }
                byUser[r, default: []].append(Int32(p))
                exclusions += 1
            }
            // One scan of the exclusions for the rules and their digest.
            let digest = wantsDigest ? try BusinessRules.digest(categories: maxPerCategory != nil, in: db, exclusionsAt: now, exclude)
                : nil
            if !wantsDigest { try BusinessRules.forEachExclusion(at: now, in: db, exclude) }
            let excluded = byUser.isEmpty ? nil
                : CSRMatrix(cols: itemKeys.count, rowsOfColumns: userKeys.indices.map { byUser[$0]?.sorted() ?? [] })
            var category: [Int32] = []
            if maxPerCategory != nil {
                category = [Int32](repeating: -1, count: itemKeys.count)
                var ids: [ExactKey: Int32] = [:]
                for (item, name) in try BusinessRules.categories(in: db) {
                    guard let p = position[ExactKey(item)] else { continue }
                    let key = ExactKey(name)
                    if ids[key] == nil { ids[key] = Int32(ids.count) }
                    category[p] = ids[key]!
                }
            }
            let cap = maxPerCategory.map(String.init) ?? "null"
            let summary = #"{"exclusions":\#(exclusions),"max_per_category":\#(cap),"unavailable_items":\#(unavailable),"users_with_exclusions":\#(byUser.count)}"#
            return AppliedRules(ranking: RankingRules(blocked: unavailable > 0 ? blocked : [], excluded: excluded, category: category,
                                                      maxPerCategory: maxPerCategory),
                                digest: digest, summary: summary, unavailable: unavailable, exclusions: exclusions)
        }
    }
}
