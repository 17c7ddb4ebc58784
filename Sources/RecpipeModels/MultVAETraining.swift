import Foundation
import RecpipeNumerics

/// Errors of model fitting.
public enum ModelError: Error, LocalizedError, Equatable {
    case diverged(epoch: Int, update: Int, loss: Double)
    case collapsed(epoch: Int, spread: Double)
    case noTrainingData
    case shapeMismatch(String)

    public var errorDescription: String? {
        switch self {
        case let .diverged(epoch, update, loss):
            return "training diverged at epoch \(epoch), update \(update): loss \(loss); lower --learning-rate"
        case let .collapsed(epoch, spread):
            return "the generator collapsed at epoch \(epoch): its output hardly depends on the user (spread \(spread) < \(CFGAN.collapseSpread)); lower the learning rates or raise the ZR coefficient"
        case .noTrainingData: return "no training users with interactions"
        case let .shapeMismatch(message): return message
        }
    }
}

/// Held-out users for choosing the epoch: fold-in items in, target items out.
public struct ValidationSet: Sendable {
    public var foldIn: CSRMatrix
    public var targets: [Set<Int32>]

    public init(foldIn: CSRMatrix, targets: [Set<Int32>]) {
        precondition(foldIn.rows == targets.count, "one target set per fold-in row")
        self.foldIn = foldIn
        self.targets = targets
    }
}

/// One epoch of training, as logged.
public struct EpochLog: Sendable, Equatable {
    public var epoch: Int
    /// Mean over the epoch's batches of the training loss (−log-likelihood + β·KL).
    public var loss: Double
    public var kl: Double
    /// β at the end of the epoch.
    public var beta: Double
    public var validationNDCG: Double?
    public var seconds: Double
}

public struct FitResult: Sendable {
    public var model: MultVAE
    /// The epoch whose weights were kept (best validation NDCG@100, or the last).
    public var bestEpoch: Int
    public var bestNDCG: Double?
    public var log: [EpochLog]
}

extension MultVAE {
    /// Trains on the rows of `train` (binary user × item), choosing the epoch by
    /// validation NDCG@100. Starts from `initial`'s weights when given (warm start).
    public static func fit(train: CSRMatrix, validation: ValidationSet?, config: Config, initial: MultVAE? = nil,
                           onEpoch: (EpochLog) -> Void = { _ in }) throws -> FitResult {
        let users = (0..<train.rows).filter { train.count(row: $0) > 0 }
        guard !users.isEmpty else { throw ModelError.noTrainingData }
        var rng = SeededRandom(seed: config.seed)
        var model: MultVAE
        if let initial {
            guard initial.items == train.cols, initial.parameters.count == MultVAE(items: train.cols, config: config).parameters.count
            else { throw ModelError.shapeMismatch("warm start: the model's shape does not match the data and configuration") }
            model = MultVAE(items: train.cols, config: config)
            model.parameters = initial.parameters
        } else {
            model = MultVAE(items: train.cols, config: config)
            model.initialize(rng: &rng)
        }
        var adam = Adam(parameters: model.parameters.count, learningRate: config.learningRate)
        var gradients = [Float](repeating: 0, count: model.parameters.count)
        var workspace = Workspace()
        let updatesPerEpoch = (users.count + config.batchSize - 1) / config.batchSize
        let annealSteps = config.annealSteps(updatesPerEpoch: updatesPerEpoch)
        var updates = 0
        var log: [EpochLog] = []
        var lossSum = 0.0, klSum = 0.0, batches = 0
        var beta: Float = 0
        let loop = EpochLoop<[Float]>(epochs: config.epochs, batchSize: config.batchSize, patience: config.patience)
        let (best, _) = try loop.run(users: users, rng: &rng, batch: { epoch, _, rows, rng in
            let batch = train.rows(rows)
            let input = normalizeAndDropout(batch, dropout: config.dropout, rng: &rng)
            beta = config.kind == .vae ? min(config.betaCap, Float(updates) / Float(annealSteps)) : 0
            model.forward(input, &workspace, training: true, rng: &rng)
            let (loss, kl) = model.backward(input, targets: batch, &workspace, beta: beta, gradients: &gradients)
            guard loss.isFinite else { throw ModelError.diverged(epoch: epoch, update: updates + 1, loss: loss) }
            adam.update(&model.parameters, &gradients)  // also zeroes the gradients
            updates += 1
            lossSum += loss; klSum += kl; batches += 1
        }, validate: {
            validation.map { model.meanNDCG($0, k: 100) }
        }, snapshot: { model.parameters }, endEpoch: { epoch, ndcg, seconds in
            let entry = EpochLog(epoch: epoch, loss: lossSum / Double(batches), kl: klSum / Double(batches),
                                 beta: Double(beta), validationNDCG: ndcg, seconds: seconds)
            log.append(entry)
            onEpoch(entry)
            lossSum = 0; klSum = 0; batches = 0
        })
        if let best { model.parameters = best.snapshot }
        return FitResult(model: model, bestEpoch: best?.epoch ?? log.count, bestNDCG: best?.ndcg, log: log)
    }

    /// Scores every item for each row of `foldIn` (logits; higher is better), in batches:
    /// `body(row, scores)` sees one user's scores, writable, valid during the call.
    public func scores(_ foldIn: CSRMatrix, batchSize: Int = 500, body: (Int, UnsafeMutableBufferPointer<Float>) -> Void) {
        scoresByRow(foldIn, batchSize: batchSize, body: body)
    }

    /// Scores a batch at a time: the output layer's logits of `count` rows from `first`.
    public func scoreBatches(_ foldIn: CSRMatrix, batchSize: Int, body: (Int, Int, UnsafeMutableBufferPointer<Float>) -> Void) {
        var workspace = Workspace()
        var rng = SeededRandom(seed: 0)
        for start in stride(from: 0, to: foldIn.rows, by: batchSize) {
            let rows = start..<min(start + batchSize, foldIn.rows)
            let input = normalizeAndDropout(foldIn.rows(Array(rows)[...]), dropout: 0, rng: &rng)
            forward(input, &workspace, training: false, rng: &rng)
            workspace.logits.withUnsafeMutableBufferPointer { logits in
                body(start, rows.count, UnsafeMutableBufferPointer(rebasing: logits[0..<(rows.count * items)]))
            }
        }
    }

    /// Mean NDCG@k over the validation users that have targets, fold-in items excluded.
    public func meanNDCG(_ validation: ValidationSet, k: Int) -> Double {
        Evaluation.meanNDCG(self, validation, k: k)
    }
}
