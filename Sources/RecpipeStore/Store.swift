import CSQLiteTuning
import Foundation
import GRDB
import Logging

/// A recpipe database: one SQLite file, opened with WAL, a busy timeout and foreign keys,
/// and migrated to the schema this binary ships before anything else touches it.
public final class Store: Sendable {
    public let path: String
    public let queue: DatabaseQueue

    /// How long a connection waits for another writer before failing.
    public static let busyTimeout: TimeInterval = 60

    /// Opens (creating if needed) and migrates the database at `path`.
    public init(path: String, logger: Logger, migrator: Migrator? = nil) throws {
        self.path = path
        queue = try Store.connect(path: path)
        let applied = try (migrator ?? Migrator.shipped()).migrate(queue, path: path)
        for migration in applied {
            logger.info("migration applied", metadata: ["db": "\(path)", "migration": "\(migration.file)"])
        }
    }

    /// Process-wide SQLite settings, applied before the first connection opens.
    static let tuned: Bool = recpipe_sqlite_disable_memstatus() == 0

    /// Opens a connection without migrating.
    public static func connect(path: String, readonly: Bool = false) throws -> DatabaseQueue {
        _ = tuned
        var config = Configuration()
        config.busyMode = .timeout(busyTimeout)
        config.foreignKeysEnabled = true
        config.readonly = readonly
        config.label = path
        config.prepareDatabase { db in
            if !readonly {
                _ = try String.fetchOne(db, sql: "PRAGMA journal_mode = WAL")
                try db.execute(sql: "PRAGMA synchronous = NORMAL")
            }
        }
        do {
            return try DatabaseQueue(path: path, configuration: config)
        } catch let error as DatabaseError {
            throw StoreError.cannotOpen(path: path, reason: error.message ?? "\(error)")
        }
    }
}
