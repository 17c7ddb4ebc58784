import Foundation
import RecpipeTestSupport
import Testing
@testable import RecpipeModels
@testable import RecpipeNumerics

@Suite(.tags(.medium)) struct IALSTests {
    @Test func conjugateGradientReachesTheExactSolve() {
        var rng = SeededRandom(seed: 4)
        let x = CSRMatrix(cols: 30, rowsOfColumns: (0..<12).map { _ in rng.sample(6, from: 30).map { Int32($0) }.sorted() })
        var config = IALS.Config()
        config.factors = 8
        config.iterations = 3
        let model = IALS.fit(train: x, config: config)
        let exact = model.userFactors(x)
        var approx = [Float](repeating: 0, count: exact.count)
        var many = config
        many.cgSteps = 50
        IALS.solveCG(&approx, fixed: model.itemFactors, ratings: x, config: many)
        for k in 0..<exact.count { #expect(abs(exact[k] - approx[k]) < 1e-3 * max(1, abs(exact[k]))) }
    }

    @Test(.enabled(if: referenceSplit() != nil, "needs ../shared/reference/ml-100k-split"))
    func movieLens100KIsInLineWithTheReference() throws {
        let split = try SplitFiles(directory: referenceSplit()!)
        let (ials, _) = IALS.tuned(train: split.train, validation: split.validation, factors: [32], regularizations: [1],
                                   alphas: [10])
        let test = Evaluation.meanNDCG(ials, split.test, k: 100)
        print("ml-100k iALS (32 factors, reg 1, α 10): test NDCG@100 \(test)")
        // ../shared/reference/README.md: iALS (implicit 0.7.3, same settings) 0.398, SE 0.020.
        #expect(abs(test - 0.398) < 0.03)
    }

    /// A warm start takes the given item rows as they are and starts the others as a cold fit
    /// does (same seed).
    @Test func warmStartKeepsTheGivenItemRows() {
        var rng = SeededRandom(seed: 5)
        let x = CSRMatrix(cols: 30, rowsOfColumns: (0..<40).map { _ in rng.sample(6, from: 30).map { Int32($0) }.sorted() })
        var config = IALS.Config()
        config.factors = 8
        let trained = IALS.fit(train: x, config: config)
        config.iterations = 0
        let cold = IALS.fit(train: x, config: config)
        let rows = (0..<30).map { i in i % 3 == 0 ? nil : Array(trained.itemFactors[(i * 8)..<((i + 1) * 8)]) }
        let warm = IALS.fit(train: x, config: config, initialItems: rows)
        for i in 0..<30 {
            let expected = i % 3 == 0 ? cold.itemFactors[(i * 8)..<((i + 1) * 8)] : trained.itemFactors[(i * 8)..<((i + 1) * 8)]
            #expect(Array(warm.itemFactors[(i * 8)..<((i + 1) * 8)]) == Array(expected), "item \(i)")
        }
    }

    /// On MovieLens 100K, two iterations from the item factors of a 15-iteration fit come
    /// within 0.01 validation NDCG@100 of it, and beat two iterations from scratch.
    @Test(.enabled(if: referenceSplit() != nil, "needs ../shared/reference/ml-100k-split"))
    func movieLens100KWarmStartNeedsFewIterations() throws {
        let split = try SplitFiles(directory: referenceSplit()!)
        var config = IALS.Config()
        config.factors = 32
        config.regularization = 1
        let full = IALS.fit(train: split.train, config: config)
        config.iterations = 2
        let short = IALS.fit(train: split.train, config: config)
        let rows = (0..<full.items).map { i in Array(full.itemFactors[(i * 32)..<((i + 1) * 32)]) }
        let warm = IALS.fit(train: split.train, config: config, initialItems: rows)
        let (f, s, w) = (Evaluation.meanNDCG(full, split.validation, k: 100), Evaluation.meanNDCG(short, split.validation, k: 100),
                         Evaluation.meanNDCG(warm, split.validation, k: 100))
        print("ml-100k iALS validation NDCG@100: 15 iterations \(f), 2 from scratch \(s), 2 warm \(w)")
        #expect(w > f - 0.01)
        #expect(w > s)
    }
}
