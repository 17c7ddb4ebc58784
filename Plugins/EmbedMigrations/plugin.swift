import Foundation
import PackagePlugin

/// Generates `EmbeddedMigrations.swift` from the package's `migrations/NNNN_name.sql` files
/// the scoring shard file's schema, `migrations/shard/*.sql`, and the serving snapshot's,
/// `migrations/serving/*.sql`.
@main
struct EmbedMigrations: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        func sqlFiles(_ directory: URL) throws -> [URL] {
            try FileManager.default.contentsOfDirectory(atPath: directory.path())
                .filter { $0.hasSuffix(".sql") }
                .sorted()
                .map { directory.appending(path: $0) }
        }
        let directory = context.package.directoryURL.appending(path: "migrations")
        let migrations = try sqlFiles(directory), shard = try sqlFiles(directory.appending(path: "shard"))
        let serving = try sqlFiles(directory.appending(path: "serving"))
        let inputs = migrations + shard + serving
        let output = context.pluginWorkDirectoryURL.appending(path: "EmbeddedMigrations.swift")
        return [
            .buildCommand(
                displayName: "Embedding \(inputs.count) migrations",
                executable: try context.tool(named: "EmbedMigrationsTool").url,
                arguments: [output.path()] + migrations.map { $0.path() } + ["--shard"] + shard.map { $0.path() }
                    + ["--serving"] + serving.map { $0.path() },
                inputFiles: inputs,
                outputFiles: [output])
        ]
    }
}
