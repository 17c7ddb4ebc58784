import Foundation
import Logging
import RecpipeStore

/// Anything a manifest can `use`: its name, the tables it reads and writes (checked by the
/// table access tests) and the parameters that name files it reads or writes (part of the
/// scheduler's fingerprints).
public protocol Job {
    /// The `recpipe` subcommand, and the name manifests use (`uses: train`).
    static var name: String { get }
    /// Tables whose contents the job depends on.
    static var reads: [TableName] { get }
    /// Tables the job writes; it touches no others.
    static var writes: [TableName] { get }
    /// Parameters whose values are files or directories it reads (may be glob patterns).
    static var inputPaths: [String] { get }
    /// Parameters whose values are files it writes; a missing one makes it run again.
    static var outputPaths: [String] { get }
    /// The data whose contents decide what the job produces with these manifest parameters
    /// (by name, flags as "true"): the data flow a manifest's `needs` must order. `reads`
    /// less lookups whose order does not matter (what retention must keep), with the model
    /// tables narrowed to the kinds of model concerned.
    static func inputs(_ parameters: [String: String]) -> [DataSet]
    /// The data the job changes with these parameters; `writes`, narrowed likewise.
    static func outputs(_ parameters: [String: String]) -> [DataSet]
    /// A digest of the tables users fill by hand that decide what the job produces (the
    /// business rules score applies); nil when there are none. Part of the scheduler's
    /// fingerprint, so changing such a table makes the job stale.
    static func ruleDigest(_ parameters: [String: String], store: Store) throws -> String?
}

extension Job {
    public static var inputPaths: [String] { [] }
    public static var outputPaths: [String] { [] }
    public static func inputs(_ parameters: [String: String]) -> [DataSet] { reads.map { DataSet($0) } }
    public static func outputs(_ parameters: [String: String]) -> [DataSet] { writes.map { DataSet($0) } }
    public static func ruleDigest(_ parameters: [String: String], store: Store) throws -> String? { nil }
}

/// A table, or the part of one that holds one kind of model (the model tables hold every
/// kind; a trainer of EASE neither reads nor changes the Mult-VAE's rows).
public struct DataSet: Hashable, Sendable, CustomStringConvertible {
    public var table: TableName
    /// nil: the whole table.
    public var part: String?

    public init(_ table: TableName, part: String? = nil) {
        self.table = table
        self.part = part
    }

    /// The model tables' parts of one kind.
    public static func models(_ kind: String?) -> [DataSet] {
        [TableName.models, .modelItems, .modelWeights, .trainingLog, .modelCarryovers].map { DataSet($0, part: kind) }
    }

    /// Whether the two overlap: the same table, and the same part or a whole table.
    public func overlaps(_ other: DataSet) -> Bool {
        table == other.table && (part == nil || other.part == nil || part == other.part)
    }

    public var description: String { part.map { "\(table) (\($0))" } ?? table.rawValue }
}

/// Every job of the pipeline, in the order a nightly runs them: the one list the scheduler's
/// stage kinds and the table access tests come from.
public let allJobs: [any Job.Type] = [
    IngestStage.self, CleanStage.self, AugmentStage.self, TrainStage.self, ScoreStage.self, RollbackStage.self,
    EvaluateStage.self, FeedbackStage.self, PruneStage.self, ReportJob.self, SynthJob.self,
]

/// A step of the pipeline that changes the database: reads some tables, writes others, and
/// records each run in `stage_runs` (through `StageRunner`). A stage's configuration is
/// typed and Codable; it is recorded with every run in `stage_runs.parameters`.
public protocol Stage: Job {
    associatedtype Config: Codable & Sendable
    var config: Config { get }
    func run(_ context: StageContext) throws -> StageReport
}

/// What a stage gets to work with. Nothing global: the logger and the database come in here.
public struct StageContext: Sendable {
    public let store: Store
    public let logger: Logger
    /// The `stage_runs` row of this invocation.
    public let runID: Int64
    /// Where progress and the report go for the scheduler (nowhere when run by hand).
    public let events: EventChannel

    public init(store: Store, logger: Logger, runID: Int64, events: EventChannel = .none) {
        self.store = store
        self.logger = logger
        self.runID = runID
        self.events = events
    }
}

/// What a stage did, for the log, the run history and the command's output.
public struct StageReport: Sendable, Equatable {
    public var rowsIn: Int
    public var rowsOut: Int
    /// Lines for a person reading the command's output.
    public var summary: [String]
    /// Problems that did not stop the stage but make it fail (e.g. some sources rejected).
    public var failures: [StageError]

    public init(rowsIn: Int = 0, rowsOut: Int = 0, summary: [String] = [], failures: [StageError] = []) {
        self.rowsIn = rowsIn
        self.rowsOut = rowsOut
        self.summary = summary
        self.failures = failures
    }
}

/// Runs a stage and records it in `stage_runs`: a `running` row first (committed, so a
/// killed run leaves a trace), then `succeeded` or `failed` with the error.
public enum StageRunner {
    @discardableResult
    public static func run<S: Stage>(_ stage: S, store: Store, logger: Logger, events: EventChannel = .none) throws -> StageReport {
        var logger = logger
        logger[metadataKey: "stage"] = "\(S.name)"
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let parameters = String(decoding: try encoder.encode(stage.config), as: UTF8.self)
        let started = Clock.monotonic()
        let runID = try store.queue.write { try StageRuns.begin(stage: S.name, parameters: parameters, in: $0) }
        logger[metadataKey: "run"] = "\(runID)"
        logger.info("stage started")
        func finish(status: String, report: StageReport?, error: String?) {
            do {
                try store.queue.write {
                    try StageRuns.finish(run: runID, status: status, seconds: Clock.monotonic() - started, rowsIn: report?.rowsIn,
                                         rowsOut: report?.rowsOut, error: error, peakResidentMB: peakResidentMB(), in: $0)
                }
            } catch {
                logger.error("cannot record stage result", metadata: ["error": "\(error.localizedDescription)"])
            }
        }
        // However the stage ends, its WAL is copied back and truncated where no reader holds
        // an older snapshot, so the -wal file does not grow night after night.
        defer { store.checkpoint(logger: logger) }
        do {
            let report = try stage.run(StageContext(store: store, logger: logger, runID: runID, events: events))
            let failed = !report.failures.isEmpty
            finish(status: failed ? "failed" : "succeeded", report: report,
                   error: failed ? report.failures.map(\.localizedDescription).joined(separator: "; ") : nil)
            logger.info(failed ? "stage failed" : "stage finished", metadata: [
                "rows_in": "\(report.rowsIn)", "rows_out": "\(report.rowsOut)",
                "seconds": "\(String(format: "%.2f", Clock.monotonic() - started))",
            ])
            events.send(.report(rowsIn: report.rowsIn, rowsOut: report.rowsOut, summary: report.summary))
            return report
        } catch {
            finish(status: "failed", report: nil, error: error.localizedDescription)
            throw error
        }
    }
}

/// The peak resident memory of this process so far, in MiB.
public func peakResidentMB() -> Double {
    var usage = rusage()
    #if os(Linux)
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_maxrss) / 1024  // KiB on Linux
    #else
    getrusage(RUSAGE_SELF, &usage)
    return Double(usage.ru_maxrss) / 1_048_576  // bytes on macOS
    #endif
}
