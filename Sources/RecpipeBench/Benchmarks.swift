import Foundation
import Logging
import RecpipeModels
import RecpipeNumerics
import RecpipeStages
import RecpipeStore

/// The benchmarks: each measures one stage's work on synthetic data next to a reference
/// measured in the same run, and says what it measured through `say` (one line each).
public enum Benchmarks {
    /// Ingest rows/s on a synthetic 4-column CSV next to the sqlite3 shell's .import --csv of the same file (medians of `repeats` runs).
    public static func ingest(rows: Int, repeats: Int, dir: String?, sqlite3: String, executable: String, logger: Logger, say: (String) -> Void) throws -> BenchResult {
        return try inBenchDirectory(dir, name: "ingest") { work in
            let csv = work + "/events.csv"
            var config = RecpipeStages.Synth.Config()
            config.users = max(1, rows / 75)
            config.items = max(2, min(20_000, rows / 50))
            config.topics = min(config.topics, config.items)
            config.interactions = rows
            config.ratings = true
            let written = try RecpipeStages.Synth(config: config).write(to: csv)
            let size = (try FileManager.default.attributesOfItem(atPath: csv)[.size] as? Int) ?? 0
            logger.info("benchmark file written", metadata: ["file": "\(csv)", "rows": "\(written)", "bytes": "\(size)"])

            var ours: [ChildProcess.Measurement] = [], shell: [ChildProcess.Measurement] = []
            for attempt in 0..<repeats {
                let a = work + "/recpipe-\(attempt).sqlite", b = work + "/shell-\(attempt).sqlite"
                for path in [a, b] { Store.removeFiles(of: path) }
                // Migrate first so both sides time loading only.
                _ = try Store(path: a, logger: Logger(label: "bench") { _ in SwiftLogNoOpLogHandler() })
                ours.append(try ChildProcess.measure(executable, ["ingest", "--quiet", "--db", a, csv]))
                shell.append(try ChildProcess.measure(sqlite3, [b, ".import --csv \(csv) events"]))
                for path in [a, b] { Store.removeFiles(of: path) }
            }
            let o = ours.sorted { $0.seconds < $1.seconds }[repeats / 2]
            let s = shell.sorted { $0.seconds < $1.seconds }[repeats / 2]
            let ourRate = Double(written) / o.seconds, shellRate = Double(written) / s.seconds
            say("ingest benchmark: \(written) rows, \(size / 1_000_000) MB CSV, median of \(repeats) runs")
            let table = [
                ["command", "seconds", "rows/s", "peak RSS MB"],
                ["recpipe ingest", String(format: "%.2f", o.seconds), String(format: "%.0f", ourRate), String(format: "%.1f", o.peakMB)],
                ["sqlite3 .import --csv", String(format: "%.2f", s.seconds), String(format: "%.0f", shellRate),
                 String(format: "%.1f", s.peakMB)],
            ]
            for row in table {
                say(row[0].padding(toLength: 24, withPad: " ", startingAt: 0)
                      + row[1...].map { String(repeating: " ", count: max(0, 13 - $0.count)) + $0 }.joined())
            }
            say(String(format: "ratio recpipe / sqlite3 (rows/s): %.2f", ourRate / shellRate))
            return BenchResult(stage: "ingest", unit: "rows", rows: written, seconds: o.seconds, rowsPerSecond: ourRate, gflops: nil,
                               reference: "sqlite3 .import rows/s", referenceValue: shellRate, ratio: ourRate / shellRate,
                               peakMB: o.peakMB)
        }
    }

    /// Seconds and peak memory of refusing a file of `lines` unparsable lines after a valid header; the goal is under 30 s and 200 MB for 5,000,000.
    public static func hostile(lines: Int, dir: String?, executable: String, say: (String) -> Void) throws -> BenchResult {
        guard lines > 0 else { throw StageError.badOption("--lines must be positive") }
        return try inBenchDirectory(dir, name: "hostile") { work in
            let csv = work + "/hostile.csv", db = work + "/hostile.sqlite"
            guard FileManager.default.createFile(atPath: csv, contents: nil), let file = FileHandle(forWritingAtPath: csv) else {
                throw StoreError.writeFailed(path: csv, reason: String(cString: strerror(errno)), errno: errno)
            }
            var chunk = Array("user,item,rating\n".utf8)
            for k in 0..<lines {
                chunk += Array("u\(k),i\(k % 977),not-a-number\n".utf8)
                if chunk.count > 1 << 20 { try file.write(contentsOf: chunk); chunk.removeAll(keepingCapacity: true) }
            }
            try file.write(contentsOf: chunk)
            try file.close()
            let size = (try FileManager.default.attributesOfItem(atPath: csv)[.size] as? Int) ?? 0
            _ = try Store(path: db, logger: Logger(label: "bench") { _ in SwiftLogNoOpLogHandler() })
            let measured = try ChildProcess.measure(executable, ["ingest", "--quiet", "--db", db, csv])
            let row = try Store(readingAt: db).queue.read { try IngestBatches.newest(in: $0) }
            let status = row?.status ?? "none", read = row?.read ?? 0
            guard status == "refused" else { throw StageError.badData("\(csv): expected the file refused, its batch is \(status)") }
            say("hostile ingest: \(lines) unparsable lines (\(size / 1_000_000) MB) after a valid header")
            say(String(format: "refused in %.2f s, peak RSS %.1f MB, %d lines read before it stopped (goal: under 30 s and 200 MB)",
                         measured.seconds, measured.peakMB, read))
            return BenchResult(stage: "ingest (hostile file)", unit: "lines", rows: lines, seconds: measured.seconds,
                               rowsPerSecond: Double(lines) / measured.seconds, gflops: nil, reference: "goal: seconds",
                               referenceValue: 30, ratio: measured.seconds / 30, peakMB: measured.peakMB)
        }
    }

