import ArgumentParser
import Foundation
import RecpipeStore

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write what other systems run on: a serving snapshot of the live lists.",
        subcommands: [ExportServing.self],
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
