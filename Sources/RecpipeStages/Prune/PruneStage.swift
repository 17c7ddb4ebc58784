import Foundation
import RecpipeStore

/// `recpipe prune`: applies the retention policy to everything at once (the stages apply it
/// to what they add), optionally rewriting the file without its free pages.
public struct PruneStage: Stage {
    public struct Config: Codable, Sendable, Equatable {
        public var policy = Retention.Policy()
        /// Rewrite the file afterwards (VACUUM), converting it to incremental auto_vacuum.
        public var vacuum = false
        public init() {}
    }

    public static let name = "prune"
    public static let reads: [TableName] = [.models, .augmentRuns, .cleanRuns] + Retention.modelReads
    public static let writes: [TableName] = [.models, .modelItems, .modelWeights, .trainingLog, .ganTrainingLog,
                                             .evaluationUsers, .evaluationHeadItems, .augmentedInteractions]
    public let config: Config

    public init(config: Config) throws {
        try config.policy.validate()
        self.config = config
    }

    public func run(_ context: StageContext) throws -> StageReport {
        let store = context.store
        let before = try store.pageUsage()
        let plan = try Retention.prune(config.policy, scope: .all, store: store, logger: context.logger)
        if config.vacuum {
            context.logger.info("vacuum started", metadata: ["db": "\(store.path)"])
            try store.vacuum()
        }
        let after = try store.pageUsage()
        var summary = plan.lines.map { "removed " + $0 }
        if plan.isEmpty { summary.append("nothing to remove (keeping \(config.policy.keepRetired) retired models of each kind, \(config.policy.keepEvaluations) evaluation runs)") }
        summary.append("database pages: \(Retention.megabytes(before.used)) in use, \(Retention.megabytes(before.free)) free before; "
                       + "\(Retention.megabytes(after.used)) in use, \(Retention.megabytes(after.free)) free after")
        let removed = plan.models.count + plan.evaluations.count + plan.augmentations.count
        return StageReport(rowsIn: removed, rowsOut: removed, summary: summary)
    }
}
