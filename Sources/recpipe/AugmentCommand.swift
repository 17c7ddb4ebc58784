import ArgumentParser
import Foundation
import RecpipeModels
import RecpipeNumerics
import RecpipeStages

struct Augment: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a CFGAN on the training users and write synthetic interactions for some of them.",
        discussion: """
            The generator (CFGAN, Chae et al. 2018, user-based, with zero-reconstruction and \
            partial masking) is trained on the current split's training users; its epoch is \
            chosen on probe users carved out of them (validation and test users are never \
            seen). Then each training user with fewer than --users-below interactions gets the \
            unobserved items the generator scores highest: ⌈--fraction × their count⌉ of them, \
            each scoring at least --min-score, and only long-tail items with --long-tail. They \
            go to augmented_interactions (never into the real tables); the model goes to \
            models, its curves to gan_training_log. recpipe train --augmented uses them. A \
            generator that diverges or collapses (the same output for every user) fails the \
            stage and nothing is stored.
            """)

    @OptionGroup var options: DatabaseOptions

    @Option(help: "Most epochs to train.")
    var epochs = CFGAN.Config().epochs
    @Option(name: .customLong("batch-size"), help: "Users per batch.")
    var batchSize = CFGAN.Config().batchSize
    @Option(name: .customLong("generator-hidden"), parsing: .upToNextOption, help: "Widths of the generator's hidden layers.")
    var generatorHidden = CFGAN.Config().generatorHidden
    @Option(name: .customLong("discriminator-hidden"), parsing: .upToNextOption, help: "Widths of the discriminator's hidden layers.")
    var discriminatorHidden = CFGAN.Config().discriminatorHidden
    @Option(name: .customLong("generator-learning-rate"), help: "The generator's Adam learning rate.")
    var generatorLearningRate = CFGAN.Config().generatorLearningRate
    @Option(name: .customLong("discriminator-learning-rate"), help: "The discriminator's Adam learning rate.")
    var discriminatorLearningRate = CFGAN.Config().discriminatorLearningRate
    @Option(name: .customLong("generator-l2"), help: "L2 penalty on the generator's weights.")
    var generatorL2 = CFGAN.Config().generatorL2
    @Option(name: .customLong("discriminator-l2"), help: "L2 penalty on the discriminator's weights.")
    var discriminatorL2 = CFGAN.Config().discriminatorL2
    @Option(name: .customLong("generator-steps"), help: "Generator updates per batch.")
    var generatorSteps = CFGAN.Config().generatorSteps
    @Option(name: .customLong("discriminator-steps"), help: "Discriminator updates per batch (before the generator's).")
    var discriminatorSteps = CFGAN.Config().discriminatorSteps
    @Option(name: .customLong("zr-ratio"), help: "Share of a user's unobserved items sampled for zero-reconstruction, each step.")
    var zrRatio = CFGAN.Config().zrRatio
    @Option(name: .customLong("pm-ratio"), help: "Share of a user's unobserved items sampled for partial masking, each step.")
    var pmRatio = CFGAN.Config().pmRatio
    @Option(name: .customLong("zr-coefficient"), help: "α, the weight of the zero-reconstruction term.")
    var zrCoefficient = CFGAN.Config().zrCoefficient
    @Flag(name: .customLong("non-saturating"), help: "Generator minimises −log D(fake) instead of the paper's log(1 − D(fake)).")
    var nonSaturating = false
    @Option(name: .customLong("evaluate-every"), help: "Probe NDCG@100 every this many epochs; the best epoch's generator is kept.")
    var evaluateEvery = CFGAN.Config().evaluateEvery
    @Option(help: "Stop after this many epochs without a better probe NDCG@100 ('none': never).")
    var patience = CFGAN.Config().patience.map(String.init) ?? "none"
    @Option(name: .customLong("probe-users"), help: "Training users with 20% of their items hidden, to choose the epoch (0: keep the last).")
    var probeUsers = AugmentStage.Config().probeUsers
    @Option(name: .customLong("users-below"), help: "Augment training users with fewer interactions than this.")
    var usersBelow = Augmentation.Selection().usersBelow
    @Option(help: "Synthetic interactions per selected user, as a fraction of their real count (rounded up).")
    var fraction = Augmentation.Selection().fraction
    @Option(name: .customLong("min-score"), help: "Only items the generator scores at least this high (its output is in (0, 1)).")
    var minScore = Augmentation.Selection().minScore
    @Flag(name: .customLong("long-tail"), help: "Only items outside the popular head (the items holding 80% of training interactions).")
    var longTail = false
    @Flag(name: .customLong("warm-start"), help: "Start from the published CFGAN's weights, items matched by key (none published: from scratch).")
    var warmStart = false
    @Option(help: "Seed of initialisation, shuffling and negative sampling.")
    var seed = CFGAN.Config().seed
    @Option(name: .customLong("keep-retired"), help: "Older models (generators) kept with their weights besides the published one (retired ones and candidates; older ones are pruned).")
    var keepRetired = Retention.Policy().keepRetired
    @Option(help: "BLAS threads (default: all cores).")
    var threads: Int?

    func run() throws {
        let logger = options.logging.makeLogger()
        try runReporting(logger, database: options.db) {
            var config = AugmentStage.Config()
            var g = CFGAN.Config()
            g.epochs = epochs
            g.batchSize = batchSize
            g.generatorHidden = generatorHidden
            g.discriminatorHidden = discriminatorHidden
            g.generatorLearningRate = generatorLearningRate
            g.discriminatorLearningRate = discriminatorLearningRate
            g.generatorL2 = generatorL2
            g.discriminatorL2 = discriminatorL2
            g.generatorSteps = generatorSteps
            g.discriminatorSteps = discriminatorSteps
            g.zrRatio = zrRatio
            g.pmRatio = pmRatio
            g.zrCoefficient = zrCoefficient
            g.saturatingLoss = !nonSaturating
            g.evaluateEvery = evaluateEvery
            g.patience = try parsePatience(patience)
            g.seed = seed
            config.gan = g
            config.probeUsers = probeUsers
            config.warmStart = warmStart
            config.retention.keepRetired = keepRetired
            config.selection.usersBelow = usersBelow
            config.selection.fraction = fraction
            config.selection.minScore = minScore
            config.selection.longTail = longTail
            if let threads { BLAS.threads = max(1, threads) }
            try runStage(try AugmentStage(config: config), options: options, logger: logger)
        }
    }
}

/// A --patience value: a positive number of epochs, or 'none'.
func parsePatience(_ value: String) throws -> Int? {
    if value == "none" { return nil }
    guard let epochs = Int(value), epochs > 0 else {
        throw StageError.badOption("--patience must be a positive number or 'none', got '\(value)'")
    }
    return epochs
}
