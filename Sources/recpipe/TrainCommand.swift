import ArgumentParser
import Foundation
import RecpipeModels
import RecpipeNumerics
import RecpipeStages
import RecpipeStore

extension MultVAE.Kind: ExpressibleByArgument {}

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a Mult-VAE (or Mult-DAE) on the current split and store it in the database.",
        discussion: """
            Trains on the training users, keeps the epoch with the best validation NDCG@100 and \
            stores the model, its weights and its training log (models, model_items, \
            model_weights, training_log). The new model is published unless --no-publish.
            """)

    @OptionGroup var options: DatabaseOptions

    @Option(help: "multvae or multdae.")
    var model: MultVAE.Kind = .vae
    @Option(help: "Most epochs to train.")
    var epochs = MultVAE.Config().epochs
    @Option(help: "Hidden width (default 600 for multvae, 200 for multdae).")
    var hidden: Int?
    @Option(help: "Latent width (multvae).")
    var latent = MultVAE.Config().latent
    @Option(name: .customLong("batch-size"))
    var batchSize = MultVAE.Config().batchSize
    @Option(name: .customLong("learning-rate"))
    var learningRate = MultVAE.Config().learningRate
    @Option(help: "Dropout on the input.")
    var dropout = MultVAE.Config().dropout
    @Option(name: .customLong("beta-cap"), help: "Largest KL weight β.")
    var betaCap = MultVAE.Config().betaCap
    @Option(name: .customLong("anneal-steps"), help: "Updates over which β grows by 1 (default: β reaches its cap after 80% of the planned updates).")
    var annealSteps: Int?
    @Option(help: "Stop after this many epochs without a better validation NDCG@100 ('none': never).")
    var patience = "30"
    @Option(help: "Seed of initialisation, shuffling, dropout and sampling.")
    var seed = MultVAE.Config().seed
    @Flag(name: .customLong("warm-start"), help: "Start from the published model of the same kind.")
    var warmStart = false
    @Flag(name: .customLong("no-publish"), help: "Keep the new model as a candidate.")
    var noPublish = false
    @Option(name: .customLong("publish-margin"), help: "Quality gate: publish only if validation NDCG@100 ≥ (1 − margin) × the live model's on the same users.")
    var publishMargin = 0.02
    @Flag(name: .customLong("no-gate"), help: "Publish without comparing against the live model.")
    var noGate = false
    @Option(help: "BLAS threads (default: all cores).")
    var threads: Int?

    func run() throws {
        let logger = options.logging.makeLogger()
        try runReporting(logger) {
            var config = TrainStage.Config()
            var m = MultVAE.Config(kind: model)
            if let hidden { m.hidden = hidden }
            m.epochs = epochs
            m.latent = latent
            m.batchSize = batchSize
            m.learningRate = learningRate
            m.dropout = dropout
            m.betaCap = betaCap
            m.annealSteps = annealSteps
            m.seed = seed
            if patience == "none" {
                m.patience = nil
            } else if let value = Int(patience), value > 0 {
                m.patience = value
            } else {
                throw StageError.badOption("--patience must be a positive number or 'none', got '\(patience)'")
            }
            config.model = m
            config.warmStart = warmStart
            config.publish = !noPublish
            config.publishMargin = noGate ? nil : publishMargin
            if let threads { BLAS.threads = max(1, threads) }
            try runStage(try TrainStage(config: config), db: options.db, logger: logger)
        }
    }
}
