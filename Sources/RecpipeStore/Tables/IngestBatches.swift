import Foundation
import GRDB

/// `ingest_batches`, `ingest_rejects` and `raw_interactions`: what ingest stores of each
/// source. A batch is written `pending` on the bulk connection, its rows and rejects beside
/// it, then completed in the same transaction; a refused source is a batch with status
/// `refused`, its reason and first rejects, and no rows.
public enum IngestBatches {
    /// An earlier batch with the same content.
    public struct Earlier: Sendable, Equatable {
        public var batchID: Int64
        public var refused: Bool
        public var reason: String?
    }

    /// One rejected row.
    public struct RejectRow: Sendable, Equatable {
        public var line: Int
        public var reason: String
        public var detail: String
        public var raw: String
        public init(line: Int, reason: String, detail: String, raw: String) {
            self.line = line
            self.reason = reason
            self.detail = detail
            self.raw = raw
        }
    }

    /// Whether a file source of exactly `bytes` bytes was recorded before (only such a
    /// file can repeat one).
    public static func anyFile(ofSize bytes: Int, in db: Database) throws -> Bool {
        try Bool.fetchOne(db, sql: "SELECT count(*) > 0 FROM \(TableName.ingestBatches) WHERE bytes = ? AND query IS NULL",
                          arguments: [bytes]) ?? false
    }

    /// The batch recorded with this content hash, if any.
    public static func earlier(hash: String, in db: Database) throws -> Earlier? {
        try Row.fetchOne(db, sql: "SELECT batch_id, status, reason FROM \(TableName.ingestBatches) WHERE content_hash = ?",
                         arguments: [hash]).map { row in
            Earlier(batchID: row["batch_id"], refused: (row["status"] as String) == "refused", reason: row["reason"])
        }
    }

    /// The newest batch: its status, rows read and reason.
    public static func newest(in db: Database) throws -> (status: String, read: Int, reason: String?)? {
        try Row.fetchOne(db, sql: "SELECT status, rows_read, reason FROM \(TableName.ingestBatches) ORDER BY batch_id DESC LIMIT 1")
            .map { ($0["status"], $0["rows_read"], $0["reason"]) }
    }

    /// Marks a refused batch as seen by `run` (the metrics count what the latest run refused).
    public static func markSeen(batch: Int64, run: Int64, in db: Database) throws {
        try db.execute(sql: "UPDATE \(TableName.ingestBatches) SET seen_run_id = ? WHERE batch_id = ?", arguments: [run, batch])
    }

    /// The stored batches of ingest runs after `run`, in order.
    public static func stored(afterRun run: Int64, in db: Database) throws -> [Int64] {
        try Int64.fetchAll(db, sql: "SELECT batch_id FROM \(TableName.ingestBatches) WHERE run_id > ? AND status = 'stored' ORDER BY batch_id",
                           arguments: [run])
    }

    /// The (user, item) pairs of `batches` that no other batch holds, rows rated below
    /// `minRating` left out (nil: all): `body(user, item)` for each, once. Only the new pairs
    /// are held in memory; the older rows are read once, each pair's bytes hashed where
    /// SQLite keeps them (no string built) and looked up among the new ones, so the cost is
    /// one pass over the table whatever its size.
    public static func newPairs(in batches: [Int64], minRating: Double?, in db: Database, _ body: (String, String) throws -> Void) throws {
        guard !batches.isEmpty else { return }
        let list = batches.map(String.init).joined(separator: ",")
        var pairs = NewPairs()
        // Keys are never NULL (the table says NOT NULL); an empty key stands in all the same.
        func key(_ row: RawRow, _ column: Int) -> UnsafeBufferPointer<UInt8> { row.bytes(column) ?? UnsafeBufferPointer(start: nil, count: 0) }
        try db.forEachRow("""
            SELECT user_key, item_key FROM \(TableName.rawInteractions)
            WHERE batch_id IN (\(list)) AND (?1 IS NULL OR rating IS NULL OR rating >= ?1)
            """, [minRating.map { .real($0) } ?? .null]) { pairs.insert(key($0, 0), key($0, 1)) }
        try db.forEachRow("SELECT user_key, item_key FROM \(TableName.rawInteractions) WHERE batch_id NOT IN (\(list))") {
            pairs.markSeen(key($0, 0), key($0, 1))
        }
        try pairs.forEachUnseen(body)
    }

    /// Distinct (user, item) pairs by their bytes, and which of them were seen elsewhere.
    struct NewPairs {
        var users: [[UInt8]] = [], items: [[UInt8]] = []
        var seen: [Bool] = []
        /// Pair indices by the pair's hash.
        var byHash: [Int: [Int32]] = [:]

