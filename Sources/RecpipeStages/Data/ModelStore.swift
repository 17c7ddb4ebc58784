import Foundation
import GRDB
import RecpipeModels
import RecpipeStore

/// Reads and writes models of every kind: a `models` row, the item index, the tensors as
/// chunked little-endian BLOBs and the training log.
public enum ModelStore {
    /// Largest BLOB written for one chunk of a tensor (SQLite's limit on one value is 1 GB).
    public static let defaultChunkBytes = 64 << 20

    public struct Record: Sendable, Equatable {
        public var modelID: Int64
        public var kind: ModelKind
        public var status: String
        public var hyperparameters: String
        /// SHA-256 of the item keys and training interactions it was trained on
        /// (`TrainingData.fingerprint`): equal means trained on the same split.
        public var dataFingerprint: String
        public var itemKeys: [String]

        /// For each of `keys` (the current items), its position in this model's item index;
        /// nil for items the model does not know.
        public func positions(of keys: [String]) -> [Int32?] {
            let position = Dictionary(uniqueKeysWithValues: itemKeys.enumerated().map { (ExactKey($1), Int32($0)) })
            return keys.map { position[ExactKey($0)] }
        }

        /// A warm start's item mapping: for each of `keys`, its index in this model, nil
        /// for a new item; logged as one `warm start` event.
        public func warmStartMapping(to keys: [String], context: StageContext) -> [Int?] {
            let mapping = positions(of: keys).map { $0.map(Int.init) }
            let kept = mapping.compactMap { $0 }.count
            context.logger.info("warm start", metadata: [
                "from_model": "\(modelID)", "items_kept": "\(kept)", "items_new": "\(mapping.count - kept)",
            ])
            return mapping
        }
    }

    /// What a training run produced besides the model itself.
    public struct Outcome: Sendable {
        public var epochs = 0
        public var bestEpoch: Int?
        public var validationMetrics: [String: Double] = [:]
        public var log: [EpochLog] = []
        /// How the hyperparameters were chosen, stored under "selection" beside them: the
        /// settings tried and their validation NDCG@100.
        public var selection: [(settings: String, ndcg: Double)] = []
        public init() {}
    }

    /// Saves a trained VAE/DAE. See `save(_:outcome:...)`.
    public static func save(_ result: FitResult, data: TrainingData, runID: Int64, seconds: Double,
                            warmStartFrom: Int64?, publish: Bool, in db: Database) throws -> Int64 {
        var outcome = Outcome()
        outcome.epochs = result.log.count
        outcome.bestEpoch = result.bestEpoch
        if let ndcg = result.bestNDCG { outcome.validationMetrics["ndcg@100"] = ndcg }
        outcome.log = result.log
        return try save(result.model, outcome: outcome, data: data, runID: runID, seconds: seconds,
                        warmStartFrom: warmStartFrom, publish: publish, in: db)
    }

