import Foundation
import RecpipeTestSupport
import Testing
@testable import RecpipeScheduler
import RecpipeStore

@Suite(.tags(.small)) struct ProgressTests {
    @Test func statusLineCountsStagesAndEstimatesEpochs() throws {
        let p = try pipeline("""
            name: progress
            database: p.sqlite
            stages:
              clean: { uses: clean }
              train: { uses: train, needs: [clean], with: { epochs: 40 } }
            """)
        let progress = RunProgress(total: 0, epochs: ["train": 40])
        progress.handle(.began(selection: ["clean", "train"]), now: 0)
        let clean = try #require(p.stage("clean")), train = try #require(p.stage("train"))
        progress.handle(.started(clean, attempt: 1), now: 0)
        #expect(progress.render(now: 3) == "[0/2 done] clean 0:03")
        progress.handle(.done(StageOutcome(stage: "clean", kind: "clean", status: "succeeded", attempts: 1, seconds: 3, reason: "")), now: 3)
        progress.handle(.started(train, attempt: 1), now: 10)
        progress.stageEvent(.epoch(10), stage: "train")
        progress.stageEvent(.warning(message: "epoch finished", details: ["epoch": "20"]), stage: "train")
        progress.stageEvent(.epoch(30), stage: "clean")  // not running: ignored
        #expect(progress.render(now: 30) == "[1/2 done] train 0:20 [#####...............] epoch 10/40, ETA 1:00")
        #expect(progress.render(now: 30, width: 20) == "[1/2 done] train 0:")
        // Other stages report the work done.
        let scoring = RunProgress(total: 1, epochs: [:])
        scoring.handle(.started(clean, attempt: 1), now: 0)
        scoring.stageEvent(.progress(done: 25000, total: 100_000, unit: "users"), stage: "clean")
        #expect(scoring.render(now: 10) == "[0/1 done] clean 0:10 [#####...............] 25000/100000 users, ETA 0:30")
    }
}
