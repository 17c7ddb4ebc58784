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
}
