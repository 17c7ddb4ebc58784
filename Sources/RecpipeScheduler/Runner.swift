import Foundation
import Logging
import RecpipeStages
import RecpipeStore

/// How `recpipe run` runs a pipeline.
public struct RunOptions: Sendable {
    public var selection: [String]
    public var force = false
    /// Most stages running at once (stages that touch the same tables never run together).
    public var jobs = 1
    /// The run this one retries (`recpipe retry`).
    public var retryOf: Int64?
    /// The recpipe binary each stage runs as a child process of.
    public var executable: String
    /// Options every child gets (`--quiet`, `--verbose`).
    public var childOptions: [String] = []
    /// Arguments appended to one stage's command line (`run --merge-shards`: score's
    /// `--merge FILES`); not part of its fingerprint.
    public var extraArguments: [String: [String]] = [:]
    /// Seconds between SIGTERM and SIGKILL for a stage past its timeout.
    public var killGrace: Double = 10
    /// Where each of a child's stderr lines (already log lines) goes, with the pipeline run
    /// and the stage's name to add to it; unchanged to stderr by default.
    public var relayLog: @Sendable (_ line: String, _ run: Int64, _ stage: String) -> Void = { line, _, _ in
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }
    /// Where each of a child's stdout lines goes, prefixed with the stage name; stdout by default.
    public var relayOutput: @Sendable (String) -> Void = { line in print(line) }
    /// Polled about once a second: a signal number when the run must stop (SIGINT, SIGTERM).
    /// Running stages are then sent SIGTERM and recorded as failed; nothing new starts.
    public var interruption: @Sendable () -> Int32? = { nil }
    /// Told when a stage starts an attempt and when it is done (for a progress display).
    public var observer: (@Sendable (RunEvent) -> Void)?
    /// Told of each event a running stage sends (progress, epochs, warnings, errors, its report).
    public var stageEvent: @Sendable (_ event: StageEvent, _ stage: String) -> Void = { _, _ in }

    public init(selection: [String], executable: String) {
        self.selection = selection
        self.executable = executable
    }
}

/// The run beginning, a stage starting an attempt, or done (succeeded, failed, skipped, blocked).
public enum RunEvent: Sendable {
    /// The run began with these stages selected.
    case began(selection: [String])
    case started(PipelineStage, attempt: Int)
    case done(StageOutcome)
}

/// What happened to each stage in a run.
public struct StageOutcome: Sendable, Codable, Equatable {
    public var stage: String
    public var kind: String
    /// `succeeded`, `failed`, `skipped`, `blocked`, `not run` (the run was interrupted first),
    /// or `not selected`.
    public var status: String
    public var attempts: Int
    public var seconds: Double
    public var reason: String
    public var error: String?
}

public struct RunResult: Sendable, Codable, Equatable {
    public var pipelineRunID: Int64
    public var status: String
    public var seconds: Double
    public var stages: [StageOutcome]
    /// The signal that stopped the run, if one did.
    public var interruptedBy: Int32?

    public var succeeded: Bool { status == "succeeded" }
}

/// Runs a pipeline's DAG: each stage that is not up to date runs as a child process of the
/// recpipe binary (`recpipe KIND --db DATABASE --option=value ...`), so that a crash, a
/// signal or a timeout is that stage's failure; the runner records it, retries it if its
/// policy says so, and does not start the stages that need it.
public final class Runner: @unchecked Sendable {
    let pipeline: Pipeline
    let history: RunHistory
    let options: RunOptions
    let code: String
    var logger: Logger

    public init(pipeline: Pipeline, store: Store, options: RunOptions, logger: Logger) {
        self.pipeline = pipeline
        history = RunHistory(store: store)
        self.options = options
        code = CodeVersion.of(executable: options.executable)
        self.logger = logger
    }

    enum State {
        case waiting
        case ready(Decision, Fingerprint, attempt: Int, notBefore: Double)
        case running(Child)
        case done(StageOutcome, output: String?)
    }

    // The run in progress.
    private var runID: Int64 = 0
    private var states: [String: State] = [:]
    private var selected: [PipelineStage] = []
    private var interrupted: Int32?
    private let mailbox = Mailbox()

