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

    /// The exclusions in force at `now`: `body(user, item)` for each, in key order (a
    /// user's rows together).
    public static func forEachExclusion(at now: String, in db: Database,
                                        _ body: (UnsafeBufferPointer<UInt8>, UnsafeBufferPointer<UInt8>) throws -> Void) throws {
        try db.forEachRow("SELECT user_key, item_key, until FROM \(TableName.userExclusions) ORDER BY user_key, item_key") { row in
            if inForce(row, at: now) { try body(row.bytes(0)!, row.bytes(1)!) }
        }
    }

    /// Whether an exclusion row (user_key, item_key, until) is in force at `now`: compared
    /// byte by byte, as SQLite compares text.
    static func inForce(_ row: RawRow, at now: String) -> Bool {
        guard let until = row.bytes(2) else { return true }
        return now.utf8.lexicographicallyPrecedes(until)
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
    /// makes score stale; every scoring run records the digest it applied. With
    /// `exclusions`, the exclusions in force at `now` go to `body` from the same scan, as
    /// `forEachExclusion` gives them (at ML-20M size they are millions of rows).
    public static func digest(categories: Bool, in db: Database, exclusionsAt now: String? = nil,
                              _ body: (UnsafeBufferPointer<UInt8>, UnsafeBufferPointer<UInt8>) throws -> Void = { _, _ in }) throws -> String {
        var hasher = SHA256()
        // Reused for every value: a type byte, and a type byte with an integer's 8 bytes.
        var tag: [UInt8] = [0], integer = [UInt8](repeating: 0, count: 9)
        var tables: [(TableName, String)] = [
            (.itemAvailability, "item_key, available_from, available_until, hidden"),
            (.userExclusions, "user_key, item_key, until"),
        ]
        if categories { tables.append((.itemMetadata, "item_key, category")) }
        for (table, columns) in tables {
            hasher.update(Array("\(table)\u{0}".utf8))
            let count = columns.split(separator: ",").count
            let exclusions = table == .userExclusions ? now : nil
            try db.forEachRow("SELECT \(columns) FROM \(table) ORDER BY 1, 2") { row in
                for c in 0..<count {
                    // Type, then the value's bytes: NULL, 0 and '' hash apart.
                    switch row.type(c) {
                    case .null:
                        tag[0] = 0
                        tag.withUnsafeBytes { hasher.update($0) }
                    case .integer:
                        integer[0] = 1
                        withUnsafeBytes(of: row.int64(c).littleEndian) { value in
                            for b in 0..<8 { integer[1 + b] = value[b] }
                        }
                        integer.withUnsafeBytes { hasher.update($0) }
                    default:
                        tag[0] = 2
                        tag.withUnsafeBytes { hasher.update($0) }
                        hasher.update(UnsafeRawBufferPointer(row.bytes(c)!))
                        tag[0] = 0
                        tag.withUnsafeBytes { hasher.update($0) }
                    }
                }
                if let exclusions, inForce(row, at: exclusions) { try body(row.bytes(0)!, row.bytes(1)!) }
            }
        }
        return hasher.finalizeHex()
    }

    /// Writes rules as a user would with SQL: `hidden` items hidden, and for-good exclusions.
    /// For benchmarks and tests; recpipe itself never writes these tables.
    public static func add(hidden: [String], exclusions: [(user: String, item: String)], on connection: RawConnection) throws {
        try connection.inTransaction {
            try connection.insert(into: .itemAvailability, columns: ["item_key", "hidden"], count: hidden.count) { binder, n in
                binder.bind(hidden[n])
                binder.bind(1)
            }
            try connection.insert(into: .userExclusions, columns: ["user_key", "item_key"], count: exclusions.count) { binder, n in
                binder.bind(exclusions[n].user)
                binder.bind(exclusions[n].item)
            }
        }
    }
}
