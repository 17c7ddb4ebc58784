import ArgumentParser
import Foundation
import GRDB
import RecpipeScheduler
import RecpipeStages
import RecpipeStore

/// The one mapping from errors to exit codes (sysexits where they fit) and to the line an
/// operator reads. Every command ends through it.
///
/// | code | meaning |
/// |---|---|
/// | 1  | a stage failed: training diverged or collapsed, a publish was refused |
/// | 64 | bad usage: an unknown or invalid option |
/// | 65 | bad input data, an invalid manifest, another application's SQLite file |
/// | 66 | an input (file, database, manifest) cannot be opened or read |
/// | 70 | internal or SQLite error |
/// | 74 | disk full or I/O error |
/// | 75 | another command holds the database's writer lock (try again later) |
/// | 78 | the database schema does not match this recpipe |
enum Failure {
    static let stageFailed: Int32 = 1
    static let usage: Int32 = 64
    static let dataError: Int32 = 65
    static let noInput: Int32 = 66
    static let software: Int32 = 70
    static let ioError: Int32 = 74
    static let tempFail: Int32 = 75
    static let config: Int32 = 78
    /// `run --skipped-exit`: every selected stage was up to date and nothing ran (what Apache
    /// Airflow's BashOperator takes for a skipped task).
    static let allSkipped = Int32(AirflowDAG.skippedExitCode)

    /// The exit code for `error`.
    static func exitCode(_ error: Error) -> Int32 {
        switch error {
        case let error as StageError:
            switch error {
            case .trainingFailed, .refused: return stageFailed
            case .badOption: return usage
            case .unreadable: return noInput
            case .emptySource, .badHeader, .tooManyRejects, .badData, .missingInput: return dataError
            }
        case let error as StoreError:
            switch error {
            case .cannotOpen: return noInput
            case .outputOverInput: return usage
            case .notADatabase, .foreignDatabase, .noLiveLists: return dataError
            case .lockHeld: return tempFail
            case .lockFailed, .badMigrationName: return software
            case .migrationChanged, .schemaTooNew, .schemaBehind, .unknownAppliedMigration: return config
            case let .migrationFailed(_, _, code), let .statementFailed(_, _, _, code): return sqlite(code)
            case let .writeFailed(_, _, errno): return errno == ENOSPC || errno == EIO || errno == EDQUOT ? ioError : noInput
            }
        case let error as SchedulerError:
            switch error {
            case .invalidManifest: return dataError
            case .unreadableManifest: return noInput
            case .badSelection: return usage
            case .cannotLaunch: return software
            }
        case let error as DatabaseError:
            return sqlite(error.extendedResultCode.rawValue)
        case let error as CocoaError where [.fileWriteOutOfSpace, .fileWriteVolumeReadOnly].contains(error.code):
            return ioError
        default:
            return software
        }
    }

    /// SQLite result codes: a full disk or an I/O error is 74; a file that is not a database 65.
    static func sqlite(_ code: Int32) -> Int32 {
        if StoreError.isDiskFullOrIO(code) { return ioError }
        return code & 0xFF == 26 /* SQLITE_NOTADB */ ? dataError : software
    }

    /// The line an operator reads for `error`; `database` names the file when the error
    /// itself does not.
    static func message(_ error: Error, database: String?) -> String {
        switch error {
        case let error as DatabaseError:
            let place = database.map { "\($0): " } ?? ""
            let kind = StoreError.isDiskFullOrIO(error.extendedResultCode.rawValue) ? "disk full or I/O error: " : "SQLite error: "
            return place + kind + (error.message ?? "\(error.resultCode)")
        case let error as LocalizedError:
            return error.errorDescription ?? "\(error)"
        default:
            return "\(error)"
        }
    }
}
