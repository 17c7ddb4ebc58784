import Foundation
import Testing
@testable import RecpipeModels
@testable import RecpipeNumerics

/// The re-ranking levers against naive references, the rules applied after them, and the
/// trade-off's choice of operating point.
@Suite struct RerankingTests {
    /// 40 items: counts fall with the index, so the head is the first few.
    let counts: [Float] = (0..<40).map { Float(400 / ($0 + 1)) }

    /// Smooth xQuAD as written: every remaining candidate's whole objective at every step.
    func naiveXQuAD(_ items: [Int32], _ scores: [Float], tail: Double, weight: Double, isHead: [Bool]) -> [Int32] {
        let lo = Double(scores.min()!), hi = Double(scores.max()!)
        var left = Array(items.indices), chosen: [Int] = []
        while !left.isEmpty {
            var best = left[0], bestValue = -Double.infinity
            for c in left {
                let relevance = hi > lo ? (Double(scores[c]) - lo) / (hi - lo) : 1
                let head = isHead[Int(items[c])]
                let taken = chosen.filter { isHead[Int(items[$0])] == head }.count
                let coverage = chosen.isEmpty ? 1 : 1 - Double(taken) / Double(chosen.count)
                let value = (1 - weight) * relevance + weight * (head ? 1 - tail : tail) * coverage
                if value > bestValue { (best, bestValue) = (c, value) }  // first (best model rank) on ties
            }
            chosen.append(best)
            left.removeAll { $0 == best }
        }
        return chosen.map { items[$0] }
    }

    func candidates(_ rng: inout SeededRandom) -> ([Int32], [Float]) {
        let items = Array(Set((0..<25).map { _ in Int32.random(in: 0..<40, using: &rng) })).shuffled(using: &rng)
        let scores = items.map { _ in Float.random(in: -2...3, using: &rng) }.sorted(by: >)
        return (items, scores)
    }

    @Test func xquadMatchesTheGreedyObjectiveComputedInFull() {
        var rng = SeededRandom(seed: 4)
        let base = Reranking(lever: .xquad, weight: 0.5, counts: counts)
        #expect(base.isHead.prefix(3).allSatisfy { $0 } && !base.isHead[39], "a head and a tail")
        for trial in 0..<60 {
            let (items, scores) = candidates(&rng)
            let history = Array(Set((0..<(trial % 7)).map { _ in Int32.random(in: 0..<40, using: &rng) })).sorted()[...]
            let weight = [0, 0.1, 0.3, 0.5, 0.9, 1][trial % 6]
            let rerank = base.with(lever: .xquad, weight: weight)
            let (got, gotScores) = rerank.order(items, scores, history: history)
            #expect(got == naiveXQuAD(items, scores, tail: rerank.tailShare(history), weight: weight, isHead: base.isHead),
                    "trial \(trial), λ \(weight)")
            // Every candidate once, each with its own model score.
            #expect(got.sorted() == items.sorted())
            let scoreOf = Dictionary(uniqueKeysWithValues: zip(items, scores))
            #expect(zip(got, gotScores).allSatisfy { scoreOf[$0] == $1 })
            if weight == 0 { #expect(got == items, "λ 0 keeps the model's order") }
        }
    }

    @Test func xquadRaisesTheTailForAUserOfTheTail() {
        let base = Reranking(lever: .xquad, weight: 0.6, counts: counts)
        let head = (0..<40).filter { base.isHead[$0] }.map(Int32.init), tail = (0..<40).filter { !base.isHead[$0] }.map(Int32.init)
        // The model ranks the head first; the user's own items are all in the tail.
        let items = Array(head.prefix(5)) + Array(tail.prefix(5))
        let scores: [Float] = (0..<10).map { Float(10 - $0) }
        let (tailUser, _) = base.order(items, scores, history: tail.suffix(3))
        let (headUser, _) = base.order(items, scores, history: head.prefix(3))
        func tailIn(_ list: [Int32]) -> Int { list.prefix(5).filter { !base.isHead[Int($0)] }.count }
        #expect(tailIn(tailUser) > tailIn(items))
        #expect(tailIn(headUser) <= tailIn(tailUser))
    }

    @Test func popularityIsAStableSortOfThePenalisedScores() {
        var rng = SeededRandom(seed: 5)
        let base = Reranking(lever: .popularity, weight: 0.3, counts: counts)
        #expect(abs(base.penalty[0] - 1) < 1e-6 && base.penalty.allSatisfy { (0...1).contains($0) })
        for trial in 0..<40 {
            var (items, scores) = candidates(&rng)
            if trial % 4 == 0 { scores = scores.map { ($0 * 2).rounded() / 2 } }  // ties
            let weight = [0, 0.05, 0.3, 1][trial % 4]
            let rerank = base.with(lever: .popularity, weight: weight)
            let lo = Double(scores.min()!), hi = Double(scores.max()!)
            let value = items.indices.map { c in
                (hi > lo ? (Double(scores[c]) - lo) / (hi - lo) : 1) - weight * log1p(Double(counts[Int(items[c])])) / log1p(400)
            }
            let expected = items.indices.sorted { value[$0] != value[$1] ? value[$0] > value[$1] : $0 < $1 }.map { items[$0] }
            let got = rerank.order(items, scores, history: []).items
            // Penalties are floats and the reference is in double: equal values may order
            // differently only where they tie within float rounding.
            for (g, e) in zip(got, expected) where g != e {
                let (a, b) = (items.firstIndex(of: g)!, items.firstIndex(of: e)!)
                #expect(abs(value[a] - value[b]) < 1e-6, "trial \(trial): \(g) before \(e)")
            }
        }
    }

