import Foundation
import Logging
import RecpipeModels
import RecpipeStore

/// The closed loop: the live recommendations against what their users did after they were
/// published. "What users did next" is every (user, item) pair first seen in a source
/// ingested after the run that published the lists, counted as a positive by the latest clean
/// run's rating rule. Per cut-off K: the share of those users with a hit in their top K,
/// and mean Recall@K = hits / min(K, |new items|). Run it after ingest and before the next
/// score replaces the lists.
public struct FeedbackStage: Stage {
    public struct Config: Codable, Sendable, Equatable {
        public var cutoffs = [10, 20, 100]
        public init() {}
    }

    public static let name = "feedback"
    public static let reads: [TableName] = [.scoreRuns, .recommendationRows, .liveRecommendations, .rawInteractions,
                                            .ingestBatches, .cleanRuns]
    public static let writes: [TableName] = [.closedLoop]
    public let config: Config

    public init(config: Config) throws {
        guard !config.cutoffs.isEmpty, config.cutoffs.allSatisfy({ $0 > 0 }) else {
            throw StageError.badOption("--k values must be positive")
        }
        self.config = config
    }

    public func run(_ context: StageContext) throws -> StageReport {
        let store = context.store
        let found = try store.queue.read { db -> (Int64, String, Double?)? in
            guard let live = try LiveLists.published(in: db) else { return nil }
            var minRating: Double? = 4
            if let parameters = try Split.latestRun(in: db)?.parameters,
               let config = try? JSONDecoder().decode(CleanStage.Config.self, from: Data(parameters.utf8)) {
                minRating = config.minRating
            }
            return (live.run, live.publishedAt, minRating)
        }
        // A pipeline's first night has nothing published yet: nothing to score, not a failure.
        guard let (scoreRun, since, minRating) = found else {
            context.logger.info("no live recommendations yet: nothing to score against")
            return StageReport(rowsIn: 0, rowsOut: 0, summary: ["no live recommendations yet: nothing to score against"])
        }
        // New positive pairs: in sources ingested after the lists went live, not seen in any
        // source before. By run: an ingest run after the scoring run that published the lists
        // (one writer at a time, so it began after that run ended), however close in time.
        var after: [ExactKey: Set<ExactKey>] = [:]
        let fresh = try store.queue.read { try IngestBatches.stored(afterRun: scoreRun, in: $0) }
        if !fresh.isEmpty {
            try store.queue.read { db in
                try IngestBatches.newPairs(in: fresh, minRating: minRating, in: db) { user, item in
                    after[ExactKey(user), default: []].insert(ExactKey(item))
                }
            }
        }
        // The live lists of those users only, by the primary key.
        let ranked = try store.queue.read { try LiveLists.items(run: scoreRun, users: after.keys, in: $0) }
        let users = after.keys.filter { ranked[$0] != nil }.sorted()
        // What the lists are judged on: the new interactions of users who had a list.
        let newRows = users.reduce(0) { $0 + after[$1]!.count }
        var summary = ["live run \(scoreRun) (published \(since)): \(users.count) users with \(newRows) new interactions since"]
        // No user of the lists did anything new: there is nothing to measure, and a hit rate
        // of 0 would read as a failure of the lists.
        guard !users.isEmpty else {
            summary.append("nothing to score: no new interactions of users with lists since they were published")
            context.logger.info("no new interactions since the lists were published", metadata: ["live_run": "\(scoreRun)"])
            return StageReport(rowsIn: 0, rowsOut: 0, summary: summary)
        }
        var figures: [Evaluations.ClosedLoop] = []
        for k in config.cutoffs {
            var hits = 0, recall = 0.0
            for user in users {
                let found = ranked[user]!.prefix(k).filter { after[user]!.contains($0) }.count
                if found > 0 { hits += 1 }
                recall += Double(found) / Double(min(k, after[user]!.count))
            }
            let hitRate = Double(hits) / Double(users.count)
            let meanRecall = recall / Double(users.count)
            figures.append(Evaluations.ClosedLoop(k: k, users: users.count, newInteractions: newRows, hitRate: hitRate, recall: meanRecall))
            summary.append(String(format: "hit rate@%d %.4f, recall@%d %.4f", k, hitRate, k, meanRecall))
        }
        try store.queue.write { try Evaluations.recordClosedLoop(run: context.runID, scoreRun: scoreRun, since: since, figures, in: $0) }
        return StageReport(rowsIn: newRows, rowsOut: config.cutoffs.count, summary: summary)
    }
}
