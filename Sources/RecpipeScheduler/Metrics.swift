import Foundation
import RecpipeStore

/// Prometheus text format for node_exporter's textfile collector: the run's status and
/// duration, each stage's status, duration and rows, the latest evaluation's NDCG@100 per
/// model and the latest closed-loop hit rate and recall. Written to a temporary file and
/// renamed, so the collector never reads half a file.
public enum PrometheusTextfile {
    public static func render(_ result: RunResult, pipeline: String, store: Store) throws -> String {
        let label = "pipeline=\"\(escape(pipeline))\""
        let outcome = result.succeeded ? "succeeded" : result.interruptedBy != nil ? "interrupted" : "failed"
        var lines = outcomeGauges(label: label, outcome: outcome,
                                  exitCode: result.succeeded ? 0 : result.interruptedBy.map { 128 + $0 } ?? 1)
        func metric(_ name: String, _ help: String, _ samples: [(String, Double)]) { lines += gauge(name, help, samples) }
        metric("recpipe_pipeline_last_run_duration_seconds", "Wall-clock seconds of the last run.", [(label, result.seconds)])
        metric("recpipe_pipeline_last_run_id", "pipeline_runs.pipeline_run_id of the last run.", [(label, Double(result.pipelineRunID))])
        let sizes = store.fileSizes()
        metric("recpipe_database_size_bytes", "Size of the database file after the run.", [(label, Double(sizes.database))])
        metric("recpipe_database_wal_size_bytes", "Size of the database's -wal file after the run.", [(label, Double(sizes.wal))])
        let refused = try store.queue.read { try PipelineHistory.refusedByLatestIngest(in: $0) }
        metric("recpipe_ingest_refused_sources", "Sources the latest ingest run refused, or skipped because their content was refused before.",
               [(label, Double(refused))])
        let coverage = try store.queue.read { try LiveLists.coverage(in: $0) }
        metric("recpipe_live_lists_users", "Users with a live list, by where it comes from (model, fallback-item, fallback-popular).",
               coverage.bySource.map { ("\(label),source=\"\(escape($0.source))\"", Double($0.users)) })
        metric("recpipe_live_lists_coverage_ratio", "Share of the users in raw_interactions with a live list.",
               [(label, Double(coverage.bySource.reduce(0) { $0 + $1.users }) / Double(max(coverage.rawUsers, 1)))])
        let attempts = try RunHistory(store: store).attempts(run: result.pipelineRunID)
        let stages = result.stages.filter { $0.status != "not selected" }
        func stageLabel(_ stage: StageOutcome) -> String { "\(label),stage=\"\(escape(stage.stage))\",kind=\"\(stage.kind)\"" }
        metric("recpipe_stage_last_run_status", "The stage's outcome in the last run: 1 for the status named by the label.",
               stages.flatMap { stage in
                   ["succeeded", "skipped", "failed", "blocked"].map { ("\(stageLabel(stage)),status=\"\($0)\"", stage.status == $0 ? 1.0 : 0.0) }
               })
        metric("recpipe_stage_last_run_duration_seconds", "Seconds the stage's last attempt ran (0 when skipped).",
               stages.map { (stageLabel($0), $0.seconds) })
        metric("recpipe_stage_last_run_attempts", "Attempts the stage took in the last run.", stages.map { (stageLabel($0), Double($0.attempts)) })
        let rows = stages.compactMap { stage -> (StageOutcome, StageAttemptRecord)? in
            attempts.last { $0.stage == stage.stage && $0.attempt > 0 }.map { (stage, $0) }
        }
        metric("recpipe_stage_last_run_rows_in", "Rows the stage read in its last attempt.",
               rows.compactMap { stage, attempt in attempt.rowsIn.map { (stageLabel(stage), Double($0)) } })
        metric("recpipe_stage_last_run_rows_out", "Rows the stage wrote in its last attempt.",
               rows.compactMap { stage, attempt in attempt.rowsOut.map { (stageLabel(stage), Double($0)) } })
        let quality = try store.queue.read { db in
            try Evaluations.latestRunRow(in: db).map { try Evaluations.figures(run: $0["run_id"], in: db) } ?? []
        }.filter { ($0["metric"] as String) == "ndcg" && ($0["k"] as Int) == 100 }
        metric("recpipe_evaluation_ndcg_at_100", "Test NDCG@100 of each model in the latest evaluation.",
               quality.map { ("\(label),model=\"\(escape($0["model"]))\"", $0["value"]) })
        let loop = try store.queue.read { try Evaluations.closedLoop(runs: 1, in: $0) }
        // Feedback stores nothing on a night without new interactions: the figures below are
        // the latest measured ones, and this says when they were measured.
        metric("recpipe_closed_loop_timestamp_seconds", "When the latest closed-loop figures were measured (Unix seconds).",
               loop.prefix(1).compactMap { row in
                   ISO8601DateFormatter().date(from: row["created_at"] as String).map { (label, $0.timeIntervalSince1970) }
               })
        metric("recpipe_closed_loop_hit_rate", "Share of users with new interactions who had one of them in their published top K (latest feedback).",
               loop.map { ("\(label),k=\"\($0["k"] as Int)\"", $0["hit_rate"]) })
        metric("recpipe_closed_loop_recall", "Mean Recall@K of the published lists against users' new interactions (latest feedback).",
               loop.map { ("\(label),k=\"\($0["k"] as Int)\"", $0["recall"]) })
        return lines.joined(separator: "\n") + "\n"
    }

