import Foundation
import GRDB

/// A serving snapshot: a small SQLite file holding a database's live lists at one moment,
/// their views and the item metadata, for shipping to the machines that serve. Written by
/// `recpipe export`: whole under a temporary name beside the output, then renamed over it,
/// so a reader of the output path finds the previous snapshot or the new one, never part of
/// one. Its schema is the database's own definitions of what it copies, and
/// `migrations/serving/*.sql`.
public enum ServingSnapshot {
    /// The views a snapshot carries, as the database defines them.
    public static let views: [TableName] = [
        "recommendations", "recommendations_with_items", "recommendations_explained", "recommended_items",
        "live_recommendation_run",
    ]

    /// What an export wrote.
    public struct Summary: Sendable, Equatable {
        public var runID: Int64
        public var modelKind: String
        public var users: Int
        public var rows: Int
        public var popularItems: Int
        public var metadataItems: Int
        public var bytes: Int
    }

    /// Writes the live lists of the database at `database` to a snapshot at `output`
    /// (replacing a snapshot there, and nothing else). Reads the database in one read
    /// transaction, so a publish at the same moment gives the old lists or the new ones;
    /// takes no lock and changes nothing in it. `now` decides which items the business
    /// rules hide from the popular list.
    public static func export(from database: String, to output: String, now: String = Clock.isoNow()) throws -> Summary {
        let store = try Store(readingAt: database)
        try OutputGuard.check(output, database: database, replaceable: .servingSnapshot)
        let popular = try LiveLists.popular(for: "", k: Int.max, now: now, in: store)
        let schemaVersion = try store.queue.read { db in try Migrator.shipped().applied(db).last?.version ?? 0 }

        let directory = URL(fileURLWithPath: output).deletingLastPathComponent().path
        guard access(directory, W_OK) == 0 else {
            throw StoreError.writeFailed(path: output, reason: "directory \(directory): \(String(cString: strerror(errno)))", errno: errno)
        }
        let prefix = "." + URL(fileURLWithPath: output).lastPathComponent + ".tmp-"
        removeAbandoned(in: directory, prefix: prefix)
        let temporary = (directory as NSString).appendingPathComponent(prefix + "\(getpid())")
        Store.removeFiles(of: temporary)
        do {
            let summary = try write(temporary, from: database, popular: popular, schemaVersion: schemaVersion, now: now)
            try durablyRename(temporary, to: output)
            return Summary(runID: summary.runID, modelKind: summary.modelKind, users: summary.users, rows: summary.rows,
                           popularItems: summary.popularItems, metadataItems: summary.metadataItems,
                           bytes: (try? FileManager.default.attributesOfItem(atPath: output)[.size] as? Int) ?? 0)
        } catch {
            Store.removeFiles(of: temporary)
            throw renamed(error, from: temporary, to: output)
        }
    }

    /// Fills a new file at `path`; the connection is closed when it returns.
    private static func write(_ path: String, from database: String, popular: [LiveLists.Item], schemaVersion: Int,
                              now: String) throws -> Summary {
        let file = try RawConnection(path: path, mode: .snapshot)
        try file.run("ATTACH DATABASE ? AS live", [.text(readOnlyURI(database))])
        defer { try? file.execute("DETACH DATABASE live") }
        var summary = Summary(runID: 0, modelKind: "", users: 0, rows: 0, popularItems: 0, metadataItems: 0, bytes: 0)
        try file.execute("BEGIN")
        do {
            guard case let .integer(run)? = try file.run("SELECT run_id FROM live.\(TableName.liveRecommendations) WHERE one = 1") else {
                throw StoreError.noLiveLists(path: database)
            }
            summary.runID = run
            for table in [TableName.recommendationRows, .liveRecommendations, .scoreRuns, .models, .itemMetadata] {
                try file.execute(try definition(of: table, type: "table", on: file))
            }
            try file.run("INSERT INTO main.\(TableName.liveRecommendations) SELECT * FROM live.\(TableName.liveRecommendations)")
            try file.run("INSERT INTO main.\(TableName.scoreRuns) SELECT * FROM live.\(TableName.scoreRuns) WHERE run_id = ?", [.integer(run)])
            try file.run("""
                INSERT INTO main.\(TableName.models) SELECT * FROM live.\(TableName.models)
                WHERE model_id IN (SELECT model_id FROM main.\(TableName.scoreRuns) UNION SELECT fallback_model_id FROM main.\(TableName.scoreRuns))
                """)
            try file.run("""
                INSERT INTO main.\(TableName.recommendationRows) SELECT * FROM live.\(TableName.recommendationRows)
                WHERE run_id = ? ORDER BY user_key, rank
                """, [.integer(run)])
            summary.rows = file.changes
            try file.run("INSERT INTO main.\(TableName.itemMetadata) SELECT * FROM live.\(TableName.itemMetadata) ORDER BY item_key")
            summary.metadataItems = file.changes
            for view in views { try file.execute(try definition(of: view, type: "view", on: file)) }

            var recorded: (rows: Int, kind: String)?
            try file.forEachRow("""
                SELECT s.rows, m.kind FROM main.\(TableName.scoreRuns) s JOIN main.\(TableName.models) m USING (model_id)
                """) { recorded = ($0.int(0), $0.string(1)) }
            guard let recorded, recorded.rows == summary.rows else {
                throw StoreError.statementFailed(path: database, sql: "copying the live lists",
                                                 reason: "run \(run) records \(recorded?.rows ?? 0) rows, \(summary.rows) copied", code: 0)
            }
            // Every list has a first item (score_runs.users counts the model's lists only).
            if case let .integer(lists)? = try file.run("SELECT count(*) FROM main.\(TableName.recommendationRows) WHERE rank = 1") {
                summary.users = Int(lists)
            }
            summary.modelKind = recorded.kind

            for schema in embeddedServingSchemaFiles { try file.execute(schema.sql) }
            try file.run("""
                INSERT INTO serving_snapshot (one, run_id, model_kind, users, rows, exported_at, source_database, schema_version)
                VALUES (1, ?, ?, ?, ?, ?, ?, ?)
                """, [.integer(run), .text(recorded.kind), .integer(Int64(summary.users)), .integer(Int64(summary.rows)),
                      .text(now), .text(database), .integer(Int64(schemaVersion))])
            let k = try file.run("SELECT k FROM main.\(TableName.scoreRuns)")
            let listLength = if case let .integer(k)? = k { Int(k) } else { 0 }
            for item in popular.prefix(listLength) {
                try file.run("INSERT INTO popular_items (rank, item_key, score) VALUES (?, ?, ?)",
                             [.integer(Int64(item.rank)), .text(item.item), .real(item.score)])
            }
            summary.popularItems = min(popular.count, listLength)
            try file.execute("COMMIT")
        } catch {
            try? file.execute("ROLLBACK")
            throw error
        }
        return summary
    }

