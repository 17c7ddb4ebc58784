import Foundation
import GRDB
import GRDBSQLite
import Logging
import RecpipeModels
import RecpipeNumerics
import RecpipeStore

/// Top-K recommendations for every user from a trained model, published atomically.
///
/// The rows are written under this run's id beside the live ones, over several
/// transactions; then one transaction points `live_recommendations` at the new run. A
/// failed or killed run never touches the live set; its rows are removed by the next run.
public struct ScoreStage: Stage {
    public struct Config: Codable, Sendable, Equatable {
        public var k = 100
        /// The published model of this kind (the newest of the kind that passed the
        /// quality gate), unless `modelID` names one.
        public var kind: ModelKind = .multvae
        public var modelID: Int64?
        public init() {}
    }

    public static let name = "score"
    public static let reads: [TableName] = [.users, .items, .interactions, .models, .modelItems, .modelWeights]
    public static let writes: [TableName] = [.scoreRuns, .recommendationRows, .liveRecommendations]
    public let config: Config

    public init(config: Config) throws {
        guard config.k >= 1 else { throw StageError.badOption("--k must be at least 1") }
        self.config = config
    }

    public func run(_ context: StageContext) throws -> StageReport {
        let started = Clock.monotonic()
        let store = context.store
        let (model, record) = try store.queue.read { db -> (any StorableModel, ModelStore.Record) in
            guard let id = try config.modelID ?? ModelStore.published(kind: config.kind, in: db) else {
                throw StageError.missingInput("\(store.path): no published \(config.kind.rawValue) model; run train --model \(config.kind.rawValue) first")
            }
            return try ModelStore.load(id, in: db)
        }
        let (userKeys, history) = try Self.histories(store, model: record)
        let k = min(config.k, model.items)
        context.logger.info("scoring started", metadata: [
            "model": "\(record.modelID)", "kind": "\(record.kind.rawValue)", "users": "\(userKeys.count)", "items": "\(model.items)", "k": "\(k)",
        ])
        try store.queue.write { db in
            try db.execute(sql: "INSERT INTO score_runs (run_id, model_id, k, users, rows, created_at) VALUES (?, ?, ?, ?, 0, ?)",
                           arguments: [context.runID, record.modelID, k, userKeys.count, Clock.isoNow()])
        }
        let connection = try RawConnection(path: store.path)
        var pending: [(user: Int, ranked: [Int32], scores: [Float])] = []
        var written = 0
        func flush() throws {
            let rows = pending.flatMap { entry in entry.ranked.indices.map { (entry.user, $0, entry) } }
            try connection.inTransaction {
                try Bulk.insert(connection.handle, table: "recommendation_rows",
                                columns: ["run_id", "user_key", "rank", "item_key", "score"], count: rows.count) { statement, p, n in
                    let (user, rank, entry) = rows[n]
                    sqlite3_bind_int64(statement, p, context.runID)
                    sqlite3_bind_text(statement, p + 1, userKeys[user], -1, sqliteTransient)
                    sqlite3_bind_int64(statement, p + 2, Int64(rank + 1))
                    sqlite3_bind_text(statement, p + 3, record.itemKeys[Int(entry.ranked[rank])], -1, sqliteTransient)
                    sqlite3_bind_double(statement, p + 4, Double(entry.scores[rank]))
                }
            }
            written += rows.count
            pending.removeAll(keepingCapacity: true)
        }
        try model.rankedLists(history, k: k) { user, ranked, scores in
            pending.append((user, ranked, scores))
            if pending.count >= 5000 { try flush() }
        }
        try flush()
        // The switch: one small transaction.
        try store.queue.write { db in
            try db.execute(sql: "INSERT OR REPLACE INTO live_recommendations (one, run_id) VALUES (1, ?)", arguments: [context.runID])
            try db.execute(sql: "UPDATE score_runs SET rows = ?, published_at = ?, seconds = ? WHERE run_id = ?",
                           arguments: [written, Clock.isoNow(), Clock.monotonic() - started, context.runID])
        }
        // Earlier sets (and rows of runs that never finished) are no longer visible: drop them.
        try connection.execute("DELETE FROM recommendation_rows WHERE run_id != \(context.runID)")
        return StageReport(rowsIn: history.nonZeros, rowsOut: written, summary: [
            "\(written) recommendations for \(userKeys.count) users from model \(record.modelID) (\(record.kind.rawValue)), published as run \(context.runID)",
        ])
    }

    /// Every user's known items (all parts of the split), as positions in the model's item
    /// index; items the model does not know are left out.
    static func histories(_ store: Store, model: ModelStore.Record) throws -> ([String], CSRMatrix) {
        try store.queue.read { db in
            let itemPosition = model.positions(of: try String.fetchAll(db, sql: "SELECT item_key FROM items ORDER BY item_idx"))
            let userKeys = try String.fetchAll(db, sql: "SELECT user_key FROM users ORDER BY user_idx")
            var rows = [[Int32]](repeating: [], count: userKeys.count)
            try forEachRow(db.sqliteConnection!, "SELECT user_idx, item_idx FROM interactions") { statement in
                let user = Int(sqlite3_column_int64(statement, 0)), item = Int(sqlite3_column_int64(statement, 1))
                if let p = itemPosition[item] { rows[user].append(p) }
            }
            return (userKeys, CSRMatrix(cols: model.itemKeys.count, rowsOfColumns: rows.map { $0.sorted() }))
        }
    }
}
