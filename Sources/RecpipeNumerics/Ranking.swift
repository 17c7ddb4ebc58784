import CKernels
import Foundation

/// The `k` highest-scoring indices of `scores`, best first, ties broken by the lower index.
/// Entries equal to −∞ (or NaN) are never returned (callers set excluded items to −∞). A
/// size-k heap (O(n log k), no sort of the whole row) whose scan tests 16 entries at a time
/// against the heap's worst score (`recpipe_top_k`).
public func topK(_ scores: UnsafeBufferPointer<Float>, k: Int) -> [Int32] {
    topKWithScores(scores, k: k).items
}

/// `topK` with the chosen entries' scores beside them.
public func topKWithScores(_ scores: UnsafeBufferPointer<Float>, k: Int) -> (items: [Int32], scores: [Float]) {
    precondition(scores.count <= Int(Int32.max), "topK: indices are Int32")
    let k = max(0, min(k, scores.count))
    guard k > 0, let base = scores.baseAddress else { return ([], []) }
    var values = [Float]()
    let items = [Int32](unsafeUninitializedCapacity: k) { items, itemCount in
        values = [Float](unsafeUninitializedCapacity: k) { values, valueCount in
            valueCount = recpipe_top_k(base, scores.count, k, items.baseAddress!, values.baseAddress!)
            itemCount = valueCount
        }
    }
    return (items, values)
}

/// `topKWithScores` by sorting the whole row: the reference.
public func topKWithScoresNaive(_ scores: UnsafeBufferPointer<Float>, k: Int) -> (items: [Int32], scores: [Float]) {
    let order = scores.indices.filter { scores[$0] > -.infinity }
        .sorted { scores[$0] != scores[$1] ? scores[$0] > scores[$1] : $0 < $1 }
        .prefix(max(0, k))
    return (order.map { Int32($0) }, order.map { scores[$0] })
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
