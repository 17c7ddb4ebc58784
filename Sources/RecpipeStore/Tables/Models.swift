import Foundation
import GRDB

/// `models`, `model_items`, `model_weights` and `training_log`: a model's row, its item
/// index, its tensors as chunked BLOBs and its training curve. Kinds are the models' own
/// names (`ModelKind.rawValue`); what the tensors mean is the models' business.
public enum Models {
    /// A model's row as training writes it.
    public struct NewModel: Sendable {
        public var run: Int64
        public var kind: String
        public var hyperparameters: String
        public var cleanRunID: Int64
        public var dataFingerprint: String
        public var items: Int
        public var trainingUsers: Int
        public var seconds: Double
        public var epochs: Int
        public var bestEpoch: Int?
        /// JSON object of validation figures.
        public var validationMetrics: String
        public var warmStartFrom: Int64?
        /// Published (retiring the kind's previous published model) or a candidate.
        public var publish: Bool

        public init(run: Int64, kind: String, hyperparameters: String, cleanRunID: Int64, dataFingerprint: String, items: Int,
                    trainingUsers: Int, seconds: Double, epochs: Int, bestEpoch: Int?, validationMetrics: String,
                    warmStartFrom: Int64?, publish: Bool) {
            self.run = run
            self.kind = kind
            self.hyperparameters = hyperparameters
            self.cleanRunID = cleanRunID
            self.dataFingerprint = dataFingerprint
            self.items = items
            self.trainingUsers = trainingUsers
            self.seconds = seconds
            self.epochs = epochs
            self.bestEpoch = bestEpoch
            self.validationMetrics = validationMetrics
            self.warmStartFrom = warmStartFrom
            self.publish = publish
        }
    }

    /// One epoch of `training_log`.
    public struct LogEntry: Sendable {
        public var epoch: Int
        public var loss: Double
        public var kl: Double?
        public var beta: Double?
        public var validationNDCG: Double?
        public var seconds: Double
        public init(epoch: Int, loss: Double, kl: Double?, beta: Double?, validationNDCG: Double?, seconds: Double) {
            self.epoch = epoch
            self.loss = loss
            self.kl = kl
            self.beta = beta
            self.validationNDCG = validationNDCG
            self.seconds = seconds
        }
    }

