import Foundation

/// Re-ranking for the long tail: a model's best candidates for a user (`candidateFactor` × K
/// of them) re-ordered so that more of the list comes from outside the popular head, at a
/// cost in accuracy the weight λ sets (0: the model's own order).
///
/// Both levers work on the candidates' scores scaled to [0, 1] over the candidates of the
/// list (`relevance`), so one λ means the same for models whose scores differ in scale.
/// - `xquad`: personalised head/tail xQuAD in its smooth form (after Abdollahpouri et al.
///   2019, "Managing popularity bias in recommender systems with personalized re-ranking"):
///   the list is built greedily; the next item v maximises
///   (1 − λ)·relevance(v) + λ·P(c|u)·(1 − |S ∩ c| / |S|), where c is v's group (head or
///   tail), S the items chosen so far (the factor is 1 while S is empty) and P(tail|u) the
///   share of the user's own items outside the head (P(head|u) = 1 − P(tail|u)). Within a
///   group the bonus is the same for every item, so each step compares only the best
///   remaining item of each group: O(candidates) per list.
/// - `popularity`: relevance(v) − λ·log(1 + n_v) / log(1 + max n), n_v the item's number of
///   users, a stable sort (ties keep the model's order).
public struct Reranking: Sendable {
    public enum Lever: String, Sendable, CaseIterable, Codable {
        case xquad, popularity
    }

    /// Candidates per list: this many times K, the best of the model's order.
    public static let candidateFactor = 5

    public var lever: Lever
    /// λ, in [0, 1].
    public var weight: Double
    /// By item: in the popular head (`Evaluation.head`).
    public let isHead: [Bool]
    /// By item: log(1 + n_i) / log(1 + max n), in [0, 1].
    public let penalty: [Float]

    /// `counts[i]`: item i's number of users (the head and the penalty come from them).
    public init(lever: Lever, weight: Double, counts: [Float]) {
        precondition((0...1).contains(weight), "the re-ranking weight is in [0, 1]")
        self.lever = lever
        self.weight = weight
        isHead = Evaluation.head(counts: counts)
        let top = log1p(Double(counts.max() ?? 0))
        penalty = counts.map { top > 0 ? Float(log1p(Double($0)) / top) : 0 }
    }

    /// The same catalogue with another lever or weight.
    public func with(lever: Lever, weight: Double) -> Reranking {
        precondition((0...1).contains(weight), "the re-ranking weight is in [0, 1]")
        var copy = self
        copy.lever = lever
        copy.weight = weight
        return copy
    }

    /// The share of `history` outside the head (0 for an empty history).
    public func tailShare(_ history: ArraySlice<Int32>) -> Double {
        guard !history.isEmpty else { return 0 }
        return Double(history.filter { !isHead[Int($0)] }.count) / Double(history.count)
    }

    /// `items` (the candidates, best first, with their model `scores`) in the re-ranked
    /// order, each with its model score; all of them, so that rules applied after can walk
    /// further down.
    public func order(_ items: [Int32], _ scores: [Float], history: ArraySlice<Int32>) -> (items: [Int32], scores: [Float]) {
        precondition(items.count == scores.count, "one score per candidate")
        let n = items.count
        guard n > 1, weight > 0 else { return (items, scores) }
        let lo = scores.min()!, hi = scores.max()!
        let relevance = scores.map { hi > lo ? Double(($0 - lo) / (hi - lo)) : 1 }
        var order: [Int] = []
        order.reserveCapacity(n)
        switch lever {
        case .popularity:
            let value = (0..<n).map { relevance[$0] - weight * Double(penalty[Int(items[$0])]) }
            order = (0..<n).sorted { value[$0] != value[$1] ? value[$0] > value[$1] : $0 < $1 }
        case .xquad:
            let tail = tailShare(history)
            // The candidates of each group in the model's order, and the next unchosen one.
            let heads = (0..<n).filter { isHead[Int(items[$0])] }, tails = (0..<n).filter { !isHead[Int(items[$0])] }
            var (h, t) = (0, 0)
            while order.count < n {
                let chosen = Double(order.count)
                func value(_ c: Int, preference: Double, taken: Int) -> Double {
                    (1 - weight) * relevance[c] + weight * preference * (chosen == 0 ? 1 : 1 - Double(taken) / chosen)
                }
                if t == tails.count || (h < heads.count
                    && { let (a, b) = (value(heads[h], preference: 1 - tail, taken: h), value(tails[t], preference: tail, taken: t))
                         return a != b ? a > b : heads[h] < tails[t] }()) {
                    order.append(heads[h])
                    h += 1
                } else {
                    order.append(tails[t])
                    t += 1
                }
            }
        }
        return (order.map { items[$0] }, order.map { scores[$0] })
    }
}
