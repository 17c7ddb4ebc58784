import Foundation
import GRDB
import Logging
import RecpipeStore

/// A row of `pipeline_runs`.
public struct PipelineRunRecord: Sendable, Codable, Equatable {
    public var id: Int64
    public var pipeline: String
    public var manifest: String
    public var status: String
    public var selection: [String]
    public var forced: Bool
    public var retryOf: Int64?
    public var codeVersion: String
    public var pid: Int
    public var host: String
    public var startedAt: String
    public var finishedAt: String?
    public var seconds: Double?
    public var stagesRun: Int?
    public var stagesSkipped: Int?
    public var stagesFailed: Int?
    public var error: String?

    init(row: Row) {
        id = row["pipeline_run_id"]
        pipeline = row["pipeline"]
        manifest = row["manifest"]
        status = row["status"]
        selection = (try? JSONDecoder().decode([String].self, from: Data((row["selection"] as String).utf8))) ?? []
        forced = row["forced"]
        retryOf = row["retry_of"]
        codeVersion = row["code_version"]
        pid = row["pid"]
        host = row["host"]
        startedAt = row["started_at"]
        finishedAt = row["finished_at"]
        seconds = row["seconds"]
        stagesRun = row["stages_run"]
        stagesSkipped = row["stages_skipped"]
        stagesFailed = row["stages_failed"]
        error = row["error"]
    }
}

/// A row of `pipeline_stage_runs`: one attempt of a stage (or its skip, or its block).
public struct StageAttemptRecord: Sendable, Codable, Equatable {
    public var id: Int64
    public var pipelineRunID: Int64
    public var stage: String
    public var kind: String
    public var attempt: Int
    public var status: String
    public var reason: String?
    public var fingerprint: String?
    public var parameters: [String: ParameterValue]?
    public var inputs: [String: String]?
    public var output: String?
    public var stageRunID: Int64?
    public var pid: Int?
    public var startedAt: String
    public var finishedAt: String?
    public var seconds: Double?
    public var rowsIn: Int?
    public var rowsOut: Int?
    public var exitStatus: Int?
    public var signal: Int?
    public var error: String?
    /// The stage process's peak resident memory (`stage_runs.peak_rss_mb`), where read.
    public var peakRSSMB: Double?

    init(row: Row) {
        func decode<T: Decodable>(_ column: String) -> T? {
            guard let text = row[column] as String? else { return nil }
            return try? JSONDecoder().decode(T.self, from: Data(text.utf8))
        }
        id = row["id"]
        pipelineRunID = row["pipeline_run_id"]
        stage = row["stage"]
        kind = row["kind"]
        attempt = row["attempt"]
        status = row["status"]
        reason = row["reason"]
        fingerprint = row["fingerprint"]
        parameters = decode("parameters")
        inputs = decode("inputs")
        output = row["output"]
        stageRunID = row["stage_run_id"]
        peakRSSMB = row["peak_rss_mb"]
        pid = row["pid"]
        startedAt = row["started_at"]
        finishedAt = row["finished_at"]
        seconds = row["seconds"]
        rowsIn = row["rows_in"]
        rowsOut = row["rows_out"]
        exitStatus = row["exit_status"]
        signal = row["signal"]
        error = row["error"]
    }
}

/// Reads and writes `pipeline_runs` and `pipeline_stage_runs`.
public struct RunHistory: Sendable {
    public let store: Store

    public init(store: Store) {
        self.store = store
    }

    // MARK: Runs

