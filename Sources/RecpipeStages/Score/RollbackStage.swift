import Foundation
import GRDB
import RecpipeStore

/// Points the live lists back at the set the last publish replaced, in one transaction.
/// The set taken down becomes the rollback set, so a second rollback undoes the first.
public struct RollbackStage: Stage {
    public struct Config: Codable, Sendable, Equatable {
        public init() {}
    }

    public static let name = "rollback"
    public static let reads: [TableName] = [.scoreRuns, .recommendationRows, .liveRecommendations]
    public static let writes: [TableName] = [.scoreRuns, .liveRecommendations]
    public let config: Config

    public init(config: Config = Config()) { self.config = config }

    public func run(_ context: StageContext) throws -> StageReport {
        let path = context.store.path
        return try context.store.queue.write { db in
            guard let live = try Row.fetchOne(db, sql: "SELECT run_id, previous_run_id FROM live_recommendations WHERE one = 1") else {
                throw StageError.missingInput("\(path): nothing is published; there is nothing to roll back")
            }
            let current: Int64 = live["run_id"]
            guard let previous: Int64 = live["previous_run_id"] else {
                throw StageError.missingInput("\(path): run \(current) is live and no earlier set is kept; nothing changed")
            }
            let rows = try Int.fetchOne(db, sql: "SELECT count(*) FROM recommendation_rows WHERE run_id = ?", arguments: [previous]) ?? 0
            guard rows > 0 else {
                throw StageError.missingInput("\(path): the earlier set (run \(previous)) has no rows left; nothing changed")
            }
            try db.execute(sql: "UPDATE live_recommendations SET run_id = ?, previous_run_id = ? WHERE one = 1",
                           arguments: [previous, current])
            try db.execute(sql: "UPDATE score_runs SET rolled_back_at = ? WHERE run_id = ?", arguments: [Clock.isoNow(), current])
            try db.execute(sql: "UPDATE score_runs SET rolled_back_at = NULL WHERE run_id = ?", arguments: [previous])
            let info = try Row.fetchOne(db, sql: "SELECT model_id, published_at FROM score_runs WHERE run_id = ?", arguments: [previous])
            let model: Int64 = info?["model_id"] ?? 0
            let published: String = info?["published_at"] ?? "-"
            context.logger.info("rolled back", metadata: ["live_run": "\(previous)", "taken_down": "\(current)"])
            return StageReport(rowsIn: rows, rowsOut: rows, summary: [
                "live lists now from score run \(previous) (model \(model), published \(published)), \(rows) rows; run \(current) taken down (recpipe rollback again restores it)",
            ])
        }
    }
}
