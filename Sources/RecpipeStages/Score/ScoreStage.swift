import Foundation
import Logging
import RecpipeModels
import RecpipeNumerics
import RecpipeStore

/// Top-K recommendations for every user from a trained model, published atomically.
///
/// The rows are written under this run's id beside the live ones, over several
/// transactions; then one transaction points `live_recommendations` at the new run, keeping
/// the set it replaces for `recpipe rollback`. A failed, refused or killed run never touches
/// the live set; its rows are removed by the next publish.
///
/// Guards before the switch: a model with a non-finite weight is not scored, and a set that
/// is empty, holds a non-finite score, or covers fewer users than `minUsersFraction` of the
/// live set's is not published.
public struct ScoreStage: Stage {
    /// One of `count` contiguous ranges of users (by user_idx), scored into its own file.
    public struct Shard: Codable, Sendable, Equatable {
        public var index: Int
        public var count: Int
        /// The SQLite file the shard's rows go to (replaced if it exists).
        public var output: String

        public init(index: Int, count: Int, output: String) {
            self.index = index
            self.count = count
            self.output = output
        }

        /// `I/N` as written on a command line (`--shard 0/4`); nil when it is not two integers.
        /// The range is checked by `ScoreStage.init`.
        public static func parse(_ text: String) -> (index: Int, count: Int)? {
            let parts = text.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count == 2, let index = Int(parts[0]), let count = Int(parts[1]) else { return nil }
            return (index, count)
        }

        /// This shard's users of `users` in all: contiguous ranges whose bounds fall on the
        /// whole run's batch boundaries (multiples of `batch`), so every user
        /// is scored in the same batch, of the same shape, as in one process, and the lists
        /// and scores are bit-identical whatever the shard count. A shard may be empty.
        public func users(of users: Int, batch: Int) -> Range<Int> {
            func bound(_ i: Int) -> Int {
                let batches = (users + batch - 1) / batch
                return min(users, batches * i / count * batch)
            }
            return bound(index)..<bound(index + 1)
        }
    }

    public struct Config: Codable, Sendable, Equatable {
        public var k = 100
        /// The published model of this kind (the newest of the kind that passed the
        /// quality gate), unless `modelID` names one; with neither, the champion (`Champion`).
        public var kind: ModelKind?
        public var modelID: Int64?
        /// The validation figure the champion is chosen by, NAME@K as `evaluate` reports it.
        public var championMetric = "ndcg@100"
        /// A champion displaces a live model trained on another split only if its figure
        /// reaches (1 − margin) × the live model's, measured on the same users (nil: always).
        public var publishMargin: Double? = 0.02
        /// At most this many items of one `item_metadata.category` in a list (nil: no cap).
        public var maxPerCategory: Int?
        /// Re-ranking for the long tail (`Reranking`): `auto` applies the operating point the
        /// newest evaluation of this split chose for the model scored (none when it chose the
        /// model's own order, or has not judged the model); `xquad` and `popularity` take
        /// `tailWeight` as λ.
        public var rerank: RerankChoice = .auto
        public var tailWeight: Double?
        /// Name the history item behind every item (`because_item_key`); for the models with
        /// item vectors it costs about 1.35× the scoring time at ML-20M size (`recpipe bench score`).
        public var reasons = true
        /// Score only this shard's users into its own file; the live set is not touched.
        public var shard: Shard?
        /// Instead of scoring: publish the rows of these shard files, which must together
        /// cover every user once with the same model and K.
        public var merge: [String] = []
        /// The least share of the live set's users the new set must cover to be published.
        public var minUsersFraction = 0.5
        /// Users scored together in one batch (one matrix product); shards to be merged must
        /// share it.
        public var batchUsers = ScoreStage.batchUsers
        public init() {}
    }

    public enum RerankChoice: String, Codable, Sendable, CaseIterable {
        case auto, none, xquad, popularity
    }

