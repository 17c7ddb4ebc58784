import ArgumentParser
import Foundation
import Logging
import RecpipeNumerics
import RecpipeStages
import RecpipeStore

@main
struct Recpipe: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "recpipe",
        abstract: "Turns interaction logs into recommendation tables in SQLite.",
        discussion: """
            Exit codes: 0 success; 1 a stage failed (divergence, collapse, a refused publish); \
            64 bad usage; 65 bad input data, an invalid manifest or another application's SQLite \
            file; 66 an input cannot be read; 70 internal or SQLite error; 74 disk full or I/O \
            error; 75 another command holds the database's writer lock; 78 the database schema \
            does not match this recpipe.
            """,
        subcommands: [Migrate.self, Ingest.self, Clean.self, Augment.self, Train.self, Score.self, Rollback.self, Prune.self, Recommend.self, Evaluate.self, Feedback.self, ReportCommand.self, Export.self, SynthCommand.self, Bench.self,
                      Run.self, Plan.self, Retry.self, Status.self, History.self, Cron.self])

    static func main() {
        BLAS.configureProcess()
        if let ignored = Kernels.ignoredRequest {
            let usable = Kernels.names[0...Kernels.cpuLevel].joined(separator: ", ")
            FileHandle.standardError.write(Data("recpipe: RECPIPE_KERNELS=\(ignored): not a kernel variant this CPU runs (it runs \(usable)); unset it or name one of those\n".utf8))
            Foundation.exit(64)
        }
        main(expandingBareWait(Array(CommandLine.arguments.dropFirst())))
    }
}

/// Options of every command that writes a database.
struct DatabaseOptions: ParsableArguments {
    @Option(name: .long, help: "The recpipe SQLite database (created if missing).")
    var db: String

    @OptionGroup var waiting: WaitOption

    @OptionGroup var logging: LoggingOptions

    /// Opens the database for writing: takes its writer lock (waiting as --wait says), then
    /// migrates it.
    func openStore(_ logger: Logger, adopt: Bool = false) throws -> Store {
        try Store(path: db, logger: logger, access: Store.WriteAccess(wait: waiting.wait, adopt: adopt))
    }
}

/// `--wait [SECONDS]`, for every command that takes the writer lock.
struct WaitOption: ParsableArguments {
    @Option(help: ArgumentHelp("""
        When another command is writing the database, wait for it, up to SECONDS (bare --wait: \
        as long as it takes), instead of exiting with 75.
        """, valueName: "seconds"))
    var wait: Double?

    func validate() throws {
        if let wait, !(wait >= 0) { throw ValidationError("--wait must be a number of seconds, at least 0") }
    }
}

/// Options of the commands that only read a database: they take no lock and never migrate.
struct ReadOptions: ParsableArguments {
    @Option(name: .long, help: "The recpipe SQLite database (read only; it must be at this recpipe's schema).")
    var db: String

    @OptionGroup var logging: LoggingOptions

    func openStore() throws -> Store { try Store(readingAt: db) }
}

struct LoggingOptions: ParsableArguments {
    @Flag(name: .shortAndLong, help: "Log debug events too.")
    var verbose = false

    @Flag(name: .shortAndLong, help: "Log warnings and errors only.")
    var quiet = false

    /// The same level for a child process: `--quiet`, `--verbose` or nothing.
    var childOptions: [String] { quiet ? ["--quiet"] : verbose ? ["--verbose"] : [] }

    /// A logger writing one line per event on stderr (or to `sink`); run by the scheduler,
    /// warnings and errors also go to its event channel.
    func makeLogger(label: String = "recpipe", sink: (@Sendable (String) -> Void)? = nil) -> Logger {
        let events = inheritedEvents
        var logger = Logger(label: label) { _ -> any LogHandler in
            events.isOpen ? MultiplexLogHandler([StderrLogHandler(sink: sink), EventLogHandler(channel: events)])
                : StderrLogHandler(sink: sink)
        }
        logger.logLevel = verbose ? .debug : quiet ? .warning : .info
        return logger
    }
}

/// Runs a command body, printing an error as one line on stderr and exiting with the code
/// `Failure` maps it to. `database` names the file in errors that do not name it.
func runReporting(_ logger: Logger, database: String? = nil, _ body: () throws -> Void) throws {
    do {
        try body()
    } catch let error as ExitCode {
        throw error
    } catch {
        for line in Failure.message(error, database: database).split(separator: "\n") { logger.error("\(line)") }
        throw ExitCode(Failure.exitCode(error))
    }
}

/// Opens the database for writing, runs the stage, prints its summary: the body of every
/// stage command.
func runStage<S: Stage>(_ stage: S, options: DatabaseOptions, logger: Logger) throws {
    let store = try options.openStore(logger)
    if let problem = inheritedEvents.problem {
        logger.warning("the scheduler will not see this stage's progress", metadata: ["reason": "\(problem)"])
    }
    try finish(try StageRunner.run(stage, store: store, logger: logger, events: inheritedEvents), logger: logger)
}

/// The event channel the scheduler gave this process (none when run by hand).
let inheritedEvents = EventChannel.inherited()

/// Prints a stage's summary on stdout and turns its failures into the exit code.
func finish(_ report: StageReport, logger: Logger) throws {
    for line in report.summary { print(line) }
    if let worst = report.failures.map({ Failure.exitCode($0) }).max() {
        for failure in report.failures { logger.error("\(failure.localizedDescription)") }
        throw ExitCode(worst)
    }
}

/// `--wait` takes an optional number of seconds: a bare `--wait` becomes `--wait=inf`.
func expandingBareWait(_ arguments: [String]) -> [String] {
    var result: [String] = []
    for (index, argument) in arguments.enumerated() {
        if argument == "--" { return result + arguments[index...] }
        let next = index + 1 < arguments.count ? arguments[index + 1] : nil
        if argument == "--wait" && next.flatMap(Double.init) == nil {
            result.append("--wait=inf")
        } else {
            result.append(argument)
        }
    }
    return result
}
