import Foundation
import RecpipeStore

/// `recpipe report`: the HTML report of a database, written whole or not at all (to a
/// temporary file beside it, then renamed over it). Reads the database only, without its
/// writer lock, so it runs beside a nightly.
public struct ReportJob: Job {
    public static let name = "report"
    public static let reads: [TableName] = [
        .cleanRuns, .users, .items, .interactions, .rawInteractions, .models, .modelItems, .modelWeights, .trainingLog,
        .scoreRuns, .recommendationRows, .liveRecommendations, .recommendations, .evaluationRuns, .evaluation, .evaluationUsers,
        .evaluationHeadItems, .tradeoffPoints, .closedLoop, .augmentRuns, .ganTrainingLog,
    ]
    public static let writes: [TableName] = []
    public static let outputPaths = ["out"]

    public let out: String

    public init(out: String) { self.out = out }

    /// Writes the report of `store`; returns its size in bytes.
    public func run(_ store: Store) throws -> Int {
        try OutputGuard.check(out, database: store.path, replaceable: .notDatabase)
        let html = try Report.html(store)
        let temporary = out + ".partial"
        do {
            try html.write(toFile: temporary, atomically: false, encoding: .utf8)
            if rename(temporary, out) != 0 { throw CocoaError(.fileWriteUnknown) }
        } catch {
            unlink(temporary)
            let code = ((error as? CocoaError)?.underlying as? POSIXError)?.code.rawValue ?? EIO
            throw StoreError.writeFailed(path: out, reason: String(cString: strerror(code)), errno: code)
        }
        return html.utf8.count
    }
}
