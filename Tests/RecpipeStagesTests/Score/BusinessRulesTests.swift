import Foundation
import GRDB
import RecpipeTestSupport
import Testing
@testable import RecpipeModels
@testable import RecpipeNumerics
@testable import RecpipeStages
@testable import RecpipeStore

/// Business rules at publish: what they leave out never appears, and the model's next best
/// items fill the places.
@Suite(.tags(.medium)) struct BusinessRulesTests {
    func score(_ store: Store, k: Int, maxPerCategory: Int? = nil) throws {
        var config = ScoreStage.Config()
        config.k = k
        config.kind = .ease
        config.maxPerCategory = maxPerCategory
        try StageRunner.run(try ScoreStage(config: config), store: store, logger: quietLogger)
    }

    func lists(_ store: Store) throws -> [String: [String]] {
        try store.queue.read { db in
            var lists: [String: [String]] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT user_key, item_key FROM recommendations ORDER BY user_key, rank") {
                lists[row["user_key"], default: []].append(row["item_key"])
            }
            return lists
        }
    }

    @Test func rulesAreNeverViolatedAndListsAreBackfilledFromTheNextBestItems() throws {
        let (scratch, store) = try TrainStageTests().prepared()
        _ = scratch
        try trainBaselines(store, [.ease])
        // Unconstrained, and long enough to hold every list's backfill.
        try score(store, k: 40)
        let long = try lists(store)
        let users = long.keys.sorted()
        // The items most recommended, the targets of the rules.
        var frequency: [String: Int] = [:]
        for list in long.values { for item in list.prefix(10) { frequency[item, default: 0] += 1 } }
        let popular = frequency.sorted { ($0.value, $1.key) > ($1.value, $0.key) }.map(\.key)
        let (hidden, notYet, over, open) = (popular[0], popular[1], popular[2], popular[3])
        let (u0, u1) = (users[0], users[1])
        let excluded = Array(long[u0]!.prefix(3)), expired = long[u1]![0]
        try store.queue.write { db in
            try db.execute(sql: """
                INSERT INTO item_availability (item_key, available_from, available_until, hidden) VALUES
                    (?, NULL, NULL, 1), (?, '2999-01-01', NULL, 0), (?, NULL, '2000-01-01', 0), (?, '2000-01-01', '2999-01-01', 0)
                """, arguments: [hidden, notYet, over, open])
            for item in excluded {
                try db.execute(sql: "INSERT INTO user_exclusions (user_key, item_key, until) VALUES (?, ?, NULL)", arguments: [u0, item])
            }
            try db.execute(sql: "INSERT INTO user_exclusions (user_key, item_key, until) VALUES (?, ?, '2000-01-01')", arguments: [u1, expired])
        }
        try score(store, k: 10)
        let ruled = try lists(store)
        let unavailable: Set = [hidden, notYet, over]
        for user in users {
            let list = ruled[user] ?? []
            #expect(list.count == 10, "\(user): \(list.count) items")
            #expect(unavailable.isDisjoint(with: list), "\(user) got an unavailable item")
            // The next best items: the unconstrained list with what the rules leave out removed.
            let allowed = long[user]!.filter { !unavailable.contains($0) && !(user == u0 && excluded.contains($0)) }
            #expect(Array(allowed.prefix(10)) == list, "\(user): not the model's next best items")
        }
        #expect(Set(excluded).isDisjoint(with: ruled[u0]!))
        #expect(ruled[u1]!.first == expired || unavailable.contains(expired), "an expired exclusion no longer applies")
        let recorded = try store.queue.read { db in
            try Row.fetchOne(db, sql: "SELECT rules_digest, rules FROM score_runs WHERE run_id = (SELECT run_id FROM live_recommendations)")!
        }
        let summary = try JSONSerialization.jsonObject(with: Data((recorded["rules"] as String).utf8)) as? [String: Any]
        #expect(summary?["unavailable_items"] as? Int == 3 && summary?["exclusions"] as? Int == 3, "\(summary ?? [:])")
        #expect(recorded["rules_digest"] as String == (try ScoreStage.ruleDigest([:], store: store)))
    }

    @Test func aCategoryCapHoldsAndListsStayFull() throws {
        let (scratch, store) = try TrainStageTests().prepared()
        _ = scratch
        try trainBaselines(store, [.ease])
        let items = try store.queue.read { try String.fetchAll($0, sql: "SELECT item_key FROM items ORDER BY item_idx") }
        try store.queue.write { db in
            for (n, item) in items.enumerated() where n % 10 != 9 {  // every tenth item without a category
                try db.execute(sql: "INSERT INTO item_metadata (item_key, category) VALUES (?, ?)", arguments: [item, "c\(n % 4)"])
            }
        }
        let before = try ScoreStage.ruleDigest(["max_per_category": "2"], store: store)
        try score(store, k: 12, maxPerCategory: 2)
        let category = try store.queue.read { db in
            Dictionary(uniqueKeysWithValues: try Row.fetchAll(db, sql: "SELECT item_key, category FROM item_metadata").map {
                ($0["item_key"] as String, $0["category"] as String)
            })
        }
        for (user, list) in try lists(store) {
            #expect(list.count == 12, "\(user): \(list.count) items")
            var counts: [String: Int] = [:]
            for item in list { if let c = category[item] { counts[c, default: 0] += 1 } }
            #expect(counts.values.allSatisfy { $0 <= 2 }, "\(user): \(counts)")
        }
        // The categories are part of the digest when a cap applies, and only then.
        try store.queue.write { try $0.execute(sql: "UPDATE item_metadata SET category = 'c0' WHERE category = 'c1'") }
        #expect(try ScoreStage.ruleDigest(["max_per_category": "2"], store: store) != before)
        let uncapped = try ScoreStage.ruleDigest([:], store: store)
        try store.queue.write { try $0.execute(sql: "UPDATE item_metadata SET category = 'c1' WHERE category = 'c0'") }
        #expect(try ScoreStage.ruleDigest([:], store: store) == uncapped)
    }

    /// The ranking with rules against a naive one: the row sorted whole, what the rules
    /// leave out removed, the cap applied walking down.
    @Test func rankingWithRulesMatchesANaiveReference() throws {
        var rng = SeededRandom(seed: 3)
        let items = 50, rows = 40
        let foldIn = CSRMatrix(cols: items, rowsOfColumns: (0..<rows).map { _ in
            Array(Set((0..<4).map { _ in Int32(Int.random(in: 0..<items, using: &rng)) })).sorted()
        })
        let excluded = CSRMatrix(cols: items, rowsOfColumns: (0..<rows).map { r in r % 3 == 0 ? [] : [Int32(r % items), Int32((r * 7) % items)].sorted() }
            .map { Array(Set($0)).sorted() })
        let blocked = (0..<items).map { $0 % 11 == 0 }
        let category = (0..<items).map { Int32($0 % 7 == 6 ? -1 : $0 % 3) }
        let rules = RankingRules(blocked: blocked, excluded: excluded, category: category, maxPerCategory: 4)
        let counts = (0..<items).map { _ in Float(Int.random(in: 0..<1000, using: &rng)) }
        let model = Popularity(counts: counts)
        var checked = 0
        try model.rankedLists(foldIn, k: 15, batchSize: 16, rules: rules) { row, ranked, _, _ in
            let known = Set(foldIn.columns[foldIn.rowStart[row]..<foldIn.rowStart[row + 1]])
                .union(excluded.columns[excluded.rowStart[row]..<excluded.rowStart[row + 1]])
            let order = (0..<items).filter { !known.contains(Int32($0)) && !blocked[$0] }
                .sorted { counts[$0] != counts[$1] ? counts[$0] > counts[$1] : $0 < $1 }
            var taken: [Int32] = [], perCategory: [Int32: Int] = [:]
            for item in order where taken.count < 15 {
                let c = category[item]
                if c >= 0 { guard perCategory[c, default: 0] < 4 else { continue }; perCategory[c, default: 0] += 1 }
                taken.append(Int32(item))
            }
            #expect(ranked == taken, "row \(row)")
            checked += 1
        }
        #expect(checked == rows)
    }
}
