import Foundation
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
        let outcome = try context.store.queue.write { try LiveLists.rollBack(in: $0) }
        switch outcome {
        case .nothingPublished:
            throw StageError.missingInput("\(path): nothing is published; there is nothing to roll back")
        case .noEarlierSet(let live):
            throw StageError.missingInput("\(path): run \(live) is live and no earlier set is kept; nothing changed")
        case .earlierSetEmpty(let earlier):
            throw StageError.missingInput("\(path): the earlier set (run \(earlier)) has no rows left; nothing changed")
        case let .rolledBack(live, takenDown, rows, model, published):
            context.logger.info("rolled back", metadata: ["live_run": "\(live)", "taken_down": "\(takenDown)"])
            return StageReport(rowsIn: rows, rowsOut: rows, summary: [
                "live lists now from score run \(live) (model \(model), published \(published)), \(rows) rows; run \(takenDown) taken down (recpipe rollback again restores it)",
            ])
        }
    }
}
