import Foundation
import GRDB
import RecpipeTestSupport
import Testing
@testable import RecpipeModels
@testable import RecpipeStages
@testable import RecpipeStore

/// Every published row names the history item behind it, as the stored model says.
@Suite(.tags(.medium)) struct ReasonTests {
    @Test func easeListsNameTheLargestTermAndPopularListsNone() throws {
        let (scratch, store) = try TrainStageTests().prepared()
        try ingest(store, [scratch.write("new.csv", "user_id,item_id,timestamp\nstranger,never-seen,1\n")])
        try trainBaselines(store, [.ease])
        var config = ScoreStage.Config()
        config.k = 10
        config.kind = .ease
        try StageRunner.run(try ScoreStage(config: config), store: store, logger: quietLogger)
        let (ease, record) = try store.queue.read { db in try ModelStore.load(try ModelStore.published(kind: .ease, in: db)!, in: db) }
        let b = (ease as! EASE).weights, n = record.itemKeys.count
        let position = Dictionary(uniqueKeysWithValues: record.itemKeys.enumerated().map { ($1, $0) })
        let history = try store.queue.read { db in
            Dictionary(grouping: try Row.fetchAll(db, sql: """
                SELECT u.user_key, i.item_key FROM interactions x JOIN users u USING (user_idx) JOIN items i USING (item_idx)
                """), by: { $0["user_key"] as String }).mapValues { $0.map { position[$0["item_key"] as String]! } }
        }
        let rows = try store.queue.read { try Row.fetchAll($0, sql: "SELECT user_key, item_key, because_item_key, source FROM recommendations") }
        var checked = 0
        for row in rows {
            let source: String = row["source"]
            guard source == "model" else {
                #expect(row["because_item_key"] as String? == nil, "a popularity list has no reason")
                continue
            }
            let user: String = row["user_key"], item = position[row["item_key"] as String]!
            let because = try #require(row["because_item_key"] as String?)
            let known = history[user]!
            #expect(known.contains(position[because]!), "the reason is in the user's history")
            // Naive: the history item with the largest B[j, i] (first in item order on ties).
            let best = known.sorted().max { b[$0 * n + item] < b[$1 * n + item] }!
            #expect(b[position[because]! * n + item] == b[best * n + item], "\(user), \(row["item_key"] as String)")
            checked += 1
        }
        #expect(checked == 300 * 10)
        // Without reasons, the column stays NULL.
        config.reasons = false
        try StageRunner.run(try ScoreStage(config: config), store: store, logger: quietLogger)
        #expect(try store.queue.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM recommendations WHERE because_item_key IS NOT NULL") } == 0)
        config.reasons = true
        try StageRunner.run(try ScoreStage(config: config), store: store, logger: quietLogger)
        // The view with titles.
        try store.queue.write { try $0.execute(sql: "INSERT INTO item_metadata (item_key, title) SELECT item_key, 'T' || item_key FROM items") }
        let explained = try store.queue.read { try Row.fetchOne($0, sql: "SELECT title, because_title, item_key, because_item_key FROM recommendations_explained WHERE source = 'model' LIMIT 1")! }
        #expect(explained["title"] as String == "T" + (explained["item_key"] as String))
        #expect(explained["because_title"] as String == "T" + (explained["because_item_key"] as String))
    }
}