    /// Seconds per Mult-VAE (or DAE) epoch, with the output layer's GFLOPS next to the sgemm ceiling measured in the same run.
    public static func train(data: BenchData, heldout: Int, epochs: Int, model: MultVAE.Kind, logger: Logger, say: (String) -> Void) throws -> BenchResult {
        let (users, items) = (data.users, data.items)
        let train = try data.matrix(users: max(1, users - 2 * heldout))
        logger.info("benchmark data ready", metadata: ["users": "\(train.rows)", "items": "\(items)", "interactions": "\(train.nonZeros)"])

        var config = MultVAE.Config(kind: model)
        config.epochs = epochs
        config.patience = nil
        let batches = (train.rows + config.batchSize - 1) / config.batchSize
        // The dense products of the output layer: forward, and the two backward products.
        let flopsPerEpoch = 6.0 * Double(train.rows) * Double(config.hidden) * Double(items)
        let peak = sgemmGFLOPS(m: config.batchSize, k: config.hidden, n: items)
        var seconds: [Double] = []
        _ = try MultVAE.fit(train: train, validation: nil, config: config) { epoch in
            seconds.append(epoch.seconds)
            logger.info("epoch finished", metadata: ["epoch": "\(epoch.epoch)", "seconds": "\(String(format: "%.1f", epoch.seconds))"])
        }
        let best = seconds.min() ?? 0
        let achieved = flopsPerEpoch / best / 1e9
        say("Mult-\(model == .vae ? "VAE" : "DAE") epoch: \(train.rows) users × \(items) items, \(train.nonZeros) interactions, \(batches) batches of \(config.batchSize), BLAS threads \(BLAS.threads) (\(BLAS.coreName))")
        let median = seconds.sorted()[seconds.count / 2]
        say(String(format: "seconds per epoch: best %.1f, median %.1f of %d", best, median, seconds.count))
        say(String(format: "output-layer GFLOPS achieved: %.1f; sgemm %d×%d×%d ceiling measured now: %.1f (%.0f%%)",
                     achieved, config.batchSize, config.hidden, items, peak, 100 * achieved / peak))
        say(String(format: "floor at that ceiling: %.1f s; epoch / floor: %.2f", flopsPerEpoch / peak / 1e9,
                     best / (flopsPerEpoch / peak / 1e9)))
        // Each of the three products at its own shape's speed (full batches; the last one's
        // share is scaled by its rows).
        let shapes = outputLayerFloor(batch: config.batchSize, hidden: config.hidden, items: items)
        let fullBatches = Double(train.rows) / Double(config.batchSize)
        let floor = fullBatches * (shapes.forward + shapes.weights + shapes.inputs)
        let shapeGFLOPS = { (seconds: Double) in 2 * Double(config.batchSize) * Double(config.hidden) * Double(items) / seconds / 1e9 }
        say(String(format: "sgemm on each product's own shape now: forward %.1f, dW = hᵀ·dY %.1f, dH = dY·Wᵀ %.1f GFLOPS; floor %.1f s; epoch / floor: %.2f (goal: at most 1.2)",
                     shapeGFLOPS(shapes.forward), shapeGFLOPS(shapes.weights), shapeGFLOPS(shapes.inputs), floor, best / floor))
        say("kernels: recpipe \(Kernels.description), OpenBLAS \(BLAS.coreName); CPU family \(MachineInfo.current().family)")
        say(String(format: "peak RSS: %.0f MB", peakResidentMB()))
        return BenchResult(stage: "train (Mult-\(model == .vae ? "VAE" : "DAE") epoch)", unit: "interactions", rows: train.nonZeros,
                           seconds: best, rowsPerSecond: Double(train.nonZeros) / best, gflops: achieved,
                           reference: "sgemm GFLOPS", referenceValue: peak, ratio: achieved / peak,
                           peakMB: peakResidentMB())
    }

    /// Seconds and peak memory of the clean stage (dedupe, k-core, dense ids, strong split) on a synthetic log ingested first.
    public static func clean(data: BenchData, heldout: Int, executable: String, say: (String) -> Void) throws -> BenchResult {
        return try inBenchDirectory(nil, name: "clean") { work in
            let rows = try data.synth().write(to: work + "/events.csv")
            let db = work + "/recpipe.sqlite"
            _ = try ChildProcess.measure(executable, ["ingest", "--quiet", "--db", db, work + "/events.csv"])
            let measured = try ChildProcess.measure(executable, ["clean", "--quiet", "--db", db, "--min-rating", "none",
                                                         "--heldout-users", "\(heldout)"])
            say(String(format: "clean: %d rows in %.1f s, %.0f rows/s, peak RSS %.0f MB", rows, measured.seconds,
                         Double(rows) / measured.seconds, measured.peakMB))
            return BenchResult(stage: "clean (strong split)", unit: "rows", rows: rows, seconds: measured.seconds,
                               rowsPerSecond: Double(rows) / measured.seconds, gflops: nil, reference: "",
                               referenceValue: nil, ratio: nil, peakMB: measured.peakMB)
        }
    }

