import GRDB

/// What services read: the live recommendations (the `recommendations` view), one user's at
/// a time.
public enum LiveLists {
    public struct Item: Sendable, Equatable, Encodable {
        public var rank: Int
        public var item: String
        public var score: Double
        /// `model`, `fallback-item` or `fallback-popular`.
        public var source: String
        /// The history item behind it (nil for popular items).
        public var because: String? = nil
    }

    public struct List: Sendable, Equatable {
        public var user: String
        public var modelID: Int64
        public var runID: Int64
        public var items: [Item]
        /// What is live, read in the same transaction as the items.
        public var published: Published?
    }

    /// The user's live list, its first `k` items; nil when the user has none. The key is
    /// matched byte for byte.
    public static func list(for user: String, k: Int, in store: Store) throws -> List? {
        let (rows, published) = try store.queue.read { db in
            (try Row.fetchAll(db, sql: """
                SELECT rank, item_key, score, model_id, run_id, source, because_item_key FROM \(TableName.recommendations)
                WHERE user_key = ? AND rank <= ? ORDER BY rank
                """, arguments: [user, k]), try summary(in: db))
        }
        guard let first = rows.first else { return nil }
        return List(user: user, modelID: first["model_id"], runID: first["run_id"],
                    items: rows.map { Item(rank: $0["rank"], item: $0["item_key"], score: $0["score"], source: $0["source"],
                                           because: $0["because_item_key"]) },
                    published: published)
    }

    /// For a key with no live list (never seen, or seen after the lists were published): the
    /// split's most popular items (score: training interactions) that the business rules in
    /// force `now` allow for it and its rows in `raw_interactions` do not hold.
    public static func popular(for user: String, k: Int, now: String, in store: Store) throws -> [Item] {
        try store.queue.read { db in
            let unavailable = Set(try BusinessRules.unavailableItems(at: now, in: db).map(ExactKey.init))
            let excluded = Set(try BusinessRules.exclusions(of: user, at: now, in: db).map(ExactKey.init))
            let had = Set(try String.fetchAll(db, sql: "SELECT item_key FROM \(TableName.rawInteractions) WHERE user_key = ?",
                                              arguments: [user]).map(ExactKey.init))
            var items: [Item] = []
            for (item, count) in try Split.itemsByPopularity(in: db) where items.count < k {
                let key = ExactKey(item)
                guard !unavailable.contains(key), !excluded.contains(key), !had.contains(key) else { continue }
                items.append(Item(rank: items.count + 1, item: item, score: Double(count), source: Source.fallbackPopular.rawValue))
            }
            return items
        }
    }
}

extension LiveLists {
    /// The live run and when it was published; nil when nothing is published.
    public static func published(in db: Database) throws -> (run: Int64, publishedAt: String)? {
        try Row.fetchOne(db, sql: """
            SELECT s.run_id, s.published_at FROM \(TableName.liveRecommendations) l JOIN \(TableName.scoreRuns) s USING (run_id)
            """).map { ($0["run_id"], $0["published_at"]) }
    }

    /// What is live: the run, its model and kind, when it was published, and why that model
    /// was chosen (nil when it was named on the command line or published from shards).
    public struct Published: Sendable, Equatable, Encodable {
        public var run: Int64
        public var modelID: Int64
        public var kind: String
        public var publishedAt: String
        public var reason: String?
        enum CodingKeys: String, CodingKey { case run = "run_id", modelID = "model_id", kind, publishedAt = "published_at", reason }
    }

    public static func summary(in db: Database) throws -> Published? {
        try Row.fetchOne(db, sql: """
            SELECT s.run_id, s.model_id, m.kind, s.published_at, s.choice_reason FROM \(TableName.liveRecommendations) l
            JOIN \(TableName.scoreRuns) s USING (run_id) JOIN \(TableName.models) m ON m.model_id = s.model_id
            """).map { Published(run: $0["run_id"], modelID: $0["model_id"], kind: $0["kind"], publishedAt: $0["published_at"],
                                 reason: $0["choice_reason"]) }
    }

