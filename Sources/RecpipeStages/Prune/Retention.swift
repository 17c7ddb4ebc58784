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

    /// Models that keep their weights whatever their age: published ones, those behind the
    /// live and the rollback set, those in the newest evaluation of each part, and the newest
    /// model of each kind trained with synthetic interactions (a warm start's origin).
    static func protectedModels(_ db: Database) throws -> Set<Int64> {
        Set(try Int64.fetchAll(db, sql: """
            SELECT model_id FROM \(TableName.models) WHERE status = 'published'
            UNION SELECT s.model_id FROM \(TableName.scoreRuns) AS s JOIN \(TableName.liveRecommendations) AS l
                ON s.run_id = l.run_id OR s.run_id = l.previous_run_id
            UNION SELECT model_id FROM \(TableName.evaluation) WHERE model_id IS NOT NULL
                AND run_id IN (SELECT max(run_id) FROM \(TableName.evaluationRuns) GROUP BY part)
            UNION SELECT max(model_id) FROM \(TableName.models)
                WHERE pruned_at IS NULL AND json_extract(hyperparameters, '$.augmentation') IS NOT NULL GROUP BY kind
            """))
    }

    /// What `policy` removes within `scope`; reads only.
    public static func plan(_ policy: Policy, scope: Scope = .all, in db: Database) throws -> Plan {
        var plan = Plan()
        let kinds = try scope.kinds ?? String.fetchAll(db, sql: "SELECT DISTINCT kind FROM \(TableName.models) ORDER BY kind")
        let keep = kinds.isEmpty ? [] : try protectedModels(db)
        for kind in kinds {
            let rows = try Row.fetchAll(db, sql: """
                SELECT model_id, run_id, status, created_at FROM \(TableName.models)
                WHERE kind = ? AND status <> 'published' AND pruned_at IS NULL ORDER BY model_id DESC
                """, arguments: [kind])
            for row in rows.dropFirst(policy.keepRetired) {
                let id: Int64 = row["model_id"], run: Int64 = row["run_id"]
                guard !keep.contains(id), run != scope.sparing else { continue }
                let bytes = try Int.fetchOne(db, sql: "SELECT coalesce(sum(length(data)), 0) FROM \(TableName.modelWeights) WHERE model_id = ?",
                                             arguments: [id]) ?? 0
                plan.models.append(.init(id: id, kind: kind, status: row["status"], createdAt: row["created_at"], bytes: bytes))
            }
        }
        if scope.evaluations {
            let old = try Int64.fetchAll(db, sql: "SELECT run_id FROM \(TableName.evaluationRuns) ORDER BY run_id DESC LIMIT -1 OFFSET ?",
                                         arguments: [policy.keepEvaluations])
            for run in old.reversed() {
                let rows = try Int.fetchOne(db, sql: """
                    SELECT (SELECT count(*) FROM \(TableName.evaluationUsers) WHERE run_id = ?1)
                         + (SELECT count(*) FROM \(TableName.evaluationHeadItems) WHERE run_id = ?1)
                    """, arguments: [run]) ?? 0
                if rows > 0 { plan.evaluations.append(.init(runID: run, rows: rows)) }
            }
        }
        if scope.augmentations {
            // Only the newest augment run of the current split is read (train --augmented).
            plan.augmentations = try Row.fetchAll(db, sql: """
                SELECT run_id, count(*) AS rows FROM \(TableName.augmentedInteractions)
                WHERE run_id <> coalesce((SELECT max(run_id) FROM \(TableName.augmentRuns)
                                          WHERE clean_run_id = (SELECT max(run_id) FROM \(TableName.cleanRuns))), -1)
                GROUP BY run_id ORDER BY run_id
                """).map { Plan.Rows(runID: $0["run_id"], rows: $0["rows"]) }
        }
        return plan
    }

    /// Removes what `plan` lists, in the caller's transaction.
    public static func apply(_ plan: Plan, in db: Database) throws {
        let now = Clock.isoNow()
        for model in plan.models {
            for table in [TableName.modelWeights, .modelItems, .trainingLog, .ganTrainingLog] {
                try db.execute(sql: "DELETE FROM \(table) WHERE model_id = ?", arguments: [model.id])
            }
            try db.execute(sql: "UPDATE \(TableName.models) SET pruned_at = ? WHERE model_id = ?", arguments: [now, model.id])
        }
        for run in plan.evaluations {
            try db.execute(sql: "DELETE FROM \(TableName.evaluationUsers) WHERE run_id = ?", arguments: [run.runID])
            try db.execute(sql: "DELETE FROM \(TableName.evaluationHeadItems) WHERE run_id = ?", arguments: [run.runID])
        }
        for run in plan.augmentations {
            try db.execute(sql: "DELETE FROM \(TableName.augmentedInteractions) WHERE run_id = ?", arguments: [run.runID])
        }
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
        try releaseFreePages(store)
        return plan
    }

    /// Truncates the file by its free pages where auto_vacuum is incremental.
    public static func releaseFreePages(_ store: Store) throws {
        try store.queue.writeWithoutTransaction { db in
            if try Int.fetchOne(db, sql: "PRAGMA auto_vacuum") == 2 {
                try db.execute(sql: "PRAGMA incremental_vacuum")
            }
        }
    }

    /// Rewrites the whole file without its free pages, switching it to incremental
    /// auto_vacuum (the one way to convert a database created without it). Needs free disk
    /// space about the database's size while it runs.
    public static func vacuum(_ store: Store) throws {
        try store.queue.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA auto_vacuum = INCREMENTAL")
            try db.execute(sql: "VACUUM")
        }
    }

    static func megabytes(_ bytes: Int) -> String { String(format: "%.1f MB", Double(bytes) / 1e6) }
}
