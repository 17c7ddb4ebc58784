import Foundation
import GRDB
import RecpipeTestSupport
import Testing
@testable import RecpipeStages
@testable import RecpipeStore

/// Every job runs under SQLite's authorizer (chained in front of GRDB's, see TableAccess):
/// a read or write of a table the job does not declare fails the test, so `reads` and
/// `writes`, from which the scheduler orders and fingerprints stages, are what the code does.
/// The jobs run once each, in a nightly's order, on one database; where rerunning a job on
/// unchanged input must change nothing, it runs a second time and the tables are compared.
@Suite(.serialized, .tags(.medium)) struct TableAccessTests {
    /// Bookkeeping every job may touch, and SQLite's own tables.
    static func isBookkeeping(_ table: String) -> Bool {
        table == TableName.stageRuns.rawValue || table == "schema_migrations" || table.hasPrefix("sqlite_")
    }

    /// The problems in `accesses` for `job`: tables of the database it reads without
    /// declaring them (as read or written) or writes without declaring them.
    static func undeclared(_ accesses: Set<TableAccess>, _ job: any Job.Type, database: String) -> [String] {
        let reads = Set((job.reads + job.writes).map(\.rawValue)), writes = Set(job.writes.map(\.rawValue))
        return accesses.filter { $0.isIn(database) && !isBookkeeping($0.table) }
            .filter { $0.isWrite ? !writes.contains($0.table) : !reads.contains($0.table) }
            .map { "\(job.name): \($0) is not declared" }.sorted()
    }

    /// Each table's rows (without the columns named in `ignoring`; those matching `filter`),
    /// sorted, hashed.
    static func contents(_ store: Store, _ tables: [TableName], ignoring: Set<String> = [], filter: String = "1") throws -> [String: String] {
        try store.queue.read { db in
            var result: [String: String] = [:]
            for table in tables {
                let columns = try db.columns(in: table.rawValue).map(\.name).filter { !ignoring.contains($0) }
                let rows = try Row.fetchAll(db, sql: "SELECT \(columns.joined(separator: ", ")) FROM \(table) WHERE \(filter)")
                result[table.rawValue] = SHA256.hex(rows.map { "\($0)" }.sorted().joined(separator: "\n"))
            }
            return result
        }
    }

    /// One step of the walk: a job under test (`job` set) or setting up the next one.
    struct Step {
        var job: (any Job.Type)?
        var label: String
        var run: () throws -> Void
        /// What a second run on unchanged input must leave as it is (nil: no second run).
        var unchangedOnRerun: (() throws -> [String: String])?
        /// What a second run must bring back to how it was before the first (a toggle).
        var restoredByRerun: (() throws -> [String: String])? = nil
    }

    @Test func everyJobTouchesOnlyTheTablesItDeclares() throws {
        let (scratch, store) = try TrainStageTests().prepared(seed: 11)
        // `prepared` ingested and cleaned; start again from an empty database for those two.
        let empty = try Store(path: scratch.path("walk.sqlite"), logger: quietLogger)
        _ = store
        let events = scratch.path("events.csv")
        func run<S: Stage>(_ stage: S) throws { try StageRunner.run(stage, store: empty, logger: quietLogger) }
        var more = "user_id,item_id,timestamp\n"
        for u in 0..<20 { for i in 1...5 { more += "\(u),\(i * 7),\(2_000_000_000 + u * 10 + i)\n" } }
        let moreFile = scratch.write("more.csv", more)
        let names: [String] = try empty.queue.read { db in
            try String.fetchAll(db, sql: """
                SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'
                  AND name NOT IN ('stage_runs', 'schema_migrations')
                """)
        }
        let allTables: [TableName] = names.map { TableName($0) }
        let runColumns: Set<String> = ["run_id", "created_at", "seconds", "seen_run_id", "started_at", "finished_at"]
        var steps: [Step] = []
        steps.append(Step(job: IngestStage.self, label: "ingest", run: { () throws -> Void in
            try run(try IngestStage(config: IngestStage.Config(sources: [events])))
        }, unchangedOnRerun: {
            try Self.contents(empty, [.rawInteractions, .ingestRejects, .ingestBatches], ignoring: runColumns)
        }))
        steps.append(Step(job: CleanStage.self, label: "clean", run: { () throws -> Void in
            var config = CleanStage.Config()
            config.minRating = nil
            config.heldOutUsers = 30
            try run(try CleanStage(config: config))
        }, unchangedOnRerun: { try Self.contents(empty, [.users, .items, .interactions]) }))
        // Training is deterministic: a second run stores a second model with the same item
        // index, weights and curve (ignoring its id and times).
        let newestModel = { () throws -> [String: String] in
            try Self.contents(empty, [.modelWeights, .modelItems], ignoring: ["model_id"],
                              filter: "model_id = (SELECT max(model_id) FROM models)")
                .merging(try Self.contents(empty, [.trainingLog], ignoring: ["model_id", "seconds"],
                                           filter: "model_id = (SELECT max(model_id) FROM models)")) { a, _ in a }
        }
        steps.append(Step(job: TrainStage.self, label: "train", run: { () throws -> Void in
            try run(try TrainStageTests().small())
        }, unchangedOnRerun: newestModel))
        steps.append(Step(job: TrainStage.self, label: "train ease", run: { () throws -> Void in
            try run(try TrainStageTests().small { $0.kind = .ease; $0.ease.lambdas = [50] })
        }, unchangedOnRerun: newestModel))
        steps.append(Step(job: AugmentStage.self, label: "augment", run: { () throws -> Void in
            try run(try smallAugment())
        }, unchangedOnRerun: { try Self.contents(empty, [.augmentedInteractions], ignoring: ["run_id", "model_id"]) }))
        let score = { () throws -> Void in
            var config = ScoreStage.Config()
            config.k = 10
            try run(try ScoreStage(config: config))
        }
        // The live lists, as services read them.
        steps.append(Step(job: ScoreStage.self, label: "score", run: score, unchangedOnRerun: {
            try Self.contents(empty, [.recommendations], ignoring: ["run_id", "created_at"])
        }))
        // Scoring in shards (the shard files are not the database: their accesses are not
        // checked), then publishing them.
        steps.append(Step(job: ScoreStage.self, label: "score shards and merge", run: { () throws -> Void in
            var files: [String] = []
            for index in 0..<2 {
                var config = ScoreStage.Config()
                config.k = 10
                config.shard = ScoreStage.Shard(index: index, count: 2, output: scratch.path("shard-\(index).sqlite"))
                try run(try ScoreStage(config: config))
                files.append(config.shard!.output)
            }
            var config = ScoreStage.Config()
            config.k = 10
            config.merge = files
            try run(try ScoreStage(config: config))
        }, unchangedOnRerun: { try Self.contents(empty, [.recommendations], ignoring: ["run_id", "created_at"]) }))
        steps.append(Step(job: EvaluateStage.self, label: "evaluate", run: { () throws -> Void in
            try run(try EvaluateStage(config: EvaluateStage.Config()))
        }, unchangedOnRerun: {
            // The newest evaluation's figures (each run adds its own).
            try Self.contents(empty, [.evaluation, .evaluationUsers, .evaluationHeadItems], ignoring: ["run_id"],
                              filter: "run_id = (SELECT max(run_id) FROM evaluation_runs)")
        }))
        steps.append(Step(job: nil, label: "ingest new interactions", run: { () throws -> Void in
            try run(try IngestStage(config: IngestStage.Config(sources: [moreFile])))
        }))
        // Each feedback run adds its figures; on unchanged input they are the same.
        steps.append(Step(job: FeedbackStage.self, label: "feedback", run: { () throws -> Void in
            try run(try FeedbackStage(config: FeedbackStage.Config()))
        }, unchangedOnRerun: {
            try Self.contents(empty, [.closedLoop], ignoring: ["run_id", "created_at"],
                              filter: "run_id = (SELECT max(run_id) FROM closed_loop)")
        }))
        steps.append(Step(job: nil, label: "score again", run: score))
        // A rollback is a toggle: the second one puts back the set the first took down.
        steps.append(Step(job: RollbackStage.self, label: "rollback", run: { () throws -> Void in try run(RollbackStage()) },
                          unchangedOnRerun: nil, restoredByRerun: {
            try Self.contents(empty, [.recommendations, .liveRecommendations])
        }))
        steps.append(Step(job: PruneStage.self, label: "prune", run: { () throws -> Void in
            try run(try PruneStage(config: PruneStage.Config()))
        }, unchangedOnRerun: { try Self.contents(empty, allTables) }))
        // The report reads only: the database is as it was, however often it runs.
        steps.append(Step(job: ReportJob.self, label: "report", run: { () throws -> Void in
            _ = try ReportJob(out: scratch.path("report.html")).run(empty)
        }, unchangedOnRerun: { try Self.contents(empty, allTables) }))
        steps.append(Step(job: SynthJob.self, label: "synth", run: { () throws -> Void in
            var config = Synth.Config()
            config.users = 50
            config.items = 20
            config.interactions = 500
            config.topics = 4
            _ = try Synth(config: config).write(to: scratch.path("synth.csv"))
        }))
        #expect(Set(steps.compactMap { $0.job?.name }) == Set(allJobs.map { $0.name }), "the walk covers every job")
        for step in steps {
            guard let job = step.job else {
                try step.run()
                continue
            }
            let original = try step.restoredByRerun?()
            let (_, accesses) = try TableAccess.recording { try step.run() }
            let problems = Self.undeclared(accesses, job, database: empty.path)
            #expect(problems.isEmpty, "\(step.label): \(problems.joined(separator: "; "))")
            // A job that changes the database is seen doing it (the recording works).
            if !job.writes.isEmpty { #expect(accesses.contains { $0.isWrite && $0.isIn(empty.path) }, "\(step.label) wrote nothing") }
            if job.name != SynthJob.name {
                #expect(accesses.contains { !$0.isWrite && !Self.isBookkeeping($0.table) }, "\(step.label) read nothing")
            }
            if let state = step.unchangedOnRerun {
                let before = try state()
                #expect(!before.isEmpty)
                let (_, again) = try TableAccess.recording { try step.run() }
                #expect(Self.undeclared(again, job, database: empty.path).isEmpty)
                let after = try state()
                let changed = before.keys.sorted().filter { before[$0] != after[$0] }
                #expect(changed.isEmpty, "rerunning \(step.label) on unchanged input changed \(changed)")
            }
            if let state = step.restoredByRerun, let original {
                #expect(try state() != original, "\(step.label) changed nothing")
                let (_, again) = try TableAccess.recording { try step.run() }
                #expect(Self.undeclared(again, job, database: empty.path).isEmpty)
                let after = try state()
                let changed = original.keys.sorted().filter { original[$0] != after[$0] }
                #expect(changed.isEmpty, "running \(step.label) twice did not restore \(changed)")
            }
        }
    }

    /// The recording sees both paths to SQLite (GRDB's connections and the bulk one), and
    /// the undeclared check catches a table a job does not declare.
    @Test func recordingSeesGRDBAndBulkConnectionsAndCatchesUndeclaredTables() throws {
        let scratch = Scratch()
        let store = try scratch.store()
        let (_, accesses) = try TableAccess.recording {
            _ = try store.queue.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM users") }
            try store.bulkConnection().execute("DELETE FROM closed_loop")
        }
        #expect(accesses.contains { $0.kind == .read && $0.table == "users" && $0.isIn(store.path) })
        #expect(accesses.contains { $0.kind == .delete && $0.table == "closed_loop" && $0.isIn(store.path) })
        let problems = Self.undeclared(accesses, CleanStage.self, database: store.path)
        #expect(problems.contains("clean: delete closed_loop is not declared"))
        #expect(!problems.contains { $0.contains("users") })
        #expect(Self.undeclared(accesses, CleanStage.self, database: scratch.path("other.sqlite")).isEmpty)
        // Outside a recording nothing is recorded.
        let (_, none) = try TableAccess.recording {}
        #expect(none.isEmpty)
    }
}
