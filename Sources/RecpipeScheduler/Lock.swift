import Foundation
import Logging

/// One run at a time per database: an exclusive `flock` on `DATABASE.lock`, which the kernel
/// releases when the holder exits, however it exits. The file names the holder (pid, host,
/// pipeline, start time) for the message a second run prints; a file naming a process that is
/// gone is a lock left by a killed run, and the new holder says it takes it over.
public final class RunLock: @unchecked Sendable {
    public let path: String
    private var descriptor: Int32
    /// What the file said when this lock was taken, when the holder it named is gone.
    public let takenOverFrom: String?

    /// Takes the lock of `database`; when another process holds it, throws `lockHeld` at once,
    /// or with `wait` waits for it (polling, up to `timeout` seconds when given).
    public init(database: String, holder: String, wait: Bool, timeout: Double? = nil, logger: Logger) throws {
        path = database + ".lock"
        descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw SchedulerError.lockFailed(lockFile: path, reason: String(cString: strerror(errno))) }
        let started = Date()
        var logged = false
        while flock(descriptor, LOCK_EX | LOCK_NB) != 0 {
            let reason = errno
            guard reason == EWOULDBLOCK else {
                close(descriptor)
                throw SchedulerError.lockFailed(lockFile: path, reason: String(cString: strerror(reason)))
            }
            let current = Self.read(descriptor)
            if !wait || (timeout.map { Date().timeIntervalSince(started) > $0 } ?? false) {
                close(descriptor)
                throw SchedulerError.lockHeld(lockFile: path, holder: current.isEmpty ? "holder unknown" : current)
            }
            if !logged {
                logger.info("waiting for the lock", metadata: ["lock": "\(path)", "holder": "\(current)"])
                logged = true
            }
            usleep(200_000)
        }
        let previous = Self.read(descriptor)
        takenOverFrom = previous.isEmpty ? nil : previous
        ftruncate(descriptor, 0)
        let text = holder + "\n"
        _ = text.withCString { pwrite(descriptor, $0, strlen($0), 0) }
    }

    /// Empties the file (a clean release) and unlocks it.
    public func release() {
        guard descriptor >= 0 else { return }
        ftruncate(descriptor, 0)
        close(descriptor)
        descriptor = -1
    }

    deinit { release() }

    private static func read(_ descriptor: Int32) -> String {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = pread(descriptor, &buffer, buffer.count, 0)
        guard count > 0 else { return "" }
        return String(decoding: buffer[..<count], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
