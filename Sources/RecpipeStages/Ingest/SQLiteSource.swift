import Foundation
import GRDB
import GRDBSQLite
import Logging
import RecpipeStore

extension IngestStage {
    /// Ingests the rows of `query` run on the SQLite database at `path`. Columns are found by
    /// name as in a CSV header. The content hash covers the query text and every value, so
    /// the same rows are skipped on a rerun; it is known only once all rows are read.
    func ingestSQLite(path: String, query: String, context: StageContext, logger: Logger) throws -> Outcome {
        let started = Clock.monotonic()
        let startedAt = Clock.isoNow()
        guard FileManager.default.fileExists(atPath: path) else {
            throw StageError.unreadable(path: path, reason: "no such file")
        }
        var handle: OpaquePointer?
        guard sqlite3_open_v2(path, &handle, SQLITE_OPEN_READONLY, nil) == SQLITE_OK, let source = handle else {
            defer { sqlite3_close(handle) }
            throw StageError.unreadable(path: path, reason: String(cString: sqlite3_errmsg(handle)))
        }
        defer { sqlite3_close(source) }
        sqlite3_busy_timeout(source, Int32(Store.busyTimeout * 1000))
        var prepared: OpaquePointer?
        guard sqlite3_prepare_v2(source, query, -1, &prepared, nil) == SQLITE_OK, let statement = prepared else {
            throw StageError.badOption("\(path): --query failed: \(String(cString: sqlite3_errmsg(source)))")
        }
        defer { sqlite3_finalize(statement) }
        let count = Int(sqlite3_column_count(statement))
        let header = (0..<count).map { String(cString: sqlite3_column_name(statement, Int32($0))) }
        let columns = try config.columns.resolve(header: header, source: path)

        var read = 0
        var hash = ""
        do {
            let sink = try context.store.queue.writeWithoutTransaction { db -> RowSink in
                var result: RowSink?
                try db.inTransaction(.immediate) {
                    try db.execute(
                        sql: """
                            INSERT INTO ingest_batches (run_id, source, query, format, content_hash, bytes, rows_read,
                                rows_accepted, rows_rejected, started_at, finished_at, seconds)
                            VALUES (?, ?, ?, 'sqlite', ?, 0, 0, 0, 0, ?, ?, 0)
                            """,
                        arguments: [context.runID, path, query, "pending-\(context.runID)-\(UUID().uuidString)",
                                    startedAt, startedAt])
                    let sink = try RowSink(connection: db.sqliteConnection!, batchID: db.lastInsertedRowID)
                    var hasher = SHA256()
                    hasher.update(Array(query.utf8) + [0])
                    var bytes = 0
                    while true {
                        let step = sqlite3_step(statement)
                        if step == SQLITE_DONE { break }
                        guard step == SQLITE_ROW else {
                            throw StageError.unreadable(path: path, reason: String(cString: sqlite3_errmsg(source)))
                        }
                        read += 1
                        bytes += try storeRow(statement, columns: columns, line: read, hasher: &hasher, sink: sink)
                    }
                    hash = hasher.finalizeHex()
                    if let existing = try Int64.fetchOne(
                        db, sql: "SELECT batch_id FROM ingest_batches WHERE content_hash = ?", arguments: [hash]) {
                        throw AlreadyIngested(batchID: existing, hash: hash)
                    }
                    if read == 0 { throw StageError.emptySource(path: path) }
                    if Double(sink.rejected) > config.maxRejectedShare * Double(read) {
                        throw StageError.tooManyRejects(path: path, rejected: sink.rejected, read: read,
                                                        threshold: config.maxRejectedShare, example: sink.firstReject ?? "")
                    }
                    try db.execute(
                        sql: """
                            UPDATE ingest_batches SET content_hash = ?, bytes = ?, rows_read = ?, rows_accepted = ?,
                                rows_rejected = ?, finished_at = ?, seconds = ? WHERE batch_id = ?
                            """,
                        arguments: [hash, bytes, read, sink.accepted, sink.rejected, Clock.isoNow(),
                                    Clock.monotonic() - started, sink.batchID])
                    result = sink
                    return .commit
                }
                return result!
            }
            logger.info("source ingested", metadata: [
                "batch": "\(sink.batchID)", "format": "sqlite", "rows_read": "\(read)",
                "accepted": "\(sink.accepted)", "rejected": "\(sink.rejected)",
                "seconds": "\(String(format: "%.2f", Clock.monotonic() - started))",
            ])
            return .stored(batchID: sink.batchID, read: read, accepted: sink.accepted, rejected: sink.rejected)
        } catch let duplicate as AlreadyIngested {
            logger.info("source skipped, already ingested", metadata: ["batch": "\(duplicate.batchID)", "sha256": "\(hash)"])
            return .skipped(existingBatch: duplicate.batchID)
        }
    }

    /// Validates and stores one result row; returns the bytes it hashed.
    private func storeRow(_ statement: OpaquePointer, columns: ResolvedColumns, line: Int,
                          hasher: inout SHA256, sink: RowSink) throws -> Int {
        var texts: [String?] = []
        var hashed = 0
        for index in 0..<columns.count {
            let type = sqlite3_column_type(statement, Int32(index))
            let text: String? = type == SQLITE_NULL ? nil : String(cString: sqlite3_column_text(statement, Int32(index)))
            texts.append(text)
            let bytes = [UInt8(truncatingIfNeeded: type)] + Array((text ?? "").utf8) + [0]
            hasher.update(bytes)
            hashed += bytes.count
        }
        let raw = texts.map { $0 ?? "NULL" }.joined(separator: "\t")
        func reject(_ reason: RejectReason, _ detail: String) throws -> Int {
            try sink.reject(line: line, reason: reason, detail: detail, raw: raw)
            return hashed
        }
        var keys: [String] = []
        for (name, index) in [("user", columns.user), ("item", columns.item)] {
            guard let key = texts[index] else { return try reject(.emptyKey, "\(name) key is NULL") }
            if key.utf8.count > maxKeyBytes { return try reject(.oversizedField, "\(name) key is \(key.utf8.count) bytes, limit \(maxKeyBytes)") }
            if key.isEmpty { return try reject(.emptyKey, "empty \(name) key") }
            keys.append(key)
        }
        var rating: Double?
        if let index = columns.rating {
            let type = sqlite3_column_type(statement, Int32(index))
            if type == SQLITE_INTEGER || type == SQLITE_FLOAT {
                rating = sqlite3_column_double(statement, Int32(index))
                if !rating!.isFinite { return try reject(.nonFiniteRating, "rating is not finite") }
            } else {
                var text = texts[index] ?? ""
                switch text.withUTF8({ FieldParsing.number($0) }) {
                case .value(let value): rating = value
                case .notNumeric: return try reject(.badRating, "rating '\(text.prefix(40))' is not a number")
                case .nonFinite: return try reject(.nonFiniteRating, "rating '\(text.prefix(40))' is not finite")
                }
            }
        }
        var timestamp: Int64?
        if let index = columns.timestamp {
            var text = texts[index] ?? ""
            guard let seconds = text.withUTF8({ FieldParsing.timestamp($0) }) else {
                return try reject(.badTimestamp, "timestamp '\(text.prefix(40))' is neither Unix seconds nor ISO 8601")
            }
            timestamp = seconds
        }
        try sink.accept(line: line, user: keys[0], item: keys[1], rating: rating, timestamp: timestamp)
        return hashed
    }

    private var maxKeyBytes: Int { config.maxFieldBytes }
}
