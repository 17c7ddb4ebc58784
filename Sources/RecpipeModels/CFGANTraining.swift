import Foundation
import RecpipeNumerics

/// One epoch of adversarial training, as logged.
public struct GANEpochLog: Sendable, Equatable {
    public var epoch: Int
    /// Means over the epoch's updates: G's adversarial term, D's loss (real + fake) and the
    /// zero-reconstruction term α·Σ_{ZR} ĝ².
    public var generatorLoss: Double
    public var discriminatorLoss: Double
    public var zrLoss: Double
    /// Mean over items of the standard deviation, across a fixed sample of training users,
    /// of the generator's output: near 0 when it gives every user the same vector.
    public var outputSpread: Double
    public var validationNDCG: Double?
    public var seconds: Double
}

public struct GANFitResult: Sendable {
    public var model: CFGAN
    /// The epoch whose generator was kept (best validation NDCG@100, or the last); 0 when a
    /// warm start's own generator beat every epoch.
    public var bestEpoch: Int
    public var bestNDCG: Double?
    public var log: [GANEpochLog]
}

extension CFGAN {
    /// Below this output spread the generator is taken to have collapsed.
    public static let collapseSpread = 1e-4

    /// Trains on the rows of `train` (user × item; any non-zero is an interaction),
    /// alternating D and G updates on each batch, and keeps the generator of the epoch with
    /// the best validation NDCG@100. Throws `ModelError.diverged` on a non-finite loss and
    /// `ModelError.collapsed` when the generator's output stops depending on the user.
    /// Starts from `initial`'s weights when given (a warm start; the optimiser's state starts
    /// afresh), whose own validation NDCG@100 is the one to beat.
    public static func fit(train: CSRMatrix, validation: ValidationSet?, config: Config, initial: CFGAN? = nil,
                           onEpoch: (GANEpochLog) -> Void = { _ in }) throws -> GANFitResult {
        let users = (0..<train.rows).filter { train.count(row: $0) > 0 }
        guard !users.isEmpty else { throw ModelError.noTrainingData }
        var binary = train
        for k in binary.values.indices { binary.values[k] = 1 }
        var rng = SeededRandom(seed: config.seed)
        var model = CFGAN(items: train.cols, config: config)
        model.initialize(rng: &rng)
        if let initial {
            guard initial.items == model.items, model.hasHiddenLayers(of: initial) else {
                throw ModelError.shapeMismatch("warm start: the model's shape does not match the data and configuration")
            }
            (model.generator, model.discriminator) = (initial.generator, initial.discriminator)
        }
        var adamG = Adam(parameters: model.generator.count, learningRate: config.generatorLearningRate)
        var adamD = Adam(parameters: model.discriminator.count, learningRate: config.discriminatorLearningRate)
        var gradG = [Float](repeating: 0, count: model.generator.count)
        var gradD = [Float](repeating: 0, count: model.discriminator.count)
        let workspace = Workspace()
        // A fixed sample of users for the collapse check.
        let probe = binary.rows(Array(users.prefix(256))[...])
        typealias Loop = EpochLoop<[Float]>
        var startingBest: Loop.Best?
        if initial != nil, let validation {
            // A warm start is the epoch to beat ("epoch 0"): a night whose epochs only make
            // the generator worse keeps the one it started from.
            startingBest = Loop.Best(ndcg: Evaluation.meanNDCG(model, validation, k: 100), epoch: 0, snapshot: model.generator)
        }
        var log: [GANEpochLog] = []
        var updates = 0
        var gSum = 0.0, dSum = 0.0, zrSum = 0.0, gCount = 0, dCount = 0
        var spread = 0.0
        let loop = Loop(epochs: config.epochs, batchSize: config.batchSize, evaluateEvery: config.evaluateEvery, patience: config.patience)
        let (best, run) = try loop.run(users: users, rng: &rng, startingBest: startingBest, batch: { epoch, batchIndex, batchUsers, _ in
            let condition = binary.rows(batchUsers)
            workspace.reserve(batch: condition.rows, g: model.g, d: model.d)
            model.sampleMasks(condition, users: batchUsers,
                              seed: config.seed &+ (UInt64(epoch) << 32) &+ UInt64(batchIndex), workspace)
            model.generate(condition, workspace)
            model.maskFake(workspace, rows: condition.rows)
            for _ in 0..<max(1, config.discriminatorSteps) {
                let loss = model.discriminatorStep(condition, workspace, gradients: &gradD)
                updates += 1
                guard loss.isFinite else { throw ModelError.diverged(epoch: epoch, update: updates, loss: loss) }
                adamD.update(&model.discriminator, &gradD)
                dSum += loss; dCount += 1
            }
            for step in 0..<max(1, config.generatorSteps) {
                if step > 0 {
                    model.generate(condition, workspace)
                    model.maskFake(workspace, rows: condition.rows)
                }
                let (adversarial, zr) = model.generatorStep(condition, workspace, gradients: &gradG)
                updates += 1
                guard adversarial.isFinite, zr.isFinite else {
                    throw ModelError.diverged(epoch: epoch, update: updates, loss: adversarial + zr)
                }
                adamG.update(&model.generator, &gradG)
                gSum += adversarial; zrSum += zr; gCount += 1
            }
        }, finishBatches: { epoch in
            spread = model.outputSpread(probe)
            guard spread.isFinite else { throw ModelError.diverged(epoch: epoch, update: updates, loss: spread) }
        }, validate: {
            validation.map { Evaluation.meanNDCG(model, $0, k: 100) }
        }, snapshot: { model.generator }, endEpoch: { epoch, ndcg, seconds in
            let entry = GANEpochLog(epoch: epoch, generatorLoss: gSum / Double(max(gCount, 1)),
                                    discriminatorLoss: dSum / Double(max(dCount, 1)), zrLoss: zrSum / Double(max(gCount, 1)),
                                    outputSpread: spread, validationNDCG: ndcg, seconds: seconds)
            log.append(entry)
            onEpoch(entry)
            gSum = 0; dSum = 0; zrSum = 0; gCount = 0; dCount = 0
            if spread < collapseSpread { throw ModelError.collapsed(epoch: epoch, spread: spread) }
        })
        if let best { model.generator = best.snapshot }
        return GANFitResult(model: model, bestEpoch: best?.epoch ?? run, bestNDCG: best?.ndcg, log: log)
    }

