import Foundation
import GRDB
import RecpipeModels
import RecpipeNumerics
import RecpipeStore

/// The current split as matrices: training users × items, and the validation and test
/// users' fold-in and targets. Columns are `items.item_idx`.
public struct TrainingData: Sendable {
    public var cleanRunID: Int64
    public var split: String
    public var itemKeys: [String]
    /// `users.user_key` by `user_idx`.
    public var userKeys: [String]
    public var train: CSRMatrix
    /// user_idx of each row of `train`.
    public var trainUsers: [Int]
    public var validation: ValidationSet
    public var validationUsers: [Int]
    public var test: ValidationSet
    public var testUsers: [Int]
    /// SHA-256 over the item keys and the training interactions.
    public var fingerprint: String

    /// Reads the tables the clean stage wrote. In a temporal split a held-out user's fold-in
    /// is their training history; otherwise it is their `*_tr` rows.
    public static func load(_ store: Store) throws -> TrainingData {
        try store.queue.read { db in
            guard let run = try Row.fetchOne(db, sql: "SELECT run_id, split FROM \(TableName.cleanRuns) ORDER BY run_id DESC LIMIT 1") else {
                throw StageError.missingInput("\(store.path): no clean run yet; run clean first")
            }
            let itemKeys = try String.fetchAll(db, sql: "SELECT item_key FROM \(TableName.items) ORDER BY item_idx")
            let userKeys = try String.fetchAll(db, sql: "SELECT user_key FROM \(TableName.users) ORDER BY user_idx")
            let split: String = run["split"]
            var byPart: [SplitPart: [Int: [Int32]]] = [:]
            var hasher = SHA256()
            hasher.update(Array(itemKeys.joined(separator: "\u{0}").utf8))
            let parts = Dictionary(uniqueKeysWithValues: SplitPart.allCases.map { ($0.rawValue, $0) })
            var pair = [UInt8](repeating: 0, count: 8)
            try db.forEachRow("SELECT user_idx, item_idx, part FROM \(TableName.interactions) ORDER BY user_idx, item_idx") { row in
                let user = row.int(0), item = Int32(row.int64(1))
                guard let part = parts[row.string(2)] else { return }
                byPart[part, default: [:]][user, default: []].append(item)
                if part == .train {
                    withUnsafeBytes(of: UInt32(user).littleEndian) { pair.replaceSubrange(0..<4, with: $0) }
                    withUnsafeBytes(of: UInt32(item).littleEndian) { pair.replaceSubrange(4..<8, with: $0) }
                    hasher.update(pair)
                }
            }
            func matrix(_ part: SplitPart) -> (CSRMatrix, [Int]) {
                let rows = byPart[part] ?? [:]
                let users = rows.keys.sorted()
                return (CSRMatrix(cols: itemKeys.count, rowsOfColumns: users.map { rows[$0]! }), users)
            }
            func heldOut(foldIn: SplitPart, targets: SplitPart) -> (ValidationSet, [Int]) {
                let targetRows = byPart[targets] ?? [:]
                let users = targetRows.keys.sorted()
                let source = split == "temporal" ? (byPart[.train] ?? [:]) : (byPart[foldIn] ?? [:])
                var history = users.map { source[$0] ?? [] }
                if split == "temporal" && targets == .testTarget {
                    // The test period's history includes the validation period.
                    let validation = byPart[.validationTarget] ?? [:]
                    history = zip(users, history).map { ($1 + (validation[$0] ?? [])).sorted() }
                }
                return (ValidationSet(foldIn: CSRMatrix(cols: itemKeys.count, rowsOfColumns: history),
                                      targets: users.map { Set(targetRows[$0]!) }), users)
            }
            let (train, trainUsers) = matrix(.train)
            let (validation, validationUsers) = heldOut(foldIn: .validationFoldIn, targets: .validationTarget)
            let (test, testUsers) = heldOut(foldIn: .testFoldIn, targets: .testTarget)
            return TrainingData(cleanRunID: run["run_id"], split: split, itemKeys: itemKeys, userKeys: userKeys, train: train,
                                trainUsers: trainUsers, validation: validation, validationUsers: validationUsers,
                                test: test, testUsers: testUsers, fingerprint: hasher.finalizeHex())
        }
    }
}
