import RecpipeStages
import RecpipeStore

/// A kind of stage a manifest can `use`: the `recpipe` command that runs it, the tables it
/// reads and writes (from its `Stage` type where it has one) and which of its parameters
/// name files, all from its `Job` type. Adding a kind is one line in `allJobs`; its options
/// come from the command itself.
public struct StageKind: Sendable, Equatable {
    /// The `recpipe` subcommand, and the name used in manifests (`uses: train`).
    public let name: String
    public let reads: Set<TableName>
    public let writes: Set<TableName>
    /// Parameters whose values are files or directories the stage reads (relative to the
    /// manifest; may be glob patterns). They are part of the stage's fingerprint.
    public let inputPaths: [String]
    /// Parameters whose values are files the stage writes; a missing one makes it run again.
    public let outputPaths: [String]
    /// The data whose contents decide the stage's result, and the data it changes, given its
    /// parameters (`Job.inputs`, `Job.outputs`).
    public let inputs: @Sendable (_ parameters: [String: String]) -> [DataSet]
    public let outputs: @Sendable (_ parameters: [String: String]) -> [DataSet]
    /// A digest of the hand-filled tables that decide the stage's result (`Job.ruleDigest`).
    public let ruleDigest: @Sendable (_ parameters: [String: String], _ store: Store) throws -> String?

    public init(_ job: any Job.Type) {
        name = job.name
        // Every stage records itself in stage_runs; that is bookkeeping, not data flow.
        reads = Set(job.reads).subtracting([.stageRuns])
        writes = Set(job.writes).subtracting([.stageRuns])
        inputPaths = job.inputPaths
        outputPaths = job.outputPaths
        inputs = { job.inputs($0).filter { $0.table != .stageRuns } }
        outputs = { job.outputs($0).filter { $0.table != .stageRuns } }
        ruleDigest = { try job.ruleDigest($0, store: $1) }
    }

    /// Whether two stages may run at the same time: neither writes what the other reads or writes.
    public func conflicts(with other: StageKind) -> Bool {
        !writes.isDisjoint(with: other.writes) || !writes.isDisjoint(with: other.reads) || !reads.isDisjoint(with: other.writes)
    }

    /// One kind per job of `allJobs`.
    public static let all: [StageKind] = allJobs.map(StageKind.init)

    public static func == (a: StageKind, b: StageKind) -> Bool {
        a.name == b.name && a.reads == b.reads && a.writes == b.writes && a.inputPaths == b.inputPaths && a.outputPaths == b.outputPaths
    }

    public static func named(_ name: String) -> StageKind? { all.first { $0.name == name } }
}
