import Foundation
import GRDB
import Logging
import RecpipeStore
import RecpipeTestSupport
@testable import RecpipeStages

/// A fresh directory for one test's files.
final class Scratch {
    let dir: String

    init() {
        dir = scratchDirectory()
    }

    deinit { try? FileManager.default.removeItem(atPath: dir) }

    func path(_ name: String) -> String { dir + "/" + name }

    @discardableResult
    func write(_ name: String, _ text: String) -> String {
        let p = path(name)
        FileManager.default.createFile(atPath: p, contents: Data(text.utf8))
        return p
    }

    @discardableResult
    func write(_ name: String, bytes: [UInt8]) -> String {
        let p = path(name)
        FileManager.default.createFile(atPath: p, contents: Data(bytes))
        return p
    }

    /// A gzip-compressed file with the given text.
    @discardableResult
    func writeGzip(_ name: String, _ text: String) throws -> String {
        let p = path(name)
        let file = try OutputFile(path: p, gzip: true)
        try file.write(Array(text.utf8))
        try file.close()
        return p
    }

    func store() throws -> Store { try Store(path: path("recpipe.sqlite"), logger: quietLogger) }
}

struct StoredRawRow: Equatable, CustomStringConvertible {
    var line: Int
    var user: String
    var item: String
    var rating: Double?
    var ts: Int64?
    var description: String { "\(line):\(user),\(item),\(rating.map { "\($0)" } ?? "-"),\(ts.map { "\($0)" } ?? "-")" }
}

func rawRows(_ store: Store) throws -> [StoredRawRow] {
    try store.queue.read { db throws in
        try Row.fetchAll(db, sql: "SELECT line, user_key, item_key, rating, ts FROM raw_interactions ORDER BY rowid").map {
            StoredRawRow(line: $0["line"], user: $0["user_key"], item: $0["item_key"], rating: $0["rating"], ts: $0["ts"])
        }
    }
}

func rejects(_ store: Store) throws -> [(line: Int, reason: String)] {
    try store.queue.read { db throws in
        try Row.fetchAll(db, sql: "SELECT line, reason FROM ingest_rejects ORDER BY line").map { ($0["line"], $0["reason"]) }
    }
}

func count(_ store: Store, _ table: String) throws -> Int {
    try store.queue.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM \(table)")! }
}

@discardableResult
func ingest(_ store: Store, _ sources: [String], format: InputFormat? = nil, columns: SourceColumns = SourceColumns(),
            query: String? = nil, maxRejected: Double = 0.10, timeUnit: TimeUnit = .s,
            strict: Bool = true, retryRefused: Bool = false, allowEmpty: Bool = false) throws -> StageReport {
    var config = IngestStage.Config(sources: sources, format: format, columns: columns, query: query, maxRejectedShare: maxRejected)
    config.timeUnit = timeUnit
    config.strict = strict
    config.retryRefused = retryRefused
    config.allowEmpty = allowEmpty
    let stage = try IngestStage(config: config)
    return try StageRunner.run(stage, store: store, logger: quietLogger)
}

@discardableResult
func clean(_ store: Store, _ configure: (inout CleanStage.Config) -> Void = { _ in }) throws -> StageReport {
    var config = CleanStage.Config()
    configure(&config)
    return try StageRunner.run(try CleanStage(config: config), store: store, logger: quietLogger)
}

/// The path of the team's shared data when it exists beside the repository.
func sharedPath(_ relative: String) -> String? {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../../shared")
        .standardized
    let path = root.appendingPathComponent(relative).path
    return FileManager.default.fileExists(atPath: path) ? path : nil
}
