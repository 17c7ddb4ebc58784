import Foundation
import Logging
import RecpipeStore

/// One run of a pipeline, as `recpipe run` and `recpipe retry` make it: the database's writer
/// lock for the whole run, stale runs of killed schedulers taken over, SIGINT and SIGTERM
/// turned into an orderly stop, the stages run, the metrics file written whatever the outcome.
public struct PipelineSession {
    /// What to run.
    public enum Selection: Sendable {
        /// These stages (in manifest order); `force` runs them even when up to date.
        case stages([String], force: Bool)
        /// The stages the pipeline's last run selected that did not succeed, with its force.
        case retryLast
    }

    public enum Outcome: Sendable {
        case ran(RunResult)
        /// `retryLast`, and the last run (this id) succeeded.
        case nothingToRetry(run: Int64)
    }

    public let pipeline: Pipeline
    public let logger: Logger
    /// How the runner runs and reports stages (the selection is set by `run`).
    public var options: RunOptions
    /// Seconds to wait for another writer (infinity: as long as it takes; nil: not at all).
    public var wait: Double?
    /// The Prometheus textfile to write after the run.
    public var metrics: String?

    public init(pipeline: Pipeline, options: RunOptions, logger: Logger) {
        self.pipeline = pipeline
        self.options = options
        self.logger = logger
    }

    /// Runs `selection`. `metricsWritten` is set once the metrics file holds this run's
    /// outcome (see `recordingOutcome` for the failures before that).
    public func run(_ selection: Selection, metricsWritten: inout Bool) throws -> Outcome {
        if let metrics { try OutputGuard.check(metrics, database: pipeline.database, replaceable: .notDatabase) }
        let store = try Self.openStore(pipeline, wait: wait, logger: logger)
        let history = RunHistory(store: store)
        try history.takeOverStaleRuns(logger: logger)
        var options = options
        switch selection {
        case let .stages(stages, force):
            options.selection = stages
            options.force = force
        case .retryLast:
            guard let last = try history.runs(pipeline: pipeline.name, limit: 1).first else {
                throw SchedulerError.badSelection("pipeline \(pipeline.name) has no run to retry in \(pipeline.database)")
            }
            if last.status == "succeeded" {
                if let metrics {
                    try PrometheusTextfile.writeOutcome(pipeline: pipeline.name, outcome: "nothing_to_retry", exitCode: 0, to: metrics)
                    metricsWritten = true
                }
                return .nothingToRetry(run: last.id)
            }
            options.selection = try Self.retrySelection(of: last, pipeline: pipeline, history: history)
            options.force = last.forced
            options.retryOf = last.id
            logger.info("retrying", metadata: ["pipeline_run": "\(last.id)", "stages": "\(options.selection.joined(separator: ","))"])
        }
        StopSignals.install()
        options.interruption = { StopSignals.received }
        let result = try Runner(pipeline: pipeline, store: store, options: options, logger: logger).run()
        store.checkpoint(logger: logger)
        if let metrics { try PrometheusTextfile.write(result, pipeline: pipeline, store: store, to: metrics) }
        metricsWritten = true
        return .ran(result)
    }

    /// The stages of `last` to run again: those it selected that neither succeeded nor were
    /// up to date, in manifest order.
    static func retrySelection(of last: PipelineRunRecord, pipeline: Pipeline, history: RunHistory) throws -> [String] {
        let done = Set(try history.attempts(run: last.id).filter { ["succeeded", "skipped"].contains($0.status) }.map(\.stage))
        let selection = pipeline.stages.map(\.name).filter { last.selection.contains($0) && !done.contains($0) }
        guard !selection.isEmpty else { throw SchedulerError.badSelection("run \(last.id) left no stage of the manifest to retry") }
        return selection
    }

    /// Opens the pipeline's database for writing (creating its directory): takes its writer
    /// lock for the whole run, then migrates it.
    public static func openStore(_ pipeline: Pipeline, wait: Double?, logger: Logger) throws -> Store {
        let directory = URL(fileURLWithPath: pipeline.database).deletingLastPathComponent().path
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        return try Store(path: pipeline.database, logger: logger, access: Store.WriteAccess(wait: wait))
    }

    /// Opens the pipeline's database for reading; one that does not exist yet reads as empty.
    public static func readStore(_ pipeline: Pipeline) throws -> Store {
        FileManager.default.fileExists(atPath: pipeline.database) ? try Store(readingAt: pipeline.database) : try Store.empty()
    }

    /// Runs a pipeline command's body; when it ends without having written the metrics file
    /// itself (`written` false: refused by the lock, an invalid manifest, a failure to start),
    /// writes one that says how it ended, so a monitor never reads a stale success.
    /// `pipeline` starts as the manifest file's name; the body sets the manifest's.
    public static func recordingOutcome(metrics: String?, manifest: String, exitCode: (Error) -> Int32,
                                        _ body: (_ pipeline: inout String, _ written: inout Bool) throws -> Void) throws {
        var pipeline = URL(fileURLWithPath: manifest).deletingPathExtension().lastPathComponent
        var written = false
        do {
            try body(&pipeline, &written)
        } catch {
            if let metrics, !written, (try? OutputGuard.check(metrics, database: nil, replaceable: .notDatabase)) != nil {
                let outcome: String
                switch error {
                case StoreError.lockHeld: outcome = "lock_held"
                case SchedulerError.invalidManifest, SchedulerError.unreadableManifest: outcome = "invalid_manifest"
                case SchedulerError.cannotLaunch: outcome = "cannot_start"
                default: outcome = "error"
                }
                try? PrometheusTextfile.writeOutcome(pipeline: pipeline, outcome: outcome, exitCode: exitCode(error), to: metrics)
            }
            throw error
        }
    }
}

/// SIGINT and SIGTERM stop a run: its stages are stopped and recorded, then it exits. A
/// caught signal is back to its default in the children (an ignored or blocked one would be
/// inherited, and a stage past its timeout must stop on SIGTERM).
public enum StopSignals {
    /// The last SIGINT or SIGTERM received (nil: none). Set only by the signal handler.
    public static var received: Int32? { let value = last; return value == 0 ? nil : value }

    nonisolated(unsafe) private static var last: Int32 = 0

    static func install() {
        signal(SIGINT) { StopSignals.last = $0 }
        signal(SIGTERM) { StopSignals.last = $0 }
        var stops = sigset_t()
        sigemptyset(&stops)
        sigaddset(&stops, SIGTERM)
        sigaddset(&stops, SIGINT)
        sigprocmask(SIG_UNBLOCK, &stops, nil)
    }
}
