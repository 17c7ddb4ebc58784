import Foundation
import GRDB
import RecpipeTestSupport
import Testing
@testable import RecpipeModels
@testable import RecpipeNumerics
@testable import RecpipeStages
@testable import RecpipeStore

/// Every user of `raw_interactions` gets a list: users outside the split get a fallback.
@Suite(.tags(.medium)) struct FallbackTests {
    func score(_ store: Store, kind: ModelKind, k: Int = 10) throws {
        var config = ScoreStage.Config()
        config.k = k
        config.kind = kind
        try StageRunner.run(try ScoreStage(config: config), store: store, logger: quietLogger)
    }

    func rows(_ store: Store, _ user: String) throws -> [(item: String, source: String)] {
        try store.queue.read { db in
            try Row.fetchAll(db, sql: "SELECT item_key, source FROM recommendations WHERE user_key = ? ORDER BY rank", arguments: [user])
                .map { ($0["item_key"], $0["source"]) }
        }
    }

    /// Users ingested after the clean: one with items of the split, one with none.
    func withNewUsers() throws -> (Scratch, Store, known: [String]) {
        let (scratch, store) = try TrainStageTests().prepared()
        let items = try store.queue.read { try String.fetchAll($0, sql: "SELECT item_key FROM items ORDER BY item_idx LIMIT 3") }
        let csv = "user_id,item_id,timestamp\n" + items.enumerated().map { "newcomer,\($1),\(2_000_000_000 + $0)" }.joined(separator: "\n")
            + "\nstranger,never-seen-item,2000000000\n"
        try ingest(store, [scratch.write("new.csv", csv)])
        return (scratch, store, items)
    }

    @Test func usersOutsideTheSplitGetListsFromTheirItemsOrFromPopularity() throws {
        let (scratch, store, known) = try withNewUsers()
        _ = scratch
        try trainBaselines(store, [.ease])
        try StageRunner.run(try TrainStageTests().small(), store: store, logger: quietLogger)
        // A hidden item is left out of the fallback lists too.
        let hidden = try store.queue.read { try String.fetchOne($0, sql: "SELECT item_key FROM items ORDER BY train_interactions DESC LIMIT 1")! }
        try store.queue.write { try $0.execute(sql: "INSERT INTO item_availability (item_key, hidden) VALUES (?, 1)", arguments: [hidden]) }
        try score(store, kind: .multvae)

        let newcomer = try rows(store, "newcomer")
        #expect(newcomer.count == 10 && newcomer.allSatisfy { $0.source == "fallback-item" })
        // EASE's own ranking for a user whose history is those items.
        let (ease, record) = try store.queue.read { db in try ModelStore.load(try ModelStore.published(kind: .ease, in: db)!, in: db) }
        let positions = record.positions(of: known).compactMap { $0 }.sorted()
        var blocked = [Bool](repeating: false, count: record.itemKeys.count)
        blocked[Int(record.positions(of: [hidden])[0]!)] = true
        var expected: [String] = []
        try ease.rankedLists(CSRMatrix(cols: record.itemKeys.count, rowsOfColumns: [positions]), k: 10,
                             rules: RankingRules(blocked: blocked)) { _, ranked, _, _ in expected = ranked.map { record.itemKeys[Int($0)] } }
        #expect(newcomer.map(\.item) == expected)
        #expect(Set(known).isDisjoint(with: newcomer.map(\.item)), "never an item the user has")

        let stranger = try rows(store, "stranger")
        #expect(stranger.count == 10 && stranger.allSatisfy { $0.source == "fallback-popular" })
        let popular = try store.queue.read { try String.fetchAll($0, sql: "SELECT item_key FROM items ORDER BY train_interactions DESC, item_idx LIMIT 11") }
        #expect(stranger.map(\.item) == Array(popular.filter { $0 != hidden }.prefix(10)))

        let live = try store.queue.read { db in
            try Row.fetchOne(db, sql: "SELECT s.fallback_model_id FROM live_recommendations l JOIN score_runs s USING (run_id)")!
        }
        #expect(live["fallback_model_id"] as Int64? == record.modelID)
        // Every user of the raw rows has a list, the split's from the model.
        let coverage = try store.queue.read { try LiveLists.coverage(in: $0) }
        #expect(coverage.bySource.reduce(0) { $0 + $1.users } == coverage.rawUsers)
        #expect(Dictionary(uniqueKeysWithValues: coverage.bySource.map { ($0.source, $0.users) })["fallback-item"] == 1)
    }

    @Test func withoutAnItemBasedModelEveryoneOutsideTheSplitGetsPopularItems() throws {
        let (scratch, store, known) = try withNewUsers()
        _ = scratch
        try StageRunner.run(try TrainStageTests().small(), store: store, logger: quietLogger)
        try score(store, kind: .multvae)
        let newcomer = try rows(store, "newcomer")
        #expect(newcomer.count == 10 && newcomer.allSatisfy { $0.source == "fallback-popular" })
        #expect(Set(known).isDisjoint(with: newcomer.map(\.item)))
        // Shards give the same lists: the users outside the split go with the last one.
        let whole = try store.queue.read { try String.fetchAll($0, sql: "SELECT user_key || ' ' || item_key || ' ' || source FROM recommendations ORDER BY user_key, rank") }
        var files: [String] = []
        for index in 0..<2 {
            var config = ScoreStage.Config()
            config.k = 10
            config.kind = .multvae
            config.shard = ScoreStage.Shard(index: index, count: 2, output: scratch.path("s\(index).sqlite"))
            try StageRunner.run(try ScoreStage(config: config), store: store, logger: quietLogger)
            files.append(config.shard!.output)
        }
        var merge = ScoreStage.Config()
        merge.merge = files
        try StageRunner.run(try ScoreStage(config: merge), store: store, logger: quietLogger)
        #expect(try store.queue.read { try String.fetchAll($0, sql: "SELECT user_key || ' ' || item_key || ' ' || source FROM recommendations ORDER BY user_key, rank") } == whole)
    }

    @Test func unknownKeysGetPopularItemsTheRulesAllow() throws {
        let (scratch, store, _) = try withNewUsers()
        _ = scratch
        try trainBaselines(store, [.ease])
        try score(store, kind: .ease)
        let popular = try store.queue.read { try String.fetchAll($0, sql: "SELECT item_key FROM items ORDER BY train_interactions DESC, item_idx LIMIT 6") }
        try store.queue.write { db in
            try db.execute(sql: "INSERT INTO item_availability (item_key, hidden) VALUES (?, 1)", arguments: [popular[0]])
            try db.execute(sql: "INSERT INTO user_exclusions (user_key, item_key) VALUES ('ghost', ?)", arguments: [popular[1]])
        }
        let items = try LiveLists.popular(for: "ghost", k: 4, now: Clock.isoNow(), in: store)
        #expect(items.map(\.item) == Array(popular[2..<6]))
        #expect(items.allSatisfy { $0.source == "fallback-popular" } && items.map(\.rank) == [1, 2, 3, 4])
    }
}
