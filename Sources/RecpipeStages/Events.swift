import Foundation
import Logging

/// What a stage process tells the scheduler that runs it. Sent as one JSON object per line
/// on the process's event channel, beside (not inside) its human log lines, so no text a
/// stage logs, such as a rejected row's, can pass for an event.
public enum StageEvent: Codable, Sendable, Equatable {
    /// Work done so far (scoring's users, ingest's megabytes).
    case progress(done: Int, total: Int, unit: String)
    /// A training epoch finished.
    case epoch(Int)
    case warning(message: String, details: [String: String])
    case error(message: String, details: [String: String])
    /// The stage's result, sent once as it ends.
    case report(rowsIn: Int, rowsOut: Int, summary: [String])
}

/// Where a stage process sends its events: the FIFO the scheduler names in
/// `RECPIPE_EVENTS`, or nowhere (a stage run by hand). Safe to use from any thread; a
/// channel whose reader is gone drops events without failing the stage.
public final class EventChannel: @unchecked Sendable {
    public static let environmentVariable = "RECPIPE_EVENTS"
    /// A channel that drops every event.
    public static let none = EventChannel(descriptor: -1)

    private let descriptor: Int32
    private let lock = NSLock()
    private var broken = false
    /// Why the channel the scheduler named could not be opened (then it drops every event).
    public let problem: String?

    init(descriptor: Int32, problem: String? = nil) {
        self.descriptor = descriptor
        self.problem = problem
    }

    /// The channel this process was given, if any. One that cannot be opened drops every
    /// event and says why in `problem` (for the process's log): the stage itself still runs.
    public static func inherited(environment: [String: String] = ProcessInfo.processInfo.environment) -> EventChannel {
        guard let path = environment[environmentVariable], !path.isEmpty else { return .none }
        let descriptor = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC)
        guard descriptor >= 0 else {
            return EventChannel(descriptor: -1, problem: "cannot open the event channel \(path): \(String(cString: strerror(errno)))")
        }
        // Non-blocking only to fail at once when nobody reads; writes then wait for room.
        _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) & ~O_NONBLOCK)
        return EventChannel(descriptor: descriptor)
    }

    public var isOpen: Bool { descriptor >= 0 }

    public func send(_ event: StageEvent) {
        guard descriptor >= 0, var line = try? JSONEncoder().encode(event) else { return }
        line.append(10)
        lock.withLock {
            guard !broken else { return }
            line.withUnsafeBytes { bytes in
                var offset = 0
                while offset < bytes.count {
                    let n = write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
                    if n < 0 && errno == EINTR { continue }
                    guard n > 0 else { broken = true; return }
                    offset += n
                }
            }
        }
    }

    /// Reads events line by line from `descriptor` until `stop` returns true for a line
    /// that is not an event or the descriptor ends; lines that are not events are skipped.
    public static func read(from descriptor: Int32, stop: (Substring) -> Bool, _ handle: (StageEvent) -> Void) {
        var pending: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        let decoder = JSONDecoder()
        while true {
            let n = buffer.withUnsafeMutableBytes { Foundation.read(descriptor, $0.baseAddress!, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return }
            pending.append(contentsOf: buffer[..<n])
            // The complete lines, then what is left of the last one (removed once per read,
            // not once per line).
            var start = pending.startIndex
            while let newline = pending[start...].firstIndex(of: 10) {
                let line = pending[start..<newline]
                start = newline + 1
                if let event = try? decoder.decode(StageEvent.self, from: Data(line)) {
                    handle(event)
                } else if stop(Substring(decoding: line, as: UTF8.self)) {
                    return
                }
            }
            pending.removeSubrange(..<start)
        }
    }
}

/// Sends a process's warnings and errors as events too (beside its log line).
public struct EventLogHandler: LogHandler {
    public var logLevel: Logger.Level = .warning
    public var metadata: Logger.Metadata = [:]
    let channel: EventChannel

    public init(channel: EventChannel) { self.channel = channel }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        guard event.level >= .warning else { return }
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        let details = merged.mapValues { "\($0)" }
        channel.send(event.level == .warning ? .warning(message: "\(event.message)", details: details)
                                             : .error(message: "\(event.message)", details: details))
    }
}

extension StageContext {
    /// Logs progress for a person and sends it to the scheduler.
    public func progress(done: Int, total: Int, unit: String) {
        logger.info("progress", metadata: ["done": "\(done)", "total": "\(total)", "unit": "\(unit)"])
        events.send(.progress(done: done, total: total, unit: unit))
    }
}
