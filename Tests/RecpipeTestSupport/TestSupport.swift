import Foundation
import Logging

/// What every test target shares: a logger that drops everything and scratch directories.

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
