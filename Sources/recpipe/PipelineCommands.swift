import ArgumentParser
import Foundation
import Logging
import RecpipeScheduler
import RecpipeStages
import RecpipeStore

/// The stage commands of this binary as the scheduler sees them: their options from their
/// ArgumentParser definitions, and their own parser as the judge of a stage's arguments.
struct ArgumentParserCommands: StageCommands {
    func spec(for kind: String) -> CommandSpec? {
        guard let command = Recpipe.configuration.subcommands.first(where: { Self.name(of: $0) == kind }) else { return nil }
        return try? CommandSpec(command: kind, toolInfoJSON: Data(command._dumpHelp().utf8))
    }

    func check(_ arguments: [String]) -> String? {
        do {
            _ = try Recpipe.parseAsRoot(arguments)
            return nil
        } catch {
            return Recpipe.message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
        }
    }

    static func name(of command: ParsableCommand.Type) -> String {
        command.configuration.commandName ?? command._commandName
    }
}

/// The manifest argument and `--set`, shared by the pipeline commands.
struct ManifestOptions: ParsableArguments {
    @Argument(help: "The pipeline manifest (YAML), e.g. pipelines/demo.yaml.")
    var manifest: String

    @Option(name: .customLong("set"), help: ArgumentHelp("Override a stage parameter: STAGE.PARAMETER=VALUE (repeatable).", valueName: "stage.param=value"))
    var overrides: [String] = []

    @OptionGroup var logging: LoggingOptions

    /// Parses and validates the manifest against this binary's commands.
    func load() throws -> Pipeline {
        let manifest = try ManifestParser().load(self.manifest, overrides: overrides)
        return try Validator(commands: ArgumentParserCommands()).validate(manifest)
    }

    /// The pipeline, its history, and what a run of `selection` (all stages when nil) would do.
    func plan(selection: Selection?, forced: Bool, logger: Logger) throws
        -> (pipeline: Pipeline, history: RunHistory, plan: [(stage: PipelineStage, decision: Decision?)]) {
        try plan(try load(), selection: selection, forced: forced)
    }

    /// `plan` of a pipeline already loaded.
    func plan(_ pipeline: Pipeline, selection: Selection?, forced: Bool) throws
        -> (pipeline: Pipeline, history: RunHistory, plan: [(stage: PipelineStage, decision: Decision?)]) {
        let stages = try selection?.stages(in: pipeline) ?? pipeline.stages.map(\.name)
        let history = RunHistory(store: try PipelineSession.readStore(pipeline))
        let plan = try Planner.plan(pipeline, history: history, selection: stages, forced: forced,
                                    code: CodeVersion.of(executable: recpipeExecutable))
        return (pipeline, history, plan)
    }
}

struct SelectionOptions: ParsableArguments {
    @Option(parsing: .upToNextOption, help: ArgumentHelp("Run only these stages.", valueName: "stage"))
    var only: [String] = []
    @Option(help: ArgumentHelp("Run this stage and everything downstream of it.", valueName: "stage"))
    var from: String?
    @Option(help: ArgumentHelp("Run this stage and everything it needs.", valueName: "stage"))
    var until: String?
    @Flag(help: "Run the selected stages even when they are up to date.")
    var force = false

    var selection: Selection { Selection(only: only, from: from, until: until) }
}

/// Options of the commands that run stages.
struct ExecutionOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Most stages running at once (stages that share tables never do). Default: half the cores, 1 to 4.",
                               valueName: "n"))
    var jobs: Int?
    @OptionGroup var waiting: WaitOption
    @Option(help: ArgumentHelp("Write Prometheus metrics to this file after the run (node_exporter's textfile collector).",
                               valueName: "file"))
    var metrics: String?
    @Flag(help: "Print the run's outcome as JSON.")
    var json = false
    @Flag(name: .customLong("skipped-exit"), help: "Exit 99 instead of 0 when every selected stage was up to date and nothing ran (Apache Airflow's BashOperator shows that as skipped).")
    var skippedExit = false

    var jobCount: Int { max(1, jobs ?? min(4, max(1, ProcessInfo.processInfo.activeProcessorCount / 2))) }

    func validate() throws {
        if let jobs, jobs < 1 { throw ValidationError("--jobs must be at least 1") }
    }
}

/// The running binary, for child processes and the code version.
let recpipeExecutable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path

func printJSON<T: Encodable>(_ value: T) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

