import Foundation
import RecpipeTestSupport
import Testing
@testable import RecpipeScheduler
import RecpipeStore

@Suite(.tags(.medium)) struct PlanTests {
    static let yaml = """
        name: plan
        database: recs.sqlite
        stages:
          ingest: { uses: ingest, with: { sources: events.csv } }
          clean:  { uses: clean, needs: [ingest], with: { min_user_interactions: 5 } }
          train:  { uses: train, needs: [clean], with: { epochs: 3 } }
          score:  { uses: score, needs: [train] }
          report: { uses: report, needs: [score], with: { out: report.html } }
        """

    struct Fixture {
        let dir: String
        let pipeline: Pipeline
        let history: RunHistory

        init(overrides: [String] = [], dir: String = scratchDirectory()) throws {
            self.dir = dir
            if !FileManager.default.fileExists(atPath: dir + "/events.csv") {
                try "user,item\na,b\n".write(toFile: dir + "/events.csv", atomically: true, encoding: .utf8)
            }
            pipeline = try RecpipeSchedulerTests.pipeline(PlanTests.yaml, in: dir, overrides: overrides)
            history = RunHistory(store: try Store(path: pipeline.database, logger: quietLogger))
        }

        /// Records a successful run of the given stages the way the runner does; returns the run id.
        @discardableResult
        func succeed(_ names: [String], code: String = "build-1") throws -> Int64 {
            let run = try history.begin(pipeline: pipeline.name, manifest: pipeline.manifest.file, selection: names, forced: false,
                                        retryOf: nil, codeVersion: code)
            for name in names {
                let stage = try #require(pipeline.stage(name))
                var outputs: [String: String] = [:]
                for need in stage.needs { outputs[need] = try history.lastSuccess(pipeline: pipeline.name, stage: need)?.output ?? "never" }
                let print = try Planner.fingerprint(stage, code: code, store: history.store) { outputs[$0]! }
                let id = try history.startAttempt(run: run, stage: stage, attempt: 1, reason: "test", fingerprint: print)
                try history.finishAttempt(id, kind: stage.kind.name, stageRunsAfter: 0, succeeded: true, seconds: 0.1,
                                          exitStatus: 0, signal: nil, error: nil)
            }
            try history.finish(run: run, status: "succeeded", seconds: 1, error: nil)
            return run
        }

        func plan(_ selection: [String]? = nil, forced: Bool = false, code: String = "build-1") throws -> [String: String] {
            let plan = try Planner.plan(pipeline, history: history, selection: selection ?? pipeline.stages.map(\.name), forced: forced,
                                        code: code)
            return Dictionary(uniqueKeysWithValues: plan.map { ($0.stage.name, $0.decision.map { ($0.run ? "run: " : "skip: ") + $0.reason } ?? "-") })
        }
    }

    @Test func neverRunThenUpToDate() throws {
        let f = try Fixture()
        #expect(try f.plan().values.allSatisfy { $0 == "run: never run" })
        let run = try f.succeed(["ingest", "clean", "train", "score", "report"])
        try "<html>".write(toFile: f.dir + "/report.html", atomically: true, encoding: .utf8)
        let plan = try f.plan()
        #expect(plan.values.allSatisfy { $0.hasPrefix("skip: up to date (succeeded in pipeline run \(run) at ") }, "\(plan)")
        #expect(try f.plan(["score", "report"], forced: true) == [
            "ingest": "-", "clean": "-", "train": "-", "score": "run: forced", "report": "run: forced",
        ])
    }

    /// A rule table filled in by hand is an input of score: changing it makes score stale.
    @Test func changedBusinessRulesMakeScoreStale() throws {
        let f = try Fixture()
        try f.succeed(["ingest", "clean", "train", "score", "report"])
        try "<html>".write(toFile: f.dir + "/report.html", atomically: true, encoding: .utf8)
        #expect(try f.plan()["score"]?.hasPrefix("skip: up to date") == true)
        try f.history.store.queue.write { try $0.execute(sql: "INSERT INTO user_exclusions (user_key, item_key) VALUES ('u', 'i')") }
        let plan = try f.plan()
        #expect(plan["score"] == "run: business rules changed (item_availability, user_exclusions or the categories)", "\(plan)")
        #expect(plan["train"]?.hasPrefix("skip: up to date") == true)
    }

    @Test func whatMakesAStageRunAgain() throws {
        let f = try Fixture()
        try f.succeed(["ingest", "clean", "train", "score", "report"])
        // The report's output file is missing.
        #expect(try f.plan()["report"] == "run: output missing: \(f.dir)/report.html")
        try "<html>".write(toFile: f.dir + "/report.html", atomically: true, encoding: .utf8)

        // A changed parameter reruns the stage; its dependents' inputs will change.
        let changed = try Fixture(overrides: ["clean.min_user_interactions=3"], dir: f.dir)
        #expect(try changed.plan() == [
            "ingest": try f.plan()["ingest"]!,
            "clean": "run: changed parameter: min_user_interactions 5 → 3",
            "train": "run: stale input: clean will run first",
            "score": "run: stale input: train will run first",
            "report": "run: stale input: score will run first",
        ])
        // A parameter back to its default.
        let defaulted = try Fixture(overrides: [], dir: f.dir)
        #expect(try defaulted.plan()["clean"]!.hasPrefix("skip: "))

        // A new build of recpipe.
        #expect(try f.plan(code: "build-2")["ingest"] == "run: recpipe changed")

        // A source file that changed.
        try "user,item\na,b\nc,d\n".write(toFile: f.dir + "/events.csv", atomically: true, encoding: .utf8)
        #expect(try f.plan()["ingest"] == "run: source changed: \(f.dir)/events.csv")
        try FileManager.default.removeItem(atPath: f.dir + "/events.csv")
        #expect(try f.plan()["ingest"] == "run: source removed: \(f.dir)/events.csv")
    }

    @Test func rerunningAStageMakesItsDependentsStale() throws {
        let f = try Fixture()
        try "<html>".write(toFile: f.dir + "/report.html", atomically: true, encoding: .utf8)
        try f.succeed(["ingest", "clean", "train", "score", "report"])
        // Rerun only clean (e.g. run --only clean --force): train's input changed.
        try f.succeed(["clean"])
        let plan = try f.plan()
        #expect(plan["ingest"]!.hasPrefix("skip: ") && plan["clean"]!.hasPrefix("skip: "))
        #expect(plan["train"] == "run: stale input: clean ran since")
        #expect(plan["score"] == "run: stale input: train will run first")
    }

    @Test func selections() throws {
        let p = try Fixture().pipeline
        #expect(try Selection().stages(in: p) == ["ingest", "clean", "train", "score", "report"])
        #expect(try Selection(only: ["score", "clean"]).stages(in: p) == ["clean", "score"])
        #expect(try Selection(from: "train").stages(in: p) == ["train", "score", "report"])
        #expect(try Selection(until: "clean").stages(in: p) == ["ingest", "clean"])
        #expect(try Selection(from: "clean", until: "train").stages(in: p) == ["clean", "train"])
        #expect(throws: SchedulerError.badSelection("the options select no stage")) {
            try Selection(from: "train", until: "clean").stages(in: p)
        }
        #expect(throws: SchedulerError.badSelection(
            "--from scroe: no such stage in \(p.manifest.file) (did you mean 'score'?); stages: ingest, clean, train, score, report")) {
            try Selection(from: "scroe").stages(in: p)
        }
    }

    @Test func runsLeftRunningAreAbandoned() throws {
        let f = try Fixture()
        let run = try f.history.begin(pipeline: "plan", manifest: "p.yaml", selection: ["ingest"], forced: false, retryOf: nil,
                                      codeVersion: "x")
        let stage = try #require(f.pipeline.stage("ingest"))
        _ = try f.history.startAttempt(run: run, stage: stage, attempt: 1, reason: "never run",
                                       fingerprint: try Planner.fingerprint(stage, code: "x") { _ in "never" })
        #expect(try f.history.abandonStaleRuns().map(\.id) == [run])
        #expect(try f.history.run(run)?.status == "abandoned")
        #expect(try f.history.attempts(run: run).map(\.status) == ["failed"])
        #expect(try f.history.abandonStaleRuns().isEmpty)
    }

    @Test func takingOverStopsTheStagesADeadRunLeft() throws {
        let f = try Fixture()
        let stage = try #require(f.pipeline.stage("ingest"))
        var processes: [String: Process] = [:]
        // left: a stage of a run left running; stranger: a stage of a run that finished;
        // reused: a pid recorded for a run left running, now another program's.
        for name in ["left", "stranger", "reused"] {
            let run = try f.history.begin(pipeline: "plan", manifest: "p.yaml", selection: ["ingest"], forced: false, retryOf: nil,
                                          codeVersion: name)
            let attempt = try f.history.startAttempt(run: run, stage: stage, attempt: 1, reason: "never run",
                                                     fingerprint: try Planner.fingerprint(stage, code: name) { _ in "never" })
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/bin/sleep")
            process.arguments = ["30"]
            process.environment = name == "reused" ? [:]
                : ["RECPIPE_DATABASE": f.history.store.path, "RECPIPE_PIPELINE": "plan", "RECPIPE_PIPELINE_RUN": "\(run)",
                   "RECPIPE_PIPELINE_STAGE": "ingest"]
            try process.run()
            processes[name] = process
            try f.history.setPID(attempt: attempt, pid: process.processIdentifier)
            if name == "stranger" { try f.history.finish(run: run, status: "failed", seconds: 1, error: nil) }
        }
        let (left, stranger, reused) = (processes["left"]!, processes["stranger"]!, processes["reused"]!)
        defer { stranger.terminate(); reused.terminate() }
        try f.history.takeOverStaleRuns(grace: 0.5, logger: quietLogger)
        left.waitUntilExit()
        // SIGTERM, or SIGKILL where the test runner's children ignore SIGTERM.
        #expect(left.terminationReason == .uncaughtSignal && [SIGTERM, SIGKILL].contains(left.terminationStatus))
        // Only stage processes of runs left running are stopped.
        #expect(stranger.isRunning && reused.isRunning)
        #expect(try f.history.runs().map(\.status) == ["abandoned", "failed", "abandoned"])
    }
}
