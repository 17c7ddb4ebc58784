import Foundation
import Logging
import RecpipeStore

/// Turns `raw_interactions` into model input: deduplicated, binarized, k-core filtered
/// interactions on dense user and item indices, split into training, validation and test
/// parts. The tables are replaced in one transaction, with a summary row in `clean_runs`.
public struct CleanStage: Stage {
    public enum SplitKind: String, Codable, Sendable, CaseIterable {
        case strong, temporal, predefined
    }

    public struct Config: Codable, Sendable, Equatable {
        /// Events with a rating below this are not positives; nil keeps every event.
        /// Events without a rating always count.
        public var minRating: Double? = 4
        public var minUserInteractions = 5
        public var minItemInteractions = 1
        public var split: SplitKind = .strong
        public var seed: UInt64 = 98765
        /// Validation users and test users each (strong split). nil: 10% of the users, at
        /// most 10,000.
        public var heldOutUsers: Int?
        public var targetFraction = 0.2
        /// Held-out users with fewer items keep them all as fold-in.
        public var minHeldOutItems = 5
        /// Temporal split: the test period starts here (Unix seconds); nil: `testDays`
        /// before the latest event.
        public var testCutoff: Int64?
        public var testDays = 7.0
        public var validationDays = 7.0
        /// Predefined split: a directory with train.csv, validation_tr.csv,
        /// validation_te.csv, test_tr.csv and test_te.csv (`user,item` columns).
        public var splitDirectory: String?

        public init() {}
    }

    public static let name = "clean"
    public static let reads: [TableName] = [.rawInteractions]
    public static let writes: [TableName] = [.cleanRuns, .users, .items, .interactions]
    public static let inputPaths = ["split_from"]
    public let config: Config

    public init(config: Config) throws {
        guard config.minUserInteractions >= 1, config.minItemInteractions >= 1 else {
            throw StageError.badOption("--min-user-interactions and --min-item-interactions must be at least 1")
        }
        guard config.targetFraction > 0 && config.targetFraction < 1 else {
            throw StageError.badOption("--target-fraction must be between 0 and 1")
        }
        if let n = config.heldOutUsers, n < 1 { throw StageError.badOption("--heldout-users must be at least 1") }
        guard config.testDays > 0, config.validationDays >= 0 else {
            throw StageError.badOption("--test-days must be positive and --validation-days not negative")
        }
        if config.split == .predefined && config.splitDirectory == nil {
            throw StageError.badOption("the predefined split needs --split-from DIR")
        }
        self.config = config
    }

    public func run(_ context: StageContext) throws -> StageReport {
        let started = Clock.monotonic()
        var stats = PreprocessStats()
        let data: SplitData
        if config.split == .predefined {
            (data, stats) = try PredefinedSplit.read(directory: config.splitDirectory!)
        } else {
            let events = try Self.loadRaw(context.store)
            guard events.count > 0 else {
                throw StageError.missingInput("\(context.store.path): raw_interactions is empty; run ingest first")
            }
            let positives: Positives
            (positives, stats) = Preprocess.run(
                events, minRating: config.minRating, minUserInteractions: config.minUserInteractions,
                minItemInteractions: config.minItemInteractions)
            context.logger.info("interactions filtered", metadata: [
                "raw": "\(stats.rawRows)", "deduplicated": "\(stats.deduplicatedRows)",
                "positive": "\(stats.positiveRows)", "kcore": "\(positives.count)",
                "kcore_iterations": "\(stats.kcoreIterations)",
            ])
            guard positives.count > 0 else {
                throw StageError.badData("clean: no interactions left after binarizing and k-core filtering (--min-rating \(config.minRating.map { String(format: "%g", $0) } ?? "none"), --min-user-interactions \(config.minUserInteractions), --min-item-interactions \(config.minItemInteractions)); nothing changed")
            }
            data = try split(positives, userKeys: events.userKeys, itemKeys: events.itemKeys)
            context.logger.debug("split built", metadata: ["seconds": "\(String(format: "%.2f", Clock.monotonic() - started))"])
        }
        try refuseEmpty(data)
        try write(data, stats: stats, context: context, seconds: Clock.monotonic() - started)
        let density = Double(data.count) / Double(max(1, data.userKeys.count)) / Double(max(1, data.itemKeys.count))
        let input = config.split == .predefined
            ? ["split files: \(stats.rawRows) rows (\(stats.rawUsers) users, \(stats.rawItems) items), \(stats.rawRows - stats.deduplicatedRows) duplicates dropped"]
            : ["raw rows \(stats.rawRows) (\(stats.rawUsers) users, \(stats.rawItems) items)",
               "after dedupe \(stats.deduplicatedRows), positive \(stats.positiveRows), k-core removed \(stats.kcoreUsersRemoved) users and \(stats.kcoreItemsRemoved) items in \(stats.kcoreIterations) passes"]
        return StageReport(rowsIn: stats.rawRows, rowsOut: data.count, summary: input + [
            "\(data.userKeys.count) users × \(data.itemKeys.count) items, \(data.count) interactions, density \(String(format: "%.4f", density))",
            "\(config.split.rawValue) split: train \(data.rows(in: .train)) rows / \(data.users(with: .train)) users; validation \(data.rows(in: .validationFoldIn)) + \(data.rows(in: .validationTarget)) rows / \(data.users(with: .validation)) users; test \(data.rows(in: .testFoldIn)) + \(data.rows(in: .testTarget)) rows / \(data.users(with: .test)) users; \(data.droppedHeldOut) held-out rows dropped",
        ])
    }

