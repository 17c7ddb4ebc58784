import Foundation
import GRDB
import RecpipeTestSupport
import Testing

/// The repository's pipelines/ folder.
let pipelinesDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../pipelines")
    .standardized.path

/// Runs the CLI to completion with extra environment variables.
func recpipe(_ arguments: [String], in dir: String, environment: [String: String]) throws -> Result {
    let process = try startRecpipe(arguments, in: dir, environment: environment)
    process.waitUntilExit()
    return Result(status: process.terminationStatus, stdout: (try? String(contentsOfFile: process.outputFile, encoding: .utf8)) ?? "",
                  stderr: (try? String(contentsOfFile: process.errorFile, encoding: .utf8)) ?? "")
}

/// Starts the CLI in the background, its output going to files in `dir` (a pipe nobody reads
/// would block it).
func startRecpipe(_ arguments: [String], in dir: String, environment: [String: String] = [:]) throws -> Process {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: recpipeBinary)
    process.arguments = arguments
    process.currentDirectoryURL = URL(fileURLWithPath: dir)
    process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    let name = UUID().uuidString
    for file in ["\(dir)/\(name).out", "\(dir)/\(name).err"] { _ = FileManager.default.createFile(atPath: file, contents: nil) }
    process.standardOutput = FileHandle(forWritingAtPath: "\(dir)/\(name).out")
    process.standardError = FileHandle(forWritingAtPath: "\(dir)/\(name).err")
    try process.run()
    return process
}

extension Process {
    private var files: (String, String) {
        let out = (standardOutput as! FileHandle), err = (standardError as! FileHandle)
        func path(_ handle: FileHandle) -> String {
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(handle.fileDescriptor)")) ?? ""
        }
        return (path(out), path(err))
    }
    var outputFile: String { files.0 }
    var errorFile: String { files.1 }
}

/// Polls `condition` until it holds or `seconds` pass.
func eventually(_ seconds: Double = 60, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if try condition() { return true }
        usleep(50_000)
    }
    return false
}

/// A small pipeline whose train stage runs long (1,000 epochs, no early stop) unless `--set
/// train.epochs=N` says otherwise.
let slowManifest = """
    name: slow
    database: recs.sqlite
    stages:
      synth:  { uses: synth, with: { out: events.csv, users: 300, items: 200, interactions: 8000, ratings: true } }
      ingest: { uses: ingest, needs: [synth], with: { sources: events.csv } }
      clean:  { uses: clean, needs: [ingest], with: { heldout_users: 30 } }
      train:  { uses: train, needs: [clean], with: { epochs: 1000, patience: none, no_gate: true } }
      score:  { uses: score, needs: [train], with: { k: 10 } }
    """