    /// Inserts a model's row, its item index and its training log (in the caller's
    /// transaction); returns the new model_id. Tensors follow through `weightWriter`.
    public static func insert(_ model: NewModel, itemKeys: [String], log: [LogEntry], in db: Database) throws -> Int64 {
        if model.publish {
            try db.execute(sql: "UPDATE \(TableName.models) SET status = 'retired' WHERE kind = ? AND status = 'published'",
                           arguments: [model.kind])
        }
        try db.execute(
            sql: """
                INSERT INTO \(TableName.models) (run_id, kind, created_at, hyperparameters, clean_run_id, data_fingerprint, items,
                    training_users, training_seconds, epochs, best_epoch, validation_metrics, warm_start_from, status)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [model.run, model.kind, Clock.isoNow(), model.hyperparameters, model.cleanRunID, model.dataFingerprint,
                        model.items, model.trainingUsers, model.seconds, model.epochs, model.bestEpoch, model.validationMetrics,
                        model.warmStartFrom, model.publish ? "published" : "candidate"])
        let modelID = db.lastInsertedRowID
        let items = try db.makeStatement(sql: "INSERT INTO \(TableName.modelItems) (model_id, position, item_key) VALUES (?, ?, ?)")
        for (position, key) in itemKeys.enumerated() {
            try items.execute(arguments: [modelID, position, key])
        }
        let insertLog = try db.makeStatement(sql: """
            INSERT INTO \(TableName.trainingLog) (model_id, epoch, loss, kl, beta, validation_ndcg100, seconds) VALUES (?, ?, ?, ?, ?, ?, ?)
            """)
        for entry in log {
            try insertLog.execute(arguments: [modelID, entry.epoch, entry.loss, entry.kl, entry.beta, entry.validationNDCG, entry.seconds])
        }
        return modelID
    }

    /// Writes a model's tensor chunks: `write(tensor, chunk, shape, dtype, bytes)`.
    public final class WeightWriter {
        let statement: Statement
        let modelID: Int64
        init(_ statement: Statement, modelID: Int64) {
            self.statement = statement
            self.modelID = modelID
        }

        public func write(tensor: String, chunk: Int, shape: String, dtype: String, data: Data) throws {
            try statement.execute(arguments: [modelID, tensor, chunk, shape, dtype, data])
        }
    }

    public static func weightWriter(model: Int64, in db: Database) throws -> WeightWriter {
        WeightWriter(try db.makeStatement(sql: """
            INSERT INTO \(TableName.modelWeights) (model_id, tensor, chunk, shape, dtype, data) VALUES (?, ?, ?, ?, ?, ?)
            """), modelID: model)
    }

    /// The published model of a kind, if any.
    public static func published(kind: String, in db: Database) throws -> Int64? {
        try Int64.fetchOne(db, sql: "SELECT model_id FROM \(TableName.models) WHERE kind = ? AND status = 'published'", arguments: [kind])
    }

    /// A model kept for a newer split instead of being retrained (`model_carryovers`).
    public struct Carryover: Sendable, Equatable {
        public var modelID: Int64
        /// The split it is carried to.
        public var cleanRunID: Int64
        public var run: Int64
        public var baseRawRows: Int
        public var newRawRows: Int
        public var threshold: Double
        public init(modelID: Int64, cleanRunID: Int64, run: Int64, baseRawRows: Int, newRawRows: Int, threshold: Double) {
            self.modelID = modelID
            self.cleanRunID = cleanRunID
            self.run = run
            self.baseRawRows = baseRawRows
            self.newRawRows = newRawRows
            self.threshold = threshold
        }
    }

    /// Records that a model stands for the split `carryover` names (in the caller's
    /// transaction); a second decision for the same split replaces the first.
    public static func carryOver(_ carryover: Carryover, in db: Database) throws {
        try db.execute(sql: """
            INSERT OR REPLACE INTO \(TableName.modelCarryovers) (model_id, clean_run_id, run_id, created_at, base_raw_rows,
                new_raw_rows, threshold) VALUES (?, ?, ?, ?, ?, ?, ?)
            """, arguments: [carryover.modelID, carryover.cleanRunID, carryover.run, Clock.isoNow(),
                             carryover.baseRawRows, carryover.newRawRows, carryover.threshold])
    }

    /// The condition on a `models` row that it belongs to a split: trained on data with the
    /// bound fingerprint, or carried over to the bound clean run. The one rule for "a model
    /// of the current split".
    public static let onSplitCondition = """
        (data_fingerprint = ? OR model_id IN (SELECT model_id FROM \(TableName.modelCarryovers) WHERE clean_run_id = ?))
        """

    /// The models of a split (`onSplitCondition`), not pruned.
    public static func onSplit(fingerprint: String, cleanRun: Int64, in db: Database) throws -> Set<Int64> {
        Set(try Int64.fetchAll(db, sql: "SELECT model_id FROM \(TableName.models) WHERE \(onSplitCondition) AND pruned_at IS NULL",
                               arguments: [fingerprint, cleanRun]))
    }

    /// The newest model of a kind trained with augmented data and not pruned.
    public static func latestAugmented(kind: String, in db: Database) throws -> Int64? {
        try Int64.fetchOne(db, sql: """
            SELECT model_id FROM \(TableName.models) WHERE kind = ? AND json_extract(hyperparameters, '$.augmentation') IS NOT NULL
                AND pruned_at IS NULL
            ORDER BY model_id DESC LIMIT 1
            """, arguments: [kind])
    }

    /// A model's row, as loading needs it.
    public struct Stored: Sendable, Equatable {
        public var kind: String
        public var status: String
        public var hyperparameters: String
        public var dataFingerprint: String
        /// The clean run (split) it was trained on.
        public var cleanRunID: Int64?
        public var prunedAt: String?
    }

    public static func stored(_ modelID: Int64, in db: Database) throws -> Stored? {
        try Row.fetchOne(db, sql: """
            SELECT kind, status, hyperparameters, data_fingerprint, clean_run_id, pruned_at FROM \(TableName.models) WHERE model_id = ?
            """, arguments: [modelID]).map {
            Stored(kind: $0["kind"], status: $0["status"], hyperparameters: $0["hyperparameters"],
                   dataFingerprint: $0["data_fingerprint"], cleanRunID: $0["clean_run_id"], prunedAt: $0["pruned_at"])
        }
    }

    /// A model's item index: `model_items.item_key` by position.
    public static func itemKeys(_ modelID: Int64, in db: Database) throws -> [String] {
        try String.fetchAll(db, sql: "SELECT item_key FROM \(TableName.modelItems) WHERE model_id = ? ORDER BY position", arguments: [modelID])
    }

    /// A tensor's shape text and element type, from its first chunk; nil when it is missing.
    public static func tensor(_ name: String, of modelID: Int64, in db: Database) throws -> (shape: String, dtype: String)? {
        try Row.fetchOne(db, sql: """
            SELECT shape, dtype FROM \(TableName.modelWeights) WHERE model_id = ? AND tensor = ? ORDER BY chunk LIMIT 1
            """, arguments: [modelID, name]).map { ($0["shape"], $0["dtype"]) }
    }

    /// A tensor's chunks in order: `body(chunk, bytes)`.
    public static func forEachChunk(of name: String, of modelID: Int64, in db: Database, _ body: (Int, Data) throws -> Void) throws {
        let chunks = try Row.fetchCursor(db, sql: """
            SELECT chunk, data FROM \(TableName.modelWeights) WHERE model_id = ? AND tensor = ? ORDER BY chunk
            """, arguments: [modelID, name])
        while let row = try chunks.next() { try body(row["chunk"], row["data"]) }
    }

    /// The newest models' rows, newest first (the report's table).
    public static func recent(_ limit: Int, in db: Database) throws -> [Row] {
        try Row.fetchAll(db, sql: "SELECT * FROM \(TableName.models) ORDER BY model_id DESC LIMIT ?", arguments: [limit])
    }

    /// The model whose training curve the report draws: the newest published model with a
    /// training log, else the newest model with one.
    public static func newestWithCurve(in db: Database) throws -> Row? {
        try Row.fetchOne(db, sql: """
            SELECT * FROM \(TableName.models) m WHERE EXISTS (SELECT 1 FROM \(TableName.trainingLog) t WHERE t.model_id = m.model_id)
            ORDER BY status = 'published' DESC, model_id DESC LIMIT 1
            """)
    }

    public static func bestEpoch(_ modelID: Int64, in db: Database) throws -> Int? {
        try Int.fetchOne(db, sql: "SELECT best_epoch FROM \(TableName.models) WHERE model_id = ?", arguments: [modelID])
    }

    /// A model's training curve, by epoch.
    public static func trainingLog(_ modelID: Int64, in db: Database) throws -> [Row] {
        try Row.fetchAll(db, sql: "SELECT * FROM \(TableName.trainingLog) WHERE model_id = ? ORDER BY epoch", arguments: [modelID])
    }
}

/// `augment_runs`, `augmented_interactions` and `gan_training_log`: what augment wrote, with
/// provenance.
public enum Augmentations {
    /// One epoch of the generative model's training.
    public struct GANLogEntry: Sendable {
        public var epoch: Int
        public var generatorLoss, discriminatorLoss, zrLoss, outputSpread: Double
        public var validationNDCG: Double?
        public var seconds: Double
        public init(epoch: Int, generatorLoss: Double, discriminatorLoss: Double, zrLoss: Double, outputSpread: Double,
                    validationNDCG: Double?, seconds: Double) {
            self.epoch = epoch
            self.generatorLoss = generatorLoss
            self.discriminatorLoss = discriminatorLoss
            self.zrLoss = zrLoss
            self.outputSpread = outputSpread
            self.validationNDCG = validationNDCG
            self.seconds = seconds
        }
    }

    /// Records an augment run (in the caller's transaction): the generator's curve, the run
    /// and its `count` synthetic interactions, `row(k)` giving each (user_idx, item_idx, score).
    public static func record(run: Int64, model: Int64, cleanRun: Int64, parameters: String, users: Int, log: [GANLogEntry],
                              count: Int, row: (Int) -> (user: Int, item: Int32, score: Float), in db: Database) throws {
        let insertLog = try db.makeStatement(sql: """
            INSERT INTO \(TableName.ganTrainingLog) (model_id, epoch, generator_loss, discriminator_loss, zr_loss, output_spread,
                validation_ndcg100, seconds) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            """)
        for e in log {
            try insertLog.execute(arguments: [model, e.epoch, e.generatorLoss, e.discriminatorLoss, e.zrLoss, e.outputSpread,
                                              e.validationNDCG, e.seconds])
        }
        try db.execute(sql: """
            INSERT INTO \(TableName.augmentRuns) (run_id, model_id, clean_run_id, parameters, users, rows, created_at)
            VALUES (?, ?, ?, ?, ?, ?, ?)
            """, arguments: [run, model, cleanRun, parameters, users, count, Clock.isoNow()])
        let insert = try db.makeStatement(sql: """
            INSERT INTO \(TableName.augmentedInteractions) (user_idx, item_idx, score, model_id, run_id) VALUES (?, ?, ?, ?, ?)
            """)
        for k in 0..<count {
            let (user, item, score) = row(k)
            try insert.execute(arguments: [user, item, score, model, run])
        }
    }

    /// The newest augment run on a split; nil when there is none.
    public static func latestRun(cleanRun: Int64, in db: Database) throws -> Int64? {
        try Int64.fetchOne(db, sql: "SELECT run_id FROM \(TableName.augmentRuns) WHERE clean_run_id = ? ORDER BY run_id DESC LIMIT 1",
                           arguments: [cleanRun])
    }

    /// A run's synthetic interactions: `body(user_idx, item_idx, score)`.
    public static func forEachInteraction(run: Int64, in db: Database, _ body: (Int, Int32, Float) throws -> Void) throws {
        let cursor = try Row.fetchCursor(db, sql: "SELECT user_idx, item_idx, score FROM \(TableName.augmentedInteractions) WHERE run_id = ?",
                                         arguments: [run])
        while let row = try cursor.next() { try body(row[0], row[1], row[2]) }
    }

    /// The newest augment run's row (the report).
    public static func latestRunRow(in db: Database) throws -> Row? {
        try Row.fetchOne(db, sql: "SELECT * FROM \(TableName.augmentRuns) ORDER BY run_id DESC LIMIT 1")
    }

    /// The generator's curve, by epoch.
    public static func ganLog(_ modelID: Int64, in db: Database) throws -> [Row] {
        try Row.fetchAll(db, sql: "SELECT * FROM \(TableName.ganTrainingLog) WHERE model_id = ? ORDER BY epoch", arguments: [modelID])
    }
}