    /// Re-ranked lists still obey the rules and hold K items where the catalogue allows.
    @Test func rulesHoldAfterReRanking() throws {
        var rng = SeededRandom(seed: 6)
        let items = 40
        let scores = (0..<(12 * items)).map { _ in Float.random(in: 0...1, using: &rng) }
        struct Fixed: Recommender {
            let table: [Float]
            let items: Int
            func scores(_ foldIn: CSRMatrix, batchSize: Int, body: (Int, UnsafeMutableBufferPointer<Float>) -> Void) {
                var row = [Float](repeating: 0, count: items)
                for r in 0..<foldIn.rows {
                    for i in 0..<items { row[i] = table[r * items + i] }
                    row.withUnsafeMutableBufferPointer { body(r, $0) }
                }
            }
        }
        let model = Fixed(table: scores, items: items)
        let foldIn = CSRMatrix(cols: items, rowsOfColumns: (0..<12).map { r in [Int32(r), Int32(20 + r)] })
        var blocked = [Bool](repeating: false, count: items)
        for i in [0, 1, 5, 33] { blocked[i] = true }
        let category = (0..<items).map { Int32($0 % 4) }
        for lever in Reranking.Lever.allCases {
            let rules = RankingRules(blocked: blocked, category: category, maxPerCategory: 3,
                                     rerank: Reranking(lever: lever, weight: 0.7, counts: counts))
            try model.rankedLists(foldIn, k: 10, batchSize: 5, rules: rules) { row, ranked, _, _ in
                #expect(ranked.count == 10, "\(lever) row \(row): \(ranked.count) items")
                #expect(Set(ranked).count == ranked.count)
                #expect(!ranked.contains { blocked[Int($0)] || $0 == Int32(row) || $0 == Int32(20 + row) })
                for c in 0..<4 { #expect(ranked.filter { category[Int($0)] == Int32(c) }.count <= 3) }
            }
        }
    }

    func point(_ lever: Tradeoff.Lever, _ setting: Double, ndcg: Double, aplt: Double) -> Tradeoff.Point {
        Tradeoff.Point(lever: lever, setting: setting, ndcg: [ndcg, ndcg], aplt: [aplt, aplt], novelty: 0, coverage: 0)
    }

    @Test func theOperatingPointIsTheMostTailWithinTheAllowedLoss() {
        let points = [point(.none, 0, ndcg: 0.400, aplt: 0.10), point(.xquad, 0.1, ndcg: 0.398, aplt: 0.15),
                      point(.xquad, 0.3, ndcg: 0.390, aplt: 0.30), point(.popularity, 0.1, ndcg: 0.397, aplt: 0.18),
                      point(.augmentation, 1, ndcg: 0.399, aplt: 0.60)]
        // 1% of 0.400 is 0.004: xquad 0.3 loses too much; augmentation is not a lever score applies.
        #expect(Tradeoff.choose(points, maxNDCGLoss: 0.01) == 3)
        #expect(Tradeoff.choose(points, maxNDCGLoss: 0.05) == 2)
        #expect(Tradeoff.choose(points, maxNDCGLoss: 0) == 0, "no loss allowed: the model's own lists")
        #expect(Tradeoff.choose(Array(points.dropFirst()), maxNDCGLoss: 0.01) == nil, "no base point")
    }

    /// Candidates hold the lists evaluation ranks (their first k), and the curve's base
    /// point is the model's own figures.
    @Test func theCurveStartsAtTheModelsOwnLists() {
        let train = CSRMatrix(cols: 40, rowsOfColumns: (0..<30).map { u in (0..<40).filter { u % ($0 + 1) == 0 }.map(Int32.init) })
        let heldOut = ValidationSet(foldIn: CSRMatrix(cols: 40, rowsOfColumns: (0..<6).map { [Int32($0), Int32($0 + 10)] }),
                                    targets: (0..<6).map { Set([Int32($0 + 20), Int32($0 + 1)]) })
        let popularity = Popularity(train: train)
        let candidates = Tradeoff.candidates(popularity, on: heldOut, k: 10)
        #expect(candidates.items.allSatisfy { $0.count == 38 }, "5 × 10 candidates, as many as there are (40 less the 2 known)")
        #expect(candidates.lists == Evaluation.topLists(popularity, on: heldOut, k: 10).lists)
        let isHead = Evaluation.head(counts: popularity.counts)
        #expect(isHead.contains(true) && isHead.contains(false), "a head and a tail")
        let points = Tradeoff.curve(candidates, on: heldOut, reranking: Reranking(lever: .xquad, weight: 0, counts: popularity.counts),
                                    trainCounts: popularity.counts, trainUsers: train.rows, isHead: isHead)
        #expect(points.count == 1 + Tradeoff.grid.map(\.weights.count).reduce(0, +))
        let (users, lists) = Evaluation.topLists(popularity, on: heldOut, k: 10)
        let own = Evaluation.evaluate(lists: lists, users: users, on: heldOut, trainCounts: popularity.counts, trainUsers: train.rows)
        #expect(abs(points[0].ndcgMean - own.first { $0.name == "ndcg" }!.value) < 1e-12)
        #expect(abs(points[0].apltMean - own.first { $0.name == "aplt" }!.value) < 1e-12)
        // Popularity ranks the head first: re-ranking for the tail can only raise APLT@20.
        #expect(points.dropFirst().allSatisfy { $0.apltMean >= points[0].apltMean - 1e-12 })
        #expect(points.contains { $0.apltMean > points[0].apltMean })
    }
}
