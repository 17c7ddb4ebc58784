import Foundation
import RecpipeTestSupport
import Testing
@testable import RecpipeModels
@testable import RecpipeNumerics

@Suite(.tags(.medium)) struct EASETests {
    @Test func closedFormMatchesANaiveInverse() throws {
        let x = CSRMatrix(cols: 5, rowsOfColumns: [[0, 1], [1, 2, 3], [0, 3, 4], [2, 4], [0, 1, 2, 3, 4]])
        let lambda: Float = 2
        let model = try EASE.fit(train: x, lambda: lambda)
        let n = 5
        // The reference inverse (Gauss–Jordan in double precision) of XᵀX + λI.
        let g = EASE.gram(x)
        var p = (0..<(n * n)).map { g[$0] + ($0 % (n + 1) == 0 ? lambda : 0) }
        #expect(BLAS.invertPositiveDefiniteNaive(&p, n: n))
        for i in 0..<n {
            for j in 0..<n {
                let expected = i == j ? 0 : -Double(p[i * n + j]) / Double(p[j * n + j])
                #expect(abs(Double(model.weights[i * n + j]) - expected) < 1e-4, "B[\(i),\(j)]")
            }
        }
        // Scores are sums of the user's rows of B.
        let user = CSRMatrix(cols: 5, rowsOfColumns: [[1, 3]])
        model.scores(user, batchSize: 500) { _, s in
            for j in 0..<n { #expect(abs(s[j] - (model.weights[1 * n + j] + model.weights[3 * n + j])) < 1e-6) }
        }
    }

    @Test(.enabled(if: referenceSplit() != nil, "needs ../shared/reference/ml-100k-split"))
    func movieLens100KReachesTheReference() throws {
        let split = try SplitFiles(directory: referenceSplit()!)
        let (ease, _) = try EASE.tuned(train: split.train, validation: split.validation)
        let test = Evaluation.meanNDCG(ease, split.test, k: 100)
        print("ml-100k EASE: λ \(ease.lambda), test NDCG@100 \(test)")
        // ../shared/reference/README.md: EASE NDCG@100 0.425 with λ = 200 chosen on validation.
        #expect(ease.lambda == 200)
        #expect(abs(test - 0.425) < 0.005)
    }
}
