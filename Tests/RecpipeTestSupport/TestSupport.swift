import Foundation
import Testing
import Logging

/// What every test target shares: a logger that drops everything, scratch directories, and
/// the size tags every suite carries (small, medium, large).

/// A logger that drops every event.
public let quietLogger: Logger = {
    var logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }
    logger.logLevel = .critical
    return logger
}()

/// A new, empty directory under the system's temporary directory for one test's files.
public func scratchDirectory(_ prefix: String = "recpipe-test") -> String {
    let dir = NSTemporaryDirectory() + "\(prefix)-\(UUID().uuidString)"
    try! FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir
}

extension Tag {
    /// In memory, well under a second.
    @Tag public static var small: Self
    /// Real SQLite files, or a few seconds of computation.
    @Tag public static var medium: Self
    /// Real processes, real data sets, or more than ten seconds.
    @Tag public static var large: Self
}
