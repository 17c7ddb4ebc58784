import Foundation
import GRDB
import GRDBSQLite
import Logging
import RecpipeModels
import RecpipeNumerics
import RecpipeStore

/// Evaluates the published models and the popularity baseline on the same held-out users
/// of the current split, side by side, into `evaluation` (aggregates with standard errors)
/// and `evaluation_users` (per-user values).
public struct EvaluateStage: Stage {
    public enum Part: String, Codable, Sendable, CaseIterable { case validation, test }

    public struct Config: Codable, Sendable, Equatable {
        public var part: Part = .test
        /// Include EASE, λ chosen on the validation users (dense items × items: 4·items² bytes).
        public var ease = true
        /// Include ItemKNN (cosine with shrinkage), neighbours and shrinkage chosen on validation.
        public var itemKNN = true
        /// Include iALS (conjugate gradient), factors, regularization and α chosen on
        /// validation from 18 combinations.
        public var ials = true
        public init() {}
    }

    public static let name = "evaluate"
    public static let reads: [TableName] = [.cleanRuns, .users, .items, .interactions, .models, .modelItems, .modelWeights]
    public static let writes: [TableName] = [.evaluationRuns, .evaluation, .evaluationUsers]
    public let config: Config

    public init(config: Config) { self.config = config }

    public func run(_ context: StageContext) throws -> StageReport {
        let store = context.store
        let data = try TrainingData.load(store)
        let heldOut = config.part == .test ? data.test : data.validation
        let heldOutUsers = config.part == .test ? data.testUsers : data.validationUsers
        guard heldOut.foldIn.rows > 0 else {
            throw StageError.missingInput("the split has no \(config.part.rawValue) users with targets")
        }
        let userKeys = try store.queue.read { try String.fetchAll($0, sql: "SELECT user_key FROM users ORDER BY user_idx") }
        let popularity = Popularity(train: data.train)
        var candidates: [(name: String, id: Int64?, recommender: Recommender)] = [("popularity", nil, popularity)]
        if config.ease {
            if data.validation.foldIn.rows > 0 {
                let (ease, ndcg) = try EASE.tuned(train: data.train, validation: data.validation)
                context.logger.info("EASE tuned on validation", metadata: [
                    "lambda": "\(ease.lambda)", "validation_ndcg100": "\(String(format: "%.4f", ndcg))",
                ])
                candidates.append(("ease", nil, ease))
            } else {
                context.logger.warning("EASE skipped: the split has no validation users to choose λ")
            }
        }
        if config.itemKNN && data.validation.foldIn.rows > 0 {
            let (knn, ndcg) = ItemKNN.tuned(train: data.train, validation: data.validation)
            context.logger.info("ItemKNN tuned on validation", metadata: [
                "neighbours": "\(knn.neighbours)", "shrink": "\(knn.shrink)", "validation_ndcg100": "\(String(format: "%.4f", ndcg))",
            ])
            candidates.append(("itemknn", nil, knn))
        }
        if config.ials && data.validation.foldIn.rows > 0 {
            let (ials, ndcg) = IALS.tuned(train: data.train, validation: data.validation)
            context.logger.info("iALS tuned on validation", metadata: [
                "factors": "\(ials.config.factors)", "regularization": "\(ials.config.regularization)",
                "alpha": "\(ials.config.alpha)", "validation_ndcg100": "\(String(format: "%.4f", ndcg))",
            ])
            candidates.append(("ials", nil, ials))
        }
        for kind in [MultVAE.Kind.vae, .dae] {
            let loaded = try store.queue.read { try ModelStore.publishedVAE(kind: kind, in: $0) }
            guard let (model, record) = loaded else { continue }
            guard record.itemKeys == data.itemKeys else {
                context.logger.warning("model skipped: trained on another item set; retrain it on the current split",
                                       metadata: ["model": "\(record.modelID)"])
                continue
            }
            candidates.append((kind.rawValue, record.modelID, model))
        }
        let head = Evaluation.head(counts: popularity.counts).filter { $0 }.count
        var summary: [String] = []
        var rows = 0
        var results: [(name: String, id: Int64?, metrics: [Evaluation.Metric], users: [Int])] = []
        for candidate in candidates {
            let (metrics, users) = Evaluation.evaluate(candidate.recommender, on: heldOut, trainCounts: popularity.counts,
                                                       trainUsers: data.train.rows)
            results.append((candidate.name, candidate.id, metrics, users))
            context.logger.info("model evaluated", metadata: [
                "model": "\(candidate.name)", "users": "\(users.count)",
                "ndcg100": "\(String(format: "%.4f", metrics.first { $0.name == "ndcg" }?.value ?? 0))",
            ])
        }
        try store.queue.write { db in
            try db.execute(sql: """
                INSERT INTO evaluation_runs (run_id, clean_run_id, part, users, head_items, created_at) VALUES (?, ?, ?, ?, ?, ?)
                """, arguments: [context.runID, data.cleanRunID, config.part.rawValue, results.first?.users.count ?? 0, head,
                                 Clock.isoNow()])
            let aggregate = try db.makeStatement(sql: """
                INSERT INTO evaluation (run_id, model, model_id, metric, k, value, stderr, users) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                """)
            let perUser = try db.makeStatement(sql: """
                INSERT INTO evaluation_users (run_id, model, user_key, metric, k, value) VALUES (?, ?, ?, ?, ?, ?)
                """)
            for result in results {
                for metric in result.metrics {
                    try aggregate.execute(arguments: [context.runID, result.name, result.id, metric.name, metric.k, metric.value,
                                                      metric.standardError, result.users.count])
                    rows += 1
                    for (row, value) in zip(result.users, metric.perUser) {
                        try perUser.execute(arguments: [context.runID, result.name, userKeys[heldOutUsers[row]], metric.name,
                                                        metric.k, value])
                    }
                }
            }
        }
        // A side-by-side table: one row per model, value (± standard error) per metric.
        if let first = results.first {
            let names = first.metrics.map { "\($0.name)@\($0.k)" }
            summary.append("\(config.part.rawValue) users: \(first.users.count); head items: \(head) of \(data.itemKeys.count)")
            summary.append("model".padding(toLength: 12, withPad: " ", startingAt: 0)
                           + names.map { $0.leftPadded(to: 18) }.joined())
            for result in results {
                let cells = result.metrics.map { m in
                    (String(format: "%.4f", m.value) + (m.standardError.map { String(format: " ±%.3f", $0) } ?? "")).leftPadded(to: 18)
                }
                summary.append(result.name.padding(toLength: 12, withPad: " ", startingAt: 0) + cells.joined())
            }
        }
        return StageReport(rowsIn: heldOut.foldIn.nonZeros, rowsOut: rows, summary: summary)
    }
}

extension String {
    func leftPadded(to width: Int) -> String { String(repeating: " ", count: max(0, width - count)) + self }
}
