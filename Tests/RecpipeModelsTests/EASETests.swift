import Foundation
import RecpipeTestSupport
import Testing
@testable import RecpipeModels
@testable import RecpipeNumerics

@Suite(.tags(.medium)) struct EASETests {
    /// Inverse by Gauss–Jordan in Double, the reference for the LAPACK path.
    func inverse(_ a: [Double], _ n: Int) -> [Double] {
        var m = a, inv = (0..<(n * n)).map { $0 % (n + 1) == 0 ? 1.0 : 0.0 }
        for c in 0..<n {
            let pivot = (c..<n).max { abs(m[$0 * n + c]) < abs(m[$1 * n + c]) }!
            for k in 0..<n { m.swapAt(c * n + k, pivot * n + k); inv.swapAt(c * n + k, pivot * n + k) }
            let d = m[c * n + c]
            for k in 0..<n { m[c * n + k] /= d; inv[c * n + k] /= d }
            for r in 0..<n where r != c {
                let f = m[r * n + c]
                for k in 0..<n { m[r * n + k] -= f * m[c * n + k]; inv[r * n + k] -= f * inv[c * n + k] }
            }
        }
        return inv
    }

    @Test func closedFormMatchesANaiveInverse() throws {
        let x = CSRMatrix(cols: 5, rowsOfColumns: [[0, 1], [1, 2, 3], [0, 3, 4], [2, 4], [0, 1, 2, 3, 4]])
        let lambda: Float = 2
        let model = try EASE.fit(train: x, lambda: lambda)
        let n = 5
        let g = EASE.gram(x).map(Double.init)
        let p = inverse((0..<(n * n)).map { g[$0] + ($0 % (n + 1) == 0 ? Double(lambda) : 0) }, n)
        for i in 0..<n {
            for j in 0..<n {
                let expected = i == j ? 0 : -p[i * n + j] / p[j * n + j]
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
