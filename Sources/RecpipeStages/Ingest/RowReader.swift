import Foundation

/// Reads one file in one format, validating every row and handing it to a sink as accepted
/// or rejected. Returns the number of data rows read (header and blank lines excluded).
struct RowReader {
    let path: String
    let format: InputFormat
    let columns: SourceColumns
    let maxFieldBytes: Int
    var timeUnit: TimeUnit = .s
    /// Gets the bytes of the file read so far, now and then.
    var progress: (@Sendable (Int) -> Void)? = nil

    func read(into sink: RowConsumer) throws -> Int {
        let reader = LineReader(source: try openByteSource(path: path, onRead: progress))
        return format == .jsonl ? try readJSONLines(reader, sink) : try readDelimited(reader, sink)
    }

    private func readDelimited(_ reader: LineReader, _ sink: RowConsumer) throws -> Int {
        let records = DelimitedRecords(separator: format.separator, quoting: format == .csv || format == .movielensCSV,
                                       maxRecordBytes: reader.maxLineBytes)
        var resolved: ResolvedColumns? = format.hasHeader ? nil : .movielens
        var rows = 0
        var firstLine = true
        var pendingError: Error?
        try reader.forEachLine { line in
            let number = reader.lineNumber
            let bytes: UnsafeBufferPointer<UInt8>
            switch line {
            case .oversized(let prefix):
                rows += 1
                try sink.reject(line: number, reason: .oversizedField,
                                detail: "line longer than \(reader.maxLineBytes) bytes", raw: FieldParsing.displayText(prefix))
                return true
            case .text(let text):
                bytes = firstLine ? Self.droppingBOM(text) : text
            }
            firstLine = false
            if bytes.isEmpty && !records.hasPending { return true }
            switch records.feed(bytes, number: number) {
            case .incomplete:
                return true
            case let .malformed(start, reason, detail, raw):
                rows += 1
                try sink.reject(line: start, reason: reason, detail: detail, raw: raw)
            case let .record(start):
                guard let columns = resolved else {
                    let header = records.fields.map { String(decoding: $0, as: UTF8.self) }
                    do {
                        resolved = try self.columns.resolve(header: header, source: path)
                    } catch {
                        pendingError = error
                        return false
                    }
                    return true
                }
                rows += 1
                try accept(records.fields, line: start, rawLine: bytes, columns: columns, sink: sink)
            }
            return true
        }
        if let pendingError { throw pendingError }
        if case let .malformed(start, reason, detail, raw)? = records.finish() {
            rows += 1
            try sink.reject(line: start, reason: reason, detail: detail, raw: raw)
        }
        return rows
    }

    /// Validates one delimited record and stores it or its rejection.
    private func accept(_ fields: [UnsafeBufferPointer<UInt8>], line: Int, rawLine: UnsafeBufferPointer<UInt8>,
                        columns: ResolvedColumns, sink: RowConsumer) throws {
        func reject(_ reason: RejectReason, _ detail: String) throws {
            try sink.reject(line: line, reason: reason, detail: detail, raw: FieldParsing.displayText(rawLine))
        }
        guard fields.count == columns.count else {
            return try reject(.columnCount, "expected \(columns.count) fields, found \(fields.count)")
        }
        let user = fields[columns.user], item = fields[columns.item]
        let rating: Double?, timestamp: Int64?
        do throws(FieldParsing.Problem) {
            try FieldParsing.checkKey(user, name: "user", maxBytes: maxFieldBytes)
            try FieldParsing.checkKey(item, name: "item", maxBytes: maxFieldBytes)
            rating = try columns.rating.map { index throws(FieldParsing.Problem) in try FieldParsing.rating(fields[index]) }
            timestamp = try columns.timestamp.map { index throws(FieldParsing.Problem) in try FieldParsing.time(fields[index], unit: timeUnit) }
        } catch {
            return try reject(error.reason, error.detail)
        }
        try sink.accept(line: line, user: user, item: item, rating: rating, timestamp: timestamp)
    }