    /// A split that models cannot be trained or judged on never replaces the tables: no
    /// training users or items, or (strong and temporal splits) no validation or test users
    /// with targets. The message names the options that emptied it.
    func refuseEmpty(_ data: SplitData) throws {
        var options: String
        switch config.split {
        case .strong: options = "--heldout-users \(config.heldOutUsers.map(String.init) ?? "default"), --target-fraction \(config.targetFraction)"
        case .temporal:
            options = config.testCutoff.map { "--test-cutoff \($0)" } ?? "--test-days \(config.testDays)"
            options += ", --validation-days \(config.validationDays)"
        case .predefined: options = "--split-from \(config.splitDirectory ?? "")"
        }
        func refuse(_ what: String) -> StageError {
            .badData("clean: the \(config.split.rawValue) split (\(options)) leaves \(what); nothing changed, every table is as it was")
        }
        if data.users(with: .train) == 0 || data.itemKeys.isEmpty { throw refuse("no training users or items") }
        guard config.split != .predefined else { return }
        if data.rows(in: .validationTarget) == 0 { throw refuse("no validation users with targets") }
        if data.rows(in: .testTarget) == 0 { throw refuse("no test users with targets") }
    }

    func split(_ positives: Positives, userKeys: [String], itemKeys: [String]) throws -> SplitData {
        switch config.split {
        case .strong:
            let users = Set(positives.user).count
            let heldOut = config.heldOutUsers ?? max(1, min(10_000, users / 10))
            return try Splits.strong(positives, userKeys: userKeys, itemKeys: itemKeys, heldOut: heldOut,
                                     targetFraction: config.targetFraction, minHeldOutItems: config.minHeldOutItems,
                                     seed: config.seed)
        case .temporal:
            guard !positives.timestamp.contains(RawEvents.noTimestamp) else {
                throw StageError.badData("temporal split: some interactions have no timestamp; ingest them with a time column")
            }
            let latest = positives.timestamp.max() ?? 0
            let test = config.testCutoff ?? latest - Int64(config.testDays * 86_400)
            let validation = test - Int64(config.validationDays * 86_400)
            return try Splits.temporal(positives, userKeys: userKeys, itemKeys: itemKeys,
                                       validationCutoff: validation, testCutoff: test)
        case .predefined:
            preconditionFailure("the predefined split does not start from raw rows")
        }
    }

    /// Every raw row, in the order it was ingested.
    static func loadRaw(_ store: Store) throws -> RawEvents {
        try store.queue.read { db in
            var events = RawEvents()
            try Split.forEachRawRow(in: db) { events.append(user: $0, item: $1, rating: $2, timestamp: $3) }
            return events
        }
    }

    func write(_ data: SplitData, stats: PreprocessStats, context: StageContext, seconds: Double) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let parameters = String(decoding: try encoder.encode(config), as: UTF8.self)
        var run = Split.RunRecord(runID: context.runID, split: config.split.rawValue,
                                  seed: config.split == .strong ? Int64(bitPattern: config.seed) : nil, parameters: parameters)
        run.rawRows = stats.rawRows
        run.rawUsers = stats.rawUsers
        run.rawItems = stats.rawItems
        run.deduplicatedRows = stats.deduplicatedRows
        run.positiveRows = stats.positiveRows
        run.kcoreIterations = stats.kcoreIterations
        run.kcoreUsersRemoved = stats.kcoreUsersRemoved
        run.kcoreItemsRemoved = stats.kcoreItemsRemoved
        run.users = data.userKeys.count
        run.items = data.itemKeys.count
        run.interactions = data.count
        run.trainUsers = data.users(with: .train)
        run.validationUsers = data.users(with: .validation)
        run.testUsers = data.users(with: .test)
        run.trainRows = data.rows(in: .train)
        run.validationFoldInRows = data.rows(in: .validationFoldIn)
        run.validationTargetRows = data.rows(in: .validationTarget)
        run.testFoldInRows = data.rows(in: .testFoldIn)
        run.testTargetRows = data.rows(in: .testTarget)
        run.droppedHeldOutRows = data.droppedHeldOut
        run.validationCutoff = data.validationCutoff
        run.testCutoff = data.testCutoff
        run.seconds = seconds
        do {
            try Split.replace(
                on: try context.store.bulkConnection(), run: run,
                user: { (data.userKeys[$0], data.userRoles[$0].rawValue) },
                item: { (data.itemKeys[$0], data.itemTrainCounts[$0]) },
                interaction: { k in
                    (Int(data.user[k]), Int(data.item[k]), data.part[k].rawValue,
                     data.timestamp[k] == RawEvents.noTimestamp ? nil : data.timestamp[k])
                })
        } catch is Split.DanglingInteraction {
            throw StageError.badData("clean: interactions refer to users or items that do not exist; nothing written")
        }
    }
}
