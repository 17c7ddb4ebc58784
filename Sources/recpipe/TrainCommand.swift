import ArgumentParser
import Foundation
import RecpipeModels
import RecpipeNumerics
import RecpipeStages
import RecpipeStore

extension MultVAE.Kind: ExpressibleByArgument {}
extension ModelKind: ExpressibleByArgument {
    /// `train --model` takes the kinds train can fit; cfgan is the augment stage's.
    public init?(argument: String) {
        guard let kind = ModelKind(rawValue: argument), kind != .cfgan else { return nil }
        self = kind
    }

    public static var allValueStrings: [String] { allCases.filter { $0 != .cfgan }.map(\.rawValue) }
}

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a model on the current split and store it in the database.",
        discussion: """
            multvae, multdae: trains on the training users, keeps the epoch with the best \
            validation NDCG@100 and stores the model, its weights and its training log \
            (models, model_items, model_weights, training_log). \
            ease, edlae, itemknn, ials, popularity: the baselines; where an option below lists \
            several values, every setting is fitted and the one with the best validation \
            NDCG@100 is stored (the settings tried go into the model's hyperparameters). \
            The new model is published (and the previous one of its kind retired) if it \
            passes the quality gate, unless --no-publish.
            """)

    @OptionGroup var options: DatabaseOptions

    @Option(help: "multvae, multdae, ease, edlae, itemknn, ials or popularity.")
    var model: ModelKind = .multvae
    @Option(help: "Most epochs to train.")
    var epochs = MultVAE.Config().epochs
    @Option(parsing: .upToNextOption, help: ArgumentHelp("""
        EASE, EDLAE: L2 regularization λ, one or more values (default: \(EASE.defaultLambdas.map { "\(Int($0))" }.joined(separator: " ")) \
        for EASE, \(EASE.defaultEDLAELambdas.map { "\(Int($0))" }.joined(separator: " ")) for EDLAE).
        """, valueName: "λ"))
    var lambda: [Float] = []
    @Option(name: .customLong("edlae-dropout"), parsing: .upToNextOption, help: ArgumentHelp(
        "EDLAE: dropout probability p, in [0, 1), one or more values (every λ is tried with every p).", valueName: "p"))
    var edlaeDropout: [Float] = EASE.defaultDropouts
    @Option(parsing: .upToNextOption, help: "ItemKNN: neighbours kept per item, one or more values.")
    var neighbours: [Int] = ItemKNN.defaultNeighbours
    @Option(parsing: .upToNextOption, help: "ItemKNN: shrinkage of the cosine similarity, one or more values.")
    var shrink: [Float] = ItemKNN.defaultShrinks
    @Option(parsing: .upToNextOption, help: "iALS: latent factors, one or more values.")
    var factors: [Int] = IALS.defaultFactors
    @Option(parsing: .upToNextOption, help: "iALS: L2 regularization, one or more values.")
    var regularization: [Float] = IALS.defaultRegularizations
    @Option(parsing: .upToNextOption, help: "iALS: confidence weight α of an observed pair (confidence 1 + α), one or more values.")
    var alpha: [Float] = IALS.defaultAlphas
    @Option(help: "iALS: alternating iterations.")
    var iterations = IALS.Config().iterations
    @Option(help: "Multvae, multdae: hidden width (default 600 for multvae, 200 for multdae).")
    var hidden: Int?
    @Option(help: "Latent width (multvae).")
    var latent = MultVAE.Config().latent
    @Option(name: .customLong("batch-size"), help: "Users per training batch.")
    var batchSize = MultVAE.Config().batchSize
    @Option(name: .customLong("learning-rate"), help: "Adam's learning rate.")
    var learningRate = MultVAE.Config().learningRate
    @Option(help: "Dropout on the input.")
    var dropout = MultVAE.Config().dropout
    @Option(name: .customLong("beta-cap"), help: "Largest KL weight β.")
    var betaCap = MultVAE.Config().betaCap
    @Option(name: .customLong("anneal-steps"), help: "Updates over which β grows by 1 (default: β reaches its cap after 80% of the planned updates).")
    var annealSteps: Int?
    @Option(help: "Stop after this many epochs without a better validation NDCG@100 ('none': never).")
    var patience = "30"
    @Option(help: "Seed of initialisation, shuffling, dropout and sampling (iALS: of its initial factors).")
    var seed = MultVAE.Config().seed
    @Flag(name: .customLong("warm-start"), help: "multvae, multdae, ials: start from the published model of the same kind (iALS: its item factors, by item key; with --augmented: the newest model trained with augmentation, else the published one).")
    var warmStart = false
    @Flag(name: .customLong("no-publish"), help: "Keep the new model as a candidate.")
    var noPublish = false
    @Option(name: .customLong("publish-margin"), help: "Quality gate: publish only if validation NDCG@100 ≥ (1 − margin) × the live model's on the same users.")
    var publishMargin = 0.02
    @Flag(name: .customLong("no-gate"), help: "Publish without comparing against the live model.")
    var noGate = false
    @Flag(help: "Multvae, multdae: add the current split's synthetic interactions (recpipe augment) to the training users' data.")
    var augmented = false
    @Option(name: .customLong("augmented-weight"), help: "With --augmented: the weight of a synthetic interaction (a real one weighs 1).")
    var augmentedWeight: Float = 0.5
    @Option(name: .customLong("keep-retired"), help: "Older models of the kind kept with their weights besides the published one (retired ones and candidates; older ones are pruned once the new model is stored).")
    var keepRetired = Retention.Policy().keepRetired
    @Option(name: .customLong("retrain-threshold"), help: ArgumentHelp("""
        Baselines: keep the published model for the current split when the raw interactions grew by at most this share \
        since the split it was trained on (0.05: retrain after 5% more); default: always train.
        """, valueName: "share"))
    var retrainThreshold: Double?
    @Option(help: "BLAS threads (default: all cores).")
    var threads: Int?

    func run() throws {
        let logger = options.logging.makeLogger()
        try runReporting(logger, database: options.db) {
            var config = TrainStage.Config()
            config.kind = model
            if !lambda.isEmpty {
                config.ease.lambdas = lambda
                config.edlae.lambdas = lambda
            }
            config.edlae.dropouts = edlaeDropout
            config.itemKNN.neighbours = neighbours
            config.itemKNN.shrinks = shrink
            config.ials.factors = factors
            config.ials.regularizations = regularization
            config.ials.alphas = alpha
            config.ials.iterations = iterations
            config.ials.seed = seed
            var m = MultVAE.Config(kind: model == .multdae ? .dae : .vae)
            if let hidden { m.hidden = hidden }
            m.epochs = epochs
            m.latent = latent
            m.batchSize = batchSize
            m.learningRate = learningRate
            m.dropout = dropout
            m.betaCap = betaCap
            m.annealSteps = annealSteps
            m.seed = seed
            m.patience = try parsePatience(patience)
            config.model = m
            config.warmStart = warmStart
            config.retention.keepRetired = keepRetired
            config.publish = !noPublish
            config.publishMargin = noGate ? nil : publishMargin
            config.retrainThreshold = retrainThreshold
            config.augmentedWeight = augmented ? augmentedWeight : nil
            if let threads { BLAS.threads = max(1, threads) }
            try runStage(try TrainStage(config: config), options: options, logger: logger)
        }
    }
}
