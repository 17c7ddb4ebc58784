import Foundation

/// The `k` highest-scoring indices of `scores`, best first, ties broken by the lower index.
/// Entries equal to −∞ (or NaN) are never returned (callers set excluded items to −∞). A
/// size-k min-heap on raw buffers: O(n log k), one comparison per entry in the common case,
/// no sort of the whole row.
public func topK(_ scores: UnsafeBufferPointer<Float>, k: Int) -> [Int32] {
    guard k > 0 else { return [] }
    return withUnsafeTemporaryAllocation(of: Float.self, capacity: k) { heapScores in
        withUnsafeTemporaryAllocation(of: Int32.self, capacity: k) { heapIndices in
            let hs = heapScores.baseAddress!, hi = heapIndices.baseAddress!
            var size = 0
            var threshold = -Float.infinity
            for i in 0..<scores.count {
                let s = scores[i]
                if size == k && !(s > threshold) { continue }
                if s == -.infinity || s.isNaN { continue }
                if size < k {
                    hs[size] = s; hi[size] = Int32(i)
                    size += 1
                    heapSiftUp(hs, hi, size - 1)
                } else {  // s > threshold: equal scores keep the lower index already held
                    hs[0] = s; hi[0] = Int32(i)
                    heapSiftDown(hs, hi, size)
                }
                if size == k { threshold = hs[0] }
            }
            var order = Array(0..<size)
            order.sort { hs[$0] != hs[$1] ? hs[$0] > hs[$1] : hi[$0] < hi[$1] }
            return order.map { hi[$0] }
        }
    }
}

/// Heap order: a is "worse" (nearer the root) than b.
@inline(__always)
private func heapWorse(_ hs: UnsafeMutablePointer<Float>, _ hi: UnsafeMutablePointer<Int32>, _ a: Int, _ b: Int) -> Bool {
    hs[a] < hs[b] || (hs[a] == hs[b] && hi[a] > hi[b])
}

@inline(__always)
private func heapSwap(_ hs: UnsafeMutablePointer<Float>, _ hi: UnsafeMutablePointer<Int32>, _ a: Int, _ b: Int) {
    let s = hs[a]; hs[a] = hs[b]; hs[b] = s
    let i = hi[a]; hi[a] = hi[b]; hi[b] = i
}

private func heapSiftUp(_ hs: UnsafeMutablePointer<Float>, _ hi: UnsafeMutablePointer<Int32>, _ start: Int) {
    var c = start
    while c > 0 {
        let p = (c - 1) / 2
        if !heapWorse(hs, hi, c, p) { return }
        heapSwap(hs, hi, c, p)
        c = p
    }
}

private func heapSiftDown(_ hs: UnsafeMutablePointer<Float>, _ hi: UnsafeMutablePointer<Int32>, _ size: Int) {
    var i = 0
    while true {
        let l = 2 * i + 1, r = l + 1
        var m = i
        if l < size && heapWorse(hs, hi, l, m) { m = l }
        if r < size && heapWorse(hs, hi, r, m) { m = r }
        if m == i { return }
        heapSwap(hs, hi, i, m)
        i = m
    }
}

/// Ranking metrics with the definitions of Liang et al. 2018 (binary relevance).
public enum RankingMetrics {
    /// NDCG@k: DCG of the list over the ideal DCG of min(k, |targets|) hits.
    public static func ndcg(_ ranked: [Int32], targets: Set<Int32>, k: Int) -> Double {
        guard !targets.isEmpty else { return 0 }
        var dcg = 0.0
        for (rank, item) in ranked.prefix(k).enumerated() where targets.contains(item) { dcg += 1 / log2(Double(rank) + 2) }
        var ideal = 0.0
        for rank in 0..<min(k, targets.count) { ideal += 1 / log2(Double(rank) + 2) }
        return dcg / ideal
    }

    /// Recall@k: hits in the top k over min(k, |targets|).
    public static func recall(_ ranked: [Int32], targets: Set<Int32>, k: Int) -> Double {
        guard !targets.isEmpty else { return 0 }
        let hits = ranked.prefix(k).filter { targets.contains($0) }.count
        return Double(hits) / Double(min(k, targets.count))
    }
}