    public static let name = "score"
    /// Users scored together in one batch by default.
    public static let batchUsers = 500
    public static let reads: [TableName] = [.users, .items, .interactions, .cleanRuns, .rawInteractions, .models, .modelItems,
                                           .modelWeights, .modelCarryovers, .itemAvailability, .userExclusions, .itemMetadata, .evaluationRuns,
                                           .tradeoffPoints]
    public static let writes: [TableName] = [.scoreRuns, .recommendationRows, .liveRecommendations]
    /// The split's users and their items, and the model scored: the published one of
    /// `model`'s kind (a model given by id, or the champion: any kind; the champion is
    /// judged on the validation users, so the whole split counts).
    public static func inputs(_ parameters: [String: String]) -> [DataSet] {
        let split = [TableName.users, .items, .interactions, .cleanRuns, .rawInteractions].map { DataSet($0) }
        let models: [DataSet]
        if let name = parameters["model"], let kind = ModelKind(rawValue: name) {
            // And the item-based models behind the fallback lists.
            models = Set([kind, .ease, .edlae, .itemknn]).sorted { $0.rawValue < $1.rawValue }.flatMap { DataSet.models($0.rawValue) }
        } else if parameters["model"] != nil {
            models = DataSet.models(nil)  // a model id: any kind
        } else {
            models = Champion.costOrder.flatMap { DataSet.models($0.rawValue) }
        }
        // The evaluations' operating points, which `--rerank auto` applies.
        let rerank = (parameters["rerank"] ?? RerankChoice.auto.rawValue) == RerankChoice.auto.rawValue
            ? [TableName.evaluationRuns, .tradeoffPoints].map { DataSet($0) } : []
        return split + models.filter { $0.table != .trainingLog } + rerank
            + [TableName.itemAvailability, .userExclusions].map { DataSet($0) }
            + (parameters["max_per_category"] != nil ? [DataSet(.itemMetadata)] : [])
    }

    /// The business rules' tables (and the categories, with a cap).
    public static func ruleDigest(_ parameters: [String: String], store: Store) throws -> String? {
        guard parameters["merge"] == nil else { return nil }
        return try store.queue.read { try BusinessRules.digest(categories: parameters["max_per_category"] != nil, in: $0) }
    }
    public let config: Config

    public init(config: Config) throws {
        guard config.k >= 1 else { throw StageError.badOption("--k must be at least 1") }
        if let shard = config.shard {
            guard shard.count >= 1, (0..<shard.count).contains(shard.index) else {
                throw StageError.badOption("--shard must be I/N with 0 ≤ I < N, got \(shard.index)/\(shard.count)")
            }
            guard config.merge.isEmpty else { throw StageError.badOption("--shard and --merge exclude each other") }
        }
        guard config.batchUsers >= 1 else { throw StageError.badOption("the scoring batch must hold at least one user") }
        if let margin = config.publishMargin, !(0...1).contains(margin) {
            throw StageError.badOption("--publish-margin must be between 0 and 1, got \(margin)")
        }
        _ = try Self.metric(config.championMetric)
        if let cap = config.maxPerCategory, cap < 1 { throw StageError.badOption("--max-per-category must be at least 1, got \(cap)") }
        switch (config.rerank, config.tailWeight) {
        case (.xquad, let weight?), (.popularity, let weight?):
            guard (0...1).contains(weight) else { throw StageError.badOption("--tail-weight must be between 0 and 1, got \(weight)") }
        case (.xquad, nil), (.popularity, nil):
            throw StageError.badOption("--rerank \(config.rerank.rawValue) needs --tail-weight λ (0–1)")
        case (_, .some):
            throw StageError.badOption("--tail-weight needs --rerank xquad or popularity (with --rerank \(config.rerank.rawValue) it has no use)")
        case (_, nil): break
        }
        guard config.minUsersFraction >= 0, config.minUsersFraction <= 1 else {
            throw StageError.badOption("--min-users-fraction must be between 0 and 1, got \(config.minUsersFraction)")
        }
        self.config = config
    }

