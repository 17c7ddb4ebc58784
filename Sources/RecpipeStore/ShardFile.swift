import Foundation
import GRDB

/// A scoring shard file: one shard's lists, written whole by one `score --shard` process and
/// published by `score --merge`. Its schema is `migrations/shard/*.sql`.
public enum ShardFile {
    /// What a complete shard file says about itself (its `shard_info` row, written last).
    public struct Info: Sendable, Equatable {
        public var modelID: Int64
        public var k: Int
        public var shard: Int
        public var shards: Int
        public var firstUser: Int
        public var endUser: Int
        public var rows: Int
        public var batchUsers: Int

        public init(modelID: Int64, k: Int, shard: Int, shards: Int, firstUser: Int, endUser: Int, rows: Int, batchUsers: Int) {
            self.modelID = modelID
            self.k = k
            self.shard = shard
            self.shards = shards
            self.firstUser = firstUser
            self.endUser = endUser
            self.rows = rows
            self.batchUsers = batchUsers
        }
    }

    /// Replaces whatever is at `path` (and its -wal, -shm, -journal) with an empty shard file
    /// of `store`: its recommendation_rows defined as the database defines it.
    public static func create(at path: String, for store: Store) throws -> RawConnection {
        let definition = try store.queue.read { db in
            try String.fetchOne(db, sql: "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?",
                                arguments: [TableName.recommendationRows.rawValue])
        }
        guard let definition else {
            throw StoreError.statementFailed(path: store.path, sql: "the definition of \(TableName.recommendationRows)",
                                             reason: "no such table", code: 0)
        }
        Store.removeFiles(of: path)
        let file = try RawConnection(path: path, mode: .create)
        try file.execute(definition)
        for schema in embeddedShardSchemaFiles { try file.execute(schema.sql) }
        return file
    }

    /// Marks the file complete.
    public static func finish(_ file: RawConnection, _ info: Info) throws {
        try file.run(
            """
            INSERT INTO shard_info (model_id, k, shard, shards, first_user, end_user, rows, batch_users, created_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
            """,
            [.integer(info.modelID), .integer(Int64(info.k)), .integer(Int64(info.shard)), .integer(Int64(info.shards)),
             .integer(Int64(info.firstUser)), .integer(Int64(info.endUser)), .integer(Int64(info.rows)),
             .integer(Int64(info.batchUsers)), .text(Clock.isoNow())])
    }

    /// The info of the shard file attached to `connection` as `schema`; nil when it has none
    /// (incomplete). Throws when the file is not a shard file.
    public static func info(attachedAs schema: String, on connection: RawConnection) throws -> Info? {
        var info: Info?
        try connection.forEachRow("SELECT model_id, k, shard, shards, first_user, end_user, rows, batch_users FROM \(schema).shard_info") { r in
            info = Info(modelID: r.int64(0), k: r.int(1), shard: r.int(2), shards: r.int(3), firstUser: r.int(4),
                        endUser: r.int(5), rows: r.int(6), batchUsers: r.int(7))
        }
        return info
    }

    /// Runs `body` with the shard file at `path` attached to `connection` as `shard`,
    /// detached afterwards.
    public static func attached<T>(_ path: String, on connection: RawConnection, _ body: (_ schema: String) throws -> T) throws -> T {
        try connection.run("ATTACH DATABASE ? AS shard", [.text(path)])
        defer { try? connection.execute("DETACH DATABASE shard") }
        return try body("shard")
    }
}