    /// The re-ranking the live run applied, as `score_runs.rerank` records it (JSON); nil for
    /// none or nothing live.
    public static func rerank(in db: Database) throws -> String? {
        try String.fetchOne(db, sql: """
            SELECT s.rerank FROM \(TableName.liveRecommendations) l JOIN \(TableName.scoreRuns) s USING (run_id)
            """)
    }

    /// Why the live run's model was chosen, as JSON (`score_runs.choice`); nil when it was
    /// named or nothing is live.
    public static func choice(in db: Database) throws -> String? {
        try String.fetchOne(db, sql: """
            SELECT s.choice FROM \(TableName.liveRecommendations) l JOIN \(TableName.scoreRuns) s USING (run_id)
            """)
    }

    /// The lists of `users` in `run`, item keys by rank; a user without a list is left out.
    /// Keys are matched byte for byte.
    public static func items(run: Int64, users: some Sequence<ExactKey>, in db: Database) throws -> [ExactKey: [ExactKey]] {
        let statement = try db.cachedStatement(sql: "SELECT item_key FROM \(TableName.recommendationRows) WHERE run_id = ? AND user_key = ? ORDER BY rank")
        var lists: [ExactKey: [ExactKey]] = [:]
        for user in users {
            let items = try String.fetchAll(statement, arguments: [run, user.text])
            if !items.isEmpty { lists[user] = items.map(ExactKey.init) }
        }
        return lists
    }

    /// The item keys of every live top-`k` list (the report's long-tail chart).
    public static func liveItems(k: Int, in db: Database) throws -> [String] {
        try String.fetchAll(db, sql: "SELECT item_key FROM \(TableName.recommendations) WHERE rank <= ?", arguments: [k])
    }
}

/// How lists are published, the only code that writes `score_runs`, `recommendation_rows`
/// and `live_recommendations`: a run's rows are written under its id (invisible), then one
/// small transaction points the live lists at them, keeping the set they replace as the
/// rollback set; every other set's rows are then removed.
extension LiveLists {
    /// Records a scoring run before its rows are written (published_at stays NULL).
    /// `reason` and `choice` (JSON) say why the model was chosen (nil: it was named).
    /// `rulesDigest` and `rules` (JSON) say which business rules it applies.
    public static func begin(run: Int64, model: Int64, k: Int, users: Int, reason: String? = nil, choice: String? = nil,
                             rulesDigest: String? = nil, rules: String? = nil, rerank: String? = nil, in db: Database) throws {
        try db.execute(sql: """
            INSERT INTO \(TableName.scoreRuns) (run_id, model_id, k, users, rows, created_at, choice_reason, choice, rules_digest, rules, rerank)
            VALUES (?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?)
            """, arguments: [run, model, k, users, Clock.isoNow(), reason, choice, rulesDigest, rules, rerank])
    }

    /// Where a list comes from (`recommendation_rows.source`).
    public enum Source: String, Sendable, Codable, CaseIterable {
        case model
        case fallbackItem = "fallback-item"
        case fallbackPopular = "fallback-popular"

        /// The raw value, bound without a copy.
        var text: StaticString {
            switch self {
            case .model: "model"
            case .fallbackItem: "fallback-item"
            case .fallbackPopular: "fallback-popular"
            }
        }
    }

    /// One row of a run, its keys as UTF-8 bytes (`EncodedKeys`), bound without copies.
    public struct WrittenRow {
        public var user: UnsafeBufferPointer<UInt8>
        public var rank: Int
        public var item: UnsafeBufferPointer<UInt8>
        public var score: Double
        /// The history item behind it; nil for none.
        public var because: UnsafeBufferPointer<UInt8>?

        public init(user: UnsafeBufferPointer<UInt8>, rank: Int, item: UnsafeBufferPointer<UInt8>, score: Double,
                    because: UnsafeBufferPointer<UInt8>?) {
            (self.user, self.rank, self.item, self.score, self.because) = (user, rank, item, score, because)
        }
    }

