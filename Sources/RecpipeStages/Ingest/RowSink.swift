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

/// Writes one batch's accepted and rejected rows with prepared statements on the bulk
/// connection: the bulk path of ingest. Keys are bound without copying, so the caller's
/// bytes must stay put until the call returns, which they do.
///
/// A source is judged on its first rows: once `judgeAfter` rows are read, as soon as more
/// than `maxRejectedShare` of those read so far are rejected it throws `tooManyRejects`, so
/// a file of millions of bad lines is neither read to its end nor held in memory.
final class RowSink: RowConsumer {
    private let connection: RawConnection
    private let insertRow: RawStatement
    private let insertReject: RawStatement
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

    init(connection: RawConnection, batchID: Int64, source: String, maxRejectedShare: Double) throws {
        self.connection = connection
        self.batchID = batchID
        self.source = source
        self.maxRejectedShare = maxRejectedShare
        insertRow = try connection.prepare("""
            INSERT INTO \(TableName.rawInteractions) (batch_id, line, user_key, item_key, rating, ts) VALUES (?, ?, ?, ?, ?, ?)
            """)
        insertReject = try connection.prepare(
            "INSERT INTO \(TableName.ingestRejects) (batch_id, line, reason, detail, raw) VALUES (?, ?, ?, ?, ?)")
        // Bindings survive a reset: the batch is bound once.
        insertRow.bind(.integer(batchID), at: 1)
        insertReject.bind(.integer(batchID), at: 1)
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
        var row = insertRow.binder(from: 2)
        row.bind(line)
        row.bindText(user)
        row.bindText(item)
        row.bind(rating)
        row.bind(timestamp)
        try insertRow.execute()
        accepted += 1
    }

    /// Writes a batch of parsed rows and rejects (the rows in multi-row INSERTs).
    func write(_ batch: RowBatch) throws {
        try batch.keys.withUnsafeBufferPointer { arena in
            let base = UnsafeRawPointer(arena.baseAddress!).assumingMemoryBound(to: UInt8.self)
            try connection.insert(into: .rawInteractions,
                                  columns: ["batch_id", "line", "user_key", "item_key", "rating", "ts"], count: batch.count) { row, r in
                row.bind(batchID)
                row.bind(batch.line[r])
                row.bindText(UnsafeBufferPointer(start: base + Int(batch.userStart[r]), count: Int(batch.userCount[r])))
                row.bindText(UnsafeBufferPointer(start: base + Int(batch.itemStart[r]), count: Int(batch.itemCount[r])))
                let rating = batch.rating[r], timestamp = batch.timestamp[r]
                row.bind(rating.isNaN ? nil : rating)
                row.bind(timestamp == Int64.min ? nil : timestamp)
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
        try Self.insert(reject, statement: insertReject)
        rejected += 1
        if firstRejects.count < Self.keptRejects { firstRejects.append(reject) }
    }

    /// Inserts one reject with `insertReject` (its batch bound).
    static func insert(_ reject: Reject, statement: RawStatement) throws {
        var row = statement.binder(from: 2)
        row.bind(reject.line)
        row.bind(reject.reason.rawValue)
        row.bind(reject.detail)
        row.bind(reject.raw)
        try statement.execute()
    }
}
