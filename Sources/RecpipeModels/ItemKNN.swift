import Foundation
import RecpipeNumerics

/// Item-based k-nearest neighbours: cosine similarity of items' user sets with shrinkage,
/// s_ij = |U_i ∩ U_j| / (√|U_i|·√|U_j| + shrink), each item keeping its `neighbours` most
/// similar items. A user's score for item j is Σ over their items i of s_ij.
public struct ItemKNN: Recommender {
    public let items: Int
    public let neighbours: Int
    public let shrink: Float
    /// Row i: item i's kept neighbours and similarities (the item itself excluded).
    public let similarity: CSRMatrix

    public static func fit(train: CSRMatrix, neighbours: Int, shrink: Float) -> ItemKNN {
        fit(cooccurrence: EASE.gram(train), items: train.cols, neighbours: neighbours, shrink: shrink)
    }

    /// The same from the co-occurrence counts XᵀX (items × items, row-major).
    public static func fit(cooccurrence: [Float], items n: Int, neighbours: Int, shrink: Float) -> ItemKNN {
        var norms = [Float](repeating: 0, count: n)
        for i in 0..<n { norms[i] = cooccurrence[i * n + i].squareRoot() }
        var start = [0], columns: [Int32] = [], values: [Float] = []
        var row = [Float](repeating: 0, count: n)
        for i in 0..<n {
            for j in 0..<n {
                let c = cooccurrence[i * n + j]
                row[j] = i == j || c == 0 ? -.infinity : c / (norms[i] * norms[j] + shrink)
            }
            let kept = row.withUnsafeBufferPointer { topK($0, k: neighbours) }.sorted()
            columns.append(contentsOf: kept)
            values.append(contentsOf: kept.map { row[Int($0)] })
            start.append(columns.count)
        }
        return ItemKNN(items: n, neighbours: neighbours, shrink: shrink,
                       similarity: CSRMatrix(rows: n, cols: n, rowStart: start, columns: columns, values: values))
    }

    public func scores(_ foldIn: CSRMatrix, batchSize: Int = 500, body: (Int, UnsafeMutableBufferPointer<Float>) -> Void) {
        var scores = [Float](repeating: 0, count: items)
        for r in 0..<foldIn.rows {
            for k in 0..<items { scores[k] = 0 }
            for a in foldIn.rowStart[r]..<foldIn.rowStart[r + 1] {
                let i = Int(foldIn.columns[a])
                for b in similarity.rowStart[i]..<similarity.rowStart[i + 1] {
                    scores[Int(similarity.columns[b])] += similarity.values[b]
                }
            }
            scores.withUnsafeMutableBufferPointer { body(r, $0) }
        }
    }

    /// The settings tried when none are given.
    public static let defaultNeighbours = [10, 20, 50, 100, 200, 500]
    public static let defaultShrinks: [Float] = [0, 10, 50, 100]

    /// Neighbours and shrinkage with the best mean NDCG@100 on `validation` (XᵀX computed once).
    public static func tuned(train: CSRMatrix, validation: ValidationSet, neighbours: [Int] = defaultNeighbours,
                             shrinks: [Float] = defaultShrinks,
                             trial: ((neighbours: Int, shrink: Float), Double) -> Void = { _, _ in }) -> (ItemKNN, Double) {
        let cooccurrence = EASE.gram(train)
        let grid = neighbours.flatMap { k in shrinks.map { (neighbours: k, shrink: $0) } }
        let best = Tuning.best(grid, validation: validation, fit: {
            fit(cooccurrence: cooccurrence, items: train.cols, neighbours: $0.neighbours, shrink: $0.shrink)
        }, trial: trial)
        return (best.model, best.ndcg ?? 0)
    }
}
