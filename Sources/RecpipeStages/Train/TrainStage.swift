import Foundation
import GRDB
import Logging
import RecpipeModels
import RecpipeNumerics
import RecpipeStore

/// Trains a model on the current split's training users and stores it with its weights:
/// a Mult-VAE or Mult-DAE (epoch chosen by validation NDCG@100, training log kept), or a
/// baseline (popularity, EASE, ItemKNN, iALS; hyperparameters chosen on the validation users
/// from a grid).
public struct TrainStage: Stage {
    /// EASE's λ: one value is used as is; several are tried on the validation users.
    public struct EASESettings: Codable, Sendable, Equatable {
        public var lambdas: [Float] = EASE.defaultLambdas
        public init() {}
    }

    /// EDLAE's λ and dropout probability p: every combination is tried.
    public struct EDLAESettings: Codable, Sendable, Equatable {
        public var lambdas: [Float] = EASE.defaultEDLAELambdas
        public var dropouts: [Float] = EASE.defaultDropouts
        public init() {}
    }

    /// ItemKNN's neighbours per item and shrinkage: every combination is tried.
    public struct ItemKNNSettings: Codable, Sendable, Equatable {
        public var neighbours: [Int] = ItemKNN.defaultNeighbours
        public var shrinks: [Float] = ItemKNN.defaultShrinks
        public init() {}
    }

    /// iALS's factors, regularization and confidence α: every combination is tried.
    public struct IALSSettings: Codable, Sendable, Equatable {
        public var factors: [Int] = IALS.defaultFactors
        public var regularizations: [Float] = IALS.defaultRegularizations
        public var alphas: [Float] = IALS.defaultAlphas
        public var iterations = IALS.Config().iterations
        public var seed = IALS.Config().seed
        public init() {}
    }

    public struct Config: Codable, Sendable, Equatable {
        public var kind: ModelKind = .multvae
        /// Mult-VAE / Mult-DAE settings (its `kind` follows `kind`).
        public var model: MultVAE.Config = MultVAE.Config()
        public var ease = EASESettings()
        public var edlae = EDLAESettings()
        public var itemKNN = ItemKNNSettings()
        public var ials = IALSSettings()
        /// Start from the published model of the same kind (items matched by key; new items
        /// start from fresh weights).
        public var warmStart = false
        /// Publish the new model (retiring the previous one of its kind) or keep it a candidate.
        public var publish = true
        /// Quality gate: the new model is published only if its validation NDCG@100 is at
        /// least (1 − margin) × the live model's on the same validation users; otherwise it
        /// stays a candidate and the live model stays. nil: no gate.
        public var publishMargin: Double? = 0.02
        /// Multvae, multdae: add the current split's latest synthetic interactions (from
        /// `recpipe augment`) to the training users' data at this weight (real ones weigh 1).
        /// nil: real data only.
        public var augmentedWeight: Float?
        /// What is kept of older models of the kind once the new one is stored.
        public var retention = Retention.Policy()
        /// Baselines: keep the published model for the current split instead of training
        /// when the raw interactions grew by at most this share since the split it was
        /// trained on (`carryOver`). nil: always train.
        public var retrainThreshold: Double?
        public init() {}
    }

    public static let name = "train"
    public static let reads: [TableName] = [.cleanRuns, .users, .items, .interactions, .models, .modelItems, .modelWeights,
                                            .modelCarryovers, .augmentRuns, .augmentedInteractions] + Retention.modelReads
    public static let writes: [TableName] = [.models, .modelItems, .modelWeights, .trainingLog, .modelCarryovers]
    /// The split; with augmentation the CFGAN's synthetic interactions; the published model
    /// of its kind, which the gate compares with (unless it does not publish), a warm start
    /// starts from (with augmentation: the newest model trained so, a candidate, else the
    /// published one) and a retrain threshold keeps.
    public static func inputs(_ parameters: [String: String]) -> [DataSet] {
        let (kind, augmented) = (parameters["model"] ?? ModelKind.multvae.rawValue, parameters["augmented"] == "true")
        let publishes = parameters["no_publish"] != "true", warm = parameters["warm_start"] == "true"
        return [TableName.cleanRuns, .users, .items, .interactions].map { DataSet($0) }
            + (augmented ? [DataSet(.augmentRuns), DataSet(.augmentedInteractions)] + DataSet.models(ModelKind.cfgan.rawValue) : [])
            + (publishes || warm ? DataSet.models(kind) : [])
            + (warm && augmented ? DataSet.models(candidates(of: kind)) : [])
    }