    /// Seconds and peak memory of one EASE fit, the factorization's GFLOPS next to the sgemm ceiling measured in the same run.
    public static func ease(data: BenchData, lambda: Float, say: (String) -> Void) throws -> BenchResult {
        let train = try data.matrix(users: data.users)
        let n = data.items
        let peak = sgemmGFLOPS(m: 2048, k: 2048, n: 2048)
        var started = Clock.monotonic()
        let gram = EASE.gram(train)
        let gramSeconds = Clock.monotonic() - started
        started = Clock.monotonic()
        let model = try EASE.fit(gram: gram, items: n, lambda: lambda)
        let solveSeconds = Clock.monotonic() - started
        // The Cholesky factor takes n³/3 flops and the inverse from it 2n³/3.
        let gflops = Double(n) * Double(n) * Double(n) / solveSeconds / 1e9
        let seconds = gramSeconds + solveSeconds
        say(String(format: "EASE: %d users × %d items, λ %g (weights %d)", train.rows, n, lambda, model.items))
        say(String(format: "Gram matrix %.1f s; Cholesky and inverse %.1f s at %.1f GFLOPS, the sgemm ceiling now %.1f (%.0f%%)",
                     gramSeconds, solveSeconds, gflops, peak, 100 * gflops / peak))
        say(String(format: "peak RSS: %.0f MB", peakResidentMB()))
        return BenchResult(stage: "EASE fit (\(n) items)", unit: "items", rows: n, seconds: seconds,
                           rowsPerSecond: Double(n) / seconds, gflops: gflops, reference: "sgemm GFLOPS",
                           referenceValue: peak, ratio: gflops / peak, peakMB: peakResidentMB())
    }

