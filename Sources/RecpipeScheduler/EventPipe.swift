import Foundation
import RecpipeStages

/// The scheduler's end of one stage attempt's event channel: a FIFO in a directory of its
/// own (mode 0700), named to the child in `RECPIPE_EVENTS`. Foundation's `Process` closes
/// every descriptor but the standard three in the child, so the channel is a path.
///
/// The FIFO is held open for reading and writing, so it never reports an end of its own;
/// once the child has exited, `close` writes a marker after the child's last event and the
/// reader stops there.
final class EventPipe: @unchecked Sendable {
    let path: String
    private let directory: String
    private let descriptor: Int32
    /// Left when the reader has stopped.
    private let reading = DispatchGroup()
    static let endMarker = "end"

    /// Directories are named for the scheduler's pid, so that channels a killed scheduler
    /// left are found and removed (`removeAbandoned`).
    static let prefix = "recpipe-events-"

    init() throws {
        var template = Array((NSTemporaryDirectory() + "/\(Self.prefix)\(getpid())-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else {
            throw SchedulerError.cannotLaunch(stage: "events", reason: "cannot create a directory for the event channel: \(String(cString: strerror(errno)))")
        }
        directory = String(cString: made)
        path = directory + "/events"
        guard mkfifo(path, 0o600) == 0 else {
            let reason = String(cString: strerror(errno))
            rmdir(directory)
            throw SchedulerError.cannotLaunch(stage: "events", reason: "cannot create the event channel \(path): \(reason)")
        }
        descriptor = open(path, O_RDWR | O_CLOEXEC)
        guard descriptor >= 0 else {
            let reason = String(cString: strerror(errno))
            Self.removeFiles(in: directory)
            throw SchedulerError.cannotLaunch(stage: "events", reason: "cannot open the event channel \(path): \(reason)")
        }
    }

    /// Reads events on a thread of its own until `close`, calling `handle` with each.
    func startReading(_ handle: @escaping @Sendable (StageEvent) -> Void) {
        reading.enter()
        let descriptor = descriptor, reading = reading
        Thread.detachNewThread {
            EventChannel.read(from: descriptor, stop: { $0 == Self.endMarker }, handle)
            reading.leave()
        }
    }

    /// Ends the channel once the child has exited (or never started): writes the end marker
    /// after the child's last event (its leading newline ends a line a killed child left half
    /// written, which is then skipped), waits for the reader to reach it, and removes the
    /// FIFO. Returns false, keeping the FIFO, when the reader has not stopped within
    /// `timeout` seconds (a grandchild still holding the channel).
    @discardableResult
    func close(timeout: Double = 5) -> Bool {
        let marker = Array("\n\(Self.endMarker)\n".utf8)
        _ = marker.withUnsafeBytes { write(descriptor, $0.baseAddress!, $0.count) }
        guard reading.wait(timeout: .now() + timeout) == .success else { return false }
        Foundation.close(descriptor)
        Self.removeFiles(in: directory)
        return true
    }

    /// Removes the channels of schedulers that are gone (killed before they could).
    static func removeAbandoned() {
        let temporary = NSTemporaryDirectory()
        for name in (try? FileManager.default.contentsOfDirectory(atPath: temporary)) ?? [] where name.hasPrefix(prefix) {
            guard let pid = Int32(name.dropFirst(prefix.count).prefix { $0 != "-" }), pid > 0,
                  kill(pid, 0) != 0 && errno == ESRCH else { continue }
            removeFiles(in: temporary + "/" + name)
        }
    }

    /// Removes a channel's FIFO and its directory.
    private static func removeFiles(in directory: String) {
        unlink(directory + "/events")
        rmdir(directory)
    }
}
