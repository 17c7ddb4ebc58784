import ArgumentParser
import Foundation
import RecpipeModels
import RecpipeNumerics
import RecpipeStages
import RecpipeStore

struct Score: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compute top-K recommendations for every user and publish them atomically.",
        discussion: """
            Scores every user in the users table with a stored model (items the user \
            already has are excluded) and switches the recommendations view to the new set \
            in one transaction, keeping the set it replaces for recpipe rollback. A failed run \
            leaves the live set untouched. Nothing is published (exit 1) from a model with a \
            non-finite weight, nor a set that is empty or covers fewer users than \
            --min-users-fraction of the live set's. Items hidden or out of their window in \
            item_availability, and a user's items in user_exclusions, never appear; the \
            model's next best items take their places.
            """)

    @OptionGroup var options: DatabaseOptions
    @Option(help: "Recommendations per user.")
    var k = 100
    @Option(help: """
        A model id (models.model_id), or a kind (multvae, multdae, ease, edlae, itemknn, ials, popularity) \
        for the published model of that kind: the newest that passed the quality gate. Without it: \
        the champion, the published model of the current split (trained on it, or kept for it by \
        train --retrain-threshold) with the best validation \
        figure (see --champion-metric), the live one staying unless beaten by more than one paired \
        standard error.
        """)
    var model: String?
    @Option(name: .customLong("champion-metric"), help: "The validation figure the champion is chosen by: ndcg@100, recall@20, recall@50, precision@10, hit_rate@10 or mrr@100.")
    var championMetric = "ndcg@100"
    @Option(name: .customLong("publish-margin"), help: "A champion replaces a live model trained on an earlier split only if it reaches (1 − margin) × its figure on the same users (0–1).")
    var publishMargin = 0.02
    @Option(name: .customLong("max-per-category"), help: "At most this many items of one item_metadata.category in a list; the next best items fill the places.")
    var maxPerCategory: Int?
    @Option(help: """
        Re-ranking for the long tail: auto (the operating point the newest evaluation of the current \
        split chose for the model scored; none if it has not judged it), none, xquad (personalised \
        head/tail xQuAD) or popularity (scores penalised by log popularity), the last two with \
        --tail-weight. The best 5×K candidates are re-ordered; rules and fallbacks are unchanged.
        """)
    var rerank: ScoreStage.RerankChoice = .auto
    @Option(name: .customLong("tail-weight"), help: "λ of --rerank xquad or popularity (0: the model's order; 0–1).")
    var tailWeight: Double?
    @Flag(name: .customLong("no-reasons"), help: "Leave because_item_key NULL (naming the history item behind each item costs up to 1.4× the scoring time with the Mult-VAE, Mult-DAE or iALS).")
    var noReasons = false
    @Option(help: ArgumentHelp("""
        Score only shard I of N (users split into N contiguous ranges) into the file --shard-out; \
        the live set is not touched. A shard only reads the database (no writer lock): shards \
        may run at the same time, on one machine or several.
        """, valueName: "I/N"))
    var shard: String?
    @Option(name: .customLong("shard-out"), help: "With --shard: the SQLite file the shard's rows go to (replaced).")
    var shardOut: String?
    @Option(parsing: .upToNextOption, help: "Publish these shard files (together every user once, one model and K) instead of scoring.")
    var merge: [String] = []
    @Option(help: "BLAS threads (default: all cores; 1 when several shards share a machine).")
    var threads: Int?
    @Option(name: .customLong("min-users-fraction"), help: "Refuse to publish a set covering fewer users than this share of the live set's (0–1).")
    var minUsersFraction = 0.5

    func run() throws {
        let logger = options.logging.makeLogger()
        try runReporting(logger, database: options.db) {
            var config = ScoreStage.Config()
            config.k = k
            config.merge = merge
            config.minUsersFraction = minUsersFraction
            if let shard {
                guard let (index, count) = ScoreStage.Shard.parse(shard) else {
                    throw StageError.badOption("--shard must be I/N, e.g. 0/4, got '\(shard)'")
                }
                guard let shardOut else { throw StageError.badOption("--shard needs --shard-out FILE") }
                config.shard = ScoreStage.Shard(index: index, count: count, output: shardOut)
            }
            if let threads { BLAS.threads = max(1, threads) }
            config.championMetric = championMetric
            config.publishMargin = publishMargin
            config.maxPerCategory = maxPerCategory
            config.reasons = !noReasons
            config.rerank = rerank
            config.tailWeight = tailWeight
            if let model {
                if let id = Int64(model) {
                    config.modelID = id
                } else if let kind = ModelKind(rawValue: model) {
                    config.kind = kind
                } else {
                    throw StageError.badOption("--model must be a model id or one of \(ModelKind.allCases.map(\.rawValue).joined(separator: ", ")), got '\(model)'")
                }
            }
            let stage = try ScoreStage(config: config)
            if config.shard != nil {
                // A shard only reads the database (shards run at the same time, beside a
                // writer): no lock, no stage_runs row; the merge that publishes it is the
                // recorded run, and the shard file's shard_info says where its rows came from.
                let store = try Store(readingAt: options.db)
                try finish(try stage.run(StageContext(store: store, logger: logger, runID: 0)), logger: logger)
            } else {
                try runStage(stage, options: options, logger: logger)
            }
        }
    }
}

