import Foundation

/// A split published as files (the layout benchmark papers use): train.csv,
/// validation_tr.csv, validation_te.csv, test_tr.csv and test_te.csv, each with `user,item`
/// columns holding source keys. Taken as is: no binarizing or k-core filtering.
enum PredefinedSplit {
    static let files: [(String, SplitPart, UserRole)] = [
        ("train.csv", .train, .train),
        ("validation_tr.csv", .validationFoldIn, .validation),
        ("validation_te.csv", .validationTarget, .validation),
        ("test_tr.csv", .testFoldIn, .test),
        ("test_te.csv", .testTarget, .test),
    ]

    static func read(directory: String) throws -> (SplitData, PreprocessStats) {
        var events = RawEvents()
        var parts: [SplitPart] = []
        var roleOf: [Int32: UserRole] = [:]
        var seen = Set<UInt64>()
        var duplicates = 0
        for (name, part, role) in files {
            let path = (directory as NSString).appendingPathComponent(name)
            let reader = LineReader(source: try FileByteSource(path: path))
            let records = DelimitedRecords(separator: [UInt8(ascii: ",")], quoting: true, maxRecordBytes: reader.maxLineBytes)
            var columns: ResolvedColumns?
            var failure: Error?
            try reader.forEachLine { line in
                guard case .text(let bytes) = line else {
                    failure = StageError.badData("\(path):\(reader.lineNumber): line too long")
                    return false
                }
                if bytes.isEmpty { return true }
                switch records.feed(bytes, number: reader.lineNumber) {
                case .incomplete: return true
                case let .malformed(number, _, detail, _):
                    failure = StageError.badData("\(path):\(number): \(detail)")
                    return false
                case let .record(number):
                    let fields = records.fields.map { String(decoding: $0, as: UTF8.self) }
                    guard let resolved = columns else {
                        do { columns = try SourceColumns().resolve(header: fields, source: path) } catch {
                            failure = error
                            return false
                        }
                        return true
                    }
                    guard fields.count == resolved.count, !fields[resolved.user].isEmpty, !fields[resolved.item].isEmpty else {
                        failure = StageError.badData("\(path):\(number): expected \(resolved.count) fields with a user and an item")
                        return false
                    }
                    events.append(user: fields[resolved.user], item: fields[resolved.item], rating: nil, timestamp: nil)
                    let k = events.count - 1
                    let key = UInt64(UInt32(events.user[k])) << 32 | UInt64(UInt32(events.item[k]))
                    if !seen.insert(key).inserted {
                        duplicates += 1
                        events.user.removeLast(); events.item.removeLast()
                        events.rating.removeLast(); events.timestamp.removeLast()
                        return true
                    }
                    if let previous = roleOf[events.user[k]], previous != role {
                        failure = StageError.badData("\(path):\(number): user \(fields[resolved.user]) is also a \(previous.rawValue) user")
                        return false
                    }
                    roleOf[events.user[k]] = role
                    parts.append(part)
                }
                return true
            }
            if let failure { throw failure }
            if records.finish() != nil { throw StageError.badData("\(path): unterminated quote at end of file") }
        }
        var builder = SplitBuilder()
        builder.roles = roleOf
        for k in 0..<events.count {
            builder.add(user: events.user[k], item: events.item[k], part: parts[k], timestamp: RawEvents.noTimestamp)
        }
        var stats = PreprocessStats()
        stats.rawRows = events.count + duplicates
        stats.rawUsers = events.userKeys.count
        stats.rawItems = events.itemKeys.count
        stats.deduplicatedRows = events.count
        stats.positiveRows = events.count
        return (builder.build(userKeys: events.userKeys, itemKeys: events.itemKeys), stats)
    }
}
