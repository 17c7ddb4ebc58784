import Foundation
import GRDB
import Logging
import RecpipeModels
import RecpipeNumerics
import RecpipeStore

/// Trains a Mult-VAE (or Mult-DAE) on the current split's training users, picks the epoch
/// by validation NDCG@100 and stores the model with its weights and training log.
public struct TrainStage: Stage {
    public struct Config: Codable, Sendable, Equatable {
        public var model: MultVAE.Config = MultVAE.Config()
        /// Start from the published model of the same kind (items matched by key; new items
        /// start from fresh weights).
        public var warmStart = false
        /// Publish the new model (retiring the previous one of its kind) or keep it a candidate.
        public var publish = true
        /// Quality gate: the new model is published only if its validation NDCG@100 is at
        /// least (1 − margin) × the live model's on the same validation users; otherwise it
        /// stays a candidate and the live model stays. nil: no gate.
        public var publishMargin: Double? = 0.02
        public init() {}
    }

    public static let name = "train"
    public static let reads: [TableName] = [.cleanRuns, .items, .interactions, .models, .modelItems, .modelWeights]
    public static let writes: [TableName] = [.models, .modelItems, .modelWeights, .trainingLog]
    public let config: Config

    public init(config: Config) throws {
        let m = config.model
        guard m.hidden > 0, m.latent > 0, m.batchSize > 0, m.epochs > 0 else {
            throw StageError.badOption("--hidden, --latent, --batch-size and --epochs must be positive")
        }
        guard m.dropout >= 0 && m.dropout < 1 else { throw StageError.badOption("--dropout must be in [0, 1)") }
        if let margin = config.publishMargin, !(0...1).contains(margin) {
            throw StageError.badOption("--publish-margin must be between 0 and 1")
        }
        guard m.learningRate > 0, m.learningRate.isFinite, m.betaCap >= 0 else {
            throw StageError.badOption("--learning-rate must be positive and --beta-cap not negative")
        }
        if let steps = m.annealSteps, steps < 1 { throw StageError.badOption("--anneal-steps must be positive") }
        self.config = config
    }

    public func run(_ context: StageContext) throws -> StageReport {
        let started = Clock.monotonic()
        let data = try TrainingData.load(context.store)
        guard data.train.rows > 0 else { throw StageError.missingInput("the split has no training interactions") }
        // The live model serves both the warm start and the quality gate: load it once.
        let gated = config.publish && config.publishMargin != nil && data.validation.foldIn.rows > 0
        let live = config.warmStart || gated
            ? try context.store.queue.read { try ModelStore.publishedVAE(kind: config.model.kind, in: $0) } : nil
        var initial: MultVAE?
        var warmFrom: Int64?
        if config.warmStart {
            (initial, warmFrom) = try warmStartModel(from: live, data, context: context)
        }
        context.logger.info("training started", metadata: [
            "model": "\(config.model.kind.rawValue)", "users": "\(data.train.rows)", "items": "\(data.itemKeys.count)",
            "interactions": "\(data.train.nonZeros)", "validation_users": "\(data.validation.foldIn.rows)",
            "blas_threads": "\(BLAS.threads)",
        ])
        let result: FitResult
        do {
            result = try MultVAE.fit(train: data.train, validation: data.validation.foldIn.rows > 0 ? data.validation : nil,
                                     config: config.model, initial: initial) { epoch in
                var metadata: Logger.Metadata = [
                    "epoch": "\(epoch.epoch)", "loss": "\(String(format: "%.4f", epoch.loss))",
                    "seconds": "\(String(format: "%.2f", epoch.seconds))",
                ]
                if config.model.kind == .vae { metadata["beta"] = "\(String(format: "%.4f", epoch.beta))" }
                if let ndcg = epoch.validationNDCG { metadata["ndcg100"] = "\(String(format: "%.4f", ndcg))" }
                context.logger.info("epoch finished", metadata: metadata)
            }
        } catch let error as ModelError {
            throw StageError.badData("train: \(error.localizedDescription); no model stored")
        }
        let seconds = Clock.monotonic() - started
        var publish = config.publish
        var gate: String?
        if publish, let margin = config.publishMargin, let ndcg = result.bestNDCG,
           let (liveID, liveNDCG) = liveModelNDCG(live, data) {
            let floor = (1 - margin) * liveNDCG
            if ndcg < floor {
                publish = false
                gate = String(format: "not published: validation NDCG@100 %.4f is below %.4f, (1 − %g) × the live model %lld's %.4f on the same users; model %lld stays live",
                              ndcg, floor, margin, liveID, liveNDCG, liveID)
            } else {
                gate = String(format: "quality gate passed: validation NDCG@100 %.4f against the live model %lld's %.4f",
                              ndcg, liveID, liveNDCG)
            }
        }
        let modelID = try context.store.queue.write { db in
            try ModelStore.save(result, data: data, runID: context.runID, seconds: seconds, warmStartFrom: warmFrom,
                                publish: publish, in: db)
        }
        var summary = ["model \(modelID) (\(config.model.kind.rawValue)): \(result.log.count) epochs, best epoch \(result.bestEpoch)"]
        if let ndcg = result.bestNDCG { summary.append("validation NDCG@100 \(String(format: "%.4f", ndcg))") }
        if let gate {
            summary.append(gate)
            if !publish { context.logger.warning("model not published", metadata: ["model": "\(modelID)", "reason": "\(gate)"]) }
        }
        summary.append(publish ? "published" : "kept as a candidate")
        return StageReport(rowsIn: data.train.nonZeros, rowsOut: result.model.parameters.count, summary: summary)
    }

    /// The live model's id and its NDCG@100 on the current validation users, its items
    /// matched to the current ones by key; nil when there is none.
    func liveModelNDCG(_ live: (MultVAE, ModelStore.Record)?, _ data: TrainingData) -> (Int64, Double)? {
        guard data.validation.foldIn.rows > 0, let (model, record) = live else { return nil }
        let remapped = Remapped(model, mapping: record.positions(of: data.itemKeys))
        return (record.modelID, Evaluation.meanNDCG(remapped, data.validation, k: 100))
    }

    /// A new model starting from the live one's weights, items re-indexed by key.
    func warmStartModel(from live: (MultVAE, ModelStore.Record)?, _ data: TrainingData,
                        context: StageContext) throws -> (MultVAE?, Int64?) {
        guard let (previous, record) = live else {
            context.logger.warning("no published model to warm-start from; training from scratch",
                                   metadata: ["model": "\(config.model.kind.rawValue)"])
            return (nil, nil)
        }
        let previousID = record.modelID
        guard previous.config.hidden == config.model.hidden, previous.config.latent == config.model.latent else {
            throw StageError.badOption("--warm-start: model \(previousID) has hidden \(previous.config.hidden), latent \(previous.config.latent); the options ask for \(config.model.hidden), \(config.model.latent)")
        }
        var rng = SeededRandom(seed: config.model.seed)
        var model = MultVAE(items: data.itemKeys.count, config: config.model)
        model.initialize(rng: &rng)
        let mapping = record.positions(of: data.itemKeys).map { $0.map(Int.init) }
        model.copyWeights(from: previous, itemMapping: mapping)
        let kept = mapping.compactMap { $0 }.count
        context.logger.info("warm start", metadata: [
            "from_model": "\(previousID)", "items_kept": "\(kept)", "items_new": "\(mapping.count - kept)",
        ])
        return (model, previousID)
    }
}
