import GRDBSQLite
import RecpipeStore

/// Why a row was rejected; stored in `ingest_rejects.reason`.
public enum RejectReason: String, Sendable, CaseIterable {
    case columnCount = "column_count"
    case emptyKey = "empty_key"
    case badRating = "bad_rating"
    case nonFiniteRating = "non_finite_rating"
    case badTimestamp = "bad_timestamp"
    case invalidUTF8 = "invalid_utf8"
    case oversizedField = "oversized_field"
    case badQuoting = "bad_quoting"
    case malformedJSON = "malformed_json"
    case missingField = "missing_field"
    case controlCharacter = "control_character"
    case blobKey = "blob_key"
}

/// One rejected row, as `ingest_rejects` stores it.
struct Reject: Sendable, Equatable {
    var line: Int
    var reason: RejectReason
    var detail: String
    var raw: String
}

/// Writes one batch's accepted and rejected rows with prepared statements on the raw
/// connection: the bulk path of ingest. Text is bound without copying (SQLITE_STATIC), so
/// the caller's bytes must stay put until the call returns, which they do.
///
/// A source is judged on its first rows: once `judgeAfter` rows are read, as soon as more
/// than `maxRejectedShare` of those read so far are rejected it throws `tooManyRejects`, so
/// a file of millions of bad lines is neither read to its end nor held in memory.
final class RowSink: RowConsumer {
    private let connection: OpaquePointer
    private var insertRow: OpaquePointer?
    private var insertReject: OpaquePointer?
    let batchID: Int64
    let source: String
    let maxRejectedShare: Double
    private(set) var accepted = 0
    private(set) var rejected = 0
    /// The first rejects, kept for the record of a refused source.
    private(set) var firstRejects: [Reject] = []
    var firstReject: String? { firstRejects.first.map { "line \($0.line): \($0.reason.rawValue): \($0.detail)" } }

    /// Rejects a refused source keeps in `ingest_rejects`.
    static let keptRejects = 1000
    /// Rows read before the share of rejects is judged.
    static let judgeAfter = 10_000

    init(connection: OpaquePointer, batchID: Int64, source: String, maxRejectedShare: Double) throws {
        self.connection = connection
        self.batchID = batchID
        self.source = source
        self.maxRejectedShare = maxRejectedShare
        try prepare(&insertRow, """
            INSERT INTO raw_interactions (batch_id, line, user_key, item_key, rating, ts) VALUES (?, ?, ?, ?, ?, ?)
            """)
        try prepare(&insertReject, "INSERT INTO ingest_rejects (batch_id, line, reason, detail, raw) VALUES (?, ?, ?, ?, ?)")
        // Bindings survive sqlite3_reset: the batch is bound once.
        sqlite3_bind_int64(insertRow, 1, batchID)
        sqlite3_bind_int64(insertReject, 1, batchID)
    }

    deinit {
        sqlite3_finalize(insertRow)
        sqlite3_finalize(insertReject)
    }

    private func prepare(_ statement: inout OpaquePointer?, _ sql: String) throws {
        guard sqlite3_prepare_v2(connection, sql, -1, &statement, nil) == SQLITE_OK else {
            throw StoreError.sqlite(connection, sql: sql)
        }
    }

    /// Throws `tooManyRejects` when more than `maxRejectedShare` of the `read` rows were
    /// rejected. `whole`: the source was read to its end; otherwise it is judged only once
    /// `judgeAfter` rows are read, and reading stops (see the type's note).
    func judge(read: Int, whole: Bool) throws {
        guard whole || read >= Self.judgeAfter, Double(rejected) > maxRejectedShare * Double(read) else { return }
        throw StageError.tooManyRejects(path: source, rejected: rejected, read: read, threshold: maxRejectedShare,
                                        example: firstReject ?? "", stoppedEarly: !whole)
    }

    func accept(line: Int, user: UnsafeBufferPointer<UInt8>, item: UnsafeBufferPointer<UInt8>,
                rating: Double?, timestamp: Int64?) throws {
        let statement = insertRow
        sqlite3_bind_int64(statement, 2, Int64(line))
        sqlite3_bind_text(statement, 3, UnsafeRawPointer(user.baseAddress!).assumingMemoryBound(to: CChar.self),
                          Int32(user.count), nil)
        sqlite3_bind_text(statement, 4, UnsafeRawPointer(item.baseAddress!).assumingMemoryBound(to: CChar.self),
                          Int32(item.count), nil)
        if let rating { sqlite3_bind_double(statement, 5, rating) } else { sqlite3_bind_null(statement, 5) }
        if let timestamp { sqlite3_bind_int64(statement, 6, timestamp) } else { sqlite3_bind_null(statement, 6) }
        guard sqlite3_step(statement) == SQLITE_DONE else { throw StoreError.sqlite(connection, sql: "INSERT INTO raw_interactions") }
        sqlite3_reset(statement)
        accepted += 1
    }

    /// Writes a batch of parsed rows and rejects (the rows in multi-row INSERTs).
    func write(_ batch: RowBatch) throws {
        try batch.keys.withUnsafeBufferPointer { arena in
            let base = UnsafeRawPointer(arena.baseAddress!).assumingMemoryBound(to: CChar.self)
            try Bulk.insert(connection, table: "raw_interactions",
                            columns: ["batch_id", "line", "user_key", "item_key", "rating", "ts"], count: batch.count) { statement, p, r in
                sqlite3_bind_int64(statement, p, batchID)
                sqlite3_bind_int64(statement, p + 1, Int64(batch.line[r]))
                sqlite3_bind_text(statement, p + 2, base + Int(batch.userStart[r]), batch.userCount[r], nil)
                sqlite3_bind_text(statement, p + 3, base + Int(batch.itemStart[r]), batch.itemCount[r], nil)
                let rating = batch.rating[r], timestamp = batch.timestamp[r]
                if rating.isNaN { sqlite3_bind_null(statement, p + 4) } else { sqlite3_bind_double(statement, p + 4, rating) }
                if timestamp == Int64.min { sqlite3_bind_null(statement, p + 5) } else { sqlite3_bind_int64(statement, p + 5, timestamp) }
            }
        }
        accepted += batch.count
        for reject in batch.rejects { try store(reject) }
        try judge(read: accepted + rejected, whole: false)
    }

    func reject(line: Int, reason: RejectReason, detail: String, raw: String) throws {
        try store(Reject(line: line, reason: reason, detail: detail, raw: raw))
        try judge(read: accepted + rejected, whole: false)
    }

    private func store(_ reject: Reject) throws {
        try Self.insert(reject, statement: insertReject!, connection: connection)
        rejected += 1
        if firstRejects.count < Self.keptRejects { firstRejects.append(reject) }
    }

    /// Inserts one reject with a prepared `INSERT INTO ingest_rejects` whose batch is bound.
    static func insert(_ reject: Reject, statement: OpaquePointer, connection: OpaquePointer) throws {
        sqlite3_bind_int64(statement, 2, Int64(reject.line))
        sqlite3_bind_text(statement, 3, reject.reason.rawValue, -1, sqliteTransient)
        sqlite3_bind_text(statement, 4, reject.detail, -1, sqliteTransient)
        sqlite3_bind_text(statement, 5, reject.raw, -1, sqliteTransient)
        guard sqlite3_step(statement) == SQLITE_DONE else { throw StoreError.sqlite(connection, sql: "INSERT INTO ingest_rejects") }
        sqlite3_reset(statement)
    }
}
