import Foundation
import GRDB
import GRDBSQLite
import Logging
import RecpipeModels
import RecpipeStore

/// The closed loop: the live recommendations against what their users did after they were
/// published. "What users did next" is every (user, item) pair first seen in a source
/// ingested after the lists were published, counted as a positive by the latest clean
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
    public static let writes: [TableName] = ["closed_loop"]
    public let config: Config

    public init(config: Config) throws {
        guard !config.cutoffs.isEmpty, config.cutoffs.allSatisfy({ $0 > 0 }) else {
            throw StageError.badOption("--k values must be positive")
        }
        self.config = config
    }

    public func run(_ context: StageContext) throws -> StageReport {
        let store = context.store
        let (scoreRun, since, minRating) = try store.queue.read { db -> (Int64, String, Double?) in
            guard let live = try Row.fetchOne(db, sql: """
                SELECT s.run_id, s.published_at FROM live_recommendations l JOIN score_runs s USING (run_id)
                """) else {
                throw StageError.missingInput("\(store.path): no live recommendations; run score first")
            }
            var minRating: Double? = 4
            if let parameters = try String.fetchOne(db, sql: "SELECT parameters FROM clean_runs ORDER BY run_id DESC LIMIT 1"),
               let config = try? JSONDecoder().decode(CleanStage.Config.self, from: Data(parameters.utf8)) {
                minRating = config.minRating
            }
            return (live["run_id"], live["published_at"], minRating)
        }
        // Pairs seen before the lists went live, and new positive pairs after.
        var before = Set<String>(), after: [String: Set<String>] = [:]
        var newRows = 0
        try store.queue.read { db in
            let rows = try Row.fetchCursor(db, sql: """
                SELECT r.user_key, r.item_key, r.rating, b.finished_at > ? AS fresh FROM raw_interactions r
                JOIN ingest_batches b USING (batch_id) ORDER BY r.rowid
                """, arguments: [since])
            while let row = try rows.next() {
                let user: String = row[0], item: String = row[1], rating: Double? = row[2], fresh: Bool = row[3]
                let pair = user + "\u{0}" + item
                if !fresh {
                    before.insert(pair)
                } else if !before.contains(pair), minRating == nil || rating == nil || rating! >= minRating! {
                    if after[user, default: []].insert(item).inserted { newRows += 1 }
                }
            }
        }
        let lists = try store.queue.read { db in
            try Row.fetchAll(db, sql: "SELECT user_key, item_key FROM recommendation_rows WHERE run_id = ? ORDER BY user_key, rank",
                             arguments: [scoreRun])
        }
        var ranked: [String: [String]] = [:]
        for row in lists { ranked[row[0] as String, default: []].append(row[1]) }
        let users = after.keys.filter { ranked[$0] != nil }.sorted()
        var summary = ["live run \(scoreRun) (published \(since)): \(users.count) users with \(newRows) new interactions since"]
        try store.queue.write { db in
            for k in config.cutoffs {
                var hits = 0, recall = 0.0
                for user in users {
                    let found = ranked[user]!.prefix(k).filter { after[user]!.contains($0) }.count
                    if found > 0 { hits += 1 }
                    recall += Double(found) / Double(min(k, after[user]!.count))
                }
                let hitRate = users.isEmpty ? 0 : Double(hits) / Double(users.count)
                let meanRecall = users.isEmpty ? 0 : recall / Double(users.count)
                try db.execute(sql: """
                    INSERT INTO closed_loop (run_id, score_run_id, k, users, new_interactions, hit_rate, recall, since, created_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """, arguments: [context.runID, scoreRun, k, users.count, newRows, hitRate, meanRecall, since, Clock.isoNow()])
                summary.append(String(format: "hit rate@%d %.4f, recall@%d %.4f", k, hitRate, k, meanRecall))
            }
        }
        return StageReport(rowsIn: newRows, rowsOut: config.cutoffs.count, summary: summary)
    }
}