        static func hash(_ user: UnsafeBufferPointer<UInt8>, _ item: UnsafeBufferPointer<UInt8>) -> Int {
            var hasher = Hasher()
            hasher.combine(user.count)
            hasher.combine(bytes: UnsafeRawBufferPointer(user))
            hasher.combine(bytes: UnsafeRawBufferPointer(item))
            return hasher.finalize()
        }

        func find(_ user: UnsafeBufferPointer<UInt8>, _ item: UnsafeBufferPointer<UInt8>, hash: Int) -> Int32? {
            byHash[hash]?.first { users[Int($0)].elementsEqual(user) && items[Int($0)].elementsEqual(item) }
        }

        mutating func insert(_ user: UnsafeBufferPointer<UInt8>, _ item: UnsafeBufferPointer<UInt8>) {
            let h = Self.hash(user, item)
            guard find(user, item, hash: h) == nil else { return }
            byHash[h, default: []].append(Int32(users.count))
            users.append(Array(user))
            items.append(Array(item))
            seen.append(false)
        }

        mutating func markSeen(_ user: UnsafeBufferPointer<UInt8>, _ item: UnsafeBufferPointer<UInt8>) {
            if let index = find(user, item, hash: Self.hash(user, item)) { seen[Int(index)] = true }
        }

        func forEachUnseen(_ body: (String, String) throws -> Void) rethrows {
            for k in users.indices where !seen[k] {
                try body(String(decoding: users[k], as: UTF8.self), String(decoding: items[k], as: UTF8.self))
            }
        }
    }

    /// Starts a batch on the bulk connection (inside its transaction): a `pending` row whose
    /// hash is unique until `complete` sets the real one. Returns the batch id.
    public static func begin(run: Int64, source: String, query: String?, format: String, startedAt: String,
                             on connection: RawConnection) throws -> Int64 {
        try connection.run("""
            INSERT INTO \(TableName.ingestBatches) (run_id, source, query, format, content_hash, bytes, rows_read,
                rows_accepted, rows_rejected, started_at, finished_at, seconds, seen_run_id)
            VALUES (?1, ?2, ?3, ?4, ?5, 0, 0, 0, 0, ?6, ?6, 0, ?1)
            """, [.integer(run), .text(source), query.map { .text($0) } ?? .null, .text(format),
                  .text("pending-\(UUID().uuidString)"), .text(startedAt)])
        return connection.lastInsertedRowID
    }

    /// The batch recorded with this content hash, seen from the bulk connection.
    public static func earlier(hash: String, on connection: RawConnection) throws -> Earlier? {
        guard case .integer(let batch)? = try connection.run("SELECT batch_id FROM \(TableName.ingestBatches) WHERE content_hash = ?",
                                                            [.text(hash)]) else { return nil }
        let status = try connection.run("SELECT status FROM \(TableName.ingestBatches) WHERE batch_id = ?", [.integer(batch)])
        return Earlier(batchID: batch, refused: status == .text("refused"), reason: nil)
    }

    /// Removes a refused batch and its rejects (its content was read again and stored).
    public static func remove(refused batch: Int64, on connection: RawConnection) throws {
        try connection.run("DELETE FROM \(TableName.ingestRejects) WHERE batch_id = ?", [.integer(batch)])
        try connection.run("DELETE FROM \(TableName.ingestBatches) WHERE batch_id = ? AND status = 'refused'", [.integer(batch)])
    }

    /// Completes a stored batch's row.
    public static func complete(batch: Int64, hash: String, bytes: Int, read: Int, accepted: Int, rejected: Int, seconds: Double,
                                on connection: RawConnection) throws {
        try connection.run("""
            UPDATE \(TableName.ingestBatches) SET content_hash = ?, bytes = ?, rows_read = ?, rows_accepted = ?,
                rows_rejected = ?, finished_at = ?, seconds = ? WHERE batch_id = ?
            """, [.text(hash), .integer(Int64(bytes)), .integer(Int64(read)), .integer(Int64(accepted)),
                  .integer(Int64(rejected)), .text(Clock.isoNow()), .real(seconds), .integer(batch)])
    }

    /// A source that cannot be used.
    public struct Refusal: Sendable {
        public var run: Int64
        public var source: String
        public var query: String?
        public var format: String
        public var reason: String
        /// nil where the content could not be read whole: then a later run reads it again.
        public var hash: String?
        public var bytes: Int
        public var read: Int
        public var rejected: Int
        public var rejects: [RejectRow]
        public var startedAt: String
        public init(run: Int64, source: String, query: String?, format: String, reason: String, hash: String?, bytes: Int,
                    read: Int, rejected: Int, rejects: [RejectRow], startedAt: String) {
            self.run = run
            self.source = source
            self.query = query
            self.format = format
            self.reason = reason
            self.hash = hash
            self.bytes = bytes
            self.read = read
            self.rejected = rejected
            self.rejects = rejects
            self.startedAt = startedAt
        }
    }

