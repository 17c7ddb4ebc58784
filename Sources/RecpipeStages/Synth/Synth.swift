import CZlib
import Foundation
import RecpipeNumerics
import RecpipeStore

/// A realistic synthetic interaction log, deterministic by seed: the built-in demo data
/// and the source of scale benchmarks.
///
/// The model: items have power-law popularity (Zipf, exponent `zipf`) and belong to one of
/// `topics` topics; each user has a taste for a few topics (a softmax of Gaussian scores,
/// so the user × item matrix is close to low rank) and a share of mainstream taste that
/// follows global popularity. A user's number of interactions is log-normal (at least 5),
/// scaled so the total is about `interactions`; items are drawn without repetition. Users
/// arrive at random over `days` days and stay active until the end; event times are
/// uniform over each user's active span. With `ratings`, each event gets a 1–5 star rating
/// that is higher for the user's favourite topics. Rows are written in time order.
public struct Synth: Sendable {
    public struct Config: Codable, Sendable, Equatable {
        public var users = 6_000
        public var items = 3_000
        public var interactions = 300_000
        public var topics = 24
        public var zipf = 1.0
        /// Share of a user's draws that follow global popularity rather than taste.
        public var mainstream = 0.3
        public var days = 365
        /// Unix seconds of the first day (default 2025-01-01).
        public var start: Int64 = 1_735_689_600
        public var ratings = false
        public var seed: UInt64 = 7
        public init() {}
    }

    public enum Format: String, Codable, Sendable, CaseIterable { case csv, tsv }

    public let config: Config

    public init(config: Config) throws {
        guard config.users >= 1, config.items >= 2, config.interactions >= config.users else {
            throw StageError.badOption("synth: need users ≥ 1, items ≥ 2 and interactions ≥ users")
        }
        guard config.topics >= 1, config.topics <= config.items, config.days >= 1 else {
            throw StageError.badOption("synth: need 1 ≤ topics ≤ items and days ≥ 1")
        }
        guard config.zipf >= 0, (0...1).contains(config.mainstream) else {
            throw StageError.badOption("synth: zipf must be ≥ 0 and mainstream between 0 and 1")
        }
        self.config = config
    }

    public struct Event: Equatable, Sendable {
        public var user: Int32
        public var item: Int32
        public var rating: UInt8
        public var timestamp: Int64
    }

    /// All events, sorted by time (ties by user, then item).
    public func generate() -> [Event] {
        let c = config
        var rng = SeededRandom(seed: c.seed, stream: 0)
        // Popularity: Zipf over ranks, ranks assigned to items at random.
        var rankOf = Array(0..<c.items)
        rng.shuffle(&rankOf)
        let popularity = (0..<c.items).map { 1.0 / pow(Double(rankOf[$0] + 1), c.zipf) }
        let topicOf = (0..<c.items).map { $0 < c.topics ? $0 : rng.below(c.topics) }
        var topicItems = [[Int32]](repeating: [], count: c.topics)
        for item in 0..<c.items { topicItems[topicOf[item]].append(Int32(item)) }
        let topicCDF = topicItems.map { members in cumulative(members.map { popularity[Int($0)] }) }
        let globalCDF = cumulative(popularity)

        // Interactions per user: log-normal, at least 5, at most a quarter of the catalogue.
        let mean = Double(c.interactions) / Double(c.users)
        var raw = (0..<c.users).map { _ in exp(log(mean) - 0.5 + rng.normal()) }
        let scale = Double(c.interactions) / raw.reduce(0, +)
        raw = raw.map { $0 * scale }
        let cap = max(1, c.items / 4)
        let counts = raw.map { min(cap, max(min(5, cap), Int($0.rounded()))) }

        let span = Int64(c.days) * 86_400
        var events: [Event] = []
        events.reserveCapacity(counts.reduce(0, +))
        for user in 0..<c.users {
            var r = SeededRandom(seed: c.seed, stream: UInt64(user) + 1)
            let scores = (0..<c.topics).map { _ in 2.0 * r.normal() }
            let top = scores.max()!
            let taste = scores.map { exp($0 - top) }
            let tasteTotal = taste.reduce(0, +)
            let tasteCDF = cumulative(taste)
            let arrival = Int64(r.uniform() * 0.9 * Double(span))
            var chosen = Set<Int32>()
            var attempts = 0
            while chosen.count < counts[user] && attempts < 50 * counts[user] {
                attempts += 1
                let item: Int32
                if r.uniform() < c.mainstream {
                    item = Int32(draw(globalCDF, &r))
                } else {
                    let topic = draw(tasteCDF, &r)
                    item = topicItems[topic][draw(topicCDF[topic], &r)]
                }
                guard chosen.insert(item).inserted else { continue }
                var rating: UInt8 = 0
                if c.ratings {
                    let affinity = log(taste[topicOf[Int(item)]] / tasteTotal * Double(c.topics))
                    let stars = 3.4 + 0.6 * affinity + 0.9 * r.normal()
                    rating = UInt8(min(5, max(1, stars.rounded())))
                }
                let time = c.start + arrival + Int64(r.uniform() * Double(span - arrival))
                events.append(Event(user: Int32(user), item: item, rating: rating, timestamp: time))
            }
        }
        events.sort { a, b in
            a.timestamp != b.timestamp ? a.timestamp < b.timestamp : a.user != b.user ? a.user < b.user : a.item < b.item
        }
        return events
    }

