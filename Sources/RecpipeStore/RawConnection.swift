import Foundation
import GRDB
import GRDBSQLite

/// A plain SQLite connection for the bulk paths (ingest's rows, clean's tables, score's
/// lists, shard files, SQLite sources), opened without SQLite's per-connection mutex
/// (SQLITE_OPEN_NOMUTEX): it belongs to one thread at a time. Configured like every other
/// connection (busy timeout, foreign keys). Stages get one for their database from
/// `Store.bulkConnection()`; this type is the only place outside `Store` that speaks
/// SQLite's C API.
public final class RawConnection {
    let handle: OpaquePointer
    public let path: String

    /// How a raw connection opens its file.
    public enum Mode: Sendable {
        /// A recpipe database already opened for writing (locked and migrated) by a `Store`.
        case database
        /// A file recpipe writes that is not a recpipe database (a scoring shard): created
        /// when missing, in WAL mode.
        case create
        /// Another application's SQLite file, read only (an ingest source).
        case readOnly
        /// A file written whole under a temporary name and then renamed into place (a
        /// serving snapshot): created, without a journal or foreign-key checks (a failed
        /// write discards the file), accepting URI file names (to attach a database read only).
        case snapshot
    }

    public init(path: String, mode: Mode = .database) throws {
        self.path = path
        _ = Store.tuned
        var db: OpaquePointer?
        let flags = switch mode {
        case .database: SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX
        case .create: SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_CREATE
        case .readOnly: SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX
        case .snapshot: SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_CREATE | SQLITE_OPEN_URI
        }
        let status = sqlite3_open_v2(path, &db, flags, nil)
        guard status == SQLITE_OK, let db else {
            let reason = db.map { String(cString: sqlite3_errmsg($0)) } ?? "status \(status)"
            sqlite3_close(db)
            throw StoreError.cannotOpen(path: path, reason: reason)
        }
        handle = db
        sqlite3_busy_timeout(db, Int32(Store.busyTimeout * 1000))
        // No authorizer of its own; set so that table accesses can be recorded (TableAccess).
        sqlite3_set_authorizer(db, nil, nil)
        if mode == .snapshot {
            try execute("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA foreign_keys = OFF;")
        } else if mode != .readOnly {
            try execute("\(mode == .create ? "PRAGMA journal_mode = WAL; " : "")PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA journal_size_limit = \(Store.walLimitBytes);")
        }
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

    public enum Value: Sendable, Equatable {
        case integer(Int64)
        case real(Double)
        case text(String)
        case null
    }

    /// Runs one statement with arguments; returns the first column of the first row, if any.
    @discardableResult
    public func run(_ sql: String, _ arguments: [Value] = []) throws -> Value? {
        let statement = try prepare(sql)
        statement.bind(arguments)
        guard let row = try statement.step() else { return nil }
        switch row.type(0) {
        case .integer: return .integer(row.int64(0))
        case .real: return .real(row.double(0))
        case .null: return .null
        case .text, .blob: return .text(row.string(0))
        }
    }

    public var lastInsertedRowID: Int64 { sqlite3_last_insert_rowid(handle) }
    /// Rows the last INSERT, UPDATE or DELETE changed.
    public var changes: Int { Int(sqlite3_changes(handle)) }

    /// Runs `body` in an immediate transaction: committed if it returns, rolled back if it
    /// throws.
    @discardableResult
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

    public func prepare(_ sql: String) throws -> RawStatement { try RawStatement(sql, on: handle) }

    /// Steps through the rows of `sql`, calling `row` on each.
    public func forEachRow(_ sql: String, _ arguments: [Value] = [], _ row: (RawRow) throws -> Void) throws {
        let statement = try prepare(sql)
        statement.bind(arguments)
        while let current = try statement.step() { try row(current) }
    }

    /// Inserts `count` rows into `table` with prepared multi-row statements (`chunk` rows per
    /// statement, then one at a time for the rest). `bind(binder, row)` binds one row's
    /// columns in order.
    public func insert(into table: TableName, columns: [String], count: Int, chunk: Int = 32,
                       bind: (inout RawBinder, Int) -> Void) throws {
        let row = "(" + Array(repeating: "?", count: columns.count).joined(separator: ", ") + ")"
        func prepare(_ rows: Int) throws -> RawStatement {
            try self.prepare("INSERT INTO \(table) (\(columns.joined(separator: ", "))) VALUES "
                + Array(repeating: row, count: rows).joined(separator: ", "))
        }
        let many = try prepare(chunk), one = try prepare(1)
        var k = 0
        while k < count {
            let statement = count - k >= chunk ? many : one
            let rows = statement === many ? chunk : 1
            var binder = RawBinder(statement: statement.handle, next: 1)
            for r in 0..<rows { bind(&binder, k + r) }
            try statement.execute()
            k += rows
        }
    }
}

/// A prepared statement of a `RawConnection`. Bindings survive `reset`, so a value that is
/// the same for every row is bound once.
public final class RawStatement {
    let handle: OpaquePointer
    private let connection: OpaquePointer
    public let sql: String

