import Foundation
import GRDBSQLite

/// A plain SQLite connection for bulk loads, opened without SQLite's per-connection mutex
/// (SQLITE_OPEN_NOMUTEX): it belongs to one thread. Configured like every other connection
/// (busy timeout, foreign keys). The database must already be opened for writing (locked and
/// migrated) by a `Store` of this process.
public final class RawConnection {
    public let handle: OpaquePointer
    public let path: String

    /// Opens `path`, creating the file when `create` is set (for files recpipe writes that
    /// are not recpipe databases, such as scoring shards).
    public init(path: String, create: Bool = false) throws {
        self.path = path
        _ = Store.tuned
        var db: OpaquePointer?
        let status = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (create ? SQLITE_OPEN_CREATE : 0), nil)
        guard status == SQLITE_OK, let db else {
            let reason = db.map { String(cString: sqlite3_errmsg($0)) } ?? "status \(status)"
            sqlite3_close(db)
            throw StoreError.cannotOpen(path: path, reason: reason)
        }
        handle = db
        sqlite3_busy_timeout(db, Int32(Store.busyTimeout * 1000))
        try execute("\(create ? "PRAGMA journal_mode = WAL; " : "")PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA journal_size_limit = \(Store.walLimitBytes);")
    }

    deinit { sqlite3_close_v2(handle) }

    public var lastError: String { String(cString: sqlite3_errmsg(handle)) }

    public func execute(_ sql: String) throws {
        var message: UnsafeMutablePointer<CChar>?
        guard sqlite3_exec(handle, sql, nil, nil, &message) == SQLITE_OK else {
            let text = message.map { String(cString: $0) } ?? lastError
            sqlite3_free(message)
            throw StoreError.statementFailed(path: path, sql: sql, reason: text, code: sqlite3_extended_errcode(handle))
        }
    }

    public enum Value {
        case integer(Int64)
        case real(Double)
        case text(String)
        case null
    }

    /// Runs one statement with arguments; returns the first column of the first row, if any.
    @discardableResult
    public func run(_ sql: String, _ arguments: [Value] = []) throws -> Value? {
        var statement: OpaquePointer?
        guard sqlite3_prepare_v2(handle, sql, -1, &statement, nil) == SQLITE_OK, let statement else {
            throw StoreError.sqlite(handle, sql: sql)
        }
        defer { sqlite3_finalize(statement) }
        for (offset, value) in arguments.enumerated() {
            let index = Int32(offset + 1)
            switch value {
            case .integer(let v): sqlite3_bind_int64(statement, index, v)
            case .real(let v): sqlite3_bind_double(statement, index, v)
            case .text(let v): sqlite3_bind_text(statement, index, v, -1, sqliteTransient)
            case .null: sqlite3_bind_null(statement, index)
            }
        }
        switch sqlite3_step(statement) {
        case SQLITE_DONE:
            return nil
        case SQLITE_ROW:
            switch sqlite3_column_type(statement, 0) {
            case SQLITE_INTEGER: return .integer(sqlite3_column_int64(statement, 0))
            case SQLITE_FLOAT: return .real(sqlite3_column_double(statement, 0))
            case SQLITE_NULL: return .null
            default: return .text(String(cString: sqlite3_column_text(statement, 0)))
            }
        default:
            throw StoreError.sqlite(handle, sql: sql)
        }
    }

    public var lastInsertedRowID: Int64 { sqlite3_last_insert_rowid(handle) }

    /// Runs `body` in an immediate transaction: committed if it returns, rolled back if it
    /// throws.
    public func inTransaction<T>(_ body: () throws -> T) throws -> T {
        try execute("BEGIN IMMEDIATE")
        do {
            let result = try body()
            try execute("COMMIT")
            return result
        } catch {
            try? execute("ROLLBACK")
            throw error
        }
    }
}

/// SQLite's SQLITE_TRANSIENT: the library copies the bound value.
public let sqliteTransient = unsafeBitCast(OpaquePointer(bitPattern: -1), to: sqlite3_destructor_type.self)

/// Steps through the rows of a query on a raw SQLite connection, calling `row` with the
/// statement positioned on each; any SQLite error ends it with the SQL named.
public func forEachRow(_ connection: OpaquePointer, _ sql: String, _ row: (OpaquePointer) throws -> Void) throws {
    var prepared: OpaquePointer?
    guard sqlite3_prepare_v2(connection, sql, -1, &prepared, nil) == SQLITE_OK, let statement = prepared else {
        throw StoreError.sqlite(connection, sql: sql)
    }
    defer { sqlite3_finalize(statement) }
    while true {
        switch sqlite3_step(statement) {
        case SQLITE_ROW: try row(statement)
        case SQLITE_DONE: return
        default: throw StoreError.sqlite(connection, sql: sql)
        }
    }
}
