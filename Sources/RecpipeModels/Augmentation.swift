import Foundation
import RecpipeNumerics

/// Synthetic interactions from a trained generator, in the spirit of RAGAN (Chae et al., WWW
/// 2019): for each selected user, the items the generator scores highest among those the
/// user has not interacted with.
public enum Augmentation {
    public struct Selection: Codable, Sendable, Equatable {
        /// Users with fewer than this many training interactions get synthetic ones.
        public var usersBelow = 20
        /// Synthetic interactions per selected user: ⌈fraction × their real count⌉.
        public var fraction = 0.5
        /// Only items the generator scores at least this high (its output is in (0, 1)).
        public var minScore: Float = 0
        /// Only items outside the popular head (the most popular items holding 80% of the
        /// training interactions).
        public var longTail = false

        public init() {}
    }

    public struct Row: Sendable, Equatable {
        /// Row of the training matrix.
        public var row: Int
        public var item: Int32
        public var score: Float

        public init(row: Int, item: Int32, score: Float) {
            self.row = row
            self.item = item
            self.score = score
        }
    }

    /// The synthetic interactions for the rows of `train` that `selection` picks, best first
    /// within each row. `isHead` flags the popular head (for `longTail`).
    public static func select(_ generator: Recommender, train: CSRMatrix, selection: Selection,
                              isHead: [Bool]) -> [Row] {
        let rows = eligibleRows(train, selection)
        guard !rows.isEmpty, selection.fraction > 0 else { return [] }
        let foldIn = train.rows(rows[...])
        var out: [Row] = []
        generator.scores(foldIn, batchSize: 256) { n, scores in
            let real = foldIn.count(row: n)
            let wanted = Int((selection.fraction * Double(real)).rounded(.up))
            for k in foldIn.rowStart[n]..<foldIn.rowStart[n + 1] { scores[Int(foldIn.columns[k])] = -.infinity }
            if selection.longTail {
                for item in 0..<scores.count where isHead[item] { scores[item] = -.infinity }
            }
            for item in topK(UnsafeBufferPointer(scores), k: wanted) {
                let score = scores[Int(item)]
                guard score.isFinite, score >= selection.minScore else { break }
                out.append(Row(row: rows[n], item: item, score: score))
            }
        }
        return out
    }

    /// The rows of `train` that `selection` augments: those with at least one and fewer than
    /// `usersBelow` interactions.
    public static func eligibleRows(_ train: CSRMatrix, _ selection: Selection) -> [Int] {
        (0..<train.rows).filter { train.count(row: $0) > 0 && train.count(row: $0) < selection.usersBelow }
    }

    /// Training users' rows with their synthetic interactions added at `weight` (real ones
    /// keep their values). `rows` must not repeat a (row, item) pair nor name a real one.
    public static func merged(_ train: CSRMatrix, _ rows: [Row], weight: Float) -> CSRMatrix {
        var extra = [[(Int32, Float)]](repeating: [], count: train.rows)
        for row in rows { extra[row.row].append((row.item, weight)) }
        var rowStart = [0], columns: [Int32] = [], values: [Float] = []
        columns.reserveCapacity(train.nonZeros + rows.count)
        values.reserveCapacity(train.nonZeros + rows.count)
        for r in 0..<train.rows {
            var entries = (train.rowStart[r]..<train.rowStart[r + 1]).map { (train.columns[$0], train.values[$0]) } + extra[r]
            entries.sort { $0.0 < $1.0 }
            for (column, value) in entries {
                columns.append(column)
                values.append(value)
            }
            rowStart.append(columns.count)
        }
        return CSRMatrix(rows: train.rows, cols: train.cols, rowStart: rowStart, columns: columns, values: values)
    }

    /// A validation set carved out of training rows alone: up to `users` rows with at least
    /// 5 items each give a random `targetFraction` of their items as targets and keep the
    /// rest; the returned training matrix has those targets removed. `rowKeys` is a stable
    /// hash of each row's user (`stableHash`): the rows are those with the lowest keys and
    /// each row's targets come from a stream of its own, so they are the same users and items
    /// from one night to the next, whoever else arrives, and a warm-started model is never
    /// judged on items it was trained on.
    public static func internalValidation(_ train: CSRMatrix, users: Int, targetFraction: Double = 0.2,
                                          seed: UInt64, rowKeys: [UInt64]) -> (train: CSRMatrix, validation: ValidationSet?) {
        precondition(rowKeys.count == train.rows, "one key per row")
        let candidates = (0..<train.rows).filter { train.count(row: $0) >= 5 }.sorted { (rowKeys[$0], $0) < (rowKeys[$1], $1) }
        let chosen = Set(candidates.prefix(users))
        guard !chosen.isEmpty else { return (train, nil) }
        var trainRows: [[Int32]] = [], foldIn: [[Int32]] = [], targets: [Set<Int32>] = []
        for r in 0..<train.rows {
            let items = Array(train.columns[train.rowStart[r]..<train.rowStart[r + 1]])
            guard chosen.contains(r) else { trainRows.append(items); continue }
            var rng = SeededRandom(seed: seed, stream: rowKeys[r])
            let held = Set(rng.sample(Int(Double(items.count) * targetFraction), from: items.count).map { items[$0] })
            let kept = items.filter { !held.contains($0) }
            trainRows.append(kept)
            foldIn.append(kept)
            targets.append(held)
        }
        return (CSRMatrix(cols: train.cols, rowsOfColumns: trainRows),
                ValidationSet(foldIn: CSRMatrix(cols: train.cols, rowsOfColumns: foldIn), targets: targets))
    }
}
