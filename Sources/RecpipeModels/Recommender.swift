import RecpipeNumerics

/// Anything that scores every item for users given their known items.
public protocol Recommender: Sendable {
    var items: Int { get }
    /// Calls `body(row, scores)` with each row's item scores (writable, valid during the
    /// call; higher is better).
    func scores(_ foldIn: CSRMatrix, batchSize: Int, body: (Int, UnsafeMutableBufferPointer<Float>) -> Void)
    /// The same scores a batch at a time: `body(firstRow, rows, scores)` with `scores`
    /// (rows × items, row-major) writable and valid during the call.
    func scoreBatches(_ foldIn: CSRMatrix, batchSize: Int, body: (Int, Int, UnsafeMutableBufferPointer<Float>) -> Void)
}

extension Recommender {
    /// Gathers per-row scores into batches (recommenders that score by batch override this).
    public func scoreBatches(_ foldIn: CSRMatrix, batchSize: Int, body: (Int, Int, UnsafeMutableBufferPointer<Float>) -> Void) {
        var buffer = [Float](repeating: 0, count: batchSize * items)
        var first = 0, count = 0
        let width = items
        scores(foldIn, batchSize: batchSize) { row, scores in
            if count == 0 { first = row }
            buffer.withUnsafeMutableBufferPointer { b in
                UnsafeMutableBufferPointer(rebasing: b[(count * width)..<((count + 1) * width)]).update(fromContentsOf: scores)
            }
            count += 1
            if count == batchSize {
                buffer.withUnsafeMutableBufferPointer { body(first, count, $0) }
                count = 0
            }
        }
        if count > 0 {
            buffer.withUnsafeMutableBufferPointer { b in body(first, count, UnsafeMutableBufferPointer(rebasing: b[0..<(count * width)])) }
        }
    }
}

extension Recommender {
    /// `scores` for recommenders that compute by batch: each row of every `scoreBatches`
    /// batch in turn.
    public func scoresByRow(_ foldIn: CSRMatrix, batchSize: Int, body: (Int, UnsafeMutableBufferPointer<Float>) -> Void) {
        let width = items
        scoreBatches(foldIn, batchSize: batchSize) { first, count, scores in
            for k in 0..<count {
                body(first + k, UnsafeMutableBufferPointer(rebasing: scores[(k * width)..<((k + 1) * width)]))
            }
        }
    }
}

extension MultVAE: Recommender {}

/// What a ranked list may not hold besides a row's own items, and how many items of one
/// category it may hold: business rules applied while ranking, so the next best items fill
/// the places of those left out.
public struct RankingRules: Sendable {
    /// By item: never ranked (empty: none blocked).
    public var blocked: [Bool]
    /// Per row of the fold-in matrix: items that row may not get (nil: none).
    public var excluded: CSRMatrix?
    /// By item: its category, −1 for none (empty: no categories).
    public var category: [Int32]
    /// At most this many items of one category in a list (items without one are not counted).
    public var maxPerCategory: Int?

    public init(blocked: [Bool] = [], excluded: CSRMatrix? = nil, category: [Int32] = [], maxPerCategory: Int? = nil,
                rerank: Reranking? = nil) {
        self.blocked = blocked
        self.excluded = excluded
        self.category = category
        self.maxPerCategory = maxPerCategory
        self.rerank = rerank
    }

    public static let none = RankingRules()

    /// With a re-ranking, the model's best candidates are re-ordered before the cap applies
    /// (nil: the model's order).
    public var rerank: Reranking?

    /// The best `k` items of `scores` (a row with its excluded items at −∞), re-ranked with
    /// `rerank` given the row's own items `history`, holding at most `maxPerCategory` of any
    /// category: the top of a longer list, walked in order, the list lengthened until it
    /// fills k or holds every rankable item.
    func selected(_ scores: UnsafeBufferPointer<Float>, k: Int, history: ArraySlice<Int32>) -> (items: [Int32], scores: [Float]) {
        let cap = category.isEmpty ? nil : maxPerCategory
        guard cap != nil || rerank != nil else { return topKWithScores(scores, k: k) }
        var want = min(scores.count, rerank != nil ? Reranking.candidateFactor * k : max(4 * k, k + 64))
        while true {
            var (items, values) = topKWithScores(scores, k: want)
            let found = items.count
            if let rerank { (items, values) = rerank.order(items, values, history: history) }
            guard let cap else { return (Array(items.prefix(k)), Array(values.prefix(k))) }
            var counts: [Int32: Int] = [:]
            var keptItems: [Int32] = [], keptScores: [Float] = []
            for (item, value) in zip(items, values) {
                let c = category[Int(item)]
                if c >= 0 {
                    guard counts[c, default: 0] < cap else { continue }
                    counts[c, default: 0] += 1
                }
                keptItems.append(item)
                keptScores.append(value)
                if keptItems.count == k { break }
            }
            if keptItems.count == k || found < want || want >= scores.count { return (keptItems, keptScores) }
            want = min(scores.count, want * 4)
        }
    }
}

