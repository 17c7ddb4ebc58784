import RecpipeNumerics

/// Anything that scores every item for users given their known items.
public protocol Recommender: Sendable {
    var items: Int { get }
    /// Calls `body(row, scores)` with each row's item scores (writable, valid during the
    /// call; higher is better).
    func scores(_ foldIn: CSRMatrix, batchSize: Int, body: (Int, UnsafeMutableBufferPointer<Float>) -> Void)
}

extension MultVAE: Recommender {}

extension Recommender {
    /// The top k items of every row of `foldIn`, its own items excluded, with their scores.
    /// Rows of a batch are ranked on all cores. `body(row, items, scores)` is called in row
    /// order.
    public func rankedLists(_ foldIn: CSRMatrix, k: Int, batchSize: Int = 500,
                            body: (Int, [Int32], [Float]) throws -> Void) throws {
        var pendingRows: [Int] = []
        var buffers: [[Float]] = []
        func flush() throws {
            var ranked = [[Int32]](repeating: [], count: pendingRows.count)
            var values = [[Float]](repeating: [], count: pendingRows.count)
            ranked.withUnsafeMutableBufferPointer { ranked in
                values.withUnsafeMutableBufferPointer { values in
                    let (ranked, values) = (ranked.baseAddress!, values.baseAddress!)
                    parallelRows(pendingRows.count) { n in
                        let row = pendingRows[n]
                        buffers[n].withUnsafeMutableBufferPointer { scores in
                            for j in foldIn.rowStart[row]..<foldIn.rowStart[row + 1] { scores[Int(foldIn.columns[j])] = -.infinity }
                            let top = RecpipeNumerics.topK(UnsafeBufferPointer(scores), k: k)
                            ranked[n] = top
                            values[n] = top.map { scores[Int($0)] }
                        }
                    }
                }
            }
            for (n, row) in pendingRows.enumerated() { try body(row, ranked[n], values[n]) }
            pendingRows.removeAll(keepingCapacity: true)
        }
        var failure: Error?
        scores(foldIn, batchSize: batchSize) { row, scores in
            guard failure == nil else { return }
            if buffers.count <= pendingRows.count { buffers.append([]) }
            buffers[pendingRows.count] = Array(scores)
            pendingRows.append(row)
            if pendingRows.count == batchSize {
                do { try flush() } catch { failure = error }
            }
        }
        if let failure { throw failure }
        if !pendingRows.isEmpty { try flush() }
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