    /// Prepares `sql` on a connection (a `RawConnection`'s, or GRDB's for `Database.forEachRow`).
    init(_ sql: String, on connection: OpaquePointer) throws {
        var statement: OpaquePointer?
        guard sqlite3_prepare_v2(connection, sql, -1, &statement, nil) == SQLITE_OK, let statement else {
            throw StoreError.sqlite(connection, sql: sql)
        }
        self.handle = statement
        self.connection = connection
        self.sql = sql
    }

    deinit { sqlite3_finalize(handle) }

    public var columnCount: Int { Int(sqlite3_column_count(handle)) }
    public func columnName(_ index: Int) -> String { String(cString: sqlite3_column_name(handle, Int32(index))) }

    public func bind(_ value: RawConnection.Value, at index: Int32) {
        switch value {
        case .integer(let v): sqlite3_bind_int64(handle, index, v)
        case .real(let v): sqlite3_bind_double(handle, index, v)
        case .text(let v): sqlite3_bind_text(handle, index, v, -1, sqliteTransient)
        case .null: sqlite3_bind_null(handle, index)
        }
    }

    /// Binds `arguments` to the parameters from the first on.
    public func bind(_ arguments: [RawConnection.Value]) {
        for (offset, value) in arguments.enumerated() { bind(value, at: Int32(offset + 1)) }
    }

    /// Binds parameters from `first` on, in order.
    public func binder(from first: Int32 = 1) -> RawBinder { RawBinder(statement: handle, next: first) }

    /// Steps once: the row it is positioned on (valid until the next step), or nil when done.
    public func step() throws -> RawRow? {
        switch sqlite3_step(handle) {
        case SQLITE_ROW: return RawRow(statement: handle)
        case SQLITE_DONE: return nil
        default: throw StoreError.sqlite(connection, sql: sql)
        }
    }

    /// Runs a statement that returns no rows, then resets it for the next.
    public func execute() throws {
        defer { sqlite3_reset(handle) }
        guard sqlite3_step(handle) == SQLITE_DONE else { throw StoreError.sqlite(connection, sql: sql) }
    }
}

/// Binds a statement's parameters one after the other.
public struct RawBinder {
    let statement: OpaquePointer
    var next: Int32

    public mutating func bind(_ value: Int64) { sqlite3_bind_int64(statement, next, value); next += 1 }
    public mutating func bind(_ value: Int) { bind(Int64(value)) }
    public mutating func bind(_ value: Double) { sqlite3_bind_double(statement, next, value); next += 1 }
    /// Copied by SQLite.
    public mutating func bind(_ value: String) { sqlite3_bind_text(statement, next, value, -1, sqliteTransient); next += 1 }
    /// Bound without copying: the bytes must stay valid until the statement has run.
    public mutating func bindText(_ bytes: UnsafeBufferPointer<UInt8>) {
        sqlite3_bind_text(statement, next, UnsafeRawPointer(bytes.baseAddress ?? UnsafePointer(bitPattern: 1)!)
                          .assumingMemoryBound(to: CChar.self), Int32(bytes.count), nil)
        next += 1
    }
    /// Bound without copying (a static string lives as long as the program).
    public mutating func bind(_ value: StaticString) {
        value.withUTF8Buffer { bindText($0) }
    }
    public mutating func bindNull() { sqlite3_bind_null(statement, next); next += 1 }
    public mutating func bind(_ value: Int64?) { if let value { bind(value) } else { bindNull() } }
    public mutating func bind(_ value: Double?) { if let value { bind(value) } else { bindNull() } }
}

/// The row a statement is positioned on; its values are valid until the next step.
public struct RawRow {
    let statement: OpaquePointer

