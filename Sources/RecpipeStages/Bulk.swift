import GRDBSQLite
import RecpipeStore

/// Prepared-statement loops for bulk writes on a raw connection: `chunk` rows per
/// statement, then one at a time for the rest.
enum Bulk {
    /// `bind(statement, firstParameter, row)` binds one row's columns from `firstParameter` on.
    static func insert(_ connection: OpaquePointer, table: String, columns: [String], count: Int, chunk: Int = 32,
                       bind: (OpaquePointer, Int32, Int) -> Void) throws {
        let row = "(" + Array(repeating: "?", count: columns.count).joined(separator: ", ") + ")"
        func prepare(_ rows: Int) throws -> OpaquePointer {
            let sql = "INSERT INTO \(table) (\(columns.joined(separator: ", "))) VALUES "
                + Array(repeating: row, count: rows).joined(separator: ", ")
            var statement: OpaquePointer?
            guard sqlite3_prepare_v2(connection, sql, -1, &statement, nil) == SQLITE_OK, let statement else {
                throw StoreError.sqlite(connection, sql: sql)
            }
            return statement
        }
        let many = try prepare(chunk), one = try prepare(1)
        defer { sqlite3_finalize(many); sqlite3_finalize(one) }
        var k = 0
        while k < count {
            let statement = count - k >= chunk ? many : one
            let rows = statement == many ? chunk : 1
            for r in 0..<rows { bind(statement, Int32(r * columns.count + 1), k + r) }
            guard sqlite3_step(statement) == SQLITE_DONE else {
                throw StoreError.sqlite(connection, sql: "INSERT INTO \(table)")
            }
            sqlite3_reset(statement)
            k += rows
        }
    }
}