    /// Runs the selected stages; the caller holds the database's lock.
    public func run() throws -> RunResult {
        let started = Clock.monotonic()
        EventPipe.removeAbandoned()
        runID = try history.begin(pipeline: pipeline.name, manifest: pipeline.manifest.file, selection: options.selection,
                                  forced: options.force, retryOf: options.retryOf, codeVersion: code)
        logger[metadataKey: "pipeline"] = "\(pipeline.name)"
        logger[metadataKey: "pipeline_run"] = "\(runID)"
        logger.info("pipeline run started", metadata: [
            "stages": "\(options.selection.joined(separator: ","))", "forced": "\(options.force)", "jobs": "\(options.jobs)",
        ])
        selected = pipeline.stages.filter { options.selection.contains($0.name) }
        for stage in selected { states[stage.name] = .waiting }
        options.observer?(.began(selection: selected.map(\.name)))
        var failure: Error?
        while selected.contains(where: { finished($0.name) == nil }) {
            do {
                if interrupted == nil, let signal = options.interruption() { interrupt(signal) }
                if interrupted != nil && runningChildren().isEmpty { break }
                let decided = interrupted == nil ? try decideStagesWhoseNeedsAreDone() : false
                let running = interrupted == nil ? try launchWhatMayStart() : runningChildren()
                try waitForEndings(of: running, orFor: decided ? 0 : 1)
                enforceTimeouts(running)
            } catch {
                // The history cannot be written: stop the children and give up the run.
                failure = error
                for child in runningChildren() { child.process.terminate() }
                break
            }
        }
        return try finish(started: started, failure: failure)
    }

    private func finished(_ name: String) -> StageOutcome? {
        if case .done(let outcome, _)? = states[name] { return outcome }
        return nil
    }

    private func runningChildren() -> [Child] {
        selected.compactMap { stage -> Child? in
            if case .running(let child)? = states[stage.name] { return child }
            return nil
        }
    }

    private func setState(_ name: String, _ state: State) {
        states[name] = state
        if case .done(let outcome, _) = state { options.observer?(.done(outcome)) }
    }

    private func done(_ stage: PipelineStage, _ status: String, reason: String, output: String?) {
        setState(stage.name, .done(StageOutcome(stage: stage.name, kind: stage.kind.name, status: status, attempts: 0, seconds: 0,
                                                reason: reason), output: output))
    }

    /// What dependents see as a stage's output: from this run when it is done, else its last success.
    private func output(of name: String) throws -> String {
        if case .done(_, let output)? = states[name] { return output ?? "never" }
        return try history.lastSuccess(pipeline: pipeline.name, stage: name)?.output ?? "never"
    }

    private func interrupt(_ signal: Int32) {
        interrupted = signal
        logger.warning("interrupted, stopping the running stages", metadata: ["signal": "\(signal)"])
        for child in runningChildren() where child.process.isRunning {
            child.termSentAt = Clock.monotonic()
            child.process.terminate()
        }
    }

    /// Blocks the stages whose needs failed; skips those that are up to date, and makes the
    /// others ready. Returns whether any stage was decided (others may be free now).
    private func decideStagesWhoseNeedsAreDone() throws -> Bool {
        var decided = false
        for stage in selected {
            guard case .waiting? = states[stage.name] else { continue }
            let needs = stage.needs.filter { states[$0] != nil }
            if let bad = needs.first(where: { ["failed", "blocked"].contains(finished($0)?.status ?? "") }) {
                let reason = "\(bad) \(finished(bad)!.status == "failed" ? "failed" : "did not run")"
                try history.record(run: runID, stage: stage, status: "blocked", reason: reason, fingerprint: nil, output: nil)
                logger.warning("stage blocked", metadata: ["stage": "\(stage.name)", "reason": "\(reason)"])
                done(stage, "blocked", reason: reason, output: nil)
                decided = true
                continue
            }
            guard needs.allSatisfy({ finished($0) != nil }) else { continue }
            decided = true
            var outputs: [String: String] = [:]
            for need in stage.needs { outputs[need] = try output(of: need) }
            let current = try Planner.fingerprint(stage, code: code, store: history.store) { outputs[$0] ?? "never" }
            let last = try history.lastSuccess(pipeline: pipeline.name, stage: stage.name)
            let decision = Planner.decide(current, last: last, forced: options.force, missingOutputs: Planner.missingOutputs(stage))
            if decision.run {
                states[stage.name] = .ready(decision, current, attempt: 1, notBefore: 0)
            } else {
                try history.record(run: runID, stage: stage, status: "skipped", reason: decision.reason, fingerprint: current,
                                   output: last?.output)
                logger.info("stage skipped", metadata: ["stage": "\(stage.name)", "reason": "\(decision.reason)"])
                done(stage, "skipped", reason: decision.reason, output: last?.output)
            }
        }
        return decided
    }