    public func run(_ context: StageContext) throws -> StageReport {
        let started = Clock.monotonic()
        let store = context.store
        if !config.merge.isEmpty { return try merge(context, started: started) }
        let (model, record, choice) = try chooseModel(context)
        try Self.refuseNonFinite(model, record: record)
        let (userKeys, history) = try Self.histories(store, model: record)
        let k = min(config.k, model.items)
        let users = config.shard?.users(of: userKeys.count, batch: config.batchUsers) ?? 0..<userKeys.count
        let rules = try Self.rules(store, itemKeys: record.itemKeys, userKeys: userKeys, maxPerCategory: config.maxPerCategory,
                                   now: Clock.isoNow(), digest: true)
        var ranking = rules.ranking
        let rerank = try reranking(context, record: record)
        ranking.rerank = rerank.reranking
        if rules.unavailable > 0 || rules.exclusions > 0 || config.maxPerCategory != nil {
            context.logger.info("business rules applied", metadata: [
                "unavailable_items": "\(rules.unavailable)", "exclusions": "\(rules.exclusions)",
                "max_per_category": "\(config.maxPerCategory.map(String.init) ?? "none")", "digest": "\(rules.digest?.prefix(12) ?? "")",
            ])
        }
        context.logger.info("scoring started", metadata: [
            "model": "\(record.modelID)", "kind": "\(record.kind.rawValue)", "users": "\(users.count)", "items": "\(model.items)",
            "k": "\(k)", "shard": "\(config.shard.map { "\($0.index)/\($0.count)" } ?? "none")",
        ])
        if let shard = config.shard {
            try OutputGuard.check(shard.output, database: store.path, replaceable: .shard)
            let file = try ShardFile.create(at: shard.output, for: store)
            var written = try Self.write(model, history, users: users, k: k, batch: config.batchUsers, userKeys: userKeys, itemKeys: record.itemKeys,
                                         rules: ranking, explainer: config.reasons ? Explanations.explainer(for: model) : nil, runID: context.runID, to: file,
                                         progress: reporter(context, total: users.count)).rows
            // The users outside the split go with the last shard.
            if shard.index == shard.count - 1 {
                written += try writeFallbacks(context, k: config.k, maxPerCategory: config.maxPerCategory, runID: context.runID, to: file).rows
            }
            // Written last: a shard file without it is incomplete and merge refuses it.
            try ShardFile.finish(file, ShardFile.Info(
                modelID: record.modelID, k: k, shard: shard.index, shards: shard.count, firstUser: users.lowerBound,
                endUser: users.upperBound, rows: written, batchUsers: config.batchUsers))
            return StageReport(rowsIn: history.nonZeros, rowsOut: written, summary: [
                "\(written) recommendations for users \(users.lowerBound)..<\(users.upperBound) (shard \(shard.index) of \(shard.count)) from model \(record.modelID) (\(record.kind.rawValue)) in \(shard.output); not published: recpipe score --merge publishes the shards",
            ])
        }
        let choiceJSON = try choice.map { choice -> String in
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            return String(decoding: try encoder.encode(choice), as: UTF8.self)
        }
        try store.queue.write {
            try LiveLists.begin(run: context.runID, model: record.modelID, k: k, users: userKeys.count, reason: choice?.reason,
                                choice: choiceJSON, rulesDigest: rules.digest, rules: rules.summary, rerank: rerank.json, in: $0)
        }
        let connection = try store.bulkConnection()
        let written: Int, writing: Double
        let fallbacks: Fallbacks
        do {
            let scored = try Self.write(model, history, users: users, k: k, batch: config.batchUsers, userKeys: userKeys, itemKeys: record.itemKeys,
                                        rules: ranking, explainer: config.reasons ? Explanations.explainer(for: model) : nil, runID: context.runID,
                                        to: connection, progress: reporter(context, total: users.count))
            fallbacks = try writeFallbacks(context, k: config.k, maxPerCategory: config.maxPerCategory, runID: context.runID, to: connection)
            if let item = fallbacks.itemModel {
                try store.queue.write { try LiveLists.setFallbackModel(run: context.runID, model: item, in: $0) }
            }
            (written, writing) = (scored.rows + fallbacks.rows, scored.seconds + fallbacks.seconds)
        } catch {
            try? LiveLists.discard(run: context.runID, on: connection)
            throw error
        }
        try publish(context, connection: connection, rows: written, writing: writing, started: started,
                    what: "model \(record.modelID) (\(record.kind.rawValue))")
        var summary = ["\(written) recommendations for \(userKeys.count) users from model \(record.modelID) (\(record.kind.rawValue)), published as run \(context.runID)"]
        if fallbacks.itemUsers + fallbacks.popularUsers > 0 {
            summary.append("fallback lists for \(fallbacks.itemUsers + fallbacks.popularUsers) users outside the split: \(fallbacks.itemUsers) from their items through model \(fallbacks.itemModel.map(String.init) ?? "-"), \(fallbacks.popularUsers) of popular items")
        }
        if let choice { summary.append("model chosen: \(choice.reason)") }
        summary.append(rerank.reranking == nil ? rerank.description : "re-ranked: \(rerank.description)")
        return StageReport(rowsIn: history.nonZeros, rowsOut: written, summary: summary)
    }

