import Foundation
import GRDB
import Logging
import Testing
@testable import RecpipeStore

func temporaryPath(_ name: String = "db.sqlite") -> String {
    let dir = NSTemporaryDirectory() + "recpipe-test-\(UUID().uuidString)"
    try! FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir + "/" + name
}

let quiet = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }

@Suite struct MigrationTests {
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
        let store = try Store(path: path, logger: quiet)
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
