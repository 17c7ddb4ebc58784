import Foundation
import GRDB
import RecpipeTestSupport
import Testing

/// The built `recpipe` binary, next to the test bundle.
let recpipeBinary: String = {
    var dir = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
    for _ in 0..<3 {
        let candidate = dir.appendingPathComponent("recpipe").path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        dir = dir.deletingLastPathComponent()
    }
    return URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../.build/debug/recpipe")
        .standardized.path
}()

struct Result {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs the CLI to completion.
@discardableResult
func recpipe(_ arguments: [String], in dir: String) throws -> Result {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: recpipeBinary)
    process.arguments = arguments
    process.currentDirectoryURL = URL(fileURLWithPath: dir)
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    let errData = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return Result(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                  stderr: String(decoding: errData, as: UTF8.self))
}


@Suite(.serialized, .tags(.large)) struct CLITests {
    @Test func helpAndUsageErrors() throws {
        let dir = scratchDirectory()
        let help = try recpipe(["--help"], in: dir)
        #expect(help.status == 0)
        for command in ["migrate", "ingest", "clean", "augment", "train", "score", "recommend", "synth", "bench"] { #expect(help.stdout.contains(command)) }
        #expect(try recpipe(["ingest", "--db", "x.sqlite"], in: dir).status == 64)
        #expect(try recpipe(["frobnicate"], in: dir).status == 64)
        #expect(try recpipe(["clean", "--db", "x.sqlite", "--min-rating", "lots"], in: dir).status == 64)
    }

    /// Every option of the stage commands is explained in --help, defaults shown.
    @Test func stageCommandsExplainEveryOption() throws {
        let dir = scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let expected = ["train": ["--model <model>", "default: multvae)", "--publish-margin"],
                        "score": ["--k <k>", "(default: 100)", "the champion", "--champion-metric", "(default: ndcg@100)"],
                        "evaluate": ["--part <part>", "default: test"],
                        "augment": ["--epochs <epochs>", "default:"],
                        "ingest": ["--format <format>"], "clean": ["--split <split>"]]
        for (command, fragments) in expected {
            let help = try recpipe([command, "--help"], in: dir)
            #expect(help.status == 0)
            for fragment in fragments { #expect(help.stdout.contains(fragment), "\(command) --help lacks \(fragment)") }
            let lines = help.stdout.components(separatedBy: "\n")
            let options = lines.drop { $0 != "OPTIONS:" }.dropFirst()
            #expect(options.count > 3)
            for (index, line) in zip(options.indices, options) where line.hasPrefix("  -") {
                // The option's words, then its explanation on the same line or the next.
                let described = line.range(of: #"^  (-\w, )?--[\w-]+( <[^>]+>)?( \.\.\.)?\s{2,}\S"#, options: .regularExpression) != nil
                    || (index + 1 < lines.count && lines[index + 1].hasPrefix(String(repeating: " ", count: 10))
                        && !lines[index + 1].trimmingCharacters(in: .whitespaces).isEmpty)
                #expect(described, "\(command) --help: no explanation for '\(line)'")
            }
        }
    }

    @Test func endToEndOnSyntheticData() throws {
        let dir = scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let synth = try recpipe(["synth", "--out", "events.csv.gz", "--users", "500", "--items", "300",
                                 "--interactions", "20000", "--ratings"], in: dir)
        #expect(synth.status == 0, "\(synth.stderr)")
        let migrate = try recpipe(["migrate", "--db", "recs.sqlite"], in: dir)
        #expect(migrate.status == 0)
        #expect(migrate.stdout.contains("0001_foundation.sql"))
        let ingest = try recpipe(["ingest", "--db", "recs.sqlite", "events.csv.gz"], in: dir)
        #expect(ingest.status == 0, "\(ingest.stderr)")
        #expect(ingest.stdout.contains("rows stored, 0 rejected"))
        // Logs: one line per event on stderr, none on stdout.
        #expect(ingest.stderr.split(separator: "\n").allSatisfy { $0.contains(" info ") })
        #expect(!ingest.stdout.contains(" info "))
        let again = try recpipe(["ingest", "--db", "recs.sqlite", "events.csv.gz"], in: dir)
        #expect(again.status == 0 && again.stdout.contains("already ingested"))
        let clean = try recpipe(["clean", "--db", "recs.sqlite", "--heldout-users", "50"], in: dir)
        #expect(clean.status == 0, "\(clean.stderr)")
        #expect(clean.stdout.contains("strong split"))
        let db = try DatabaseQueue(path: dir + "/recs.sqlite")
        try db.read { db throws in
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM raw_interactions")! > 15_000)
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM users WHERE role = 'test'") == 50)
            #expect(try String.fetchAll(db, sql: "SELECT status FROM stage_runs ORDER BY run_id")
                    == ["succeeded", "succeeded", "succeeded"])
        }
        let train = try recpipe(["train", "--db", "recs.sqlite", "--epochs", "3", "--hidden", "32", "--latent", "8"], in: dir)
        #expect(train.status == 0, "\(train.stderr)")
        #expect(train.stdout.contains("published"))
        #expect(train.stderr.split(separator: "\n").filter { $0.contains("epoch finished") }.count == 3)
        try db.read { db throws in
            #expect(try String.fetchOne(db, sql: "SELECT kind || ':' || status FROM models") == "multvae:published")
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM training_log") == 3)
        }
        #expect(try recpipe(["train", "--db", "recs.sqlite", "--patience", "soon"], in: dir).status == 64)
        let score = try recpipe(["score", "--db", "recs.sqlite", "--k", "20"], in: dir)
        #expect(score.status == 0, "\(score.stderr)")
        let user = try db.read { try String.fetchOne($0, sql: "SELECT user_key FROM users LIMIT 1")! }
        let list = try recpipe(["recommend", "--db", "recs.sqlite", "--user", user, "--k", "5"], in: dir)
        #expect(list.status == 0 && list.stdout.split(separator: "\n").count == 5)
        let json = try recpipe(["recommend", "--db", "recs.sqlite", "--user", user, "--json"], in: dir)
        let decoded = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
        #expect((decoded?["items"] as? [Any])?.count == 10 && decoded?["user"] as? String == user)
        #expect((decoded?["items"] as? [[String: Any]])?.allSatisfy { $0["because"] is String && $0["source"] as? String == "model" } == true)
        // Scored without --model: the champion, the only published model here, and why.
        let live = decoded?["live"] as? [String: Any]
        #expect(live?["kind"] as? String == "multvae" && (live?["reason"] as? String)?.contains("nothing live yet") == true,
                "\(json.stdout)")
        // A key without a list gets popular items, labelled so.
        let nobody = try recpipe(["recommend", "--db", "recs.sqlite", "--user", "nobody", "--k", "3"], in: dir)
        #expect(nobody.status == 0 && nobody.stdout.split(separator: "\n").count == 3 && nobody.stdout.contains("\tfallback-popular"), "\(nobody.stdout)")

        // A baseline is trained, tuned on validation, scored and evaluated like the VAE.
        let ease = try recpipe(["train", "--db", "recs.sqlite", "--model", "ease", "--lambda", "20", "200"], in: dir)
        #expect(ease.status == 0, "\(ease.stderr)")
        #expect(ease.stdout.contains("chosen from 2 settings") && ease.stdout.contains("published"), "\(ease.stdout)")
        #expect(ease.stderr.split(separator: "\n").filter { $0.contains("setting tried") }.count == 2)
        let easeID = try db.read { try Int64.fetchOne($0, sql: "SELECT model_id FROM models WHERE kind = 'ease'")! }
        let byID = try recpipe(["score", "--db", "recs.sqlite", "--k", "5", "--model", "\(easeID)"], in: dir)
        #expect(byID.status == 0, "\(byID.stderr)")
        try db.read { db throws in
            #expect(try Int64.fetchAll(db, sql: "SELECT DISTINCT model_id FROM recommendations") == [easeID])
        }
        #expect(try recpipe(["score", "--db", "recs.sqlite", "--model", "bogus"], in: dir).status == 64)
        #expect(try recpipe(["score", "--db", "recs.sqlite", "--champion-metric", "ndcg@7"], in: dir).status == 64)
        #expect(try recpipe(["score", "--db", "recs.sqlite", "--publish-margin", "2"], in: dir).status == 64)
        #expect(try recpipe(["score", "--db", "recs.sqlite", "--model", "ials"], in: dir).status == 65)
        #expect(try recpipe(["train", "--db", "recs.sqlite", "--model", "ease", "--lambda", "-1"], in: dir).status == 64)

        // Augmentation, and the VAE trained with it, compared in evaluate.
        let augment = try recpipe(["augment", "--db", "recs.sqlite", "--epochs", "3", "--generator-hidden", "32",
                                   "--discriminator-hidden", "16", "--batch-size", "64", "--long-tail"], in: dir)
        #expect(augment.status == 0, "\(augment.stderr)")
        #expect(augment.stdout.contains("synthetic interactions for") && augment.stdout.contains("100.0% long-tail items"),
                "\(augment.stdout)")
        #expect(augment.stderr.split(separator: "\n").filter { $0.contains("epoch finished") }.count == 3)
        #expect(try recpipe(["augment", "--db", "recs.sqlite", "--zr-ratio", "2"], in: dir).status == 64)
        let augmented = try recpipe(["train", "--db", "recs.sqlite", "--epochs", "3", "--hidden", "32", "--latent", "8",
                                     "--augmented", "--augmented-weight", "0.3", "--no-publish"], in: dir)
        #expect(augmented.status == 0, "\(augmented.stderr)")
        let evaluate = try recpipe(["evaluate", "--db", "recs.sqlite"], in: dir)
        #expect(evaluate.status == 0, "\(evaluate.stderr)")
        for model in ["popularity", "ease", "multvae", "multvae+augmented", "cfgan"] {
            #expect(evaluate.stdout.contains("\n" + model + " "), "\(model)")
        }
        #expect(evaluate.stdout.contains("augmentation ablation (multvae with vs without"))
        #expect(evaluate.stdout.contains("not evaluated (no model trained on this split): edlae, itemknn, ials"))
        #expect(evaluate.stderr.contains("baselines missing"))
    }

    @Test func benchSuitePrintsOneRowPerBenchmark() throws {
        let dir = scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let result = try recpipe(["bench", "suite", "--scale", "0.002", "--only", "clean", "train", "ease", "score", "publish", "--json", "--quiet"],
                                 in: dir)
        #expect(result.status == 0, "\(result.stderr)")
        let rows = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [[String: Any]] ?? []
        #expect(rows.map { $0["stage"] as? String } == ["clean (strong split)", "train (Mult-VAE epoch)", "EASE fit (160 items)", "score (top-100)",
                                                      "score (write and publish)"])
        for row in rows {
            #expect((row["seconds"] as? Double ?? 0) > 0 && (row["rows"] as? Int ?? 0) > 0)
            // Clean has no reference to measure against; the others do.
            if row["stage"] as? String != "clean (strong split)" {
                #expect((row["referenceValue"] as? Double ?? 0) > 0 && (row["ratio"] as? Double ?? 0) > 0)
            }
            #expect((row["peakMB"] as? Double ?? 0) > 1, "the child's own peak memory")
            // Where it ran: the CPU, its vector family and OpenBLAS's kernels.
            let machine = row["machine"] as? [String: Any]
            #expect(["AVX-512", "AVX2", "other"].contains(machine?["family"] as? String ?? "") && !(machine?["openblasCore"] as? String ?? "").isEmpty)
        }
        #expect(try recpipe(["bench", "suite", "--only", "everything"], in: dir).status == 64)
    }

    @Test func badDataExitsWithDataErrorAndStoresNothing() throws {
        let dir = scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "user,item,rating\na,b,1\nc,d,oops\n".write(toFile: dir + "/bad.csv", atomically: true, encoding: .utf8)
        let result = try recpipe(["ingest", "--db", "recs.sqlite", "--strict", "bad.csv"], in: dir)
        #expect(result.status == 65)
        let errors = result.stderr.split(separator: "\n").filter { $0.contains(" error ") }
        #expect(errors.contains { $0.contains("bad.csv: 1 of 2 rows rejected") })
        let missing = try recpipe(["ingest", "--db", "recs.sqlite", "nowhere.csv"], in: dir)
        #expect(missing.status == 66)
        #expect(missing.stderr.contains("nowhere.csv: cannot read"))
        try DatabaseQueue(path: dir + "/recs.sqlite").read { db throws in
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM raw_interactions") == 0)
            // The refusal is recorded, with its reject.
            #expect(try String.fetchAll(db, sql: "SELECT status FROM ingest_batches") == ["refused"])
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM ingest_rejects") == 1)
        }
    }

    @Test func killedIngestLeavesTheDatabaseConsistentAndARerunFinishes() throws {
        let dir = scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try recpipe(["synth", "--out", "small.csv", "--users", "200", "--items", "100", "--interactions", "4000"], in: dir)
        try recpipe(["synth", "--out", "big.csv", "--users", "40000", "--items", "5000", "--interactions", "1500000",
                     "--seed", "9"], in: dir)
        #expect(try recpipe(["ingest", "--db", "recs.sqlite", "small.csv"], in: dir).status == 0)
        // Kill the big ingest part-way through its transaction.
        let process = Process()
        process.executableURL = URL(fileURLWithPath: recpipeBinary)
        process.arguments = ["ingest", "--quiet", "--db", "recs.sqlite", "big.csv"]
        process.currentDirectoryURL = URL(fileURLWithPath: dir)
        try process.run()
        let db = try DatabaseQueue(path: dir + "/recs.sqlite")
        // Wait until the write transaction has started (the stage run row is committed first).
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            if try db.read({ try Int.fetchOne($0, sql: "SELECT count(*) FROM stage_runs") }) == 2 { break }
            usleep(20_000)
        }
        usleep(300_000)
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        #expect(process.terminationReason == .uncaughtSignal, "the ingest finished before it could be killed")
        try db.read { db throws in
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM ingest_batches") == 1)
            #expect(try Int.fetchOne(db, sql: "SELECT sum(rows_accepted) FROM ingest_batches")
                    == (try Int.fetchOne(db, sql: "SELECT count(*) FROM raw_interactions")))
            #expect(try String.fetchOne(db, sql: "PRAGMA integrity_check") == "ok")
        }
        let rerun = try recpipe(["ingest", "--db", "recs.sqlite", "small.csv", "big.csv"], in: dir)
        #expect(rerun.status == 0, "\(rerun.stderr)")
        #expect(rerun.stdout.contains("small.csv: already ingested"))
        try db.read { db throws in
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM ingest_batches") == 2)
            #expect(try Int.fetchOne(db, sql: "SELECT sum(rows_accepted) FROM ingest_batches")
                    == (try Int.fetchOne(db, sql: "SELECT count(*) FROM raw_interactions")))
        }
    }
}
