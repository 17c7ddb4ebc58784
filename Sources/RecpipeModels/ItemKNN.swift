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
        let n = train.cols
        let cooccurrence = EASE.gram(train)
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

    /// Neighbours and shrinkage with the best mean NDCG@100 on `validation`.
    public static func tuned(train: CSRMatrix, validation: ValidationSet, neighbours: [Int] = [10, 20, 50, 100, 200, 500],
                             shrinks: [Float] = [0, 10, 50, 100]) -> (ItemKNN, Double) {
        var best: (ItemKNN, Double)?
        for k in neighbours {
            for shrink in shrinks {
                let model = fit(train: train, neighbours: k, shrink: shrink)
                let ndcg = Evaluation.meanNDCG(model, validation, k: 100)
                if best == nil || ndcg > best!.1 { best = (model, ndcg) }
            }
        }
        return best!
    }
}
