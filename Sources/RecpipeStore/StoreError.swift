import Foundation
import GRDBSQLite

/// Errors of the store: opening, locking and migrating databases, and SQL that failed.
public enum StoreError: Error, LocalizedError, Equatable, Sendable {
    case cannotOpen(path: String, reason: String)
    /// The file is not a SQLite database at all.
    case notADatabase(path: String)
    /// The file has another application's tables (and no recpipe schema).
    case foreignDatabase(path: String, tables: Int, examples: [String])
    case migrationChanged(file: String, recorded: String, shipped: String)
    /// `code`: SQLite's extended result code.
    case migrationFailed(file: String, reason: String, code: Int32)
    case schemaTooNew(path: String, version: Int, known: Int)
    /// A command that only reads found an older schema (it never migrates).
    case schemaBehind(path: String, version: Int, shipped: Int)
    case unknownAppliedMigration(path: String, version: Int, name: String)
    case badMigrationName(String)
    /// Another process holds the database's writer lock (`waited`: seconds waited, nil
    /// when the command did not wait).
    case lockHeld(path: String, holder: String, waited: Double?)
    case lockFailed(path: String, reason: String)
    /// A statement failed on a connection to `path`; `code` is SQLite's extended result code.
    case statementFailed(path: String, sql: String, reason: String, code: Int32)
    /// An output path that names an input: the database, one of its -wal/-shm/-journal
    /// files, or an existing file that must not be replaced. Nothing was written.
    case outputOverInput(path: String, reason: String)
    /// A file other than the database could not be written (`reason` from the system).
    case writeFailed(path: String, reason: String, errno: Int32)
    /// The database has no live lists (nothing was ever published) for a command that needs them.
    case noLiveLists(path: String)

    public var errorDescription: String? {
        switch self {
        case let .cannotOpen(path, reason):
            return "\(path): cannot open database: \(reason)"
        case let .notADatabase(path):
            return "\(path): not a SQLite database"
        case let .foreignDatabase(path, tables, examples):
            return "\(path): a SQLite database of another application (\(tables) tables, e.g. \(examples.joined(separator: ", "))) and no recpipe schema; nothing changed. To add recpipe's tables to it: recpipe migrate --db \(path) --adopt"
        case let .migrationChanged(file, recorded, shipped):
            return "\(file): migration was applied with checksum \(recorded.prefix(12)) but this recpipe ships checksum \(shipped.prefix(12)); shipped migrations must never be edited (add a new one instead)"
        case let .migrationFailed(file, reason, _):
            return "\(file): migration failed, database left at the previous version: \(reason)"
        case let .schemaTooNew(path, version, known):
            return "\(path): database schema is at version \(version) but this recpipe knows up to \(known); upgrade recpipe"
        case let .schemaBehind(path, version, shipped):
            return "\(path): database schema is at version \(version), this recpipe reads version \(shipped); run recpipe migrate --db \(path)"
        case let .unknownAppliedMigration(path, version, name):
            return "\(path): database has migration \(version) (\(name)) that this recpipe does not ship"
        case let .lockHeld(path, holder, waited):
            let wait = waited.map { String(format: "after waiting %.0f s", $0) } ?? "try again later or pass --wait [SECONDS]"
            return "\(path): another command is writing this database (\(holder)); \(wait)"
        case let .lockFailed(path, reason):
            return "\(path): cannot take the writer lock: \(reason)"
        case let .statementFailed(path, sql, reason, code):
            let kind = StoreError.isDiskFullOrIO(code) ? "disk full or I/O error" : "SQL failed"
            return "\(path): \(kind): \(reason) in: \(sql.split(separator: "\n").joined(separator: " ").prefix(300))"
        case let .outputOverInput(path, reason):
            return "\(path): refusing to write there: \(reason); nothing written"
        case let .writeFailed(path, reason, _):
            return "\(path): cannot write: \(reason)"
        case let .noLiveLists(path):
            return "\(path): no live lists yet (run recpipe score first); nothing written"
        case let .badMigrationName(name):
            return "\(name): migration files must be named NNNN_name.sql"
        }
    }

    /// Whether a SQLite result code (primary or extended) says the disk is full or an I/O
    /// operation failed.
    public static func isDiskFullOrIO(_ code: Int32) -> Bool {
        [SQLITE_FULL, SQLITE_IOERR].contains(code & 0xFF)
    }

    /// The failure of the last call on `connection`, naming its database file.
    public static func sqlite(_ connection: OpaquePointer, sql: String) -> StoreError {
        let file = sqlite3_db_filename(connection, "main").map { String(cString: $0) } ?? ""
        return .statementFailed(path: file.isEmpty ? "database" : file, sql: sql,
                                reason: String(cString: sqlite3_errmsg(connection)), code: sqlite3_extended_errcode(connection))
    }
}
