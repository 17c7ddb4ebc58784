import Foundation
import GRDB
import Logging
import RecpipeModels
import RecpipeStore

/// What the database keeps of its past, so that a nightly pipeline's file stops growing:
/// old models lose their weights, old evaluations their per-user rows, superseded
/// augmentations their synthetic interactions. Applied by the stages that add such rows
/// (train and augment when they publish, evaluate) and by `recpipe prune`.
public enum Retention {
    /// What deciding which models to keep reads, beside the models themselves.
    public static let modelReads: [TableName] = [.scoreRuns, .liveRecommendations, .evaluationRuns, .evaluation]

    public struct Policy: Codable, Sendable, Equatable {
        /// Models of each kind kept with their weights besides the published one: the newest
        /// retired models and candidates the gate kept back.
        public var keepRetired = 2
        /// Evaluation runs that keep their per-user rows and head items (their aggregates in
        /// `evaluation` are always kept).
        public var keepEvaluations = 30
        public init() {}

        public func validate() throws {
            guard keepRetired >= 0, keepEvaluations >= 1 else {
                throw StageError.badOption("--keep-retired must be at least 0 and --keep-evaluations at least 1")
            }
        }
    }

    /// What a prune removes (or, planned, would remove).
    public struct Plan: Sendable, Equatable {
        public struct Model: Sendable, Equatable {
            public var id: Int64
            public var kind: String
            public var status: String
            public var createdAt: String
            public var bytes: Int
        }

        public struct Rows: Sendable, Equatable {
            public var runID: Int64
            public var rows: Int
        }

        public var models: [Model] = []
        /// Evaluation runs whose per-user rows and head items go.
        public var evaluations: [Rows] = []
        /// Augment runs whose synthetic interactions go.
        public var augmentations: [Rows] = []

        public var isEmpty: Bool { models.isEmpty && evaluations.isEmpty && augmentations.isEmpty }

        /// One line per thing removed, for the command's output.
        public var lines: [String] {
            models.map { m in
                "model \(m.id) (\(m.kind), \(m.status), created \(m.createdAt)): weights, items and training log, \(megabytes(m.bytes))"
            } + evaluations.map { "evaluation run \($0.runID): \($0.rows) per-user rows and head items" }
              + augmentations.map { "augment run \($0.runID): \($0.rows) synthetic interactions" }
        }
    }

    /// What each scope covers: models of some kinds, evaluations, augmentations.
    public struct Scope: Sendable, Equatable {
        public var kinds: [String]?
        public var evaluations: Bool
        public var augmentations: Bool
        /// The stage run whose own models are never pruned (the one just stored, even as a
        /// candidate with --keep-retired 0).
        public var sparing: Int64?

        /// Everything (`recpipe prune`).
        public static let all = Scope(kinds: nil, evaluations: true, augmentations: true)
        public static func models(of kind: ModelKind, sparing run: Int64) -> Scope {
            Scope(kinds: [kind.rawValue], evaluations: false, augmentations: false, sparing: run)
        }
        public static let evaluations = Scope(kinds: [], evaluations: true, augmentations: false)
        public static func augmentations(sparing run: Int64) -> Scope {
            Scope(kinds: [ModelKind.cfgan.rawValue], evaluations: false, augmentations: true, sparing: run)
        }
    }

    /// What `policy` removes within `scope`; reads only.
    public static func plan(_ policy: Policy, scope: Scope = .all, in db: Database) throws -> Plan {
        var plan = Plan()
        let kinds = try scope.kinds ?? Pruning.kinds(in: db)
        let keep = kinds.isEmpty ? [] : try Pruning.protectedModels(in: db)
        for kind in kinds {
            for model in try Pruning.unpublished(kind: kind, in: db).dropFirst(policy.keepRetired) {
                guard !keep.contains(model.id), model.run != scope.sparing else { continue }
                plan.models.append(.init(id: model.id, kind: kind, status: model.status, createdAt: model.createdAt,
                                         bytes: try Pruning.weightBytes(model: model.id, in: db)))
            }
        }
        if scope.evaluations {
            plan.evaluations = try Pruning.evaluationDetails(keepingNewest: policy.keepEvaluations, in: db).map { Plan.Rows(runID: $0.run, rows: $0.rows) }
        }
        if scope.augmentations {
            plan.augmentations = try Pruning.supersededAugmentations(in: db).map { Plan.Rows(runID: $0.run, rows: $0.rows) }
        }
        return plan
    }

    /// Removes what `plan` lists, in the caller's transaction.
    public static func apply(_ plan: Plan, in db: Database) throws {
        for model in plan.models { try Pruning.removeWeights(model: model.id, in: db) }
        for run in plan.evaluations { try Pruning.removeDetails(evaluationRun: run.runID, in: db) }
        for run in plan.augmentations { try Pruning.removeInteractions(augmentRun: run.runID, in: db) }
    }

    /// Plans and applies `policy` within `scope` in one transaction, then hands the freed
    /// pages back to the file system (incremental vacuum; on a database created before
    /// auto_vacuum was set, the pages stay free inside the file and are reused). Logs one
    /// line per removal; returns what was removed.
    @discardableResult
    public static func prune(_ policy: Policy, scope: Scope, store: Store, logger: Logger) throws -> Plan {
        let plan = try store.queue.write { db -> Plan in
            let plan = try Self.plan(policy, scope: scope, in: db)
            try apply(plan, in: db)
            return plan
        }
        guard !plan.isEmpty else { return plan }
        for model in plan.models {
            logger.info("model pruned", metadata: ["model": "\(model.id)", "kind": "\(model.kind)", "bytes": "\(model.bytes)"])
        }
        if !plan.evaluations.isEmpty {
            logger.info("evaluation details pruned", metadata: ["runs": "\(plan.evaluations.map { String($0.runID) }.joined(separator: ","))"])
        }
        if !plan.augmentations.isEmpty {
            logger.info("augmentations pruned", metadata: ["runs": "\(plan.augmentations.map { String($0.runID) }.joined(separator: ","))"])
        }
        try store.releaseFreePages()
        return plan
    }

    static func megabytes(_ bytes: Int) -> String { String(format: "%.1f MB", Double(bytes) / 1e6) }
}