/// Prints rows as aligned columns.
func printTable(_ header: [String], _ rows: [[String]]) {
    var widths = header.map(\.count)
    for row in rows { for (index, cell) in row.enumerated() { widths[index] = max(widths[index], cell.count) } }
    for row in [header] + rows {
        let cells = row.enumerated().map { index, cell in
            index == row.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
        }
        print(cells.joined(separator: "  "))
    }
}

/// Runs a pipeline session with this command line's options and prints the outcome; shared by
/// `run` and `retry`.
func executePipeline(_ pipeline: Pipeline, selection: PipelineSession.Selection, execution: ExecutionOptions,
                     logging: LoggingOptions, logger: Logger, extraArguments: [String: [String]] = [:],
                     metricsWritten: inout Bool) throws {
    // On a terminal, a status line stays under the log lines.
    let status = isatty(STDERR_FILENO) == 1 ? TerminalStatus(RunProgress(total: 0, epochs: plannedEpochs(pipeline))) : nil
    defer { status?.stop() }
    let logger = status.map { status in logging.makeLogger(sink: { status.write($0) }) } ?? logger
    var options = RunOptions(selection: [], executable: recpipeExecutable)
    options.extraArguments = extraArguments
    options.jobs = execution.jobCount
    options.childOptions = logging.childOptions
    options.relayLog = { line, run, stage in
        let relayed = "\(line) pipeline_run=\(run) pipeline_stage=\(StderrLogHandler.quoted(stage))"
        if let status {
            status.write(relayed)
        } else {
            FileHandle.standardError.write(Data((relayed + "\n").utf8))
        }
    }
    if let status {
        options.observer = { event in status.progress.handle(event) }
        options.stageEvent = { event, stage in status.progress.stageEvent(event, stage: stage) }
    }
    if execution.json {
        options.relayOutput = { _ in }
    } else if let status {
        options.relayOutput = { line in status.write(nil, output: line) }
    }
    var session = PipelineSession(pipeline: pipeline, options: options, logger: logger)
    session.wait = execution.waiting.wait
    session.metrics = execution.metrics
    let outcome = try session.run(selection, metricsWritten: &metricsWritten)
    status?.stop()
    guard case .ran(let result) = outcome else {
        if case .nothingToRetry(let run) = outcome { print("pipeline run \(run) succeeded; nothing to retry") }
        return
    }
    if execution.json {
        try printJSON(result)
    } else {
        printTable(["stage", "kind", "status", "attempts", "seconds", "reason"], result.stages.map {
            [$0.stage, $0.kind, $0.status, "\($0.attempts)", String(format: "%.1f", $0.seconds), $0.error.map { "error: \($0)" } ?? $0.reason]
        })
        print("pipeline run \(result.pipelineRunID): \(result.status) in \(String(format: "%.1f", result.seconds)) s")
    }
    if let signal = result.interruptedBy { throw ExitCode(128 + signal) }
    if !result.succeeded { throw ExitCode(1) }
    let selected = result.stages.filter { $0.status != "not selected" }
    if execution.skippedExit && !selected.isEmpty && selected.allSatisfy({ $0.status == "skipped" }) { throw ExitCode(Failure.allSkipped) }
}

/// `PipelineSession.recordingOutcome` with this binary's exit codes.
func withOutcomeMetrics(_ metrics: String?, manifest: String,
                        _ body: (_ pipeline: inout String, _ written: inout Bool) throws -> Void) throws {
    try PipelineSession.recordingOutcome(metrics: metrics, manifest: manifest,
                                         exitCode: { ($0 as? ExitCode)?.rawValue ?? Failure.exitCode($0) }, body)
}

/// Each stage's planned epochs, for the progress line: its `epochs` parameter, or the default
/// of its command's `--epochs`.
func plannedEpochs(_ pipeline: Pipeline) -> [String: Int] {
    var epochs: [String: Int] = [:]
    for stage in pipeline.stages {
        if case .text(let value)? = stage.parameters["epochs"] {
            epochs[stage.name] = Int(value)
        } else if let value = ArgumentParserCommands().spec(for: stage.kind.name)?.option("epochs")?.defaultValue {
            epochs[stage.name] = Int(value)
        }
    }
    return epochs
}

/// The progress line at the bottom of a terminal: log lines are written above it, and it is
/// redrawn after each and once a second.
final class TerminalStatus: @unchecked Sendable {
    let progress: RunProgress
    private let lock = NSLock()
    private var stopped = false