    /// Saves a model of any kind trained on `data`, its item index being `data.itemKeys`;
    /// publishes it (retiring the kind's previous published model) when `publish` is set.
    /// One transaction (the caller's). Returns the new model_id.
    public static func save(_ model: some StorableModel, outcome: Outcome, data: TrainingData, runID: Int64,
                            seconds: Double, warmStartFrom: Int64?, publish: Bool,
                            chunkBytes: Int = defaultChunkBytes, in db: Database) throws -> Int64 {
        precondition(model.items == data.itemKeys.count, "the model's items are the split's items")
        try refuseNonFinite(model, outcome: outcome)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var hyperparameters = try model.hyperparametersJSON()
        if !outcome.selection.isEmpty {
            let tried = outcome.selection.map { #"{"ndcg@100":\#(rounded($0.ndcg)),"settings":\#($0.settings)}"# }
            hyperparameters = String(hyperparameters.dropLast()) + (hyperparameters == "{}" ? "" : ",")
                + #""selection":[\#(tried.joined(separator: ","))]}"#
        }
        let variational = model.kind == .multvae
        let log = outcome.log.map { entry in
            Models.LogEntry(epoch: entry.epoch, loss: entry.loss, kl: variational ? entry.kl : nil, beta: variational ? entry.beta : nil,
                            validationNDCG: entry.validationNDCG, seconds: entry.seconds)
        }
        let row = Models.NewModel(
            run: runID, kind: model.kind.rawValue, hyperparameters: hyperparameters, cleanRunID: data.cleanRunID,
            dataFingerprint: data.fingerprint, items: model.items, trainingUsers: data.train.rows, seconds: seconds,
            epochs: outcome.epochs, bestEpoch: outcome.bestEpoch,
            validationMetrics: String(decoding: try encoder.encode(outcome.validationMetrics), as: UTF8.self),
            warmStartFrom: warmStartFrom, publish: publish)
        let modelID = try Models.insert(row, itemKeys: data.itemKeys, log: log, in: db)
        let chunk = max(4, chunkBytes / 4 * 4)
        let weights = try Models.weightWriter(model: modelID, in: db)
        try model.forEachTensor { info, bytes in
            precondition(bytes.count == info.bytes, "tensor \(info.name): \(bytes.count) bytes for shape \(info.shape)")
            let shape = "[" + info.shape.map(String.init).joined(separator: ",") + "]"
            var n = 0
            for start in stride(from: 0, to: max(bytes.count, 1), by: chunk) {
                let part = Data(UnsafeRawBufferPointer(rebasing: bytes[start..<min(start + chunk, bytes.count)]))
                try weights.write(tensor: info.name, chunk: n, shape: shape, dtype: info.type.rawValue, data: littleEndian(part))
                n += 1
            }
        }
        return modelID
    }

    /// No model with a NaN or infinite weight or validation figure is stored, whatever its kind.
    static func refuseNonFinite(_ model: some StorableModel, outcome: Outcome) throws {
        for (metric, value) in outcome.validationMetrics.sorted(by: { $0.key < $1.key }) where !value.isFinite {
            throw StageError.trainingFailed("train: \(model.kind.rawValue) has a validation \(metric) of \(value); no model stored")
        }
        if let bad = outcome.selection.first(where: { !$0.ndcg.isFinite }) {
            throw StageError.trainingFailed("train: \(model.kind.rawValue) with \(bad.settings) has a validation NDCG@100 of \(bad.ndcg); no model stored")
        }
        if let bad = model.nonFiniteTensor() { throw StageError.trainingFailed("train: \(model.kind.rawValue) has a non-finite weight in \(bad); no model stored") }
    }

    static func rounded(_ x: Double) -> String { String(format: "%.6f", x) }

    /// The published model of a kind, if any.
    public static func published(kind: ModelKind, in db: Database) throws -> Int64? {
        try Models.published(kind: kind.rawValue, in: db)
    }

    /// The published model of a kind, loaded; nil when none is published.
    public static func loadPublished(kind: ModelKind, in db: Database) throws -> (any StorableModel, Record)? {
        try published(kind: kind, in: db).map { try load($0, in: db) }
    }

    /// The published VAE/DAE of a kind, loaded; nil when none is published.
    public static func publishedVAE(kind: MultVAE.Kind, in db: Database) throws -> (MultVAE, Record)? {
        try published(kind: kind == .vae ? .multvae : .multdae, in: db).map { try loadVAE($0, in: db) }
    }

    /// Loads a VAE/DAE exactly as it was saved.
    public static func loadVAE(_ modelID: Int64, in db: Database) throws -> (MultVAE, Record) {
        let (model, record) = try load(modelID, in: db)
        guard let vae = model as? MultVAE else {
            throw StageError.badOption("model \(modelID) is a \(record.kind.rawValue) model, not a Mult-VAE or Mult-DAE")
        }
        return (vae, record)
    }

    /// The model's row without its tensors.
    public static func record(_ modelID: Int64, in db: Database) throws -> Record {
        guard let row = try Models.stored(modelID, in: db) else {
            throw StageError.missingInput("no model \(modelID)")
        }
        if let pruned = row.prunedAt {
            throw StageError.missingInput("model \(modelID) (\(row.kind)) was pruned at \(pruned): its weights are no longer stored")
        }
        guard let kind = ModelKind(rawValue: row.kind) else {
            throw StageError.badData("model \(modelID) is of kind '\(row.kind)', which this recpipe does not know")
        }
        return Record(modelID: modelID, kind: kind, status: row.status, hyperparameters: row.hyperparameters,
                      dataFingerprint: row.dataFingerprint, itemKeys: try Models.itemKeys(modelID, in: db))
    }

    /// Loads a model of any kind exactly as it was saved.
    /// A stored model as a recommender over `itemKeys` (the current split's items): the
    /// model itself when its item index is theirs, else re-indexed by key (`Remapped`), as
    /// for a model kept from an earlier split.
    public static func load(_ modelID: Int64, over itemKeys: [String], in db: Database) throws -> (Recommender, Record) {
        let (model, record) = try load(modelID, in: db)
        return (record.itemKeys == itemKeys ? model : Remapped(model, mapping: record.positions(of: itemKeys)), record)
    }

    public static func load(_ modelID: Int64, in db: Database) throws -> (any StorableModel, Record) {
        let record = try record(modelID, in: db)
        do {
            let model = try StoredModels.restore(kind: record.kind, items: record.itemKeys.count,
                                                 hyperparameters: record.hyperparameters,
                                                 from: DatabaseTensors(db: db, modelID: modelID))
            return (model, record)
        } catch let error as ModelError {
            throw StageError.badData("model \(modelID): \(error.localizedDescription)")
        }
    }

    /// A model's tensors as stored in `model_weights`.
    struct DatabaseTensors: TensorReader {
        let db: Database
        let modelID: Int64

        func info(_ name: String) throws -> TensorInfo {
            guard let (shapeText, dtype) = try Models.tensor(name, of: modelID, in: db) else {
                throw ModelError.shapeMismatch("tensor \(name) is missing")
            }
            let inner = shapeText.trimmingCharacters(in: CharacterSet(charactersIn: "[] "))
            let shape = inner.isEmpty ? [] : inner.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard let type = TensorType(rawValue: dtype), shape.allSatisfy({ ($0 ?? -1) >= 0 }) else {
                throw ModelError.shapeMismatch("tensor \(name) has an unreadable shape \(shapeText) or type \(dtype)")
            }
            return TensorInfo(name, shape.map { $0! }, type)
        }

        func read(_ name: String, into buffer: UnsafeMutableRawBufferPointer) throws {
            var offset = 0, expected = 0
            try Models.forEachChunk(of: name, of: modelID, in: db) { chunk, data in
                guard chunk == expected, offset + data.count <= buffer.count else {
                    throw ModelError.shapeMismatch("tensor \(name): chunk \(chunk) is missing, repeated or too long")
                }
                littleEndian(data).copyBytes(to: UnsafeMutableRawBufferPointer(rebasing: buffer[offset..<(offset + data.count)]))
                offset += data.count
                expected += 1
            }
            guard offset == buffer.count else {
                throw ModelError.shapeMismatch("tensor \(name) holds \(offset) bytes, its shape needs \(buffer.count)")
            }
        }
    }

    /// Values are stored little-endian; on a big-endian host they are swapped (both
    /// element types are 4 bytes).
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