extension Recommender {
    /// The top k items of every row of `foldIn`, its own items excluded (and what `rules`
    /// leave out), with their scores and, with an `explainer`, each item's reason from the
    /// row's items (empty without). Rows of a batch are ranked and explained on all cores.
    /// `body(row, items, scores, because)` is called in row order.
    public func rankedLists(_ foldIn: CSRMatrix, k: Int, batchSize: Int = 500, rules: RankingRules = .none,
                            explainer: (any Explaining)? = nil,
                            body: (Int, [Int32], [Float], [Int32?]) throws -> Void) throws {
        precondition(rules.blocked.isEmpty || rules.blocked.count == items, "one blocked flag per item")
        precondition(rules.category.isEmpty || rules.category.count == items, "one category per item")
        precondition(rules.excluded.map { $0.rows == foldIn.rows } ?? true, "one exclusion row per fold-in row")
        var failure: Error?
        let width = items
        let blocked = rules.blocked.indices.filter { rules.blocked[$0] }
        scoreBatches(foldIn, batchSize: batchSize) { first, count, scores in
            guard failure == nil else { return }
            var ranked = [[Int32]](repeating: [], count: count)
            var values = [[Float]](repeating: [], count: count)
            var because = [[Int32?]](repeating: [], count: count)
            ranked.withUnsafeMutableBufferPointer { ranked in
                values.withUnsafeMutableBufferPointer { values in
                  because.withUnsafeMutableBufferPointer { because in
                    let (ranked, values, because, all) = (ranked.baseAddress!, values.baseAddress!, because.baseAddress!, scores.baseAddress!)
                    parallelRows(count) { n in
                        let row = first + n, s = all + n * width
                        for j in foldIn.rowStart[row]..<foldIn.rowStart[row + 1] { s[Int(foldIn.columns[j])] = -.infinity }
                        for item in blocked { s[item] = -.infinity }
                        if let excluded = rules.excluded {
                            for j in excluded.rowStart[row]..<excluded.rowStart[row + 1] { s[Int(excluded.columns[j])] = -.infinity }
                        }
                        let own = foldIn.columns[foldIn.rowStart[row]..<foldIn.rowStart[row + 1]]
                        (ranked[n], values[n]) = rules.selected(UnsafeBufferPointer(start: s, count: width), k: k, history: own)
                        if let explainer {
                            because[n] = explainer.because(ranked[n], history: own)
                        }
                    }
                  }
                }
            }
            do {
                for n in 0..<count { try body(first + n, ranked[n], values[n], because[n]) }
            } catch {
                failure = error
            }
        }
        if let failure { throw failure }
    }
}

/// Most popular items first: the score of an item is its number of training users.
public struct Popularity: Recommender {
    public let counts: [Float]
    public var items: Int { counts.count }

    public init(train: CSRMatrix) {
        var counts = [Float](repeating: 0, count: train.cols)
        for c in train.columns { counts[Int(c)] += 1 }
        self.counts = counts
    }

    public init(counts: [Float]) { self.counts = counts }

    public func scores(_ foldIn: CSRMatrix, batchSize: Int = 500, body: (Int, UnsafeMutableBufferPointer<Float>) -> Void) {
        var row = counts
        for r in 0..<foldIn.rows {
            row.withUnsafeMutableBufferPointer { body(r, $0) }
            for k in 0..<counts.count { row[k] = counts[k] }
        }
    }
}

/// A recommender trained on another item index, seen through the current one: items are
/// matched by position mapping; current items it does not know score −∞.
public struct Remapped: Recommender {
    public let base: Recommender
    /// For each current item, its position in the base model's index (nil: unknown).
    public let mapping: [Int32?]
    public var items: Int { mapping.count }

    public init(_ base: Recommender, mapping: [Int32?]) {
        self.base = base
        self.mapping = mapping
    }

    public func scores(_ foldIn: CSRMatrix, batchSize: Int, body: (Int, UnsafeMutableBufferPointer<Float>) -> Void) {
        let rows = (0..<foldIn.rows).map { r in
            foldIn.columns[foldIn.rowStart[r]..<foldIn.rowStart[r + 1]].compactMap { mapping[Int($0)] }.sorted()
        }
        var current = [Float](repeating: 0, count: items)
        base.scores(CSRMatrix(cols: base.items, rowsOfColumns: rows), batchSize: batchSize) { row, scores in
            for i in 0..<mapping.count { current[i] = mapping[i].map { scores[Int($0)] } ?? -.infinity }
            current.withUnsafeMutableBufferPointer { body(row, $0) }
        }
    }
}
