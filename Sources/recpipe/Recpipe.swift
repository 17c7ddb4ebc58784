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
            Exit codes: 0 success; 1 a stage failed; 64 bad usage; 65 bad input data; \
            66 an input file cannot be read; 70 internal or SQLite error; 75 another pipeline run \
            holds the database's lock; 78 the database schema does not match this recpipe. For \
            run, plan and retry, 65 means an invalid manifest.
            """,
        subcommands: [Migrate.self, Ingest.self, Clean.self, Augment.self, Train.self, Score.self, Recommend.self, Evaluate.self, Feedback.self, ReportCommand.self, SynthCommand.self, Bench.self,
                      Run.self, Plan.self, Retry.self, Status.self, History.self, Cron.self])

    static func main() {
        configureBLAS()
        main(nil)
    }

    /// OpenBLAS reads two settings from the environment when it loads, so a change means
    /// restarting the process once, with the settings in its environment (values the user
    /// set are left alone):
    /// - OPENBLAS_CORETYPE: OpenBLAS picks its kernels from the CPU model; where it cannot
    ///   identify the CPU it falls back to kernels without AVX2, at half the speed or less.
    ///   The core type is then chosen from the CPU's feature flags.
    /// - OPENBLAS_THREAD_TIMEOUT: after each product OpenBLAS's worker threads keep polling
    ///   for the next one for about 2^28 cycles by default, taking cores from the work that
    ///   runs between products on threads of recpipe's own (top-K selection while scoring:
    ///   2.9 s against 1.3 s for 136,000 users on 2 cores). 2^4 lets them sleep at once;
    ///   training epochs measured the same either way.
    static func configureBLAS() {
        var changed = false
        if getenv("OPENBLAS_CORETYPE") == nil, let core = BLAS.betterCoreType() {
            setenv("OPENBLAS_CORETYPE", core, 1)
            changed = true
        }
        if getenv("OPENBLAS_THREAD_TIMEOUT") == nil {
            setenv("OPENBLAS_THREAD_TIMEOUT", "4", 1)
            changed = true
        }
        guard changed else { return }
        // The arguments as the process received them (byte for byte, whatever their encoding).
        execv("/proc/self/exe", CommandLine.unsafeArgv)
        // execv returns only on failure: carry on with what OpenBLAS chose.
    }
}

/// Options every command that works on a database takes.
struct DatabaseOptions: ParsableArguments {
    @Option(name: .long, help: "The recpipe SQLite database (created if missing).")
    var db: String

    @OptionGroup var logging: LoggingOptions
}

struct LoggingOptions: ParsableArguments {
    @Flag(name: .shortAndLong, help: "Log debug events too.")
    var verbose = false

    @Flag(name: .shortAndLong, help: "Log warnings and errors only.")
    var quiet = false

    func makeLogger(label: String = "recpipe", sink: (@Sendable (String) -> Void)? = nil) -> Logger {
        var logger = Logger(label: label) { _ in StderrLogHandler(sink: sink) }
        logger.logLevel = verbose ? .debug : quiet ? .warning : .info
        return logger
    }
}

/// Runs a command body, printing errors as one line on stderr and exiting with a code
/// scripts can act on.
func runReporting(_ logger: Logger, _ body: () throws -> Void) throws {
    do {
        try body()
    } catch let error as StageError {
        logger.error("\(error.localizedDescription)")
        throw ExitCode(error.exitCode)
    } catch let error as StoreError {
        logger.error("\(error.localizedDescription)")
        switch error {
        case .cannotOpen: throw ExitCode(66)
        case .migrationFailed: throw ExitCode(70)
        default: throw ExitCode(78)
        }
    } catch let error as ExitCode {
        throw error
    } catch {
        logger.error("\(error.localizedDescription)")
        throw ExitCode(70)
    }
}

/// Opens (and migrates) the database, runs the stage, prints its summary: the body of every
/// stage command.
func runStage<S: Stage>(_ stage: S, db: String, logger: Logger) throws {
    let store = try Store(path: db, logger: logger)
    try finish(try StageRunner.run(stage, store: store, logger: logger), logger: logger)
}

/// Prints a stage's summary on stdout and turns its failures into the exit code.
func finish(_ report: StageReport, logger: Logger) throws {
    for line in report.summary { print(line) }
    if let worst = report.failures.map(\.exitCode).max() {
        for failure in report.failures { logger.error("\(failure.localizedDescription)") }
        throw ExitCode(worst)
    }
}