    /// Writes the log as CSV or TSV with a header (`user_id,item_id[,rating],timestamp`),
    /// gzip-compressed when the path ends in `.gz`: the events of the days in `days` (0 is
    /// the first; by default all of them). Returns the number of rows.
    @discardableResult
    public func write(to path: String, format: Format = .csv, days: Range<Int> = 0..<Int.max) throws -> Int {
        var events = generate()
        if days != 0..<Int.max {
            events.removeAll { !days.contains(Int(($0.timestamp - config.start) / 86_400)) }
        }
        try OutputGuard.check(path, database: nil, replaceable: .notDatabase)
        let output = try OutputFile(path: path, gzip: path.hasSuffix(".gz"))
        let sep = format == .csv ? UInt8(ascii: ",") : UInt8(ascii: "\t")
        var buffer: [UInt8] = []
        buffer.reserveCapacity(1 << 20)
        let header = config.ratings ? ["user_id", "item_id", "rating", "timestamp"] : ["user_id", "item_id", "timestamp"]
        buffer.append(contentsOf: Array(header.joined(separator: String(UnicodeScalar(sep))).utf8))
        buffer.append(UInt8(ascii: "\n"))
        for event in events {
            appendDecimal(Int64(event.user) + 1, to: &buffer)
            buffer.append(sep)
            appendDecimal(Int64(event.item) + 1, to: &buffer)
            buffer.append(sep)
            if config.ratings {
                appendDecimal(Int64(event.rating), to: &buffer)
                buffer.append(sep)
            }
            appendDecimal(event.timestamp, to: &buffer)
            buffer.append(UInt8(ascii: "\n"))
            if buffer.count > (1 << 20) - 64 {
                try output.write(buffer)
                buffer.removeAll(keepingCapacity: true)
            }
        }
        try output.write(buffer)
        try output.close()
        return events.count
    }
}

private func cumulative(_ weights: [Double]) -> [Double] {
    var total = 0.0
    return weights.map { total += $0; return total }
}

/// An index drawn with probability proportional to its weight, from cumulative weights.
private func draw(_ cdf: [Double], _ rng: inout SeededRandom) -> Int {
    let target = rng.uniform() * cdf[cdf.count - 1]
    var low = 0, high = cdf.count - 1
    while low < high {
        let mid = (low + high) / 2
        if cdf[mid] > target { high = mid } else { low = mid + 1 }
    }
    return low
}

private func appendDecimal(_ value: Int64, to buffer: inout [UInt8]) {
    if value < 0 { buffer.append(UInt8(ascii: "-")) }
    var v = value.magnitude
    var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                 UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
        (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    var n = 0
    withUnsafeMutableBytes(of: &digits) { d in
        repeat {
            d[n] = UInt8(ascii: "0") + UInt8(v % 10)
            v /= 10
            n += 1
        } while v > 0
        for k in stride(from: n - 1, through: 0, by: -1) { buffer.append(d[k]) }
    }
}

/// A plain or gzip output file, written whole or removed.
final class OutputFile {
    private let path: String
    private let temporary: String
    private var file: UnsafeMutablePointer<FILE>?
    private var gz: gzFile?

    init(path: String, gzip: Bool) throws {
        self.path = path
        temporary = path + ".partial"
        if gzip {
            gz = gzopen(temporary, "wb6")
            if gz == nil { throw Self.failure(path) }
        } else {
            file = fopen(temporary, "wb")
            if file == nil { throw Self.failure(path) }
        }
    }

    func write(_ bytes: [UInt8]) throws {
        guard !bytes.isEmpty else { return }
        let ok = bytes.withUnsafeBytes { raw -> Bool in
            if let gz { return gzwrite(gz, raw.baseAddress, UInt32(raw.count)) == Int32(raw.count) }
            return fwrite(raw.baseAddress, 1, raw.count, file) == raw.count
        }
        if !ok { throw Self.failure(path) }
    }

    /// Flushes, closes and moves the file into place.
    func close() throws {
        let status: Int32
        if let gz { status = gzclose(gz); self.gz = nil } else { status = fclose(file); file = nil }
        guard status == 0, rename(temporary, path) == 0 else {
            let error = Self.failure(path)
            unlink(temporary)
            throw error
        }
    }

    /// The last system error, as a write failure of `path`.
    static func failure(_ path: String) -> StoreError {
        let code = errno == 0 ? EIO : errno
        return .writeFailed(path: path, reason: String(cString: strerror(code)), errno: code)
    }

    deinit {
        if let gz { gzclose(gz); unlink(temporary) }
        if let file { fclose(file); unlink(temporary) }
    }
}

/// `recpipe synth` as a manifest sees it: writes a file, touches no table.
public enum SynthJob: Job {
    public static let name = "synth"
    public static let reads: [TableName] = []
    public static let writes: [TableName] = []
    public static let outputPaths = ["out"]
}
