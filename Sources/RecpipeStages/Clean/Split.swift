import RecpipeNumerics

/// The part of a split an interaction belongs to (`interactions.part`).
public enum SplitPart: String, Sendable, CaseIterable, Codable {
    case train
    case validationFoldIn = "validation_tr"
    case validationTarget = "validation_te"
    case testFoldIn = "test_tr"
    case testTarget = "test_te"
}

/// A user's role in a split (`users.role`).
public enum UserRole: String, Sendable, Codable {
    case train, validation, test
}

/// Model input: dense user and item indices and every interaction with its part.
public struct SplitData: Sendable, Equatable {
    /// Indexed by user_idx.
    public var userKeys: [String] = []
    public var userRoles: [UserRole] = []
    /// Indexed by item_idx: the items of the training part.
    public var itemKeys: [String] = []
    public var itemTrainCounts: [Int] = []
    /// Interactions as dense indices, sorted by (user, item).
    public var user: [Int32] = []
    public var item: [Int32] = []
    public var part: [SplitPart] = []
    public var timestamp: [Int64] = []
    /// Held-out interactions dropped because their item is not in the training part (or, in
    /// the temporal split, because the user has no earlier history to fold in).
    public var droppedHeldOut = 0
    /// Temporal split: where the validation and test periods start (Unix seconds).
    public var validationCutoff: Int64?
    public var testCutoff: Int64?

    public var count: Int { user.count }

    public func rows(in part: SplitPart) -> Int { self.part.lazy.filter { $0 == part }.count }
    public func users(with role: UserRole) -> Int { userRoles.lazy.filter { $0 == role }.count }
}

/// Builds `SplitData` from labelled interactions on source ids: keeps the items seen in
/// training (dense, in id order), drops held-out rows on other items, indexes the users that
/// keep at least one row.
struct SplitBuilder {
    var user: [Int32] = []
    var item: [Int32] = []
    var part: [SplitPart] = []
    var timestamp: [Int64] = []
    var roles: [Int32: UserRole] = [:]

    mutating func add(user u: Int32, item i: Int32, part p: SplitPart, timestamp t: Int64) {
        user.append(u); item.append(i); part.append(p); timestamp.append(t)
    }

    func build(userKeys: [String], itemKeys: [String], extraDropped: Int = 0) -> SplitData {
        var itemIndex = [Int32](repeating: -1, count: itemKeys.count)
        var trainCounts = [Int](repeating: 0, count: itemKeys.count)
        for k in 0..<user.count where part[k] == .train { trainCounts[Int(item[k])] += 1 }
        var data = SplitData()
        for id in 0..<itemKeys.count where trainCounts[id] > 0 {
            itemIndex[id] = Int32(data.itemKeys.count)
            data.itemKeys.append(itemKeys[id])
            data.itemTrainCounts.append(trainCounts[id])
        }
        var userIndex = [Int32](repeating: -1, count: userKeys.count)
        var kept: [Int] = []
        data.droppedHeldOut = extraDropped
        for k in 0..<user.count {
            guard itemIndex[Int(item[k])] >= 0 else { data.droppedHeldOut += 1; continue }
            kept.append(k)
            userIndex[Int(user[k])] = 0
        }
        for id in 0..<userKeys.count where userIndex[id] == 0 {
            userIndex[id] = Int32(data.userKeys.count)
            data.userKeys.append(userKeys[id])
            data.userRoles.append(roles[Int32(id)] ?? .train)
        }
        // Order rows by (user, item): bucket by user, then sort each user's few items.
        var start = [Int](repeating: 0, count: data.userKeys.count + 1)
        for k in kept { start[Int(userIndex[Int(user[k])]) + 1] += 1 }
        for u in 0..<data.userKeys.count { start[u + 1] += start[u] }
        var next = start
        var ordered = [Int](repeating: 0, count: kept.count)
        for k in kept {
            let u = Int(userIndex[Int(user[k])])
            ordered[next[u]] = k
            next[u] += 1
        }
        for u in 0..<data.userKeys.count {
            ordered[start[u]..<start[u + 1]].sort { itemIndex[Int(item[$0])] < itemIndex[Int(item[$1])] }
        }
        data.user.reserveCapacity(ordered.count)
        data.item.reserveCapacity(ordered.count)
        data.part.reserveCapacity(ordered.count)
        data.timestamp.reserveCapacity(ordered.count)
        for k in ordered {
            data.user.append(userIndex[Int(user[k])])
            data.item.append(itemIndex[Int(item[k])])
            data.part.append(part[k])
            data.timestamp.append(timestamp[k])
        }
        return data
    }
}

