import ArgumentParser
import Foundation
import Logging
import RecpipeBench
import RecpipeModels

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks with a reference measured in the same run.",
        subcommands: [BenchSuite.self, BenchIngest.self, BenchHostile.self, BenchClean.self, BenchTrain.self, BenchEASE.self, BenchTradeoff.self,
                      BenchScore.self, BenchPublish.self, BenchAugment.self])
}

/// Options every single benchmark takes: where `bench suite` wants its figures, and logging.
struct BenchOutputOptions: ParsableArguments {
    @Option(name: .customLong("result-out"), help: "Also write the figures as JSON to this file (for bench suite).")
    var resultOut: String?
    @OptionGroup var logging: LoggingOptions

    /// Runs a benchmark, printing what it says, and writes its figures to --result-out.
    func run(_ benchmark: (_ logger: Logger, _ say: (String) -> Void) throws -> BenchResult) throws {
        let logger = logging.makeLogger()
        try runReporting(logger) {
            print(MachineInfo.current().line)
            try benchmark(logger, { print($0) }).write(to: resultOut)
        }
    }
}

/// The sqlite3 shell the SQLite benchmarks compare with.
struct SQLiteShellOption: ParsableArguments {
    @Option(name: .customLong("sqlite3"), help: "The sqlite3 shell to compare with.")
    var sqlite3 = "sqlite3"
}

/// The size of the synthetic data the model benchmarks run on (ML-20M by default).
struct SyntheticData: ParsableArguments {
    @Option var users = BenchData().users
    @Option var items = BenchData().items
    @Option(help: "Interactions in the synthetic log, about.")
    var interactions = BenchData().interactions

    var data: BenchData { BenchData(users: users, items: items, interactions: interactions) }
}

struct BenchSuite: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "suite",
        abstract: "Every stage's benchmark at one scale, as one table (or JSON): rows, seconds, rows/s, GFLOPS, the reference measured in the same run, the ratio, peak RSS.")

    @Option(help: "Size as a fraction of MovieLens 20M (136,000 users, 20,000 items, 10M interactions).")
    var scale = 1.0
    @Option(parsing: .upToNextOption, help: "Benchmarks to run: ingest, hostile, clean, train, augment, ease, score, publish.")
    var only: [String] = Benchmarks.names
    @Flag(help: "Print the table as JSON.")
    var json = false
    @OptionGroup var logging: LoggingOptions

    func run() throws {
        let logger = logging.makeLogger()
        try runReporting(logger) {
            let (title, results) = try Benchmarks.suite(scale: scale, only: only, executable: recpipeExecutable, logger: logger)
            if json { return try printJSON(results) }
            print(title)
            for line in Benchmarks.table(results) { print(line) }
        }
    }
}

struct BenchIngest: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ingest",
        abstract: "Ingest rows/s on a synthetic 4-column CSV next to the sqlite3 shell's .import --csv of the same file.")

    @Option(help: "Rows in the synthetic file.")
    var rows = 1_000_000
    @Option(help: "Times each side runs; the median is reported.")
    var repeats = 3
    @Option(help: "Working directory (default: a new temporary one, removed afterwards).")
    var dir: String?
    @OptionGroup var shell: SQLiteShellOption
    @OptionGroup var output: BenchOutputOptions

    func run() throws {
        try output.run { logger, say in
            try Benchmarks.ingest(rows: rows, repeats: repeats, dir: dir, sqlite3: shell.sqlite3, executable: recpipeExecutable, logger: logger, say: say)
        }
    }
}

struct BenchHostile: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hostile",
        abstract: "Seconds and peak memory of refusing a file of unparsable lines after a valid header.")

    @Option(help: "Unparsable lines after the header.")
    var lines = 5_000_000
    @Option(help: "Working directory (default: a new temporary one, removed afterwards).")
    var dir: String?
    @OptionGroup var output: BenchOutputOptions

    func run() throws {
        try output.run { _, say in try Benchmarks.hostile(lines: lines, dir: dir, executable: recpipeExecutable, say: say) }
    }
}

struct BenchTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Seconds per Mult-VAE epoch on synthetic data, with GFLOPS next to the sgemm ceiling measured in the same run.")

    @OptionGroup var data: SyntheticData
    @Option(help: "Users held out for validation and for test (each), as the strong split would.")
    var heldout = 9_000
    @Option var epochs = 1
    @Option(help: "multvae or multdae.")
    var model: MultVAE.Kind = .vae
    @OptionGroup var output: BenchOutputOptions

    func run() throws {
        try output.run { logger, say in
            try Benchmarks.train(data: data.data, heldout: heldout, epochs: epochs, model: model, logger: logger, say: say)
        }
    }
}