    /// Starts ready stages within the bound, touching no table a running stage writes, nor
    /// writing one it reads. Returns the running children.
    private func launchWhatMayStart() throws -> [Child] {
        var running = runningChildren()
        let now = Clock.monotonic()
        for stage in selected {
            guard case .ready(let decision, let current, let attempt, let notBefore)? = states[stage.name], notBefore <= now,
                  running.count < max(1, options.jobs), !running.contains(where: { $0.stage.kind.conflicts(with: stage.kind) })
            else { continue }
            let child = try launch(stage, attempt: attempt, decision: decision, fingerprint: current)
            states[stage.name] = .running(child)
            options.observer?(.started(stage, attempt: attempt))
            running.append(child)
        }
        return running
    }

    /// Waits until a stage ends, a retry comes due or `seconds` pass, and records what ended.
    private func waitForEndings(of running: [Child], orFor seconds: Double) throws {
        var wake = Clock.monotonic() + seconds
        for case .ready(_, _, _, let notBefore) in states.values where notBefore > 0 { wake = min(wake, notBefore) }
        for id in mailbox.wait(until: Date(timeIntervalSinceNow: max(0, wake - Clock.monotonic()))) {
            guard let child = running.first(where: { $0.attemptID == id }) else { continue }
            setState(child.stage.name, try complete(child))
        }
    }

    /// Records the run's end and sums it up.
    private func finish(started: Double, failure: Error?) throws -> RunResult {
        let outcomes = pipeline.stages.map { stage -> StageOutcome in
            finished(stage.name) ?? StageOutcome(stage: stage.name, kind: stage.kind.name, status: states[stage.name] == nil ? "not selected" : "not run",
                                                 attempts: 0, seconds: 0, reason: "")
        }
        let failed = failure != nil || interrupted != nil || outcomes.contains { $0.status == "failed" || $0.status == "blocked" }
        let seconds = Clock.monotonic() - started
        try? history.finish(run: runID, status: failed ? "failed" : "succeeded", seconds: seconds,
                            error: failure.map { $0.localizedDescription } ?? interrupted.map { "interrupted by signal \($0)" }
                                ?? outcomes.first { $0.status == "failed" }.map { "\($0.stage): \($0.error ?? "failed")" })
        if let failure { throw failure }
        logger.info(failed ? "pipeline run failed" : "pipeline run finished", metadata: [
            "seconds": "\(String(format: "%.2f", seconds))",
            "ran": "\(outcomes.filter { $0.attempts > 0 }.count)",
            "skipped": "\(outcomes.filter { $0.status == "skipped" }.count)",
            "failed": "\(outcomes.filter { $0.status == "failed" }.count)",
        ])
        return RunResult(pipelineRunID: runID, status: failed ? "failed" : "succeeded", seconds: seconds, stages: outcomes,
                         interruptedBy: interrupted)
    }

    // MARK: Child processes

    final class Child: @unchecked Sendable {
        let stage: PipelineStage
        let attemptID: Int64
        let attempt: Int
        let decision: Decision
        let fingerprint: Fingerprint
        let process = Process()
        let started = Clock.monotonic()
        let stageRunsAfter: Int64
        let readers = DispatchGroup()
        let events: EventPipe
        private let lock = NSLock()
        private var _lastError: String?
        private var _report: (rowsIn: Int, rowsOut: Int)?
        var termSentAt: Double?
        var killed = false

        init(stage: PipelineStage, attemptID: Int64, attempt: Int, decision: Decision, fingerprint: Fingerprint, stageRunsAfter: Int64,
             events: EventPipe) {
            self.stage = stage
            self.events = events
            self.attemptID = attemptID
            self.attempt = attempt
            self.decision = decision
            self.fingerprint = fingerprint
            self.stageRunsAfter = stageRunsAfter
        }

