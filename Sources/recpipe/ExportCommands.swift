import ArgumentParser
import Foundation
import RecpipeScheduler
import RecpipeStages
import RecpipeStore

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write what other systems run on: a serving snapshot of the live lists, a pipeline as an Apache Airflow DAG, scoring shards as Kubernetes Jobs.",
        subcommands: [ExportServing.self, ExportAirflow.self, ExportKubernetesScore.self],
        defaultSubcommand: ExportServing.self)
}

struct ExportServing: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serving",
        abstract: "Write the live lists, their views and the item metadata to a small SQLite file for the machines that serve.",
        discussion: """
            The file is written whole under a temporary name beside --out, made read only and \
            renamed over --out, so a reader of --out finds the previous snapshot or the new one, \
            never part of one; --out may name only a snapshot written by recpipe export. Reads \
            the database in one transaction and takes no lock: it can run while the nightly \
            publishes, and gives the lists before that publish or after it. Exit 65 when \
            nothing was ever published.
            """)

    @OptionGroup var options: ReadOptions
    @Option(help: "The snapshot file to write (replaced atomically).")
    var out: String

    func run() throws {
        let logger = options.logging.makeLogger()
        try runReporting(logger, database: options.db) {
            let started = Clock.monotonic()
            let summary = try ServingSnapshot.export(from: options.db, to: out)
            logger.info("serving snapshot written", metadata: [
                "out": "\(out)", "run": "\(summary.runID)", "model": "\(summary.modelKind)", "users": "\(summary.users)",
                "rows": "\(summary.rows)", "bytes": "\(summary.bytes)",
                "seconds": "\(String(format: "%.2f", Clock.monotonic() - started))",
            ])
            print("exported run \(summary.runID) (\(summary.modelKind)): \(summary.users) users, \(summary.rows) rows, "
                + "\(summary.popularItems) popular items, \(summary.metadataItems) items of metadata, \(summary.bytes) bytes to \(out)")
        }
    }
}

struct ExportAirflow: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "airflow",
        abstract: "Write a pipeline manifest as an Apache Airflow DAG file: one task per stage, each running recpipe run --only STAGE.",
        discussion: """
            Dependencies come from needs, retries, backoff and timeouts from the manifest, the \
            schedule from its schedule: key (none: triggered by hand). A stage that is up to date \
            exits 99 (run --skipped-exit), which the task shows as skipped. With --shards N each \
            score stage becomes N shard tasks (run --shard I/N: reading only, each into its own \
            file beside the database) and a merge task (run --merge-shards N) that publishes. \
            The manifest, the --set overrides and this binary's path are written into the file \
            as they are now.
            """)

    @OptionGroup var manifest: ManifestOptions
    @Option(help: "Score in this many shards (each score stage becomes N shard tasks and a merge task).")
    var shards: Int?
    @Option(help: "The DAG file to write (replaced atomically); standard output without it.")
    var out: String?
    @Option(help: "The recpipe binary the tasks run (default: this one).")
    var recpipe: String?

    func validate() throws {
        if let shards, shards < 1 { throw ValidationError("--shards must be at least 1, got \(shards)") }
    }

    func run() throws {
        let logger = manifest.logging.makeLogger()
        try runReporting(logger) {
            let pipeline = try manifest.load()
            let executable = recpipe.map { absolutePath($0) } ?? recpipeExecutable
            let text = AirflowDAG.render(pipeline, manifest: absolutePath(manifest.manifest), executable: executable,
                                         version: CodeVersion.of(executable: executable), overrides: manifest.overrides, shards: shards)
            guard let out else { return print(text, terminator: "") }
            let target = absolutePath(out)
            guard target != absolutePath(manifest.manifest), target != pipeline.database else {
                throw StageError.badOption("--out \(out) names the manifest or its database; give the DAG file its own name")
            }
            // Whole or not at all: a scheduler that parses the DAG folder never sees half a file.
            try writeWhole(text, to: target)
            logger.info("airflow dag written", metadata: ["out": "\(target)", "tasks": "\(pipeline.stages.count + (shards ?? 0) * pipeline.stages.filter { $0.kind.name == "score" }.count)"])
        }
    }
}

struct ExportKubernetesScore: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "k8s-score",
        abstract: "Write scoring in N shards as Kubernetes Jobs: an Indexed Job of N pods and a merge Job that publishes.",
        discussion: """
            Pod I of the Indexed Job runs recpipe score --shard I/N (I from JOB_COMPLETION_INDEX) \
            against the database on a shared volume, reading only; each index is retried on its \
            own (backoffLimitPerIndex). The merge Job runs recpipe score --merge over the N files; \
            apply it once the shards are complete (the file's header gives the kubectl commands).
            """)

    @Option(help: "Pods, one shard each.")
    var shards: Int
    @Option(help: "The container image, with recpipe on its PATH.")
    var image: String
    @Option(name: .customLong("db-path"), help: "The database's path inside the pods (its directory is the mount point of the claim).")
    var dbPath: String
    @Option(help: "The PersistentVolumeClaim holding the database.")
    var claim = "recpipe-data"
    @Option(help: "The Jobs' name prefix.")
    var name = "recpipe-score"
    @Option(help: "The Jobs' namespace (default: kubectl's).")
    var namespace: String?
    @Option(name: .customLong("score-arg"), help: ArgumentHelp("An argument for every score command, e.g. --score-arg=--k --score-arg=50 (repeatable).", valueName: "arg"))
    var scoreArguments: [String] = []
    @Option(help: "Retries of each shard's pod and of the merge.")
    var retries = 2
    @Option(help: "The file to write (replaced atomically); standard output without it.")
    var out: String?
    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        guard shards >= 1 else { throw ValidationError("--shards must be at least 1, got \(shards)") }
        guard dbPath.hasPrefix("/") else { throw ValidationError("--db-path must be absolute (a path inside the pods), got '\(dbPath)'") }
        guard retries >= 0 else { throw ValidationError("--retries must be at least 0") }
        let label = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/
        guard name.wholeMatch(of: label) != nil, name.count <= 50 else {
            throw ValidationError("--name must be a DNS label of at most 50 characters (lower case, digits, '-'), got '\(name)'")
        }
    }

    func run() throws {
        let logger = logging.makeLogger()
        try runReporting(logger) {
            var options = KubernetesScore.Options(shards: shards, image: image, databasePath: dbPath)
            options.claim = claim
            options.name = name
            options.namespace = namespace
            options.scoreArguments = scoreArguments
            options.retries = retries
            // The score command's own parser judges the arguments now, not a pod later.
            if let problem = ArgumentParserCommands().check(["score", "--db", dbPath] + scoreArguments) {
                throw StageError.badOption("--score-arg: \(problem)")
            }
            let text = KubernetesScore.render(options, version: CodeVersion.of(executable: recpipeExecutable))
            guard let out else { return print(text, terminator: "") }
            try writeWhole(text, to: out)
            logger.info("kubernetes jobs written", metadata: ["out": "\(out)", "shards": "\(shards)"])
        }
    }
}

/// Writes a generated file whole or not at all (a temporary file renamed over it), so that a
/// program watching the folder never reads half of it.
func writeWhole(_ text: String, to path: String) throws {
    let target = absolutePath(path)
    let temporary = target + ".tmp-\(getpid())"
    do {
        try Data(text.utf8).write(to: URL(fileURLWithPath: temporary))
        guard rename(temporary, target) == 0 else { throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: target]) }
    } catch {
        let code = errno
        unlink(temporary)
        throw StoreError.writeFailed(path: target, reason: "cannot write it", errno: code)
    }
}
