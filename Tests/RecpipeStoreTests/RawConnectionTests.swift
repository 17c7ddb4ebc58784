import Foundation
import GRDB
import RecpipeTestSupport
import Testing
@testable import RecpipeStore

@Suite(.tags(.medium)) struct RawConnectionTests {
    /// The closed loop's new pairs: each once, by their exact bytes, the boundary between
    /// user and item kept ("ab" + "c" is not "a" + "bc"), those seen elsewhere dropped.
    @Test func newPairsAreDistinctByTheirBytesAndDropThoseSeenElsewhere() {
        var pairs = IngestBatches.NewPairs()
        func bytes(_ text: String, _ body: (UnsafeBufferPointer<UInt8>) -> Void) {
            var copy = text
            copy.withUTF8 { body($0) }
        }
        func add(_ user: String, _ item: String, seen: Bool = false) {
            bytes(user) { u in bytes(item) { i in if seen { pairs.markSeen(u, i) } else { pairs.insert(u, i) } } }
        }
        add("ab", "c"); add("a", "bc"); add("ab", "c"); add("\u{e9}", "x"); add("e\u{301}", "x"); add("u", "")
        add("a", "bc", seen: true); add("zz", "c", seen: true)
        var found: [String] = []
        pairs.forEachUnseen { found.append("\($0)|\($1)") }
        #expect(found == ["ab|c", "\u{e9}|x", "e\u{301}|x", "u|"])
    }

    /// A shard file's rows are copied into the database's table by `score --merge`: its
    /// columns, keys and types must be the database's.
    @Test func shardFileRowsHaveTheDatabasesLayout() throws {
        let directory = scratchDirectory("shardfile")
        let store = try Store(path: directory + "/db.sqlite", logger: quietLogger)
        let file = try ShardFile.create(at: directory + "/shard.sqlite", for: store)
        func layout(_ connection: RawConnection, _ schema: String) throws -> [String] {
            var columns: [String] = []
            try connection.forEachRow("SELECT name, type, \"notnull\", pk FROM pragma_table_info('recommendation_rows', '\(schema)')") { row in
                columns.append("\(row.string(0)) \(row.string(1)) \(row.int(2)) \(row.int(3))")
            }
            return columns
        }
        let database = try store.bulkConnection()
        #expect(try layout(file, "main") == (try layout(database, "main")))
        #expect(try layout(file, "main").count == 7)
        #expect(try ShardFile.info(attachedAs: "main", on: file) == nil)
        let info = ShardFile.Info(modelID: 7, k: 10, shard: 1, shards: 2, firstUser: 100, endUser: 200, rows: 1000, batchUsers: 100)
        try ShardFile.finish(file, info)
        #expect(try ShardFile.info(attachedAs: "main", on: file) == info)
        // Creating it again replaces the file: no info, no rows.
        let again = try ShardFile.create(at: directory + "/shard.sqlite", for: store)
        #expect(try ShardFile.info(attachedAs: "main", on: again) == nil)
    }

    @Test func shardSchemaIsTheFileInTheRepository() throws {
        let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../migrations/shard").standardized
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".sql") }.sorted()
        #expect(embeddedShardSchemaFiles.map(\.name) == files)
        #expect(!files.isEmpty)
    }

    /// Values are read with their length: a zero byte inside text is kept, a BLOB is its own
    /// bytes, NULL is nil; bound bytes go in unchanged.
    @Test func bytesKeepZeroBytesAndTypes() throws {
        let path = scratchDirectory("raw") + "/x.sqlite"
        let connection = try RawConnection(path: path, mode: .create)
        try connection.execute("CREATE TABLE t (a, b, c, d)")
        let key: [UInt8] = [0x61, 0x00, 0x62]
        try key.withUnsafeBufferPointer { bytes in
            let statement = try connection.prepare("INSERT INTO t VALUES (?, ?, ?, ?)")
            var row = statement.binder()
            row.bindText(bytes)
            row.bind(2.5)
            row.bind(nil as Int64?)
            row.bind(Int64(-3))
            try statement.execute()
        }
        try connection.execute("INSERT INTO t VALUES (x'00ff', 1, 'é', NULL)")
        var rows: [[String]] = []
        try connection.forEachRow("SELECT a, b, c, d FROM t ORDER BY rowid") { row in
            rows.append((0..<4).map { column in
                guard let bytes = row.bytes(column) else { return "nil" }
                return "\(row.type(column)):" + bytes.map { String($0, radix: 16) }.joined(separator: ",")
            })
        }
        #expect(rows == [["text:61,0,62", "real:32,2e,35", "nil", "integer:2d,33"],
                         ["blob:0,ff", "integer:31", "text:c3,a9", "nil"]])
        #expect(try connection.run("SELECT count(*) FROM t") == .integer(2))
        #expect(throws: StoreError.self) { try connection.execute("INSERT INTO missing VALUES (1)") }
    }

    @Test func bulkInsertWritesEveryRowAcrossChunks() throws {
        let path = scratchDirectory("raw") + "/x.sqlite"
        let connection = try RawConnection(path: path, mode: .create)
        try connection.execute("CREATE TABLE t (a INTEGER, b TEXT)")
        for count in [0, 1, 31, 32, 33, 100] {
            try connection.execute("DELETE FROM t")
            try connection.inTransaction {
                try connection.insert(into: "t", columns: ["a", "b"], count: count, chunk: 32) { row, k in
                    row.bind(k)
                    row.bind("v\(k)")
                }
            }
            var seen: [Int] = []
            try connection.forEachRow("SELECT a, b FROM t ORDER BY a") { row in
                #expect(row.string(1) == "v\(row.int(0))")
                seen.append(row.int(0))
            }
            #expect(seen == Array(0..<count), "count \(count)")
        }
    }

    /// A read-only source cannot be written and a missing one is not created.
    @Test func readOnlyModeNeitherWritesNorCreates() throws {
        let directory = scratchDirectory("raw")
        #expect(throws: StoreError.self) { try RawConnection(path: directory + "/missing.sqlite", mode: .readOnly) }
        #expect(!FileManager.default.fileExists(atPath: directory + "/missing.sqlite"))
        try RawConnection(path: directory + "/x.sqlite", mode: .create).execute("CREATE TABLE t (a)")
        let source = try RawConnection(path: directory + "/x.sqlite", mode: .readOnly)
        #expect(throws: StoreError.self) { try source.execute("INSERT INTO t VALUES (1)") }
    }

    /// Keys bound from `EncodedKeys` and sources from their static text are stored as the
    /// strings themselves, byte for byte (empty, non-ASCII and NUL-free keys alike).
    @Test func encodedKeysAndSourcesAreStoredAsTheirText() throws {
        let directory = scratchDirectory("encodedkeys")
        let store = try Store(path: directory + "/db.sqlite", logger: quietLogger)
        let keys = ["u1", "", "ümlaut", "a much longer key than fits inline in a small string", "caf\u{00E9}", "cafe\u{0301}"]
        let encoded = EncodedKeys(keys)
        #expect(encoded.count == keys.count)
        let connection = try store.bulkConnection()
        for source in LiveLists.Source.allCases {
            #expect("\(source.text)" == source.rawValue)
        }
        try encoded.withBytes { bytes in
            try connection.inTransaction {
                try LiveLists.write(run: 1, count: keys.count * LiveLists.Source.allCases.count, source: .fallbackItem, on: connection) { n in
                    let k = n % keys.count
                    return LiveLists.WrittenRow(user: bytes[k], rank: n + 1, item: bytes[(k + 1) % keys.count], score: Double(n),
                                                because: k % 2 == 0 ? bytes[k] : nil)
                }
            }
        }
        let rows = try store.queue.read { db in
            try Row.fetchAll(db, sql: "SELECT user_key, rank, item_key, source, because_item_key FROM recommendation_rows ORDER BY rank")
        }
        #expect(rows.count == keys.count * LiveLists.Source.allCases.count)
        for (n, row) in rows.enumerated() {
            let k = n % keys.count
            #expect(row["user_key"] as String == keys[k])
            #expect(row["item_key"] as String == keys[(k + 1) % keys.count])
            #expect(row["source"] as String == "fallback-item")
            #expect(row["because_item_key"] as String? == (k % 2 == 0 ? keys[k] : nil))
        }
    }
}