struct BenchClean: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "clean",
        abstract: "Seconds and peak memory of the clean stage (dedupe, k-core, dense ids, strong split) on a synthetic log ingested first. No reference: nothing else does this job.")

    @OptionGroup var data: SyntheticData
    @Option(help: "Users held out for validation and for test (each).")
    var heldout = 10_000
    @OptionGroup var output: BenchOutputOptions

    func run() throws {
        try output.run { _, say in try Benchmarks.clean(data: data.data, heldout: heldout, executable: recpipeExecutable, say: say) }
    }
}

struct BenchEASE: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ease",
        abstract: "Seconds and peak memory of one EASE fit (Gram matrix, then its Cholesky factor and inverse through LAPACK), next to the sgemm ceiling measured in the same run.")

    @OptionGroup var data: SyntheticData
    @Option(help: "The L2 weight λ.")
    var lambda: Float = 800
    @OptionGroup var output: BenchOutputOptions

    func run() throws {
        try output.run { _, say in try Benchmarks.ease(data: data.data, lambda: lambda, say: say) }
    }
}

struct BenchScore: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "score",
        abstract: "Users/s of Mult-VAE scoring with top-K selection for every user, next to the sgemm ceiling measured in the same run.")

    @OptionGroup var data: SyntheticData
    @Option var k = 100
    @Option(help: "Rounds of plain scoring, scoring with business rules and scoring with reasons, in turn (each ratio is the median over rounds).")
    var rounds = 3
    @Flag(inversion: .prefixedNo, help: "Then the stage's writing and publishing (recpipe score on the same synthetic data, next to the sqlite3 shell's .import of the same rows).")
    var publishing = true
    @Option(help: "For the writing and publishing part: users held out for validation and for test (each).")
    var heldout = 10_000
    @OptionGroup var shell: SQLiteShellOption
    @OptionGroup var output: BenchOutputOptions

    func validate() throws {
        guard rounds >= 1 else { throw ValidationError("--rounds must be at least 1, got \(rounds)") }
    }

    func run() throws {
        try output.run { _, say in
            let scoring = try Benchmarks.score(data: data.data, k: k, rounds: rounds, say: say)
            if publishing { _ = try Benchmarks.publish(data: data.data, heldout: heldout, sqlite3: shell.sqlite3, executable: recpipeExecutable, say: say) }
            return scoring
        }
    }
}

struct BenchPublish: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "publish",
        abstract: "Rows/s of the score stage's writing and publishing (recpipe score in child processes) next to the sqlite3 shell's .import of the same rows into the same table.")

    @OptionGroup var data: SyntheticData
    @Option(help: "Users held out for validation and for test (each).")
    var heldout = 10_000
    @Option(help: "Score runs, each published (the third on also drops an old set).")
    var runs = 3
    @Option(help: "Keep the benchmark's files in this directory.")
    var dir: String?
    @OptionGroup var shell: SQLiteShellOption
    @OptionGroup var output: BenchOutputOptions

    func validate() throws {
        guard runs >= 1 else { throw ValidationError("--runs must be at least 1, got \(runs)") }
    }

    func run() throws {
        try output.run { _, say in
            try Benchmarks.publish(data: data.data, heldout: heldout, runs: runs, dir: dir, sqlite3: shell.sqlite3, executable: recpipeExecutable, say: say)
        }
    }
}

struct BenchTradeoff: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tradeoff",
        abstract: "Seconds the accuracy / long-tail trade-off adds to evaluate per model, on synthetic data.")

    @OptionGroup var data: SyntheticData
    @Option(help: "Held-out users for validation and for test (each), as the strong split would.")
    var heldout = 10_000
    @OptionGroup var output: BenchOutputOptions

    func run() throws {
        try output.run { _, say in try Benchmarks.tradeoff(data: data.data, heldout: heldout, say: say) }
    }
}

struct BenchAugment: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "augment",
        abstract: "Seconds per CFGAN epoch on synthetic data, next to a Mult-VAE epoch on the same data in the same run.")

    @OptionGroup var data: SyntheticData
    @Option(help: "Users held out for validation and for test (each), as the strong split would.")
    var heldout = 9_000
    @Option(name: .customLong("batch-size"), help: "CFGAN users per batch (the paper's setting is 32; the Mult-VAE uses 500).")
    var batchSize = 500
    @Option var epochs = 1
    @Flag(name: .customLong("no-vae"), help: "Skip the Mult-VAE epoch.")
    var noVAE = false
    @OptionGroup var output: BenchOutputOptions

    func run() throws {
        try output.run { logger, say in
            try Benchmarks.augment(data: data.data, heldout: heldout, batchSize: batchSize, epochs: epochs, noVAE: noVAE,
                                   logger: logger, say: say)
        }
    }
}