    /// Records a refused source (in the caller's transaction): an earlier refusal of the
    /// same content (a retry) is replaced. Returns the batch id.
    public static func recordRefused(_ refusal: Refusal, in db: Database) throws -> Int64 {
        if let hash = refusal.hash {
            for old in try Int64.fetchAll(db, sql: "SELECT batch_id FROM \(TableName.ingestBatches) WHERE content_hash = ? AND status = 'refused'",
                                          arguments: [hash]) {
                try db.execute(sql: "DELETE FROM \(TableName.ingestRejects) WHERE batch_id = ?", arguments: [old])
                try db.execute(sql: "DELETE FROM \(TableName.ingestBatches) WHERE batch_id = ?", arguments: [old])
            }
        }
        try db.execute(sql: """
            INSERT INTO \(TableName.ingestBatches) (run_id, source, query, format, content_hash, bytes, rows_read, rows_accepted,
                rows_rejected, started_at, finished_at, seconds, status, reason, seen_run_id)
            VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, 0, 'refused', ?, ?)
            """, arguments: [refusal.run, refusal.source, refusal.query, refusal.format,
                             refusal.hash ?? "unread-\(UUID().uuidString)", refusal.bytes, refusal.read, refusal.rejected,
                             refusal.startedAt, Clock.isoNow(), refusal.reason, refusal.run])
        let batch = db.lastInsertedRowID
        let insert = try db.makeStatement(sql: "INSERT INTO \(TableName.ingestRejects) (batch_id, line, reason, detail, raw) VALUES (?, ?, ?, ?, ?)")
        for reject in refusal.rejects {
            try insert.execute(arguments: [batch, reject.line, reject.reason, reject.detail, reject.raw])
        }
        return batch
    }

    /// Writes one batch's rows and rejects with prepared statements on the bulk connection
    /// (the bulk path of ingest). Keys are bound without copying: the caller's bytes stay put
    /// until each call returns.
    public final class Writer {
        private let connection: RawConnection
        private let insertRow: RawStatement
        private let insertReject: RawStatement
        public let batchID: Int64

        public init(connection: RawConnection, batchID: Int64) throws {
            self.connection = connection
            self.batchID = batchID
            insertRow = try connection.prepare("""
                INSERT INTO \(TableName.rawInteractions) (batch_id, line, user_key, item_key, rating, ts) VALUES (?, ?, ?, ?, ?, ?)
                """)
            insertReject = try connection.prepare(
                "INSERT INTO \(TableName.ingestRejects) (batch_id, line, reason, detail, raw) VALUES (?, ?, ?, ?, ?)")
            // Bindings survive a reset: the batch is bound once.
            insertRow.bind(.integer(batchID), at: 1)
            insertReject.bind(.integer(batchID), at: 1)
        }

        /// One accepted row.
        public func row(line: Int, user: UnsafeBufferPointer<UInt8>, item: UnsafeBufferPointer<UInt8>,
                        rating: Double?, timestamp: Int64?) throws {
            var row = insertRow.binder(from: 2)
            row.bind(line)
            row.bindText(user)
            row.bindText(item)
            row.bind(rating)
            row.bind(timestamp)
            try insertRow.execute()
        }

        /// `count` accepted rows in multi-row INSERTs; `row(r)` gives each.
        public func rows(count: Int, _ row: (Int) -> (line: Int, user: UnsafeBufferPointer<UInt8>, item: UnsafeBufferPointer<UInt8>,
                                                       rating: Double?, timestamp: Int64?)) throws {
            let batch = batchID
            try connection.insert(into: .rawInteractions, columns: ["batch_id", "line", "user_key", "item_key", "rating", "ts"],
                                  count: count) { binder, r in
                let (line, user, item, rating, timestamp) = row(r)
                binder.bind(batch)
                binder.bind(line)
                binder.bindText(user)
                binder.bindText(item)
                binder.bind(rating)
                binder.bind(timestamp)
            }
        }

        /// One rejected row.
        public func reject(_ reject: RejectRow) throws {
            var row = insertReject.binder(from: 2)
            row.bind(reject.line)
            row.bind(reject.reason)
            row.bind(reject.detail)
            row.bind(reject.raw)
            try insertReject.execute()
        }
    }
}
