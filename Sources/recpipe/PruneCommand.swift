import ArgumentParser
import Foundation
import RecpipeStages
import RecpipeStore

struct Prune: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Delete what the database no longer needs: old models' weights, old evaluations' per-user rows, superseded synthetic interactions.",
        discussion: """
            The stages apply the same policy to what they add (train and augment when they \
            publish, evaluate), so a nightly needs no prune of its own. Never removed: published \
            models, the models behind the live and the rollback set, those of the newest \
            evaluation of each part, and the newest model of each kind trained with synthetic \
            interactions. A pruned model keeps its row in models (pruned_at is set). Freed pages \
            are returned to the file system on databases with incremental auto_vacuum (every \
            database this recpipe creates); --vacuum rewrites an older file into that mode.
            """)

    @OptionGroup var options: DatabaseOptions
    @Option(name: .customLong("keep-retired"), help: "Models of each kind kept with their weights besides the published one.")
    var keepRetired = Retention.Policy().keepRetired
    @Option(name: .customLong("keep-evaluations"), help: "Evaluation runs that keep their per-user rows.")
    var keepEvaluations = Retention.Policy().keepEvaluations
    @Flag(name: .customLong("dry-run"), help: "Print what would be removed; change nothing (takes no lock).")
    var dryRun = false
    @Flag(help: "Afterwards rewrite the file without its free pages (VACUUM; needs free disk space about the database's size).")
    var vacuum = false

    func run() throws {
        let logger = options.logging.makeLogger()
        try runReporting(logger, database: options.db) {
            var config = PruneStage.Config()
            config.policy.keepRetired = keepRetired
            config.policy.keepEvaluations = keepEvaluations
            config.vacuum = vacuum
            let stage = try PruneStage(config: config)
            guard dryRun else { return try runStage(stage, options: options, logger: logger) }
            let plan = try Store(readingAt: options.db).queue.read { try Retention.plan(config.policy, in: $0) }
            for line in plan.lines { print("would remove " + line) }
            if plan.isEmpty { print("nothing to remove") }
        }
    }
}
