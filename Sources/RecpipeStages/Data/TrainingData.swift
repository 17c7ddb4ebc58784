import Foundation
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
            guard let run = try Split.latestRun(in: db) else {
                throw StageError.missingInput("\(store.path): no clean run yet; run clean first")
            }
            let itemKeys = try Split.itemKeys(in: db)
            let userKeys = try Split.userKeys(in: db)
            let split = run.split
            var byPart: [SplitPart: [Int: [Int32]]] = [:]
            var hasher = SHA256()
            hasher.update(Array(itemKeys.joined(separator: "\u{0}").utf8))
            let parts = Dictionary(uniqueKeysWithValues: SplitPart.allCases.map { ($0.rawValue, $0) })
            var pair = [UInt8](repeating: 0, count: 8)
            try Split.forEachInteraction(in: db) { user, itemIndex, partName in
                let item = Int32(itemIndex)
                guard let part = parts[partName] else { return }
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
            return TrainingData(cleanRunID: run.runID, split: split, itemKeys: itemKeys, userKeys: userKeys, train: train,
                                trainUsers: trainUsers, validation: validation, validationUsers: validationUsers,
                                test: test, testUsers: testUsers, fingerprint: hasher.finalizeHex())
        }
    }
}
