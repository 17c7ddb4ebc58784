import Foundation
import GRDB
import RecpipeTestSupport
import Testing
@testable import RecpipeModels
@testable import RecpipeStages
@testable import RecpipeStore

@Suite(.tags(.medium)) struct TrainStageTests {
    /// A small synthetic log, ingested and cleaned.
    func prepared(seed: UInt64 = 5, users: Int = 300) throws -> (Scratch, Store) {
        let scratch = Scratch()
        var config = Synth.Config()
        config.users = users
        config.items = 120
        config.interactions = users * 25
        config.topics = 6
        config.seed = seed
        try Synth(config: config).write(to: scratch.path("events.csv"))
        let store = try scratch.store()
        try ingest(store, [scratch.path("events.csv")])
        try clean(store) { $0.minRating = nil; $0.heldOutUsers = 30 }
        return (scratch, store)
    }

    /// Ingests 40 new users of 6 new items each and cleans again: the item index changes.
    func addUsersWithNewItems(_ store: Store, _ scratch: Scratch) throws {
        var more = "user_id,item_id,timestamp\n"
        for u in 0..<40 { for i in 0..<6 { more += "new\(u),fresh\(i),\(1_800_000_000 + u)\n" } }
        try ingest(store, [scratch.write("more.csv", more)])
        try clean(store) { $0.minRating = nil; $0.heldOutUsers = 30 }
    }

    func small(_ configure: (inout TrainStage.Config) -> Void = { _ in }) throws -> TrainStage {
        var config = TrainStage.Config()
        config.model.hidden = 24
        config.model.latent = 8
        config.model.epochs = 6
        config.model.batchSize = 64
        configure(&config)
        return try TrainStage(config: config)
    }

    @Test func trainsStoresAndPublishes() throws {
        let (scratch, store) = try prepared()
        _ = scratch
        try StageRunner.run(try small(), store: store, logger: quietLogger)
        try store.queue.read { db throws in
            let model = try Row.fetchOne(db, sql: "SELECT * FROM models")!
            #expect(model["status"] as String == "published")
            #expect(model["kind"] as String == "multvae")
            #expect(model["epochs"] as Int == 6)
            #expect((model["validation_metrics"] as String).contains("ndcg@100"))
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM training_log") == 6)
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM model_weights") == 8)
            // Every stage run records its process's peak memory: here at least the weights.
            let peaks = try Double.fetchAll(db, sql: "SELECT peak_rss_mb FROM stage_runs ORDER BY run_id")
            #expect(peaks.count == 3 && peaks.allSatisfy { $0 > 1 }, "\(peaks)")
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM model_items")
                    == (try Int.fetchOne(db, sql: "SELECT count(*) FROM items")))
        }
        // A second model is published and the first retired.
        try StageRunner.run(try small { $0.kind = .multdae; $0.model.hidden = 16 }, store: store, logger: quietLogger)
        try StageRunner.run(try small(), store: store, logger: quietLogger)
        let statuses = try store.queue.read { try String.fetchAll($0, sql: "SELECT kind || ':' || status FROM models ORDER BY model_id") }
        #expect(statuses == ["multvae:retired", "multdae:published", "multvae:published"])
        // Same data and seed: the same weights.
        let (a, _) = try store.queue.read { try ModelStore.loadVAE(1, in: $0) }
        let (b, _) = try store.queue.read { try ModelStore.loadVAE(3, in: $0) }
        #expect(a.parameters == b.parameters)
    }

    @Test func theQualityGateKeepsAWorseModelFromGoingLive() throws {
        let (scratch, store) = try prepared()
        _ = scratch
        try StageRunner.run(try small { $0.model.epochs = 15 }, store: store, logger: quietLogger)
        // Barely trained: one epoch at a tiny learning rate.
        let report = try StageRunner.run(try small { $0.model.epochs = 1; $0.model.learningRate = 1e-6 },
                                         store: store, logger: quietLogger)
        #expect(report.summary.contains { $0.hasPrefix("not published: validation NDCG@100") })
        #expect(try store.queue.read { try String.fetchAll($0, sql: "SELECT status FROM models ORDER BY model_id") }
                == ["published", "candidate"])
        // A margin wide enough lets the same model through the gate, which says so.
        let lenient = try StageRunner.run(try small { $0.model.epochs = 1; $0.model.learningRate = 1e-6; $0.publishMargin = 1 },
                                          store: store, logger: quietLogger)
        #expect(lenient.summary.contains { $0.contains("quality gate passed") }, "\(lenient.summary)")
        #expect(try store.queue.read { try String.fetchAll($0, sql: "SELECT status FROM models ORDER BY model_id") }
                == ["retired", "candidate", "published"])
        // Without the gate it goes live.
        try StageRunner.run(try small { $0.model.epochs = 1; $0.model.learningRate = 1e-6; $0.publishMargin = nil },
                            store: store, logger: quietLogger)
        #expect(try store.queue.read { try String.fetchAll($0, sql: "SELECT status FROM models ORDER BY model_id") }
                == ["retired", "candidate", "retired", "published"])
    }

    @Test func aModelLoadsBackBitForBit() throws {
        let (scratch, store) = try prepared()
        _ = scratch
        let data = try TrainingData.load(store)
        var config = MultVAE.Config()
        config.hidden = 16
        config.latent = 4
        config.epochs = 2
        let result = try MultVAE.fit(train: data.train, validation: data.validation, config: config)
        let id = try store.queue.write { db in
            try ModelStore.save(result, data: data, runID: try Int64.fetchOne(db, sql: "SELECT max(run_id) FROM stage_runs")!,
                                seconds: 1, warmStartFrom: nil, publish: false, in: db)
        }
        let (loaded, record) = try store.queue.read { try ModelStore.loadVAE(id, in: $0) }
        #expect(loaded.parameters.count == result.model.parameters.count)
        #expect(zip(loaded.parameters, result.model.parameters).allSatisfy { $0.bitPattern == $1.bitPattern })
        #expect(loaded.config == result.model.config)
        #expect(record.itemKeys == data.itemKeys && record.status == "candidate")
    }

    @Test func warmStartRemapsItemsByKey() throws {
        let (scratch, store) = try prepared()
        try StageRunner.run(try small(), store: store, logger: quietLogger)
        // More data with new items: the item index changes.
        try addUsersWithNewItems(store, scratch)
        // A learning rate too small to move a float32 weight: the stored model holds the
        // warm start's copy exactly as made.
        try StageRunner.run(try small { $0.warmStart = true; $0.model.epochs = 1; $0.model.learningRate = 1e-30 },
                            store: store, logger: quietLogger)
        try store.queue.read { db throws in
            #expect(try Int64.fetchOne(db, sql: "SELECT warm_start_from FROM models WHERE model_id = 2") == 1)
        }
        let (first, firstRecord) = try store.queue.read { try ModelStore.loadVAE(1, in: $0) }
        let (second, secondRecord) = try store.queue.read { try ModelStore.loadVAE(2, in: $0) }
        #expect(secondRecord.itemKeys == (try TrainingData.load(store)).itemKeys)
        // An old item's encoder row lands, whole, at the item's new position; a new item's row
        // is freshly initialised.
        let position = Dictionary(uniqueKeysWithValues: firstRecord.itemKeys.enumerated().map { ($1, $0) })
        let mapping = secondRecord.itemKeys.map { position[$0] }
        #expect(mapping.contains(nil) && mapping.contains { $0 != nil } && mapping.compactMap { $0 } != Array(mapping.indices))
        let hidden = first.config.hidden
        let encoder = second.tensor("encoder.0.weight")!, oldEncoder = first.tensor("encoder.0.weight")!
        func row(_ model: MultVAE, _ offset: Int, _ item: Int) -> [Float] {
            Array(model.parameters[(offset + item * hidden)..<(offset + (item + 1) * hidden)])
        }
        var copied = 0, fresh = 0
        for (new, old) in mapping.enumerated() {
            if let old {
                #expect(row(second, encoder.offset, new) == row(first, oldEncoder.offset, old), "item \(secondRecord.itemKeys[new])")
                copied += 1
            } else {
                #expect(!firstRecord.itemKeys.indices.contains { row(second, encoder.offset, new) == row(first, oldEncoder.offset, $0) })
                fresh += 1
            }
        }
        #expect(copied > 0 && fresh > 0)
    }

    /// iALS warm-starts from the published iALS: its item factors start at the items' new
    /// positions (one iteration later they are still close to them, where a cold start's are
    /// not), and the model records where it started from.
    @Test func iALSWarmStartCopiesItemFactorsByKey() throws {
        let (scratch, store) = try prepared()
        func ials(_ configure: (inout TrainStage.Config) -> Void = { _ in }) throws -> TrainStage {
            try small {
                $0.kind = .ials
                $0.ials.factors = [8]
                $0.ials.regularizations = [1]
                $0.ials.alphas = [10]
                $0.ials.iterations = 10
                $0.publishMargin = nil
                configure(&$0)
            }
        }
        try StageRunner.run(try ials(), store: store, logger: quietLogger)
        try addUsersWithNewItems(store, scratch)
        try StageRunner.run(try ials { $0.warmStart = true; $0.ials.iterations = 1 }, store: store, logger: quietLogger)
        try StageRunner.run(try ials { $0.ials.iterations = 1; $0.publish = false }, store: store, logger: quietLogger)
        #expect(try store.queue.read { try Int64.fetchOne($0, sql: "SELECT warm_start_from FROM models WHERE model_id = 2") } == 1)
        #expect(try store.queue.read { try Int64.fetchOne($0, sql: "SELECT warm_start_from FROM models WHERE model_id = 3") } == nil)
        let loaded = try (1...3).map { id in try store.queue.read { try ModelStore.load(Int64(id), in: $0) } }
        let (first, warm, cold) = (try #require(loaded[0].0 as? IALS), try #require(loaded[1].0 as? IALS), try #require(loaded[2].0 as? IALS))
        let position = Dictionary(uniqueKeysWithValues: loaded[0].1.itemKeys.enumerated().map { ($1, $0) })
        func meanCosine(_ model: IALS) -> Double {
            var sum = 0.0, n = 0
            for (new, key) in loaded[1].1.itemKeys.enumerated() {
                guard let old = position[key] else { continue }
                let x = model.itemFactors[(new * 8)..<((new + 1) * 8)], y = first.itemFactors[(old * 8)..<((old + 1) * 8)]
                let dot = zip(x, y).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
                let norms = (x.reduce(0.0) { $0 + Double($1 * $1) } * y.reduce(0.0) { $0 + Double($1 * $1) }).squareRoot()
                sum += norms > 0 ? dot / norms : 0
                n += 1
            }
            return n > 0 ? sum / Double(n) : 0
        }
        #expect(loaded[1].1.itemKeys.contains { position[$0] == nil }, "the second split has new items")
        let (w, c) = (meanCosine(warm), meanCosine(cold))
        #expect(w > 0.9 && w > c + 0.2, "mean cosine to the previous factors: warm \(w), cold \(c)")
        // Warm starts apply to the models that train from weights.
        #expect(throws: StageError.self) { try small { $0.kind = .ease; $0.warmStart = true } }
    }

    @Test func aRetrainThresholdKeepsTheModelWhileTheDataBarelyGrew() throws {
        let (scratch, store) = try prepared()
        func ease(_ lambda: Float = 100, threshold: Double?) throws -> StageReport {
            try StageRunner.run(try small {
                $0.kind = .ease
                $0.ease.lambdas = [lambda]
                $0.retrainThreshold = threshold
            }, store: store, logger: quietLogger)
        }
        func models() throws -> Int { try count(store, "models") }
        func carried() throws -> [[Int64]] {
            try store.queue.read { try Row.fetchAll($0, sql: "SELECT model_id, clean_run_id FROM model_carryovers ORDER BY clean_run_id") }
                .map { [$0["model_id"], $0["clean_run_id"]] }
        }
        func latestClean() throws -> Int64 { try store.queue.read { try Split.latestRun(in: $0)!.runID } }
        func rawRows() throws -> Int { try store.queue.read { try Split.latestRun(in: $0)!.rawRows } }

        _ = try ease(threshold: 0.05)
        #expect(try models() == 1, "nothing published yet: trained")
        // Again on the same split: nothing to do, nothing to record.
        let same = try ease(threshold: 0.05)
        #expect(try models() == 1 && carried().isEmpty)
        #expect(same.summary.joined().contains("model 1 (ease) was trained on the current split"), "\(same.summary)")
        let base = try rawRows()
        // Two new users of six rows each: far below 5% of the raw rows.
        var more = "user_id,item_id,timestamp\n"
        for u in 0..<2 { for i in 0..<6 { more += "late\(u),\(i),\(1_800_000_000 + u)\n" } }
        try ingest(store, [scratch.write("late.csv", more)])
        try clean(store) { $0.minRating = nil; $0.heldOutUsers = 30 }
        #expect(try rawRows() == base + 12)
        let kept = try ease(threshold: 0.05)
        #expect(try models() == 1, "kept, not retrained")
        #expect(kept.summary.joined().contains("model 1 (ease) kept"), "\(kept.summary)")
        #expect(try carried() == [[1, try latestClean()]])
        // Evaluate and score take the kept model as a model of the current split.
        let data = try TrainingData.load(store)
        #expect(try store.queue.read { try Models.onSplit(fingerprint: data.fingerprint, cleanRun: data.cleanRunID, in: $0) } == [1])
        try StageRunner.run(try EvaluateStage(config: EvaluateStage.Config()), store: store, logger: quietLogger)
        #expect(try store.queue.read { try Int64.fetchOne($0, sql: "SELECT DISTINCT model_id FROM evaluation WHERE model = 'ease'") } == 1)
        // Another λ is another model: trained.
        _ = try ease(200, threshold: 0.05)
        #expect(try models() == 2)
        // Growth is counted from the split the published model was trained on, not from the
        // previous night: 240 new rows are 3% of it, over a 2% threshold.
        try addUsersWithNewItems(store, scratch)
        _ = try ease(200, threshold: 0.5)
        #expect(try models() == 2 && carried().count == 2)
        _ = try ease(200, threshold: 0.02)
        #expect(try models() == 3, "3% more raw rows than model 2's split")
        // Other clean settings make another split: trained whatever the threshold.
        try clean(store) { $0.minRating = nil; $0.heldOutUsers = 31 }
        _ = try ease(200, threshold: 1)
        #expect(try models() == 4)
        // Models that train from weights warm-start instead; the share is a share.
        #expect(throws: StageError.self) { try small { $0.retrainThreshold = 0.05 } }
        #expect(throws: StageError.self) { try small { $0.kind = .ease; $0.retrainThreshold = 5 } }
        #expect(throws: StageError.self) { try small { $0.kind = .ease; $0.retrainThreshold = 0.05; $0.publish = false } }
    }

    @Test func divergenceFailsTheStageAndStoresNothing() throws {
        let (scratch, store) = try prepared()
        _ = scratch
        let error = #expect(throws: StageError.self) {
            try StageRunner.run(try small { $0.model.learningRate = 1e30 }, store: store, logger: quietLogger)
        }
        guard case .trainingFailed(let message)? = error else { Issue.record("expected trainingFailed, got \(String(describing: error))"); return }
        #expect(message.hasSuffix("no model stored"), "\(message)")
        #expect(try count(store, "models") == 0)
        #expect(try store.queue.read { try String.fetchOne($0, sql: "SELECT status FROM stage_runs ORDER BY run_id DESC") } == "failed")
    }

    @Test func trainingWithoutACleanRunFails() throws {
        let scratch = Scratch()
        let store = try scratch.store()
        let error = #expect(throws: StageError.self) { try StageRunner.run(try small(), store: store, logger: quietLogger) }
        guard case .missingInput? = error else { Issue.record("expected missingInput, got \(String(describing: error))"); return }
    }
}