    init(_ progress: RunProgress) {
        self.progress = progress
        Thread.detachNewThread { [self] in
            while lock.withLock({ !stopped }) {
                sleep(1)
                write(nil)
            }
        }
    }

    /// Writes a log line to stderr, or an output line to stdout (or nothing), and redraws the
    /// status line under it.
    func write(_ line: String?, output: String? = nil) {
        lock.withLock {
            guard !stopped else {
                if let line { FileHandle.standardError.write(Data((line + "\n").utf8)) }
                if let output { FileHandle.standardOutput.write(Data((output + "\n").utf8)) }
                return
            }
            FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
            if let line { FileHandle.standardError.write(Data((line + "\n").utf8)) }
            if let output { FileHandle.standardOutput.write(Data((output + "\n").utf8)) }
            var size = winsize()
            let columns = ioctl(STDERR_FILENO, UInt(TIOCGWINSZ), &size) == 0 && size.ws_col > 0 ? Int(size.ws_col) : 100
            FileHandle.standardError.write(Data(progress.render(width: columns).utf8))
        }
    }

    func stop() {
        lock.withLock {
            guard !stopped else { return }
            stopped = true
            FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
        }
    }
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a pipeline manifest: its stages in dependency order, skipping those that are up to date.",
        discussion: """
            Each stage runs as a child process (recpipe KIND --db DATABASE ...); a crash, signal or \
            timeout fails that stage and the stages that need it do not run. One run at a time per \
            database: the run holds the database's writer lock, and its stages write under it. \
            Exit codes: 0 every selected stage succeeded or was up to date; 1 a stage \
            failed; 64 bad usage; 65 invalid manifest (every problem is printed with file:line); \
            66 the manifest cannot be read; 70 internal or SQLite error; 74 disk full or I/O \
            error; 75 another command holds the writer lock; 78 the database schema does not \
            match this recpipe; 130 or 143 stopped by SIGINT or SIGTERM (128 + the signal). With \
            --metrics the file is written whatever the outcome.
            """)

    @OptionGroup var manifest: ManifestOptions
    @OptionGroup var select: SelectionOptions
    @OptionGroup var execution: ExecutionOptions
    @Option(help: ArgumentHelp("""
        With --only and one score stage: score shard I of N into a file beside the database \
        (reading only, no lock, nothing recorded; shards may run at the same time), unless the \
        stage is up to date. --merge-shards N publishes them.
        """, valueName: "I/N"))
    var shard: String?
    @Option(name: .customLong("merge-shards"), help: ArgumentHelp("With --only and one score stage: run it as a merge of the N shard files --shard wrote (recorded as the stage's run).", valueName: "N"))
    var mergeShards: Int?

    func run() throws {
        let logger = manifest.logging.makeLogger()
        try runReporting(logger) {
            try withOutcomeMetrics(execution.metrics, manifest: manifest.manifest) { name, written in
                let pipeline = try manifest.load()
                name = pipeline.name
                let stages = try select.selection.stages(in: pipeline)
                var extra: [String: [String]] = [:]
                if shard != nil || mergeShards != nil {
                    guard shard == nil || mergeShards == nil else { throw SchedulerError.badSelection("--shard and --merge-shards exclude each other") }
                    guard select.only.count == 1, select.from == nil, select.until == nil, let stage = pipeline.stage(select.only[0]),
                          stage.kind.name == "score" else {
                        throw SchedulerError.badSelection("--shard and --merge-shards need --only with one stage of kind score")
                    }
                    if let shard {
                        written = true  // a shard records nothing, metrics included
                        return try runShard(pipeline, stage: stage, shard: shard, logger: logger)
                    }
                    let count = mergeShards!
                    guard count >= 1 else { throw SchedulerError.badSelection("--merge-shards must be at least 1, got \(count)") }
                    extra[stage.name] = ["--merge"] + (0..<count).map { pipeline.shardFile(stage: stage.name, index: $0, count: count) }
                }
                try executePipeline(pipeline, selection: .stages(stages, force: select.force), execution: execution,
                                    logging: manifest.logging, logger: logger, extraArguments: extra, metricsWritten: &written)
            }
        }
    }

    /// One score shard, as the stage's command with `--shard I/N --shard-out FILE`, unless the
    /// stage is up to date (then exit 0, or 99 with --skipped-exit).
    func runShard(_ pipeline: Pipeline, stage: PipelineStage, shard: String, logger: Logger) throws {
        guard let (index, count) = ScoreStage.Shard.parse(shard), count >= 1, (0..<count).contains(index) else {
            throw SchedulerError.badSelection("--shard must be I/N with 0 ≤ I < N, got '\(shard)'")
        }
        let (_, _, plan) = try manifest.plan(pipeline, selection: select.selection, forced: select.force)
        if let decision = plan.first(where: { $0.stage.name == stage.name })?.decision, !decision.run {
            print("\(stage.name) shard \(index)/\(count): skipped, \(decision.reason)")
            if execution.skippedExit { throw ExitCode(Failure.allSkipped) }
            return
        }
        let file = pipeline.shardFile(stage: stage.name, index: index, count: count)
        try FileManager.default.createDirectory(atPath: (file as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: recpipeExecutable)
        process.arguments = stage.commandLine(database: pipeline.database, options: manifest.logging.childOptions)
            + ["--shard", "\(index)/\(count)", "--shard-out", file]
        logger.info("score shard started", metadata: ["stage": "\(stage.name)", "shard": "\(index)/\(count)", "out": "\(file)"])
        try process.run()
        process.waitUntilExit()
        if process.terminationReason == .uncaughtSignal { throw ExitCode(128 + process.terminationStatus) }
        if process.terminationStatus != 0 { throw ExitCode(process.terminationStatus) }
    }
}