    /// Writes one batch of a run's rows, `count` of them, `row(k)` giving each. The rows go
    /// fastest in key order (user, rank): each is then appended to the table's B-tree.
    public static func write(run: Int64, count: Int, source: Source = .model, on connection: RawConnection,
                             row: (Int) -> WrittenRow) throws {
        try connection.insert(into: .recommendationRows,
                              columns: ["run_id", "user_key", "rank", "item_key", "score", "source", "because_item_key"],
                              count: count) { binder, k in
            let row = row(k)
            binder.bind(run)
            binder.bindText(row.user)
            binder.bind(row.rank)
            binder.bindText(row.item)
            binder.bind(row.score)
            binder.bind(source.text)
            if let because = row.because { binder.bindText(because) } else { binder.bindNull() }
        }
    }

    /// Records the item-based model behind a run's `fallback-item` lists.
    public static func setFallbackModel(run: Int64, model: Int64, in db: Database) throws {
        try db.execute(sql: "UPDATE \(TableName.scoreRuns) SET fallback_model_id = ? WHERE run_id = ?", arguments: [model, run])
    }

    /// The live set's users by source, and how many users `raw_interactions` holds.
    public static func coverage(in db: Database) throws -> (bySource: [(source: String, users: Int)], rawUsers: Int) {
        let bySource = try Row.fetchAll(db, sql: """
            SELECT source, count(*) AS users FROM \(TableName.recommendations) WHERE rank = 1 GROUP BY source ORDER BY source
            """).map { ($0["source"] as String, $0["users"] as Int) }
        let raw = try Int.fetchOne(db, sql: "SELECT count(DISTINCT user_key) FROM \(TableName.rawInteractions)") ?? 0
        return (bySource, raw)
    }

    /// Copies the rows of the shard file attached as `schema` under `run`; returns how many.
    public static func copyShard(attachedAs schema: String, run: Int64, on connection: RawConnection) throws -> Int {
        try connection.inTransaction {
            try connection.run("""
                INSERT INTO main.\(TableName.recommendationRows) (run_id, user_key, rank, item_key, score, source, because_item_key)
                SELECT ?, user_key, rank, item_key, score, source, because_item_key FROM \(schema).recommendation_rows ORDER BY user_key, rank
                """, [.integer(run)])
        }
        return connection.changes
    }

    /// The users with a list in `run`.
    /// The users with a list in `run`; of one source only when `source` is given.
    public static func usersWithLists(run: Int64, source: Source? = nil, in db: Database) throws -> Int {
        try Int.fetchOne(db, sql: """
            SELECT count(*) FROM \(TableName.recommendationRows) WHERE run_id = ?1 AND rank = 1 AND (?2 IS NULL OR source = ?2)
            """, arguments: [run, source?.rawValue]) ?? 0
    }

    /// The live run and the rollback set's run; nil when nothing is published.
    public static func live(in db: Database) throws -> (run: Int64, previous: Int64?)? {
        guard let row = try Row.fetchOne(db, sql: "SELECT run_id, previous_run_id FROM \(TableName.liveRecommendations) WHERE one = 1") else {
            return nil
        }
        return (row["run_id"], row["previous_run_id"])
    }

    /// Points the live lists at `run` (the set they replace becomes the rollback set) and
    /// completes its record. Call in the transaction that checked the run.
    public static func switchTo(run: Int64, rows: Int, seconds: Double, in db: Database) throws {
        try db.execute(sql: "INSERT OR REPLACE INTO \(TableName.liveRecommendations) (one, run_id, previous_run_id) VALUES (1, ?, ?)",
                       arguments: [run, try live(in: db)?.run])
        try db.execute(sql: "UPDATE \(TableName.scoreRuns) SET rows = ?, published_at = ?, seconds = ? WHERE run_id = ?",
                       arguments: [rows, Clock.isoNow(), seconds, run])
    }

