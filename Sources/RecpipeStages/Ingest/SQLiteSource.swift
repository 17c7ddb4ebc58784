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

        return try storeBatch(source: path, query: query, format: .sqlite, context: context, logger: logger) { sink in
            var hasher = SHA256()
            hasher.update(Array(query.utf8) + [0])
            var read = 0, bytes = 0
            while true {
                let step = sqlite3_step(statement)
                if step == SQLITE_DONE { break }
                guard step == SQLITE_ROW else {
                    throw StageError.unreadable(path: path, reason: String(cString: sqlite3_errmsg(source)))
                }
                read += 1
                bytes += try storeRow(statement, columns: columns, line: read, hasher: &hasher, sink: sink)
            }
            return (read, hasher.finalizeHex(), bytes)
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
        // SQLite gives every value as text (integers and reals in their usual form), so the
        // rules are those of the file formats.
        let fields = texts.map { $0 ?? "" }
        let rating: Double?, timestamp: Int64?
        do throws(FieldParsing.Problem) {
            for (name, index) in [("user", columns.user), ("item", columns.item)] {
                if texts[index] == nil { throw FieldParsing.Problem(reason: .emptyKey, detail: "\(name) key is NULL") }
                try FieldParsing.onText(fields[index]) { bytes throws(FieldParsing.Problem) in
                    try FieldParsing.checkKey(bytes, name: name, maxBytes: config.maxFieldBytes)
                }
            }
            rating = try columns.rating.map { index throws(FieldParsing.Problem) in
                try FieldParsing.onText(fields[index]) { bytes throws(FieldParsing.Problem) in try FieldParsing.rating(bytes) }
            }
            timestamp = try columns.timestamp.map { index throws(FieldParsing.Problem) in
                try FieldParsing.onText(fields[index]) { bytes throws(FieldParsing.Problem) in try FieldParsing.time(bytes, unit: config.timeUnit) }
            }
        } catch {
            return try reject(error.reason, error.detail)
        }
        let keys = [fields[columns.user], fields[columns.item]]
        try sink.accept(line: line, user: keys[0], item: keys[1], rating: rating, timestamp: timestamp)
        return hashed
    }
}