    private func readJSONLines(_ reader: LineReader, _ sink: RowConsumer) throws -> Int {
        var rows = 0
        var firstLine = true
        try reader.forEachLine { line in
            let number = reader.lineNumber
            let bytes: UnsafeBufferPointer<UInt8>
            switch line {
            case .oversized(let prefix):
                rows += 1
                try sink.reject(line: number, reason: .oversizedField,
                                detail: "line longer than \(reader.maxLineBytes) bytes", raw: FieldParsing.displayText(prefix))
                return true
            case .text(let text):
                bytes = firstLine ? Self.droppingBOM(text) : text
            }
            firstLine = false
            if FieldParsing.trimmed(bytes).isEmpty { return true }
            rows += 1
            try acceptJSON(bytes, line: number, sink: sink)
            return true
        }
        return rows
    }

    private func acceptJSON(_ bytes: UnsafeBufferPointer<UInt8>, line: Int, sink: RowConsumer) throws {
        func reject(_ reason: RejectReason, _ detail: String) throws {
            try sink.reject(line: line, reason: reason, detail: detail, raw: FieldParsing.displayText(bytes))
        }
        guard FieldParsing.isValidUTF8(bytes) else { return try reject(.invalidUTF8, "line is not valid UTF-8") }
        let object: [String: JSONLine.Value]
        do {
            object = try JSONLine.parseObject(bytes)
        } catch {
            return try reject(.malformedJSON, "\(error.problem) at byte \(error.offset + 1)")
        }
        func field(_ explicit: String?, _ usual: [String]) -> (String, JSONLine.Value)? {
            if let explicit { return object[explicit].map { (explicit, $0) } }
            for key in object.keys.sorted() where usual.contains(key.lowercased()) { return (key, object[key]!) }
            return nil
        }
        /// The text of a field that is a string or a number.
        func text(_ value: JSONLine.Value) -> String? {
            switch value {
            case .string(let text), .number(let text): return text
            case .null, .bool, .nested: return nil
            }
        }
        var keys: [String] = []
        var rating: Double?, timestamp: Int64?
        do throws(FieldParsing.Problem) {
            for (name, explicit, usual) in [("user", columns.user, SourceColumns.userNames),
                                            ("item", columns.item, SourceColumns.itemNames)] {
                guard let (fieldName, value) = field(explicit, usual) else {
                    throw FieldParsing.Problem(reason: .missingField, detail: "no \(name) field")
                }
                guard let key = text(value) else {
                    throw FieldParsing.Problem(reason: .missingField, detail: "\(fieldName) is not a string or number")
                }
                try FieldParsing.onText(key) { bytes throws(FieldParsing.Problem) in
                    try FieldParsing.checkKey(bytes, name: name, maxBytes: maxFieldBytes)
                }
                keys.append(key)
            }
            if columns.rating != "none", let (name, value) = field(columns.rating, SourceColumns.ratingNames) {
                rating = try FieldParsing.onText(text(value) ?? "\(value)") { bytes throws(FieldParsing.Problem) in
                    try FieldParsing.rating(bytes, name: name)
                }
            }
            if columns.timestamp != "none", let (name, value) = field(columns.timestamp, SourceColumns.timestampNames) {
                timestamp = try FieldParsing.onText(text(value) ?? "\(value)") { bytes throws(FieldParsing.Problem) in
                    try FieldParsing.time(bytes, name: name, unit: timeUnit)
                }
            }
        } catch {
            return try reject(error.reason, error.detail)
        }
        try sink.accept(line: line, user: keys[0], item: keys[1], rating: rating, timestamp: timestamp)
    }

    static func droppingBOM(_ bytes: UnsafeBufferPointer<UInt8>) -> UnsafeBufferPointer<UInt8> {
        guard bytes.count >= 3, bytes[0] == 0xEF, bytes[1] == 0xBB, bytes[2] == 0xBF else { return bytes }
        return UnsafeBufferPointer(rebasing: bytes[3...])
    }
}