    /// Users/s of Mult-VAE scoring with top-K selection for every user, next to the sgemm ceiling measured in the same run.
    public static func score(data: BenchData, k: Int, rounds: Int = 3, say: (String) -> Void) throws -> BenchResult {
        let (users, items) = (data.users, data.items)
        let history = try data.matrix(users: users)
        var model = MultVAE(items: items, config: MultVAE.Config())
        var rng = SeededRandom(seed: 1)
        model.initialize(rng: &rng)
        let peak = sgemmGFLOPS(m: 500, k: model.config.hidden, n: items)
        // The model's forward pass alone (the scores, no ranking), then scoring as the
        // score stage does it: forward pass, seen items excluded, top-K per user.
        var started = Clock.monotonic()
        var sink: Float = 0
        model.scoreBatches(history, batchSize: 500) { _, _, scores in sink += scores[0] }
        let forward = Clock.monotonic() - started
        // Plain scoring, with business rules as score applies them (10% of the items
        // unavailable, 20 exclusions per user), and with a reason for every item (the
        // Mult-VAE's: the history item closest by cosine of decoder columns, the explainer's
        // set-up included), in turn, `rounds` times: each ratio is taken within a round and
        // the median over rounds reported (the machine's speed drifts over minutes).
        var blocked = [Bool](repeating: false, count: items)
        for item in stride(from: 0, to: items, by: 10) { blocked[item] = true }
        let excluded = CSRMatrix(cols: items, rowsOfColumns: (0..<users).map { _ in
            Array(Set((0..<20).map { _ in Int32(Int.random(in: 0..<items, using: &rng)) })).sorted()
        })
        var plainRuns: [Double] = [], ruledRuns: [Double] = [], explainedRuns: [Double] = [], setUps: [Double] = []
        var checksum = 0, ruledChecksum = 0, reasons = 0
        for _ in 0..<max(1, rounds) {
            started = Clock.monotonic()
            var plainChecksum = 0
            try model.rankedLists(history, k: k) { _, items, _, _ in plainChecksum &+= Int(items[0]) }
            plainRuns.append(Clock.monotonic() - started)
            precondition(checksum == 0 || plainChecksum == checksum, "plain scoring is deterministic")
            checksum = plainChecksum
            started = Clock.monotonic()
            ruledChecksum = 0
            try model.rankedLists(history, k: k, rules: RankingRules(blocked: blocked, excluded: excluded)) { _, items, _, _ in
                ruledChecksum &+= Int(items[0])
            }
            ruledRuns.append(Clock.monotonic() - started)
            started = Clock.monotonic()
            let explainer = Explanations.explainer(for: model)!
            setUps.append(Clock.monotonic() - started)
            reasons = 0
            try model.rankedLists(history, k: k, explainer: explainer) { _, _, _, because in
                reasons &+= Int(because.first.flatMap { $0 } ?? 0)
            }
            explainedRuns.append(Clock.monotonic() - started)
        }
        func median(_ values: [Double]) -> Double {
            let sorted = values.sorted()
            return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
        }
        let seconds = median(plainRuns)
        // Reading those rules from a database's tables and hashing them, as score does before
        // it ranks (the tables filled first, not timed).
        let directory = NSTemporaryDirectory() + "recpipe-bench-rules-\(getpid())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var quiet = Logger(label: "bench")
        quiet.logLevel = .error
        let store = try Store(path: directory + "/rules.sqlite", logger: quiet)
        let itemKeys = (0..<items).map { "i\($0)" }, userKeys = (0..<users).map { "u\($0)" }
        var exclusions: [(user: String, item: String)] = []
        exclusions.reserveCapacity(excluded.columns.count)
        for u in 0..<users {
            for a in excluded.rowStart[u]..<excluded.rowStart[u + 1] { exclusions.append((userKeys[u], itemKeys[Int(excluded.columns[a])])) }
        }
        try BusinessRules.add(hidden: stride(from: 0, to: items, by: 10).map { itemKeys[$0] }, exclusions: exclusions,
                              on: try store.bulkConnection())
        started = Clock.monotonic()
        let applied = try ScoreStage.rules(store, itemKeys: itemKeys, userKeys: userKeys, maxPerCategory: nil, now: Clock.isoNow(),
                                           digest: true)
        let reading = Clock.monotonic() - started
        precondition(applied.exclusions == exclusions.count, "every exclusion read")
        let ruledRatio = median(zip(ruledRuns, plainRuns).map { $0 / $1 })
        let rulesInAll = median(zip(ruledRuns, plainRuns).map { ($0 + reading) / $1 })
        let explainedRatio = median(zip(explainedRuns, plainRuns).map { $0 / $1 })
        func runs(_ values: [Double]) -> String { values.map { String(format: "%.1f", $0) }.joined(separator: ", ") }
        // The output layer's product dominates: 2·users·hidden·items.
        let flops = 2 * Double(users) * Double(model.config.hidden) * Double(items)
        say("Mult-VAE scoring: \(users) users × \(items) items, top-\(k), seen items excluded (checksum \(checksum), \(sink.isFinite))")
        say(String(format: "forward pass: %.1f s, output-layer GFLOPS %.1f of the sgemm ceiling %.1f measured now (%.0f%%)",
                     forward, flops / forward / 1e9, peak, 100 * flops / forward / 1e9 / peak))
        say(String(format: "with top-%d selection: %.1f s, %.0f users/s; GFLOPS %.1f (%.0f%% of the ceiling); selection adds %.1f s",
                     k, seconds, Double(users) / seconds, flops / seconds / 1e9, 100 * flops / seconds / 1e9 / peak,
                     seconds - forward))
        say("in turn, \(plainRuns.count) rounds: plain \(runs(plainRuns)) s; with rules \(runs(ruledRuns)) s; with reasons \(runs(explainedRuns)) s (of which the explainer's set-up \(runs(setUps)) s); each ratio below is the median over rounds of the ratio within a round")
        say(String(format: "with business rules (10%% of items unavailable, 20 exclusions per user): %.2f× the time without (goal: at most 1.2×; checksum %d)",
                     ruledRatio, ruledChecksum))
        say(String(format: "reading those rules (%d exclusions) from SQLite and hashing them: %.1f s; rules in all: %.2f× the time without (goal: at most 1.2×)",
                     applied.exclusions, reading, rulesInAll))
        say(String(format: "with a reason for every item (cosine of decoder columns): %.2f× the time without (goal: at most 1.3×; checksum %d)",
                     explainedRatio, reasons))
        say(String(format: "fastest round of each against the fastest plain one: rules %.2f×, reasons %.2f×",
                     ruledRuns.min()! / plainRuns.min()!, explainedRuns.min()! / plainRuns.min()!))
        say(String(format: "peak RSS: %.0f MB", peakResidentMB()))
        return BenchResult(stage: "score (top-\(k))", unit: "users", rows: users, seconds: seconds,
                           rowsPerSecond: Double(users) / seconds, gflops: flops / seconds / 1e9, reference: "sgemm GFLOPS",
                           referenceValue: peak, ratio: flops / seconds / 1e9 / peak,
                           peakMB: peakResidentMB())
    }

