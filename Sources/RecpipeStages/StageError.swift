import Foundation

/// Errors of the stages. Each names what an operator needs to find the problem: the file,
/// the line, the option.
public enum StageError: Error, LocalizedError, Equatable, Sendable {
    /// A source that cannot be opened or read.
    case unreadable(path: String, reason: String)
    /// A source with no data rows.
    case emptySource(path: String)
    /// A source whose header does not fit the format or the column options.
    case badHeader(path: String, reason: String)
    /// A source with too large a share of rejected rows; none of it was stored.
    /// `stoppedEarly`: judged on the first `read` rows, the rest not read.
    case tooManyRejects(path: String, rejected: Int, read: Int, threshold: Double, example: String, stoppedEarly: Bool = false)
    /// An option value that cannot work.
    case badOption(String)
    /// Input data that the stage cannot use (file, line and problem when known).
    case badData(String)
    /// A stage ran on tables that lack what it needs.
    case missingInput(String)
    /// A model's training failed (diverged, collapsed); nothing was stored.
    case trainingFailed(String)
    /// The stage refused to change what services read (an empty or shrunken set of lists, a
    /// model with non-finite weights); everything stays as it was.
    case refused(String)

    /// A problem of one source's content (or of reading it) rather than of the options or
    /// the database: ingest records the source as refused and goes on with the others.
    public var isSourceProblem: Bool {
        switch self {
        case .unreadable, .emptySource, .badHeader, .tooManyRejects, .badData: return true
        case .badOption, .missingInput, .trainingFailed, .refused: return false
        }
    }

    public var errorDescription: String? {
        switch self {
        case let .unreadable(path, reason): return "\(path): cannot read: \(reason)"
        case let .emptySource(path): return "\(path): no data rows"
        case let .badHeader(path, reason): return "\(path):1: \(reason)"
        case let .tooManyRejects(path, rejected, read, threshold, example, stoppedEarly):
            let share = String(format: "%.1f%%", 100 * Double(rejected) / Double(max(read, 1)))
            let limit = String(format: "%g%%", 100 * threshold)
            return "\(path): \(rejected) of \(stoppedEarly ? "the first " : "")\(read) rows rejected (\(share), limit \(limit))"
                + "\(stoppedEarly ? ", reading stopped" : ""); nothing stored; first: \(example)"
        case let .badOption(message): return message
        case let .badData(message): return message
        case let .missingInput(message): return message
        case let .trainingFailed(message): return message
        case let .refused(message): return message
        }
    }
}
