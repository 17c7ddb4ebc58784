import CSQLiteTuning
import Foundation
import Logging

/// One writer at a time per database: every command that writes a recpipe database holds
/// its writer lock while it runs, `recpipe run` for the whole run.
///
/// The lock is an open-file-description lock on a byte of the database file itself that
/// SQLite never locks, so it belongs to the file (whatever path, symlink or hard link names
/// it), and the kernel releases it when the holder exits, however it exits. Beside the
/// file's resolved path, `DATABASE.lock` names the holder (pid, command, since when) for the
/// message a second writer prints; it is emptied on a clean release, so a name left in it
/// is that of a holder that was killed.
///
/// Within one process the lock is shared: every `Store` opened for writing on the same file
/// counts as one holder. A stage process the scheduler starts runs under its run's lock:
/// the runner names itself in `RECPIPE_LOCK_HOLDER`, and a child whose parent is that
/// process and holds the lock goes ahead without taking it.
public final class WriterLock: @unchecked Sendable {
    /// The file naming the holder.
    public let holderFile: String
    /// What the holder file said when this lock was taken from a holder that is gone.
    public let takenOverFrom: String?
    /// Whether this process runs under its parent's lock instead of holding one.
    public let underParent: Bool
    private let entry: Entry
    private var released = false

    /// The environment variable in which the scheduler names itself to its stage processes.
    public static let parentVariable = "RECPIPE_LOCK_HOLDER"

    /// Takes the writer lock of the database file open as `descriptor` (at `path`). When
    /// another process holds it, throws `lockHeld` at once, or with `wait` retries for up to
    /// that many seconds (infinity: as long as it takes).
    init(path: String, command: String, wait: Double?, logger: Logger) throws {
        let entry = try Self.entry(for: path)
        self.entry = entry
        holderFile = entry.holderFile
        Self.tableLock.lock()
        defer { Self.tableLock.unlock() }
        if entry.holders > 0 {
            entry.holders += 1
            (takenOverFrom, underParent) = (nil, entry.underParent)
            return
        }
        let started = Clock.monotonic()
        var logged = false
        while true {
            let status = recpipe_writer_lock(entry.descriptor, 1)
            if status == 0 { break }
            guard status == EAGAIN else {
                throw StoreError.lockFailed(path: path, reason: String(cString: strerror(status)))
            }
            let holder = Self.readHolder(entry.holderFile)
            if Self.isParent(holder) {
                entry.holders = 1
                entry.underParent = true
                (takenOverFrom, underParent) = (nil, true)
                return
            }
            let waited = Clock.monotonic() - started
            guard let wait, waited < wait else {
                throw StoreError.lockHeld(path: path, holder: holder.isEmpty ? "holder unknown" : holder, waited: wait == nil ? nil : waited)
            }
            if !logged {
                logger.info("waiting for the writer lock", metadata: ["db": "\(path)", "holder": "\(holder)"])
                logged = true
            }
            usleep(200_000)
        }
        let previous = Self.readHolder(entry.holderFile)
        takenOverFrom = previous.isEmpty ? nil : previous
        underParent = false
        entry.holders = 1
        entry.underParent = false
        let text = "pid \(getpid()) on \(ProcessInfo.processInfo.hostName) since \(Clock.isoNow()): \(command)\n"
        let file = open(entry.holderFile, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        if file >= 0 {
            ftruncate(file, 0)
            _ = text.withCString { pwrite(file, $0, strlen($0), 0) }
            close(file)
        }
    }

    /// Gives the lock up (when this was the process's last holder): the holder file is
    /// emptied first, then the lock released.
    public func release() {
        Self.tableLock.lock()
        defer { Self.tableLock.unlock() }
        guard !released else { return }
        released = true
        entry.holders -= 1
        guard entry.holders == 0, !entry.underParent else { return }
        truncate(entry.holderFile, 0)
        _ = recpipe_writer_lock(entry.descriptor, 0)
    }

    deinit { release() }

    // MARK: The process's descriptors

    /// One per database file this process has locked. The descriptor is never closed:
    /// closing any descriptor of a file drops every POSIX lock the process holds on it,
    /// SQLite's own included, so it stays open (and is reused) until the process exits.
    final class Entry {
        let descriptor: Int32
        let holderFile: String
        var holders = 0
        var underParent = false
        init(descriptor: Int32, holderFile: String) {
            self.descriptor = descriptor
            self.holderFile = holderFile
        }
    }

    private struct FileID: Hashable { var device: UInt64; var inode: UInt64 }
    private static let tableLock = NSLock()
    nonisolated(unsafe) private static var entries: [FileID: Entry] = [:]

    private static func entry(for path: String) throws -> Entry {
        tableLock.lock()
        defer { tableLock.unlock() }
        var info = stat()
        if stat(path, &info) == 0 {
            let id = FileID(device: UInt64(info.st_dev), inode: UInt64(info.st_ino))
            var current = stat()
            if let known = entries[id], fstat(known.descriptor, &current) == 0, current.st_nlink > 0 { return known }
        } else if errno != ENOENT {
            throw StoreError.cannotOpen(path: path, reason: String(cString: strerror(errno)))
        }
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw StoreError.cannotOpen(path: path, reason: String(cString: strerror(errno))) }
        guard fstat(descriptor, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            throw StoreError.cannotOpen(path: path, reason: "not a regular file")
        }
        let entry = Entry(descriptor: descriptor, holderFile: resolvedPath(path) + ".lock")
        entries[FileID(device: UInt64(info.st_dev), inode: UInt64(info.st_ino))] = entry
        return entry
    }

    private static func readHolder(_ file: String) -> String {
        guard let data = FileManager.default.contents(atPath: file) else { return "" }
        return String(decoding: data.prefix(4096), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Whether `holder` (the holder file's text) names this process's parent, and the parent
    /// named itself to its children as the lock's holder.
    private static func isParent(_ holder: String) -> Bool {
        guard let named = ProcessInfo.processInfo.environment[parentVariable].flatMap({ Int32($0) }), named == getppid(),
              holderPID(holder) == named
        else { return false }
        return true
    }

    /// The pid a holder file's text starts with ("pid 123 ...").
    private static func holderPID(_ holder: String) -> Int32? {
        let words = holder.split(separator: " ", maxSplits: 2)
        guard words.count >= 2, words[0] == "pid" else { return nil }
        return Int32(words[1])
    }
}
