import Foundation
import GRDB
import Logging
import RecpipeModels
import RecpipeNumerics
import RecpipeStore

/// Trains a CFGAN on the training users' interactions and writes, for the training users it
/// selects, the unobserved items its generator scores highest as synthetic interactions
/// (`augmented_interactions`), apart from the real data. Held-out users are never seen: the
/// generator's epoch is chosen on a probe set carved out of training users (a share of their
/// items hidden from training).
public struct AugmentStage: Stage {
    public struct Config: Codable, Sendable, Equatable {
        public var gan = CFGAN.Config()
        public var selection = Augmentation.Selection()
        /// Training users whose items are partly hidden to choose the generator's epoch.
        public var probeUsers = 500
        /// Start from the published CFGAN's weights (items matched by key) rather than from
        /// random ones: a nightly run trains a few epochs instead of all of them.
        public var warmStart = false
        /// What is kept of older generators and of earlier runs' synthetic interactions.
        public var retention = Retention.Policy()
        public init() {}
    }

    public static let name = "augment"
    /// The model tables: the warm start's published generator.
    public static let reads: [TableName] = [.cleanRuns, .users, .items, .interactions, .models, .modelItems, .modelWeights,
                                            .augmentRuns] + Retention.modelReads
    public static let writes: [TableName] = [.models, .modelItems, .modelWeights, .trainingLog, .ganTrainingLog, .augmentRuns,
                                             .augmentedInteractions]
    /// The split; the CFGAN's own models (a warm start, the gate).
    public static func inputs(_ parameters: [String: String]) -> [DataSet] {
        [TableName.cleanRuns, .users, .items, .interactions].map { DataSet($0) } + DataSet.models(ModelKind.cfgan.rawValue)
    }

    public static func outputs(_ parameters: [String: String]) -> [DataSet] {
        DataSet.models(ModelKind.cfgan.rawValue) + [DataSet(.ganTrainingLog), DataSet(.augmentRuns), DataSet(.augmentedInteractions)]
    }
    public let config: Config

    public init(config: Config) throws {
        try config.retention.validate()
        let g = config.gan, s = config.selection
        guard !g.generatorHidden.isEmpty, !g.discriminatorHidden.isEmpty,
              (g.generatorHidden + g.discriminatorHidden).allSatisfy({ $0 > 0 }) else {
            throw StageError.badOption("--generator-hidden and --discriminator-hidden need one or more positive widths")
        }
        guard g.epochs > 0, g.batchSize > 0, g.generatorSteps > 0, g.discriminatorSteps > 0, g.evaluateEvery > 0 else {
            throw StageError.badOption("--epochs, --batch-size, --generator-steps, --discriminator-steps and --evaluate-every must be positive")
        }
        guard g.generatorLearningRate > 0, g.discriminatorLearningRate > 0, g.generatorLearningRate.isFinite,
              g.discriminatorLearningRate.isFinite else {
            throw StageError.badOption("learning rates must be positive")
        }
        guard (0...1).contains(g.zrRatio), (0...1).contains(g.pmRatio) else {
            throw StageError.badOption("--zr-ratio and --pm-ratio must be between 0 and 1")
        }
        guard g.zrCoefficient >= 0, g.generatorL2 >= 0, g.discriminatorL2 >= 0 else {
            throw StageError.badOption("--zr-coefficient and the L2 weights must not be negative")
        }
        guard s.usersBelow > 0, s.fraction > 0, s.fraction.isFinite, s.minScore.isFinite else {
            throw StageError.badOption("--users-below and --fraction must be positive")
        }
        guard config.probeUsers >= 0 else { throw StageError.badOption("--probe-users must not be negative") }
        if let patience = g.patience, patience < 1 { throw StageError.badOption("--patience must be positive") }
        self.config = config
    }

