import Foundation
import RecpipeTestSupport
import Testing
@testable import RecpipeModels
@testable import RecpipeNumerics

@Suite(.tags(.medium)) struct EvaluationTests {
    @Test func giniAndHead() {
        #expect(Evaluation.gini([3, 3, 3, 3]) == 0)
        #expect(abs(Evaluation.gini([0, 0, 0, 8]) - 0.75) < 1e-12)
        #expect(Evaluation.head(counts: [5, 3, 1, 1]) == [true, true, false, false])
        #expect(Evaluation.head(counts: [1, 1, 1, 1, 1]) == [true, true, true, true, false])
        // The item that crosses 80% is in the tail; the most popular one is always head.
        #expect(Evaluation.head(counts: [5, 2, 2, 1]) == [true, true, false, false])
        #expect(Evaluation.head(counts: [9, 1]) == [true, false])
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

/// Runs the team's reference evaluation (`../shared/reference/evaluate.py`) when it and a
/// Python with numpy and pandas are there.
func referenceEvaluation(split: String, recommendations csv: String) throws -> [String: Double]? {
    let script = URL(fileURLWithPath: split).deletingLastPathComponent().appendingPathComponent("evaluate.py").path
    guard FileManager.default.fileExists(atPath: script) else { return nil }
    let file = FileManager.default.temporaryDirectory.appendingPathComponent("recpipe-recs-\(UUID().uuidString).csv")
    try csv.write(to: file, atomically: true, encoding: .utf8)
    defer { try? FileManager.default.removeItem(at: file) }
    guard let data = try python([script, split, file.path]) else { return nil }
    var values: [String: Double] = [:]
    for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
        let fields = line.split(separator: " ")
        if fields.count == 3, let value = Double(fields[1]) { values[String(fields[0])] = value }
    }
    return values
}

/// Python with the reference evaluation's packages.
let hasReferencePython: Bool = (try? python(["-c", "import numpy, pandas"])) != nil

@Suite(.tags(.large)) struct ReferenceEvaluationTests {
    /// The same lists, evaluated here and by the reference evaluation, give the same metrics
    /// (the reference prints 6 decimals).
    @Test(.enabled(if: referenceSplit() != nil && hasReferencePython, "needs ../shared/reference and python3 with numpy, pandas"),
          arguments: ["popularity", "ease", "itemknn"])
    func metricsAgreeWithTheReferenceEvaluation(model: String) throws {
        let split = try SplitFiles(directory: referenceSplit()!)
        let popularity = Popularity(train: split.train)
        let recommender: Recommender = switch model {
        case "ease": try EASE.fit(train: split.train, lambda: 200)
        case "itemknn": ItemKNN.fit(train: split.train, neighbours: 20, shrink: 10)
        default: popularity
        }
        let (users, lists) = Evaluation.topLists(recommender, on: split.test)
        var csv = "user,item,rank\n"
        for (row, list) in zip(users, lists) {
            for (rank, item) in list.enumerated() { csv += "\(split.testUsers[row]),\(split.itemKeys[Int(item)]),\(rank + 1)\n" }
        }
        let reference = try #require(try referenceEvaluation(split: referenceSplit()!, recommendations: csv))
        let names = ["recall@20": ("recall", 20), "recall@50": ("recall", 50), "ndcg@100": ("ndcg", 100),
                     "precision@10": ("precision", 10), "hit@10": ("hit_rate", 10), "aplt@20": ("aplt", 20),
                     "coverage@20": ("coverage", 20), "gini@20": ("gini", 20)]
        #expect(reference["users"] == Double(users.count))
        // With the head exactly as the reference's sort draws it, every metric agrees to 1e-6.
        let referenceHead = try #require(try referenceHeadItems(split: referenceSplit()!))
        let keyIndex = Dictionary(uniqueKeysWithValues: split.itemKeys.enumerated().map { ($1, $0) })
        var theirHead = [Bool](repeating: false, count: split.itemKeys.count)
        for key in referenceHead { theirHead[try #require(keyIndex[key])] = true }
        let exact = Evaluation.evaluate(lists: lists, users: users, on: split.test, trainCounts: popularity.counts,
                                        trainUsers: split.train.rows, isHead: theirHead)
        for (name, (metric, k)) in names {
            let ours = try #require(exact.first { $0.name == metric && $0.k == k })
            let theirs = try #require(reference[name], "reference has no \(name)")
            #expect(abs(ours.value - theirs) <= 1e-6, "\(model) \(name): \(ours.value) vs reference \(theirs)")
        }
        // recpipe's own head (ties in popularity by item order) is the reference's, but for the
        // items tied with the last head item, which the reference's sort may order either way:
        // APLT may differ by at most the share of top-20 places such items take.
        let isHead = Evaluation.head(counts: popularity.counts)
        #expect(isHead.count == theirHead.count)
        let boundary = popularity.counts.indices.filter { isHead[$0] }.map { popularity.counts[$0] }.min()!
        for i in isHead.indices where isHead[i] != theirHead[i] { #expect(popularity.counts[i] == boundary) }
        let tiedPlaces = lists.map { list in Double(list.prefix(20).filter { popularity.counts[Int($0)] == boundary }.count) / 20 }
        let apltSlack = tiedPlaces.reduce(0, +) / Double(lists.count)
        let own = Evaluation.evaluate(lists: lists, users: users, on: split.test, trainCounts: popularity.counts,
                                      trainUsers: split.train.rows)
        let ownAPLT = try #require(own.first { $0.name == "aplt" && $0.k == 20 }).value
        #expect(abs(ownAPLT - reference["aplt@20"]!) <= 1e-6 + apltSlack)
    }
}

/// The reference evaluation's head items (keys), drawn as its script draws them: items by
/// number of training interactions, most first, in pandas' order, up to 80% of them.
func referenceHeadItems(split: String) throws -> [String]? {
    guard let data = try python(["-c", """
        import os, sys, pandas as pd
        train = pd.read_csv(os.path.join(sys.argv[1], 'train.csv'))
        pop = train.groupby('item').size().sort_values(ascending=False)
        cum = pop.cumsum() / pop.sum()
        for item in set(cum[cum <= 0.8].index) | {cum.index[0]}: print(item)
        """, split]) else { return nil }
    return String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
}

/// What `python3 ARGUMENTS` prints on stdout, or nil when it fails.
func python(_ arguments: [String]) throws -> Data? {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3"] + arguments
    let output = Pipe()
    process.standardOutput = output
    process.standardError = FileHandle.nullDevice
    try process.run()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return process.terminationStatus == 0 ? data : nil
}
