import Foundation
import RecpipeNumerics

/// Accuracy and beyond-accuracy metrics of a recommender on held-out users.
///
/// Per user (mean and standard error over users with targets): Recall@K = hits / min(K,
/// |targets|) and NDCG@K with binary relevance and IDCG over min(K, |targets|) (Liang et
/// al. 2018); Precision@K; HitRate@K; MRR (reciprocal rank of the first hit in the top
/// 100); APLT@K (share of the list from the long tail: items outside the most popular ones
/// that make up 80% of training interactions); novelty@K (mean −log₂ of the share of
/// training users who have the item). Over the whole list set: coverage@K (share of
/// training items recommended to anyone) and Gini@K of how often each item is recommended.
public enum Evaluation {
    public struct Metric: Sendable, Equatable {
        public var name: String
        public var k: Int
        public var value: Double
        /// Standard error of the mean over users (nil for set-level metrics).
        public var standardError: Double?
        /// One value per evaluated user (empty for set-level metrics).
        public var perUser: [Double]
    }

    /// The head: the most popular items whose cumulative share of the training interactions
    /// is at most `share` (and always the most popular one). Returns a flag per item.
    public static func head(counts: [Float], share: Double = 0.8) -> [Bool] {
        let total = counts.reduce(0) { $0 + Double($1) }
        var order = Array(counts.indices)
        order.sort { counts[$0] != counts[$1] ? counts[$0] > counts[$1] : $0 < $1 }
        var head = [Bool](repeating: false, count: counts.count)
        var running = 0.0
        for (position, i) in order.enumerated() {
            running += Double(counts[i])
            guard position == 0 || running / total <= share else { break }
            head[i] = true
        }
        return head
    }

    /// Evaluates `recommender` on held-out users: fold-in items are scored and excluded,
    /// targets are what it should find. `trainCounts[i]` is item i's number of training users.
    public static func evaluate(_ recommender: Recommender, on heldOut: ValidationSet, trainCounts: [Float],
                                trainUsers: Int) -> (metrics: [Metric], users: [Int]) {
        let (users, lists) = topLists(recommender, on: heldOut)
        return (evaluate(lists: lists, users: users, on: heldOut, trainCounts: trainCounts, trainUsers: trainUsers), users)
    }

    /// The top-`k` list of every held-out user with targets (rows of `heldOut`), fold-in
    /// items excluded.
    public static func topLists(_ recommender: Recommender, on heldOut: ValidationSet,
                                k: Int = 100) -> (users: [Int], lists: [[Int32]]) {
        var users: [Int] = []
        var lists: [[Int32]] = []
        recommender.scores(heldOut.foldIn, batchSize: 500) { row, scores in
            guard !heldOut.targets[row].isEmpty else { return }
            let f = heldOut.foldIn
            for j in f.rowStart[row]..<f.rowStart[row + 1] { scores[Int(f.columns[j])] = -.infinity }
            users.append(row)
            lists.append(topK(UnsafeBufferPointer(scores), k: k))
        }
        return (users, lists)
    }

    /// The metrics of given lists (best first) for `users` (rows of `heldOut`). `isHead`
    /// (default: `head(counts: trainCounts)`) marks the popular head for APLT.
    public static func evaluate(lists: [[Int32]], users: [Int], on heldOut: ValidationSet, trainCounts: [Float],
                                trainUsers: Int, isHead: [Bool]? = nil) -> [Metric] {
        let cutoff = 100
        let isHead = isHead ?? head(counts: trainCounts)
        var metrics: [Metric] = []
        func perUser(_ name: String, _ k: Int, _ value: (_ list: ArraySlice<Int32>, _ targets: Set<Int32>) -> Double) {
            let values = zip(users, lists).map { value($1.prefix(k), heldOut.targets[$0]) }
            metrics.append(Metric(name: name, k: k, value: mean(values), standardError: standardError(values), perUser: values))
        }
        perUser("recall", 20) { RankingMetrics.recall(Array($0), targets: $1, k: 20) }
        perUser("recall", 50) { RankingMetrics.recall(Array($0), targets: $1, k: 50) }
        perUser("ndcg", 100) { RankingMetrics.ndcg(Array($0), targets: $1, k: 100) }
        perUser("precision", 10) { list, targets in Double(list.filter(targets.contains).count) / 10 }
        perUser("hit_rate", 10) { list, targets in list.contains(where: targets.contains) ? 1 : 0 }
        perUser("mrr", cutoff) { list, targets in list.firstIndex(where: targets.contains).map { 1 / Double($0 + 1) } ?? 0 }
        perUser("aplt", 20) { list, _ in Double(list.filter { !isHead[Int($0)] }.count) / Double(max(list.count, 1)) }
        perUser("novelty", 20) { list, _ in
            list.reduce(0.0) { $0 - log2(max(Double(trainCounts[Int($1)]), 1) / Double(max(trainUsers, 1))) }
                / Double(max(list.count, 1))
        }
        // Set-level: how the top 20 spread over the catalogue.
        var frequency = [Double](repeating: 0, count: trainCounts.count)
        for list in lists { for item in list.prefix(20) { frequency[Int(item)] += 1 } }
        let catalogue = trainCounts.indices.filter { trainCounts[$0] > 0 }
        let covered = catalogue.filter { frequency[$0] > 0 }.count
        metrics.append(Metric(name: "coverage", k: 20, value: Double(covered) / Double(max(catalogue.count, 1)),
                              standardError: nil, perUser: []))
        metrics.append(Metric(name: "gini", k: 20, value: gini(catalogue.map { frequency[$0] }), standardError: nil, perUser: []))
        return metrics
    }

    /// Mean NDCG@k over the held-out users that have targets, fold-in items excluded.
    public static func meanNDCG(_ recommender: Recommender, _ heldOut: ValidationSet, k: Int) -> Double {
        var total = 0.0, counted = 0
        recommender.scores(heldOut.foldIn, batchSize: 500) { row, scores in
            guard !heldOut.targets[row].isEmpty else { return }
            let f = heldOut.foldIn
            for j in f.rowStart[row]..<f.rowStart[row + 1] { scores[Int(f.columns[j])] = -.infinity }
            total += RankingMetrics.ndcg(topK(UnsafeBufferPointer(scores), k: k), targets: heldOut.targets[row], k: k)
            counted += 1
        }
        return counted > 0 ? total / Double(counted) : 0
    }

    /// The mean of per-user values (0 for none).
    public static func mean(_ values: [Double]) -> Double {
        values.isEmpty ? 0 : values.reduce(0, +) / Double(values.count)
    }

    /// The standard error of the mean of per-user values (0 for fewer than two).
    public static func standardError(_ values: [Double]) -> Double {
        let n = Double(values.count)
        guard n > 1 else { return 0 }
        let m = mean(values)
        let variance = values.reduce(0) { $0 + ($1 - m) * ($1 - m) } / (n - 1)
        return (variance / n).squareRoot()
    }

    /// The standard error of the mean of a − b, user by user (paired values of the same users).
    public static func pairedStandardError(_ a: [Double], _ b: [Double]) -> Double {
        precondition(a.count == b.count, "paired figures are of the same users")
        return standardError(zip(a, b).map { $0 - $1 })
    }

    /// Gini index of non-negative values: 0 when all are equal, near 1 when one holds all.
    public static func gini(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        let n = Double(sorted.count), total = sorted.reduce(0, +)
        guard n > 0, total > 0 else { return 0 }
        var weighted = 0.0
        for (i, x) in sorted.enumerated() { weighted += (2 * Double(i + 1) - n - 1) * x }
        return weighted / (n * total)
    }
}