    public func run(_ context: StageContext) throws -> StageReport {
        let started = Clock.monotonic()
        let data = try TrainingData.load(context.store)
        guard data.train.rows > 0 else { throw StageError.missingInput("the split has no training interactions") }
        let rowKeys = data.trainUsers.map { stableHash(data.userKeys[$0], seed: config.gan.seed) }
        let (ganTrain, probe) = Augmentation.internalValidation(data.train, users: config.probeUsers, seed: config.gan.seed,
                                                                rowKeys: rowKeys)
        let (initial, warmFrom) = config.warmStart ? try warmStartModel(data, context: context) : (nil, nil)
        context.logger.info("training started", metadata: [
            "model": "cfgan", "users": "\(data.train.rows)", "items": "\(data.itemKeys.count)",
            "interactions": "\(ganTrain.nonZeros)", "probe_users": "\(probe?.foldIn.rows ?? 0)",
        ])
        let result: GANFitResult
        do {
            result = try CFGAN.fit(train: ganTrain, validation: probe, config: config.gan, initial: initial) { epoch in
                var metadata: Logger.Metadata = [
                    "epoch": "\(epoch.epoch)", "g_loss": "\(String(format: "%.4f", epoch.generatorLoss))",
                    "d_loss": "\(String(format: "%.4f", epoch.discriminatorLoss))",
                    "zr_loss": "\(String(format: "%.4f", epoch.zrLoss))", "spread": "\(String(format: "%.4f", epoch.outputSpread))",
                    "seconds": "\(String(format: "%.2f", epoch.seconds))",
                ]
                if let ndcg = epoch.validationNDCG { metadata["probe_ndcg100"] = "\(String(format: "%.4f", ndcg))" }
                context.logger.info("epoch finished", metadata: metadata)
                context.events.send(.epoch(epoch.epoch))
            }
        } catch let error as ModelError {
            throw StageError.trainingFailed("augment: \(error.localizedDescription); nothing stored")
        }
        let popularity = Popularity(train: data.train)
        let isHead = Evaluation.head(counts: popularity.counts)
        let rows = Augmentation.select(result.model, train: data.train, selection: config.selection, isHead: isHead)
        let eligible = Augmentation.eligibleRows(data.train, config.selection).count
        let users = Set(rows.map(\.row)).count
        let seconds = Clock.monotonic() - started
        var outcome = ModelStore.Outcome()
        outcome.epochs = result.log.count
        outcome.bestEpoch = result.bestEpoch
        if let ndcg = result.bestNDCG { outcome.validationMetrics["probe_ndcg@100"] = ndcg }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let parameters = String(decoding: try encoder.encode(config.selection), as: UTF8.self)
        let modelID = try context.store.queue.write { db -> Int64 in
            let modelID = try ModelStore.save(result.model, outcome: outcome, data: data, runID: context.runID, seconds: seconds,
                                              warmStartFrom: warmFrom, publish: true, in: db)
            let log = result.log.map {
                Augmentations.GANLogEntry(epoch: $0.epoch, generatorLoss: $0.generatorLoss, discriminatorLoss: $0.discriminatorLoss,
                                          zrLoss: $0.zrLoss, outputSpread: $0.outputSpread, validationNDCG: $0.validationNDCG,
                                          seconds: $0.seconds)
            }
            try Augmentations.record(run: context.runID, model: modelID, cleanRun: data.cleanRunID, parameters: parameters,
                                     users: users, log: log, count: rows.count, row: { k in
                                         (data.trainUsers[rows[k].row], rows[k].item, rows[k].score)
                                     }, in: db)
            return modelID
        }
        let tail = rows.filter { !isHead[Int($0.item)] }.count
        let meanScore = rows.isEmpty ? 0 : rows.reduce(0.0) { $0 + Double($1.score) } / Double(rows.count)
        context.logger.info("augmented", metadata: [
            "model": "\(modelID)", "users": "\(users)", "eligible_users": "\(eligible)", "rows": "\(rows.count)",
            "tail_share": "\(String(format: "%.3f", rows.isEmpty ? 0 : Double(tail) / Double(rows.count)))",
        ])
        var summary = ["model \(modelID) (cfgan): \(result.log.count) epochs, best epoch \(result.bestEpoch)"
                       + (result.bestNDCG.map { String(format: ", probe NDCG@100 %.4f", $0) } ?? "")]
        summary.append("\(rows.count) synthetic interactions for \(users) of the \(eligible) training users with fewer than "
                       + "\(config.selection.usersBelow) interactions; "
                       + String(format: "%.1f%% long-tail items, mean generator score %.3f",
                                rows.isEmpty ? 0 : 100 * Double(tail) / Double(rows.count), meanScore))
        if rows.isEmpty {
            context.logger.warning("no synthetic interactions written", metadata: [
                "hint": "raise --users-below or --fraction, or lower --min-score",
            ])
        }
        let pruned = try Retention.prune(config.retention, scope: .augmentations(sparing: context.runID), store: context.store, logger: context.logger)
        if !pruned.isEmpty {
            summary.append("pruned \(pruned.models.count) older generator(s) and the synthetic interactions of \(pruned.augmentations.count) earlier run(s)")
        }
        return StageReport(rowsIn: data.train.nonZeros, rowsOut: rows.count, summary: summary)
    }

    /// A generator and discriminator seeded with the published CFGAN's weights, items
    /// re-indexed by key (new items keep fresh weights), and that model's id; nil when none
    /// is published.
    func warmStartModel(_ data: TrainingData, context: StageContext) throws -> (CFGAN?, Int64?) {
        guard let (stored, record) = try context.store.queue.read({ try ModelStore.loadPublished(kind: .cfgan, in: $0) }),
              let previous = stored as? CFGAN else {
            context.logger.warning("no published model to warm-start from; training from scratch", metadata: ["model": "cfgan"])
            return (nil, nil)
        }
        var model = CFGAN(items: data.itemKeys.count, config: config.gan)
        guard model.hasHiddenLayers(of: previous) else {
            throw StageError.badOption("--warm-start: model \(record.modelID) has generator \(previous.config.generatorHidden), "
                                       + "discriminator \(previous.config.discriminatorHidden); the options ask for "
                                       + "\(config.gan.generatorHidden), \(config.gan.discriminatorHidden)")
        }
        var rng = SeededRandom(seed: config.gan.seed)
        model.initialize(rng: &rng)
        model.copyWeights(from: previous, itemMapping: record.warmStartMapping(to: data.itemKeys, context: context))
        return (model, record.modelID)
    }
}