    /// Reports users scored so far, for the scheduler's status line.
    func reporter(_ context: StageContext, total: Int) -> (Int) -> Void {
        { done in context.progress(done: done, total: total, unit: "users") }
    }

    /// Ranks `users` (rows of `history`) and writes their top k to `recommendation_rows`
    /// through `connection`, in transactions of 5,000 users written on a thread of their own
    /// while the next users are scored. Returns the rows written and the seconds the writer
    /// spent writing them.
    static func write(_ model: any Recommender, _ history: CSRMatrix, users: Range<Int>, k: Int, batch: Int, userKeys: [String],
                      itemKeys: [String], rules: RankingRules = .none, source: LiveLists.Source = .model,
                      explainer: (any Explaining)? = nil, runID: Int64, to connection: RawConnection,
                      progress: @escaping (_ usersDone: Int) -> Void = { _ in }) throws -> (rows: Int, seconds: Double) {
        precondition(users.lowerBound % batch == 0 || users.isEmpty, "scoring starts on a batch boundary")
        /// A batch's rows side by side, in list order: plain arrays, so that the writer reads
        /// each row without touching a reference count.
        struct Pending {
            var users = 0
            var user: [Int32] = [], rank: [Int32] = [], item: [Int32] = [], because: [Int32] = []  // because: −1 for none
            var score: [Float] = []
        }
        var pending = Pending()
        // Touched only by the writer's jobs until `finish` returns.
        var written = 0, usersDone = 0, writing = 0.0
        let userBytes = EncodedKeys(userKeys), itemBytes = EncodedKeys(itemKeys)
        let writer = SerialWorker(capacity: 2)
        func flush() throws {
            let batch = pending
            pending = Pending()
            try writer.submit {
                let started = Clock.monotonic()
                try userBytes.withBytes { users in
                    try itemBytes.withBytes { items in
                        try connection.inTransaction {
                            try LiveLists.write(run: runID, count: batch.user.count, source: source, on: connection) { n in
                                let because = batch.because[n]
                                return LiveLists.WrittenRow(user: users[Int(batch.user[n])], rank: Int(batch.rank[n]), item: items[Int(batch.item[n])],
                                                            score: Double(batch.score[n]), because: because < 0 ? nil : items[Int(because)])
                            }
                        }
                    }
                }
                written += batch.user.count
                writing += Clock.monotonic() - started
                usersDone += batch.users
                progress(usersDone)
            }
        }
        do {
            let whole = users == 0..<history.rows
            let subset = whole ? history : history.rows(Array(users)[...])
            var rules = rules
            if !whole { rules.excluded = rules.excluded?.rows(Array(users)[...]) }
            try model.rankedLists(subset, k: k, batchSize: batch, rules: rules, explainer: explainer) { row, ranked, scores, because in
                if let bad = scores.first(where: { !$0.isFinite }) {
                    throw StageError.refused("score: user \(userKeys[users.lowerBound + row]) got a score of \(bad) from the model; nothing published, the live lists are unchanged")
                }
                let user = Int32(users.lowerBound + row)
                pending.users += 1
                pending.user.append(contentsOf: repeatElement(user, count: ranked.count))
                pending.rank.append(contentsOf: stride(from: Int32(1), through: Int32(ranked.count), by: 1))
                pending.item.append(contentsOf: ranked)
                pending.score.append(contentsOf: scores)
                for r in ranked.indices { pending.because.append(r < because.count ? because[r] ?? -1 : -1) }
                if pending.users >= 5000 { try flush() }
            }
            try flush()
        } catch {
            try? writer.finish()
            throw error
        }
        try writer.finish()
        return (written, writing)
    }

