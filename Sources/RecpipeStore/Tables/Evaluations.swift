import GRDB

/// `evaluation_runs`, `evaluation`, `evaluation_users` and `evaluation_head_items`: each
/// evaluation's figures per model, per user and the head it judged the long tail by; and
/// `closed_loop`, the live lists against what their users did next.
public enum Evaluations {
    /// The model of `kind` of the split (trained on data with this fingerprint or carried over
    /// to this clean run, `Models.onSplitCondition`) and not pruned that an
    /// evaluation takes: the published one, else the newest. `augmented`: nil for any,
    /// true for one trained with synthetic interactions, false for one trained without.
    public static func model(kind: String, dataFingerprint: String, cleanRun: Int64, augmented: Bool?, in db: Database) throws -> Int64? {
        let filter = augmented.map { "AND json_extract(hyperparameters, '$.augmentation') IS \($0 ? "NOT NULL" : "NULL")" } ?? ""
        return try Int64.fetchOne(db, sql: """
            SELECT model_id FROM \(TableName.models) WHERE kind = ? AND \(Models.onSplitCondition) AND pruned_at IS NULL \(filter)
            ORDER BY status = 'published' DESC, model_id DESC LIMIT 1
            """, arguments: [kind, dataFingerprint, cleanRun])
    }

    /// The models of `kind` trained with synthetic interactions on the split with this
    /// fingerprint and not pruned: the newest for each weight of the synthetic rows, by weight.
    public static func augmentedModels(kind: String, dataFingerprint: String, in db: Database) throws -> [(id: Int64, weight: Double)] {
        try Row.fetchAll(db, sql: """
            SELECT max(model_id) AS id, json_extract(hyperparameters, '$.augmentation.weight') AS weight FROM \(TableName.models)
            WHERE kind = ? AND data_fingerprint = ? AND pruned_at IS NULL AND json_extract(hyperparameters, '$.augmentation') IS NOT NULL
            GROUP BY weight ORDER BY weight
            """, arguments: [kind, dataFingerprint]).compactMap { row in
            guard let weight: Double = row["weight"] else { return nil }
            return (row["id"], weight)
        }
    }

    /// One metric of one model.
    public struct Figure: Sendable {
        public var metric: String
        public var k: Int
        public var value: Double
        public var standardError: Double?
        /// By user, in the order of the model's `userKeys`.
        public var perUser: [Double]
        public init(metric: String, k: Int, value: Double, standardError: Double?, perUser: [Double]) {
            self.metric = metric
            self.k = k
            self.value = value
            self.standardError = standardError
            self.perUser = perUser
        }
    }

    /// One model's figures.
    public struct ModelFigures: Sendable {
        public var model: String
        public var modelID: Int64?
        public var userKeys: [String]
        public var figures: [Figure]
        public init(model: String, modelID: Int64?, userKeys: [String], figures: [Figure]) {
            self.model = model
            self.modelID = modelID
            self.userKeys = userKeys
            self.figures = figures
        }
    }

    /// Records an evaluation (in the caller's transaction); returns the rows of `evaluation`
    /// written.
    @discardableResult
    public static func record(run: Int64, cleanRun: Int64, part: String, users: Int, headItems: [(item: String, interactions: Int)],
                              models: [ModelFigures], in db: Database) throws -> Int {
        try db.execute(sql: """
            INSERT INTO \(TableName.evaluationRuns) (run_id, clean_run_id, part, users, head_items, created_at) VALUES (?, ?, ?, ?, ?, ?)
            """, arguments: [run, cleanRun, part, users, headItems.count, Clock.isoNow()])
        let headItem = try db.makeStatement(sql: "INSERT INTO \(TableName.evaluationHeadItems) (run_id, item_key, interactions) VALUES (?, ?, ?)")
        for (item, interactions) in headItems { try headItem.execute(arguments: [run, item, interactions]) }
        let aggregate = try db.makeStatement(sql: """
            INSERT INTO \(TableName.evaluation) (run_id, model, model_id, metric, k, value, stderr, users) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            """)
        let perUser = try db.makeStatement(sql: """
            INSERT INTO \(TableName.evaluationUsers) (run_id, model, user_key, metric, k, value) VALUES (?, ?, ?, ?, ?, ?)
            """)
        var rows = 0
        for model in models {
            for figure in model.figures {
                try aggregate.execute(arguments: [run, model.model, model.modelID, figure.metric, figure.k, figure.value,
                                                  figure.standardError, model.userKeys.count])
                rows += 1
                for (user, value) in zip(model.userKeys, figure.perUser) {
                    try perUser.execute(arguments: [run, model.model, user, figure.metric, figure.k, value])
                }
            }
        }
        return rows
    }

    /// The newest evaluation run's row.
    public static func latestRunRow(in db: Database) throws -> Row? {
        try Row.fetchOne(db, sql: "SELECT * FROM \(TableName.evaluationRuns) ORDER BY run_id DESC LIMIT 1")
    }

    /// An evaluation's figures, by model, metric and k.
    public static func figures(run: Int64, in db: Database) throws -> [Row] {
        try Row.fetchAll(db, sql: "SELECT * FROM \(TableName.evaluation) WHERE run_id = ? ORDER BY model, metric, k", arguments: [run])
    }

    /// One model's per-user figure in an evaluation, by user key.
    public static func perUser(run: Int64, model: String, metric: String, k: Int, in db: Database) throws -> [(user: String, value: Double)] {
        try Row.fetchAll(db, sql: """
            SELECT user_key, value FROM \(TableName.evaluationUsers) WHERE run_id = ? AND model = ? AND metric = ? AND k = ?
            """, arguments: [run, model, metric, k]).map { ($0["user_key"], $0["value"]) }
    }

    /// A closed-loop figure at one K.
    public struct ClosedLoop: Sendable {
        public var k: Int
        public var users: Int
        public var newInteractions: Int
        public var hitRate: Double
        public var recall: Double
        public init(k: Int, users: Int, newInteractions: Int, hitRate: Double, recall: Double) {
            self.k = k
            self.users = users
            self.newInteractions = newInteractions
            self.hitRate = hitRate
            self.recall = recall
        }
    }

    /// Records a feedback run's figures against the lists of `scoreRun`, published at `since`.
    public static func recordClosedLoop(run: Int64, scoreRun: Int64, since: String, _ figures: [ClosedLoop], in db: Database) throws {
        for f in figures {
            try db.execute(sql: """
                INSERT INTO \(TableName.closedLoop) (run_id, score_run_id, k, users, new_interactions, hit_rate, recall, since, created_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                """, arguments: [run, scoreRun, f.k, f.users, f.newInteractions, f.hitRate, f.recall, since, Clock.isoNow()])
        }
    }

    /// The closed-loop figures of the newest `runs` feedback runs, newest first.
    public static func closedLoop(runs: Int, in db: Database) throws -> [Row] {
        try Row.fetchAll(db, sql: """
            SELECT * FROM \(TableName.closedLoop) WHERE run_id IN (SELECT DISTINCT run_id FROM \(TableName.closedLoop) ORDER BY run_id DESC LIMIT ?)
            ORDER BY run_id DESC, k
            """, arguments: [runs])
    }
}
