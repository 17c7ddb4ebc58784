import ArgumentParser
import Foundation
import Logging
import RecpipeStages
import RecpipeStore

extension InputFormat: ExpressibleByArgument {}
extension TimeUnit: ExpressibleByArgument {}
extension CleanStage.SplitKind: ExpressibleByArgument {}
extension RecpipeStages.Synth.Format: ExpressibleByArgument {}

struct Migrate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create or upgrade a database to this recpipe's schema.",
        discussion: """
            Every command that writes a database migrates it first, under its writer lock; this \
            one only migrates and reports. Commands that only read (recommend, report, plan, \
            status, history) never migrate: on an older schema they exit with 78 and ask for this \
            command. A SQLite file with another application's tables is refused (65) unless \
            --adopt is given.
            """)

    @OptionGroup var options: DatabaseOptions
    @Flag(help: "Add recpipe's tables to a SQLite file that holds another application's tables.")
    var adopt = false

    func run() throws {
        let logger = options.logging.makeLogger()
        try runReporting(logger, database: options.db) {
            let store = try options.openStore(logger, adopt: adopt)
            let applied = try store.queue.read { try Migrator.shipped().applied($0) }
            for migration in applied { print("\(migration.file) \(migration.checksum.prefix(12))") }
            print("schema at version \(applied.last?.version ?? 0)")
        }
    }
}

struct Ingest: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Read interaction files (or a SQLite query) into raw_interactions.",
        discussion: """
            Each source is stored whole or not at all; one already ingested (same SHA-256) is \
            skipped. Rejected rows go to ingest_rejects with the reason. A directory stands \
            for the files in it. Formats: \(InputFormat.allCases.map(\.rawValue).joined(separator: ", ")); \
            any file may be gzip-compressed.
            """)

    @OptionGroup var options: DatabaseOptions

    @Argument(help: "Files or directories to ingest.")
    var sources: [String] = []

    @Option(help: "Input format (sniffed from each file when omitted).")
    var format: InputFormat?

    @Option(name: .customLong("user-col"), help: "Column (or JSON field) holding the user key.")
    var userColumn: String?
    @Option(name: .customLong("item-col"), help: "Column holding the item key.")
    var itemColumn: String?
    @Option(name: .customLong("rating-col"), help: "Column holding the rating or value ('none': no rating).")
    var ratingColumn: String?
    @Option(name: .customLong("time-col"), help: "Column holding the time, Unix seconds or ISO 8601 ('none': no time).")
    var timeColumn: String?

    @Option(name: .customLong("from-sqlite"), help: "Read rows from this SQLite database instead of files.")
    var fromSQLite: String?
    @Option(help: "The SQL query to run on --from-sqlite.")
    var query: String?

    @Option(name: .customLong("max-rejected"), help: "Largest share of rejected rows a source may have (0–1).")
    var maxRejected = 0.10
    @Option(name: .customLong("max-field-bytes"), help: "Longest user or item key accepted, in bytes.")
    var maxFieldBytes = 1024
    @Option(name: .customLong("time-unit"), help: "Unit of numeric timestamps: s, ms or us (ISO 8601 times are unaffected).")
    var timeUnit: TimeUnit = .s
    @Flag(help: "A source that cannot be used fails the command (exit 65) instead of being recorded as refused and passed over.")
    var strict = false
    @Flag(name: .customLong("retry-refused"), help: "Read again sources whose content was refused before (otherwise skipped with a warning).")
    var retryRefused = false
    @Flag(name: .customLong("allow-empty"), help: "Accept a directory holding no files or a pattern matching none (otherwise exit 66).")
    var allowEmpty = false

    func validate() throws {
        if fromSQLite == nil && sources.isEmpty { throw ValidationError("give files to ingest, or --from-sqlite FILE --query SQL") }
        if fromSQLite != nil && !sources.isEmpty { throw ValidationError("give either files or --from-sqlite, not both") }
        if query != nil && fromSQLite == nil { throw ValidationError("--query goes with --from-sqlite") }
    }

    func run() throws {
        let logger = options.logging.makeLogger()
        try runReporting(logger, database: options.db) {
            var config = IngestStage.Config(
                sources: fromSQLite.map { [$0] } ?? sources,
                format: fromSQLite != nil ? .sqlite : format,
                columns: SourceColumns(user: userColumn, item: itemColumn, rating: ratingColumn, timestamp: timeColumn),
                query: query, maxRejectedShare: maxRejected, maxFieldBytes: maxFieldBytes)
            config.timeUnit = timeUnit
            config.strict = strict
            config.retryRefused = retryRefused
            config.allowEmpty = allowEmpty
            try runStage(try IngestStage(config: config), options: options, logger: logger)
        }
    }
}

