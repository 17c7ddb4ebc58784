import CSQLiteTuning
import Foundation
import GRDBSQLite

/// A table access a statement made (as SQLite's authorizer reports it when the statement is
/// compiled), for the tests that hold each stage to the tables it declares.
public struct TableAccess: Hashable, Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable { case read, insert, update, delete }
    public var kind: Kind
    public var table: String
    /// "main", "temp", or an attached database's name.
    public var database: String
    /// The database's file.
    public var file: String

    public init(kind: Kind, table: String, database: String = "main", file: String) {
        self.kind = kind
        self.table = table
        self.database = database
        self.file = file
    }

    public var description: String { "\(kind.rawValue) \(database == "main" ? "" : database + ".")\(table)" }

    /// Whether this is an access to a table of the database in the file at `path`.
    public func isIn(_ path: String) -> Bool {
        database != "temp" && URL(fileURLWithPath: file).standardizedFileURL.path == URL(fileURLWithPath: path).standardizedFileURL.path
    }

    public var isWrite: Bool { kind != .read }

    /// Records the accesses of every statement compiled on any connection of this process
    /// while `body` runs (GRDB's and the bulk ones alike). One recording at a time.
    public static func recording<T>(_ body: () throws -> T) throws -> (result: T, accesses: Set<TableAccess>) {
        let box = Recording()
        let context = Unmanaged.passRetained(box)
        guard recorderLock.try() else { context.release(); preconditionFailure("TableAccess.recording is not reentrant") }
        defer { recorderLock.unlock() }
        recpipe_set_access_recorder({ context, action, table, _, database, file in
            guard let context, let table else { return }
            let kind: Kind
            switch action {
            case SQLITE_READ: kind = .read
            case SQLITE_INSERT: kind = .insert
            case SQLITE_UPDATE: kind = .update
            case SQLITE_DELETE: kind = .delete
            default: return
            }
            let access = TableAccess(kind: kind, table: String(cString: table), database: database.map { String(cString: $0) } ?? "main",
                                     file: file.map { String(cString: $0) } ?? "")
            Unmanaged<Recording>.fromOpaque(context).takeUnretainedValue().add(access)
        }, context.toOpaque())
        defer {
            recpipe_set_access_recorder(nil, nil)
            context.release()
        }
        let result = try body()
        return (result, box.accesses)
    }

    private static let recorderLock = NSLock()

    private final class Recording: @unchecked Sendable {
        private let lock = NSLock()
        private var seen: Set<TableAccess> = []
        func add(_ access: TableAccess) { _ = lock.withLock { seen.insert(access) } }
        var accesses: Set<TableAccess> { lock.withLock { seen } }
    }
}
