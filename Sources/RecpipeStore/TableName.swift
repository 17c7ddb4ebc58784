/// The name of a table (or view) in a recpipe database. Stages declare the tables they read
/// and write with these, so the scheduler can order and fingerprint them.
public struct TableName: Hashable, Sendable, CustomStringConvertible, ExpressibleByStringLiteral {
    public let rawValue: String
    public init(_ rawValue: String) { self.rawValue = rawValue }
    public init(stringLiteral value: String) { rawValue = value }
    public var description: String { rawValue }

    public static let stageRuns: TableName = "stage_runs"
    public static let ingestBatches: TableName = "ingest_batches"
    public static let rawInteractions: TableName = "raw_interactions"
    public static let ingestRejects: TableName = "ingest_rejects"
    public static let cleanRuns: TableName = "clean_runs"
    public static let users: TableName = "users"
    public static let items: TableName = "items"
    public static let interactions: TableName = "interactions"
    public static let models: TableName = "models"
    public static let modelItems: TableName = "model_items"
    public static let modelWeights: TableName = "model_weights"
    public static let trainingLog: TableName = "training_log"
    public static let modelCarryovers: TableName = "model_carryovers"
    public static let scoreRuns: TableName = "score_runs"
    public static let recommendationRows: TableName = "recommendation_rows"
    public static let liveRecommendations: TableName = "live_recommendations"
    public static let evaluationRuns: TableName = "evaluation_runs"
    public static let evaluation: TableName = "evaluation"
    public static let evaluationUsers: TableName = "evaluation_users"
    public static let evaluationHeadItems: TableName = "evaluation_head_items"
    public static let tradeoffPoints: TableName = "tradeoff_points"
    public static let closedLoop: TableName = "closed_loop"
    public static let augmentRuns: TableName = "augment_runs"
    public static let augmentedInteractions: TableName = "augmented_interactions"
    public static let ganTrainingLog: TableName = "gan_training_log"
    public static let itemMetadata: TableName = "item_metadata"
    /// Business rules users fill with SQL.
    public static let itemAvailability: TableName = "item_availability"
    public static let userExclusions: TableName = "user_exclusions"
    /// The scheduler's history.
    public static let pipelineRuns: TableName = "pipeline_runs"
    public static let pipelineStageRuns: TableName = "pipeline_stage_runs"
    /// The view consumers query.
    public static let recommendations: TableName = "recommendations"
}