    public func begin(pipeline: String, manifest: String, selection: [String], forced: Bool, retryOf: Int64?,
                      codeVersion: String) throws -> Int64 {
        try store.queue.write { db in
            try db.execute(
                sql: """
                    INSERT INTO \(TableName.pipelineRuns) (pipeline, manifest, status, selection, forced, retry_of, code_version, pid, host, started_at)
                    VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [pipeline, manifest, Fingerprint.json(selection), forced, retryOf, codeVersion,
                            Int(getpid()), ProcessInfo.processInfo.hostName, Clock.isoNow()])
            return db.lastInsertedRowID
        }
    }

    public func finish(run: Int64, status: String, seconds: Double, error: String?) throws {
        try store.queue.write { db in
            try db.execute(
                sql: """
                    UPDATE \(TableName.pipelineRuns) SET status = :status, finished_at = :now, seconds = :seconds, error = :error,
                        stages_run = (SELECT count(DISTINCT stage) FROM \(TableName.pipelineStageRuns) WHERE pipeline_run_id = :run AND attempt > 0),
                        stages_skipped = (SELECT count(*) FROM \(TableName.pipelineStageRuns) WHERE pipeline_run_id = :run AND status = 'skipped'),
                        stages_failed = (SELECT count(DISTINCT stage) FROM \(TableName.pipelineStageRuns) s WHERE pipeline_run_id = :run AND status = 'failed'
                            AND NOT EXISTS (SELECT 1 FROM \(TableName.pipelineStageRuns) t
                                            WHERE t.pipeline_run_id = :run AND t.stage = s.stage AND t.status = 'succeeded'))
                    WHERE pipeline_run_id = :run
                    """,
                arguments: ["status": status, "now": Clock.isoNow(), "seconds": seconds, "error": error, "run": run])
        }
    }

    /// Marks runs left `running` by a scheduler that is gone (its lock was free) as
    /// `abandoned`, and their running attempts as failed. Returns the runs marked.
    public func abandonStaleRuns() throws -> [PipelineRunRecord] {
        try store.queue.write { db in
            let stale = try Row.fetchAll(db, sql: "SELECT * FROM \(TableName.pipelineRuns) WHERE status = 'running'").map(PipelineRunRecord.init)
            for run in stale {
                let message = "the scheduler (pid \(run.pid) on \(run.host)) stopped without finishing the run"
                try db.execute(
                    sql: "UPDATE \(TableName.pipelineStageRuns) SET status = 'failed', finished_at = ?, error = ? WHERE pipeline_run_id = ? AND status = 'running'",
                    arguments: [Clock.isoNow(), message, run.id])
                try db.execute(
                    sql: "UPDATE \(TableName.pipelineRuns) SET status = 'abandoned', finished_at = ?, error = ? WHERE pipeline_run_id = ?",
                    arguments: [Clock.isoNow(), message, run.id])
            }
            return stale
        }
    }

    /// Called with the lock held: marks the runs a dead scheduler left `running` as abandoned,
    /// and stops the stage processes they left, so the new run does not write the same tables
    /// at the same time (SIGTERM, then SIGKILL after `grace` seconds). A stage process is
    /// recognised by the environment its scheduler gave it (pipeline, run and stage), not by
    /// its binary: that still holds after recpipe was rebuilt or moved, and a pid the system
    /// has since given to another process is left alone.
    public func takeOverStaleRuns(grace: Double = 10, logger: Logger) throws {
        for stale in try abandonStaleRuns() {
            logger.warning("marked a run that did not finish as abandoned", metadata: [
                "pipeline_run": "\(stale.id)", "pid": "\(stale.pid)", "started_at": "\(stale.startedAt)",
            ])
            for attempt in try attempts(run: stale.id) {
                guard let pid = attempt.pid.map(pid_t.init), Self.isRunning(pid),
                      Self.isStage(pid, database: store.path, pipeline: stale.pipeline, run: stale.id, stage: attempt.stage)
                else { continue }
                logger.warning("stopping a stage left running by that run", metadata: ["stage": "\(attempt.stage)", "pid": "\(pid)"])
                kill(pid, SIGTERM)
                let deadline = Date().addingTimeInterval(grace)
                while Self.isRunning(pid) && Date() < deadline { usleep(50_000) }
                if Self.isRunning(pid) { kill(pid, SIGKILL) }
            }
        }
    }

    /// Whether process `pid` runs stage `stage` of pipeline run `run` on `database`: its
    /// environment holds the RECPIPE_DATABASE, RECPIPE_PIPELINE, RECPIPE_PIPELINE_RUN and
    /// RECPIPE_PIPELINE_STAGE the runner set.
    static func isStage(_ pid: pid_t, database: String, pipeline: String, run: Int64, stage: String) -> Bool {
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/environ") else { return false }
        let entries = Set(data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) })
        return entries.contains("RECPIPE_DATABASE=\(database)") && entries.contains("RECPIPE_PIPELINE=\(pipeline)")
            && entries.contains("RECPIPE_PIPELINE_RUN=\(run)") && entries.contains("RECPIPE_PIPELINE_STAGE=\(stage)")
    }

    /// Whether a process exists and has not exited (a zombie waiting for its parent has).
    static func isRunning(_ pid: pid_t) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let end = stat.lastIndex(of: ")") else { return false }
        return stat[stat.index(after: end)...].split(separator: " ").first != "Z"
    }

    public func run(_ id: Int64) throws -> PipelineRunRecord? {
        try store.queue.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM \(TableName.pipelineRuns) WHERE pipeline_run_id = ?", arguments: [id]).map(PipelineRunRecord.init)
        }
    }

    /// The newest runs, of one pipeline or all.
    public func runs(pipeline: String? = nil, limit: Int = 20) throws -> [PipelineRunRecord] {
        try store.queue.read { db in
            try Row.fetchAll(
                db, sql: "SELECT * FROM \(TableName.pipelineRuns) WHERE ?1 IS NULL OR pipeline = ?1 ORDER BY pipeline_run_id DESC LIMIT ?2",
                arguments: [pipeline, limit]
            ).map(PipelineRunRecord.init)
        }
    }

    public func attempts(run: Int64) throws -> [StageAttemptRecord] {
        try store.queue.read { db in
            try Row.fetchAll(db, sql: """
                SELECT s.*, r.peak_rss_mb FROM \(TableName.pipelineStageRuns) s LEFT JOIN \(TableName.stageRuns) r ON r.run_id = s.stage_run_id
                WHERE s.pipeline_run_id = ? ORDER BY s.id
                """, arguments: [run]).map(StageAttemptRecord.init)
        }
    }

    // MARK: Stages

    /// The newest successful attempt of a stage of this pipeline: what its output is and
    /// what it was computed from.
    public func lastSuccess(pipeline: String, stage: String) throws -> StageAttemptRecord? {
        try store.queue.read { db in
            try Row.fetchOne(
                db, sql: """
                    SELECT s.* FROM \(TableName.pipelineStageRuns) s JOIN \(TableName.pipelineRuns) r USING (pipeline_run_id)
                    WHERE r.pipeline = ? AND s.stage = ? AND s.status = 'succeeded' ORDER BY s.id DESC LIMIT 1
                    """,
                arguments: [pipeline, stage]
            ).map(StageAttemptRecord.init)
        }
    }

    /// The newest record of each stage of this pipeline (any status).
    public func latest(pipeline: String, stage: String) throws -> StageAttemptRecord? {
        try store.queue.read { db in
            try Row.fetchOne(
                db, sql: """
                    SELECT s.* FROM \(TableName.pipelineStageRuns) s JOIN \(TableName.pipelineRuns) r USING (pipeline_run_id)
                    WHERE r.pipeline = ? AND s.stage = ? ORDER BY s.id DESC LIMIT 1
                    """,
                arguments: [pipeline, stage]
            ).map(StageAttemptRecord.init)
        }
    }

    /// Records a stage that was not attempted: `skipped` (up to date) or `blocked`.
    public func record(run: Int64, stage: PipelineStage, status: String, reason: String, fingerprint: Fingerprint?,
                       output: String?) throws {
        try store.queue.write { db in
            try db.execute(
                sql: """
                    INSERT INTO \(TableName.pipelineStageRuns) (pipeline_run_id, stage, kind, attempt, status, reason, fingerprint,
                        parameters, inputs, output, started_at, finished_at, seconds)
                    VALUES (?, ?, ?, 0, ?, ?, ?, ?, ?, ?, ?, ?, 0)
                    """,
                arguments: [run, stage.name, stage.kind.name, status, reason, fingerprint?.hash,
                            fingerprint.map { Fingerprint.json($0.parameters) }, fingerprint.map { Fingerprint.json($0.inputs) },
                            output, Clock.isoNow(), Clock.isoNow()])
        }
    }

    /// The `running` row of an attempt; returns its id.
    public func startAttempt(run: Int64, stage: PipelineStage, attempt: Int, reason: String, fingerprint: Fingerprint) throws -> Int64 {
        try store.queue.write { db in
            try db.execute(
                sql: """
                    INSERT INTO \(TableName.pipelineStageRuns) (pipeline_run_id, stage, kind, attempt, status, reason, fingerprint,
                        parameters, inputs, started_at)
                    VALUES (?, ?, ?, ?, 'running', ?, ?, ?, ?, ?)
                    """,
                arguments: [run, stage.name, stage.kind.name, attempt, reason, fingerprint.hash,
                            Fingerprint.json(fingerprint.parameters), Fingerprint.json(fingerprint.inputs), Clock.isoNow()])
            return db.lastInsertedRowID
        }
    }

    public func setPID(attempt: Int64, pid: Int32) throws {
        try store.queue.write { db in
            try db.execute(sql: "UPDATE \(TableName.pipelineStageRuns) SET pid = ? WHERE id = ?", arguments: [Int(pid), attempt])
        }
    }

    /// The newest `stage_runs` id, to find the row a child process adds.
    public func lastStageRunID() throws -> Int64 {
        try store.queue.read { try Int64.fetchOne($0, sql: "SELECT coalesce(max(run_id), 0) FROM \(TableName.stageRuns)") ?? 0 }
    }

    /// Finishes an attempt: links the `stage_runs` row its process wrote (the first of its kind
    /// after `after`), takes rows in and out from it, and marks that row failed if the process
    /// died before it could.
    public func finishAttempt(_ id: Int64, kind: String, stageRunsAfter after: Int64, succeeded: Bool, seconds: Double,
                              exitStatus: Int32?, signal: Int32?, error: String?) throws {
        try store.queue.write { db in
            let linked = try Row.fetchOne(
                db, sql: "SELECT run_id, rows_in, rows_out, status FROM \(TableName.stageRuns) WHERE run_id > ? AND stage = ? ORDER BY run_id LIMIT 1",
                arguments: [after, kind])
            let stageRunID: Int64? = linked?["run_id"]
            if let stageRunID, linked?["status"] == "running" {
                try db.execute(
                    sql: "UPDATE \(TableName.stageRuns) SET status = 'failed', finished_at = ?, error = ? WHERE run_id = ?",
                    arguments: [Clock.isoNow(), error ?? "the process ended without recording a result", stageRunID])
            }
            try db.execute(
                sql: """
                    UPDATE \(TableName.pipelineStageRuns) SET status = ?, output = ?, stage_run_id = ?, finished_at = ?, seconds = ?,
                        rows_in = ?, rows_out = ?, exit_status = ?, signal = ?, error = ?
                    WHERE id = ?
                    """,
                arguments: [succeeded ? "succeeded" : "failed", succeeded ? "#\(id)" : nil, stageRunID, Clock.isoNow(), seconds,
                            linked?["rows_in"] as Int?, linked?["rows_out"] as Int?, exitStatus.map { Int($0) }, signal.map { Int($0) },
                            error, id])
        }
    }
}
