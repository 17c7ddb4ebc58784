import RecpipeNumerics

/// Why an item is in a list: the item of the user's history that most supports it.
///
/// For the item-to-item models the support of item i from history item j is the model's own
/// term in i's score: B[j, i] for EASE, the similarity S[j, i] for ItemKNN. For the models
/// with item vectors (the Mult-VAE's and Mult-DAE's decoder columns, iALS's item factors) it
/// is the cosine of the two vectors. Ties go to the history item listed first.
public protocol Explaining: Sendable {
    /// For each of `ranked`, the item of `history` with the largest support (nil: empty history).
    func because(_ ranked: [Int32], history: ArraySlice<Int32>) -> [Int32?]
}

public enum Explanations {
    /// The explainer of a model; nil for one that has no item-to-item view (popularity).
    public static func explainer(for model: any Recommender) -> (any Explaining)? {
        switch model {
        case let ease as EASE: return DenseWeights(items: ease.items, weights: ease.weights)
        case let knn as ItemKNN: return SparseWeights(similarity: knn.similarity)
        case let vae as MultVAE:
            guard let decoder = vae.tensor("decoder.1.weight") else { return nil }
            // (hidden, items): column i is item i's vector.
            let (hidden, items) = (decoder.shape[0], decoder.shape[1])
            var vectors = [Float](repeating: 0, count: items * hidden)
            for h in 0..<hidden { for i in 0..<items { vectors[i * hidden + h] = vae.parameters[decoder.offset + h * items + i] } }
            return Cosine(items: items, width: hidden, vectors: vectors)
        case let ials as IALS:
            return Cosine(items: ials.items, width: ials.itemFactors.count / max(ials.items, 1), vectors: ials.itemFactors)
        default: return nil
        }
    }

    /// The item of `history` whose `support(j)` is largest (first on ties).
    static func argmax(_ history: ArraySlice<Int32>, _ support: (Int32) -> Float) -> Int32? {
        var best: Int32?, bestValue = -Float.infinity
        for j in history {
            let v = support(j)
            if best == nil || v > bestValue { (best, bestValue) = (j, v) }
        }
        return best
    }

    /// B (items × items, row-major): the support of i from j is B[j, i].
    public struct DenseWeights: Explaining {
        let items: Int
        let weights: [Float]
        public func because(_ ranked: [Int32], history: ArraySlice<Int32>) -> [Int32?] {
            weights.withUnsafeBufferPointer { b in
                ranked.map { i in argmax(history) { j in b[Int(j) * items + Int(i)] } }
            }
        }
    }

    /// S (row j: j's neighbours): the support of i from j is S[j, i], 0 where i is not a
    /// neighbour of j.
    public struct SparseWeights: Explaining {
        let similarity: CSRMatrix
        public func because(_ ranked: [Int32], history: ArraySlice<Int32>) -> [Int32?] {
            // Each history item's row once: the best supporter of every item it reaches.
            var best: [Int32: (item: Int32, value: Float)] = [:]
            let wanted = Set(ranked)
            for j in history {
                for a in similarity.rowStart[Int(j)]..<similarity.rowStart[Int(j) + 1] {
                    let i = similarity.columns[a], v = similarity.values[a]
                    guard wanted.contains(i) else { continue }
                    if let current = best[i], current.value >= v { continue }
                    best[i] = (j, v)
                }
            }
            // An item no history item reaches has support 0 from all: the first one.
            return ranked.map { best[$0]?.item ?? history.first }
        }
    }

    /// Item vectors (items × width, row-major), compared by cosine.
    ///
    /// Where the table of every pair's cosine fits in `tableLimitBytes`, it is computed once
    /// (one product of all the unit vectors with themselves, about 5 s for 20,000 items of
    /// width 600 on 2 cores) and each list reads its pairs from it: at ML-20M size that is
    /// a fraction of the cost of one small product per list. Beyond, each list's cosines are
    /// one product of its history's and its items' vectors. Either way a pair's cosine does
    /// not depend on which users are scored with it (shards name the same reasons).
    public struct Cosine: Explaining {
        let items: Int
        let width: Int
        /// Unit-length rows (a zero vector stays zero).
        let unit: [Float]
        /// items × items cosines, row-major; empty when over the limit.
        let table: [Float]

        /// The largest table of cosines kept in memory: 2 GiB (23,170 items).
        public static let tableLimitBytes = 2 << 30

        public init(items: Int, width: Int, vectors: [Float], tableLimitBytes: Int = Cosine.tableLimitBytes) {
            precondition(vectors.count == items * width, "one vector per item")
            self.items = items
            self.width = width
            var unit = vectors
            for i in 0..<items {
                var norm: Float = 0
                for c in 0..<width { norm += unit[i * width + c] * unit[i * width + c] }
                let scale = norm > 0 ? 1 / norm.squareRoot() : 0
                for c in 0..<width { unit[i * width + c] *= scale }
            }
            self.unit = unit
            if items > 0, width > 0, items.multipliedReportingOverflow(by: items * MemoryLayout<Float>.size).partialValue <= tableLimitBytes {
                var table = [Float](repeating: 0, count: items * items)
                unit.withUnsafeBufferPointer { u in
                    table.withUnsafeMutableBufferPointer { t in
                        BLAS.gemm(m: items, n: items, k: width, u.baseAddress!, transposeA: false, u.baseAddress!, transposeB: true, t.baseAddress!)
                    }
                }
                self.table = table
            } else {
                table = []
            }
        }

        /// Whether the cosines come from the table.
        var tabulated: Bool { !table.isEmpty }

        public func because(_ ranked: [Int32], history: ArraySlice<Int32>) -> [Int32?] {
            guard !history.isEmpty, !ranked.isEmpty else { return ranked.map { _ in history.first } }
            if tabulated {
                let items = items
                return table.withUnsafeBufferPointer { t in
                    ranked.map { i in
                        let row = t.baseAddress! + Int(i) * items
                        return argmax(history) { j in row[Int(j)] }
                    }
                }
            }
            let h = history.count, k = ranked.count, width = width
            let items = Array(history)
            var cosines = [Float](repeating: 0, count: h * k)
            var rows = [Float](repeating: 0, count: (h + k) * width)
            unit.withUnsafeBufferPointer { u in
                rows.withUnsafeMutableBufferPointer { r in
                    let base = r.baseAddress!
                    for (n, j) in items.enumerated() {
                        (base + n * width).update(from: u.baseAddress! + Int(j) * width, count: width)
                    }
                    for (n, i) in ranked.enumerated() {
                        (base + (h + n) * width).update(from: u.baseAddress! + Int(i) * width, count: width)
                    }
                    // Cosines, history × ranked: one product per list.
                    cosines.withUnsafeMutableBufferPointer { c in
                        BLAS.gemm(m: h, n: k, k: width, base, transposeA: false, base + h * width, transposeB: true, c.baseAddress!)
                    }
                }
            }
            return cosines.withUnsafeBufferPointer { c in
                (0..<k).map { col -> Int32? in
                    var best = 0, bestValue = c[col]
                    for row in 1..<h where c[row * k + col] > bestValue { (best, bestValue) = (row, c[row * k + col]) }
                    return items[best]
                }
            }
        }
    }
}
