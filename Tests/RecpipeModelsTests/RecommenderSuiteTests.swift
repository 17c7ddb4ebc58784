import Foundation
import RecpipeTestSupport
import Testing
@testable import RecpipeModels
@testable import RecpipeNumerics

/// Every recommender must pass these: a fixture whose right answer is known, and a store
/// round trip that gives back the same scores bit for bit.
@Suite(.tags(.large)) struct RecommenderSuiteTests {
    /// Two communities: users 0..<40 take items from 0..<10, users 40..<80 from 10..<20, each
    /// user 6 items of their community, chosen at random.
    static func communities() -> CSRMatrix {
        var rng = SeededRandom(seed: 21)
        return CSRMatrix(cols: 20, rowsOfColumns: (0..<80).map { u in
            let base = u < 40 ? 0 : 10
            return rng.sample(6, from: 10).map { Int32(base + $0) }.sorted()
        })
    }

    static func fit(_ kind: ModelKind, _ train: CSRMatrix) throws -> any StorableModel {
        switch kind {
        case .multvae, .multdae:
            var config = MultVAE.Config(kind: kind == .multvae ? .vae : .dae)
            config.hidden = 16
            config.latent = 4
            config.epochs = 60
            config.batchSize = 20
            config.learningRate = 1e-2
            config.patience = nil
            return try MultVAE.fit(train: train, validation: nil, config: config).model
        case .ease: return try EASE.fit(train: train, lambda: 20)
        case .edlae: return try EASE.fit(train: train, lambda: 10, dropout: 0.25)
        case .itemknn: return ItemKNN.fit(train: train, neighbours: 9, shrink: 1)
        case .ials:
            var config = IALS.Config()
            config.factors = 4
            config.iterations = 8
            return IALS.fit(train: train, config: config)
        case .popularity: return Popularity(train: train)
        case .cfgan:
            var config = CFGAN.Config()
            config.generatorHidden = [16]
            config.discriminatorHidden = [8]
            config.epochs = 200
            config.batchSize = 20
            config.generatorLearningRate = 1e-3
            config.discriminatorLearningRate = 1e-3
            config.patience = nil
            return try CFGAN.fit(train: train, validation: nil, config: config).model
        }
    }

    @Test(arguments: ModelKind.allCases.filter { $0 != .popularity })
    func personalisedModelsRecommendTheUsersCommunity(kind: ModelKind) throws {
        let model = try Self.fit(kind, Self.communities())
        // New users holding three items of one community each.
        let foldIn = CSRMatrix(cols: 20, rowsOfColumns: [[0, 1, 2], [13, 15, 17]])
        var lists: [[Int32]] = []
        try model.rankedLists(foldIn, k: 7) { _, items, _, _ in lists.append(items) }
        #expect(lists[0].allSatisfy { $0 < 10 && ![0, 1, 2].contains($0) }, "\(kind): \(lists[0])")
        #expect(lists[1].allSatisfy { $0 >= 10 && ![13, 15, 17].contains($0) }, "\(kind): \(lists[1])")
    }

    @Test func popularityRanksByTrainingUsers() throws {
        let train = CSRMatrix(cols: 4, rowsOfColumns: [[0, 2], [2], [2, 3], [3]])
        var lists: [[Int32]] = []
        try Popularity(train: train).rankedLists(CSRMatrix(cols: 4, rowsOfColumns: [[3]]), k: 3) { _, items, _, _ in lists.append(items) }
        #expect(lists == [[2, 0, 1]])
    }

    /// Tensors held in memory, as a store would give them back.
    struct MemoryTensors: TensorReader {
        var tensors: [String: (TensorInfo, [UInt8])] = [:]

        init(_ model: some StorableModel) {
            model.forEachTensor { info, bytes in tensors[info.name] = (info, Array(bytes)) }
        }

        func info(_ name: String) throws -> TensorInfo {
            guard let t = tensors[name] else { throw ModelError.shapeMismatch("tensor \(name) is missing") }
            return t.0
        }

        func read(_ name: String, into buffer: UnsafeMutableRawBufferPointer) throws {
            let bytes = tensors[name]!.1
            guard bytes.count == buffer.count else { throw ModelError.shapeMismatch("tensor \(name): wrong size") }
            bytes.withUnsafeBytes { buffer.copyMemory(from: $0) }
        }
    }

    @Test(arguments: ModelKind.allCases)
    func restoredModelsScoreBitForBit(kind: ModelKind) throws {
        let train = Self.communities()
        let model = try Self.fit(kind, train)
        #expect(model.kind == kind)
        #expect(model.tensorInfos.map(\.name) == MemoryTensors(model).tensors.keys.sorted { a, b in
            model.tensorInfos.firstIndex { $0.name == a }! < model.tensorInfos.firstIndex { $0.name == b }! })
        let restored = try StoredModels.restore(kind: kind, items: model.items, hyperparameters: try model.hyperparametersJSON(),
                                                from: MemoryTensors(model))
        #expect(try restored.hyperparametersJSON() == (try model.hyperparametersJSON()))
        var before: [[Float]] = [], after: [[Float]] = []
        model.scores(train, batchSize: 32) { _, s in before.append(Array(s)) }
        restored.scores(train, batchSize: 32) { _, s in after.append(Array(s)) }
        #expect(before == after)
    }

    @Test func aTensorOfTheWrongShapeIsRefused() throws {
        let model = try Self.fit(.ease, Self.communities())
        var tensors = MemoryTensors(model)
        tensors.tensors["weights"]!.0.shape = [20, 19]
        #expect(throws: ModelError.self) {
            _ = try StoredModels.restore(kind: .ease, items: 20, hyperparameters: #"{"lambda":1}"#, from: tensors)
        }
        #expect(throws: ModelError.self) {
            _ = try StoredModels.restore(kind: .multvae, items: 20, hyperparameters: #"{"lambda":1}"#, from: tensors)
        }
    }
}