    /// Rows/s of the score stage's writing and publishing, next to the sqlite3 shell's
    /// `.import` of the same rows into the same table of a fresh recpipe database. The real
    /// CLI in child processes: the synthetic log ingested and cleaned, a popularity model
    /// trained (its lists cost next to nothing to rank, so the stage's time is its writing),
    /// then `recpipe score` `runs` times; each run publishes, the third on drops the set two
    /// before it, as every night does. The figures are the stage's own (`score_runs`
    /// write_seconds and publish_seconds); the last run is the one compared.
    public static func publish(data: BenchData, heldout: Int, runs: Int = 3, dir: String? = nil, sqlite3: String, executable: String,
                               say: (String) -> Void) throws -> BenchResult {
        try inBenchDirectory(dir, name: "publish") { work in
            let db = work + "/recpipe.sqlite", csv = work + "/events.csv"
            _ = try data.synth().write(to: csv)
            _ = try ChildProcess.measure(executable, ["ingest", "--quiet", "--db", db, csv])
            _ = try ChildProcess.measure(executable, ["clean", "--quiet", "--db", db, "--min-rating", "none", "--heldout-users", "\(heldout)"])
            _ = try ChildProcess.measure(executable, ["train", "--quiet", "--db", db, "--model", "popularity"])
            struct Run { var rows: Int; var writing: Double; var publishing: Double; var process: Double; var peakMB: Double }
            var measured: [Run] = []
            for _ in 0..<max(1, runs) {
                let child = try ChildProcess.measure(executable, ["score", "--quiet", "--db", db, "--model", "popularity"])
                guard let times = try Store(readingAt: db).queue.read({ try LiveLists.times(in: $0) }),
                      let writing = times.writing, let publishing = times.publishing else {
                    throw StageError.badData("\(db): the score run recorded no write_seconds / publish_seconds")
                }
                measured.append(Run(rows: times.rows, writing: writing, publishing: publishing, process: child.seconds, peakMB: child.peakMB))
            }
            // The live rows, in key order, as a CSV for the shell (NULL as an empty field).
            let rowsCSV = work + "/rows.csv"
            let connection = try RawConnection(path: db, mode: .readOnly)
            guard FileManager.default.createFile(atPath: rowsCSV, contents: nil), let file = FileHandle(forWritingAtPath: rowsCSV) else {
                throw StoreError.writeFailed(path: rowsCSV, reason: String(cString: strerror(errno)), errno: errno)
            }
            var chunk: [UInt8] = []
            try connection.forEachRow("""
                SELECT run_id, user_key, rank, item_key, score, source, because_item_key FROM recommendation_rows
                WHERE run_id = (SELECT run_id FROM live_recommendations) ORDER BY user_key, rank
                """) { row in
                chunk += Array("\(row.int64(0)),\(row.string(1)),\(row.int64(2)),\(row.string(3)),\(row.double(4)),\(row.string(5)),\(row.isNull(6) ? "" : row.string(6))\n".utf8)
                if chunk.count > 1 << 20 { try file.write(contentsOf: chunk); chunk.removeAll(keepingCapacity: true) }
            }
            try file.write(contentsOf: chunk)
            try file.close()
            let shellDB = work + "/shell.sqlite"
            _ = try Store(path: shellDB, logger: Logger(label: "bench") { _ in SwiftLogNoOpLogHandler() })
            let shell = try ChildProcess.measure(sqlite3, [shellDB, ".import --csv \(rowsCSV) recommendation_rows"])
            let imported = try Store(readingAt: shellDB).queue.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM recommendation_rows") } ?? 0
            let last = measured[measured.count - 1]
            guard imported == last.rows else { throw StageError.badData("\(shellDB): .import loaded \(imported) rows of \(last.rows)") }
            say("publishing: \(last.rows) rows (\(data.users) users' top lists) through recpipe score, \(measured.count) runs; the sqlite3 shell's .import of the same rows (in key order) into recommendation_rows of a fresh recpipe database")
            for (n, run) in measured.enumerated() {
                say(String(format: "run %d: writing %.2f s (%.0f rows/s), publishing %.2f s; written and published %.0f rows/s; the whole process %.1f s, peak RSS %.0f MB",
                           n + 1, run.writing, Double(run.rows) / run.writing, run.publishing, Double(run.rows) / (run.writing + run.publishing),
                           run.process, run.peakMB))
            }
            let ours = Double(last.rows) / (last.writing + last.publishing), theirs = Double(imported) / shell.seconds
            say(String(format: "sqlite3 .import: %.2f s, %.0f rows/s", shell.seconds, theirs))
            say(String(format: "written and published / .import (rows/s, last run): %.2f (goal: at least 0.8, and at least 1,000,000 rows/s: %@)",
                       ours / theirs, ours >= 1_000_000 ? "met" : "not met"))
            return BenchResult(stage: "score (write and publish)", unit: "rows", rows: last.rows, seconds: last.writing + last.publishing,
                               rowsPerSecond: ours, gflops: nil, reference: "sqlite3 .import rows/s", referenceValue: theirs,
                               ratio: ours / theirs, peakMB: last.peakMB)
        }
    }

