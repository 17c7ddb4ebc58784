import GRDB

/// `stage_runs`: one row per stage run, written `running` before the stage starts (so a
/// killed run leaves a trace) and completed when it ends.
public enum StageRuns {
    /// Records a run that is starting; returns its id.
    public static func begin(stage: String, parameters: String, in db: Database) throws -> Int64 {
        try db.execute(sql: "INSERT INTO \(TableName.stageRuns) (stage, status, parameters, started_at) VALUES (?, 'running', ?, ?)",
                       arguments: [stage, parameters, Clock.isoNow()])
        return db.lastInsertedRowID
    }

    /// Completes a run's row.
    public static func finish(run: Int64, status: String, seconds: Double, rowsIn: Int?, rowsOut: Int?, error: String?,
                              peakResidentMB: Double, in db: Database) throws {
        try db.execute(sql: """
            UPDATE \(TableName.stageRuns) SET status = ?, finished_at = ?, seconds = ?, rows_in = ?, rows_out = ?, error = ?,
                peak_rss_mb = ?
            WHERE run_id = ?
            """, arguments: [status, Clock.isoNow(), seconds, rowsIn, rowsOut, error, peakResidentMB, run])
    }

    /// The newest runs, newest first, as the report lists them.
    public static func recent(_ limit: Int, in db: Database) throws -> [Row] {
        try Row.fetchAll(db, sql: "SELECT * FROM \(TableName.stageRuns) ORDER BY run_id DESC LIMIT ?", arguments: [limit])
    }
}