public enum Splits {
    /// Strong generalization (Liang et al. 2018): `heldOut` validation and `heldOut` test
    /// users are set apart; their interactions on items that training users have are kept,
    /// and each such user with at least `minHeldOutItems` of them has
    /// `floor(targetFraction · k)` chosen at random as targets, the rest fold-in.
    ///
    /// Users are ranked by a hash of their key and `seed`, not shuffled: the highest
    /// `heldOut` are test users, the next `heldOut` validation users. As data grows, a
    /// newcomer can only push held-out users back into training, never a training user out
    /// of it, so the models of last night's split have never seen tonight's held-out users
    /// (their warm starts, the quality gate and the test figures stay honest). A user's
    /// targets are drawn from a stream of their own, so they change only with their own
    /// interactions.
    public static func strong(_ positives: Positives, userKeys: [String], itemKeys: [String], heldOut: Int,
                              targetFraction: Double, minHeldOutItems: Int, seed: UInt64) throws -> SplitData {
        let users = Array(Set(positives.user))
        guard users.count > 2 * heldOut else {
            throw StageError.badData(
                "strong split: \(users.count) users after filtering, need more than 2 × \(heldOut) held-out users")
        }
        let hashOf = Dictionary(uniqueKeysWithValues: users.map { ($0, stableHash(userKeys[Int($0)], seed: seed)) })
        let ranked = users.sorted { (hashOf[$0]!, userKeys[Int($0)]) < (hashOf[$1]!, userKeys[Int($1)]) }
        var roles: [Int32: UserRole] = [:]
        for (position, user) in ranked.enumerated() {
            roles[user] = position < users.count - 2 * heldOut ? .train
                : position < users.count - heldOut ? .validation : .test
        }
        var builder = SplitBuilder()
        builder.roles = roles
        var trainItems = Set<Int32>()
        var heldOutRows: [Int32: [Int]] = [:]
        for k in 0..<positives.count {
            if roles[positives.user[k]] == .train {
                builder.add(user: positives.user[k], item: positives.item[k], part: .train, timestamp: positives.timestamp[k])
                trainItems.insert(positives.item[k])
            } else {
                heldOutRows[positives.user[k], default: []].append(k)
            }
        }
        var dropped = 0
        for user in heldOutRows.keys.sorted() {
            var chooser = SeededRandom(seed: seed, stream: hashOf[user]!)
            let rows = heldOutRows[user]!.filter { trainItems.contains(positives.item[$0]) }
            dropped += heldOutRows[user]!.count - rows.count
            let validation = roles[user] == .validation
            var isTarget = [Bool](repeating: false, count: rows.count)
            if rows.count >= minHeldOutItems {
                for index in chooser.sample(Int(targetFraction * Double(rows.count)), from: rows.count) { isTarget[index] = true }
            }
            for (index, k) in rows.enumerated() {
                let part: SplitPart = validation
                    ? (isTarget[index] ? .validationTarget : .validationFoldIn)
                    : (isTarget[index] ? .testTarget : .testFoldIn)
                builder.add(user: user, item: positives.item[k], part: part, timestamp: positives.timestamp[k])
            }
        }
        return builder.build(userKeys: userKeys, itemKeys: itemKeys, extraDropped: dropped)
    }

    /// Temporal split: interactions at or after `testCutoff` are test targets, those in
    /// [`validationCutoff`, `testCutoff`) validation targets, earlier ones training. A target
    /// whose user has no earlier interaction, or whose item is not in training, is dropped.
    public static func temporal(_ positives: Positives, userKeys: [String], itemKeys: [String],
                                validationCutoff: Int64, testCutoff: Int64) throws -> SplitData {
        precondition(validationCutoff <= testCutoff, "validation cut-off after test cut-off")
        guard !positives.timestamp.contains(RawEvents.noTimestamp) else {
            throw StageError.badData("temporal split: some interactions have no timestamp; ingest them with a time column")
        }
        func part(_ k: Int) -> SplitPart {
            let t = positives.timestamp[k]
            return t >= testCutoff ? .testTarget : t >= validationCutoff ? .validationTarget : .train
        }
        // History that survives: training rows, then validation rows on training items of
        // users with training rows.
        var trainItems = [Bool](repeating: false, count: itemKeys.count)
        var hasTrain = [Bool](repeating: false, count: userKeys.count)
        for k in 0..<positives.count where part(k) == .train {
            trainItems[Int(positives.item[k])] = true
            hasTrain[Int(positives.user[k])] = true
        }
        var hasHistory = hasTrain
        for k in 0..<positives.count where part(k) == .validationTarget {
            let u = Int(positives.user[k])
            if hasTrain[u] && trainItems[Int(positives.item[k])] { hasHistory[u] = true }
        }
        var builder = SplitBuilder()
        var dropped = 0
        for k in 0..<positives.count {
            let p = part(k), u = Int(positives.user[k])
            if (p == .validationTarget && !hasTrain[u]) || (p == .testTarget && !hasHistory[u]) {
                dropped += 1
                continue
            }
            builder.add(user: positives.user[k], item: positives.item[k], part: p, timestamp: positives.timestamp[k])
        }
        var data = builder.build(userKeys: userKeys, itemKeys: itemKeys, extraDropped: dropped)
        data.validationCutoff = validationCutoff
        data.testCutoff = testCutoff
        return data
    }
}
