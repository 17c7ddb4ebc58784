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
        precondition(!candidates.isEmpty, "no candidate settings")
        guard let validation, validation.targets.contains(where: { !$0.isEmpty }) else {
            return (try fit(candidates[0]), candidates[0], nil)
        }
        var best: (model: M, parameters: P, ndcg: Double)?
        for parameters in candidates {
            let model = try fit(parameters)
            let ndcg = Evaluation.meanNDCG(model, validation, k: 100)
            trial(parameters, ndcg)
            if best == nil || ndcg > best!.ndcg { best = (model, parameters, ndcg) }
        }
        return (best!.model, best!.parameters, best!.ndcg)
    }
}
