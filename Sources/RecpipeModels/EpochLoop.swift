import Foundation
import RecpipeNumerics

/// The training loop of the neural models (Mult-VAE, Mult-DAE, CFGAN): each epoch the users
/// in a new shuffled order, cut into batches; then the validation NDCG@100 (every
/// `evaluateEvery` epochs and at the last); the best epoch's snapshot kept; a stop after
/// `patience` epochs without a better one.
struct EpochLoop<Snapshot> {
    var epochs: Int
    var batchSize: Int
    var evaluateEvery = 1
    var patience: Int?

    struct Best {
        var ndcg: Double
        /// 0: the snapshot the loop started from (a warm start's own).
        var epoch: Int
        var snapshot: Snapshot
    }

    /// Runs the epochs. `batch(epoch, index, users, rng)` trains on one batch; `finishBatches`
    /// runs after an epoch's batches, before validation; `validate` gives the NDCG@100 to
    /// keep the best by (nil: no validation users); `snapshot` what to keep of the best;
    /// `endEpoch(epoch, ndcg, seconds)` logs it, and may throw to stop. Returns the best and
    /// the epochs run.
    func run(users: [Int], rng: inout SeededRandom, startingBest: Best? = nil,
             batch: (_ epoch: Int, _ index: Int, _ users: ArraySlice<Int>, _ rng: inout SeededRandom) throws -> Void,
             finishBatches: (_ epoch: Int) throws -> Void = { _ in },
             validate: () -> Double?,
             snapshot: () -> Snapshot,
             endEpoch: (_ epoch: Int, _ ndcg: Double?, _ seconds: Double) throws -> Void) throws -> (best: Best?, epochs: Int) {
        var order = users
        var best = startingBest
        var run = 0
        let last = max(1, epochs)
        for epoch in 1...last {
            let started = Date()
            rng.shuffle(&order)
            for (index, start) in stride(from: 0, to: order.count, by: batchSize).enumerated() {
                try batch(epoch, index, order[start..<min(start + batchSize, order.count)], &rng)
            }
            try finishBatches(epoch)
            var ndcg: Double?
            if epoch % max(1, evaluateEvery) == 0 || epoch == last, let value = validate() {
                ndcg = value
                if best == nil || value > best!.ndcg { best = Best(ndcg: value, epoch: epoch, snapshot: snapshot()) }
            }
            run = epoch
            try endEpoch(epoch, ndcg, Date().timeIntervalSince(started))
            if let patience, let best, epoch - best.epoch >= patience { break }
        }
        return (best, run)
    }
}