    /// Refuses a model with a NaN or infinite weight: its lists would be arbitrary.
    static func refuseNonFinite(_ model: any StorableModel, record: ModelStore.Record) throws {
        if let bad = model.nonFiniteTensor() {
            throw StageError.refused("score: model \(record.modelID) (\(record.kind.rawValue)) has a non-finite weight in \(bad); nothing published, the live lists are unchanged")
        }
    }

    /// The guards, then the switch to this run's rows (one small transaction) keeping the set
    /// it replaces as the rollback set, then the removal of every other run's rows.
    func publish(_ context: StageContext, connection: RawConnection, rows: Int, writing: Double, started: Double, what: String) throws {
        let runID = context.runID
        let publishing = Clock.monotonic()
        do {
            try context.store.queue.write { db in
                let covered = try LiveLists.usersWithLists(run: runID, in: db)
                guard rows > 0, covered > 0 else {
                    throw StageError.refused("score: \(what) gave no recommendations (no users, or no item a user does not have); nothing published, the live lists are unchanged")
                }
                // Judged on the model's own lists: fallback lists for users a broken split lost
                // would hide the loss.
                if let live = try LiveLists.live(in: db)?.run {
                    let modelUsers = try LiveLists.usersWithLists(run: runID, source: .model, in: db)
                    let liveUsers = try LiveLists.usersWithLists(run: live, source: .model, in: db)
                    if Double(modelUsers) < config.minUsersFraction * Double(liveUsers) {
                        throw StageError.refused("score: \(what) has lists for \(modelUsers) users, the live set (run \(live)) for \(liveUsers); below --min-users-fraction \(config.minUsersFraction), nothing published, the live lists are unchanged")
                    }
                }
                try LiveLists.switchTo(run: runID, rows: rows, seconds: Clock.monotonic() - started, in: db)
            }
        } catch {
            // A refused set is not kept: remove its rows now (the live set is untouched).
            try? LiveLists.discard(run: runID, on: connection)
            throw error
        }
        // Only the live set and the one it replaced stay (rows of refused, failed or killed
        // runs, and older sets, are no longer visible: drop them).
        try LiveLists.dropUnreachable(on: connection)
        let published = Clock.monotonic() - publishing
        try context.store.queue.write { try LiveLists.recordTimes(run: runID, writing: writing, publishing: published, in: $0) }
        context.logger.info("lists published", metadata: [
            "run": "\(runID)", "rows": "\(rows)", "write_seconds": "\(String(format: "%.2f", writing))",
            "rows_per_second": "\(writing > 0 ? String(format: "%.0f", Double(rows) / writing) : "-")",
            "publish_seconds": "\(String(format: "%.2f", published))",
        ])
    }

