import GRDB

/// `item_availability` and `user_exclusions` (and `item_metadata.category` for a category
/// cap): the rules the live lists obey, read at scoring time. recpipe never writes them.
public enum BusinessRules {
    /// Items hidden or outside their window at `now` (ISO 8601 UTC, as `Clock.isoNow`).
    public static func unavailableItems(at now: String, in db: Database) throws -> [String] {
        try String.fetchAll(db, sql: """
            SELECT item_key FROM \(TableName.itemAvailability)
            WHERE hidden != 0 OR (available_from IS NOT NULL AND available_from > ?1)
               OR (available_until IS NOT NULL AND available_until <= ?1)
            """, arguments: [now])
    }

    /// The exclusions in force at `now`: `body(user, item)` for each.
    public static func forEachExclusion(at now: String, in db: Database, _ body: (String, String) throws -> Void) throws {
        try db.forEachRow("SELECT user_key, item_key, until FROM \(TableName.userExclusions)") { row in
            // Compared byte by byte, as SQLite compares text.
            if row.isNull(2) || now.utf8.lexicographicallyPrecedes(row.string(2).utf8) { try body(row.string(0), row.string(1)) }
        }
    }

    /// One user's exclusions in force at `now`.
    public static func exclusions(of user: String, at now: String, in db: Database) throws -> [String] {
        try String.fetchAll(db, sql: "SELECT item_key FROM \(TableName.userExclusions) WHERE user_key = ? AND (until IS NULL OR until > ?)",
                            arguments: [user, now])
    }

    /// Every item's category, where it has one.
    public static func categories(in db: Database) throws -> [(item: String, category: String)] {
        try Row.fetchAll(db, sql: "SELECT item_key, category FROM \(TableName.itemMetadata) WHERE category IS NOT NULL")
            .map { ($0["item_key"], $0["category"]) }
    }

    /// SHA-256 over the rule tables' rows (and the categories when `categories`): equal means
    /// the same rules. The scheduler's fingerprint of score holds it, so a changed rule table
    /// makes score stale; every scoring run records the digest it applied.
    public static func digest(categories: Bool, in db: Database) throws -> String {
        var hasher = SHA256()
        var tables: [(TableName, String)] = [
            (.itemAvailability, "item_key, available_from, available_until, hidden"),
            (.userExclusions, "user_key, item_key, until"),
        ]
        if categories { tables.append((.itemMetadata, "item_key, category")) }
        for (table, columns) in tables {
            hasher.update(Array("\(table)\u{0}".utf8))
            let count = columns.split(separator: ",").count
            try db.forEachRow("SELECT \(columns) FROM \(table) ORDER BY 1, 2") { row in
                for c in 0..<count {
                    // Type, then the value's bytes: NULL, 0 and '' hash apart.
                    switch row.type(c) {
                    case .null: hasher.update([0])
                    case .integer: hasher.update([1] + withUnsafeBytes(of: row.int64(c).littleEndian, Array.init))
                    default: hasher.update([2] + Array(row.string(c).utf8) + [0])
                    }
                }
            }
        }
        return hasher.finalizeHex()
    }
}
