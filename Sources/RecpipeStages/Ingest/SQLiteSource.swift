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

    /// Validates and stores one result row; returns the bytes it hashed. Values are read
    /// with their byte length (sqlite3_column_bytes), never as C strings: a key holding a
    /// zero byte or invalid UTF-8 is seen whole and rejected as a file's would be, and a key
    /// stored as a BLOB is rejected (`blob_key`) rather than read as text.
    private func storeRow(_ statement: OpaquePointer, columns: ResolvedColumns, line: Int,
                          hasher: inout SHA256, sink: RowSink) throws -> Int {
        var values: [UnsafeBufferPointer<UInt8>?] = []
        var types: [Int32] = []
        var hashed = 0
        for index in 0..<Int32(columns.count) {
            let type = sqlite3_column_type(statement, index)
            // Text of the value in its own form (integers and reals as SQLite prints them,
            // BLOBs as their bytes); valid until the next step.
            let pointer = type == SQLITE_NULL ? nil
                : type == SQLITE_BLOB ? sqlite3_column_blob(statement, index).map { $0.assumingMemoryBound(to: UInt8.self) }
                : sqlite3_column_text(statement, index)
            let count = type == SQLITE_NULL ? 0 : Int(sqlite3_column_bytes(statement, index))
            let bytes = type == SQLITE_NULL ? nil : UnsafeBufferPointer(start: pointer ?? UnsafePointer(bitPattern: 1), count: count)
            values.append(bytes)
            types.append(type)
            hasher.update([UInt8(truncatingIfNeeded: type)])
            if let bytes {
                // A value with a zero byte is hashed with its length first, so that the
                // bytes of two rows cannot line up into those of two others.
                if bytes.contains(0) {
                    withUnsafeBytes(of: UInt64(bytes.count).littleEndian) { hasher.update($0) }
                    hashed += 8
                }
                hasher.update(UnsafeRawBufferPointer(bytes))
            }
            hasher.update([0])
            hashed += 2 + count
        }
        let raw = values.map { $0.map { FieldParsing.displayText($0, limit: 256) } ?? "NULL" }.joined(separator: "\t")
        func reject(_ reason: RejectReason, _ detail: String) throws -> Int {
            try sink.reject(line: line, reason: reason, detail: detail, raw: raw)
            return hashed
        }
        let empty = UnsafeBufferPointer<UInt8>(start: UnsafePointer(bitPattern: 1), count: 0)
        let rating: Double?, timestamp: Int64?
        do throws(FieldParsing.Problem) {
            for (name, index) in [("user", columns.user), ("item", columns.item)] {
                guard let key = values[index] else { throw FieldParsing.Problem(reason: .emptyKey, detail: "\(name) key is NULL") }
                if types[index] == SQLITE_BLOB {
                    throw FieldParsing.Problem(reason: .blobKey, detail: "\(name) key is a BLOB of \(key.count) bytes; select it as text (CAST(... AS TEXT)) if it is one")
                }
                try FieldParsing.checkKey(key, name: name, maxBytes: config.maxFieldBytes)
            }
            rating = try columns.rating.map { index throws(FieldParsing.Problem) in try FieldParsing.rating(values[index] ?? empty) }
            timestamp = try columns.timestamp.map { index throws(FieldParsing.Problem) in
                try FieldParsing.time(values[index] ?? empty, unit: config.timeUnit)
            }
        } catch {
            return try reject(error.reason, error.detail)
        }
        try sink.accept(line: line, user: values[columns.user]!, item: values[columns.item]!, rating: rating, timestamp: timestamp)
        return hashed
    }
}
