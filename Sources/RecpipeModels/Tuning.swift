import RecpipeNumerics

/// Hyperparameter selection on validation users.
public enum Tuning {
    /// Fits a model for each candidate setting in order and keeps the one with the best
    /// mean NDCG@100 on `validation` (the earlier one on ties). Without validation users
    /// only the first candidate is fitted, and its NDCG is nil. `trial` hears every
    /// candidate's figure as it is measured.
    public static func best<P, M: Recommender>(
        _ candidates: [P], validation: ValidationSet?, fit: (P) throws -> M,
        trial: (P, Double) -> Void = { _, _ in }
    ) rethrows -> (model: M, parameters: P, ndcg: Double?) {
        guard let chosen = try search(candidates, validation: validation, fit: fit, trial: trial, keep: true) else {
            return (try fit(candidates[0]), candidates[0], nil)
        }
        return (chosen.model!, chosen.parameters, chosen.ndcg)
    }

    /// The same choice as `best` without keeping any model: each candidate is fitted, scored
    /// and dropped, for models too large to hold two of; the caller fits the chosen setting
    /// again. nil without validation users (then the first candidate is the one).
    public static func bestParameters<P, M: Recommender>(
        _ candidates: [P], validation: ValidationSet?, fit: (P) throws -> M,
        trial: (P, Double) -> Void = { _, _ in }
    ) rethrows -> (parameters: P, ndcg: Double)? {
        try search(candidates, validation: validation, fit: fit, trial: trial, keep: false).map { ($0.parameters, $0.ndcg) }
    }

    private static func search<P, M: Recommender>(
        _ candidates: [P], validation: ValidationSet?, fit: (P) throws -> M, trial: (P, Double) -> Void, keep: Bool
    ) rethrows -> (model: M?, parameters: P, ndcg: Double)? {
        precondition(!candidates.isEmpty, "no candidate settings")
        guard let validation, validation.targets.contains(where: { !$0.isEmpty }) else { return nil }
        var best: (model: M?, parameters: P, ndcg: Double)?
        for parameters in candidates {
            let model = try fit(parameters)
            let ndcg = Evaluation.meanNDCG(model, validation, k: 100)
            trial(parameters, ndcg)
            if best == nil || ndcg > best!.ndcg { best = (keep ? model : nil, parameters, ndcg) }
        }
        return best
    }
}