    /// The models of its kind: the published ones, or only candidates with `no_publish`.
    public static func outputs(_ parameters: [String: String]) -> [DataSet] {
        let kind = parameters["model"] ?? ModelKind.multvae.rawValue
        return DataSet.models(parameters["no_publish"] == "true" ? candidates(of: kind) : kind)
    }

    /// The part of the model tables that holds a kind's candidates that are never published.
    static func candidates(of kind: String) -> String { kind + " candidates" }
    public let config: Config

    public init(config: Config) throws {
        try config.retention.validate()
        var config = config
        switch config.kind {
        case .multvae: config.model.kind = .vae
        case .multdae: config.model.kind = .dae
        case .cfgan:
            throw StageError.badOption("cfgan is the augment stage's model: run recpipe augment")
        case .ease, .edlae, .itemknn, .popularity:
            if config.warmStart { throw StageError.badOption("--warm-start applies to multvae, multdae and ials only") }
        case .ials:
            break
        }
        guard !config.ease.lambdas.isEmpty, config.ease.lambdas.allSatisfy({ $0 > 0 && $0.isFinite }) else {
            throw StageError.badOption("--lambda needs one or more positive values")
        }
        guard !config.edlae.lambdas.isEmpty, config.edlae.lambdas.allSatisfy({ $0 >= 0 && $0.isFinite }),
              !config.edlae.dropouts.isEmpty, config.edlae.dropouts.allSatisfy({ $0 >= 0 && $0 < 1 }),
              config.edlae.lambdas.allSatisfy({ $0 > 0 }) || config.edlae.dropouts.allSatisfy({ $0 > 0 }) else {
            throw StageError.badOption("edlae: --lambda values not negative, --edlae-dropout values in [0, 1), and not both 0")
        }
        guard !config.itemKNN.neighbours.isEmpty, config.itemKNN.neighbours.allSatisfy({ $0 > 0 }),
              !config.itemKNN.shrinks.isEmpty, config.itemKNN.shrinks.allSatisfy({ $0 >= 0 && $0.isFinite }) else {
            throw StageError.badOption("--neighbours needs positive values and --shrink values not negative")
        }
        let a = config.ials
        guard !a.factors.isEmpty, a.factors.allSatisfy({ $0 > 0 }), !a.regularizations.isEmpty,
              a.regularizations.allSatisfy({ $0 >= 0 && $0.isFinite }), !a.alphas.isEmpty,
              a.alphas.allSatisfy({ $0 >= 0 && $0.isFinite }), a.iterations > 0 else {
            throw StageError.badOption("--factors and --iterations need positive values, --regularization and --alpha values not negative")
        }
        let m = config.model
        guard m.hidden > 0, m.latent > 0, m.batchSize > 0, m.epochs > 0 else {
            throw StageError.badOption("--hidden, --latent, --batch-size and --epochs must be positive")
        }
        guard m.dropout >= 0 && m.dropout < 1 else { throw StageError.badOption("--dropout must be in [0, 1)") }
        if let threshold = config.retrainThreshold {
            guard config.kind.isBaseline else {
                throw StageError.badOption("--retrain-threshold applies to the baselines (popularity, ease, edlae, itemknn, ials); \(config.kind.rawValue) trains from the published model with --warm-start")
            }
            guard (0...1).contains(threshold) else {
                throw StageError.badOption("--retrain-threshold must be a share between 0 and 1 (0.05: retrain after 5% more raw interactions), got \(threshold)")
            }
            guard config.publish else {
                throw StageError.badOption("--retrain-threshold keeps the published model for the split; a --no-publish candidate is always trained")
            }
        }
        if let margin = config.publishMargin, !(0...1).contains(margin) {
            throw StageError.badOption("--publish-margin must be between 0 and 1")
        }
        guard m.learningRate > 0, m.learningRate.isFinite, m.betaCap >= 0 else {
            throw StageError.badOption("--learning-rate must be positive and --beta-cap not negative")
        }
        if let steps = m.annealSteps, steps < 1 { throw StageError.badOption("--anneal-steps must be positive") }
        if let weight = config.augmentedWeight {
            guard config.kind == .multvae || config.kind == .multdae else {
                throw StageError.badOption("--augmented applies to multvae and multdae only")
            }
            guard weight > 0, weight.isFinite else { throw StageError.badOption("--augmented-weight must be positive") }
        }
        self.config = config
    }

