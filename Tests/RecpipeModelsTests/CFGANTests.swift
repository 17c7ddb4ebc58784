import Foundation
import RecpipeTestSupport
import Testing
@testable import RecpipeModels
@testable import RecpipeNumerics

@Suite(.tags(.medium)) struct CFGANTests {
    /// A small model with random biases too, so every path carries signal.
    func model(saturating: Bool) -> CFGAN {
        var config = CFGAN.Config()
        config.generatorHidden = [5]
        config.discriminatorHidden = [4, 3]
        config.zrRatio = 0.5
        config.pmRatio = 0.5
        config.zrCoefficient = 0.4
        config.generatorL2 = 0.05
        config.discriminatorL2 = 0.03
        config.saturatingLoss = saturating
        var model = CFGAN(items: 8, config: config)
        var rng = SeededRandom(seed: 4)
        model.initialize(rng: &rng)
        for k in model.generator.indices { model.generator[k] += 0.5 * (2 * rng.uniformFloat() - 1) }
        for k in model.discriminator.indices { model.discriminator[k] += 0.5 * (2 * rng.uniformFloat() - 1) }
        return model
    }

    let users = CSRMatrix(cols: 8, rowsOfColumns: [[0, 2, 5], [1, 7], [3, 4, 6, 7]])

    /// The batch's masks and the generator's output, as a training step sets them up.
    func prepared(_ model: CFGAN) -> CFGAN.Workspace {
        let w = CFGAN.Workspace()
        w.reserve(batch: users.rows, g: model.g, d: model.d)
        model.sampleMasks(users, users: [10, 11, 12], seed: 5, w)
        model.generate(users, w)
        model.maskFake(w, rows: users.rows)
        return w
    }

    /// D's loss including its L2 penalty, and its gradient.
    func discriminatorLoss(_ model: CFGAN) -> (Double, [Float]) {
        let w = prepared(model)
        var gradients = [Float](repeating: 0, count: model.discriminator.count)
        let loss = model.discriminatorStep(users, w, gradients: &gradients)
        return (loss + model.l2Penalty().discriminator, gradients)
    }

    /// G's loss (adversarial + ZR + L2), and its gradient.
    func generatorLoss(_ model: CFGAN) -> (Double, [Float]) {
        let w = prepared(model)
        var gradients = [Float](repeating: 0, count: model.generator.count)
        let (adversarial, zr) = model.generatorStep(users, w, gradients: &gradients)
        return (adversarial + zr + model.l2Penalty().generator, gradients)
    }

    /// Central differences at every parameter against the analytic gradient.
    func check(_ name: String, _ values: inout [Float], analytic: [Float], loss: ([Float]) -> Double) {
        var worst = 0.0
        let step: Float = 1e-2
        for k in values.indices {
            let saved = values[k]
            values[k] = saved + step
            let up = loss(values)
            values[k] = saved - step
            let down = loss(values)
            values[k] = saved
            let numeric = (up - down) / (2 * Double(step))
            worst = max(worst, abs(numeric - Double(analytic[k])) / max(1e-2, abs(numeric)))
        }
        #expect(worst < 2e-2, "\(name): worst relative error \(worst)")
    }

    @Test(arguments: [true, false])
    func gradientsMatchFiniteDifferences(saturating: Bool) {
        var model = model(saturating: saturating)
        let (_, dGradient) = discriminatorLoss(model)
        #expect(dGradient.contains { abs($0) > 1e-3 })
        var d = model.discriminator
        check("discriminator", &d, analytic: dGradient) { values in
            var m = model
            m.discriminator = values
            return discriminatorLoss(m).0
        }
        let (_, gGradient) = generatorLoss(model)
        #expect(gGradient.contains { abs($0) > 1e-3 })
        var g = model.generator
        check("generator (\(saturating ? "saturating" : "non-saturating"))", &g, analytic: gGradient) { values in
            var m = model
            m.generator = values
            return generatorLoss(m).0
        }
        model.generator = g
    }

    @Test func masksCoverTheUsersItemsAndSampleTheRest() {
        var config = CFGAN.Config()
        config.generatorHidden = [4]
        config.discriminatorHidden = [4]
        let model = CFGAN(items: 2000, config: config)
        let x = CSRMatrix(cols: 2000, rowsOfColumns: [[3, 500, 1999], []])
        let w = CFGAN.Workspace()
        w.reserve(batch: 2, g: model.g, d: model.d)
        model.sampleMasks(x, users: [7, 8], seed: 1, w)
        for item in [3, 500, 1999] {
            #expect(w.pm.p[item] == 1)
            #expect(w.zr.p[item] == 0)
        }
        // About 70% of the other items in each mask, drawn independently.
        for mask in [w.pm.p, w.zr.p] {
            let share = Double((0..<4000).filter { mask[$0] == 1 }.count) / 4000
            #expect(abs(share - 0.7) < 0.03, "share \(share)")
        }
        let both = Double((0..<4000).filter { w.pm.p[$0] == 1 && w.zr.p[$0] == 1 }.count) / 4000
        #expect(abs(both - 0.49) < 0.04, "ZR and PM samples should be independent: \(both)")
        // The same seed and users give the same masks.
        let again = CFGAN.Workspace()
        again.reserve(batch: 2, g: model.g, d: model.d)
        model.sampleMasks(x, users: [7, 8], seed: 1, again)
        #expect((0..<4000).allSatisfy { w.pm.p[$0] == again.pm.p[$0] && w.zr.p[$0] == again.zr.p[$0] })
    }

    @Test func aCollapsedGeneratorIsDetected() throws {
        var config = CFGAN.Config()
        config.generatorHidden = [4]
        config.discriminatorHidden = [4]
        var model = CFGAN(items: 10, config: config)
        var rng = SeededRandom(seed: 2)
        model.initialize(rng: &rng)
        let x = CSRMatrix(cols: 10, rowsOfColumns: [[0, 1], [5, 6], [2, 9]])
        #expect(model.outputSpread(x) > CFGAN.collapseSpread)
        // Zero first-layer weights: the output no longer depends on the input.
        for k in model.g.weight[0]..<model.g.bias[0] { model.generator[k] = 0 }
        #expect(model.outputSpread(x) < CFGAN.collapseSpread)
    }

    @Test func trainingIsSeededAndLogsEveryEpoch() throws {
        var config = CFGAN.Config()
        config.generatorHidden = [8]
        config.discriminatorHidden = [6]
        config.epochs = 4
        config.batchSize = 16
        config.evaluateEvery = 2
        let train = RecommenderSuiteTests.communities()
        let validation = ValidationSet(foldIn: CSRMatrix(cols: 20, rowsOfColumns: [[0, 1, 2], [12, 14]]),
                                       targets: [[3, 4], [11, 19]])
        let a = try CFGAN.fit(train: train, validation: validation, config: config)
        let b = try CFGAN.fit(train: train, validation: validation, config: config)
        #expect(a.model.generator == b.model.generator)
        #expect(a.log.map(\.epoch) == [1, 2, 3, 4])
        #expect(a.log.map { $0.validationNDCG != nil } == [false, true, false, true])
        #expect(a.log.allSatisfy { $0.discriminatorLoss.isFinite && $0.generatorLoss.isFinite && $0.zrLoss >= 0 })
        #expect([2, 4].contains(a.bestEpoch))
    }

    /// A warm start onto a reordered catalogue with new items: for users of the old items,
    /// the seeded model's generator scores the old items and its discriminator judges real
    /// pairs exactly as the old model did; new items keep their initial weights.
    @Test func warmStartRemapsEveryItemAxis() throws {
        let old = model(saturating: true)
        // New item n is old item mapping[n]; items 3 and 8 are new.
        let mapping: [Int?] = [7, 2, 0, nil, 5, 1, 6, 3, nil, 4]
        var seeded = CFGAN(items: mapping.count, config: old.config)
        var rng = SeededRandom(seed: 9)
        seeded.initialize(rng: &rng)
        let initial = seeded
        seeded.copyWeights(from: old, itemMapping: mapping)
        let oldRows: [[Int32]] = [[0, 2, 5], [1, 7], [3, 4, 6, 7]]
        let newIndex = Dictionary(uniqueKeysWithValues: mapping.enumerated().compactMap { n, o in o.map { ($0, Int32(n)) } })
        let oldUsers = CSRMatrix(cols: 8, rowsOfColumns: oldRows)
        let newUsers = CSRMatrix(cols: mapping.count, rowsOfColumns: oldRows.map { $0.map { newIndex[Int($0)]! }.sorted() })
        var before: [[Float]] = [], after: [[Float]] = []
        old.scores(oldUsers) { _, row in before.append(Array(row)) }
        seeded.scores(newUsers) { _, row in after.append(Array(row)) }
        for (u, row) in after.enumerated() {
            for (n, o) in mapping.enumerated() {
                if let o { #expect(abs(row[n] - before[u][o]) < 1e-6, "user \(u) item \(n)") }
            }
        }
        func realLogits(_ model: CFGAN, _ users: CSRMatrix) -> [Float] {
            let w = CFGAN.Workspace()
            w.reserve(batch: users.rows, g: model.g, d: model.d)
            model.discriminate(users, real: true, w)
            return Array(UnsafeBufferPointer(start: w.dActs[model.d.layers - 1].p, count: users.rows))
        }
        for (a, b) in zip(realLogits(seeded, newUsers), realLogits(old, oldUsers)) { #expect(abs(a - b) < 1e-5) }
        // A new item's input row and output column are the initial ones.
        let hidden = old.config.generatorHidden[0]
        for c in 0..<hidden {
            #expect(seeded.generator[seeded.g.weight[0] + 3 * hidden + c] == initial.generator[initial.g.weight[0] + 3 * hidden + c])
            #expect(seeded.generator[seeded.g.weight[1] + c * 10 + 8] == initial.generator[initial.g.weight[1] + c * 10 + 8])
        }
        #expect(seeded.generator[seeded.g.bias[1] + 8] == initial.generator[initial.g.bias[1] + 8])
        // fit starts from the seeded weights.
        var config = old.config
        config.epochs = 1
        config.learningRate(0)
        let train = CSRMatrix(cols: mapping.count, rowsOfColumns: [[0, 1, 2], [4, 5], [6, 7, 9], [1, 3]])
        let result = try CFGAN.fit(train: train, validation: nil, config: config, initial: seeded)
        #expect(result.model.generator == seeded.generator && result.model.discriminator == seeded.discriminator)
        // With validation, the starting weights are the epoch to beat: epochs that change
        // nothing do not replace them.
        config.epochs = 2
        config.evaluateEvery = 1
        let validation = ValidationSet(foldIn: CSRMatrix(cols: mapping.count, rowsOfColumns: [[0, 1], [4, 6]]), targets: [[2], [7]])
        let judged = try CFGAN.fit(train: train, validation: validation, config: config, initial: seeded)
        #expect(judged.bestEpoch == 0 && judged.log.count == 2 && judged.model.generator == seeded.generator)
    }
}

extension CFGAN.Config {
    /// Both learning rates at once.
    mutating func learningRate(_ rate: Float) {
        generatorLearningRate = rate
        discriminatorLearningRate = rate
    }
}
