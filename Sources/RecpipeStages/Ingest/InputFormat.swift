import Foundation

/// The layouts `ingest` reads. Any of the file formats may be gzip-compressed.
public enum InputFormat: String, Codable, CaseIterable, Sendable {
    /// Comma-separated with a header row; RFC 4180 quoting.
    case csv
    /// Tab-separated with a header row; no quoting.
    case tsv
    /// One JSON object per line.
    case jsonl
    /// MovieLens 100K `u.data`: tab-separated `user item rating timestamp`, no header.
    case movielensUData = "movielens-udata"
    /// MovieLens 1M/10M `ratings.dat`: `user::item::rating::timestamp`, no header.
    case movielensDat = "movielens-dat"
    /// MovieLens `ratings.csv`: `userId,movieId,rating,timestamp` with a header.
    case movielensCSV = "movielens-csv"
    /// RecBole atomic `.inter` file: tab-separated, typed header (`user_id:token`).
    case recbole
    /// Rows of a query on another SQLite database (`--from-sqlite FILE --query SQL`).
    case sqlite

    var hasHeader: Bool {
        switch self {
        case .movielensUData, .movielensDat, .jsonl, .sqlite: return false
        case .csv, .tsv, .movielensCSV, .recbole: return true
        }
    }

    /// Field separator of the delimited formats.
    var separator: [UInt8] {
        switch self {
        case .csv, .movielensCSV: return [UInt8(ascii: ",")]
        case .tsv, .movielensUData, .recbole: return [UInt8(ascii: "\t")]
        case .movielensDat: return [UInt8(ascii: ":"), UInt8(ascii: ":")]
        case .jsonl, .sqlite: return []
        }
    }

    /// Guesses the format from a file's name and first line (after decompression).
    static func sniff(path: String, firstLine: String) -> InputFormat {
        var name = (path as NSString).lastPathComponent.lowercased()
        if name.hasSuffix(".gz") { name = String(name.dropLast(3)) }
        if name.hasSuffix(".inter") { return .recbole }
        if name.hasSuffix(".jsonl") || name.hasSuffix(".ndjson") { return .jsonl }
        let line = firstLine.trimmingCharacters(in: .whitespaces)
        if line.hasPrefix("{") { return .jsonl }
        if line.contains("::") { return .movielensDat }
        if line.contains("\t") {
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false)
            if fields.contains(where: { $0.contains(":token") || $0.contains(":float") }) { return .recbole }
            let numeric = fields.allSatisfy { Double($0.trimmingCharacters(in: .whitespaces)) != nil }
            if numeric && (3...4).contains(fields.count) { return .movielensUData }
            return .tsv
        }
        if name == "ratings.csv" || line.hasPrefix("userId,movieId") { return .movielensCSV }
        return .csv
    }
}

/// Which source column holds which field. `nil` picks a column by its usual names; the
/// rating and timestamp columns may be absent (`none`).
public struct SourceColumns: Codable, Sendable, Equatable {
    public var user: String?
    public var item: String?
    public var rating: String?
    public var timestamp: String?

    public init(user: String? = nil, item: String? = nil, rating: String? = nil, timestamp: String? = nil) {
        self.user = user
        self.item = item
        self.rating = rating
        self.timestamp = timestamp
    }

    static let userNames = ["user", "user_id", "userid", "uid", "user_key", "customer_id", "visitor_id", "visitorid"]
    static let itemNames = ["item", "item_id", "itemid", "iid", "item_key", "movie_id", "movieid", "product_id",
                            "productid", "track_id", "article_id"]
    static let ratingNames = ["rating", "value", "score", "weight", "preference", "stars"]
    static let timestampNames = ["timestamp", "ts", "time", "datetime", "date", "event_time", "created_at", "unix_time"]

    /// Positions of the fields in a header, by explicit name or the usual names.
    func resolve(header: [String], source: String) throws -> ResolvedColumns {
        // RecBole headers carry a type: `user_id:token`.
        let names = header.map { name -> String in
            let bare = name.split(separator: ":", maxSplits: 1).first.map(String.init) ?? name
            return bare.trimmingCharacters(in: .whitespaces)
        }
        func find(_ explicit: String?, _ usual: [String], field: String, required: Bool) throws -> Int? {
            if let explicit {
                if explicit == "none" && !required { return nil }
                if let index = names.firstIndex(of: explicit) ?? header.firstIndex(of: explicit) { return index }
                throw StageError.badHeader(
                    path: source, reason: "no column '\(explicit)' for the \(field) (columns: \(names.joined(separator: ", ")))")
            }
            if let index = names.firstIndex(where: { usual.contains($0.lowercased()) }) { return index }
            if required {
                throw StageError.badHeader(
                    path: source,
                    reason: "no \(field) column among \(names.joined(separator: ", ")); name it with --\(field)-col")
            }
            return nil
        }
        let user = try find(self.user, Self.userNames, field: "user", required: true)!
        let item = try find(self.item, Self.itemNames, field: "item", required: true)!
        guard user != item else { throw StageError.badHeader(path: source, reason: "user and item are the same column") }
        return ResolvedColumns(
            user: user, item: item,
            rating: try find(rating, Self.ratingNames, field: "rating", required: false),
            timestamp: try find(timestamp, Self.timestampNames, field: "time", required: false),
            count: header.count, names: names)
    }
}

/// Field positions within a row.
struct ResolvedColumns: Equatable {
    var user: Int
    var item: Int
    var rating: Int?
    var timestamp: Int?
    var count: Int
    var names: [String]

    /// MovieLens' headerless layouts: user, item, rating, timestamp.
    static let movielens = ResolvedColumns(
        user: 0, item: 1, rating: 2, timestamp: 3, count: 4, names: ["user", "item", "rating", "timestamp"])
}
