import GRDB

/// What services read: the live recommendations (the `recommendations` view), one user's at
/// a time.
public enum LiveLists {
    public struct Item: Sendable, Equatable, Encodable {
        public var rank: Int
        public var item: String
        public var score: Double
    }

    public struct List: Sendable, Equatable {
        public var user: String
        public var modelID: Int64
        public var runID: Int64
        public var items: [Item]
    }

    /// The user's live list, its first `k` items; nil when the user has none. The key is
    /// matched byte for byte.
    public static func list(for user: String, k: Int, in store: Store) throws -> List? {
        let rows = try store.queue.read { db in
            try Row.fetchAll(db, sql: """
                SELECT rank, item_key, score, model_id, run_id FROM \(TableName.recommendations)
                WHERE user_key = ? AND rank <= ? ORDER BY rank
                """, arguments: [user, k])
        }
        guard let first = rows.first else { return nil }
        return List(user: user, modelID: first["model_id"], runID: first["run_id"],
                    items: rows.map { Item(rank: $0["rank"], item: $0["item_key"], score: $0["score"]) })
    }
}
