import Foundation
import Logging
import RecpipeModels
import RecpipeNumerics
import RecpipeStore

/// Evaluates every kind of model trained on the current split on the same held-out users,
/// side by side, into `evaluation` (aggregates with standard errors) and `evaluation_users`
/// (per-user values), with the run's popular head in `evaluation_head_items`. Of each kind
/// it takes the published model when it was trained on the current split, else the newest
/// one that was; popularity is computed on the spot when no popularity model was trained.
public struct EvaluateStage: Stage {
    public enum Part: String, Codable, Sendable, CaseIterable { case validation, test }

    public struct Config: Codable, Sendable, Equatable {
        public var part: Part = .test
        /// How many evaluation runs keep their per-user rows.
        public var retention = Retention.Policy()
        /// The trade-off's operating point may lose at most this share of the base point's
        /// NDCG@100 on the validation users (`Tradeoff.choose`).
        public var maxNDCGLoss = Tradeoff.defaultMaxNDCGLoss
        public init() {}
    }

    /// The order of the side-by-side table: baselines first.
    static let order: [ModelKind] = [.popularity, .ease, .edlae, .itemknn, .ials, .multvae, .multdae, .cfgan]

    public static let name = "evaluate"
    public static let reads: [TableName] = [.cleanRuns, .users, .items, .interactions, .models, .modelItems, .modelWeights,
                                            .modelCarryovers]
    public static let writes: [TableName] = [.evaluationRuns, .evaluation, .evaluationUsers, .evaluationHeadItems, .tradeoffPoints]
    public let config: Config

    public init(config: Config) throws {
        try config.retention.validate()
        guard (0...1).contains(config.maxNDCGLoss) else {
            throw StageError.badOption("--max-ndcg-loss must be between 0 and 1, got \(config.maxNDCGLoss)")
        }
        self.config = config
    }

    /// The name under which a model trained with synthetic interactions is evaluated.
    public static let augmentedSuffix = "+augmented"

