import Foundation
import GRDB

/// A resolved parameter value as recorded in the run history (JSON: string, bool or list).
public enum ParameterValue: Sendable, Equatable, Codable, CustomStringConvertible {
    case text(String)
    case flag(Bool)
    case list([String])

    public init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let flag = try? container.decode(Bool.self) {
            self = .flag(flag)
        } else if let list = try? container.decode([String].self) {
            self = .list(list)
        } else {
            self = .text(try container.decode(String.self))
        }
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .text(let value): try container.encode(value)
        case .flag(let value): try container.encode(value)
        case .list(let values): try container.encode(values)
        }
    }

    public var description: String {
        switch self {
        case .text(let value): return value
        case .flag(let value): return "\(value)"
        case .list(let values): return "[" + values.joined(separator: ", ") + "]"
        }
    }
}

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

    public init(row: Row) {
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

    public init(row: Row) {
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

/// `pipeline_runs` and `pipeline_stage_runs`: the scheduler's history of runs and of each
/// stage's attempts, skips and blocks.
public enum PipelineHistory {
    /// Records a pipeline run that is starting; returns its id.
    public static func begin(pipeline: String, manifest: String, selectionJSON: String, forced: Bool, retryOf: Int64?,
                             codeVersion: String, pid: Int, host: String, in db: Database) throws -> Int64 {
        try db.execute(
            sql: """
                INSERT INTO \(TableName.pipelineRuns) (pipeline, manifest, status, selection, forced, retry_of, code_version, pid, host, started_at)
                VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [pipeline, manifest, selectionJSON, forced, retryOf, codeVersion, pid, host, Clock.isoNow()])
        return db.lastInsertedRowID
    }

    /// Completes a run's row, counting its stages run, skipped and failed (a stage that
    /// failed and then succeeded on a retry is not failed).
    public static func finish(run: Int64, status: String, seconds: Double, error: String?, in db: Database) throws {
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

    /// Marks runs left `running` as `abandoned` and their running attempts as failed, with
    /// `message(run)` as the error. Returns the runs marked.
    public static func abandonRunning(message: (PipelineRunRecord) -> String, in db: Database) throws -> [PipelineRunRecord] {
        let stale = try Row.fetchAll(db, sql: "SELECT * FROM \(TableName.pipelineRuns) WHERE status = 'running'").map(PipelineRunRecord.init)
        for run in stale {
            let text = message(run)
            try db.execute(
                sql: "UPDATE \(TableName.pipelineStageRuns) SET status = 'failed', finished_at = ?, error = ? WHERE pipeline_run_id = ? AND status = 'running'",
                arguments: [Clock.isoNow(), text, run.id])
            try db.execute(
                sql: "UPDATE \(TableName.pipelineRuns) SET status = 'abandoned', finished_at = ?, error = ? WHERE pipeline_run_id = ?",
                arguments: [Clock.isoNow(), text, run.id])
        }
        return stale
    }

    public static func run(_ id: Int64, in db: Database) throws -> PipelineRunRecord? {
        try Row.fetchOne(db, sql: "SELECT * FROM \(TableName.pipelineRuns) WHERE pipeline_run_id = ?", arguments: [id]).map(PipelineRunRecord.init)
    }

    /// The newest runs, of one pipeline or all.
    public static func runs(pipeline: String?, limit: Int, in db: Database) throws -> [PipelineRunRecord] {
        try Row.fetchAll(
            db, sql: "SELECT * FROM \(TableName.pipelineRuns) WHERE ?1 IS NULL OR pipeline = ?1 ORDER BY pipeline_run_id DESC LIMIT ?2",
            arguments: [pipeline, limit]
        ).map(PipelineRunRecord.init)
    }

    /// A run's attempts, skips and blocks in order, with each process's peak memory.
    public static func attempts(run: Int64, in db: Database) throws -> [StageAttemptRecord] {
        try Row.fetchAll(db, sql: """
            SELECT s.*, r.peak_rss_mb FROM \(TableName.pipelineStageRuns) s LEFT JOIN \(TableName.stageRuns) r ON r.run_id = s.stage_run_id
            WHERE s.pipeline_run_id = ? ORDER BY s.id
            """, arguments: [run]).map(StageAttemptRecord.init)
    }

    /// The newest record of a stage of this pipeline; only successful ones when `succeeded`.
    public static func latest(pipeline: String, stage: String, succeeded: Bool, in db: Database) throws -> StageAttemptRecord? {
        try Row.fetchOne(
            db, sql: """
                SELECT s.* FROM \(TableName.pipelineStageRuns) s JOIN \(TableName.pipelineRuns) r USING (pipeline_run_id)
                WHERE r.pipeline = ? AND s.stage = ? \(succeeded ? "AND s.status = 'succeeded'" : "") ORDER BY s.id DESC LIMIT 1
                """,
            arguments: [pipeline, stage]
        ).map(StageAttemptRecord.init)
    }

    /// What the scheduler records of a stage: its name and kind, and the fingerprint of its
    /// inputs (hash, parameters and inputs as JSON).
    public struct StageEntry: Sendable {
        public var stage: String
        public var kind: String
        public var fingerprint: String?
        public var parametersJSON: String?
        public var inputsJSON: String?
        public init(stage: String, kind: String, fingerprint: String?, parametersJSON: String?, inputsJSON: String?) {
            self.stage = stage
            self.kind = kind
            self.fingerprint = fingerprint
            self.parametersJSON = parametersJSON
            self.inputsJSON = inputsJSON
        }
    }

    /// Records a stage that was not attempted: `skipped` (up to date) or `blocked`.
    public static func record(run: Int64, _ entry: StageEntry, status: String, reason: String, output: String?, in db: Database) throws {
        try db.execute(
            sql: """
                INSERT INTO \(TableName.pipelineStageRuns) (pipeline_run_id, stage, kind, attempt, status, reason, fingerprint,
                    parameters, inputs, output, started_at, finished_at, seconds)
                VALUES (?, ?, ?, 0, ?, ?, ?, ?, ?, ?, ?, ?, 0)
                """,
            arguments: [run, entry.stage, entry.kind, status, reason, entry.fingerprint, entry.parametersJSON, entry.inputsJSON,
                        output, Clock.isoNow(), Clock.isoNow()])
    }

    /// The `running` row of an attempt; returns its id.
    public static func startAttempt(run: Int64, _ entry: StageEntry, attempt: Int, reason: String, in db: Database) throws -> Int64 {
        try db.execute(
            sql: """
                INSERT INTO \(TableName.pipelineStageRuns) (pipeline_run_id, stage, kind, attempt, status, reason, fingerprint,
                    parameters, inputs, started_at)
                VALUES (?, ?, ?, ?, 'running', ?, ?, ?, ?, ?)
                """,
            arguments: [run, entry.stage, entry.kind, attempt, reason, entry.fingerprint, entry.parametersJSON, entry.inputsJSON,
                        Clock.isoNow()])
        return db.lastInsertedRowID
    }

    public static func setPID(attempt: Int64, pid: Int, in db: Database) throws {
        try db.execute(sql: "UPDATE \(TableName.pipelineStageRuns) SET pid = ? WHERE id = ?", arguments: [pid, attempt])
    }

    /// The newest `stage_runs` id, to find the row a child process adds.
    public static func lastStageRunID(in db: Database) throws -> Int64 {
        try Int64.fetchOne(db, sql: "SELECT coalesce(max(run_id), 0) FROM \(TableName.stageRuns)") ?? 0
    }

    /// Finishes an attempt: links the `stage_runs` row its process wrote (the first of its kind
    /// after `after`), takes rows in and out from it, and marks that row failed if the process
    /// died before it could.
    public static func finishAttempt(_ id: Int64, kind: String, stageRunsAfter after: Int64, succeeded: Bool, seconds: Double,
                                     exitStatus: Int32?, signal: Int32?, error: String?, in db: Database) throws {
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

    /// Figures the metrics file reports: sources the latest ingest run refused or skipped as
    /// refused before.
    public static func refusedByLatestIngest(in db: Database) throws -> Int {
        try Int.fetchOne(db, sql: """
            SELECT count(*) FROM \(TableName.ingestBatches) WHERE status = 'refused'
            AND seen_run_id = (SELECT max(run_id) FROM \(TableName.stageRuns) WHERE stage = 'ingest')
            """) ?? 0
    }
}
