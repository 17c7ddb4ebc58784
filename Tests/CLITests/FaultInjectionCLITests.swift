import Foundation
import GRDB
import RecpipeTestSupport
import Testing

/// Faults injected into real processes on real databases: SIGKILL at random moments of
/// every writing stage, a full disk at random moments, a reader holding a transaction across
/// a whole nightly. After each fault the database is consistent (integrity_check,
/// foreign_key_check), what services read is complete and from one run, and rerunning the
/// command succeeds.
///
/// `RECPIPE_FAULT_SCALE=N` multiplies the number of faults (CI runs 1; the benchmark machine
/// can run more); `RECPIPE_FAULT_SEED` picks the moments (printed with every run).
@Suite(.serialized, .tags(.large)) struct FaultInjectionCLITests {
    static let scale = max(1, Int(ProcessInfo.processInfo.environment["RECPIPE_FAULT_SCALE"] ?? "") ?? 1)
    static let seed = UInt64(ProcessInfo.processInfo.environment["RECPIPE_FAULT_SEED"] ?? "") ?? UInt64(Date().timeIntervalSince1970)

    /// SplitMix64: the moments of the faults, reproducible from the printed seed.
    struct Moments {
        var state: UInt64
        mutating func next() -> Double {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return Double((z ^ (z >> 31)) >> 11) / Double(1 << 53)
        }
    }

    /// One writing command, what to do before each run of it, and how many kills it gets.
    struct Target {
        var name: String
        var arguments: [String]
        var kills: Int
        var prepare: (Int) throws -> Void = { _ in }
    }

    /// What services and the next run rely on; nil when it all holds, else what does not.
    static func violation(_ path: String) throws -> String? {
        let checked = try integrity(path)
        if checked != "ok" { return "integrity_check: \(checked)" }
        return try DatabaseQueue(path: path).read { db -> String? in
            let orphans = try Row.fetchAll(db, sql: "PRAGMA foreign_key_check")
            if !orphans.isEmpty { return "foreign_key_check: \(orphans.count) rows, first \(orphans[0])" }
            guard let live = try Int64.fetchOne(db, sql: "SELECT run_id FROM live_recommendations WHERE one = 1") else { return nil }
            let rows = try Int.fetchOne(db, sql: "SELECT count(*) FROM recommendation_rows WHERE run_id = ?", arguments: [live]) ?? 0
            let expected = try Int.fetchOne(db, sql: "SELECT rows FROM score_runs WHERE run_id = ?", arguments: [live]) ?? -1
            if rows == 0 || rows != expected { return "live run \(live) holds \(rows) rows, score_runs says \(expected)" }
            let runs = try Int64.fetchAll(db, sql: "SELECT DISTINCT run_id FROM recommendations")
            if runs != [live] { return "the recommendations view mixes runs \(runs)" }
            return nil
        }
    }

    /// Starts a command, kills it with SIGKILL after `delay` seconds; whether the kill
    /// interrupted it (rather than finding it finished).
    static func killed(_ arguments: [String], in dir: String, after delay: Double) throws -> Bool {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: recpipeBinary)
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: dir)
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        usleep(useconds_t(delay * 1e6))
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        return process.terminationReason == .uncaughtSignal && process.terminationStatus == SIGKILL
    }

    @Test func sigkillAtRandomMomentsOfEveryWritingStage() throws {
        let dir = scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let db = "recs.sqlite", path = dir + "/recs.sqlite"
        var moments = Moments(state: Self.seed)
        print("fault injection: seed \(Self.seed) (RECPIPE_FAULT_SEED), scale \(Self.scale)")
        try recpipeSucceeding(["synth", "--out", "events.csv", "--users", "1500", "--items", "400", "--interactions", "45000", "--ratings"], in: dir)
        try recpipeSucceeding(["ingest", "--db", db, "events.csv"], in: dir)
        let k = Self.scale
        let targets: [Target] = [
            Target(name: "ingest", arguments: ["ingest", "--db", db], kills: 6 * k) { n in
                try recpipeSucceeding(["synth", "--out", "extra-\(n).csv", "--users", "800", "--items", "400", "--interactions", "30000",
                              "--seed", "\(100 + n)"], in: dir)
            },
            Target(name: "clean", arguments: ["clean", "--db", db, "--heldout-users", "150"], kills: 6 * k),
            Target(name: "train ease", arguments: ["train", "--db", db, "--model", "ease", "--lambda", "100", "--no-gate"], kills: 6 * k),
            Target(name: "train multvae", arguments: ["train", "--db", db, "--epochs", "4", "--hidden", "64", "--latent", "16",
                                                      "--no-gate"], kills: 6 * k),
            Target(name: "augment", arguments: ["augment", "--db", db, "--epochs", "3", "--generator-hidden", "64",
                                                "--discriminator-hidden", "32"], kills: 5 * k),
            Target(name: "score", arguments: ["score", "--db", db, "--model", "ease", "--k", "20"], kills: 6 * k),
            Target(name: "merge", arguments: ["score", "--db", db, "--merge", "s0.sqlite", "s1.sqlite"], kills: 5 * k) { _ in
                for shard in 0..<2 {
                    try recpipeSucceeding(["score", "--db", db, "--model", "ease", "--k", "20", "--shard", "\(shard)/2",
                                  "--shard-out", "s\(shard).sqlite"], in: dir)
                }
            },
            Target(name: "feedback", arguments: ["feedback", "--db", db], kills: 4 * k) { n in
                // What users did after the lists went live: a new day of events.
                try recpipeSucceeding(["synth", "--out", "day-\(n).csv", "--users", "1500", "--items", "400", "--interactions", "3000",
                              "--seed", "\(500 + n)", "--ratings"], in: dir)
                try recpipeSucceeding(["ingest", "--db", db, "day-\(n).csv"], in: dir)
            },
            Target(name: "evaluate", arguments: ["evaluate", "--db", db], kills: 5 * k),
            Target(name: "prune", arguments: ["prune", "--db", db, "--keep-retired", "0"], kills: 4 * k) { _ in
                for _ in 0..<2 {
                    try recpipeSucceeding(["train", "--db", db, "--model", "ease", "--lambda", "100", "--no-gate", "--keep-retired", "50"], in: dir)
                }
            },
        ]
        var interrupted = 0, finished = 0
        var lines: [String] = []
        for (index, target) in targets.enumerated() {
            func arguments(_ n: Int) -> [String] {
                target.name == "ingest" ? target.arguments + ["extra-\(n).csv"] : target.arguments
            }
            // One whole run first: how long the command takes here.
            try target.prepare(0)
            let started = Date()
            try recpipeSucceeding(arguments(0), in: dir)
            let seconds = Date().timeIntervalSince(started)
            var kills = 0, attempts = 0
            while kills < target.kills && attempts < target.kills * 4 {
                attempts += 1
                let n = index * 1000 + attempts
                try target.prepare(n)
                let delay = seconds * (0.05 + 0.95 * moments.next())
                if try Self.killed(arguments(n), in: dir, after: delay) { kills += 1 } else { finished += 1 }
                if let problem = try Self.violation(path) {
                    Issue.record("\(target.name) killed after \(String(format: "%.3f", delay)) s (seed \(Self.seed)): \(problem)")
                    return
                }
                // The rerun takes the lock the dead process held and finishes the job.
                let rerun = try recpipe(arguments(n) + ["--quiet"], in: dir)
                if rerun.status != 0 {
                    Issue.record("\(target.name): rerun after a kill at \(String(format: "%.3f", delay)) s exited \(rerun.status): \(rerun.stderr)")
                    return
                }
                if let problem = try Self.violation(path) { Issue.record("\(target.name) rerun: \(problem)"); return }
            }
            interrupted += kills
            lines.append("\(target.name): \(kills) kills in \(attempts) attempts (a whole run \(String(format: "%.2f", seconds)) s)")
            #expect(kills >= target.kills / 2, "\(target.name): only \(kills) of \(attempts) kills landed while it ran")
        }
        print("fault injection: \(interrupted) processes killed mid-run, \(finished) had finished first; all survived")
        for line in lines { print("  " + line) }
        #expect(interrupted >= 50)
    }

    /// The disk fills at random moments of the writing stages (a small tmpfs, where mounting
    /// is permitted): each fails with 74 or fits, the database stays consistent and the live
    /// lists complete, and with space freed the rerun succeeds.
    @Test func diskFullAtRandomMoments() throws {
        guard getuid() == 0 else { print("disk full: skipped, mounting a tmpfs needs root"); return }
        let (dir, source) = try publishedDatabase()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try DatabaseQueue(path: source).writeWithoutTransaction { try $0.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)") }
        let size = fileSize(source)
        let mount = dir + "/small"
        try FileManager.default.createDirectory(atPath: mount, withIntermediateDirectories: true)
        guard try recpipeShell("mount -t tmpfs -o size=\(size / 1024 + 24 * 1024)k tmpfs '\(mount)'") == 0 else {
            print("disk full: skipped, no permission to mount a tmpfs here"); return
        }
        defer { _ = try? recpipeShell("umount '\(mount)'") }
        try FileManager.default.copyItem(atPath: source, toPath: mount + "/recs.sqlite")
        try FileManager.default.copyItem(atPath: dir + "/events.csv", toPath: mount + "/events.csv")
        let db = "small/recs.sqlite", path = mount + "/recs.sqlite"
        let commands: [[String]] = [
            ["train", "--db", db, "--model", "ease", "--lambda", "100", "--no-gate"],
            ["score", "--db", db, "--model", "ease", "--k", "50"],
            ["train", "--db", db, "--epochs", "2", "--hidden", "40", "--latent", "16", "--no-gate"],
            ["evaluate", "--db", db],
            ["clean", "--db", db, "--heldout-users", "30"],
            ["prune", "--db", db, "--keep-retired", "0"],
        ]
        var moments = Moments(state: Self.seed ^ 0xD15C)
        var full = 0, fitted = 0
        for round in 0..<(3 * Self.scale) {
            for command in commands {
                // Leave between 0 and 400 KB free: the command runs out somewhere in its writes.
                let free = try statvfsFree(mount)
                let leave = Int(400_000 * moments.next())
                let ballast = mount + "/ballast-\(round)"
                _ = try recpipeShell("fallocate -l \(max(0, free - leave)) '\(ballast)' 2>/dev/null || head -c \(max(0, free - leave)) /dev/zero > '\(ballast)'")
                let result = try recpipe(command + ["--quiet"], in: dir)
                if result.status == 74 {
                    full += 1
                    #expect(result.stderr.contains("disk full or I/O error"), "\(command): \(result.stderr)")
                } else if result.status == 0 {
                    fitted += 1
                } else {
                    Issue.record("\(command) with \(leave) bytes free exited \(result.status): \(result.stderr)")
                }
                try FileManager.default.removeItem(atPath: ballast)
                if let problem = try Self.violation(path) { Issue.record("\(command) on a full disk: \(problem)"); return }
                let rerun = try recpipe(command + ["--quiet"], in: dir)
                #expect(rerun.status == 0, "\(command) rerun with space: \(rerun.stderr)")
                if let problem = try Self.violation(path) { Issue.record("\(command) rerun: \(problem)"); return }
            }
        }
        print("disk full: \(full) commands stopped by a full disk (exit 74), \(fitted) fitted; all consistent, all reruns succeeded")
        #expect(full >= commands.count / 2, "too few commands met a full disk: \(full)")
    }

    func statvfsFree(_ path: String) throws -> Int {
        var info = statvfs()
        try #require(statvfs(path, &info) == 0, "statvfs \(path): \(String(cString: strerror(errno)))")
        return Int(info.f_bavail) * Int(info.f_frsize)
    }

    /// A service holds a read transaction through a whole nightly: every stage succeeds, the
    /// service keeps its snapshot, and once it lets go the next writer cuts the WAL back.
    @Test func aReaderHoldingATransactionAcrossAWholeNightly() throws {
        let (dir, db) = try publishedDatabase()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try recpipeSucceeding(["synth", "--out", "next.csv", "--users", "300", "--items", "200", "--interactions", "3000", "--seed", "77",
                      "--ratings"], in: dir)
        try """
            name: nightly
            database: recs.sqlite
            stages:
              ingest:   { uses: ingest, with: { sources: next.csv } }
              feedback: { uses: feedback, needs: [ingest] }
              clean:    { uses: clean, needs: [feedback], with: { heldout_users: 30 } }
              ease:     { uses: train, needs: [clean], with: { model: ease, lambda: 100, no_gate: true } }
              vae:      { uses: train, needs: [clean], with: { epochs: 3, hidden: 40, latent: 16 } }
              score:    { uses: score, needs: [ease], with: { model: ease, k: 20 } }
              evaluate: { uses: evaluate, needs: [score, vae] }
            """.write(toFile: dir + "/nightly.yaml", atomically: true, encoding: .utf8)
        func walSize() -> Int { fileSize(db + "-wal") }
        var holding = Configuration()
        holding.allowsUnsafeTransactions = true
        var reader: DatabaseQueue? = try DatabaseQueue(path: db, configuration: holding)
        let seen = try reader!.inDatabase { db -> [String] in
            try db.execute(sql: "BEGIN")
            return try String.fetchAll(db, sql: "SELECT user_key || ' ' || item_key FROM recommendations ORDER BY user_key, rank")
        }
        let night = try recpipe(["run", "nightly.yaml"], in: dir)
        #expect(night.status == 0, "\(night.stderr)")
        #expect(!night.stderr.split(separator: "\n").contains { $0.contains(" error ") }, "\(night.stderr)")
        let grown = walSize()
        #expect(grown > 0)
        #expect(try reader!.inDatabase {
            try String.fetchAll($0, sql: "SELECT user_key || ' ' || item_key FROM recommendations ORDER BY user_key, rank")
        } == seen, "the reader's snapshot is the one it began with")
        try reader!.inDatabase { try $0.execute(sql: "COMMIT") }
        reader = nil
        #expect(try recpipe(["prune", "--db", "recs.sqlite"], in: dir).status == 0)
        #expect(walSize() == 0, "the WAL is truncated once the reader has gone (it was \(grown) bytes)")
        #expect(try Self.violation(db) == nil)
        print("reader across a nightly: WAL \(grown) bytes while it held its snapshot, 0 after")
    }
}
