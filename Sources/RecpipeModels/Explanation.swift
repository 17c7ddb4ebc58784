import Foundation
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
    /// and each list reads its pairs from it: at ML-20M size that is a fraction of the cost
    /// of one small product per list. The table is symmetric: its upper triangle is computed
    /// by block rows (half the products of the whole square) and mirrored into the lower one,
    /// about 2.5 s for 20,000 items of width 600 on 2 cores, so that each list item's
    /// cosines are one row, read in order. Beyond the limit, each list's cosines are one
    /// product of its history's and its items' vectors. Either way a pair's cosine does not
    /// depend on which users are scored with it (shards name the same reasons).
    public struct Cosine: Explaining {
        let items: Int
        let width: Int
        /// Unit-length rows (a zero vector stays zero).
        let unit: [Float]
        /// items × items, row-major; nil over the limit.
        let table: PageBuffer?

        /// The largest table of cosines kept in memory: 2 GiB (23,170 items).
        public static let tableLimitBytes = 2 << 30

        /// `blockRows`: rows of the table computed by one product.
        public init(items: Int, width: Int, vectors: [Float], tableLimitBytes: Int = Cosine.tableLimitBytes, blockRows: Int = 2048) {
            precondition(blockRows > 0, "a block holds rows")
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
            guard items > 0, width > 0, items.multipliedReportingOverflow(by: items * MemoryLayout<Float>.size).partialValue <= tableLimitBytes else {
                table = nil
                return
            }
            let table = PageBuffer(count: items * items)
            let t = table.pointer
            unit.withUnsafeBufferPointer { u in
                let u = u.baseAddress!
                for start in stride(from: 0, to: items, by: blockRows) {
                    let rows = min(blockRows, items - start)
                    BLAS.gemm(m: rows, n: items - start, k: width, u + start * width, transposeA: false,
                              u + start * width, transposeB: true, t + start * items + start, ldc: items)
                }
            }
            // The lower triangle from the upper, in tiles (rows of tiles on all cores).
            let tile = 64, tiles = (items + tile - 1) / tile
            parallelRows(tiles) { bi in
                for bj in 0..<bi {
                    for i in (bi * tile)..<min(items, (bi + 1) * tile) {
                        for j in (bj * tile)..<((bj + 1) * tile) { t[i * items + j] = t[j * items + i] }
                    }
                }
                for i in (bi * tile)..<min(items, (bi + 1) * tile) {
                    for j in (bi * tile)..<i { t[i * items + j] = t[j * items + i] }
                }
            }
            self.table = table
        }

        /// Whether the cosines come from the table.
        var tabulated: Bool { table != nil }

        public func because(_ ranked: [Int32], history: ArraySlice<Int32>) -> [Int32?] {
            guard !history.isEmpty, !ranked.isEmpty else { return ranked.map { _ in history.first } }
            if let table {
                let (items, t) = (items, table.pointer)
                return history.withUnsafeBufferPointer { h in
                    ranked.map { i -> Int32? in
                        // argmax over the history, first on ties, as a plain loop over one
                        // row (at ML-20M size this runs a billion times).
                        let row = t + Int(i) * items
                        var best = h[0], bestValue = row[Int(h[0])]
                        for j in h.dropFirst() {
                            let v = row[Int(j)]
                            if v > bestValue { (best, bestValue) = (j, v) }
                        }
                        return best
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

/// Floats in memory of their own, aligned to 2 MiB and, on Linux, marked for transparent
/// huge pages: a table read at random (the cosines) then costs far fewer TLB misses. Freed
/// with the last reference; the contents start undefined.
final class PageBuffer: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<Float>
    let count: Int

    init(count: Int) {
        let bytes = max(1, count) * MemoryLayout<Float>.size
        var raw: UnsafeMutableRawPointer?
        guard posix_memalign(&raw, 2 << 20, bytes) == 0, let raw else { fatalError("out of memory: \(bytes) bytes") }
        #if os(Linux)
        _ = madvise(raw, bytes, 14)  // MADV_HUGEPAGE; a kernel without it just says no
        #endif
        pointer = raw.bindMemory(to: Float.self, capacity: max(1, count))
        self.count = count
    }

    deinit { free(pointer) }
}