    /// Records where a published run's time went (`write_seconds`, `publish_seconds`).
    public static func recordTimes(run: Int64, writing: Double, publishing: Double, in db: Database) throws {
        try db.execute(sql: "UPDATE \(TableName.scoreRuns) SET write_seconds = ?, publish_seconds = ? WHERE run_id = ?",
                       arguments: [writing, publishing, run])
    }

    /// The live run's rows and where its time went; nil when nothing is published.
    public static func times(in db: Database) throws -> (rows: Int, writing: Double?, publishing: Double?)? {
        try Row.fetchOne(db, sql: """
            SELECT s.rows, s.write_seconds, s.publish_seconds FROM \(TableName.liveRecommendations) l JOIN \(TableName.scoreRuns) s USING (run_id)
            """).map { ($0["rows"], $0["write_seconds"], $0["publish_seconds"]) }
    }

    /// Removes a run's rows (a run refused or failed before it was published).
    public static func discard(run: Int64, on connection: RawConnection) throws {
        try connection.run("DELETE FROM \(TableName.recommendationRows) WHERE run_id = ?", [.integer(run)])
    }

    /// Removes the rows of every set but the live one and the rollback set: each other run
    /// found by a seek on the key's first column, and its rows deleted as one range (no scan
    /// of the sets that stay).
    public static func dropUnreachable(on connection: RawConnection) throws {
        var keep: Set<Int64> = []
        try connection.forEachRow("SELECT run_id, previous_run_id FROM \(TableName.liveRecommendations)") { row in
            keep.insert(row.int64(0))
            if let previous = row.optionalInt64(1) { keep.insert(previous) }
        }
        var after = Int64.min
        while case .integer(let run)? = try connection.run("SELECT min(run_id) FROM \(TableName.recommendationRows) WHERE run_id > ?",
                                                           [.integer(after)]) {
            if !keep.contains(run) { try discard(run: run, on: connection) }
            after = run
        }
    }

    /// What a rollback found and did.
    public enum Rollback: Sendable, Equatable {
        case nothingPublished
        case noEarlierSet(live: Int64)
        case earlierSetEmpty(earlier: Int64)
        /// The live lists now come from `live` (model, published at), `rows` rows; `takenDown`
        /// is the rollback set.
        case rolledBack(live: Int64, takenDown: Int64, rows: Int, model: Int64, publishedAt: String)
    }

    /// Points the live lists back at the rollback set, which the set taken down replaces (so a
    /// second rollback undoes the first). Changes nothing unless it returns `rolledBack`.
    public static func rollBack(in db: Database) throws -> Rollback {
        guard let (current, earlier) = try live(in: db) else { return .nothingPublished }
        guard let previous = earlier else { return .noEarlierSet(live: current) }
        let rows = try Int.fetchOne(db, sql: "SELECT count(*) FROM \(TableName.recommendationRows) WHERE run_id = ?", arguments: [previous]) ?? 0
        guard rows > 0 else { return .earlierSetEmpty(earlier: previous) }
        try db.execute(sql: "UPDATE \(TableName.liveRecommendations) SET run_id = ?, previous_run_id = ? WHERE one = 1",
                       arguments: [previous, current])
        try db.execute(sql: "UPDATE \(TableName.scoreRuns) SET rolled_back_at = ? WHERE run_id = ?", arguments: [Clock.isoNow(), current])
        try db.execute(sql: "UPDATE \(TableName.scoreRuns) SET rolled_back_at = NULL WHERE run_id = ?", arguments: [previous])
        let info = try Row.fetchOne(db, sql: "SELECT model_id, published_at FROM \(TableName.scoreRuns) WHERE run_id = ?", arguments: [previous])
        return .rolledBack(live: previous, takenDown: current, rows: rows, model: info?["model_id"] ?? 0,
                           publishedAt: info?["published_at"] ?? "-")
    }
}
