import CSQLiteTuning
import Foundation
import GRDB
import GRDBSQLite
import Logging

/// A recpipe database: one SQLite file, opened with WAL, a busy timeout and foreign keys.
///
/// Opened for writing (`init(path:logger:access:)`), it holds the database's writer lock
/// for as long as it lives, refuses a SQLite file that belongs to another application, and
/// migrates the schema before anything else touches it. Opened for reading
/// (`init(readingAt:)`), it takes no lock, changes nothing, and requires the schema this
/// binary ships.
public final class Store: Sendable {
    public let path: String
    public let queue: DatabaseQueue
    /// The writer lock this store holds; nil when opened for reading.
    public let writerLock: WriterLock?

    /// How long a connection waits for another connection's transaction before failing.
    public static let busyTimeout: TimeInterval = 60

    /// How a writer opens the database.
    public struct WriteAccess: Sendable {
        /// The command, as the holder file names it to a second writer.
        public var command: String
        /// Seconds to wait for another writer (infinity: as long as it takes; nil: not at all).
        public var wait: Double?
        /// Add recpipe's tables to a SQLite file that has tables of another application.
        public var adopt = false

        public init(command: String = Store.commandLine, wait: Double? = nil, adopt: Bool = false) {
            self.command = command
            self.wait = wait
            self.adopt = adopt
        }
    }

    /// This process's command line, for the holder file.
    public static var commandLine: String {
        CommandLine.arguments.enumerated().map { $0 == 0 ? URL(fileURLWithPath: $1).lastPathComponent : $1 }.joined(separator: " ")
    }

    /// Opens (creating if needed) the database at `path` for writing: takes its writer lock,
    /// then migrates it.
    public init(path: String, logger: Logger, access: WriteAccess = WriteAccess(), migrator: Migrator? = nil) throws {
        self.path = path
        let lock = try WriterLock(path: path, command: access.command, wait: access.wait, logger: logger)
        if let previous = lock.takenOverFrom {
            logger.warning("taking over the writer lock from a holder that is gone", metadata: ["db": "\(path)", "previous": "\(previous)"])
        }
        writerLock = lock
        queue = try Store.connect(path: path)
        let migrator = try migrator ?? Migrator.shipped()
        try queue.inDatabase { db in
            let tables = try Store.refuseForeign(db, path: path, adopt: access.adopt)
            // A new database frees the pages pruning empties (PRAGMA incremental_vacuum after
            // each prune); the mode can only be chosen before the first table exists (an
            // existing file is converted by `recpipe prune --vacuum`).
            if tables == 0 {
                try db.execute(sql: "PRAGMA auto_vacuum = INCREMENTAL")
            }
            _ = try String.fetchOne(db, sql: "PRAGMA journal_mode = WAL")
        }
        let applied = try migrator.migrate(queue, path: path)
        for migration in applied {
            logger.info("migration applied", metadata: ["db": "\(path)", "migration": "\(migration.file)"])
        }
    }

    /// Opens the database at `path` for reading: no lock, no migration, no change to the
    /// file. Throws `schemaBehind` when it is not at this binary's schema version.
    public init(readingAt path: String, migrator: Migrator? = nil) throws {
        self.path = path
        writerLock = nil
        guard FileManager.default.fileExists(atPath: path) else {
            throw StoreError.cannotOpen(path: path, reason: "no such database")
        }
        queue = try Store.connect(path: path, readonly: true)
        let migrator = try migrator ?? Migrator.shipped()
        try queue.read { db in
            try Store.refuseForeign(db, path: path, adopt: false)
            try migrator.check(db, path: path)
        }
    }

    /// An empty database in memory at this binary's schema: what a database that does not
    /// exist yet reads as.
    public static func empty() throws -> Store { try Store(inMemory: ()) }

    private init(inMemory: Void) throws {
        path = ":memory:"
        writerLock = nil
        queue = try DatabaseQueue()
        try Migrator.shipped().migrate(queue, path: path)
    }

    deinit { writerLock?.release() }

