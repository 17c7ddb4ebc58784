import Foundation
import GRDB
import RecpipeTestSupport
import Testing
@testable import RecpipeModels
@testable import RecpipeStages
@testable import RecpipeStore

@Suite(.tags(.medium)) struct ModelStoreTests {
    @Test(arguments: [ModelKind.ease, .edlae, .itemknn, .ials, .popularity, .multdae, .cfgan])
    func everyKindRoundTripsThroughChunkedTensors(kind: ModelKind) throws {
        let (scratch, store) = try TrainStageTests().prepared()
        _ = scratch
        let data = try TrainingData.load(store)
        let model: any StorableModel
        switch kind {
        case .ease: model = try EASE.fit(train: data.train, lambda: 50)
        case .edlae: model = try EASE.fit(train: data.train, lambda: 20, dropout: 0.3)
        case .itemknn: model = ItemKNN.fit(train: data.train, neighbours: 10, shrink: 5)
        case .ials:
            var config = IALS.Config()
            config.factors = 6
            config.iterations = 3
            model = IALS.fit(train: data.train, config: config)
        case .popularity: model = Popularity(train: data.train)
        case .multvae, .multdae:
            var config = MultVAE.Config(kind: .dae)
            config.hidden = 12
            config.epochs = 2
            model = try MultVAE.fit(train: data.train, validation: nil, config: config).model
        case .cfgan:
            var config = CFGAN.Config()
            config.generatorHidden = [10]
            config.discriminatorHidden = [6]
            config.epochs = 2
            model = try CFGAN.fit(train: data.train, validation: nil, config: config).model
        }
        // 1 KB chunks: every tensor over 256 values is split.
        let id = try store.queue.write { db in
            try ModelStore.save(model, outcome: .init(), data: data, runID: 1, seconds: 0, warmStartFrom: nil,
                                publish: true, chunkBytes: 1024, in: db)
        }
        try store.queue.read { db throws in
            for info in model.tensorInfos {
                let chunks = try Int.fetchOne(db, sql: "SELECT count(*) FROM model_weights WHERE model_id = ? AND tensor = ?",
                                              arguments: [id, info.name])!
                #expect(chunks == max(1, (info.bytes + 1023) / 1024), "\(info.name)")
                #expect(try String.fetchOne(db, sql: "SELECT DISTINCT dtype FROM model_weights WHERE model_id = ? AND tensor = ?",
                                            arguments: [id, info.name]) == info.type.rawValue)
            }
        }
        let (loaded, record) = try store.queue.read { try ModelStore.load(id, in: $0) }
        #expect(record.kind == kind && record.dataFingerprint == data.fingerprint && record.itemKeys == data.itemKeys)
        var before: [[Float]] = [], after: [[Float]] = []
        model.scores(data.validation.foldIn, batchSize: 50) { _, s in before.append(Array(s)) }
        loaded.scores(data.validation.foldIn, batchSize: 50) { _, s in after.append(Array(s)) }
        #expect(!before.isEmpty && before == after)

        // A missing chunk is found, not read as garbage.
        let big = model.tensorInfos.max { $0.bytes < $1.bytes }!
        if big.bytes > 1024 {
            try store.queue.write { db in
                try db.execute(sql: "DELETE FROM model_weights WHERE model_id = ? AND tensor = ? AND chunk = 1",
                               arguments: [id, big.name])
            }
            #expect(throws: StageError.self) { _ = try store.queue.read { try ModelStore.load(id, in: $0) } }
        }
    }

    @Test func baselinesAreTrainedTunedScoredAndGated() throws {
        let (scratch, store) = try TrainStageTests().prepared()
        _ = scratch
        try trainBaselines(store, [.ease])
        try store.queue.read { db throws in
            let row = try Row.fetchOne(db, sql: "SELECT * FROM models")!
            #expect(row["kind"] as String == "ease" && row["status"] as String == "published")
            let hyperparameters = try JSONSerialization.jsonObject(with: Data((row["hyperparameters"] as String).utf8)) as! [String: Any]
            #expect([10.0, 100.0].contains(hyperparameters["lambda"] as! Double))
            #expect((hyperparameters["selection"] as! [Any]).count == 2, "both settings tried are recorded")
            #expect((row["validation_metrics"] as String).contains("ndcg@100"))
            #expect(row["best_epoch"] as Int? == nil)
        }
        // Scoring works for a baseline like for the VAE.
        var score = ScoreStage.Config()
        score.kind = .ease
        score.k = 5
        try StageRunner.run(try ScoreStage(config: score), store: store, logger: quietLogger)
        try store.queue.read { db throws in
            #expect(try Int64.fetchAll(db, sql: "SELECT DISTINCT model_id FROM recommendations") == [1])
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM recommendations")
                    == 5 * (try Int.fetchOne(db, sql: "SELECT count(*) FROM users"))!)
        }
        // An absurd λ does not pass the gate against the live EASE.
        var bad = TrainStage.Config()
        bad.kind = .ease
        bad.ease.lambdas = [1e7]
        let report = try StageRunner.run(try TrainStage(config: bad), store: store, logger: quietLogger)
        #expect(report.summary.contains { $0.hasPrefix("not published") }, "\(report.summary)")
        #expect(try store.queue.read { try String.fetchAll($0, sql: "SELECT status FROM models ORDER BY model_id") }
                == ["published", "candidate"])
        // Asking for a model that is not there is a clear error.
        score.kind = .ials
        #expect(throws: StageError.self) { try StageRunner.run(try ScoreStage(config: score), store: store, logger: quietLogger) }
        var warm = TrainStage.Config()
        warm.kind = .itemknn
        warm.warmStart = true
        #expect(throws: StageError.self) { try TrainStage(config: warm) }
    }

    @Test func evaluationTakesModelsOfTheCurrentSplitOnly() throws {
        let (scratch, store) = try TrainStageTests().prepared()
        _ = scratch
        try trainBaselines(store, [.ease, .popularity])
        // A new split (another seed): the EASE model above no longer fits it.
        try clean(store) { $0.minRating = nil; $0.heldOutUsers = 30; $0.seed = 7 }
        try trainBaselines(store, [.itemknn])
        let report = try StageRunner.run(try EvaluateStage(config: .init()), store: store, logger: quietLogger)
        try store.queue.read { db throws in
            let evaluated = try Row.fetchAll(db, sql: "SELECT DISTINCT model, model_id FROM evaluation ORDER BY model")
                .map { "\($0["model"] as String):\(($0["model_id"] as Int64?).map(String.init) ?? "-")" }
            #expect(evaluated == ["itemknn:3", "popularity:-"], "the stale EASE and popularity models are left out")
        }
        #expect(report.summary.contains { $0.contains("not evaluated") && $0.contains("ease") && $0.contains("ials") })
    }
}
