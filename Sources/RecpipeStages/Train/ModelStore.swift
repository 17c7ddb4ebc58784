import Foundation
import GRDB
import RecpipeModels
import RecpipeStore

/// Reads and writes models: a `models` row, the item index, the weights as float32 BLOBs and
/// the training log.
public enum ModelStore {
    public struct Record: Sendable, Equatable {
        public var modelID: Int64
        public var kind: String
        public var status: String
        public var hyperparameters: String
        public var itemKeys: [String]

        /// For each of `keys` (the current items), its position in this model's item index;
        /// nil for items the model does not know.
        public func positions(of keys: [String]) -> [Int32?] {
            let position = Dictionary(uniqueKeysWithValues: itemKeys.enumerated().map { ($1, Int32($0)) })
            return keys.map { position[$0] }
        }
    }

    /// Saves a trained VAE/DAE; publishes it (retiring the kind's previous published model)
    /// when `publish` is set. One transaction. Returns the new model_id.
    public static func save(_ result: FitResult, data: TrainingData, runID: Int64, seconds: Double,
                            warmStartFrom: Int64?, publish: Bool, in db: Database) throws -> Int64 {
        let model = result.model
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let hyperparameters = String(decoding: try encoder.encode(model.config), as: UTF8.self)
        var metrics: [String: Double] = [:]
        if let ndcg = result.bestNDCG { metrics["ndcg@100"] = ndcg }
        let kind = model.config.kind.rawValue
        if publish {
            try db.execute(sql: "UPDATE models SET status = 'retired' WHERE kind = ? AND status = 'published'", arguments: [kind])
        }
        try db.execute(
            sql: """
                INSERT INTO models (run_id, kind, created_at, hyperparameters, clean_run_id, data_fingerprint, items,
                    training_users, training_seconds, epochs, best_epoch, validation_metrics, warm_start_from, status)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [runID, kind, Clock.isoNow(), hyperparameters, data.cleanRunID, data.fingerprint, model.items,
                        data.train.rows, seconds, result.log.count, result.bestEpoch,
                        String(decoding: try encoder.encode(metrics), as: UTF8.self), warmStartFrom,
                        publish ? "published" : "candidate"])
        let modelID = db.lastInsertedRowID
        let items = try db.makeStatement(sql: "INSERT INTO model_items (model_id, position, item_key) VALUES (?, ?, ?)")
        for (position, key) in data.itemKeys.enumerated() {
            try items.execute(arguments: [modelID, position, key])
        }
        for tensor in model.tensors {
            let bytes = model.parameters[tensor.offset..<(tensor.offset + tensor.count)].withUnsafeBytes { raw in
                Data(raw)
            }
            try db.execute(
                sql: "INSERT INTO model_weights (model_id, tensor, shape, data) VALUES (?, ?, ?, ?)",
                arguments: [modelID, tensor.name, "[" + tensor.shape.map(String.init).joined(separator: ",") + "]",
                            littleEndian(bytes)])
        }
        let log = try db.makeStatement(sql: """
            INSERT INTO training_log (model_id, epoch, loss, kl, beta, validation_ndcg100, seconds) VALUES (?, ?, ?, ?, ?, ?, ?)
            """)
        for entry in result.log {
            try log.execute(arguments: [modelID, entry.epoch, entry.loss, model.config.kind == .vae ? entry.kl : nil,
                                        model.config.kind == .vae ? entry.beta : nil, entry.validationNDCG, entry.seconds])
        }
        return modelID
    }

    /// The published model of a kind, if any.
    public static func published(kind: String, in db: Database) throws -> Int64? {
        try Int64.fetchOne(db, sql: "SELECT model_id FROM models WHERE kind = ? AND status = 'published'", arguments: [kind])
    }

    /// The published VAE/DAE of a kind, loaded; nil when none is published.
    public static func publishedVAE(kind: MultVAE.Kind, in db: Database) throws -> (MultVAE, Record)? {
        try published(kind: kind.rawValue, in: db).map { try loadVAE($0, in: db) }
    }

    /// Loads a VAE/DAE exactly as it was saved.
    public static func loadVAE(_ modelID: Int64, in db: Database) throws -> (MultVAE, Record) {
        guard let row = try Row.fetchOne(db, sql: "SELECT kind, status, hyperparameters FROM models WHERE model_id = ?",
                                         arguments: [modelID]) else {
            throw StageError.missingInput("no model \(modelID)")
        }
        let hyperparameters: String = row["hyperparameters"]
        let config = try JSONDecoder().decode(MultVAE.Config.self, from: Data(hyperparameters.utf8))
        let itemKeys = try String.fetchAll(db, sql: "SELECT item_key FROM model_items WHERE model_id = ? ORDER BY position",
                                           arguments: [modelID])
        var model = MultVAE(items: itemKeys.count, config: config)
        for tensor in model.tensors {
            guard let stored = try Row.fetchOne(db, sql: "SELECT shape, data FROM model_weights WHERE model_id = ? AND tensor = ?",
                                                arguments: [modelID, tensor.name]) else {
                throw StageError.badData("model \(modelID): tensor \(tensor.name) is missing")
            }
            let shape: String = stored["shape"], data: Data = stored["data"]
            guard shape == "[" + tensor.shape.map(String.init).joined(separator: ",") + "]", data.count == tensor.count * 4 else {
                throw StageError.badData("model \(modelID): tensor \(tensor.name) has shape \(shape), expected \(tensor.shape)")
            }
            let native = littleEndian(data)
            model.parameters.withUnsafeMutableBytes { raw in
                native.copyBytes(to: UnsafeMutableRawBufferPointer(rebasing: raw[(tensor.offset * 4)..<((tensor.offset + tensor.count) * 4)]))
            }
        }
        return (model, Record(modelID: modelID, kind: row["kind"], status: row["status"],
                              hyperparameters: hyperparameters, itemKeys: itemKeys))
    }

    /// Float bytes are stored little-endian; on a big-endian host they are swapped.
    static func littleEndian(_ data: Data) -> Data {
        #if _endian(big)
        var swapped = data
        swapped.withUnsafeMutableBytes { raw in
            let words = raw.bindMemory(to: UInt32.self)
            for k in 0..<words.count { words[k] = words[k].byteSwapped }
        }
        return swapped
        #else
        return data
        #endif
    }
}
