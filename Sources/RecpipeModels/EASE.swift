import Foundation
import RecpipeNumerics

/// EASE (Steck, WWW 2019): an item × item linear model with zero diagonal in closed form,
/// B = I − P·diagMat(1/diag(P)) with P = (XᵀX + λI)⁻¹, i.e. B_ij = −P_ij / P_jj (i ≠ j).
/// A user's score for item j is Σ over their items i of B_ij.
public struct EASE: Recommender {
    public let items: Int
    public let lambda: Float
    /// B, items × items, row-major.
    public let weights: [Float]

    public enum Failure: Error, LocalizedError {
        case notPositiveDefinite
        public var errorDescription: String? {
            switch self {
            case .notPositiveDefinite: return "EASE: Gram matrix + λI is not positive definite"
            }
        }
    }

    public static func fit(train: CSRMatrix, lambda: Float) throws -> EASE {
        try fit(gram: gram(train), items: train.cols, lambda: lambda)
    }

    /// The closed form from a precomputed Gram matrix XᵀX (items × items), which it takes
    /// over as its working memory.
    public static func fit(gram: consuming [Float], items n: Int, lambda: Float) throws -> EASE {
        var p = gram
        for i in 0..<n { p[i * n + i] += lambda }
        guard BLAS.invertPositiveDefinite(&p, n: n) else { throw Failure.notPositiveDefinite }
        // B_ij = −P_ij / P_jj off the diagonal.
        var diagonal = [Float](repeating: 0, count: n)
        for j in 0..<n { diagonal[j] = p[j * n + j] }
        for i in 0..<n {
            for j in 0..<n { p[i * n + j] = i == j ? 0 : -p[i * n + j] / diagonal[j] }
        }
        return EASE(items: n, lambda: lambda, weights: p)
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

    /// λ with the best mean NDCG@100 on `validation`, from `grid` (XᵀX computed once).
    public static func tuned(train: CSRMatrix, validation: ValidationSet, grid: [Float] = defaultLambdas,
                             trial: (Float, Double) -> Void = { _, _ in }) throws -> (EASE, Double) {
        let g = gram(train)
        let best = try Tuning.best(grid, validation: validation, fit: { try fit(gram: g, items: train.cols, lambda: $0) },
                                   trial: trial)
        return (best.model, best.ndcg ?? 0)
    }
}