        /// The last error the child sent.
        var lastError: String? {
            get { lock.withLock { _lastError } }
            set { lock.withLock { _lastError = newValue } }
        }
        /// The rows the child's report gave, once it sent one.
        var report: (rowsIn: Int, rowsOut: Int)? {
            get { lock.withLock { _report } }
            set { lock.withLock { _report = newValue } }
        }
    }

    /// Ids of attempts whose process ended, handed from Foundation's termination handlers to the run loop.
    final class Mailbox: @unchecked Sendable {
        private let condition = NSCondition()
        private var ended: [Int64] = []

        func post(_ id: Int64) {
            condition.lock()
            ended.append(id)
            condition.signal()
            condition.unlock()
        }

        func wait(until deadline: Date) -> [Int64] {
            condition.lock()
            defer { condition.unlock() }
            while ended.isEmpty && condition.wait(until: deadline) {}
            let result = ended
            ended.removeAll()
            return result
        }
    }

    private func launch(_ stage: PipelineStage, attempt: Int, decision: Decision, fingerprint: Fingerprint) throws -> Child {
        let run = runID, mailbox = mailbox  // captured by the handlers below, instead of self
        let after = try history.lastStageRunID()
        let id = try history.startAttempt(run: run, stage: stage, attempt: attempt, reason: decision.reason, fingerprint: fingerprint)
        let events: EventPipe
        do {
            events = try EventPipe()
        } catch {
            try? history.finishAttempt(id, kind: stage.kind.name, stageRunsAfter: after, succeeded: false, seconds: 0,
                                       exitStatus: nil, signal: nil, error: "cannot start: \(error.localizedDescription)")
            throw error
        }
        let child = Child(stage: stage, attemptID: id, attempt: attempt, decision: decision, fingerprint: fingerprint,
                          stageRunsAfter: after, events: events)
        let process = child.process
        process.executableURL = URL(fileURLWithPath: options.executable)
        process.arguments = stage.commandLine(database: pipeline.database, options: options.childOptions)
            + (options.extraArguments[stage.name] ?? [])
        var environment = ProcessInfo.processInfo.environment
        environment["RECPIPE_DATABASE"] = pipeline.database
        environment["RECPIPE_PIPELINE"] = pipeline.name
        environment["RECPIPE_PIPELINE_RUN"] = "\(run)"
        environment["RECPIPE_PIPELINE_STAGE"] = stage.name
        // The stage writes under this run's writer lock.
        environment[WriterLock.parentVariable] = "\(getpid())"
        environment[EventChannel.environmentVariable] = events.path
        process.environment = environment
        process.currentDirectoryURL = URL(fileURLWithPath: pipeline.manifest.directory)
        let errors = Pipe(), output = Pipe()
        process.standardError = errors
        process.standardOutput = output
        process.standardInput = FileHandle.nullDevice
        process.terminationHandler = { _ in mailbox.post(id) }
        let relayLog = options.relayLog, relayOutput = options.relayOutput, stageEvent = options.stageEvent
        read(errors, into: child) { line in relayLog(line, run, stage.name) }
        events.startReading { event in
            switch event {
            case .error(let message, _): child.lastError = message
            case .report(let rowsIn, let rowsOut, _): child.report = (rowsIn, rowsOut)
            default: break
            }
            stageEvent(event, stage.name)
        }
        read(output, into: child) { line in relayOutput("\(stage.name) | \(line)") }
        do {
            try process.run()
        } catch {
            events.close()
            try? history.finishAttempt(id, kind: stage.kind.name, stageRunsAfter: after, succeeded: false, seconds: 0,
                                       exitStatus: nil, signal: nil, error: "cannot start: \(error.localizedDescription)")
            throw SchedulerError.cannotLaunch(stage: stage.name, reason: error.localizedDescription)
        }
        try history.setPID(attempt: id, pid: process.processIdentifier)
        logger.info("stage started", metadata: [
            "stage": "\(stage.name)", "kind": "\(stage.kind.name)", "attempt": "\(attempt)", "reason": "\(decision.reason)",
            "pid": "\(process.processIdentifier)", "command": "\(process.arguments!.joined(separator: " "))",
        ])
        return child
    }