    /// The database's definition of `name` (read in the export's transaction).
    private static func definition(of name: TableName, type: String, on file: RawConnection) throws -> String {
        guard case let .text(sql)? = try file.run("SELECT sql FROM live.sqlite_master WHERE type = ? AND name = ?",
                                                  [.text(type), .text(name.rawValue)]) else {
            throw StoreError.statementFailed(path: file.path, sql: "the definition of \(name)", reason: "no such \(type)", code: 0)
        }
        return sql
    }

    /// A URI opening `path` read only (SQLite's URI syntax: %, ? and # escaped).
    static func readOnlyURI(_ path: String) -> String {
        var escaped = ""
        for character in resolvedPath(path).unicodeScalars {
            switch character {
            case "%": escaped += "%25"
            case "?": escaped += "%3f"
            case "#": escaped += "%23"
            default: escaped.unicodeScalars.append(character)
            }
        }
        return "file:" + escaped + "?mode=ro"
    }

    /// Makes the file at `temporary` durable, read only, and the file at `output`.
    private static func durablyRename(_ temporary: String, to output: String) throws {
        func failed(_ what: String, _ path: String) -> StoreError {
            StoreError.writeFailed(path: path, reason: "\(what): \(String(cString: strerror(errno)))", errno: errno)
        }
        let descriptor = open(temporary, O_RDONLY)
        guard descriptor >= 0 else { throw failed("open", temporary) }
        defer { close(descriptor) }
        guard fsync(descriptor) == 0 else { throw failed("fsync", temporary) }
        guard fchmod(descriptor, 0o444) == 0 else { throw failed("chmod", temporary) }
        guard rename(temporary, output) == 0 else { throw failed("rename", output) }
        let directory = open(URL(fileURLWithPath: output).deletingLastPathComponent().path, O_RDONLY)
        if directory >= 0 {
            fsync(directory)
            close(directory)
        }
    }

    /// Removes the temporary files of exports that were killed (their process is gone).
    private static func removeAbandoned(in directory: String, prefix: String) {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return }
        for name in names where name.hasPrefix(prefix) {
            guard let pid = Int32(name.dropFirst(prefix.count)), pid != getpid(), kill(pid, 0) != 0, errno == ESRCH else { continue }
            Store.removeFiles(of: (directory as NSString).appendingPathComponent(name))
        }
    }

    /// An error about the temporary file, told of the output.
    private static func renamed(_ error: Error, from temporary: String, to output: String) -> Error {
        guard case let StoreError.statementFailed(path, sql, reason, code) = error, path == temporary else { return error }
        return StoreError.statementFailed(path: output, sql: sql, reason: reason, code: code)
    }

    /// Whether the file at `path` is a serving snapshot (has its `serving_snapshot` table).
    static func isSnapshot(_ path: String) -> Bool {
        var config = Configuration()
        config.readonly = true
        guard let queue = try? DatabaseQueue(path: path, configuration: config),
              let tables = try? queue.read({ try String.fetchAll($0, sql: "SELECT name FROM sqlite_master WHERE type = 'table'") })
        else { return false }
        return tables.contains("serving_snapshot") && !tables.contains("schema_migrations")
    }
}
