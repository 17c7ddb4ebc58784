import Foundation

/// One problem in a manifest, where it is: `pipelines/nightly.yaml:12: ...`.
public struct ManifestProblem: Error, Sendable, Equatable, CustomStringConvertible {
    /// The manifest file, or the command-line option that carried the value (`--set train.epochs=5`).
    public let location: String
    /// 1-based line in the file; nil for command-line values.
    public let line: Int?
    public let message: String

    public init(_ location: String, line: Int?, _ message: String) {
        self.location = location
        self.line = line
        self.message = message
    }

    public var description: String { line.map { "\(location):\($0): \(message)" } ?? "\(location): \(message)" }
}

/// Errors of the scheduler. Each carries what an operator needs to act on it.
public enum SchedulerError: Error, LocalizedError, Equatable, Sendable {
    /// The manifest cannot be used; nothing ran. Every problem found, each with file:line.
    case invalidManifest([ManifestProblem])
    /// The manifest file cannot be read.
    case unreadableManifest(path: String, reason: String)
    /// A command-line selection (`--only`, `--from`, `--until`) that does not fit the manifest.
    case badSelection(String)
    /// A stage's child process could not be started.
    case cannotLaunch(stage: String, reason: String)

    public var errorDescription: String? {
        switch self {
        case let .invalidManifest(problems):
            return problems.map(\.description).joined(separator: "\n")
        case let .unreadableManifest(path, reason): return "\(path): cannot read manifest: \(reason)"
        case let .badSelection(message): return message
        case let .cannotLaunch(stage, reason): return "stage \(stage): cannot start: \(reason)"
        }
    }
}

/// The closest of `candidates` to `word`, when close enough to be a likely typo.
func suggestion(for word: String, among candidates: [String]) -> String? {
    let scored = candidates.map { ($0, editDistance(word.lowercased(), $0.lowercased())) }
    guard let best = scored.min(by: { $0.1 < $1.1 || ($0.1 == $1.1 && $0.0 < $1.0) }) else { return nil }
    return best.1 <= max(1, word.count / 3) ? best.0 : nil
}

/// " (did you mean 'x'?)" or "".
func didYouMean(_ word: String, among candidates: [String]) -> String {
    suggestion(for: word, among: candidates).map { " (did you mean '\($0)'?)" } ?? ""
}

/// Edits (insertions, deletions, substitutions, swaps of neighbours) between two strings:
/// the optimal string alignment distance.
func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    guard !a.isEmpty, !b.isEmpty else { return max(a.count, b.count) }
    var d = [[Int]](repeating: [Int](repeating: 0, count: b.count + 1), count: a.count + 1)
    for i in 0...a.count { d[i][0] = i }
    for j in 0...b.count { d[0][j] = j }
    for i in 1...a.count {
        for j in 1...b.count {
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] { d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1) }
        }
    }
    return d[a.count][b.count]
}