struct Recommend: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print one user's live recommendations.",
        discussion: """
            A key without a live list (never seen, or new since the lists were published) gets the \
            most popular items it has not had that the business rules allow, marked \
            fallback-popular. Reads only: takes no lock.
            """)

    @OptionGroup var options: ReadOptions
    @Option(help: "The user's key, as in the source data.")
    var user: String
    @Option(help: "How many to print.")
    var k = 10
    @Flag(help: "Print JSON.")
    var json = false

    func run() throws {
        let logger = options.logging.makeLogger()
        try runReporting(logger, database: options.db) {
            let store = try options.openStore()
            struct Output: Encodable {
                var user: String; var modelID: Int64?; var runID: Int64?; var items: [LiveLists.Item]; var live: LiveLists.Published?
            }
            let output: Output
            if let list = try LiveLists.list(for: user, k: k, in: store) {
                output = Output(user: list.user, modelID: list.modelID, runID: list.runID, items: list.items, live: list.published)
            } else {
                // A key without a live list: popular items, labelled so.
                let items = try LiveLists.popular(for: user, k: k, now: Clock.isoNow(), in: store)
                guard !items.isEmpty else { throw StageError.missingInput("\(options.db): no live lists and no items yet") }
                logger.info("no live list for this user: popular items", metadata: ["user": "\(user)"])
                output = Output(user: user, modelID: nil, runID: nil, items: items, live: nil)
            }
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys]
                print(String(decoding: try encoder.encode(output), as: UTF8.self))
            } else {
                for item in output.items {
                    print("\(item.rank)\t\(item.item)\t\(String(format: "%.4f", item.score))" + (item.source == "model" ? "" : "\t\(item.source)"))
                }
            }
        }
    }
}

extension EvaluateStage.Part: ExpressibleByArgument {}
extension ScoreStage.RerankChoice: ExpressibleByArgument {}

struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Evaluate every model trained on the current split, side by side, on its held-out users.",
        discussion: """
            Of each kind (multvae, multdae and the baselines ease, edlae, itemknn, ials, popularity; \
            train them with recpipe train --model KIND) the published model is evaluated when \
            it was trained on the current split or kept for it (train --retrain-threshold), else \
            the newest one that was; popularity is \
            computed on the spot when none was trained. Every model is evaluated on the same \
            users in the same run: Recall@20/50, NDCG@100, Precision@10, HitRate@10, MRR, \
            APLT@20, novelty@20 (mean and standard error over users), coverage@20 and \
            Gini@20. Results go to evaluation and evaluation_users; the popular head APLT \
            counts against goes to evaluation_head_items. The accuracy / long-tail trade-off \
            goes to tradeoff_points, on the validation and the test users: every model's lists \
            re-ranked by xquad and popularity at each weight of a grid, and the Mult-VAEs \
            trained with synthetic interactions at each weight; each model's operating point \
            (the largest validation APLT@20 with NDCG@100 within --max-ndcg-loss of its own \
            lists') is what score --rerank auto applies.
            """)

    @OptionGroup var options: DatabaseOptions
    @Option(help: "test or validation users.")
    var part: EvaluateStage.Part = .test
    @Option(name: .customLong("keep-evaluations"), help: "Evaluation runs that keep their per-user rows (older ones keep only their aggregates).")
    var keepEvaluations = Retention.Policy().keepEvaluations
    @Option(name: .customLong("max-ndcg-loss"), help: "The share of NDCG@100 the operating point may lose against the model's own lists, on the validation users (0–1).")
    var maxNDCGLoss = Tradeoff.defaultMaxNDCGLoss

    func run() throws {
        let logger = options.logging.makeLogger()
        try runReporting(logger, database: options.db) {
            var config = EvaluateStage.Config()
            config.part = part
            config.retention.keepEvaluations = keepEvaluations
            config.maxNDCGLoss = maxNDCGLoss
            try runStage(try EvaluateStage(config: config), options: options, logger: logger)
        }
    }
}

struct Feedback: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Score the live recommendations against what users did after they were published.",
        discussion: """
            New interactions are (user, item) pairs first seen in sources ingested after the \
            live lists were published, positives by the latest clean run's rating rule. Stores \
            hit rate@K and recall@K in closed_loop. Run it after ingest, before the next score.
            """)

    @OptionGroup var options: DatabaseOptions
    @Option(name: .customLong("k"), parsing: .upToNextOption, help: "Cut-offs.")
    var cutoffs: [Int] = [10, 20, 100]

    func run() throws {
        let logger = options.logging.makeLogger()
        try runReporting(logger, database: options.db) {
            var config = FeedbackStage.Config()
            config.cutoffs = cutoffs
            try runStage(try FeedbackStage(config: config), options: options, logger: logger)
        }
    }
}

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Write a self-contained HTML report: data, models and training curves, evaluation, long tail, run history.")

    @OptionGroup var options: ReadOptions
    @Option(help: "The HTML file to write.")
    var out: String

    func run() throws {
        let logger = options.logging.makeLogger()
        try runReporting(logger, database: options.db) {
            let bytes = try ReportJob(out: out).run(try options.openStore())
            logger.info("report written", metadata: ["file": "\(out)", "bytes": "\(bytes)"])
            print(out)
        }
    }
}

struct Rollback: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Point the live lists back at the set the last publish replaced, in one transaction.",
        discussion: """
            Every publish keeps the set it replaces until the next publish. Rollback makes that \
            set live again and keeps the one it takes down, so a second rollback undoes the \
            first. Recorded in stage_runs (stage rollback) and score_runs.rolled_back_at. Exits \
            with 65 when no earlier set is kept.
            """)

    @OptionGroup var options: DatabaseOptions

    func run() throws {
        let logger = options.logging.makeLogger()
        try runReporting(logger, database: options.db) {
            try runStage(RollbackStage(), options: options, logger: logger)
        }
    }
}