    public func run(_ context: StageContext) throws -> StageReport {
        let started = Clock.monotonic()
        if let threshold = config.retrainThreshold, let kept = try carryOver(threshold: threshold, context: context) { return kept }
        let data = try TrainingData.load(context.store)
        guard data.train.rows > 0 else { throw StageError.missingInput("the split has no training interactions") }
        if config.kind.isBaseline { return try runBaseline(context, data: data, started: started) }
        // The live model serves both the warm start and the quality gate: load it once.
        let gated = config.publish && config.publishMargin != nil && data.validation.foldIn.rows > 0
        let live = config.warmStart || gated
            ? try context.store.queue.read { try ModelStore.publishedVAE(kind: config.model.kind, in: $0) } : nil
        var modelConfig = config.model
        var train = data.train
        if let weight = config.augmentedWeight {
            let (rows, runID) = try context.store.queue.read { try Self.augmentation(data, in: $0) }
            train = Augmentation.merged(data.train, rows, weight: weight)
            modelConfig.augmentation = MultVAE.AugmentationSource(runID: runID, rows: rows.count, weight: weight)
            context.logger.info("augmented training data", metadata: [
                "augment_run": "\(runID)", "rows": "\(rows.count)", "weight": "\(weight)",
            ])
        }
        var initial: MultVAE?
        var warmFrom: Int64?
        if config.warmStart {
            // A model trained with augmentation continues from the latest such model: the
            // with/without comparison stays a comparison of two lines of models.
            let source = config.augmentedWeight == nil ? live
                : try context.store.queue.read { try Self.latestAugmentedVAE(kind: config.model.kind, in: $0) } ?? live
            (initial, warmFrom) = try warmStartModel(from: source, data, context: context)
        }
        context.logger.info("training started", metadata: [
            "model": "\(config.kind.rawValue)", "users": "\(data.train.rows)", "items": "\(data.itemKeys.count)",
            "interactions": "\(data.train.nonZeros)", "validation_users": "\(data.validation.foldIn.rows)",
            "blas_threads": "\(BLAS.threads)",
        ])
        let result: FitResult
        do {
            result = try MultVAE.fit(train: train, validation: data.validation.foldIn.rows > 0 ? data.validation : nil,
                                     config: modelConfig, initial: initial) { epoch in
                var metadata: Logger.Metadata = [
                    "epoch": "\(epoch.epoch)", "loss": "\(String(format: "%.4f", epoch.loss))",
                    "seconds": "\(String(format: "%.2f", epoch.seconds))",
                ]
                if config.model.kind == .vae { metadata["beta"] = "\(String(format: "%.4f", epoch.beta))" }
                if let ndcg = epoch.validationNDCG { metadata["ndcg100"] = "\(String(format: "%.4f", ndcg))" }
                context.logger.info("epoch finished", metadata: metadata)
                context.events.send(.epoch(epoch.epoch))
            }
        } catch let error as ModelError {
            throw StageError.trainingFailed("train: \(error.localizedDescription); no model stored")
        }
        let seconds = Clock.monotonic() - started
        let (publish, gate) = qualityGate(ndcg: result.bestNDCG, live: live.map { ($0.0 as Recommender, $0.1) }, data)
        let modelID = try context.store.queue.write { db in
            try ModelStore.save(result, data: data, runID: context.runID, seconds: seconds, warmStartFrom: warmFrom,
                                publish: publish, in: db)
        }
        var summary = ["model \(modelID) (\(config.kind.rawValue)): \(result.log.count) epochs, best epoch \(result.bestEpoch)"]
        if let ndcg = result.bestNDCG { summary.append("validation NDCG@100 \(String(format: "%.4f", ndcg))") }
        return try finish(summary, modelID: modelID, publish: publish, gate: gate, context: context,
                      rowsIn: data.train.nonZeros, rowsOut: result.model.parameters.count)
    }

    /// The newest VAE/DAE of a kind trained with augmented data, loaded; nil when none.
    static func latestAugmentedVAE(kind: MultVAE.Kind, in db: Database) throws -> (MultVAE, ModelStore.Record)? {
        try Models.latestAugmented(kind: (kind == .vae ? ModelKind.multvae : .multdae).rawValue, in: db)
            .map { try ModelStore.loadVAE($0, in: db) }
    }

