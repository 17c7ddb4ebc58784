import Foundation
import GRDB
import RecpipeTestSupport
import Testing
@testable import RecpipeStages
@testable import RecpipeStore

private func events(_ rows: [(String, String, Double?, Int64?)]) -> RawEvents {
    var e = RawEvents()
    for (u, i, r, t) in rows { e.append(user: u, item: i, rating: r, timestamp: t) }
    return e
}

@Suite(.tags(.medium)) struct PreprocessTests {
    @Test func dedupeKeepsTheLatestEventThenBinarizes() {
        let input = events([
            ("a", "x", 5, 100), ("a", "x", 2, 200),  // re-rated lower later: not a positive
            ("a", "y", 2, 100), ("a", "y", 4, 300),  // re-rated higher later: a positive
            ("b", "x", 3, nil), ("b", "x", 4, nil),  // no time: the later row wins
            ("b", "z", nil, 50),  // no rating: counts
        ])
        let (positives, stats) = Preprocess.run(input, minRating: 4, minUserInteractions: 1, minItemInteractions: 1)
        #expect(stats.rawRows == 7 && stats.deduplicatedRows == 4 && stats.positiveRows == 3)
        let pairs = Set(zip(positives.user, positives.item).map { "\(input.userKeys[Int($0)])\(input.itemKeys[Int($1)])" })
        #expect(pairs == ["ay", "bx", "bz"])
        let (all, _) = Preprocess.run(input, minRating: nil, minUserInteractions: 1, minItemInteractions: 1)
        #expect(all.count == 4)
    }

    @Test func kcoreReachesTheFixpoint() {
        // A chain that unravels over several passes: removing d's items starves c, then b.
        var rows: [(String, String, Double?, Int64?)] = []
        for u in ["u1", "u2", "u3"] { for i in ["i1", "i2", "i3"] { rows.append((u, i, nil, nil)) } }
        rows += [("u4", "i1", nil, nil), ("u4", "i4", nil, nil), ("u4", "i5", nil, nil),
                 ("u5", "i4", nil, nil), ("u5", "i6", nil, nil)]
        let input = events(rows)
        let (core, stats) = Preprocess.run(input, minRating: nil, minUserInteractions: 3, minItemInteractions: 2)
        #expect(stats.kcoreIterations >= 3)
        let users = Set(core.user.map { input.userKeys[Int($0)] }), items = Set(core.item.map { input.itemKeys[Int($0)] })
        #expect(users == ["u1", "u2", "u3"])
        #expect(items == ["i1", "i2", "i3"])
        #expect(stats.kcoreUsersRemoved == 2 && stats.kcoreItemsRemoved == 3)
    }

    @Test(arguments: [(3, 2), (5, 5), (2, 10)])
    func kcoreResultSatisfiesTheMinimumsAndIsMaximal(minUser: Int, minItem: Int) {
        var rng = SeededRandomForTests(seed: UInt64(minUser * 100 + minItem))
        var rows: [(String, String, Double?, Int64?)] = []
        for _ in 0..<3000 { rows.append(("u\(rng.zipf(300))", "i\(rng.zipf(200))", nil, nil)) }
        let input = events(rows)
        let (deduped, _) = Preprocess.run(input, minRating: nil, minUserInteractions: 1, minItemInteractions: 1)
        let (core, _) = Preprocess.kcore(deduped, userCount: input.userKeys.count, itemCount: input.itemKeys.count,
                                         minUser: minUser, minItem: minItem)
        var userDegree: [Int32: Int] = [:], itemDegree: [Int32: Int] = [:]
        for k in 0..<core.count { userDegree[core.user[k], default: 0] += 1; itemDegree[core.item[k], default: 0] += 1 }
        #expect(userDegree.values.allSatisfy { $0 >= minUser })
        #expect(itemDegree.values.allSatisfy { $0 >= minItem })
        // Maximal: every removed row has a user or item that could not be in any core
        // containing the kept rows; check that adding back all removed rows of kept users
        // and items would break nothing is not required, but no kept row was removed wrongly:
        // the core of the core is itself.
        let (again, passes) = Preprocess.kcore(core, userCount: input.userKeys.count, itemCount: input.itemKeys.count,
                                               minUser: minUser, minItem: minItem)
        #expect(again == core && passes == 1)
    }
}