struct Retry: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Resume the pipeline's last run: run the stages it selected that did not succeed.",
        discussion: "Stages that succeeded or were up to date in that run are left alone. Exit codes as for run; 0 when the last run succeeded.")

    @OptionGroup var manifest: ManifestOptions
    @OptionGroup var execution: ExecutionOptions

    func run() throws {
        let logger = manifest.logging.makeLogger()
        try runReporting(logger) {
            try withOutcomeMetrics(execution.metrics, manifest: manifest.manifest) { name, written in
                let pipeline = try manifest.load()
                name = pipeline.name
                try executePipeline(pipeline, selection: .retryLast, execution: execution,
                                    logging: manifest.logging, logger: logger, metricsWritten: &written)
            }
        }
    }
}

struct Plan: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print what a run would do and why (never run, changed parameter, stale input, forced), without running.")

    @OptionGroup var manifest: ManifestOptions
    @OptionGroup var select: SelectionOptions
    @Flag(help: "Print JSON.")
    var json = false

    func run() throws {
        let logger = manifest.logging.makeLogger()
        try runReporting(logger) {
            let (pipeline, _, plan) = try manifest.plan(selection: select.selection, forced: select.force, logger: logger)
            struct Entry: Encodable { var stage: String; var kind: String; var action: String; var reason: String; var command: [String] }
            let entries = plan.map { stage, decision in
                Entry(stage: stage.name, kind: stage.kind.name, action: decision.map { $0.run ? "run" : "skip" } ?? "not selected",
                      reason: decision?.reason ?? "", command: stage.commandLine(database: pipeline.database))
            }
            if json {
                try printJSON(entries)
            } else {
                printTable(["stage", "kind", "action", "reason"], entries.map { [$0.stage, $0.kind, $0.action, $0.reason] })
            }
        }
    }
}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show each stage of a pipeline: its last outcome, and whether it is up to date now.")

    @OptionGroup var manifest: ManifestOptions
    @Flag(help: "Print JSON.")
    var json = false

    func run() throws {
        let logger = manifest.logging.makeLogger()
        try runReporting(logger) {
            let (pipeline, history, plan) = try manifest.plan(selection: nil, forced: false, logger: logger)
            struct Entry: Encodable {
                var stage: String; var kind: String; var last: StageAttemptRecord?; var upToDate: Bool; var reason: String
            }
            var entries: [Entry] = []
            for (stage, decision) in plan {
                entries.append(Entry(stage: stage.name, kind: stage.kind.name,
                                     last: try history.latest(pipeline: pipeline.name, stage: stage.name),
                                     upToDate: !(decision?.run ?? true), reason: decision?.reason ?? ""))
            }
            let lastRun = try history.runs(pipeline: pipeline.name, limit: 1).first
            let live = try history.store.queue.read { try LiveLists.summary(in: $0) }
            if json {
                struct Output: Encodable {
                    var pipeline: String; var database: String; var lastRun: PipelineRunRecord?; var live: LiveLists.Published?; var stages: [Entry]
                }
                try printJSON(Output(pipeline: pipeline.name, database: pipeline.database, lastRun: lastRun, live: live, stages: entries))
                return
            }
            if let lastRun {
                print("pipeline \(pipeline.name): last run \(lastRun.id) \(lastRun.status), started \(lastRun.startedAt)\(lastRun.error.map { ", \($0)" } ?? "")")
            } else {
                print("pipeline \(pipeline.name): never run")
            }
            if let live {
                print("live lists: run \(live.run), model \(live.modelID) (\(live.kind)), published \(live.publishedAt)\(live.reason.map { "; \($0)" } ?? "")")
            }
            printTable(["stage", "kind", "last", "at", "seconds", "rows_out", "now"], entries.map { entry in
                [entry.stage, entry.kind, entry.last.map { "\($0.status)\($0.attempt > 1 ? " (attempt \($0.attempt))" : "")" } ?? "-",
                 entry.last?.finishedAt ?? entry.last?.startedAt ?? "-", entry.last?.seconds.map { String(format: "%.1f", $0) } ?? "-",
                 entry.last?.rowsOut.map { "\($0)" } ?? "-", entry.upToDate ? "up to date" : "would run: \(entry.reason)"]
            })
        }
    }
}

