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

    var row: IngestBatches.RejectRow { IngestBatches.RejectRow(line: line, reason: reason.rawValue, detail: detail, raw: raw) }
}

/// Writes one batch's accepted and rejected rows with prepared statements on the bulk
/// connection: the bulk path of ingest. Keys are bound without copying, so the caller's
/// bytes must stay put until the call returns, which they do.
///
/// A source is judged on its first rows: once `judgeAfter` rows are read, as soon as more
/// than `maxRejectedShare` of those read so far are rejected it throws `tooManyRejects`, so
/// a file of millions of bad lines is neither read to its end nor held in memory.
final class RowSink: RowConsumer {
    private let writer: IngestBatches.Writer
    var batchID: Int64 { writer.batchID }
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
        writer = try IngestBatches.Writer(connection: connection, batchID: batchID)
        self.source = source
        self.maxRejectedShare = maxRejectedShare
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
        try writer.row(line: line, user: user, item: item, rating: rating, timestamp: timestamp)
        accepted += 1
    }

    /// Writes a batch of parsed rows and rejects (the rows in multi-row INSERTs).
    func write(_ batch: RowBatch) throws {
        try batch.keys.withUnsafeBufferPointer { arena in
            let base = UnsafeRawPointer(arena.baseAddress!).assumingMemoryBound(to: UInt8.self)
            try writer.rows(count: batch.count) { r in
                let rating = batch.rating[r], timestamp = batch.timestamp[r]
                return (batch.line[r],
                        UnsafeBufferPointer(start: base + Int(batch.userStart[r]), count: Int(batch.userCount[r])),
                        UnsafeBufferPointer(start: base + Int(batch.itemStart[r]), count: Int(batch.itemCount[r])),
                        rating.isNaN ? nil : rating, timestamp == Int64.min ? nil : timestamp)
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
        try writer.reject(reject.row)
        rejected += 1
        if firstRejects.count < Self.keptRejects { firstRejects.append(reject) }
    }
}
