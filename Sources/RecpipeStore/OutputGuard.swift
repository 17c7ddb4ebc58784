import Foundation
import GRDB

/// Outputs never overwrite inputs: every file recpipe writes besides its database (scoring
/// shards, the report, synthetic logs, the metrics file) is checked here before anything is
/// written.
public enum OutputGuard {
    /// What an existing file at the output path may be.
    public enum Replaceable: Sendable {
        /// Any file that is not a SQLite database (reports, logs, metrics).
        case notDatabase
        /// Only a scoring shard written by recpipe.
        case shard
        /// Only a serving snapshot written by recpipe.
        case servingSnapshot
    }

    /// Throws `outputOverInput` when `output` is `database` or one of its -wal, -shm or
    /// -journal files (by resolved path, or by device and inode), or an existing file that
    /// `replaceable` does not allow.
    public static func check(_ output: String, database: String?, replaceable: Replaceable) throws {
        let target = resolvedPath(output)
        if let database {
            let base = resolvedPath(database)
            for suffix in ["", "-wal", "-shm", "-journal"] where target == base + suffix || sameFile(output, database + suffix) {
                throw StoreError.outputOverInput(path: output, reason: suffix.isEmpty ? "it is the database" : "it is the database's \(suffix.dropFirst()) file")
            }
        }
        for suffix in ["-wal", "-shm", "-journal"] where target.hasSuffix(suffix) && isSQLite(String(target.dropLast(suffix.count))) {
            throw StoreError.outputOverInput(path: output, reason: "it is the \(suffix.dropFirst()) file of a SQLite database")
        }
        guard FileManager.default.fileExists(atPath: output) else { return }
        switch replaceable {
        case .notDatabase:
            if isSQLite(output) { throw StoreError.outputOverInput(path: output, reason: "it is an existing SQLite database") }
        case .shard:
            guard isShard(output) else {
                throw StoreError.outputOverInput(path: output, reason: "it exists and is not a recpipe scoring shard")
            }
        case .servingSnapshot:
            guard ServingSnapshot.isSnapshot(output) else {
                throw StoreError.outputOverInput(path: output, reason: "it exists and is not a recpipe serving snapshot")
            }
        }
    }

    /// Whether the file starts with SQLite's header.
    static func isSQLite(_ path: String) -> Bool {
        guard let handle = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? handle.close() }
        return (try? handle.read(upToCount: 16)) == Data("SQLite format 3\u{0}".utf8)
    }

    /// A SQLite file whose tables are exactly a shard's (or an empty file).
    static func isShard(_ path: String) -> Bool {
        var info = stat()
        if stat(path, &info) == 0, info.st_size == 0 { return true }
        guard isSQLite(path) else { return false }
        var config = Configuration()
        config.readonly = true
        guard let queue = try? DatabaseQueue(path: path, configuration: config),
              let tables = try? queue.read({ try String.fetchAll($0, sql: "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name") })
        else { return false }
        return tables == ["recommendation_rows", "shard_info"]
    }

    static func sameFile(_ a: String, _ b: String) -> Bool {
        var x = stat(), y = stat()
        return stat(a, &x) == 0 && stat(b, &y) == 0 && x.st_dev == y.st_dev && x.st_ino == y.st_ino
    }

}

/// The path with symlinks resolved; for a file that does not exist, its directory resolved.
/// What the writer lock's holder file and the output guards compare paths by.
func resolvedPath(_ path: String) -> String {
    if let real = realpath(path, nil) {
        defer { free(real) }
        return String(cString: real)
    }
    let url = URL(fileURLWithPath: path)
    let directory = url.deletingLastPathComponent().path
    guard let real = realpath(directory, nil) else { return url.standardizedFileURL.path }
    defer { free(real) }
    return String(cString: real) + "/" + url.lastPathComponent
}