/// A small generator for test data only (the library's is tested on its own).
struct SeededRandomForTests {
    var state: UInt64
    init(seed: UInt64) { state = seed &+ 0x9e37_79b9_7f4a_7c15 }
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
    /// Skewed draw in 0..<n.
    mutating func zipf(_ n: Int) -> Int {
        let u = Double(next() >> 11) / Double(1 << 53)
        return min(n - 1, Int(Double(n) * u * u))
    }
}

@Suite(.tags(.medium)) struct SplitTests {
    func synthetic(users: Int = 400, items: Int = 300, interactions: Int = 12_000, seed: UInt64 = 5) throws -> (Scratch, Store) {
        let scratch = Scratch()
        var config = Synth.Config()
        config.users = users
        config.items = items
        config.interactions = interactions
        config.topics = 8
        config.seed = seed
        try Synth(config: config).write(to: scratch.path("events.csv"))
        let store = try scratch.store()
        try ingest(store, [scratch.path("events.csv")])
        return (scratch, store)
    }

    struct Snapshot: Equatable {
        var users: [String]
        var items: [String]
        var rows: [String]
    }

    func snapshot(_ store: Store) throws -> Snapshot {
        try store.queue.read { db throws in
            Snapshot(
                users: try String.fetchAll(db, sql: "SELECT user_key || ':' || role FROM users ORDER BY user_idx"),
                items: try String.fetchAll(db, sql: "SELECT item_key FROM items ORDER BY item_idx"),
                rows: try String.fetchAll(db, sql: """
                    SELECT u.user_key || ',' || i.item_key || ',' || part FROM interactions
                    JOIN users u USING (user_idx) JOIN items i USING (item_idx) ORDER BY 1
                    """))
        }
    }

    @Test func strongSplitIsReproducibleAndFollowsLiang() throws {
        let (scratch, store) = try synthetic()
        _ = scratch
        try clean(store) { $0.heldOutUsers = 40; $0.minRating = nil }
        let first = try snapshot(store)
        try clean(store) { $0.heldOutUsers = 40; $0.minRating = nil }
        #expect(try snapshot(store) == first, "same seed, same split")
        try clean(store) { $0.heldOutUsers = 40; $0.minRating = nil; $0.seed = 1 }
        #expect(try snapshot(store) != first, "another seed, another split")
        try clean(store) { $0.heldOutUsers = 40; $0.minRating = nil }
        #expect(try snapshot(store) == first)

        try store.queue.read { db throws in
            // 40 validation and 40 test users, disjoint from training users.
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM users WHERE role = 'validation'") == 40)
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM users WHERE role = 'test'") == 40)
            #expect(try Int.fetchOne(db, sql: """
                SELECT count(*) FROM interactions JOIN users USING (user_idx)
                WHERE (role = 'train') != (part = 'train')
                   OR (role = 'validation' AND part NOT IN ('validation_tr', 'validation_te'))
                   OR (role = 'test' AND part NOT IN ('test_tr', 'test_te'))
                """) == 0)
            // Every item is a training item; held-out users only have training items.
            #expect(try Int.fetchOne(db, sql: """
                SELECT count(*) FROM items WHERE train_interactions != (
                    SELECT count(*) FROM interactions WHERE interactions.item_idx = items.item_idx AND part = 'train')
                   OR train_interactions = 0
                """) == 0)
            // Each held-out user with k ≥ 5 items has floor(0.2 k) targets.
            let perUser = try Row.fetchAll(db, sql: """
                SELECT user_idx, count(*) AS k, sum(part LIKE '%_te') AS targets FROM interactions
                WHERE part != 'train' GROUP BY user_idx
                """)
            #expect(perUser.count == 80)
            for row in perUser {
                let k: Int = row["k"], targets: Int = row["targets"]
                #expect(targets == (k >= 5 ? Int(0.2 * Double(k)) : 0))
            }
            // Dense indices.
            #expect(try Int.fetchOne(db, sql: "SELECT max(user_idx) + 1 - count(*) FROM users") == 0)
            #expect(try Int.fetchOne(db, sql: "SELECT max(item_idx) + 1 - count(*) FROM items") == 0)
            let run = try Row.fetchOne(db, sql: "SELECT * FROM clean_runs ORDER BY run_id DESC LIMIT 1")!
            #expect(run["validation_users"] as Int == 40 && run["test_users"] as Int == 40)
            #expect(run["interactions"] as Int == (try Int.fetchOne(db, sql: "SELECT count(*) FROM interactions"))!)
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM clean_runs") == 4)
        }
    }

    @Test func strongSplitNeedsEnoughUsers() throws {
        let (scratch, store) = try synthetic(users: 30, items: 50, interactions: 600)
        _ = scratch
        #expect(throws: StageError.self) { try clean(store) { $0.heldOutUsers = 20; $0.minRating = nil } }
        #expect(try count(store, "clean_runs") == 0)
    }

    @Test func temporalSplit() throws {
        let (scratch, store) = try synthetic()
        _ = scratch
        try clean(store) { $0.split = .temporal; $0.minRating = nil; $0.testDays = 30; $0.validationDays = 30 }
        try store.queue.read { db throws in
            let latest = try Int64.fetchOne(db, sql: "SELECT max(ts) FROM raw_interactions")!
            let testCut = latest - 30 * 86_400, validationCut = testCut - 30 * 86_400
            let run = try Row.fetchOne(db, sql: "SELECT validation_cutoff, test_cutoff FROM clean_runs")!
            #expect(run[0] as Int64 == validationCut && run[1] as Int64 == testCut)
            #expect(try Int.fetchOne(db, sql: """
                SELECT count(*) FROM interactions WHERE
                  (part = 'train' AND ts >= ?) OR (part = 'validation_te' AND (ts < ? OR ts >= ?)) OR (part = 'test_te' AND ts < ?)
                """, arguments: [validationCut, validationCut, testCut, testCut]) == 0)
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM interactions WHERE part = 'test_te'")! > 0)
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM interactions WHERE part = 'validation_te'")! > 0)
            // Every target user has history before the target period.
            #expect(try Int.fetchOne(db, sql: """
                SELECT count(*) FROM interactions t WHERE part = 'test_te' AND NOT EXISTS (
                    SELECT 1 FROM interactions h WHERE h.user_idx = t.user_idx AND h.ts < ?)
                """, arguments: [testCut]) == 0)
            #expect(try Int.fetchOne(db, sql: """
                SELECT count(*) FROM interactions t WHERE part = 'validation_te' AND NOT EXISTS (
                    SELECT 1 FROM interactions h WHERE h.user_idx = t.user_idx AND h.part = 'train')
                """) == 0)
        }
    }

    @Test func temporalSplitNeedsTimestamps() throws {
        let scratch = Scratch()
        let store = try scratch.store()
        var text = "user,item\n"
        for u in 0..<20 { for i in 0..<6 { text += "u\(u),i\(i)\n" } }
        try ingest(store, [scratch.write("e.csv", text)])
        #expect(throws: StageError.self) { try clean(store) { $0.split = .temporal } }
    }

    @Test func predefinedSplitFromFiles() throws {
        let scratch = Scratch()
        let store = try scratch.store()
        try FileManager.default.createDirectory(atPath: scratch.path("split"), withIntermediateDirectories: true)
        scratch.write("split/train.csv", "user,item\na,1\na,2\nb,2\nb,3\n")
        scratch.write("split/validation_tr.csv", "user,item\nc,1\n")
        scratch.write("split/validation_te.csv", "user,item\nc,2\nc,9\n")  // item 9 is not in training
        scratch.write("split/test_tr.csv", "user,item\nd,3\n")
        scratch.write("split/test_te.csv", "user,item\nd,1\n")
        try clean(store) { $0.split = .predefined; $0.splitDirectory = scratch.path("split") }
        try store.queue.read { db throws in
            #expect(try String.fetchAll(db, sql: "SELECT user_key || ':' || role FROM users ORDER BY user_idx")
                    == ["a:train", "b:train", "c:validation", "d:test"])
            #expect(try String.fetchAll(db, sql: "SELECT item_key FROM items ORDER BY item_idx") == ["1", "2", "3"])
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM interactions") == 8)
            #expect(try Int.fetchOne(db, sql: "SELECT dropped_heldout_rows FROM clean_runs") == 1)
        }
    }

    @Test func predefinedSplitWithAUserInTwoRolesFails() throws {
        let scratch = Scratch()
        let store = try scratch.store()
        try FileManager.default.createDirectory(atPath: scratch.path("split"), withIntermediateDirectories: true)
        scratch.write("split/train.csv", "user,item\na,1\n")
        scratch.write("split/validation_tr.csv", "user,item\na,2\n")
        for name in ["validation_te", "test_tr", "test_te"] { scratch.write("split/\(name).csv", "user,item\n") }
        #expect(throws: StageError.self) { try clean(store) { $0.split = .predefined; $0.splitDirectory = scratch.path("split") } }
    }

    @Test func cleanWithoutRawDataFails() throws {
        let scratch = Scratch()
        let store = try scratch.store()
        #expect(throws: StageError.missingInput("\(store.path): raw_interactions is empty; run ingest first")) {
            try clean(store)
        }
        let failed = try store.queue.read { try String.fetchOne($0, sql: "SELECT status FROM stage_runs") }
        #expect(failed == "failed")
    }
}

@Suite(.tags(.medium)) struct StageContractTests {
    /// Row counts and contents hashes of every table.
    func fingerprint(_ store: Store) throws -> [String: String] {
        try store.queue.read { db throws in
            var result: [String: String] = [:]
            for table in try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name") {
                let rows = try Row.fetchAll(db, sql: "SELECT * FROM \(table)")
                result[table] = SHA256.hex(rows.map { "\($0)" }.joined(separator: "\n"))
            }
            return result
        }
    }

    func changed(_ before: [String: String], _ after: [String: String]) -> Set<String> {
        Set(after.keys.filter { before[$0] != after[$0] })
    }

    /// As users arrive, the strong split never moves a training user into the held-out
    /// sets, keeps their sizes, and leaves the targets of a held-out user whose own data did
    /// not change as they were: last night's models never saw tonight's held-out users.
    @Test func strongSplitIsStableAsUsersArrive() throws {
        let (scratch, store) = try SplitTests().synthetic()
        try clean(store) { $0.minRating = nil; $0.heldOutUsers = 40 }
        func roles() throws -> [String: String] {
            try store.queue.read { db in
                Dictionary(uniqueKeysWithValues: try Row.fetchAll(db, sql: "SELECT user_key, role FROM users").map {
                    ($0["user_key"] as String, $0["role"] as String)
                })
            }
        }
        func targets() throws -> Set<String> {
            try Set(store.queue.read { try String.fetchAll($0, sql: """
                SELECT u.user_key || '/' || i.item_key FROM interactions x JOIN users u USING (user_idx) JOIN items i USING (item_idx)
                WHERE x.part IN ('validation_te', 'test_te')
                """) })
        }
        let before = try roles(), targetsBefore = try targets()
        var more = "user_id,item_id,timestamp\n"
        for u in 0..<300 { for i in 1...6 { more += "newcomer\(u),\((u * 7 + i * 13) % 300 + 1),\(1_900_000_000 + u)\n" } }
        try ingest(store, [scratch.write("more.csv", more)])
        try clean(store) { $0.minRating = nil; $0.heldOutUsers = 40 }
        let after = try roles()
        #expect(after.values.filter { $0 == "validation" }.count == 40 && after.values.filter { $0 == "test" }.count == 40)
        #expect(before.filter { $0.value == "train" }.allSatisfy { after[$0.key] == "train" }, "a training user never becomes held out")
        let newcomersHeldOut = after.filter { $0.key.hasPrefix("newcomer") && $0.value != "train" }.count
        #expect(newcomersHeldOut > 0, "newcomers take some held-out places")
        let stayed = Set(before.filter { $0.value != "train" && after[$0.key] == $0.value }.keys)
        #expect(!stayed.isEmpty)
        let kept = { (all: Set<String>) in all.filter { stayed.contains(String($0.split(separator: "/")[0])) } }
        #expect(kept(try targets()) == kept(targetsBefore), "the targets of an unchanged held-out user stay as they were")
    }

    /// A log cut in time (the nightly benchmark's "next day") is the whole log in two files:
    /// ingesting both gives what ingesting the whole gives.
    @Test func synthCutInTimeIsTheWholeLogInTwoParts() throws {
        let scratch = Scratch()
        var config = Synth.Config()
        config.users = 200
        config.items = 150
        config.interactions = 5000
        config.days = 30
        let synth = try Synth(config: config)
        let all = try synth.write(to: scratch.path("all.csv"))
        let early = try synth.write(to: scratch.path("early.csv"), days: 0..<29)
        let late = try synth.write(to: scratch.path("late.csv"), days: 29..<Int.max)
        #expect(early + late == all && late > 0 && early > late)
        let whole = try Store(path: scratch.path("whole.sqlite"), logger: quietLogger)
        let parts = try Store(path: scratch.path("parts.sqlite"), logger: quietLogger)
        try ingest(whole, [scratch.path("all.csv")])
        try ingest(parts, [scratch.path("early.csv")])
        try ingest(parts, [scratch.path("late.csv")])
        let sql = "SELECT user_key, item_key, ts FROM raw_interactions ORDER BY 1, 2, 3"
        #expect(try whole.queue.read { try Row.fetchAll($0, sql: sql) } == (try parts.queue.read { try Row.fetchAll($0, sql: sql) }))
    }

    @Test func stagesTouchOnlyTheirDeclaredTablesAndRerunsAreIdempotent() throws {
        let scratch = Scratch()
        let store = try scratch.store()
        var config = Synth.Config()
        config.users = 300
        config.items = 200
        config.interactions = 6000
        try Synth(config: config).write(to: scratch.path("e.csv"))

        var before = try fingerprint(store)
        try ingest(store, [scratch.path("e.csv")])
        var after = try fingerprint(store)
        #expect(changed(before, after).isSubset(of: Set(IngestStage.writes.map(\.rawValue) + ["stage_runs"])))
        before = after
        try ingest(store, [scratch.path("e.csv")])
        after = try fingerprint(store)
        #expect(changed(before, after) == ["stage_runs"], "a rerun of ingest stores nothing new")

        before = after
        try clean(store) { $0.minRating = nil; $0.heldOutUsers = 20 }
        after = try fingerprint(store)
        #expect(changed(before, after).isSubset(of: Set(CleanStage.writes.map(\.rawValue) + ["stage_runs"])))
        before = after
        try clean(store) { $0.minRating = nil; $0.heldOutUsers = 20 }
        after = try fingerprint(store)
        #expect(changed(before, after) == ["stage_runs", "clean_runs"], "a rerun of clean gives the same tables")

        before = after
        try StageRunner.run(try smallAugment(), store: store, logger: quietLogger)
        after = try fingerprint(store)
        #expect(changed(before, after).isSubset(of: Set(AugmentStage.writes.map(\.rawValue) + ["stage_runs"])))
        #expect(changed(before, after).contains("augmented_interactions"))
    }
}

@Suite(.enabled(if: sharedPath("data/ml-100k/ml-100k.inter") != nil, "needs ../shared/data/ml-100k"), .tags(.large))
struct MovieLens100KTests {
    @Test func ingestAndCleanMatchThePublishedCounts() throws {
        let scratch = Scratch()
        let store = try scratch.store()
        let report = try ingest(store, [sharedPath("data/ml-100k/ml-100k.inter")!])
        #expect(report.failures.isEmpty)
        try store.queue.read { db throws in
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM raw_interactions") == 100_000)
            #expect(try Int.fetchOne(db, sql: "SELECT count(DISTINCT user_key) FROM raw_interactions") == 943)
            #expect(try Int.fetchOne(db, sql: "SELECT count(DISTINCT item_key) FROM raw_interactions") == 1682)
        }
        try clean(store) { $0.heldOutUsers = 100 }
        try store.queue.read { db throws in
            let run = try Row.fetchOne(db, sql: "SELECT * FROM clean_runs")!
            #expect(run["raw_users"] as Int == 943 && run["raw_items"] as Int == 1682)
            // Ratings ≥ 4 and users with ≥ 5 of them, as in the reference protocol: 938 users.
            #expect(run["users"] as Int == 938)
            #expect(run["train_users"] as Int == 738)
            #expect(run["validation_users"] as Int == 100 && run["test_users"] as Int == 100)
            #expect(run["positive_rows"] as Int == 55_375)
        }
    }

    @Test(.enabled(if: sharedPath("reference/ml-100k-split/train.csv") != nil))
    func predefinedReferenceSplit() throws {
        let scratch = Scratch()
        let store = try scratch.store()
        try clean(store) { $0.split = .predefined; $0.splitDirectory = sharedPath("reference/ml-100k-split") }
        try store.queue.read { db throws in
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM interactions WHERE part = 'train'") == 44_606)
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM users WHERE role = 'train'") == 738)
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM users WHERE role = 'test'") == 100)
            #expect(try Int.fetchOne(db, sql: "SELECT count(DISTINCT user_idx) FROM interactions WHERE part = 'test_te'") == 100)
        }
    }
}