struct Clean: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Deduplicate, binarize, k-core filter and split raw_interactions into model input.",
        discussion: """
            Replaces the users, items and interactions tables in one transaction and adds a \
            summary row to clean_runs. Splits: strong (Liang et al. 2018: held-out users, 80/20 \
            fold-in/targets), temporal (the last period is the target), predefined (--split-from DIR).
            """)

    @OptionGroup var options: DatabaseOptions

    @Option(name: .customLong("min-rating"), help: "Ratings at or above this are positives ('none': every event is).")
    var minRating = "4"
    @Option(name: .customLong("min-user-interactions"), help: "k-core: users need at least this many interactions.")
    var minUserInteractions = 5
    @Option(name: .customLong("min-item-interactions"), help: "k-core: items need at least this many interactions.")
    var minItemInteractions = 1
    @Option(help: "strong, temporal or predefined.")
    var split: CleanStage.SplitKind?
    @Option(help: "Seed of the strong split's shuffles.")
    var seed: UInt64 = 98765
    @Option(name: .customLong("heldout-users"), help: "Validation users and test users each (strong split; default 10% of users, at most 10,000).")
    var heldOutUsers: Int?
    @Option(name: .customLong("target-fraction"), help: "Share of a held-out user's items that are targets.")
    var targetFraction = 0.2
    @Option(name: .customLong("test-cutoff"), help: "Temporal split: start of the test period (Unix seconds or ISO 8601).")
    var testCutoff: String?
    @Option(name: .customLong("test-days"), help: "Temporal split: length of the test period when no cut-off is given.")
    var testDays = 7.0
    @Option(name: .customLong("validation-days"), help: "Temporal split: length of the validation period before the test period.")
    var validationDays = 7.0
    @Option(name: .customLong("split-from"), help: "Take a published split from this directory (train.csv, validation_tr.csv, ...).")
    var splitFrom: String?

    func run() throws {
        let logger = options.logging.makeLogger()
        try runReporting(logger, database: options.db) {
            var config = CleanStage.Config()
            if minRating == "none" {
                config.minRating = nil
            } else if let value = Double(minRating), value.isFinite {
                config.minRating = value
            } else {
                throw StageError.badOption("--min-rating must be a number or 'none', got '\(minRating)'")
            }
            config.minUserInteractions = minUserInteractions
            config.minItemInteractions = minItemInteractions
            config.split = split ?? (splitFrom != nil ? .predefined : .strong)
            config.seed = seed
            config.heldOutUsers = heldOutUsers
            config.targetFraction = targetFraction
            config.testDays = testDays
            config.validationDays = validationDays
            config.splitDirectory = splitFrom
            if let testCutoff {
                guard let seconds = parseTimestamp(testCutoff) else {
                    throw StageError.badOption("--test-cutoff '\(testCutoff)' is neither Unix seconds nor ISO 8601")
                }
                config.testCutoff = seconds
            }
            try runStage(try CleanStage(config: config), options: options, logger: logger)
        }
    }
}

struct SynthCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "synth",
        abstract: "Write a synthetic interaction log (power-law popularity, low-rank tastes), deterministic by seed.")

    @Option(help: "Output file; .gz compresses it.")
    var out: String
    @Option var users = RecpipeStages.Synth.Config().users
    @Option var items = RecpipeStages.Synth.Config().items
    @Option(help: "Number of (user, item) events, about.")
    var interactions = RecpipeStages.Synth.Config().interactions
    @Option var topics = RecpipeStages.Synth.Config().topics
    @Option(help: "Days the log spans.")
    var days = RecpipeStages.Synth.Config().days
    @Flag(help: "Add a 1–5 star rating column.")
    var ratings = false
    @Option var seed: UInt64 = RecpipeStages.Synth.Config().seed
    @Option var format: RecpipeStages.Synth.Format = .csv
    @Option(name: .customLong("from-day"), help: "Write only the events of this day (0 is the first) and later: the same log, cut in time, so a later day's events can arrive as a new file.")
    var fromDay = 0
    @Option(name: .customLong("until-day"), help: "Write only the events before this day (default: all).")
    var untilDay: Int?
    @OptionGroup var logging: LoggingOptions

    func run() throws {
        let logger = logging.makeLogger()
        try runReporting(logger) {
            var config = RecpipeStages.Synth.Config()
            config.users = users
            config.items = items
            config.interactions = interactions
            config.topics = topics
            config.days = days
            config.ratings = ratings
            config.seed = seed
            let started = Clock.monotonic()
            guard fromDay >= 0, fromDay < (untilDay ?? days) else {
                throw StageError.badOption("synth: --from-day must be at least 0 and before --until-day (or --days)")
            }
            let rows = try RecpipeStages.Synth(config: config).write(to: out, format: format, days: fromDay..<(untilDay ?? Int.max))
            logger.info("synthetic log written", metadata: [
                "file": "\(out)", "rows": "\(rows)", "seconds": "\(String(format: "%.2f", Clock.monotonic() - started))",
            ])
            print("\(out): \(rows) rows")
        }
    }
}
