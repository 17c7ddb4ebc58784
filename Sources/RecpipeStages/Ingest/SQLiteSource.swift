import Foundation
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
        let source: RawConnection
        do {
            source = try RawConnection(path: path, mode: .readOnly)
        } catch StoreError.cannotOpen(_, let reason) {
            throw StageError.unreadable(path: path, reason: reason)
        }
        let statement: RawStatement
        do {
            statement = try source.prepare(query)
        } catch {
            throw StageError.badOption("\(path): --query failed: \(source.lastError)")
        }
        let header = (0..<statement.columnCount).map { statement.columnName($0) }
        let columns = try config.columns.resolve(header: header, source: path)

        return try storeBatch(source: path, query: query, format: .sqlite, context: context, logger: logger) { sink in
            var hasher = SHA256()
            hasher.update(Array(query.utf8) + [0])
            var read = 0, bytes = 0
            while true {
                let row: RawRow?
                do {
                    row = try statement.step()
                } catch {
                    throw StageError.unreadable(path: path, reason: source.lastError)
                }
                guard let row else { break }
                read += 1
                bytes += try storeRow(row, columns: columns, line: read, hasher: &hasher, sink: sink)
            }
            return (read, hasher.finalizeHex(), bytes)
        }
    }

    /// Validates and stores one result row; returns the bytes it hashed. Values are read
    /// with their byte length, never as C strings: a key holding a
    /// zero byte or invalid UTF-8 is seen whole and rejected as a file's would be, and a key
    /// stored as a BLOB is rejected (`blob_key`) rather than read as text.
    private func storeRow(_ row: RawRow, columns: ResolvedColumns, line: Int,
                          hasher: inout SHA256, sink: RowSink) throws -> Int {
        var values: [UnsafeBufferPointer<UInt8>?] = []
        var types: [RawRow.ColumnType] = []
        var hashed = 0
        for index in 0..<columns.count {
            let type = row.type(index)
            // Text of the value in its own form (integers and reals as SQLite prints them,
            // BLOBs as their bytes); valid until the next step.
            let bytes = row.bytes(index)
            let count = bytes?.count ?? 0
            values.append(bytes)
            types.append(type)
            hasher.update([Self.hashCode(type)])
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
                if types[index] == .blob {
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

    /// The byte that stands for a value's type in the content hash: SQLite's own type codes
    /// (integer 1, real 2, text 3, blob 4, NULL 5), so hashes of stored batches stay valid.
    static func hashCode(_ type: RawRow.ColumnType) -> UInt8 {
        switch type {
        case .integer: 1
        case .real: 2
        case .text: 3
        case .blob: 4
        case .null: 5
        }
    }
}
