import Foundation
import GRDB
import Logging
import RecpipeStore
import RecpipeTestSupport
import Testing

/// A small database with an EASE model published and its top-10 lists live, built with the
/// real CLI in a fresh directory.
func publishedDatabase() throws -> (dir: String, db: String) {
    let dir = scratchDirectory()
    let steps: [[String]] = [
        ["synth", "--out", "events.csv", "--users", "300", "--items", "200", "--interactions", "8000", "--ratings"],
        ["ingest", "--db", "recs.sqlite", "events.csv"],
        ["clean", "--db", "recs.sqlite", "--heldout-users", "30"],
        ["train", "--db", "recs.sqlite", "--model", "ease", "--lambda", "100"],
        ["score", "--db", "recs.sqlite", "--model", "ease", "--k", "10"],
    ]
    for step in steps { try recpipeSucceeding(step, in: dir) }
    return (dir, dir + "/recs.sqlite")
}

struct CLIFailure: Error, CustomStringConvertible {
    var command: [String]
    var result: Result
    var description: String { "recpipe \(command.joined(separator: " ")) exited \(result.status): \(result.stderr)" }
}

/// Runs the CLI with --quiet; throws unless it exits 0.
func recpipeSucceeding(_ arguments: [String], in dir: String) throws {
    let result = try recpipe(arguments + ["--quiet"], in: dir)
    guard result.status == 0 else { throw CLIFailure(command: arguments, result: result) }
}

/// A file's size in bytes, 0 when it is not there.
func fileSize(_ path: String) -> Int { (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0 }

/// The live lists as one text per user (its items in rank order), and what pragma
/// integrity_check says.
func liveLists(_ db: String) throws -> [String: String] {
    let queue = try DatabaseQueue(path: db)
    return try queue.read { db in
        var lists: [String: String] = [:]
        for row in try Row.fetchAll(db, sql: "SELECT user_key, group_concat(item_key, ' ') AS items FROM (SELECT * FROM recommendations ORDER BY user_key, rank) GROUP BY user_key") {
            lists[row["user_key"]] = row["items"]
        }
        return lists
    }
}

/// What pragma integrity_check says: "ok", or its problems joined. SQLite 3.40.0 to 3.41.0
/// report "NULL value in T.C" for NOT NULL columns of WITHOUT ROWID tables whose primary key
/// is not their leading columns (augmented_interactions) when there is none: such a line
/// counts only if a query finds the NULL.
func integrity(_ path: String) throws -> String {
    try DatabaseQueue(path: path).read { db in
        let problems = try String.fetchAll(db, sql: "PRAGMA integrity_check").filter { line in
            guard let match = line.wholeMatch(of: /NULL value in (\w+)\.(\w+)/) else { return line != "ok" }
            return try Int.fetchOne(db, sql: "SELECT count(*) FROM \(match.1) WHERE \(match.2) IS NULL") != 0
        }
        return problems.isEmpty ? "ok" : problems.prefix(3).joined(separator: "; ")
    }
}

/// Runs a shell command; returns its exit status.
func recpipeShell(_ command: String) throws -> Int32 {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/sh")
    process.arguments = ["-c", command + " 2>/dev/null"]
    try process.run()
    process.waitUntilExit()
    return process.terminationStatus
}
