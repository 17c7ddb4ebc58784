import Foundation
import Logging
import RecpipeStore

/// The scheduler's view of its history (`PipelineHistory` in the store): runs, attempts,
/// and taking over the runs of a scheduler that is gone.
public struct RunHistory: Sendable {
    public let store: Store

    public init(store: Store) {
        self.store = store
    }

    // MARK: Runs

    public func begin(pipeline: String, manifest: String, selection: [String], forced: Bool, retryOf: Int64?,
                      codeVersion: String) throws -> Int64 {
        try store.queue.write {
            try PipelineHistory.begin(pipeline: pipeline, manifest: manifest, selectionJSON: Fingerprint.json(selection), forced: forced,
                                      retryOf: retryOf, codeVersion: codeVersion, pid: Int(getpid()),
                                      host: ProcessInfo.processInfo.hostName, in: $0)
        }
    }

    public func finish(run: Int64, status: String, seconds: Double, error: String?) throws {
        try store.queue.write { try PipelineHistory.finish(run: run, status: status, seconds: seconds, error: error, in: $0) }
    }

    /// Marks runs left `running` by a scheduler that is gone (its lock was free) as
    /// `abandoned`, and their running attempts as failed. Returns the runs marked.
    public func abandonStaleRuns() throws -> [PipelineRunRecord] {
        try store.queue.write { db in
            try PipelineHistory.abandonRunning(message: { "the scheduler (pid \($0.pid) on \($0.host)) stopped without finishing the run" },
                                               in: db)
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
        try store.queue.read { try PipelineHistory.run(id, in: $0) }
    }

    /// The newest runs, of one pipeline or all.
    public func runs(pipeline: String? = nil, limit: Int = 20) throws -> [PipelineRunRecord] {
        try store.queue.read { try PipelineHistory.runs(pipeline: pipeline, limit: limit, in: $0) }
    }

    public func attempts(run: Int64) throws -> [StageAttemptRecord] {
        try store.queue.read { try PipelineHistory.attempts(run: run, in: $0) }
    }

    // MARK: Stages

    /// The newest successful attempt of a stage of this pipeline: what its output is and
    /// what it was computed from.
    public func lastSuccess(pipeline: String, stage: String) throws -> StageAttemptRecord? {
        try store.queue.read { try PipelineHistory.latest(pipeline: pipeline, stage: stage, succeeded: true, in: $0) }
    }

    /// The newest record of each stage of this pipeline (any status).
    public func latest(pipeline: String, stage: String) throws -> StageAttemptRecord? {
        try store.queue.read { try PipelineHistory.latest(pipeline: pipeline, stage: stage, succeeded: false, in: $0) }
    }

    static func entry(_ stage: PipelineStage, _ fingerprint: Fingerprint?) -> PipelineHistory.StageEntry {
        PipelineHistory.StageEntry(stage: stage.name, kind: stage.kind.name, fingerprint: fingerprint?.hash,
                                   parametersJSON: fingerprint.map { Fingerprint.json($0.parameters) },
                                   inputsJSON: fingerprint.map { Fingerprint.json($0.inputs) })
    }

    /// Records a stage that was not attempted: `skipped` (up to date) or `blocked`.
    public func record(run: Int64, stage: PipelineStage, status: String, reason: String, fingerprint: Fingerprint?,
                       output: String?) throws {
        try store.queue.write {
            try PipelineHistory.record(run: run, Self.entry(stage, fingerprint), status: status, reason: reason, output: output, in: $0)
        }
    }

    /// The `running` row of an attempt; returns its id.
    public func startAttempt(run: Int64, stage: PipelineStage, attempt: Int, reason: String, fingerprint: Fingerprint) throws -> Int64 {
        try store.queue.write {
            try PipelineHistory.startAttempt(run: run, Self.entry(stage, fingerprint), attempt: attempt, reason: reason, in: $0)
        }
    }

    public func setPID(attempt: Int64, pid: Int32) throws {
        try store.queue.write { try PipelineHistory.setPID(attempt: attempt, pid: Int(pid), in: $0) }
    }

    /// The newest `stage_runs` id, to find the row a child process adds.
    public func lastStageRunID() throws -> Int64 {
        try store.queue.read { try PipelineHistory.lastStageRunID(in: $0) }
    }

    /// Finishes an attempt: links the `stage_runs` row its process wrote (the first of its kind
    /// after `after`), takes rows in and out from it, and marks that row failed if the process
    /// died before it could.
    public func finishAttempt(_ id: Int64, kind: String, stageRunsAfter after: Int64, succeeded: Bool, seconds: Double,
                              exitStatus: Int32?, signal: Int32?, error: String?) throws {
        try store.queue.write {
            try PipelineHistory.finishAttempt(id, kind: kind, stageRunsAfter: after, succeeded: succeeded, seconds: seconds,
                                              exitStatus: exitStatus, signal: signal, error: error, in: $0)
        }
    }
}