    /// Publishes shard files: checks that they are complete and together cover every user
    /// once with one model and K, copies their rows under this run, then switches.
    func merge(_ context: StageContext, started: Double) throws -> StageReport {
        let store = context.store
        let users = try store.queue.read { try Split.userCount(in: $0) }
        let connection = try store.bulkConnection()
        var infos: [(path: String, info: ShardFile.Info)] = []
        for path in config.merge {
            guard FileManager.default.fileExists(atPath: path) else {
                throw StageError.unreadable(path: path, reason: "no such shard file")
            }
            let info: ShardFile.Info?
            do {
                info = try ShardFile.attached(path, on: connection) { try ShardFile.info(attachedAs: $0, on: connection) }
            } catch {
                throw StageError.badData("\(path): not a scoring shard (\(error.localizedDescription))")
            }
            guard let info else { throw StageError.badData("\(path): incomplete shard (no shard_info row); score it again") }
            infos.append((path, info))
        }
        let (firstPath, first) = infos[0]
        for (path, info) in infos where info.modelID != first.modelID || info.k != first.k || info.shards != first.shards || info.batchUsers != first.batchUsers {
            throw StageError.badData("\(path): shard of model \(info.modelID), k \(info.k), \(info.shards) shards, batches of \(info.batchUsers) users; \(firstPath) has model \(first.modelID), k \(first.k), \(first.shards) shards, batches of \(first.batchUsers)")
        }
        let ranges = infos.map { [$0.info.firstUser, $0.info.endUser] }.sorted { $0.lexicographicallyPrecedes($1) }
        let covers = infos.count == first.shards && ranges.first?[0] == 0 && ranges.last?[1] == users
            && zip(ranges, ranges.dropFirst()).allSatisfy { $0[1] == $1[0] }
        guard covers else {
            throw StageError.badData("shards \(config.merge.joined(separator: ", ")) do not cover users 0..<\(users) once: \(ranges.map { "\($0[0])..<\($0[1])" }.joined(separator: ", "))")
        }
        try store.queue.write { try LiveLists.begin(run: context.runID, model: first.modelID, k: first.k, users: users, in: $0) }
        var written = 0
        let copying = Clock.monotonic()
        for (path, info) in infos {
            let copied = try ShardFile.attached(path, on: connection) {
                try LiveLists.copyShard(attachedAs: $0, run: context.runID, on: connection)
            }
            guard copied == info.rows else {
                throw StageError.badData("\(path): \(copied) rows, its shard_info says \(info.rows)")
            }
            written += copied
        }
        try publish(context, connection: connection, rows: written, writing: Clock.monotonic() - copying, started: started,
                    what: "\(infos.count) shards of model \(first.modelID)")
        return StageReport(rowsIn: written, rowsOut: written, summary: [
            "\(written) recommendations for \(users) users from \(infos.count) shards of model \(first.modelID), published as run \(context.runID)",
        ])
    }

    /// Every user's known items (all parts of the split), as positions in the model's item
    /// index; items the model does not know are left out. The users come in the byte order
    /// of their keys, the order of `recommendation_rows`' key, so that each list is appended
    /// to the table rather than inserted among the rows already written; the shards of
    /// `--shard` are ranges of this order.
    static func histories(_ store: Store, model: ModelStore.Record) throws -> ([String], CSRMatrix) {
        try store.queue.read { db in
            let itemPosition = model.positions(of: try Split.itemKeys(in: db))
            let denseKeys = try Split.userKeys(in: db)
            var rows = [[Int32]](repeating: [], count: denseKeys.count)
            try Split.forEachInteraction(in: db) { user, item, _ in
                if let p = itemPosition[item] { rows[user].append(p) }
            }
            let order = denseKeys.indices.sorted { ExactKey(denseKeys[$0]) < ExactKey(denseKeys[$1]) }
            return (order.map { denseKeys[$0] }, CSRMatrix(cols: model.itemKeys.count, rowsOfColumns: order.map { rows[$0].sorted() }))
        }
    }
}