    /// The file for a run that ended before it had a result: refused by the lock
    /// (`lock_held`), an invalid manifest (`invalid_manifest`), a stage that could not be
    /// started (`cannot_start`), another error (`error`), a retry with nothing to retry
    /// (`nothing_to_retry`, exit code 0).
    public static func renderOutcome(pipeline: String, outcome: String, exitCode: Int32) -> String {
        outcomeGauges(label: "pipeline=\"\(escape(pipeline))\"", outcome: outcome, exitCode: exitCode).joined(separator: "\n") + "\n"
    }

    /// How a run ended, whether or not it had a result: success (with the outcome as a
    /// label), when, and the exit code.
    static func outcomeGauges(label: String, outcome: String, exitCode: Int32) -> [String] {
        gauge("recpipe_pipeline_last_run_success", "1 if the last run succeeded (including all stages up to date), 0 if it did not; outcome says how it ended.",
              [("\(label),outcome=\"\(outcome)\"", exitCode == 0 ? 1 : 0)])
            + gauge("recpipe_pipeline_last_run_timestamp_seconds", "When the last run finished (Unix seconds).",
                    [(label, Date().timeIntervalSince1970.rounded())])
            + gauge("recpipe_pipeline_last_run_exit_code", "The exit code of the last run.", [(label, Double(exitCode))])
    }

    /// One gauge in the text format: its help, its type, a line per sample.
    static func gauge(_ name: String, _ help: String, _ samples: [(String, Double)]) -> [String] {
        ["# HELP \(name) \(help)", "# TYPE \(name) gauge"] + samples.map { labels, value in "\(name){\(labels)} \(value)" }
    }

    public static func writeOutcome(pipeline: String, outcome: String, exitCode: Int32, to path: String) throws {
        try replace(path, with: renderOutcome(pipeline: pipeline, outcome: outcome, exitCode: exitCode))
    }

    public static func write(_ result: RunResult, pipeline: Pipeline, store: Store, to path: String) throws {
        try replace(path, with: try render(result, pipeline: pipeline.name, store: store))
    }

    static func replace(_ path: String, with text: String) throws {
        let temporary = path + ".\(getpid()).tmp"
        try text.write(toFile: temporary, atomically: false, encoding: .utf8)
        guard rename(temporary, path) == 0 else {
            unlink(temporary)
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path])
        }
    }

    static func escape(_ value: String) -> String {
        value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
    }
}

/// A crontab line for a pipeline.
public enum CronLine {
    /// - Throws: `badSelection` when the schedule is not five cron fields (or an @-shortcut).
    /// Five cron fields, or an @-shortcut.
    public static func isSchedule(_ schedule: String) -> Bool {
        let fields = schedule.split(separator: " ", omittingEmptySubsequences: true)
        let shortcuts = ["@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly", "@annually", "@reboot"]
        let allowed = Set("0123456789*,-/abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
        return (fields.count == 1 && shortcuts.contains(String(fields[0])))
            || (fields.count == 5 && fields.allSatisfy { $0.allSatisfy(allowed.contains) })
    }

    public static func render(schedule: String, executable: String, manifest: String, log: String, metrics: String?) throws -> String {
        let fields = schedule.split(separator: " ", omittingEmptySubsequences: true)
        guard isSchedule(schedule) else {
            throw SchedulerError.badSelection("--at '\(schedule)': expected five cron fields (minute hour day-of-month month day-of-week), e.g. \"0 3 * * *\", or @daily")
        }
        var command = "\(quote(executable)) run \(quote(manifest))"
        if let metrics { command += " --metrics \(quote(metrics))" }
        command += " >> \(quote(log)) 2>&1"
        // cron turns an unescaped % into a newline.
        let line = fields.joined(separator: " ") + " " + command.replacingOccurrences(of: "%", with: "\\%")
        return """
            # recpipe: \(manifest). One run at a time: a run that finds the previous one still going exits with 75.
            \(line)
            """
    }

    static func quote(_ value: String) -> String {
        value.allSatisfy { $0.isLetter || $0.isNumber || "/._-+=:,@".contains($0) } ? value : "'" + value.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}