struct History: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show pipeline runs (pipeline_runs), or one run's stage attempts (pipeline_stage_runs).")

    @OptionGroup var options: ReadOptions
    @Option(help: "Only runs of this pipeline.")
    var pipeline: String?
    @Option(name: .customLong("run"), help: "Show this run's stage attempts.")
    var runID: Int64?
    @Option(help: "How many runs.")
    var limit = 20
    @Flag(help: "Print JSON.")
    var json = false

    func run() throws {
        let logger = options.logging.makeLogger()
        try runReporting(logger) {
            let history = RunHistory(store: try options.openStore())
            if let run = runID {
                guard try history.run(run) != nil else { throw SchedulerError.badSelection("no pipeline run \(run) in \(options.db)") }
                let attempts = try history.attempts(run: run)
                if json { return try printJSON(attempts) }
                printTable(["stage", "kind", "attempt", "status", "started_at", "seconds", "peak_rss_mb", "rows_in", "rows_out",
                            "reason / error"], attempts.map {
                    [$0.stage, $0.kind, "\($0.attempt)", $0.status, $0.startedAt, $0.seconds.map { String(format: "%.1f", $0) } ?? "-",
                     $0.peakRSSMB.map { String(format: "%.0f", $0) } ?? "-",
                     $0.rowsIn.map { "\($0)" } ?? "-", $0.rowsOut.map { "\($0)" } ?? "-", $0.error.map { "error: \($0)" } ?? $0.reason ?? ""]
                })
                return
            }
            let runs = try history.runs(pipeline: pipeline, limit: limit)
            if json { return try printJSON(runs) }
            printTable(["run", "pipeline", "status", "started_at", "seconds", "ran", "skipped", "failed", "error"], runs.map {
                ["\($0.id)", $0.pipeline, $0.status, $0.startedAt, $0.seconds.map { String(format: "%.1f", $0) } ?? "-",
                 $0.stagesRun.map { "\($0)" } ?? "-", $0.stagesSkipped.map { "\($0)" } ?? "-", $0.stagesFailed.map { "\($0)" } ?? "-",
                 $0.error ?? ""]
            })
        }
    }
}

struct Cron: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a crontab line that runs the pipeline on a schedule.",
        discussion: """
            The line uses absolute paths, appends the run's log lines to --log, and relies on the \
            run's own lock: a run that finds the previous one still going exits with 75 at once \
            instead of piling up. Install it with `crontab -e`.
            """)

    @Argument(help: "The pipeline manifest.")
    var manifest: String
    @Option(help: "When, in cron syntax (minute hour day-of-month month day-of-week), e.g. \"0 3 * * *\".")
    var at: String
    @Option(help: "The log file (default: the manifest's name with .log, beside the database).")
    var log: String?
    @Option(help: "Write Prometheus metrics to this file after each run.")
    var metrics: String?
    @OptionGroup var logging: LoggingOptions

    func run() throws {
        let logger = logging.makeLogger()
        try runReporting(logger) {
            let pipeline = try Validator(commands: ArgumentParserCommands()).validate(try ManifestParser().load(manifest))
            let logFile = log.map { absolutePath($0) }
                ?? URL(fileURLWithPath: pipeline.database).deletingLastPathComponent().appendingPathComponent("\(pipeline.name).log").path
            print(try CronLine.render(schedule: at, executable: recpipeExecutable,
                                      manifest: absolutePath(manifest), log: logFile, metrics: metrics.map { absolutePath($0) }))
        }
    }
}
