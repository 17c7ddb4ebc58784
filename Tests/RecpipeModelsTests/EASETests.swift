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

    /// EDLAE solves min ‖X − XB‖² + ‖Λ^½B‖² with diag(B) = 0, Λ = λI + p/(1−p)·diag(XᵀX):
    /// checked by its optimality conditions in double precision (off the diagonal,
    /// (XᵀX + Λ)B = XᵀX), against a naive double-precision inverse, and p = 0 is EASE.
    @Test func edlaeMeetsItsOptimalityConditions() throws {
        var rng = SeededRandom(seed: 4)
        let n = 12
        let rows = (0..<40).map { _ in Array(Set((0..<5).map { _ in Int32.random(in: 0..<Int32(n), using: &rng) })).sorted() }
        let x = CSRMatrix(cols: n, rowsOfColumns: rows)
        let (lambda, dropout): (Float, Float) = (3, 0.25)
        let model = try EASE.fit(train: x, lambda: lambda, dropout: dropout)
        #expect(model.kind == .edlae && model.hyperparameters == EASE.Hyperparameters(lambda: 3, dropout: 0.25))
        let g = EASE.gram(x).map(Double.init)
        let b = model.weights.map(Double.init)
        let diagonal = (0..<n).map { Double(lambda) + Double(dropout) / (1 - Double(dropout)) * g[$0 * n + $0] }
        for i in 0..<n {
            #expect(b[i * n + i] == 0)
            for j in 0..<n where j != i {
                // Row i of (XᵀX + Λ)B − XᵀX.
                var r = diagonal[i] * b[i * n + j] - g[i * n + j]
                for k in 0..<n { r += g[i * n + k] * b[k * n + j] }
                #expect(abs(r) < 1e-3 * (1 + abs(g[i * n + j])), "(\(i), \(j)): \(r)")
            }
        }
        // The naive inverse: B_ij = −P_ij / P_jj.
        var p = (0..<(n * n)).map { Float(g[$0]) + ($0 % (n + 1) == 0 ? Float(diagonal[$0 / n]) : 0) }
        #expect(BLAS.invertPositiveDefiniteNaive(&p, n: n))
        for i in 0..<n {
            for j in 0..<n where i != j {
                #expect(abs(b[i * n + j] + Double(p[i * n + j]) / Double(p[j * n + j])) < 1e-4)
            }
        }
        // Without dropout it is EASE.
        let plain = try EASE.fit(train: x, lambda: lambda, dropout: 0), ease = try EASE.fit(train: x, lambda: lambda)
        #expect(ease.kind == .ease && plain.kind == .edlae)
        #expect(zip(plain.weights, ease.weights).allSatisfy { abs($0 - $1) < 1e-6 })
    }
}
