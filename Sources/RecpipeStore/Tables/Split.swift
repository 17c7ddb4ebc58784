import GRDB

/// The raw rows and the current split: `raw_interactions` (read), `clean_runs`, `users`,
/// `items` and `interactions`, which clean replaces whole in one transaction.
public enum Split {
    /// The newest clean run.
    public struct Run: Sendable, Equatable {
        public var runID: Int64
        public var split: String
        /// The clean stage's options, as JSON.
        public var parameters: String
        /// Rows of `raw_interactions` it read (split files' rows for a predefined split).
        public var rawRows: Int
    }

    /// The newest clean run; nil before the first.
    public static func latestRun(in db: Database) throws -> Run? {
        try Row.fetchOne(db, sql: "SELECT run_id, split, parameters, raw_rows FROM \(TableName.cleanRuns) ORDER BY run_id DESC LIMIT 1")
            .map(run)
    }

    /// A clean run by id; nil when there is none.
    public static func run(_ runID: Int64, in db: Database) throws -> Run? {
        try Row.fetchOne(db, sql: "SELECT run_id, split, parameters, raw_rows FROM \(TableName.cleanRuns) WHERE run_id = ?",
                         arguments: [runID]).map(run)
    }

    static func run(_ row: Row) -> Run {
        Run(runID: row["run_id"], split: row["split"], parameters: row["parameters"], rawRows: row["raw_rows"])
    }

    /// The newest clean run's whole row, as the report shows it.
    public static func latestRunRow(in db: Database) throws -> Row? {
        try Row.fetchOne(db, sql: "SELECT * FROM \(TableName.cleanRuns) ORDER BY run_id DESC LIMIT 1")
    }

    /// `items.item_key` by `item_idx`.
    public static func itemKeys(in db: Database) throws -> [String] {
        try String.fetchAll(db, sql: "SELECT item_key FROM \(TableName.items) ORDER BY item_idx")
    }

    /// `users.user_key` by `user_idx`.
    public static func userKeys(in db: Database) throws -> [String] {
        try String.fetchAll(db, sql: "SELECT user_key FROM \(TableName.users) ORDER BY user_idx")
    }

    public static func userCount(in db: Database) throws -> Int {
        try Int.fetchOne(db, sql: "SELECT count(*) FROM \(TableName.users)") ?? 0
    }

    /// Items with their training interactions, most interacted first (ties by index).
    public static func itemsByPopularity(in db: Database) throws -> [(item: String, interactions: Int)] {
        try Row.fetchAll(db, sql: "SELECT item_key, train_interactions FROM \(TableName.items) ORDER BY train_interactions DESC, item_idx")
            .map { ($0["item_key"], $0["train_interactions"]) }
    }

    /// Every interaction of the split, by user then item: `body(user_idx, item_idx, part)`.
    public static func forEachInteraction(in db: Database, _ body: (Int, Int, String) throws -> Void) throws {
        try db.forEachRow("SELECT user_idx, item_idx, part FROM \(TableName.interactions) ORDER BY user_idx, item_idx") { row in
            try body(row.int(0), row.int(1), row.string(2))
        }
    }

    /// Users of `raw_interactions` who are not in the split (left out by its filters, or
    /// ingested since), each with the items of their rows, by user key in byte order.
    public static func usersOutsideTheSplit(in db: Database) throws -> [(user: String, items: [String])] {
        var items: [ExactKey: [String]] = [:]
        try db.forEachRow("""
            SELECT r.user_key, r.item_key FROM \(TableName.rawInteractions) AS r
            WHERE NOT EXISTS (SELECT 1 FROM \(TableName.users) AS u WHERE u.user_key = r.user_key)
            """) { row in
            items[ExactKey(row.string(0)), default: []].append(row.string(1))
        }
        return items.keys.sorted().map { ($0.text, items[$0]!) }
    }

    /// Every raw row, in the order it was ingested: `body(user, item, rating, ts)`.
    public static func forEachRawRow(in db: Database, _ body: (String, String, Double?, Int64?) throws -> Void) throws {
        try db.forEachRow("SELECT user_key, item_key, rating, ts FROM \(TableName.rawInteractions) ORDER BY rowid") { row in
            try body(row.string(0), row.string(1), row.optionalDouble(2), row.optionalInt64(3))
        }
    }

