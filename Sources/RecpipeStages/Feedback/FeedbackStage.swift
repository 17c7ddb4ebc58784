import Foundation
import GRDB
import Logging
import RecpipeModels
import RecpipeStore

/// The closed loop: the live recommendations against what their users did after they were
/// published. "What users did next" is every (user, item) pair first seen in a source
/// ingested after the run that published the lists, counted as a positive by the latest clean
/// run's rating rule. Per cut-off K: the share of those users with a hit in their top K,
/// and mean Recall@K = hits / min(K, |new items|). Run it after ingest and before the next
/// score replaces the lists.
public struct FeedbackStage: Stage {
    public struct Config: Codable, Sendable, Equatable {
        public var cutoffs = [10, 20, 100]
        public init() {}
    }

    public static let name = "feedback"
    public static let reads: [TableName] = [.scoreRuns, .recommendationRows, .liveRecommendations, .rawInteractions,
                                            .ingestBatches, .cleanRuns]
    public static let writes: [TableName] = [.closedLoop]
    public let config: Config

    public init(config: Config) throws {
        guard !config.cutoffs.isEmpty, config.cutoffs.allSatisfy({ $0 > 0 }) else {
            throw StageError.badOption("--k values must be positive")
        }
        self.config = config
    }

    public func run(_ context: StageContext) throws -> StageReport {
        let store = context.store
        let found = try store.queue.read { db -> (Int64, String, Double?)? in
            guard let live = try Row.fetchOne(db, sql: """
                SELECT s.run_id, s.published_at FROM \(TableName.liveRecommendations) l JOIN \(TableName.scoreRuns) s USING (run_id)
                """) else { return nil }
            var minRating: Double? = 4
            if let parameters = try String.fetchOne(db, sql: "SELECT parameters FROM \(TableName.cleanRuns) ORDER BY run_id DESC LIMIT 1"),
               let config = try? JSONDecoder().decode(CleanStage.Config.self, from: Data(parameters.utf8)) {
                minRating = config.minRating
            }
            return (live["run_id"], live["published_at"], minRating)
        }
        // A pipeline's first night has nothing published yet: nothing to score, not a failure.
        guard let (scoreRun, since, minRating) = found else {
            context.logger.info("no live recommendations yet: nothing to score against")
            return StageReport(rowsIn: 0, rowsOut: 0, summary: ["no live recommendations yet: nothing to score against"])
        }
        // New positive pairs: in sources ingested after the lists went live, not seen in any
        // source before. Only the new rows are read into memory; the older ones are matched
        // against them inside SQLite (one pass over the table, each row probing the new
        // pairs' key), so a nightly run costs the same whatever the history's size.
        var after: [ExactKey: Set<ExactKey>] = [:]
        let fresh = try store.queue.read { db in
            // By run: an ingest run after the scoring run that published the lists (one writer at
            // a time, so it began after that run ended), however close in time.
            try Int64.fetchAll(db, sql: """
                SELECT batch_id FROM \(TableName.ingestBatches) WHERE run_id > ? AND status = 'stored' ORDER BY batch_id
                """, arguments: [scoreRun])
        }
        if !fresh.isEmpty {
            let batches = fresh.map(String.init).joined(separator: ",")
            try store.queue.writeWithoutTransaction { db in
                try db.execute(sql: "DROP TABLE IF EXISTS temp.feedback_new_pairs")
                try db.execute(sql: """
                    CREATE TEMP TABLE feedback_new_pairs (user_key TEXT NOT NULL, item_key TEXT NOT NULL,
                        PRIMARY KEY (user_key, item_key)) WITHOUT ROWID
                    """)
                defer { try? db.execute(sql: "DROP TABLE temp.feedback_new_pairs") }
                try db.execute(sql: """
                    INSERT OR IGNORE INTO temp.feedback_new_pairs SELECT user_key, item_key FROM \(TableName.rawInteractions)
                    WHERE batch_id IN (\(batches)) AND (?1 IS NULL OR rating IS NULL OR rating >= ?1)
                    """, arguments: [minRating])
                // CROSS JOIN keeps raw_interactions as the outer loop: one scan of it.
                try db.execute(sql: """
                    DELETE FROM temp.feedback_new_pairs WHERE (user_key, item_key) IN (
                        SELECT p.user_key, p.item_key FROM \(TableName.rawInteractions) r CROSS JOIN temp.feedback_new_pairs p
                        ON p.user_key = r.user_key AND p.item_key = r.item_key WHERE r.batch_id NOT IN (\(batches)))
                    """)
                let rows = try Row.fetchCursor(db, sql: "SELECT user_key, item_key FROM temp.feedback_new_pairs")
                while let row = try rows.next() {
                    after[ExactKey(row[0]), default: []].insert(ExactKey(row[1]))
                }
            }
        }
        // The live lists of those users only, by the primary key.
        var ranked: [ExactKey: [ExactKey]] = [:]
        try store.queue.read { db in
            let statement = try db.cachedStatement(sql: "SELECT item_key FROM \(TableName.recommendationRows) WHERE run_id = ? AND user_key = ? ORDER BY rank")
            for user in after.keys {
                let items = try String.fetchAll(statement, arguments: [scoreRun, user.text]).map(ExactKey.init)
                if !items.isEmpty { ranked[user] = items }
            }
        }
        let users = after.keys.filter { ranked[$0] != nil }.sorted()
        // What the lists are judged on: the new interactions of users who had a list.
        let newRows = users.reduce(0) { $0 + after[$1]!.count }
        var summary = ["live run \(scoreRun) (published \(since)): \(users.count) users with \(newRows) new interactions since"]
        // No user of the lists did anything new: there is nothing to measure, and a hit rate
        // of 0 would read as a failure of the lists.
        guard !users.isEmpty else {
            summary.append("nothing to score: no new interactions of users with lists since they were published")
            context.logger.info("no new interactions since the lists were published", metadata: ["live_run": "\(scoreRun)"])
            return StageReport(rowsIn: 0, rowsOut: 0, summary: summary)
        }
        try store.queue.write { db in
            for k in config.cutoffs {
                var hits = 0, recall = 0.0
                for user in users {
                    let found = ranked[user]!.prefix(k).filter { after[user]!.contains($0) }.count
                    if found > 0 { hits += 1 }
                    recall += Double(found) / Double(min(k, after[user]!.count))
                }
                let hitRate = Double(hits) / Double(users.count)
                let meanRecall = recall / Double(users.count)
                try db.execute(sql: """
                    INSERT INTO \(TableName.closedLoop) (run_id, score_run_id, k, users, new_interactions, hit_rate, recall, since, created_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """, arguments: [context.runID, scoreRun, k, users.count, newRows, hitRate, meanRecall, since, Clock.isoNow()])
                summary.append(String(format: "hit rate@%d %.4f, recall@%d %.4f", k, hitRate, k, meanRecall))
            }
        }
        return StageReport(rowsIn: newRows, rowsOut: config.cutoffs.count, summary: summary)
    }
}
