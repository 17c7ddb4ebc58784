import Foundation
import RecpipeNumerics

/// EASE (Steck, WWW 2019): an item × item linear model with zero diagonal in closed form,
/// B = I − P·diagMat(1/diag(P)) with P = (XᵀX + Λ)⁻¹, i.e. B_ij = −P_ij / P_jj (i ≠ j).
/// A user's score for item j is Σ over their items i of B_ij. EASE regularizes every item
/// alike, Λ = λI. EDLAE (Steck, NeurIPS 2020, "Autoencoders that don't overfit towards the
/// identity") is the same closed form with the regularization that emphasised dropout of
/// probability p amounts to, Λ = λI + p/(1−p)·diagMat(diag(XᵀX)): popular items, whose
/// diagonal is large, are held back more.
public struct EASE: Recommender {
    public let items: Int
    public let lambda: Float
    /// EDLAE's dropout probability p in [0, 1); nil for EASE.
    public let dropout: Float?
    /// B, items × items, row-major.
    public let weights: [Float]

    public init(items: Int, lambda: Float, dropout: Float? = nil, weights: [Float]) {
        self.items = items
        self.lambda = lambda
        self.dropout = dropout
        self.weights = weights
    }

    public enum Failure: Error, LocalizedError {
        case notPositiveDefinite
        public var errorDescription: String? {
            switch self {
            case .notPositiveDefinite: return "EASE: Gram matrix + λI is not positive definite"
            }
        }
    }

    public static func fit(train: CSRMatrix, lambda: Float, dropout: Float? = nil) throws -> EASE {
        try fit(gram: gram(train), items: train.cols, lambda: lambda, dropout: dropout)
    }

    /// The closed form from a precomputed Gram matrix XᵀX (items × items), which it takes
    /// over as its working memory. `dropout`: EDLAE's p (nil: EASE).
    public static func fit(gram: consuming [Float], items n: Int, lambda: Float, dropout: Float? = nil) throws -> EASE {
        precondition(dropout.map { $0 >= 0 && $0 < 1 } ?? true, "EDLAE's dropout probability is in [0, 1)")
        var p = gram
        let emphasis = dropout.map { $0 / (1 - $0) } ?? 0
        for i in 0..<n { p[i * n + i] += lambda + emphasis * p[i * n + i] }
        guard BLAS.invertPositiveDefinite(&p, n: n) else { throw Failure.notPositiveDefinite }
        // B_ij = −P_ij / P_jj off the diagonal.
        var diagonal = [Float](repeating: 0, count: n)
        for j in 0..<n { diagonal[j] = p[j * n + j] }
        for i in 0..<n {
            for j in 0..<n { p[i * n + j] = i == j ? 0 : -p[i * n + j] / diagonal[j] }
        }
        return EASE(items: n, lambda: lambda, dropout: dropout, weights: p)
    }

    /// XᵀX of a binary matrix: co-occurrence counts, dense items × items.
    public static func gram(_ x: CSRMatrix) -> [Float] {
        let n = x.cols
        var g = [Float](repeating: 0, count: n * n)
        g.withUnsafeMutableBufferPointer { g in
            for r in 0..<x.rows {
                let row = x.rowStart[r]..<x.rowStart[r + 1]
                for a in row {
                    let i = Int(x.columns[a]) * n
                    let v = x.values[a]
                    for b in row { g[i + Int(x.columns[b])] += v * x.values[b] }
                }
            }
        }
        return g
    }

    public func scores(_ foldIn: CSRMatrix, batchSize: Int = 500, body: (Int, UnsafeMutableBufferPointer<Float>) -> Void) {
        let zeros = [Float](repeating: 0, count: items)
        var buffer = [Float](repeating: 0, count: batchSize * items)
        for start in stride(from: 0, to: foldIn.rows, by: batchSize) {
            let rows = start..<min(start + batchSize, foldIn.rows)
            let batch = foldIn.rows(Array(rows)[...])
            sparseLinearForward(&buffer, batch, weights, zeros, outputs: items)
            buffer.withUnsafeMutableBufferPointer { all in
                for (k, row) in rows.enumerated() {
                    body(row, UnsafeMutableBufferPointer(rebasing: all[(k * items)..<((k + 1) * items)]))
                }
            }
        }
    }

    /// The λ values tried when none is given.
    public static let defaultLambdas: [Float] = [50, 100, 200, 300, 500, 800, 1200, 2000, 5000]

    /// EDLAE's grid when none is given: every λ with every p. The dropout term does most of
    /// the regularizing, so λ is smaller than EASE's (the RDLAE authors' scripts use λ 400,
    /// p 0.3 on ML-20M; on MovieLens 100K the best validation NDCG@100 is near λ 50, p 0.7).
    public static let defaultEDLAELambdas: [Float] = [20, 50, 100, 200, 400, 1000]
    public static let defaultDropouts: [Float] = [0.25, 0.5, 0.7]

    /// λ with the best mean NDCG@100 on `validation`, from `grid` (XᵀX computed once).
    public static func tuned(train: CSRMatrix, validation: ValidationSet, grid: [Float] = defaultLambdas,
                             trial: (Float, Double) -> Void = { _, _ in }) throws -> (EASE, Double) {
        let g = gram(train)
        let best = try Tuning.best(grid, validation: validation, fit: { try fit(gram: g, items: train.cols, lambda: $0) },
                                   trial: trial)
        return (best.model, best.ndcg ?? 0)
    }
}
