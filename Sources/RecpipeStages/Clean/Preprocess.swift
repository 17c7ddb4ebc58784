import RecpipeStore

/// Raw events with keys interned to ids in order of first appearance.
public struct RawEvents: Sendable {
    public var userKeys: [String] = []
    public var itemKeys: [String] = []
    public var user: [Int32] = []
    public var item: [Int32] = []
    /// NaN where the source had no rating.
    public var rating: [Double] = []
    /// `RawEvents.noTimestamp` where the source had no time.
    public var timestamp: [Int64] = []

    public static let noTimestamp = Int64.min

    public init() {}

    public var count: Int { user.count }

    private var userIDs: [ExactKey: Int32] = [:]
    private var itemIDs: [ExactKey: Int32] = [:]

    public mutating func append(user userKey: String, item itemKey: String, rating: Double?, timestamp: Int64?) {
        user.append(Self.intern(userKey, &userIDs, &userKeys))
        item.append(Self.intern(itemKey, &itemIDs, &itemKeys))
        self.rating.append(rating ?? .nan)
        self.timestamp.append(timestamp ?? Self.noTimestamp)
    }

    private static func intern(_ key: String, _ ids: inout [ExactKey: Int32], _ keys: inout [String]) -> Int32 {
        if let id = ids[ExactKey(key)] { return id }
        let id = Int32(keys.count)
        ids[ExactKey(key)] = id
        keys.append(key)
        return id
    }
}

/// Positive interactions after deduplication, binarization and k-core filtering; ids are
/// still those of `RawEvents`.
public struct Positives: Sendable, Equatable {
    public var user: [Int32] = []
    public var item: [Int32] = []
    public var timestamp: [Int64] = []
    public var count: Int { user.count }
}

public struct PreprocessStats: Sendable, Equatable {
    public var rawRows = 0
    public var rawUsers = 0
    public var rawItems = 0
    public var deduplicatedRows = 0
    public var positiveRows = 0
    public var kcoreIterations = 0
    public var kcoreUsersRemoved = 0
    public var kcoreItemsRemoved = 0
}

public enum Preprocess {
    /// Keeps the latest event of each (user, item) pair (by timestamp, then by position in
    /// the log), keeps those with rating ≥ `minRating` (every event when `minRating` is nil
    /// or the event has no rating), then filters to the k-core.
    public static func run(_ events: RawEvents, minRating: Double?, minUserInteractions: Int,
                           minItemInteractions: Int) -> (Positives, PreprocessStats) {
        var stats = PreprocessStats()
        stats.rawRows = events.count
        stats.rawUsers = events.userKeys.count
        stats.rawItems = events.itemKeys.count

        // Sort positions by (pair, time, position); the last of each pair run is the latest.
        var order = Array(0..<events.count)
        let pair = { (k: Int) -> UInt64 in UInt64(UInt32(events.user[k])) << 32 | UInt64(UInt32(events.item[k])) }
        order.sort { a, b in
            let pa = pair(a), pb = pair(b)
            if pa != pb { return pa < pb }
            let ta = events.timestamp[a], tb = events.timestamp[b]
            if ta != tb { return ta < tb }
            return a < b
        }
        var positives = Positives()
        var k = 0
        while k < order.count {
            var last = k
            while last + 1 < order.count && pair(order[last + 1]) == pair(order[k]) { last += 1 }
            let latest = order[last]
            stats.deduplicatedRows += 1
            let rating = events.rating[latest]
            if minRating == nil || rating.isNaN || rating >= minRating! {
                positives.user.append(events.user[latest])
                positives.item.append(events.item[latest])
                positives.timestamp.append(events.timestamp[latest])
            }
            k = last + 1
        }
        stats.positiveRows = positives.count
        let (core, iterations) = kcore(positives, userCount: events.userKeys.count, itemCount: events.itemKeys.count,
                                       minUser: minUserInteractions, minItem: minItemInteractions)
        stats.kcoreIterations = iterations
        stats.kcoreUsersRemoved = distinct(positives.user) - distinct(core.user)
        stats.kcoreItemsRemoved = distinct(positives.item) - distinct(core.item)
        return (core, stats)
    }

    /// Removes users with fewer than `minUser` and items with fewer than `minItem`
    /// interactions until none is left to remove. Returns the core and the number of passes.
    public static func kcore(_ input: Positives, userCount: Int, itemCount: Int, minUser: Int, minItem: Int)
        -> (Positives, Int)
    {
        var alive = [Bool](repeating: true, count: input.count)
        var iterations = 0
        while true {
            iterations += 1
            var userDegree = [Int32](repeating: 0, count: userCount)
            var itemDegree = [Int32](repeating: 0, count: itemCount)
            for k in 0..<input.count where alive[k] {
                userDegree[Int(input.user[k])] += 1
                itemDegree[Int(input.item[k])] += 1
            }
            var removed = 0
            for k in 0..<input.count where alive[k] {
                if userDegree[Int(input.user[k])] < minUser || itemDegree[Int(input.item[k])] < minItem {
                    alive[k] = false
                    removed += 1
                }
            }
            if removed == 0 { break }
        }
        var output = Positives()
        for k in 0..<input.count where alive[k] {
            output.user.append(input.user[k])
            output.item.append(input.item[k])
            output.timestamp.append(input.timestamp[k])
        }
        return (output, iterations)
    }

    static func distinct(_ ids: [Int32]) -> Int { Set(ids).count }
}
