import Foundation

/// Errors of the store: opening databases and migrating them.
public enum StoreError: Error, LocalizedError, Equatable {
    case cannotOpen(path: String, reason: String)
    case migrationChanged(file: String, recorded: String, shipped: String)
    case migrationFailed(file: String, reason: String)
    case schemaTooNew(path: String, version: Int, known: Int)
    case unknownAppliedMigration(path: String, version: Int, name: String)
    case badMigrationName(String)
    case statementFailed(sql: String, reason: String)

    public var errorDescription: String? {
        switch self {
        case let .cannotOpen(path, reason):
            return "\(path): cannot open database: \(reason)"
        case let .migrationChanged(file, recorded, shipped):
            return "\(file): migration was applied with checksum \(recorded.prefix(12)) but this recpipe ships checksum \(shipped.prefix(12)); shipped migrations must never be edited (add a new one instead)"
        case let .migrationFailed(file, reason):
            return "\(file): migration failed, database left at the previous version: \(reason)"
        case let .schemaTooNew(path, version, known):
            return "\(path): database schema is at version \(version) but this recpipe knows up to \(known); upgrade recpipe"
        case let .unknownAppliedMigration(path, version, name):
            return "\(path): database has migration \(version) (\(name)) that this recpipe does not ship"
        case let .statementFailed(sql, reason):
            return "SQL failed: \(reason) in: \(sql.split(separator: "\n").joined(separator: " "))"
        case let .badMigrationName(name):
            return "\(name): migration files must be named NNNN_name.sql"
        }
    }
}
