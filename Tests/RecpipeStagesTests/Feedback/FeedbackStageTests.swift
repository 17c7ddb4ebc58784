import Foundation
import GRDB
import RecpipeTestSupport
import Testing
@testable import RecpipeModels
@testable import RecpipeStages
@testable import RecpipeStore

@Suite(.tags(.medium)) struct FeedbackStageTests {
    @Test func nothingPublishedYetIsNotAFailure() throws {
        let (scratch, store) = try ScoreStageTests().trained()
        _ = scratch
        let report = try StageRunner.run(try FeedbackStage(config: .init()), store: store, logger: quietLogger)
        #expect(report.summary == ["no live recommendations yet: nothing to score against"])
        #expect(try store.queue.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM closed_loop") } == 0)
        // Lists published, nothing new since: nothing measured either (not a hit rate of 0).
        try ScoreStageTests().score(store, k: 10)
        let quietNight = try StageRunner.run(try FeedbackStage(config: .init()), store: store, logger: quietLogger)
        #expect(quietNight.summary.last?.hasPrefix("nothing to score") == true, "\(quietNight.summary)")
        #expect(try store.queue.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM closed_loop") } == 0)
    }

    @Test func liveListsAreScoredAgainstWhatUsersDidNext() throws {
        let (scratch, store) = try ScoreStageTests().trained()
        try ScoreStageTests().score(store, k: 10)
        let (hitUser, hitItem, missUser, missItem) = try store.queue.read { db -> (String, String, String, String) in
            let users = try String.fetchAll(db, sql: "SELECT DISTINCT user_key FROM recommendations ORDER BY user_key LIMIT 2")
            let top = try String.fetchOne(db, sql: "SELECT item_key FROM recommendations WHERE user_key = ? AND rank = 1",
                                          arguments: [users[0]])!
            // An item outside the second user's list and history.
            let outside = try String.fetchOne(db, sql: """
                SELECT item_key FROM items WHERE item_key NOT IN (SELECT item_key FROM recommendations WHERE user_key = ?)
                AND item_key NOT IN (SELECT item_key FROM raw_interactions WHERE user_key = ?)
                ORDER BY item_idx LIMIT 1
                """, arguments: [users[1], users[1]])!
            return (users[0], top, users[1], outside)
        }
        let seenItem = try store.queue.read { db in
            try String.fetchOne(db, sql: "SELECT item_key FROM raw_interactions WHERE user_key = ? LIMIT 1", arguments: [missUser])!
        }
        // Ingested in the same second as the lists were published (here: a publish time that
        // reads as later than the ingest's clock): still after them, as the runs' order says.
        try store.queue.write { try $0.execute(sql: "UPDATE score_runs SET published_at = '2999-01-01T00:00:00Z'") }
        // A pair seen before the lists went live is not new: it does not count.
        try ingest(store, [scratch.write("next-day.csv",
                                         "user_id,item_id\n\(hitUser),\(hitItem)\n\(missUser),\(missItem)\n\(missUser),\(seenItem)\n")])
        let report = try StageRunner.run(try FeedbackStage(config: .init()), store: store, logger: quietLogger)
        #expect(report.summary.first?.contains("2 users with 2 new interactions") == true, "\(report.summary)")
        try store.queue.read { db throws in
            let row = try Row.fetchOne(db, sql: "SELECT * FROM closed_loop WHERE k = 10")!
            #expect(row["users"] as Int == 2 && row["new_interactions"] as Int == 2)
            #expect(row["hit_rate"] as Double == 0.5 && row["recall"] as Double == 0.5)
        }
    }
}
