import RecpipeNumerics

/// Accuracy against long-tail exposure for one model on held-out users: its lists as they
/// are (the base point), and re-ranked by each lever at each weight of its grid, every point
/// with NDCG@100 and APLT@20 per user (for paired comparisons), novelty@20 and coverage@20.
///
/// The operating point is chosen on validation users by a stated policy (`choose`): the
/// largest APLT@20 among the points whose NDCG@100 is at least (1 − max loss) × the base
/// point's.
public enum Tradeoff {
    /// The weights tried per lever (the base point is λ = 0 of both).
    public static let grid: [(lever: Reranking.Lever, weights: [Double])] = [
        (.xquad, [0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.7, 0.9]),
        (.popularity, [0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1]),
    ]

    /// The most NDCG@100 the chosen point may lose, relative to the base point.
    public static let defaultMaxNDCGLoss = 0.01

    /// What a point is: the model's own lists, a re-ranking, or (for augmented models) the
    /// weight of the synthetic interactions.
    public enum Lever: String, Sendable, Codable, CaseIterable {
        case none, xquad, popularity, augmentation
    }

    public struct Point: Sendable {
        public var lever: Lever
        public var setting: Double
        /// Per held-out user, in the order of the candidates' users.
        public var ndcg: [Double]
        public var aplt: [Double]
        public var novelty: Double
        public var coverage: Double

        public var users: Int { ndcg.count }
        public var ndcgMean: Double { Evaluation.mean(ndcg) }
        public var apltMean: Double { Evaluation.mean(aplt) }
    }

    /// A model's best `Reranking.candidateFactor` × k items, with their scores, for every
    /// held-out user with targets (fold-in items excluded), and each user's fold-in items.
    public struct Candidates: Sendable {
        public var users: [Int] = []
        public var items: [[Int32]] = []
        public var scores: [[Float]] = []
        public var k: Int

        /// The lists as the model ranks them: the top k of the candidates.
        public var lists: [[Int32]] { items.map { Array($0.prefix(k)) } }
    }

    public static func candidates(_ recommender: Recommender, on heldOut: ValidationSet, k: Int = 100) -> Candidates {
        let f = heldOut.foldIn, width = recommender.items
        var items = [[Int32]](repeating: [], count: f.rows), scores = [[Float]](repeating: [], count: f.rows)
        // A batch's rows are selected on every core (each writes its own row's entries).
        recommender.scoreBatches(f, batchSize: 500) { first, count, batch in
            items.withUnsafeMutableBufferPointer { itemsOut in
                scores.withUnsafeMutableBufferPointer { scoresOut in
                    let (itemsOut, scoresOut) = (itemsOut.baseAddress!, scoresOut.baseAddress!)
                    parallelRows(count) { n in
                        let row = first + n
                        guard !heldOut.targets[row].isEmpty else { return }
                        let rowScores = UnsafeMutableBufferPointer(rebasing: batch[(n * width)..<((n + 1) * width)])
                        for j in f.rowStart[row]..<f.rowStart[row + 1] { rowScores[Int(f.columns[j])] = -.infinity }
                        (itemsOut[row], scoresOut[row]) = topKWithScores(UnsafeBufferPointer(rowScores), k: Reranking.candidateFactor * k)
                    }
                }
            }
        }
        var result = Candidates(k: k)
        result.users = (0..<f.rows).filter { !heldOut.targets[$0].isEmpty }
        result.items = result.users.map { items[$0] }
        result.scores = result.users.map { scores[$0] }
        return result
    }

    /// The figures of `lists` (one per candidate user).
    public static func point(_ lever: Lever, _ setting: Double, lists: [[Int32]], users: [Int], on heldOut: ValidationSet,
                             trainCounts: [Float], trainUsers: Int, isHead: [Bool]) -> Point {
        let metrics = Evaluation.evaluate(lists: lists, users: users, on: heldOut, trainCounts: trainCounts,
                                          trainUsers: trainUsers, isHead: isHead)
        func metric(_ name: String, _ k: Int) -> Evaluation.Metric { metrics.first { $0.name == name && $0.k == k }! }
        return Point(lever: lever, setting: setting, ndcg: metric("ndcg", 100).perUser, aplt: metric("aplt", 20).perUser,
                     novelty: metric("novelty", 20).value, coverage: metric("coverage", 20).value)
    }

    /// The base point, then every lever at every weight of `grid`, on the same users.
    /// `reranking` carries the catalogue (the training counts' head and penalties).
    public static func curve(_ candidates: Candidates, on heldOut: ValidationSet, reranking: Reranking, trainCounts: [Float],
                             trainUsers: Int, isHead: [Bool]) -> [Point] {
        func figures(_ lever: Lever, _ setting: Double, _ lists: [[Int32]]) -> Point {
            point(lever, setting, lists: lists, users: candidates.users, on: heldOut, trainCounts: trainCounts,
                  trainUsers: trainUsers, isHead: isHead)
        }
        var points = [figures(.none, 0, candidates.lists)]
        let f = heldOut.foldIn, k = candidates.k
        for (lever, weights) in grid {
            for weight in weights {
                let rerank = reranking.with(lever: lever, weight: weight)
                var lists = [[Int32]](repeating: [], count: candidates.users.count)
                lists.withUnsafeMutableBufferPointer { lists in
                    let lists = lists.baseAddress!
                    parallelRows(candidates.users.count) { n in
                        let row = candidates.users[n]
                        let history = f.columns[f.rowStart[row]..<f.rowStart[row + 1]]
                        lists[n] = Array(rerank.order(candidates.items[n], candidates.scores[n], history: history).items.prefix(k))
                    }
                }
                points.append(figures(Lever(rawValue: lever.rawValue)!, weight, lists))
            }
        }
        return points
    }

    /// The operating point among the base point and the re-ranked ones (their index in
    /// `points`): the largest mean APLT@20 whose mean NDCG@100 is at least (1 − maxNDCGLoss)
    /// times the base point's; ties go to the higher NDCG@100, then to the earlier point
    /// (the base first, then the grid's order). Nil without a base point.
    public static func choose(_ points: [Point], maxNDCGLoss: Double) -> Int? {
        guard let base = points.firstIndex(where: { $0.lever == .none }) else { return nil }
        let floor = (1 - maxNDCGLoss) * points[base].ndcgMean
        var best = base
        for (i, p) in points.enumerated() where p.lever == .xquad || p.lever == .popularity {
            guard p.ndcgMean >= floor else { continue }
            let (a, b) = (p.apltMean, points[best].apltMean)
            if a > b || (a == b && p.ndcgMean > points[best].ndcgMean) { best = i }
        }
        return best
    }
}