    /// Mean over items of the standard deviation of the generator's output across the rows
    /// of `condition`.
    public func outputSpread(_ condition: CSRMatrix) -> Double {
        guard condition.rows > 1 else { return .infinity }
        var sum = [Double](repeating: 0, count: items), squares = sum
        scoreBatches(condition, batchSize: 256) { _, count, scores in
            for r in 0..<count {
                for k in 0..<items {
                    let v = Double(scores[r * items + k])
                    sum[k] += v
                    squares[k] += v * v
                }
            }
        }
        let n = Double(condition.rows)
        var total = 0.0
        for k in 0..<items {
            let mean = sum[k] / n
            total += max(0, squares[k] / n - mean * mean).squareRoot()
        }
        return total / Double(items)
    }
}

extension CFGAN: Recommender {
    /// The generator's output for each row's items (in (0, 1); higher is better).
    public func scores(_ foldIn: CSRMatrix, batchSize: Int = 500, body: (Int, UnsafeMutableBufferPointer<Float>) -> Void) {
        scoresByRow(foldIn, batchSize: batchSize, body: body)
    }

    public func scoreBatches(_ foldIn: CSRMatrix, batchSize: Int, body: (Int, Int, UnsafeMutableBufferPointer<Float>) -> Void) {
        let workspace = Workspace()
        for start in stride(from: 0, to: foldIn.rows, by: batchSize) {
            var condition = foldIn.rows(Array(start..<min(start + batchSize, foldIn.rows))[...])
            for k in condition.values.indices { condition.values[k] = 1 }
            workspace.reserve(batch: condition.rows, g: g, d: d, training: false)
            generate(condition, workspace)
            let count = condition.rows
            body(start, count, UnsafeMutableBufferPointer(start: workspace.gActs[g.layers - 1].p, count: count * items))
        }
    }
}