    /// A clean run's record in `clean_runs`.
    public struct RunRecord: Sendable {
        public var runID: Int64
        public var split: String
        public var seed: Int64?
        public var parameters: String
        public var rawRows = 0, rawUsers = 0, rawItems = 0, deduplicatedRows = 0, positiveRows = 0
        public var kcoreIterations = 0, kcoreUsersRemoved = 0, kcoreItemsRemoved = 0
        public var users = 0, items = 0, interactions = 0
        public var trainUsers = 0, validationUsers = 0, testUsers = 0
        public var trainRows = 0, validationFoldInRows = 0, validationTargetRows = 0, testFoldInRows = 0, testTargetRows = 0
        public var droppedHeldOutRows = 0
        public var validationCutoff: Int64?
        public var testCutoff: Int64?
        public var seconds = 0.0

        public init(runID: Int64, split: String, seed: Int64?, parameters: String) {
            self.runID = runID
            self.split = split
            self.seed = seed
            self.parameters = parameters
        }
    }

    /// Replaces the split in one transaction on the bulk connection: `users` users
    /// (`user(k)`: key and role of user_idx k), `items` items (key and training count),
    /// `interactions` rows, then the run's record. Foreign keys are checked once over the
    /// whole table before commit (several times faster than row by row); a violation
    /// throws `danglingInteraction` and nothing is written.
    public static func replace(on connection: RawConnection, run: RunRecord,
                               user: (Int) -> (key: String, role: String),
                               item: (Int) -> (key: String, trainInteractions: Int),
                               interaction: (Int) -> (user: Int, item: Int, part: String, ts: Int64?)) throws {
        try connection.execute("PRAGMA foreign_keys = OFF")
        defer { try? connection.execute("PRAGMA foreign_keys = ON") }
        try connection.inTransaction {
            try connection.execute("DELETE FROM \(TableName.interactions); DELETE FROM \(TableName.users); DELETE FROM \(TableName.items);")
            try connection.insert(into: .users, columns: ["user_idx", "user_key", "role"], count: run.users) { row, k in
                let (key, role) = user(k)
                row.bind(k)
                row.bind(key)
                row.bind(role)
            }
            try connection.insert(into: .items, columns: ["item_idx", "item_key", "train_interactions"], count: run.items) { row, k in
                let (key, count) = item(k)
                row.bind(k)
                row.bind(key)
                row.bind(count)
            }
            try connection.insert(into: .interactions, columns: ["user_idx", "item_idx", "part", "ts"], count: run.interactions) { row, k in
                let (u, i, part, ts) = interaction(k)
                row.bind(u)
                row.bind(i)
                row.bind(part)
                row.bind(ts)
            }
            if try connection.run("PRAGMA foreign_key_check(\(TableName.interactions))") != nil {
                throw DanglingInteraction()
            }
            func int(_ v: Int) -> RawConnection.Value { .integer(Int64(v)) }
            func optional(_ v: Int64?) -> RawConnection.Value { v.map { .integer($0) } ?? .null }
            let arguments: [RawConnection.Value] = [
                .integer(run.runID), .text(Clock.isoNow()), .text(run.split), optional(run.seed), .text(run.parameters),
                int(run.rawRows), int(run.rawUsers), int(run.rawItems), int(run.deduplicatedRows),
                int(run.positiveRows), int(run.kcoreIterations), int(run.kcoreUsersRemoved),
                int(run.kcoreItemsRemoved), int(run.users), int(run.items), int(run.interactions),
                .real(Double(run.interactions) / Double(max(1, run.users)) / Double(max(1, run.items))),
                int(run.trainUsers), int(run.validationUsers), int(run.testUsers),
                int(run.trainRows), int(run.validationFoldInRows), int(run.validationTargetRows),
                int(run.testFoldInRows), int(run.testTargetRows), int(run.droppedHeldOutRows),
                optional(run.validationCutoff), optional(run.testCutoff), .real(run.seconds),
            ]
            try connection.run("""
                INSERT INTO \(TableName.cleanRuns) (run_id, created_at, split, seed, parameters, raw_rows, raw_users, raw_items,
                    deduplicated_rows, positive_rows, kcore_iterations, kcore_users_removed, kcore_items_removed,
                    users, items, interactions, density, train_users, validation_users, test_users,
                    train_rows, validation_tr_rows, validation_te_rows, test_tr_rows, test_te_rows,
                    dropped_heldout_rows, validation_cutoff, test_cutoff, seconds)
                VALUES (\(Array(repeating: "?", count: arguments.count).joined(separator: ", ")))
                """, arguments)
        }
    }

    /// An interaction refers to a user or item that does not exist.
    public struct DanglingInteraction: Error {}
}
