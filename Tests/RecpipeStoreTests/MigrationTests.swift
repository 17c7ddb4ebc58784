import Foundation
import GRDB
import Logging
import RecpipeTestSupport
import Testing
@testable import RecpipeStore

func temporaryPath(_ name: String = "db.sqlite") -> String { scratchDirectory() + "/" + name }

@Suite(.tags(.medium)) struct MigrationTests {
    @Test func shippedMigrationsAreTheFilesInTheRepository() throws {
        let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../migrations").standardized
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".sql") }.sorted()
        let shipped = try Migration.shipped()
        #expect(shipped.map(\.file) == files)
        for migration in shipped {
            let text = try String(contentsOf: directory.appendingPathComponent(migration.file), encoding: .utf8)
            #expect(migration.sql == text, "\(migration.file) differs from the embedded copy")
        }
        #expect(shipped.map(\.version) == Array(1...shipped.count))
    }

    @Test func freshDatabaseIsMigratedAndConfigured() throws {
        let path = temporaryPath()
        let store = try Store(path: path, logger: quietLogger)
        try store.queue.read { db throws in
            let versions = try Int.fetchAll(db, sql: "SELECT version FROM schema_migrations ORDER BY version")
            #expect(versions == (try Migration.shipped()).map(\.version))
            #expect(try String.fetchOne(db, sql: "PRAGMA journal_mode") == "wal")
            #expect(try Int.fetchOne(db, sql: "PRAGMA foreign_keys") == 1)
            #expect(try Int.fetchOne(db, sql: "PRAGMA busy_timeout") == Int(Store.busyTimeout * 1000))
            #expect(try db.tableExists("raw_interactions"))
        }
        // Opening again applies nothing and changes nothing.
        let again = try Migrator.shipped().migrate(try Store.connect(path: path), path: path)
        #expect(again.isEmpty)
    }

    /// A new database migrated up to `version` only, as an older recpipe left it.
    func migrated(upTo version: Int) throws -> DatabaseQueue {
        let path = temporaryPath()
        let queue = try Store.connect(path: path)
        try Migrator(migrations: try Migration.shipped().filter { $0.version <= version }).migrate(queue, path: path)
        return queue
    }

    @Test func rejectReasonsMigrationKeepsTheRejectsStoredBefore() throws {
        let queue = try migrated(upTo: 12)
        try queue.write { db in
            try db.execute(sql: "INSERT INTO stage_runs (run_id, stage, status, started_at) VALUES (1, 'ingest', 'succeeded', 'x')")
            try db.execute(sql: """
                INSERT INTO ingest_batches (batch_id, run_id, source, format, content_hash, bytes, rows_read, rows_accepted,
                    rows_rejected, started_at, finished_at, seconds) VALUES (1, 1, 'a.csv', 'csv', 'h', 10, 2, 1, 1, 'x', 'x', 0)
                """)
            try db.execute(sql: "INSERT INTO ingest_rejects VALUES (1, 2, 'empty_key', 'empty user key', ',i1')")
            #expect(throws: DatabaseError.self) {
                try db.execute(sql: "INSERT INTO ingest_rejects VALUES (1, 3, 'control_character', 'x', 'y')")
            }
        }
        try Migrator.shipped().migrate(queue, path: queue.path)
        try queue.write { db in
            #expect(try String.fetchAll(db, sql: "SELECT line || ' ' || reason || ' ' || detail FROM ingest_rejects") == ["2 empty_key empty user key"])
            try db.execute(sql: "INSERT INTO ingest_rejects VALUES (1, 3, 'control_character', 'x', 'y')")
            #expect(throws: DatabaseError.self) { try db.execute(sql: "INSERT INTO ingest_rejects VALUES (1, 4, 'no_such_reason', 'x', 'y')") }
            #expect(try Bool.fetchOne(db, sql: "SELECT count(*) = 1 FROM sqlite_master WHERE name = 'ingest_rejects_batch'") == true)
            #expect(try Row.fetchAll(db, sql: "PRAGMA foreign_key_check").isEmpty)
        }
    }

    @Test func chunkedModelWeightsKeepTheWeightsStoredBefore() throws {
        let queue = try migrated(upTo: 5)
        try queue.write { db in
            try db.execute(sql: "INSERT INTO stage_runs (run_id, stage, status, started_at) VALUES (1, 'train', 'succeeded', 'x')")
            try db.execute(sql: """
                INSERT INTO models (model_id, run_id, kind, created_at, hyperparameters, data_fingerprint, items,
                    training_users, training_seconds, epochs, status)
                VALUES (1, 1, 'multvae', 'x', '{}', 'f', 2, 1, 0, 1, 'published')
                """)
            try db.execute(sql: "INSERT INTO model_weights (model_id, tensor, shape, data) VALUES (1, 'w', '[2]', x'0000803f00000040')")
        }
        try Migrator.shipped().migrate(queue, path: queue.path)
        try queue.read { db throws in
            let row = try Row.fetchOne(db, sql: "SELECT * FROM model_weights")!
            #expect(row["chunk"] as Int == 0 && row["dtype"] as String == "float32" && row["shape"] as String == "[2]")
            #expect(row["data"] as Data == Data([0, 0, 0x80, 0x3f, 0, 0, 0, 0x40]))
        }
        try queue.write { db in
            // int32 tensors and further chunks are accepted now; other types are not.
            try db.execute(sql: "INSERT INTO model_weights (model_id, tensor, chunk, shape, dtype, data) VALUES (1, 'w', 1, '[2]', 'int32', x'00')")
            #expect(throws: DatabaseError.self) {
                try db.execute(sql: "INSERT INTO model_weights (model_id, tensor, chunk, shape, dtype, data) VALUES (1, 'v', 0, '[1]', 'float64', x'00')")
            }
        }
    }

    @Test func changedMigrationIsRefused() throws {
        let path = temporaryPath()
        let original = try Migration(file: "0001_first.sql", sql: "CREATE TABLE a (x INTEGER);")
        try Migrator(migrations: [original]).migrate(try Store.connect(path: path), path: path)
        let edited = try Migration(file: "0001_first.sql", sql: "CREATE TABLE a (x INTEGER, y TEXT);")
        #expect(throws: StoreError.migrationChanged(file: "0001_first.sql", recorded: original.checksum,
                                                    shipped: edited.checksum)) {
            try Migrator(migrations: [edited]).migrate(try Store.connect(path: path), path: path)
        }
    }

    @Test func failedMigrationLeavesThePreviousVersion() throws {
        let path = temporaryPath()
        let first = try Migration(file: "0001_first.sql", sql: "CREATE TABLE a (x INTEGER);")
        let broken = try Migration(
            file: "0002_broken.sql", sql: "CREATE TABLE b (x INTEGER); INSERT INTO missing VALUES (1);")
        #expect(throws: StoreError.self) {
            try Migrator(migrations: [first, broken]).migrate(try Store.connect(path: path), path: path)
        }
        try Store.connect(path: path).read { db throws in
            #expect(try Int.fetchAll(db, sql: "SELECT version FROM schema_migrations") == [1])
            #expect(try db.tableExists("a"))
            #expect(try !db.tableExists("b"), "the failed migration's first statement must be rolled back")
        }
    }

    @Test func newerDatabaseIsRefused() throws {
        let path = temporaryPath()
        let first = try Migration(file: "0001_first.sql", sql: "CREATE TABLE a (x INTEGER);")
        let second = try Migration(file: "0002_second.sql", sql: "CREATE TABLE b (x INTEGER);")
        try Migrator(migrations: [first, second]).migrate(try Store.connect(path: path), path: path)
        #expect(throws: StoreError.schemaTooNew(path: path, version: 2, known: 1)) {
            try Migrator(migrations: [first]).migrate(try Store.connect(path: path), path: path)
        }
    }

    @Test(arguments: ["1_first.sql", "0001-first.sql", "0001_First.sql", "0001_first.txt"])
    func badMigrationNamesAreRefused(name: String) {
        #expect(throws: StoreError.badMigrationName(name)) { try Migration(file: name, sql: "") }
    }
}