    /// What the accuracy / long-tail trade-off adds to evaluate, per model: one model's
    /// evaluation of the test users as it was before the trade-off (top 100, metrics), against
    /// what evaluate now does for it (the best 500 candidates on the validation and the test
    /// users, the test figures from them, and every lever at every weight on both parts).
    /// The held-out users are the last 2 × `heldout` of the synthetic data, every fifth of
    /// their items a target; the model a randomly initialised Mult-VAE (the cost does not
    /// depend on the weights).
    public static func tradeoff(data: BenchData, heldout: Int, say: (String) -> Void) throws -> BenchResult {
        let history = try data.matrix(users: data.users)
        let trainRows = max(1, data.users - 2 * heldout)
        func part(_ rows: Range<Int>) -> ValidationSet {
            var foldIn: [[Int32]] = [], targets: [Set<Int32>] = []
            for r in rows {
                let items = Array(history.columns[history.rowStart[r]..<history.rowStart[r + 1]])
                foldIn.append(items.indices.filter { $0 % 5 != 4 }.map { items[$0] })
                targets.append(Set(items.indices.filter { $0 % 5 == 4 }.map { items[$0] }))
            }
            return ValidationSet(foldIn: CSRMatrix(cols: data.items, rowsOfColumns: foldIn), targets: targets)
        }
        let train = history.rows(Array(0..<trainRows)[...])
        let validation = part(trainRows..<min(data.users, trainRows + heldout)), test = part(min(data.users, trainRows + heldout)..<data.users)
        let popularity = Popularity(train: train)
        let isHead = Evaluation.head(counts: popularity.counts)
        var model = MultVAE(items: data.items, config: MultVAE.Config())
        var rng = SeededRandom(seed: 3)
        model.initialize(rng: &rng)
        var started = Clock.monotonic()
        let (users, lists) = Evaluation.topLists(model, on: test)
        let before = Evaluation.evaluate(lists: lists, users: users, on: test, trainCounts: popularity.counts, trainUsers: train.rows,
                                         isHead: isHead)
        let plain = Clock.monotonic() - started
        started = Clock.monotonic()
        let reranking = Reranking(lever: .xquad, weight: 0, counts: popularity.counts)
        var points = 0
        var scoring = 0.0
        for (held, isTest) in [(validation, false), (test, true)] {
            let scored = Clock.monotonic()
            let candidates = Tradeoff.candidates(model, on: held)
            scoring += Clock.monotonic() - scored
            if isTest {
                let after = Evaluation.evaluate(lists: candidates.lists, users: candidates.users, on: held, trainCounts: popularity.counts,
                                                trainUsers: train.rows, isHead: isHead)
                precondition(after.map(\.value) == before.map(\.value), "the candidates' first 100 are the lists evaluated before")
            }
            points += Tradeoff.curve(candidates, on: held, reranking: reranking, trainCounts: popularity.counts, trainUsers: train.rows,
                                     isHead: isHead).count
        }
        let withCurve = Clock.monotonic() - started
        say("trade-off: \(validation.foldIn.rows) validation and \(test.foldIn.rows) test users, \(data.items) items, a Mult-VAE; \(points) points (\(Tradeoff.grid.map(\.weights.count).reduce(1, +)) per part)")
        say(String(format: "evaluate per model: %.1f s before (test users, top 100); %.1f s with the trade-off on both parts (of which scoring the candidates %.1f s): +%.1f s per model",
                     plain, withCurve, scoring, withCurve - plain))
        say(String(format: "peak RSS: %.0f MB", peakResidentMB()))
        return BenchResult(stage: "evaluate trade-off (one model)", unit: "users", rows: validation.foldIn.rows + test.foldIn.rows,
                           seconds: withCurve, rowsPerSecond: Double(validation.foldIn.rows + test.foldIn.rows) / withCurve, gflops: nil,
                           reference: "evaluate without it (s)", referenceValue: plain, ratio: withCurve / plain, peakMB: peakResidentMB())
    }

    /// Seconds per CFGAN epoch, and a Mult-VAE epoch on the same data in the same run.
    public static func augment(data: BenchData, heldout: Int, batchSize: Int, epochs: Int, noVAE: Bool, logger: Logger, say: (String) -> Void) throws -> BenchResult {
        let items = data.items
        let train = try data.matrix(users: max(1, data.users - 2 * heldout))
        logger.info("benchmark data ready", metadata: ["users": "\(train.rows)", "items": "\(items)", "interactions": "\(train.nonZeros)"])
        var gan = CFGAN.Config()
        gan.epochs = epochs
        gan.batchSize = batchSize
        gan.patience = nil
        var ganSeconds: [Double] = []
        _ = try CFGAN.fit(train: train, validation: nil, config: gan) { epoch in
            ganSeconds.append(epoch.seconds)
            logger.info("epoch finished", metadata: ["model": "cfgan", "epoch": "\(epoch.epoch)",
                                                     "seconds": "\(String(format: "%.1f", epoch.seconds))"])
        }
        // The dense products: G's output layer (forward and two backward), and D's view of
        // the generated vector (forward in the D and G steps, D's weight gradient, the
        // gradient back to G).
        let (u, i) = (Double(train.rows), Double(items))
        let hidden = Double(gan.generatorHidden.last ?? 0), first = Double(gan.discriminatorHidden.first ?? 0)
        let ganFlops = 6 * u * hidden * i + 8 * u * i * first
        let ganBest = ganSeconds.min() ?? 0
        let peak = sgemmGFLOPS(m: batchSize, k: Int(hidden), n: items)
        say("CFGAN epoch: \(train.rows) users × \(items) items, \(train.nonZeros) interactions, batches of \(batchSize), G \(gan.generatorHidden), D \(gan.discriminatorHidden), BLAS threads \(BLAS.threads) (\(BLAS.coreName))")
        say(String(format: "CFGAN seconds per epoch: %.1f (best of %d); dense-product GFLOPS %.1f, sgemm %d×%.0f×%d ceiling now %.1f",
                     ganBest, ganSeconds.count, ganFlops / ganBest / 1e9, batchSize, hidden, items, peak))
        if !noVAE {
            var vae = MultVAE.Config()
            vae.epochs = 1
            vae.patience = nil
            var vaeSeconds = 0.0
            _ = try MultVAE.fit(train: train, validation: nil, config: vae) { vaeSeconds = $0.seconds }
            say(String(format: "Mult-VAE seconds per epoch (batches of %d, same data): %.1f; CFGAN / Mult-VAE: %.2f",
                         vae.batchSize, vaeSeconds, ganBest / vaeSeconds))
        }
        say(String(format: "peak RSS: %.0f MB", peakResidentMB()))
        return BenchResult(stage: "augment (CFGAN epoch)", unit: "interactions", rows: train.nonZeros, seconds: ganBest,
                           rowsPerSecond: Double(train.nonZeros) / ganBest, gflops: ganFlops / ganBest / 1e9,
                           reference: "sgemm GFLOPS", referenceValue: peak, ratio: ganFlops / ganBest / 1e9 / peak,
                           peakMB: peakResidentMB())
    }