    public func run(_ context: StageContext) throws -> StageReport {
        let store = context.store
        let data = try TrainingData.load(store)
        let heldOut = config.part == .test ? data.test : data.validation
        let heldOutUsers = config.part == .test ? data.testUsers : data.validationUsers
        guard heldOut.foldIn.rows > 0 else {
            throw StageError.missingInput("the split has no \(config.part.rawValue) users with targets")
        }
        let popularity = Popularity(train: data.train)
        // (name, model_id): the models to evaluate, loaded one at a time below. The Mult-VAE
        // and Mult-DAE are taken twice where they can be: trained on real data only, and
        // with synthetic interactions ("multvae+augmented"), for the augmentation ablation.
        var chosen: [(name: String, id: Int64?)] = []
        var missing: [ModelKind] = []
        try store.queue.read { db in
            for kind in Self.order {
                let variants: [(String, Bool?)] = kind == .multvae || kind == .multdae
                    ? [(kind.rawValue, false), (kind.rawValue + Self.augmentedSuffix, true)] : [(kind.rawValue, nil)]
                var found = false
                for (name, augmented) in variants {
                    guard let id = try Evaluations.model(kind: kind.rawValue, dataFingerprint: data.fingerprint,
                                                         cleanRun: data.cleanRunID, augmented: augmented, in: db) else { continue }
                    chosen.append((name, id))
                    found = true
                }
                if let stale = try ModelStore.published(kind: kind, in: db), !found {
                    context.logger.warning("published model skipped: trained on another split; retrain it on the current split",
                                           metadata: ["model": "\(stale)", "kind": "\(kind.rawValue)"])
                }
                if !found && kind == .popularity {
                    chosen.append((kind.rawValue, nil))
                } else if !found && kind.isBaseline {
                    missing.append(kind)
                }
            }
        }
        if !missing.isEmpty {
            context.logger.warning("baselines missing: no model of these kinds was trained on the current split", metadata: [
                "kinds": "\(missing.map(\.rawValue).joined(separator: ","))",
                "hint": "recpipe train --model \(missing[0].rawValue)",
            ])
        }
        let isHead = Evaluation.head(counts: popularity.counts)
        let head = isHead.filter { $0 }.count
        var summary: [String] = []
        var results: [(name: String, id: Int64?, metrics: [Evaluation.Metric], users: [Int])] = []
        // The trade-off on both parts: every model's own lists and their re-rankings, and the
        // augmented Mult-VAEs at each weight of synthetic rows (loaded below).
        let reranking = Reranking(lever: .xquad, weight: 0, counts: popularity.counts)
        let parts = Part.allCases.map { ($0, $0 == .test ? data.test : data.validation) }.filter { $0.1.foldIn.rows > 0 }
        var curves: [(name: String, id: Int64?, part: Part, points: [Tradeoff.Point])] = []
        // An augmented model's lists on the evaluated part, kept for its trade-off point below.
        var augmentedCandidates: [Int64: Tradeoff.Candidates] = [:]
        for candidate in chosen {
            let recommender: Recommender = try candidate.id.map { id in
                try store.queue.read { try ModelStore.load(id, over: data.itemKeys, in: $0).0 }
            }
                ?? popularity
            let augmented = candidate.name.hasSuffix(Self.augmentedSuffix)
            // Augmented models are points of their own lever (their weights below): only the
            // evaluated part here.
            for (part, held) in parts where !augmented || part == config.part {
                let candidates = Tradeoff.candidates(recommender, on: held)
                if part == config.part {
                    let metrics = Evaluation.evaluate(lists: candidates.lists, users: candidates.users, on: heldOut,
                                                      trainCounts: popularity.counts, trainUsers: data.train.rows, isHead: isHead)
                    results.append((candidate.name, candidate.id, metrics, candidates.users))
                    context.logger.info("model evaluated", metadata: [
                        "model": "\(candidate.name)", "model_id": "\(candidate.id.map(String.init) ?? "none")",
                        "users": "\(candidates.users.count)",
                        "ndcg100": "\(String(format: "%.4f", metrics.first { $0.name == "ndcg" }?.value ?? 0))",
                    ])
                }
                if augmented {
                    if let id = candidate.id { augmentedCandidates[id] = candidates }
                    continue
                }
                curves.append((candidate.name, candidate.id, part, Tradeoff.curve(
                    candidates, on: held, reranking: reranking, trainCounts: popularity.counts, trainUsers: data.train.rows,
                    isHead: isHead)))
            }
        }
        let augmentedModels = try store.queue.read { db in
            try [ModelKind.multvae, .multdae].flatMap { kind in
                try Evaluations.augmentedModels(kind: kind.rawValue, dataFingerprint: data.fingerprint, in: db).map { (kind, $0.id, $0.weight) }
            }
        }
        for (kind, id, weight) in augmentedModels {
            let model = try store.queue.read { try ModelStore.load(id, over: data.itemKeys, in: $0).0 }
            for (part, held) in parts {
                let candidates = (part == config.part ? augmentedCandidates[id] : nil) ?? Tradeoff.candidates(model, on: held)
                curves.append((kind.rawValue + Self.augmentedSuffix, id, part, [Tradeoff.point(
                    .augmentation, weight, lists: candidates.lists, users: candidates.users, on: held,
                    trainCounts: popularity.counts, trainUsers: data.train.rows, isHead: isHead)]))
            }
        }
        let tradeoff = Self.tradeoffPoints(curves, maxNDCGLoss: config.maxNDCGLoss)
        let headItems = isHead.indices.filter { isHead[$0] }.map { (data.itemKeys[$0], Int(popularity.counts[$0])) }
        let figures = results.map { result in
            Evaluations.ModelFigures(
                model: result.name, modelID: result.id, userKeys: result.users.map { data.userKeys[heldOutUsers[$0]] },
                figures: result.metrics.map {
                    Evaluations.Figure(metric: $0.name, k: $0.k, value: $0.value, standardError: $0.standardError, perUser: $0.perUser)
                })
        }
        let rows = try store.queue.write { db in
            let rows = try Evaluations.record(run: context.runID, cleanRun: data.cleanRunID, part: config.part.rawValue,
                                              users: results.first?.users.count ?? 0, headItems: headItems, models: figures, in: db)
            try Tradeoffs.record(run: context.runID, points: tradeoff, in: db)
            return rows
        }
        // A side-by-side table: one row per model, value (± standard error) per metric.
        if let first = results.first {
            let names = first.metrics.map { "\($0.name)@\($0.k)" }
            summary.append("\(config.part.rawValue) users: \(first.users.count); head items: \(head) of \(data.itemKeys.count)")
            summary.append("model".padding(toLength: 18, withPad: " ", startingAt: 0)
                           + names.map { $0.leftPadded(to: 18) }.joined())
            for result in results {
                let cells = result.metrics.map { m in
                    (String(format: "%.4f", m.value) + (m.standardError.map { String(format: " ±%.3f", $0) } ?? "")).leftPadded(to: 18)
                }
                summary.append(result.name.padding(toLength: 18, withPad: " ", startingAt: 0) + cells.joined())
            }
            if !missing.isEmpty {
                summary.append("not evaluated (no model trained on this split): " + missing.map(\.rawValue).joined(separator: ", "))
            }
            for kind in [ModelKind.multvae, .multdae] {
                let plain = results.first(where: { $0.name == kind.rawValue })
                guard let plain, let augmented = results.first(where: { $0.name == kind.rawValue + Self.augmentedSuffix }) else {
                    // The ablation is reported every run: say why there is none.
                    if kind == .multvae || plain != nil {
                        let lacking = plain == nil ? "no \(kind.rawValue) trained on real data only"
                            : "no \(kind.rawValue) trained with --augmented"
                        summary.append("augmentation ablation (\(kind.rawValue)): not available, \(lacking) on this split")
                        context.logger.info("augmentation ablation not available", metadata: [
                            "model": "\(kind.rawValue)", "reason": "\(lacking) on this split"])
                    }
                    continue
                }
                let ablation = AugmentationAblation(without: plain.metrics, with: augmented.metrics)
                summary.append(contentsOf: ablation.lines(model: kind.rawValue))
                context.logger.info("augmentation ablation", metadata: [
                    "model": "\(kind.rawValue)",
                    "ndcg100_change": "\(String(format: "%+.4f", ablation.ndcg.relative))",
                    "aplt20_change": "\(String(format: "%+.4f", ablation.aplt.relative))",
                    "goal_met": "\(ablation.goalMet)",
                ])
            }
        }
        summary.append(contentsOf: Self.tradeoffLines(tradeoff, maxNDCGLoss: config.maxNDCGLoss))
        let pruned = try Retention.prune(config.retention, scope: .evaluations, store: store, logger: context.logger)
        if !pruned.evaluations.isEmpty {
            summary.append("pruned the per-user rows of \(pruned.evaluations.count) evaluation run(s) older than the newest \(config.retention.keepEvaluations)")
        }
        return StageReport(rowsIn: heldOut.foldIn.nonZeros, rowsOut: rows, summary: summary)
    }
}

extension String {
    func leftPadded(to width: Int) -> String { String(repeating: " ", count: max(0, width - count)) + self }
}
