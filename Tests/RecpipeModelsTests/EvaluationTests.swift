import Foundation
import Testing
@testable import RecpipeModels
@testable import RecpipeNumerics

@Suite struct EvaluationTests {
    @Test func giniAndHead() {
        #expect(Evaluation.gini([3, 3, 3, 3]) == 0)
        #expect(abs(Evaluation.gini([0, 0, 0, 8]) - 0.75) < 1e-12)
        #expect(Evaluation.head(counts: [5, 3, 1, 1]) == [true, true, false, false])
        #expect(Evaluation.head(counts: [1, 1, 1, 1, 1]) == [true, true, true, true, false])
    }

    /// A recommender with fixed scores, for checking the metrics by hand.
    struct Fixed: Recommender {
        let ranking: [Float]
        var items: Int { ranking.count }
        func scores(_ foldIn: CSRMatrix, batchSize: Int, body: (Int, UnsafeMutableBufferPointer<Float>) -> Void) {
            for r in 0..<foldIn.rows {
                var s = ranking
                s.withUnsafeMutableBufferPointer { body(r, $0) }
            }
        }
    }

    @Test func metricsByHand() {
        // Items 0..5 ranked 0 > 1 > ... > 5; user 0 has item 0 (excluded), targets {2, 5};
        // user 1 has no fold-in, target {1}; user 2 has no targets (not evaluated).
        let heldOut = ValidationSet(foldIn: CSRMatrix(cols: 6, rowsOfColumns: [[0], [], [3]]), targets: [[2, 5], [1], []])
        let counts: [Float] = [10, 8, 6, 4, 1, 1]
        let (metrics, users) = Evaluation.evaluate(Fixed(ranking: [6, 5, 4, 3, 2, 1]), on: heldOut, trainCounts: counts,
                                                   trainUsers: 10)
        #expect(users == [0, 1])
        func value(_ name: String, _ k: Int) -> Double { metrics.first { $0.name == name && $0.k == k }!.value }
        // User 0's list: 1, 2, 3, 4, 5 → hits at ranks 2 and 5. User 1's list: 0, 1, ... → hit at rank 2.
        #expect(value("recall", 20) == 1)
        #expect(value("precision", 10) == (0.2 + 0.1) / 2)
        #expect(value("hit_rate", 10) == 1)
        #expect(abs(value("mrr", 100) - 0.5) < 1e-12)
        let ndcg0 = (1 / log2(3.0) + 1 / log2(6.0)) / (1 + 1 / log2(3.0)), ndcg1 = 1 / log2(3.0)
        #expect(abs(value("ndcg", 100) - (ndcg0 + ndcg1) / 2) < 1e-12)
        // Head: items 0, 1, 2 (24 of 30 interactions); tail 3, 4, 5.
        #expect(abs(value("aplt", 20) - (3.0 / 5 + 3.0 / 6) / 2) < 1e-12)
        #expect(value("coverage", 20) == 1)
        let standardError = metrics.first { $0.name == "precision" }!.standardError!
        #expect(abs(standardError - 0.05) < 1e-12)
    }

    @Test(.enabled(if: referenceSplit() != nil, "needs ../shared/reference/ml-100k-split"))
    func popularityMatchesTheReferenceFigures() throws {
        let split = try SplitFiles(directory: referenceSplit()!)
        let popularity = Popularity(train: split.train)
        let (metrics, users) = Evaluation.evaluate(popularity, on: split.test, trainCounts: popularity.counts,
                                                   trainUsers: split.train.rows)
        func value(_ name: String, _ k: Int) -> Double { metrics.first { $0.name == name && $0.k == k }!.value }
        #expect(users.count == 100)
        // ../shared/reference/README.md: popularity NDCG@100 0.230, Recall@20 0.181,
        // Recall@50 0.298, APLT@20 0.000, coverage@20 0.038.
        #expect(abs(value("ndcg", 100) - 0.230) < 0.0015)
        #expect(abs(value("recall", 20) - 0.181) < 0.0015)
        #expect(abs(value("recall", 50) - 0.298) < 0.0015)
        #expect(value("aplt", 20) == 0)
        #expect(abs(value("coverage", 20) - 0.038) < 0.0015)
    }
}
