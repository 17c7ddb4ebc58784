import Foundation
import RecpipeTestSupport
import Testing
@testable import RecpipeScheduler
import RecpipeStore

@Suite(.tags(.small)) struct StageKindTests {
    @Test func stagesThatShareTablesNeverRunTogether() throws {
        func kind(_ name: String) throws -> StageKind { try #require(StageKind.named(name)) }
        // Two trainings write the same model tables; score reads what train writes.
        #expect(try kind("train").conflicts(with: kind("train")))
        #expect(try kind("train").conflicts(with: kind("score")) && kind("score").conflicts(with: kind("train")))
        #expect(try kind("augment").conflicts(with: kind("train")))
        #expect(try kind("clean").conflicts(with: kind("ingest")))
        #expect(try kind("report").conflicts(with: kind("evaluate")))
        // Retention reads which lists are live: train waits for score.
        #expect(try kind("train").conflicts(with: kind("score")))
        #expect(try kind("prune").conflicts(with: kind("train")))
        // Disjoint tables: free to overlap.
        #expect(try !kind("synth").conflicts(with: kind("ingest")))
        #expect(try !kind("ingest").conflicts(with: kind("train")))
        #expect(try !kind("feedback").conflicts(with: kind("train")))
        // stage_runs, which every stage writes, is bookkeeping and not a conflict.
        #expect(try !kind("ingest").writes.contains("stage_runs"))
        #expect(StageKind.all.map(\.name) == ["ingest", "clean", "augment", "train", "score", "rollback", "evaluate", "feedback", "prune", "report", "synth"])
    }
}