    /// The size the WAL file is cut back to when a checkpoint resets it (SQLite's
    /// journal_size_limit, set on every writing connection).
    public static let walLimitBytes = 64 << 20

    /// Copies the WAL into the database and truncates it, waiting at most `wait` seconds for
    /// readers of older snapshots; a reader that holds one longer leaves the WAL as it is
    /// (not an error: the next checkpoint after it closes truncates it). Returns whether the
    /// WAL was truncated.
    @discardableResult
    public func checkpoint(wait: Double = 1, logger: Logger) -> Bool {
        guard writerLock != nil else { return false }
        return queue.writeWithoutTransaction { db -> Bool in
            guard let handle = db.sqliteConnection else { return false }
            sqlite3_busy_timeout(handle, Int32(wait * 1000))
            defer { sqlite3_busy_timeout(handle, Int32(Store.busyTimeout * 1000)) }
            var frames: Int32 = 0, copied: Int32 = 0
            let status = sqlite3_wal_checkpoint_v2(handle, nil, SQLITE_CHECKPOINT_TRUNCATE, &frames, &copied)
            if status == SQLITE_BUSY {
                logger.info("WAL not truncated: a reader holds an older snapshot", metadata: [
                    "db": "\(path)", "wal_frames": "\(frames)", "copied": "\(copied)",
                ])
            } else if status != SQLITE_OK {
                logger.warning("checkpoint failed", metadata: ["db": "\(path)", "error": "\(String(cString: sqlite3_errmsg(handle)))"])
            }
            return status == SQLITE_OK
        }
    }

    /// The sizes of the database file and its WAL, in bytes (0 for a file that is not there).
    public func fileSizes() -> (database: Int, wal: Int) {
        func size(_ file: String) -> Int { (try? FileManager.default.attributesOfItem(atPath: file)[.size] as? Int) ?? 0 }
        return (size(path), size(path + "-wal"))
    }

    /// Process-wide SQLite settings, applied before the first connection opens.
    static let tuned: Bool = recpipe_sqlite_disable_memstatus() == 0

    /// Opens a connection; the caller holds the writer lock or opens it read-only.
    static func connect(path: String, readonly: Bool = false) throws -> DatabaseQueue {
        _ = tuned
        var config = Configuration()
        config.busyMode = .timeout(busyTimeout)
        config.foreignKeysEnabled = true
        config.readonly = readonly
        config.label = path
        config.prepareDatabase { db in
            if !readonly { try db.execute(sql: "PRAGMA synchronous = NORMAL; PRAGMA journal_size_limit = \(Store.walLimitBytes)") }
        }
        do {
            return try DatabaseQueue(path: path, configuration: config)
        } catch let error as DatabaseError where error.resultCode == .SQLITE_NOTADB {
            throw StoreError.notADatabase(path: path)
        } catch let error as DatabaseError where StoreError.isDiskFullOrIO(error.extendedResultCode.rawValue) {
            // A full disk while opening (the -shm file, the first pragmas): the disk's
            // problem, not a missing database.
            throw StoreError.statementFailed(path: path, sql: error.sql ?? "opening the database", reason: error.message ?? "\(error)",
                                             code: error.extendedResultCode.rawValue)
        } catch let error as DatabaseError {
            throw StoreError.cannotOpen(path: path, reason: error.message ?? "\(error)")
        }
    }

    /// A file with tables but no `schema_migrations` belongs to another application.
    /// Returns the number of tables.
    @discardableResult
    static func refuseForeign(_ db: Database, path: String, adopt: Bool) throws -> Int {
        let tables: Int, recpipe: Bool
        do {
            tables = try Int.fetchOne(db, sql: "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'") ?? 0
            recpipe = try Bool.fetchOne(db, sql: "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'") ?? false
        } catch let error as DatabaseError where error.resultCode == .SQLITE_NOTADB {
            throw StoreError.notADatabase(path: path)
        }
        if !adopt && tables > 0 && !recpipe {
            let names = try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name LIMIT 3")
            throw StoreError.foreignDatabase(path: path, tables: tables, examples: names)
        }
        return tables
    }
}