    public enum ColumnType: Sendable { case integer, real, text, blob, null }

    public func type(_ column: Int) -> ColumnType {
        switch sqlite3_column_type(statement, Int32(column)) {
        case SQLITE_INTEGER: .integer
        case SQLITE_FLOAT: .real
        case SQLITE_NULL: .null
        case SQLITE_BLOB: .blob
        default: .text
        }
    }

    public func isNull(_ column: Int) -> Bool { sqlite3_column_type(statement, Int32(column)) == SQLITE_NULL }
    public func int64(_ column: Int) -> Int64 { sqlite3_column_int64(statement, Int32(column)) }
    public func int(_ column: Int) -> Int { Int(int64(column)) }
    public func double(_ column: Int) -> Double { sqlite3_column_double(statement, Int32(column)) }
    public func optionalInt64(_ column: Int) -> Int64? { isNull(column) ? nil : int64(column) }
    public func optionalDouble(_ column: Int) -> Double? { isNull(column) ? nil : double(column) }

    /// The value's bytes with their length (never read as a C string, so a zero byte inside
    /// is kept): a BLOB's own bytes, other values as SQLite's text of them; nil for NULL.
    public func bytes(_ column: Int) -> UnsafeBufferPointer<UInt8>? {
        let index = Int32(column)
        let kind = sqlite3_column_type(statement, index)
        if kind == SQLITE_NULL { return nil }
        let pointer = kind == SQLITE_BLOB ? sqlite3_column_blob(statement, index).map { $0.assumingMemoryBound(to: UInt8.self) }
            : sqlite3_column_text(statement, index)
        let count = Int(sqlite3_column_bytes(statement, index))
        return UnsafeBufferPointer(start: pointer ?? UnsafePointer(bitPattern: 1), count: count)
    }

    public func string(_ column: Int) -> String {
        bytes(column).map { String(decoding: $0, as: UTF8.self) } ?? ""
    }
}

/// SQLite's SQLITE_TRANSIENT: the library copies the bound value.
let sqliteTransient = unsafeBitCast(OpaquePointer(bitPattern: -1), to: sqlite3_destructor_type.self)

extension Database {
    /// Steps through the rows of `sql` on this GRDB connection without building GRDB rows:
    /// the fast path for reading whole tables.
    public func forEachRow(_ sql: String, _ arguments: [RawConnection.Value] = [], _ row: (RawRow) throws -> Void) throws {
        guard let connection = sqliteConnection else { throw StoreError.statementFailed(path: "", sql: sql, reason: "connection closed", code: 0) }
        let statement = try RawStatement(sql, on: connection)
        statement.bind(arguments)
        while let current = try statement.step() { try row(current) }
    }
}

extension Store {
    /// Removes a SQLite file and its -wal, -shm and -journal files, where they exist.
    public static func removeFiles(of path: String) {
        for suffix in ["", "-wal", "-shm", "-journal"] { unlink(path + suffix) }
    }

    /// A bulk connection to this (writable) database.
    public func bulkConnection() throws -> RawConnection {
        precondition(writerLock != nil, "a bulk connection writes: open the store for writing")
        return try RawConnection(path: path)
    }
}

/// Strings encoded once as UTF-8 side by side, so that a bulk insert binds each of them many
/// times without copying, converting or measuring it again.
public struct EncodedKeys: Sendable {
    private var bytes: [UInt8] = []
    /// `ends[i]` is where key i's bytes end; key i starts where key i − 1 ends.
    private var ends: [Int] = []

    public init(_ keys: [String]) {
        ends.reserveCapacity(keys.count)
        for key in keys {
            bytes.append(contentsOf: key.utf8)
            ends.append(bytes.count)
        }
    }

    public var count: Int { ends.count }

    /// The keys' bytes, valid inside `body` only.
    public func withBytes<T>(_ body: (Bytes) throws -> T) rethrows -> T {
        try bytes.withUnsafeBufferPointer { storage in try ends.withUnsafeBufferPointer { try body(Bytes(storage: storage, ends: $0)) } }
    }

    public struct Bytes {
        let storage: UnsafeBufferPointer<UInt8>
        let ends: UnsafeBufferPointer<Int>

        public subscript(key: Int) -> UnsafeBufferPointer<UInt8> {
            let start = key == 0 ? 0 : ends[key - 1]
            return UnsafeBufferPointer(rebasing: storage[start..<ends[key]])
        }
    }
}