    /// The benchmarks `suite` knows, in the order it runs them.
    public static let names = ["ingest", "hostile", "clean", "train", "augment", "ease", "score", "publish"]

    /// Runs the benchmarks `only` at `scale` × MovieLens 20M, each in a process of its own
    /// (`executable bench NAME`, so each has its own peak memory). Returns a title line and
    /// the figures.
    public static func suite(scale: Double, only: [String], executable: String, logger: Logger) throws -> (title: String, results: [BenchResult]) {
        guard scale > 0, scale <= 10 else { throw StageError.badOption("--scale must be in (0, 10]") }
        if let bad = only.first(where: { !names.contains($0) }) {
            throw StageError.badOption("--only: no benchmark '\(bad)'; benchmarks: \(names.joined(separator: ", "))")
        }
        let users = max(100, Int(136_000 * scale)), items = max(100, Int(20_000 * min(1, scale * 4)))
        let interactions = max(1_000, Int(10_000_000 * scale)), heldout = max(10, Int(9_000 * scale))
        let size = ["--users", "\(users)", "--items", "\(items)", "--interactions", "\(interactions)"]
        let results = try inBenchDirectory(nil, name: "suite") { work in
            var results: [BenchResult] = []
            for name in names where only.contains(name) {
                let arguments: [String] = switch name {
                case "ingest": ["bench", "ingest", "--rows", "\(interactions)"]
                case "hostile": ["bench", "hostile", "--lines", "\(max(100_000, Int(5_000_000 * scale)))"]
                case "train": ["bench", "train", "--heldout", "\(heldout)"] + size
                case "augment": ["bench", "augment", "--no-vae", "--heldout", "\(heldout)"] + size
                case "clean": ["bench", "clean", "--heldout", "\(heldout)"] + size
                case "ease": ["bench", "ease"] + size
                case "publish": ["bench", "publish", "--heldout", "\(heldout)"] + size
                default: ["bench", "score", "--rounds", "1", "--no-publishing"] + size
                }
                let out = work + "/\(name).json"
                logger.info("benchmark started", metadata: ["benchmark": "\(name)"])
                let measured = try ChildProcess.measure(executable, arguments + ["--quiet", "--result-out", out])
                var result = try JSONDecoder().decode(BenchResult.self, from: Data(contentsOf: URL(fileURLWithPath: out)))
                result.peakMB = max(result.peakMB, measured.peakMB)
                results.append(result)
            }
            return results
        }
        return ("recpipe benchmarks at \(scale)× MovieLens 20M (\(users) users, \(items) items, \(interactions) interactions); \(MachineInfo.current().line)", results)
    }

    /// The suite's figures as aligned lines, a header first.
    public static func table(_ results: [BenchResult]) -> [String] {
        let header = ["stage", "rows", "seconds", "rows/s", "GFLOPS", "reference (same run)", "reference", "ratio", "peak RSS MB"]
        let rows = results.map { r in
            [r.stage, "\(r.rows) \(r.unit)", String(format: "%.1f", r.seconds), String(format: "%.0f", r.rowsPerSecond),
             r.gflops.map { String(format: "%.1f", $0) } ?? "", r.reference, r.referenceValue.map { String(format: "%.1f", $0) } ?? "",
             r.ratio.map { String(format: "%.2f", $0) } ?? "", String(format: "%.0f", r.peakMB)]
        }
        let widths = header.indices.map { c in ([header[c]] + rows.map { $0[c] }).map(\.count).max()! }
        return ([header] + rows).map { row in
            row.enumerated().map { c, cell in
                c == 0 || c == 5 ? cell.padding(toLength: widths[c], withPad: " ", startingAt: 0)
                    : String(repeating: " ", count: widths[c] - cell.count) + cell
            }.joined(separator: "  ")
        }
    }

    /// Seconds of the fastest of 8 runs of one product C(m×n) = op(A)·op(B) + beta·C, by
    /// default as the layers call it (`transposeA`: A stored k×m; `transposeB`: B stored n×k;
    /// beta 1: accumulating).
    public static func sgemmSeconds(m: Int, n: Int, k: Int, transposeA: Bool = false, transposeB: Bool = false, beta: Float = 1) -> Double {
        var rng = SeededRandom(seed: 1)
        let a = (0..<(m * k)).map { _ in rng.uniformFloat() }, b = (0..<(k * n)).map { _ in rng.uniformFloat() }
        var c = [Float](repeating: 0, count: m * n)
        var best = Double.infinity
        for _ in 0..<8 {
            let started = Clock.monotonic()
            BLAS.gemm(m: m, n: n, k: k, a, transposeA: transposeA, b, transposeB: transposeB, beta: beta, &c)
            best = min(best, Clock.monotonic() - started)
        }
        return best
    }

