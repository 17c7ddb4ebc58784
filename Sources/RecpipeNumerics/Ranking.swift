import Foundation

/// The `k` highest-scoring indices of `scores`, best first, ties broken by the lower index.
/// Entries equal to −∞ are never returned (callers set excluded items to −∞). A size-k heap:
/// O(n log k), no sort of the whole row.
public func topK(_ scores: UnsafeBufferPointer<Float>, k: Int) -> [Int32] {
    guard k > 0 else { return [] }
    // Min-heap on (score, −index): its root is the worst of the best k so far.
    var heapScores = [Float](), heapIndices = [Int32]()
    heapScores.reserveCapacity(k)
    heapIndices.reserveCapacity(k)
    @inline(__always) func worse(_ a: Int, _ b: Int) -> Bool {
        heapScores[a] < heapScores[b] || (heapScores[a] == heapScores[b] && heapIndices[a] > heapIndices[b])
    }
    func siftDown(_ start: Int) {
        var i = start
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < heapScores.count && worse(l, m) { m = l }
            if r < heapScores.count && worse(r, m) { m = r }
            if m == i { return }
            heapScores.swapAt(i, m); heapIndices.swapAt(i, m)
            i = m
        }
    }
    for i in 0..<scores.count {
        let s = scores[i]
        if s == -.infinity || s.isNaN { continue }
        if heapScores.count < k {
            heapScores.append(s); heapIndices.append(Int32(i))
            var c = heapScores.count - 1
            while c > 0 {
                let p = (c - 1) / 2
                if !worse(c, p) { break }
                heapScores.swapAt(c, p); heapIndices.swapAt(c, p)
                c = p
            }
        } else if s > heapScores[0] {  // equal scores keep the lower index already held
            heapScores[0] = s; heapIndices[0] = Int32(i)
            siftDown(0)
        }
    }
    return zip(heapScores, heapIndices).sorted { $0.0 != $1.0 ? $0.0 > $1.0 : $0.1 < $1.1 }.map(\.1)
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