    /// The synthetic interactions of the current split's latest augment run, as rows of the
    /// training matrix, and that run's id.
    static func augmentation(_ data: TrainingData, in db: Database) throws -> ([Augmentation.Row], Int64) {
        guard let runID = try Augmentations.latestRun(cleanRun: data.cleanRunID, in: db) else {
            throw StageError.missingInput("--augmented: no augment run on the current split; run recpipe augment first")
        }
        let rowOf = Dictionary(uniqueKeysWithValues: data.trainUsers.enumerated().map { ($1, $0) })
        var rows: [Augmentation.Row] = []
        try Augmentations.forEachInteraction(run: runID, in: db) { user, item, score in
            // Only training users' rows, never on a real interaction (the stage writes none such).
            guard let r = rowOf[user], item >= 0, Int(item) < data.train.cols,
                  !data.train.columns[data.train.rowStart[r]..<data.train.rowStart[r + 1]].contains(item) else {
                throw StageError.badData("augment run \(runID): user_idx \(user), item_idx \(item) is not a new interaction of a training user; rerun recpipe augment")
            }
            rows.append(Augmentation.Row(row: r, item: item, score: score))
        }
        return (rows, runID)
    }

    /// Fits a baseline, choosing its hyperparameters on the validation users, and stores it.
    func runBaseline(_ context: StageContext, data: TrainingData, started: Double) throws -> StageReport {
        let validation = data.validation.foldIn.rows > 0 ? data.validation : nil
        context.logger.info("training started", metadata: [
            "model": "\(config.kind.rawValue)", "users": "\(data.train.rows)", "items": "\(data.itemKeys.count)",
            "interactions": "\(data.train.nonZeros)", "validation_users": "\(data.validation.foldIn.rows)",
        ])
        var outcome = ModelStore.Outcome()
        func tried(_ settings: String, _ ndcg: Double) {
            outcome.selection.append((settings, ndcg))
            context.logger.info("setting tried", metadata: [
                "model": "\(config.kind.rawValue)", "settings": "\(settings)", "validation_ndcg100": "\(String(format: "%.4f", ndcg))",
            ])
        }
        func json<T: Encodable>(_ value: T) -> String {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            return (try? encoder.encode(value)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
        }
        let model: any StorableModel
        let ndcg: Double?
        var warmFrom: Int64?
        switch config.kind {
        case .popularity:
            (model, ndcg) = (Popularity(train: data.train), validation.map { Evaluation.meanNDCG(Popularity(train: data.train), $0, k: 100) })
        case .ease:
            // Memory: I² floats each for the Gram matrix, the matrix being inverted and a kept
            // model. Each λ of a grid is fitted from a copy of the Gram matrix, scored and
            // dropped; the chosen λ is then fitted once more from the Gram matrix itself. So
            // at most two such matrices are held (3.2 GB at 20,000 items), one with one λ.
            var gram: [Float]? = gramMatrix(data, context)
            let items = data.itemKeys.count
            do {
                let chosen = try Tuning.bestParameters(config.ease.lambdas, validation: config.ease.lambdas.count > 1 ? validation : nil,
                                                       fit: { try EASE.fit(gram: gram!, items: items, lambda: $0) },
                                                       trial: { tried(json(EASE.Hyperparameters(lambda: $0)), $1) })
                let ease = try EASE.fit(gram: gram.take()!, items: items, lambda: chosen?.parameters ?? config.ease.lambdas[0])
                (model, ndcg) = (ease, chosen?.ndcg ?? validation.map { Evaluation.meanNDCG(ease, $0, k: 100) })
            } catch let error as EASE.Failure {
                throw StageError.trainingFailed("train: \(error.localizedDescription); raise --lambda")
            }
        case .edlae:
            // EASE's memory plan: the Gram matrix, one fit of the grid at a time, then the
            // chosen setting fitted from the Gram matrix itself.
            var gram: [Float]? = gramMatrix(data, context)
            let items = data.itemKeys.count
            let grid = config.edlae.lambdas.flatMap { l in config.edlae.dropouts.map { EASE.Hyperparameters(lambda: l, dropout: $0) } }
            do {
                let chosen = try Tuning.bestParameters(grid, validation: grid.count > 1 ? validation : nil,
                                                       fit: { try EASE.fit(gram: gram!, items: items, lambda: $0.lambda, dropout: $0.dropout) },
                                                       trial: { tried(json($0), $1) })
                let setting = chosen?.parameters ?? grid[0]
                let edlae = try EASE.fit(gram: gram.take()!, items: items, lambda: setting.lambda, dropout: setting.dropout)
                (model, ndcg) = (edlae, chosen?.ndcg ?? validation.map { Evaluation.meanNDCG(edlae, $0, k: 100) })
            } catch let error as EASE.Failure {
                throw StageError.trainingFailed("train: EDLAE: \(error.localizedDescription); raise --lambda")
            }
        case .itemknn:
            let s = config.itemKNN
            let cooccurrence = gramMatrix(data, context)
            let grid = s.neighbours.flatMap { k in s.shrinks.map { ItemKNN.Hyperparameters(neighbours: k, shrink: $0) } }
            let best = Tuning.best(grid, validation: grid.count > 1 ? validation : nil, fit: {
                ItemKNN.fit(cooccurrence: cooccurrence, items: data.itemKeys.count, neighbours: $0.neighbours, shrink: $0.shrink)
            }, trial: { tried(json($0), $1) })
            (model, ndcg) = (best.model, best.ndcg ?? validation.map { Evaluation.meanNDCG(best.model, $0, k: 100) })
        case .ials:
            var base = IALS.Config()
            base.iterations = config.ials.iterations
            base.seed = config.ials.seed
            let grid = IALS.grid(base: base, factors: config.ials.factors, regularizations: config.ials.regularizations,
                                 alphas: config.ials.alphas)
            // A warm start: the published iALS's item factors, by item key, for every setting
            // of the grid with its number of factors (the others start afresh).
            var initial: (items: [[Float]?], factors: Int)?
            if config.warmStart {
                if let (previous, record) = try context.store.queue.read({ try ModelStore.loadPublished(kind: .ials, in: $0) }),
                   let ials = previous as? IALS {
                    let f = ials.config.factors
                    let mapping = record.warmStartMapping(to: data.itemKeys, context: context)
                    initial = (mapping.map { $0.map { Array(ials.itemFactors[($0 * f)..<(($0 + 1) * f)]) } }, f)
                    warmFrom = record.modelID
                } else {
                    context.logger.warning("no model to warm-start from; training from scratch", metadata: ["model": "ials"])
                }
            }
            let best = Tuning.best(grid, validation: grid.count > 1 ? validation : nil, fit: { setting in
                IALS.fit(train: data.train, config: setting, initialItems: initial?.factors == setting.factors ? initial?.items : nil)
            }, trial: { tried(json($0), $1) })
            (model, ndcg) = (best.model, best.ndcg ?? validation.map { Evaluation.meanNDCG(best.model, $0, k: 100) })
            if let initial, best.model.config.factors != initial.factors { warmFrom = nil }
        case .multvae, .multdae, .cfgan:
            preconditionFailure("not a baseline")
        }
        if let ndcg { outcome.validationMetrics["ndcg@100"] = ndcg }
        let gated = config.publish && config.publishMargin != nil && validation != nil
        let live = gated ? try context.store.queue.read { try ModelStore.loadPublished(kind: config.kind, in: $0) } : nil
        let (publish, gate) = qualityGate(ndcg: ndcg, live: live.map { ($0.0 as Recommender, $0.1) }, data)
        let seconds = Clock.monotonic() - started
        let modelID = try context.store.queue.write { db in
            try ModelStore.save(model, outcome: outcome, data: data, runID: context.runID, seconds: seconds,
                                warmStartFrom: warmFrom, publish: publish, in: db)
        }
        var summary = ["model \(modelID) (\(config.kind.rawValue)): \(try model.hyperparametersJSON())"
                       + (outcome.selection.count > 1 ? ", chosen from \(outcome.selection.count) settings on the validation users" : "")]
        if let ndcg { summary.append("validation NDCG@100 \(String(format: "%.4f", ndcg))") }
        return try finish(summary, modelID: modelID, publish: publish, gate: gate, context: context,
                      rowsIn: data.train.nonZeros, rowsOut: model.tensorInfos.reduce(0) { $0 + $1.count })
    }

    /// XᵀX of the training matrix, its time logged (the rest of a fit is the solve).
    func gramMatrix(_ data: TrainingData, _ context: StageContext) -> [Float] {
        let started = Clock.monotonic()
        let gram = EASE.gram(data.train)
        context.logger.debug("gram matrix computed", metadata: [
            "items": "\(data.itemKeys.count)", "seconds": "\(String(format: "%.2f", Clock.monotonic() - started))",
        ])
        return gram
    }

    /// Whether a model with validation NDCG@100 `ndcg` may go live against the live model of
    /// its kind, and the line that says why.
    func qualityGate(ndcg: Double?, live: (Recommender, ModelStore.Record)?, _ data: TrainingData) -> (Bool, String?) {
        guard config.publish else { return (false, nil) }
        guard let margin = config.publishMargin, let ndcg, let (liveID, liveNDCG) = liveModelNDCG(live, data) else {
            return (true, nil)
        }
        let floor = (1 - margin) * liveNDCG
        if ndcg < floor {
            return (false, String(format: "not published: validation NDCG@100 %.4f is below %.4f, (1 − %g) × the live model %lld's %.4f on the same users; model %lld stays live",
                                  ndcg, floor, margin, liveID, liveNDCG, liveID))
        }
        return (true, String(format: "quality gate passed: validation NDCG@100 %.4f against the live model %lld's %.4f",
                             ndcg, liveID, liveNDCG))
    }

    func finish(_ summary: [String], modelID: Int64, publish: Bool, gate: String?, context: StageContext,
                rowsIn: Int, rowsOut: Int) throws -> StageReport {
        var summary = summary
        if let gate {
            summary.append(gate)
            if !publish { context.logger.warning("model not published", metadata: ["model": "\(modelID)", "reason": "\(gate)"]) }
        }
        summary.append(publish ? "published" : "kept as a candidate")
        // Whether or not it was published, a stored model is one more of its kind: a gate
        // that holds back every night must not make the file grow either.
        let pruned = try Retention.prune(config.retention, scope: .models(of: config.kind, sparing: context.runID), store: context.store,
                                         logger: context.logger)
        if !pruned.models.isEmpty {
            summary.append("pruned \(pruned.models.count) older \(config.kind.rawValue) model(s), "
                           + Retention.megabytes(pruned.models.reduce(0) { $0 + $1.bytes }))
        }
        return StageReport(rowsIn: rowsIn, rowsOut: rowsOut, summary: summary)
    }

    /// The live model's id and its NDCG@100 on the current validation users, its items
    /// matched to the current ones by key; nil when there is none.
    func liveModelNDCG(_ live: (Recommender, ModelStore.Record)?, _ data: TrainingData) -> (Int64, Double)? {
        guard data.validation.foldIn.rows > 0, let (model, record) = live else { return nil }
        let remapped = Remapped(model, mapping: record.positions(of: data.itemKeys))
        return (record.modelID, Evaluation.meanNDCG(remapped, data.validation, k: 100))
    }

    /// A new model starting from the live one's weights, items re-indexed by key.
    func warmStartModel(from live: (MultVAE, ModelStore.Record)?, _ data: TrainingData,
                        context: StageContext) throws -> (MultVAE?, Int64?) {
        guard let (previous, record) = live else {
            context.logger.warning("no model to warm-start from; training from scratch",
                                   metadata: ["model": "\(config.kind.rawValue)"])
            return (nil, nil)
        }
        let previousID = record.modelID
        guard previous.config.hidden == config.model.hidden, previous.config.latent == config.model.latent else {
            throw StageError.badOption("--warm-start: model \(previousID) has hidden \(previous.config.hidden), latent \(previous.config.latent); the options ask for \(config.model.hidden), \(config.model.latent)")
        }
        var rng = SeededRandom(seed: config.model.seed)
        var model = MultVAE(items: data.itemKeys.count, config: config.model)
        model.initialize(rng: &rng)
        model.copyWeights(from: previous, itemMapping: record.warmStartMapping(to: data.itemKeys, context: context))
        return (model, previousID)
    }

    /// `--retrain-threshold`: keeps the published model of the kind for the current split,
    /// recorded in `model_carryovers`, when the raw interactions grew by at most `threshold`
    /// of those of the split it was trained on, the clean settings are the same, the split
    /// is strong or temporal (a newer split's held-out targets were then never training
    /// data) and its settings are among those asked for. Returns nil, with the reason
    /// logged, when the model is to be trained.
    func carryOver(threshold: Double, context: StageContext) throws -> StageReport? {
        enum Verdict { case keep(Int64, base: Split.Run, current: Split.Run), train(String) }
        let kind = config.kind.rawValue
        let verdict = try context.store.queue.read { db -> Verdict in
            guard let current = try Split.latestRun(in: db) else { return .train("no clean run yet") }
            guard let modelID = try Models.published(kind: kind, in: db), let stored = try Models.stored(modelID, in: db) else {
                return .train("no published \(kind) model")
            }
            guard stored.prunedAt == nil, let cleanRun = stored.cleanRunID, let base = try Split.run(cleanRun, in: db) else {
                return .train("model \(modelID)'s split or weights are gone")
            }
            guard current.split != "predefined" && base.split != "predefined" else {
                return .train("a predefined split has no measure of how much it changed")
            }
            guard base.parameters == current.parameters else { return .train("the clean settings changed since model \(modelID)'s split") }
            guard asks(forSettings: stored.hyperparameters) else {
                return .train("model \(modelID)'s settings are not among those asked for")
            }
            guard current.rawRows >= base.rawRows else { return .train("there are fewer raw interactions than when model \(modelID) was trained") }
            let grown = Double(current.rawRows - base.rawRows) / Double(max(1, base.rawRows))
            guard grown <= threshold else {
                return .train(String(format: "the raw interactions grew by %.2f%% since model %lld's split, more than the threshold %g%%",
                                     100 * grown, modelID, 100 * threshold))
            }
            return .keep(modelID, base: base, current: current)
        }
        switch verdict {
        case .train(let reason):
            context.logger.info("retraining", metadata: ["model": "\(kind)", "reason": "\(reason)"])
            return nil
        case .keep(let modelID, let base, let current) where base.runID == current.runID:
            let line = "model \(modelID) (\(kind)) was trained on the current split (clean run \(current.runID)): kept"
            context.logger.info("model kept", metadata: ["model": "\(modelID)", "kind": "\(kind)", "clean_run": "\(current.runID)"])
            return StageReport(rowsIn: 0, rowsOut: 0, summary: [line])
        case .keep(let modelID, let base, let current):
            let added = current.rawRows - base.rawRows
            try context.store.queue.write { db in
                try Models.carryOver(Models.Carryover(modelID: modelID, cleanRunID: current.runID, run: context.runID,
                                                      baseRawRows: base.rawRows, newRawRows: added, threshold: threshold), in: db)
            }
            let share = String(format: "%.2f%% of %d, within the threshold %g%%", 100 * Double(added) / Double(max(1, base.rawRows)),
                               base.rawRows, 100 * threshold)
            let line = "model \(modelID) (\(kind)) kept for the split of clean run \(current.runID): \(added) new raw interactions since its own split (clean run \(base.runID)), \(share)"
            context.logger.info("model kept", metadata: [
                "model": "\(modelID)", "kind": "\(kind)", "clean_run": "\(current.runID)", "new_raw_rows": "\(added)",
                "base_raw_rows": "\(base.rawRows)",
            ])
            return StageReport(rowsIn: 0, rowsOut: 0, summary: [line])
        }
    }

    /// Whether a stored model's hyperparameters (`models.hyperparameters`) are a setting this
    /// configuration would try: its λ, neighbours and shrinkage, or factors, regularization
    /// and α among the grid's (iALS's iterations and seed say how it was fitted, not what it is).
    func asks(forSettings json: String) -> Bool {
        let data = Data(json.utf8), decoder = JSONDecoder()
        switch config.kind {
        case .popularity:
            return true
        case .ease, .edlae:
            guard let h = try? decoder.decode(EASE.Hyperparameters.self, from: data) else { return false }
            if config.kind == .ease { return h.dropout == nil && config.ease.lambdas.contains(h.lambda) }
            return h.dropout.map(config.edlae.dropouts.contains) == true && config.edlae.lambdas.contains(h.lambda)
        case .itemknn:
            guard let h = try? decoder.decode(ItemKNN.Hyperparameters.self, from: data) else { return false }
            return config.itemKNN.neighbours.contains(h.neighbours) && config.itemKNN.shrinks.contains(h.shrink)
        case .ials:
            guard let h = try? decoder.decode(IALS.Config.self, from: data) else { return false }
            return config.ials.factors.contains(h.factors) && config.ials.regularizations.contains(h.regularization)
                && config.ials.alphas.contains(h.alpha)
        case .multvae, .multdae, .cfgan:
            return false
        }
    }
}
