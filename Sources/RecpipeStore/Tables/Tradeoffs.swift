import GRDB

/// `tradeoff_points`: each evaluation's accuracy / long-tail points per model and part, and
/// the operating point chosen for each model.
public enum Tradeoffs {
    public struct Point: Sendable, Equatable {
        public var model: String
        public var modelID: Int64?
        public var lever: String
        public var setting: Double
        public var part: String
        public var ndcg: Double
        public var ndcgSE: Double
        public var aplt: Double
        public var apltSE: Double
        public var coverage: Double
        public var novelty: Double
        public var users: Int
        /// Paired standard errors of the per-user differences to the base point.
        public var ndcgChangeSE: Double?
        public var apltChangeSE: Double?
        public var chosen: Bool

        public init(model: String, modelID: Int64?, lever: String, setting: Double, part: String, ndcg: Double, ndcgSE: Double,
                    aplt: Double, apltSE: Double, coverage: Double, novelty: Double, users: Int, ndcgChangeSE: Double?,
                    apltChangeSE: Double?, chosen: Bool) {
            self.model = model
            self.modelID = modelID
            self.lever = lever
            self.setting = setting
            self.part = part
            self.ndcg = ndcg
            self.ndcgSE = ndcgSE
            self.aplt = aplt
            self.apltSE = apltSE
            self.coverage = coverage
            self.novelty = novelty
            self.users = users
            self.ndcgChangeSE = ndcgChangeSE
            self.apltChangeSE = apltChangeSE
            self.chosen = chosen
        }
    }

    /// Records an evaluation's points (in the caller's transaction, after its
    /// `evaluation_runs` row).
    public static func record(run: Int64, points: [Point], in db: Database) throws {
        let insert = try db.makeStatement(sql: """
            INSERT INTO \(TableName.tradeoffPoints) (run_id, model, model_id, lever, setting, part, ndcg_100, ndcg_100_se, aplt_20,
                aplt_20_se, coverage_20, novelty_20, users, ndcg_100_change_se, aplt_20_change_se, chosen)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """)
        for p in points {
            try insert.execute(arguments: [run, p.model, p.modelID, p.lever, p.setting, p.part, p.ndcg, p.ndcgSE, p.aplt, p.apltSE,
                                           p.coverage, p.novelty, p.users, p.ndcgChangeSE, p.apltChangeSE, p.chosen ? 1 : 0])
        }
    }

    /// The points of one evaluation run, by model, part, lever and setting.
    public static func points(run: Int64, in db: Database) throws -> [Point] {
        try Row.fetchAll(db, sql: """
            SELECT * FROM \(TableName.tradeoffPoints) WHERE run_id = ?
            ORDER BY model, part, CASE lever WHEN 'none' THEN 0 WHEN 'xquad' THEN 1 WHEN 'popularity' THEN 2 ELSE 3 END, setting
            """, arguments: [run]).map { row in
            Point(model: row["model"], modelID: row["model_id"], lever: row["lever"], setting: row["setting"], part: row["part"],
                  ndcg: row["ndcg_100"], ndcgSE: row["ndcg_100_se"], aplt: row["aplt_20"], apltSE: row["aplt_20_se"],
                  coverage: row["coverage_20"], novelty: row["novelty_20"], users: row["users"],
                  ndcgChangeSE: row["ndcg_100_change_se"], apltChangeSE: row["aplt_20_change_se"], chosen: row["chosen"] == 1)
        }
    }

    /// The newest evaluation run with points.
    public static func latestRun(in db: Database) throws -> Int64? {
        try Int64.fetchOne(db, sql: "SELECT max(run_id) FROM \(TableName.tradeoffPoints)")
    }

    /// The operating point chosen for a model by the newest evaluation of the split of
    /// `cleanRun` that judged it: the evaluation run, the lever ('none' when the model's own
    /// lists were chosen) and λ.
    public static func chosen(modelID: Int64, cleanRun: Int64, in db: Database) throws -> (run: Int64, lever: String, setting: Double)? {
        try Row.fetchOne(db, sql: """
            SELECT t.run_id, t.lever, t.setting FROM \(TableName.tradeoffPoints) AS t
            JOIN \(TableName.evaluationRuns) AS e ON e.run_id = t.run_id
            WHERE t.model_id = ? AND e.clean_run_id = ? AND t.part = 'validation' AND t.chosen = 1
              AND t.lever IN ('none', 'xquad', 'popularity')
            ORDER BY t.run_id DESC LIMIT 1
            """, arguments: [modelID, cleanRun]).map { ($0["run_id"], $0["lever"], $0["setting"]) }
    }
}