/// Starts `recpipe run slow.yaml` in `dir` and waits until its train stage runs; returns the
/// scheduler, the database and the train stage's process id.
func startSlowRun(in dir: String) throws -> (scheduler: Process, db: DatabaseQueue, train: Int32) {
    try slowManifest.write(toFile: dir + "/slow.yaml", atomically: true, encoding: .utf8)
    let scheduler = try startRecpipe(["run", "slow.yaml"], in: dir)
    let db = try DatabaseQueue(path: dir + "/recs.sqlite")
    var pid: Int32?
    _ = eventually {
        pid = try? db.read { try Int32.fetchOne($0, sql: "SELECT pid FROM pipeline_stage_runs WHERE stage = 'train' AND status = 'running'") }
        return pid != nil
    }
    return (scheduler, db, try #require(pid, "the train stage did not start"))
}

@Suite(.serialized, .tags(.large)) struct SchedulerCLITests {
    /// The demo manifest end to end, at a small size: every stage runs, a second run skips
    /// them all, a changed parameter reruns the stage and what depends on it.
    @Test func demoManifestEndToEnd() throws {
        let dir = scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let small = ["--set", "synth.users=400", "--set", "synth.items=300", "--set", "synth.interactions=15000",
                     "--set", "train.epochs=3", "--set", "ials.factors=8", "--set", "ials.regularization=1", "--set", "ials.alpha=1",
                     "--set", "ials.iterations=3", "--set", "itemknn.neighbours=20", "--set", "itemknn.shrink=10", "--set", "ease.lambda=100",
                     "--set", "edlae.lambda=100", "--set", "edlae.edlae_dropout=0.2",
                     "--set", "augment.epochs=2", "--set", "augment.generator_hidden=32", "--set", "augment.discriminator_hidden=16",
                     "--set", "train_augmented.epochs=3"]
        let environment = ["RECPIPE_DEMO_DIR": dir]
        let manifest = pipelinesDirectory + "/demo.yaml"
        let stages = ["synth", "ingest", "clean", "train", "augment", "train_augmented", "popularity", "ease", "edlae", "itemknn",
                      "ials", "feedback", "evaluate", "score", "report"]

        let plan = try recpipe(["plan", manifest] + small, in: dir, environment: environment)
        #expect(plan.status == 0, "\(plan.stderr)")
        #expect(plan.stdout.split(separator: "\n").dropFirst().allSatisfy { $0.contains(" run ") && $0.hasSuffix("never run") })

        // --verbose goes to every stage too (before ingest's list of files).
        let channelsBefore = eventChannels()
        let first = try recpipe(["run", manifest, "--verbose", "--metrics", "\(dir)/recpipe.prom"] + small, in: dir, environment: environment)
        #expect(first.status == 0, "\(first.stderr)")
        #expect(first.stdout.contains("pipeline run 1: succeeded"))
        // Every stage's output and log lines come through, marked with the stage.
        #expect(first.stdout.contains("evaluate | ") && first.stdout.contains("report | \(dir)/report.html"))
        #expect(first.stderr.contains("epoch finished") && first.stderr.contains("pipeline_stage=train"))
        // The scheduler learns each stage's rows from its report event, not from its log text.
        let succeeded = first.stderr.split(separator: "\n").filter { $0.contains(" stage succeeded ") && $0.contains("stage=score") }
        #expect(succeeded.count == 1 && succeeded.allSatisfy { $0.contains("rows_out=") && !$0.contains("rows_out=0 ") }, "\(succeeded)")
        // No event channel is left behind.
        #expect(eventChannels().subtracting(channelsBefore).isEmpty)
        // The first night has no published lists for the closed loop: said, and not a failure.
        #expect(first.stderr.contains("no live recommendations yet"))
        // stderr is not a terminal here: log lines only, no progress line redrawn over them.
        #expect(!first.stderr.contains("\u{1B}[K") && !first.stderr.contains("\r"))
        #expect(FileManager.default.fileExists(atPath: dir + "/report.html"))
        let db = try DatabaseQueue(path: dir + "/recpipe.sqlite")
        try db.read { db throws in
            #expect(try String.fetchAll(db, sql: "SELECT stage FROM pipeline_stage_runs WHERE status = 'succeeded' ORDER BY id") == stages)
            // Each stage that records itself in stage_runs is linked to its row, with its rows.
            #expect(try Int.fetchOne(db, sql: """
                SELECT count(*) FROM pipeline_stage_runs p JOIN stage_runs s ON s.run_id = p.stage_run_id
                WHERE s.status = 'succeeded' AND p.rows_out = s.rows_out AND p.kind = s.stage
                """) == stages.count - 2)  // synth and report write files, not stage_runs
            #expect(try String.fetchOne(db, sql: "SELECT status FROM pipeline_runs") == "succeeded")
        }
        let metrics = try String(contentsOfFile: dir + "/recpipe.prom", encoding: .utf8)
        #expect(metrics.contains("recpipe_pipeline_last_run_success{pipeline=\"demo\",outcome=\"succeeded\"} 1.0"))
        #expect(metrics.contains("recpipe_pipeline_last_run_exit_code{pipeline=\"demo\"} 0.0"))
        #expect(metrics.contains("recpipe_stage_last_run_status{pipeline=\"demo\",stage=\"train\",kind=\"train\",status=\"succeeded\"} 1.0"))
        #expect(metrics.contains("recpipe_evaluation_ndcg_at_100{pipeline=\"demo\",model=\"ease\"}"))
        #expect(metrics.contains("recpipe_live_lists_coverage_ratio{pipeline=\"demo\"} 1.0"), "\(metrics)")
        #expect(metrics.contains("recpipe_live_lists_users{pipeline=\"demo\",source=\"model\"}"))

        // Nothing changed: everything is skipped, and says why.
        let second = try recpipe(["run", manifest, "--json"] + small, in: dir, environment: environment)
        #expect(second.status == 0, "\(second.stderr)")
        let outcome = try JSONSerialization.jsonObject(with: Data(second.stdout.utf8)) as? [String: Any]
        let outcomes = outcome?["stages"] as? [[String: Any]] ?? []
        #expect(outcomes.map { $0["status"] as? String } == Array(repeating: "skipped", count: stages.count))
        #expect(outcomes.allSatisfy { ($0["reason"] as? String ?? "").hasPrefix("up to date (succeeded in pipeline run 1") })
        #expect(second.stderr.components(separatedBy: "stage skipped").count == stages.count + 1)

        // As an orchestrator's task runs a stage: alone, and exit 99 when it is up to date.
        let upToDate = try recpipe(["run", manifest, "--only", "clean", "--skipped-exit"] + small, in: dir, environment: environment)
        #expect(upToDate.status == 99, "\(upToDate.stderr)")
        #expect(try recpipe(["run", manifest, "--only", "score", "--shard", "0/2", "--skipped-exit"] + small, in: dir,
                            environment: environment).status == 99)
        // Score in two shard processes and a merge (an exported Airflow DAG with --shards):
        // the lists one process published.
        func live() throws -> [String] {
            try db.read { try String.fetchAll($0, sql: "SELECT user_key || ' ' || rank || ' ' || item_key || ' ' || score || ' ' || source FROM recommendations ORDER BY user_key, rank") }
        }
        let single = try live()
        for index in 0..<2 {
            let shard = try recpipe(["run", manifest, "--only", "score", "--shard", "\(index)/2", "--force"] + small, in: dir, environment: environment)
            #expect(shard.status == 0, "\(shard.stderr)")
            #expect(FileManager.default.fileExists(atPath: dir + "/demo-score-shards/shard-\(index)-of-2.sqlite"))
        }
        let merge = try recpipe(["run", manifest, "--only", "score", "--merge-shards", "2", "--force"] + small, in: dir, environment: environment)
        #expect(merge.status == 0, "\(merge.stderr)")
        #expect(try live() == single)
        try db.read { db throws in
            let parameters = try String.fetchOne(db, sql: "SELECT s.parameters FROM live_recommendations l JOIN stage_runs s ON s.run_id = l.run_id")
            #expect(parameters?.contains("merge") == true, "published by the merge: \(parameters ?? "")")
        }
        let misused = try recpipe(["run", manifest, "--only", "clean", "--shard", "0/2"] + small, in: dir, environment: environment)
        #expect(misused.status == 64 && misused.stderr.contains("--shard and --merge-shards need --only with one stage of kind score"))
        // The merge published the same lists with the same inputs: score stays up to date.
        #expect(try recpipe(["run", manifest, "--only", "score", "--skipped-exit"] + small, in: dir, environment: environment).status == 99)

        // A business rule filled in by hand makes score (and what follows it) stale; the
        // evaluation, which judges the models and not the live lists, stays.
        try db.write { try $0.execute(sql: "INSERT INTO item_availability (item_key, hidden) VALUES ('i1', 1)") }
        let ruled = try recpipe(["plan", manifest, "--json"] + small, in: dir, environment: environment)
        let steps = (try JSONSerialization.jsonObject(with: Data(ruled.stdout.utf8)) as? [[String: Any]] ?? [])
        #expect(steps.filter { $0["action"] as? String == "run" }.map { $0["stage"] as? String } == ["score", "report"],
                "\(ruled.stdout)")
        #expect(ruled.stdout.contains("business rules changed"))

        // A changed parameter: train and what depends on it run again, the rest is skipped.
        let changed = small + ["--set", "train.epochs=4"]
        let planned = try recpipe(["plan", manifest, "--json"] + changed, in: dir, environment: environment)
        let actions = (try JSONSerialization.jsonObject(with: Data(planned.stdout.utf8)) as? [[String: Any]] ?? [])
            .map { "\($0["stage"]!):\($0["action"]!)" }
        #expect(actions == ["synth:skip", "ingest:skip", "clean:skip", "train:run", "augment:skip", "train_augmented:skip",
                            "popularity:skip", "ease:skip", "edlae:skip", "itemknn:skip", "ials:skip", "feedback:skip", "evaluate:run", "score:run",
                            "report:run"])
        #expect(planned.stdout.contains("changed parameter: epochs 3 → 4"))
        let third = try recpipe(["run", manifest] + changed, in: dir, environment: environment)
        #expect(third.status == 0, "\(third.stderr)")
        try db.read { db throws in
            #expect(try String.fetchAll(db, sql: "SELECT stage FROM pipeline_stage_runs WHERE pipeline_run_id = (SELECT max(pipeline_run_id) FROM pipeline_stage_runs) AND status = 'succeeded' ORDER BY id")
                    == ["train", "evaluate", "score", "report"])
        }
        // --force with --only reruns exactly that.
        let forced = try recpipe(["run", manifest, "--only", "clean", "--force", "--json"] + changed, in: dir, environment: environment)
        let forcedStages = (try JSONSerialization.jsonObject(with: Data(forced.stdout.utf8)) as? [String: Any])?["stages"] as? [[String: Any]]
        #expect(forced.status == 0)
        #expect(forcedStages?.filter { $0["status"] as? String != "not selected" }.map { "\($0["stage"]!):\($0["status"]!):\($0["reason"]!)" }
                == ["clean:succeeded:forced"])
        let stale = try recpipe(["status", manifest, "--json"] + changed, in: dir, environment: environment)
        let status = try JSONSerialization.jsonObject(with: Data(stale.stdout.utf8)) as? [String: Any]
        let rows = status?["stages"] as? [[String: Any]] ?? []
        #expect(rows.first { $0["stage"] as? String == "train" }?["reason"] as? String == "stale input: clean ran since")
        #expect(rows.first { $0["stage"] as? String == "ingest" }?["upToDate"] as? Bool == true)
        // The live lists' model, chosen as the champion, and why.
        let live = status?["live"] as? [String: Any]
        #expect(live?["model_id"] is Int && !((live?["reason"] as? String) ?? "").isEmpty, "\(stale.stdout)")
        let text = try recpipe(["status", manifest] + changed, in: dir, environment: environment)
        #expect(text.stdout.contains("live lists: run "), "\(text.stdout)")

        let history = try recpipe(["history", "--db", dir + "/recpipe.sqlite", "--json"], in: dir)
        let runs = try JSONSerialization.jsonObject(with: Data(history.stdout.utf8)) as? [[String: Any]] ?? []
        // Newest first: the forced clean, the changed train, the score found up to date, the
        // merge of the shards (the shards record no run), clean found up to date, the second
        // run, the first.
        #expect(runs.map { $0["id"] as? Int } == [7, 6, 5, 4, 3, 2, 1])
        #expect(runs.map { $0["stagesRun"] as? Int } == [1, 4, 0, 1, 0, 0, stages.count])
        // One run's attempts carry each stage process's peak memory.
        let attempts = try recpipe(["history", "--db", dir + "/recpipe.sqlite", "--run", "1", "--json"], in: dir)
        let rowsOfRun = try JSONSerialization.jsonObject(with: Data(attempts.stdout.utf8)) as? [[String: Any]] ?? []
        #expect(rowsOfRun.count == stages.count)
        #expect(rowsOfRun.filter { $0["kind"] as? String == "train" }.allSatisfy { ($0["peakRSSMB"] as? Double ?? 0) > 1 })
        let table = try recpipe(["history", "--db", dir + "/recpipe.sqlite", "--run", "1"], in: dir)
        #expect(table.stdout.contains("peak_rss_mb"))

    }

    /// Nights with little new data keep the baselines that have a retrain threshold: their
    /// published models stand for the new split, evaluate and score take them; a night that
    /// takes the growth over the threshold trains them again.
    @Test func baselinesAreKeptUntilTheDataGrowsPastTheirRetrainThreshold() throws {
        let dir = scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let manifest = dir + "/nightly.yaml"
        try """
            name: nightly
            database: recpipe.sqlite
            stages:
              synth: { uses: synth, with: { out: events.csv.gz, users: 400, items: 200, interactions: 12000, until_day: 363 } }
              ingest: { uses: ingest, needs: [synth], with: { sources: "events*.csv.gz" } }
              clean: { uses: clean, needs: [ingest], with: { min_rating: none, heldout_users: 40 } }
              popularity: { uses: train, needs: [clean], with: { model: popularity, retrain_threshold: 0.05 } }
              ease: { uses: train, needs: [clean], with: { model: ease, lambda: 100, retrain_threshold: 0.05 } }
              evaluate: { uses: evaluate, needs: [popularity, ease] }
              score: { uses: score, needs: [evaluate], with: { k: 20 } }
            """.write(toFile: manifest, atomically: true, encoding: .utf8)
        let first = try recpipe(["run", manifest], in: dir, environment: [:])
        #expect(first.status == 0, "\(first.stderr)")
        let db = try DatabaseQueue(path: dir + "/recpipe.sqlite")
        func count(_ sql: String) throws -> Int { try db.read { try Int.fetchOne($0, sql: sql) ?? -1 } }
        #expect(try count("SELECT count(*) FROM models") == 2)

        /// A night: another file of the synthetic log arrives and the pipeline runs.
        func night(_ file: String, _ synth: [String]) throws -> Result {
            let made = try recpipe(["synth", "--out", dir + "/" + file, "--users", "400", "--items", "200", "--quiet"] + synth,
                                   in: dir, environment: [:])
            #expect(made.status == 0, "\(made.stderr)")
            let run = try recpipe(["run", manifest], in: dir, environment: [:])
            #expect(run.status == 0, "\(run.stderr)")
            return run
        }

        // The log's last two days, well under 5% of it.
        let second = try night("events-late.csv.gz", ["--interactions", "12000", "--from-day", "363"])
        #expect(second.stderr.components(separatedBy: " model kept ").count == 3, "\(second.stderr)")
        #expect(try count("SELECT count(*) FROM models") == 2)
        let split = "(SELECT max(run_id) FROM clean_runs)"
        #expect(try count("SELECT count(*) FROM model_carryovers WHERE clean_run_id = \(split)") == 2)
        #expect(try count("""
            SELECT count(DISTINCT e.model_id) FROM evaluation e JOIN evaluation_runs r USING (run_id)
            WHERE r.clean_run_id = \(split) AND e.model IN ('ease', 'popularity')
            """) == 2)
        #expect(try count("SELECT count(*) FROM live_recommendations l JOIN score_runs s USING (run_id) WHERE s.model_id IN (1, 2)") == 1)

        // Another 10% of rows (another seed's log): counted from the models' own split, over
        // the threshold.
        let third = try night("events-more.csv.gz", ["--interactions", "1200", "--seed", "11"])
        #expect(third.stderr.contains("more than the threshold 5%"), "\(third.stderr)")
        #expect(try count("SELECT count(*) FROM models") == 4)
    }

    @Test func invalidManifestsAndSelectionsExitBeforeRunningAnything() throws {
        let dir = scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try """
            name: bad
            database: recs.sqlite
            stages:
              ingest: { uses: ingest, with: { sources: events.csv, formt: csv } }
              gan:    { uses: augment, needs: [ingest], with: { long_tial: true } }
              train:
                uses: train
                needs: [ingest]
                with: { epochs: lots, model: vae }
              clean:  { uses: clean, needs: [ingest], with: { min_rating: none, split: temporl, test_days: "7" } }
            """.write(toFile: dir + "/bad.yaml", atomically: true, encoding: .utf8)
        let result = try recpipe(["run", "bad.yaml", "--metrics", "bad.prom"], in: dir)
        #expect(result.status == 65)
        // The metrics file says how the run ended, though it never started.
        let metrics = (try? String(contentsOfFile: dir + "/bad.prom", encoding: .utf8)) ?? ""
        #expect(metrics.contains("recpipe_pipeline_last_run_success{pipeline=\"bad\",outcome=\"invalid_manifest\"} 0"), "\(metrics)")
        #expect(metrics.contains("recpipe_pipeline_last_run_exit_code{pipeline=\"bad\"} 65"), "\(metrics)")
        let errors = result.stderr.split(separator: "\n").filter { $0.contains(" error ") }.map { String($0.split(separator: " ", maxSplits: 2)[2]) }
        #expect(errors == [
            "bad.yaml:4: stage ingest: unknown parameter 'formt' for ingest (did you mean 'format'?)",
            "bad.yaml:5: stage gan: unknown parameter 'long_tial' for augment (did you mean 'long_tail'?)",
            "bad.yaml:9: stage train: parameter 'model': 'vae' is not one of multvae, multdae, ease, edlae, itemknn, ials, popularity",
            "bad.yaml:10: stage clean: parameter 'split': 'temporl' is not one of strong, temporal, predefined (did you mean 'temporal'?)",
        ])
        try "name: ok\ndatabase: recs.sqlite\nstages:\n  t: { uses: train, with: { epochs: lots } }\n"
            .write(toFile: dir + "/types.yaml", atomically: true, encoding: .utf8)
        let types = try recpipe(["plan", "types.yaml"], in: dir)
        #expect(types.status == 65)
        #expect(types.stderr.contains("error types.yaml:4: stage t: train rejects its parameters: The value 'lots' is invalid for '--epochs <epochs>'"))
        #expect(!FileManager.default.fileExists(atPath: dir + "/recs.sqlite"))

        try slowManifest.write(toFile: dir + "/slow.yaml", atomically: true, encoding: .utf8)
        let selection = try recpipe(["run", "slow.yaml", "--only", "scroe"], in: dir)
        #expect(selection.status == 64 && selection.stderr.contains("--only scroe: no such stage in slow.yaml (did you mean 'score'?)"))
        #expect(try recpipe(["run", "missing.yaml"], in: dir).status == 66)

        let cron = try recpipe(["cron", "slow.yaml", "--at", "30 2 * * 1-5"], in: dir)
        #expect(cron.status == 0)
        #expect(cron.stdout.contains("\n30 2 * * 1-5 \(recpipeBinary) run \(dir)/slow.yaml >> \(dir)/slow.log 2>&1"), "\(cron.stdout)")
        #expect(try recpipe(["cron", "slow.yaml", "--at", "3am"], in: dir).status == 64)
    }

    /// A stage killed with SIGKILL fails (the scheduler survives, records it and does not start
    /// what needs it); `retry` then runs only what did not succeed.
    @Test func killedStageThenRetryFinishesTheRun() throws {
        let dir = scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (scheduler, db, train) = try startSlowRun(in: dir)
        usleep(300_000)
        kill(train, SIGKILL)
        scheduler.waitUntilExit()
        #expect(scheduler.terminationStatus == 1)
        try db.read { db throws in
            let train = try Row.fetchOne(db, sql: "SELECT * FROM pipeline_stage_runs WHERE stage = 'train'")!
            #expect(train["status"] as String == "failed" && train["signal"] as Int? == 9)
            #expect((train["error"] as String).hasPrefix("killed by signal 9 (SIGKILL)"))
            // Its own stage_runs row is closed too.
            #expect(try String.fetchOne(db, sql: "SELECT status FROM stage_runs WHERE run_id = ?", arguments: [train["stage_run_id"] as Int64]) == "failed")
            #expect(try String.fetchOne(db, sql: "SELECT status || ': ' || reason FROM pipeline_stage_runs WHERE stage = 'score'")
                    == "blocked: train failed")
            #expect(try String.fetchOne(db, sql: "SELECT status FROM pipeline_runs") == "failed")
        }

        let retry = try recpipe(["retry", "slow.yaml", "--set", "train.epochs=3"], in: dir)
        #expect(retry.status == 0, "\(retry.stderr)")
        try db.read { db throws in
            #expect(try Row.fetchOne(db, sql: "SELECT status, retry_of, selection FROM pipeline_runs WHERE pipeline_run_id = 2")
                    == ["status": "succeeded", "retry_of": 1, "selection": "[\"train\",\"score\"]"])
            #expect(try String.fetchAll(db, sql: "SELECT stage || ':' || status FROM pipeline_stage_runs WHERE pipeline_run_id = 2 ORDER BY id")
                    == ["train:succeeded", "score:succeeded"])
        }
        let again = try recpipe(["retry", "slow.yaml"], in: dir)
        #expect(again.status == 0 && again.stdout.contains("pipeline run 2 succeeded; nothing to retry"))
    }

    /// SIGTERM (or SIGINT) to the scheduler stops its running stage, records it, and exits
    /// with 128 + the signal; the stages not reached are left for `retry`.
    @Test func terminatedSchedulerStopsItsStagesAndRecordsThem() throws {
        let dir = scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (scheduler, db, train) = try startSlowRun(in: dir)
        kill(scheduler.processIdentifier, SIGTERM)
        scheduler.waitUntilExit()
        #expect(scheduler.terminationStatus == 128 + SIGTERM)
        #expect(kill(train, 0) != 0)  // the scheduler waited for it
        try db.read { db throws in
            #expect(try String.fetchOne(db, sql: "SELECT status || ': ' || error FROM pipeline_stage_runs WHERE stage = 'train'")
                    == "failed: stopped: the scheduler was interrupted by signal 15")
            #expect(try String.fetchOne(db, sql: "SELECT count(*) FROM pipeline_stage_runs WHERE stage = 'score'") == "0")
            #expect(try String.fetchOne(db, sql: "SELECT status || ': ' || error FROM pipeline_runs") == "failed: interrupted by signal 15")
        }
        let output = try String(contentsOfFile: scheduler.outputFile, encoding: .utf8)
        #expect(output.contains("pipeline run 1: failed") && output.split(separator: "\n").contains { $0.hasPrefix("score") && $0.contains("not run") })
    }

    /// One run at a time per database: a second run exits with 75 at once; a run with --wait
    /// gets the lock when the first is killed, takes it over and stops the stage it left.
    @Test func lockContentionBetweenProcesses() throws {
        let dir = scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (first, db, orphan) = try startSlowRun(in: dir)
        let second = try recpipe(["run", "slow.yaml", "--metrics", "slow.prom"], in: dir)
        #expect(second.status == 75)
        let metrics = (try? String(contentsOfFile: dir + "/slow.prom", encoding: .utf8)) ?? ""
        #expect(metrics.contains("recpipe_pipeline_last_run_success{pipeline=\"slow\",outcome=\"lock_held\"} 0")
                && metrics.contains("recpipe_pipeline_last_run_exit_code{pipeline=\"slow\"} 75"), "\(metrics)")
        // The metrics file over the database is refused before anything runs.
        let over = try recpipe(["run", "slow.yaml", "--metrics", "recs.sqlite"], in: dir)
        #expect(over.status == 64 && over.stderr.contains("refusing to write there"), "\(over.stderr)")
        #expect(second.stderr.contains("recs.sqlite: another command is writing this database (pid \(first.processIdentifier) on "), "\(second.stderr)")
        let waiting = try startRecpipe(["run", "slow.yaml", "--until", "clean", "--wait"], in: dir)
        #expect(eventually { ((try? String(contentsOfFile: waiting.errorFile, encoding: .utf8)) ?? "").contains("waiting for the writer lock") })
        kill(first.processIdentifier, SIGKILL)
        first.waitUntilExit()
        waiting.waitUntilExit()
        let log = try String(contentsOfFile: waiting.errorFile, encoding: .utf8)
        #expect(waiting.terminationStatus == 0, "\(log)")
        #expect(log.contains("taking over the writer lock from a holder that is gone"))
        #expect(log.contains("marked a run that did not finish as abandoned"))
        // The killed run's stage is not running any more: it died writing to the scheduler's
        // closed pipe, or the new run stopped it.
        let state = (try? String(contentsOfFile: "/proc/\(orphan)/stat", encoding: .utf8))?.split(separator: " ")[2]
        #expect(state == nil || state == "Z", "\(log)")
        try db.read { db throws in
            #expect(try String.fetchAll(db, sql: "SELECT status FROM pipeline_runs ORDER BY pipeline_run_id") == ["abandoned", "succeeded"])
            #expect(try String.fetchAll(db, sql: "SELECT stage || ':' || status FROM pipeline_stage_runs WHERE pipeline_run_id = 2 ORDER BY id")
                    == ["synth:skipped", "ingest:skipped", "clean:skipped"])
        }
    }

    /// Retries with backoff count their attempts; a stage past its timeout is stopped; both
    /// are that stage's failure only.
    @Test func retriesAndTimeouts() throws {
        let dir = scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try """
            name: flaky
            database: recs.sqlite
            stages:
              flaky: { uses: ingest, with: { sources: missing.csv }, retries: 2, retry_backoff: 0.2s }
              after: { uses: clean, needs: [flaky] }
              slow:  { uses: synth, with: { out: big.csv, users: 100000, items: 20000, interactions: 100000000 }, timeout: 1s }
              fine:  { uses: synth, with: { out: small.csv, users: 50, items: 50, interactions: 200 } }
            """.write(toFile: dir + "/flaky.yaml", atomically: true, encoding: .utf8)
        let started = Date()
        let result = try recpipe(["run", "flaky.yaml", "--jobs", "2"], in: dir, environment: [:])
        #expect(result.status == 1)
        #expect(Date().timeIntervalSince(started) < 30)
        #expect(result.stderr.contains("stage failed, will retry") && result.stderr.contains("retry_in=0.2s") && result.stderr.contains("retry_in=0.4s"))
        let db = try DatabaseQueue(path: dir + "/recs.sqlite")
        try db.read { db throws in
            let flaky = try Row.fetchAll(db, sql: "SELECT attempt, status, exit_status, error FROM pipeline_stage_runs WHERE stage = 'flaky' ORDER BY id")
            #expect(flaky.map { $0["attempt"] as Int } == [1, 2, 3])
            #expect(flaky.allSatisfy { $0["status"] == "failed" && $0["exit_status"] == 66 })
            let lastError: String = flaky.last?["error"] ?? ""
            #expect(lastError.contains("missing.csv: cannot read"))
            #expect(try String.fetchOne(db, sql: "SELECT status || ': ' || error FROM pipeline_stage_runs WHERE stage = 'slow'")
                    == "failed: timed out after 1 s")
            #expect(try String.fetchOne(db, sql: "SELECT status FROM pipeline_stage_runs WHERE stage = 'after'") == "blocked")
            #expect(try String.fetchOne(db, sql: "SELECT status FROM pipeline_stage_runs WHERE stage = 'fine'") == "succeeded")
            #expect(try Int.fetchOne(db, sql: "SELECT stages_failed FROM pipeline_runs") == 2)
        }
    }
}

/// The event channel directories the schedulers of this machine have open.
func eventChannels() -> Set<String> {
    Set(((try? FileManager.default.contentsOfDirectory(atPath: NSTemporaryDirectory())) ?? []).filter { $0.hasPrefix("recpipe-events-") })
}
