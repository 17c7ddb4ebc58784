import Foundation
import GRDB

/// One numbered schema change, `migrations/NNNN_name.sql`.
public struct Migration: Sendable, Equatable {
    public let version: Int
    public let file: String
    public let sql: String
    public var checksum: String { SHA256.hex(sql) }

    public init(file: String, sql: String) throws {
        let stem = file.hasSuffix(".sql") ? String(file.dropLast(4)) : ""
        let parts = stem.split(separator: "_", maxSplits: 1)
        guard parts.count == 2, parts[0].count == 4, let version = Int(parts[0]), version > 0,
              parts[1].allSatisfy({ $0.isLowercase || $0.isNumber || $0 == "_" })
        else { throw StoreError.badMigrationName(file) }
        self.version = version
        self.file = file
        self.sql = sql
    }

    /// The migrations compiled into this binary, in order.
    public static func shipped() throws -> [Migration] {
        let migrations = try embeddedMigrationFiles.map { try Migration(file: $0.name, sql: $0.sql) }
        for (index, migration) in migrations.enumerated() where migration.version != index + 1 {
            throw StoreError.badMigrationName("\(migration.file) (expected version \(index + 1))")
        }
        return migrations
    }
}

/// A row of `schema_migrations`.
public struct AppliedMigration: Sendable, Equatable {
    public let version: Int
    public let file: String
    public let checksum: String
}

/// Applies migrations in order, each in its own transaction, recording them in
/// `schema_migrations` with their checksum.
public struct Migrator: Sendable {
    public let migrations: [Migration]

    public init(migrations: [Migration]) {
        self.migrations = migrations
    }

    public static func shipped() throws -> Migrator { Migrator(migrations: try Migration.shipped()) }

    static let createTable = """
        CREATE TABLE IF NOT EXISTS schema_migrations (
            version    INTEGER PRIMARY KEY,
            file       TEXT NOT NULL,
            checksum   TEXT NOT NULL,
            applied_at TEXT NOT NULL
        )
        """

    public func applied(_ db: Database) throws -> [AppliedMigration] {
        guard try db.tableExists("schema_migrations") else { return [] }
        return try Row.fetchAll(db, sql: "SELECT version, file, checksum FROM schema_migrations ORDER BY version")
            .map { AppliedMigration(version: $0["version"], file: $0["file"], checksum: $0["checksum"]) }
    }

    /// Checks that the database is at exactly this schema, for commands that only read.
    public func check(_ db: Database, path: String) throws {
        let applied = try self.applied(db)
        try verify(applied, path: path)
        let known = migrations.last?.version ?? 0
        if applied.count < migrations.count {
            throw StoreError.schemaBehind(path: path, version: applied.last?.version ?? 0, shipped: known)
        }
    }

    /// Refuses a schema newer than this binary's, or one whose applied migrations differ
    /// from the shipped ones.
    func verify(_ applied: [AppliedMigration], path: String) throws {
        let known = migrations.last?.version ?? 0
        if let newest = applied.last, newest.version > known {
            throw StoreError.schemaTooNew(path: path, version: newest.version, known: known)
        }
        for record in applied {
            guard let shipped = migrations.first(where: { $0.version == record.version }) else {
                throw StoreError.unknownAppliedMigration(path: path, version: record.version, name: record.file)
            }
            if shipped.checksum != record.checksum {
                throw StoreError.migrationChanged(file: shipped.file, recorded: record.checksum, shipped: shipped.checksum)
            }
        }
    }

    /// Checks what is applied against what ships, then applies what is pending. The caller
    /// holds the database's writer lock (`Store`).
    /// Returns the migrations applied by this call.
    @discardableResult
    public func migrate(_ queue: DatabaseQueue, path: String) throws -> [Migration] {
        let applied = try queue.read { try self.applied($0) }
        try verify(applied, path: path)
        let pending = migrations.filter { migration in !applied.contains { $0.version == migration.version } }
        for migration in pending {
            do {
                try queue.writeWithoutTransaction { db in
                    try db.inTransaction(.immediate) {
                        try db.execute(sql: Migrator.createTable)
                        try db.execute(sql: migration.sql)
                        try db.execute(
                            sql: "INSERT INTO schema_migrations (version, file, checksum, applied_at) VALUES (?, ?, ?, ?)",
                            arguments: [migration.version, migration.file, migration.checksum, Clock.isoNow()])
                        return .commit
                    }
                }
            } catch let error as DatabaseError {
                var reason = error.message ?? "\(error)"
                if let sql = error.sql { reason += " in: \(sql.split(separator: "\n").joined(separator: " "))" }
                throw StoreError.migrationFailed(file: migration.file, reason: reason, code: error.extendedResultCode.rawValue)
            }
        }
        return pending
    }
}