    /// Reads a pipe line by line on its own thread until the child closes it.
    private func read(_ pipe: Pipe, into child: Child, _ handle: @escaping @Sendable (String) -> Void) {
        child.readers.enter()
        let descriptor = pipe.fileHandleForReading
        Thread.detachNewThread {
            var pending = Data()
            while true {
                let chunk = descriptor.availableData
                if chunk.isEmpty { break }
                pending.append(chunk)
                while let newline = pending.firstIndex(of: 10) {
                    handle(String(decoding: pending[pending.startIndex..<newline], as: UTF8.self))
                    pending.removeSubrange(pending.startIndex...newline)
                }
            }
            if !pending.isEmpty { handle(String(decoding: pending, as: UTF8.self)) }
            child.readers.leave()
        }
    }

    /// Records an ended attempt; schedules a retry or marks the stage done.
    private func complete(_ child: Child) throws -> State {
        _ = child.readers.wait(timeout: .now() + 5)
        child.events.close()
        let process = child.process, stage = child.stage
        let seconds = Clock.monotonic() - child.started
        let signal = process.terminationReason == .uncaughtSignal ? process.terminationStatus : nil
        let status = signal == nil ? process.terminationStatus : nil
        let succeeded = status == 0
        var error: String?
        if !succeeded {
            if let interrupted {
                error = "stopped: the scheduler was interrupted by signal \(interrupted)"
            } else if let limit = stage.policy.timeout, child.termSentAt != nil {
                error = "timed out after \(Int(limit)) s"
            } else if let signal {
                error = "killed by signal \(signal)\(signal == SIGKILL ? " (SIGKILL)" : signal == SIGTERM ? " (SIGTERM)" : signal == SIGSEGV ? " (SIGSEGV)" : "")"
                if let last = child.lastError { error! += "; last error: \(last)" }
            } else {
                error = child.lastError ?? "exited with status \(status!)"
            }
        }
        try history.finishAttempt(child.attemptID, kind: stage.kind.name, stageRunsAfter: child.stageRunsAfter, succeeded: succeeded,
                                  seconds: seconds, exitStatus: status, signal: signal, error: error)
        var metadata: Logger.Metadata = [
            "stage": "\(stage.name)", "attempt": "\(child.attempt)", "seconds": "\(String(format: "%.2f", seconds))",
        ]
        if let report = child.report {
            metadata["rows_in"] = "\(report.rowsIn)"
            metadata["rows_out"] = "\(report.rowsOut)"
        }
        if succeeded {
            logger.info("stage succeeded", metadata: metadata)
            return .done(StageOutcome(stage: stage.name, kind: stage.kind.name, status: "succeeded", attempts: child.attempt,
                                      seconds: seconds, reason: child.decision.reason), output: "#\(child.attemptID)")
        }
        metadata["error"] = "\(error!)"
        if let status { metadata["exit_status"] = "\(status)" }
        if child.attempt <= stage.policy.retries && interrupted == nil {
            let delay = stage.policy.retryBackoff * pow(2, Double(child.attempt - 1))
            metadata["retry_in"] = "\(String(format: "%g", delay))s"
            logger.warning("stage failed, will retry", metadata: metadata)
            return .ready(child.decision, child.fingerprint, attempt: child.attempt + 1, notBefore: Clock.monotonic() + delay)
        }
        logger.error("stage failed", metadata: metadata)
        return .done(StageOutcome(stage: stage.name, kind: stage.kind.name, status: "failed", attempts: child.attempt,
                                  seconds: seconds, reason: child.decision.reason, error: error), output: nil)
    }

    /// Sends SIGTERM to stages past their timeout, and SIGKILL to stages still there after the
    /// grace period that follows a SIGTERM (for a timeout or an interruption).
    private func enforceTimeouts(_ running: [Child]) {
        let now = Clock.monotonic()
        for child in running where child.process.isRunning {
            if let sent = child.termSentAt {
                if !child.killed && now - sent > options.killGrace {
                    kill(child.process.processIdentifier, SIGKILL)
                    child.killed = true
                }
            } else if let limit = child.stage.policy.timeout, now - child.started > limit {
                logger.warning("stage timed out, stopping it", metadata: ["stage": "\(child.stage.name)", "timeout": "\(limit)s"])
                child.termSentAt = now
                child.process.terminate()
            }
        }
    }
}
