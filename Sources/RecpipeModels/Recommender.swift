import RecpipeNumerics

/// Anything that scores every item for users given their known items.
public protocol Recommender: Sendable {
    var items: Int { get }
    /// Calls `body(row, scores)` with each row's item scores (writable, valid during the
    /// call; higher is better).
    func scores(_ foldIn: CSRMatrix, batchSize: Int, body: (Int, UnsafeMutableBufferPointer<Float>) -> Void)
}

extension MultVAE: Recommender {}

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
