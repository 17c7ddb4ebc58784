import GRDB

/// The queries and deletions behind retention: which models, evaluation details and
/// synthetic interactions could go, and removing them. What to keep is the policy's choice
/// (`Retention` in the stages).
public enum Pruning {
    /// Models that keep their weights whatever their age: published ones, those behind the
    /// live and the rollback set, those in the newest evaluation of each part, and the newest
    /// model of each kind trained with synthetic interactions (a warm start's origin).
    public static func protectedModels(in db: Database) throws -> Set<Int64> {
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

    /// Every model kind stored.
    public static func kinds(in db: Database) throws -> [String] {
        try String.fetchAll(db, sql: "SELECT DISTINCT kind FROM \(TableName.models) ORDER BY kind")
    }

    /// A model that still has its weights and is not published.
    public struct Model: Sendable, Equatable {
        public var id: Int64
        public var run: Int64
        public var status: String
        public var createdAt: String
    }

    /// The kind's unpublished models that still have their weights, newest first.
    public static func unpublished(kind: String, in db: Database) throws -> [Model] {
        try Row.fetchAll(db, sql: """
            SELECT model_id, run_id, status, created_at FROM \(TableName.models)
            WHERE kind = ? AND status <> 'published' AND pruned_at IS NULL ORDER BY model_id DESC
            """, arguments: [kind]).map { Model(id: $0["model_id"], run: $0["run_id"], status: $0["status"], createdAt: $0["created_at"]) }
    }

    /// Bytes of a model's stored tensors.
    public static func weightBytes(model: Int64, in db: Database) throws -> Int {
        try Int.fetchOne(db, sql: "SELECT coalesce(sum(length(data)), 0) FROM \(TableName.modelWeights) WHERE model_id = ?",
                         arguments: [model]) ?? 0
    }

    /// Evaluation runs but the newest `keep`, oldest first, with their per-user and head-item
    /// rows (runs without any left out).
    public static func evaluationDetails(keepingNewest keep: Int, in db: Database) throws -> [(run: Int64, rows: Int)] {
        let old = try Int64.fetchAll(db, sql: "SELECT run_id FROM \(TableName.evaluationRuns) ORDER BY run_id DESC LIMIT -1 OFFSET ?",
                                     arguments: [keep])
        return try old.reversed().compactMap { run in
            let rows = try Int.fetchOne(db, sql: """
                SELECT (SELECT count(*) FROM \(TableName.evaluationUsers) WHERE run_id = ?1)
                     + (SELECT count(*) FROM \(TableName.evaluationHeadItems) WHERE run_id = ?1)
                """, arguments: [run]) ?? 0
            return rows > 0 ? (run, rows) : nil
        }
    }

    /// Augment runs with synthetic interactions other than the newest run of the current
    /// split (the only one train --augmented reads), with their row counts.
    public static func supersededAugmentations(in db: Database) throws -> [(run: Int64, rows: Int)] {
        try Row.fetchAll(db, sql: """
            SELECT run_id, count(*) AS rows FROM \(TableName.augmentedInteractions)
            WHERE run_id <> coalesce((SELECT max(run_id) FROM \(TableName.augmentRuns)
                                      WHERE clean_run_id = (SELECT max(run_id) FROM \(TableName.cleanRuns))), -1)
            GROUP BY run_id ORDER BY run_id
            """).map { ($0["run_id"], $0["rows"]) }
    }

    /// Removes a model's weights, items and training logs; its row stays, marked pruned.
    public static func removeWeights(model: Int64, in db: Database) throws {
        for table in [TableName.modelWeights, .modelItems, .trainingLog, .ganTrainingLog] {
            try db.execute(sql: "DELETE FROM \(table) WHERE model_id = ?", arguments: [model])
        }
        try db.execute(sql: "UPDATE \(TableName.models) SET pruned_at = ? WHERE model_id = ?", arguments: [Clock.isoNow(), model])
    }

    /// Removes an evaluation run's per-user rows and head items (its aggregates stay).
    public static func removeDetails(evaluationRun run: Int64, in db: Database) throws {
        try db.execute(sql: "DELETE FROM \(TableName.evaluationUsers) WHERE run_id = ?", arguments: [run])
        try db.execute(sql: "DELETE FROM \(TableName.evaluationHeadItems) WHERE run_id = ?", arguments: [run])
    }

    /// Removes an augment run's synthetic interactions (its record stays).
    public static func removeInteractions(augmentRun run: Int64, in db: Database) throws {
        try db.execute(sql: "DELETE FROM \(TableName.augmentedInteractions) WHERE run_id = ?", arguments: [run])
    }
}

extension Store {
    /// Bytes of the file's pages in use and free.
    public func pageUsage() throws -> (used: Int, free: Int) {
        try queue.read { db in
            let size = try Int.fetchOne(db, sql: "PRAGMA page_size") ?? 4096
            let pages = try Int.fetchOne(db, sql: "PRAGMA page_count") ?? 0
            let free = try Int.fetchOne(db, sql: "PRAGMA freelist_count") ?? 0
            return ((pages - free) * size, free * size)
        }
    }

    /// Truncates the file by its free pages where auto_vacuum is incremental (on a database
    /// created before auto_vacuum was set, the pages stay free inside the file and are reused).
    public func releaseFreePages() throws {
        try queue.writeWithoutTransaction { db in
            if try Int.fetchOne(db, sql: "PRAGMA auto_vacuum") == 2 {
                try db.execute(sql: "PRAGMA incremental_vacuum")
            }
        }
    }

    /// Rewrites the whole file without its free pages, switching it to incremental
    /// auto_vacuum (the one way to convert a database created without it). Needs free disk
    /// space about the database's size while it runs.
    public func vacuum() throws {
        try queue.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA auto_vacuum = INCREMENTAL")
            try db.execute(sql: "VACUUM")
        }
    }
}