    /// The floor a batch's output-layer products set: the forward product, dW = hᵀ·dY and
    /// dH = dY·Wᵀ, each at the speed sgemm reaches on its own shape (their shapes differ, and
    /// so does OpenBLAS's speed on them). Returns the three seconds.
    public static func outputLayerFloor(batch b: Int, hidden h: Int, items i: Int) -> (forward: Double, weights: Double, inputs: Double) {
        (sgemmSeconds(m: b, n: i, k: h), sgemmSeconds(m: h, n: i, k: b, transposeA: true), sgemmSeconds(m: b, n: h, k: i, transposeB: true))
    }

    /// Best of several sgemm runs of an (m × k)·(k × n) product, in GFLOPS.
    public static func sgemmGFLOPS(m: Int, k: Int, n: Int) -> Double {
        2 * Double(m) * Double(k) * Double(n) / sgemmSeconds(m: m, n: n, k: k, beta: 0) / 1e9
    }
}

/// One benchmark's figures, as `bench suite` tabulates them.
public struct BenchResult: Codable, Sendable {
    public var stage: String
    /// What `rows` counts (rows, interactions, users).
    public var unit: String
    public var rows: Int
    public var seconds: Double
    public var rowsPerSecond: Double
    public var gflops: Double?
    /// The reference measured in the same run, its value, and ours over it (none for stages
    /// without a comparable reference).
    public var reference: String
    public var referenceValue: Double?
    public var ratio: Double?
    public var peakMB: Double
    /// Where it ran (nil in results written before machines were recorded).
    public var machine: MachineInfo? = MachineInfo.current()

    /// Writes the result as JSON to `path` when one is given (`--result-out`).
    public func write(to path: String?) throws {
        guard let path else { return }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try encoder.encode(self).write(to: URL(fileURLWithPath: path))
    }
}

/// Runs `body` in `dir`, or in a new temporary directory removed afterwards.
func inBenchDirectory<T>(_ dir: String?, name: String, _ body: (String) throws -> T) throws -> T {
    let work = dir ?? NSTemporaryDirectory() + "recpipe-bench-\(name)-\(getpid())"
    try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
    defer { if dir == nil { try? FileManager.default.removeItem(atPath: work) } }
    return try body(work)
}

/// A child process run to completion: its wall time and peak resident memory.
enum ChildProcess {
    struct Measurement {
        var seconds: Double
        var peakMB: Double
    }

    /// Runs a command with stdout to /dev/null; wall time and the child's peak resident memory.
    static func measure(_ executable: String, _ arguments: [String]) throws -> Measurement {
        var pid: pid_t = 0
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        let started = Clock.monotonic()
        let status = posix_spawnp(&pid, executable, &actions, nil, argv, environ)
        guard status == 0 else { throw StageError.badOption("cannot run \(executable): \(String(cString: strerror(status)))") }
        // Peak RSS is the child's VmHWM, sampled until it exits (rusage would report the
        // launcher's own peak for a child started with posix_spawn).
        var exit: Int32 = 0
        var peakKB = 0
        while true {
            peakKB = max(peakKB, highWaterKB(pid: pid))
            let done = waitpid(pid, &exit, WNOHANG)
            if done == pid || done < 0 { break }
            usleep(2_000)
        }
        let seconds = Clock.monotonic() - started
        guard exit == 0 else {
            throw StageError.badData("\(executable) \(arguments.joined(separator: " ")) failed with status \(exit)")
        }
        return Measurement(seconds: seconds, peakMB: Double(peakKB) / 1024)
    }

    /// VmHWM of a running process in KiB (0 once it has exited).
    static func highWaterKB(pid: pid_t) -> Int {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return 0 }
        for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "0") ?? 0
        }
        return 0
    }
}

/// The size of the synthetic data the model benchmarks run on (ML-20M by default).
public struct BenchData: Sendable {
    public var users: Int
    public var items: Int
    public var interactions: Int

    public init(users: Int = 136_000, items: Int = 20_000, interactions: Int = 10_000_000) {
        self.users = users
        self.items = items
        self.interactions = interactions
    }

    /// The synthetic log of this size.
    public func synth() throws -> RecpipeStages.Synth {
        var config = RecpipeStages.Synth.Config()
        config.users = users
        config.items = items
        config.interactions = interactions
        return try RecpipeStages.Synth(config: config)
    }

    /// The binary user × item matrix of the first `users` users of the synthetic log.
    public func matrix(users count: Int) throws -> CSRMatrix {
        var rows = [[Int32]](repeating: [], count: users)
        for e in try synth().generate() { rows[Int(e.user)].append(e.item) }
        return CSRMatrix(cols: items, rowsOfColumns: rows[0..<count].map { $0.sorted() })
    }
}
