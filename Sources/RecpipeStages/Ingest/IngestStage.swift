import Foundation
import Logging
import RecpipeStore

/// Reads interaction files (or a query on another SQLite database) into `raw_interactions`.
///
/// Each source is one transaction: it is stored whole or not at all. A source whose content
/// hash is already in `ingest_batches` is skipped. Rows that cannot be used go to
/// `ingest_rejects` with the reason. A source that cannot be used (unreadable, empty, no
/// usable header, too many rejected rows) is refused: recorded in `ingest_batches` with
/// status `refused`, its reason and its first rejects, none of its rows stored; the other
/// sources are stored and the stage succeeds unless `strict`. The same content is skipped
/// later without being read, unless `retryRefused`.
public struct IngestStage: Stage {
    public struct Config: Codable, Sendable, Equatable {
        /// Files or directories (every regular, non-hidden file inside, by name). With the
        /// `sqlite` format: SQLite database files.
        public var sources: [String]
        /// nil: sniffed from each file's name and first line.
        public var format: InputFormat?
        public var columns: SourceColumns
        /// The query run on each `sqlite` source.
        public var query: String?
        /// A source with a larger share of rejected rows fails and stores nothing.
        public var maxRejectedShare: Double
        /// Longest user or item key accepted, in bytes.
        public var maxFieldBytes: Int
        /// The unit of numeric timestamps.
        public var timeUnit: TimeUnit = .s
        /// A refused source fails the stage (exit 65) instead of being recorded and passed over.
        public var strict = false
        /// Read again sources whose content was refused before.
        public var retryRefused = false
        /// Accept a directory holding no files or a pattern matching none (otherwise exit 66:
        /// an empty drop folder usually means the export upstream failed).
        public var allowEmpty = false

        public init(sources: [String], format: InputFormat? = nil, columns: SourceColumns = SourceColumns(),
                    query: String? = nil, maxRejectedShare: Double = 0.10, maxFieldBytes: Int = 1024) {
            self.sources = sources
            self.format = format
            self.columns = columns
            self.query = query
            self.maxRejectedShare = maxRejectedShare
            self.maxFieldBytes = maxFieldBytes
        }
    }

    public static let name = "ingest"
    public static let reads: [TableName] = [.ingestBatches]
    public static let writes: [TableName] = [.ingestBatches, .rawInteractions, .ingestRejects]
    public static let inputPaths = ["sources", "from_sqlite"]
    public let config: Config

    public init(config: Config) throws {
        guard !config.sources.isEmpty else { throw StageError.badOption("ingest: no sources given") }
        guard config.maxRejectedShare >= 0 && config.maxRejectedShare <= 1 else {
            throw StageError.badOption("--max-rejected must be between 0 and 1, got \(config.maxRejectedShare)")
        }
        guard config.maxFieldBytes > 0 else { throw StageError.badOption("--max-field-bytes must be positive") }
        if config.format == .sqlite && (config.query ?? "").isEmpty {
            throw StageError.badOption("--from-sqlite needs --query SQL")
        }
        self.config = config
    }

    /// What became of one source.
    public enum Outcome: Equatable, Sendable {
        case stored(batchID: Int64, read: Int, accepted: Int, rejected: Int)
        case skipped(existingBatch: Int64)
        /// Recorded as refused now.
        case refused(batchID: Int64, error: StageError)
        /// The same content was refused before (that batch, its reason); not read again.
        case refusedBefore(batchID: Int64, reason: String)
    }

    /// Seconds between progress events (tests shorten it).
    nonisolated(unsafe) static var progressInterval: Double = 2

    public func run(_ context: StageContext) throws -> StageReport {
        var report = StageReport()
        let sources = try expandSources()
        // Sizes for progress only: an unreadable file counts 0 here and is reported when ingested.
        let sizes = config.format == .sqlite ? [] : sources.map { (try? FileByteSource.size(path: $0)) ?? 0 }
        let progress = config.format == .sqlite ? nil
            : IngestProgress(totalBytes: sizes.reduce(0, +), context: context, interval: Self.progressInterval)
        for (index, source) in sources.enumerated() {
            var logger = context.logger
            logger[metadataKey: "source"] = "\(source)"
            defer { progress?.finished(source: sizes[index]) }
            do {
                switch try ingest(source: source, context: context, logger: logger, progress: progress) {
                case let .stored(batch, read, accepted, rejected):
                    report.rowsIn += read
                    report.rowsOut += accepted
                    report.summary.append("\(source): \(accepted) rows stored, \(rejected) rejected (batch \(batch))")
                case let .skipped(batch):
                    report.summary.append("\(source): already ingested as batch \(batch), skipped")
                case let .refused(batch, error):
                    logger.error("source refused", metadata: ["batch": "\(batch)", "error": "\(error.localizedDescription)"])
                    report.summary.append("refused (batch \(batch)): \(error.localizedDescription)")
                    if config.strict { report.failures.append(error) }
                case let .refusedBefore(batch, reason):
                    logger.warning("source skipped: its content was refused before", metadata: [
                        "batch": "\(batch)", "reason": "\(reason)", "hint": "--retry-refused reads it again"])
                    report.summary.append("\(source): refused before as batch \(batch), skipped (--retry-refused reads it again)")
                    if config.strict {
                        report.failures.append(.badData("\(source): refused before as batch \(batch): \(reason)"))
                    }
                }
            } catch let error as StageError {
                logger.error("source failed", metadata: ["error": "\(error.localizedDescription)"])
                report.failures.append(error)
            }
        }
        return report
    }

    /// The files the sources name: files, the files of directories, the matches of patterns.
    /// A directory holding no files or a pattern matching none is an error (66) unless
    /// `allowEmpty`; a missing file is reported when it is ingested.
    func expandSources() throws -> [String] {
        if config.format == .sqlite { return config.sources }
        var files: [String] = []
        for source in config.sources {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: source, isDirectory: &isDirectory) else {
                if let matches = FilePattern.glob(source) {
                    try refuseEmpty(matches.isEmpty, source, "the pattern matches no file")
                    files += matches.filter { !FilePattern.isDirectory($0) }
                } else {
                    files.append(source)  // reported as unreadable when ingested
                }
                continue
            }
            if isDirectory.boolValue {
                let names = (try? FileManager.default.contentsOfDirectory(atPath: source)) ?? []
                let found = names.sorted().filter { !$0.hasPrefix(".") }.map { (source as NSString).appendingPathComponent($0) }
                    .filter { !FilePattern.isDirectory($0) }
                try refuseEmpty(found.isEmpty, source, "the directory holds no files")
                files += found
            } else {
                files.append(source)
            }
        }
        return files
    }

    private func refuseEmpty(_ empty: Bool, _ source: String, _ what: String) throws {
        guard empty, !config.allowEmpty else { return }
        throw StageError.unreadable(path: source, reason: "\(what) (an empty drop folder usually means the export upstream failed; --allow-empty accepts it); nothing ingested")
    }

    func ingest(source: String, context: StageContext, logger: Logger, progress: IngestProgress? = nil) throws -> Outcome {
        if config.format == .sqlite {
            return try ingestSQLite(path: source, query: config.query ?? "", context: context, logger: logger)
        }
        // A path that is not there is a mistake in the arguments, not a poison file.
        guard FileManager.default.fileExists(atPath: source) else {
            throw StageError.unreadable(path: source, reason: "no such file")
        }
        // The content hash is computed on another thread while the rows are parsed. Only a
        // file with the size of one already recorded can be a repeat; for those the hash is
        // awaited first, so a repeat is skipped without parsing it.
        let size = (try? FileByteSource.size(path: source)) ?? 0
        let hashing = BackgroundHash(path: source)
        let started = Clock.isoNow()
        do {
            let sameSize = try context.store.queue.read { try IngestBatches.anyFile(ofSize: size, in: $0) }
            if sameSize, let earlier = try seen(hash: try hashing.wait(), context: context, logger: logger) {
                return earlier
            }
            let format = try config.format ?? Self.sniff(path: source)
            var reader = RowReader(path: source, format: format, columns: config.columns, maxFieldBytes: config.maxFieldBytes,
                                   timeUnit: config.timeUnit)
            reader.progress = progress.map { progress in { @Sendable bytes in progress.reading(bytes) } }
            return try storeBatch(source: source, query: nil, format: format, context: context, logger: logger,
                                  hash: { try? hashing.wait() }) { sink in
                let rows = try reader.readPipelined(into: sink)
                return (rows, try hashing.wait(), size)
            }
        } catch let error as StageError where error.isSourceProblem {
            // Unreadable before any row was parsed (opening, sniffing the format).
            return try refuse(Refusal(source: source, query: nil, format: config.format?.rawValue ?? "unknown", error: error,
                                      hash: try? hashing.wait(), bytes: size, startedAt: started), context: context)
        }
    }

    /// What an earlier batch with this content says about it: stored (skip it), or refused
    /// (skip it too unless `retryRefused`); nil when there is none or it is to be read again.
    /// A refused batch is marked as seen by this run (the metrics count what the latest run
    /// refused).
    func seen(hash: String, context: StageContext, logger: Logger) throws -> Outcome? {
        guard let earlier = try context.store.queue.read({ try IngestBatches.earlier(hash: hash, in: $0) }) else { return nil }
        let batch = earlier.batchID
        if earlier.refused {
            if config.retryRefused { return nil }
            try context.store.queue.write { try IngestBatches.markSeen(batch: batch, run: context.runID, in: $0) }
            return .refusedBefore(batchID: batch, reason: earlier.reason ?? "")
        }
        logger.info("source skipped, already ingested", metadata: ["batch": "\(batch)", "sha256": "\(hash)"])
        return .skipped(existingBatch: batch)
    }

    /// Stores one source in one transaction on a bulk connection: a batch row, the rows that
    /// `load` writes into the sink, then the checks (content already stored, empty, too many
    /// rejects) and the batch's counts. `load` returns the rows read, the content hash and
    /// the size in bytes.
    /// `hash` gives the content hash, where it can be known, for the record of a source
    /// refused halfway.
    func storeBatch(source: String, query: String?, format: InputFormat, context: StageContext, logger: Logger,
                    hash knownHash: () -> String? = { nil },
                    load: (RowSink) throws -> (rows: Int, hash: String, bytes: Int)) throws -> Outcome {
        let started = Clock.monotonic()
        let startedAt = Clock.isoNow()
        var read = 0
        let sink: RowSink
        var partial: RowSink?
        do {
            let connection = try context.store.bulkConnection()
            sink = try connection.inTransaction {
                let batchID = try IngestBatches.begin(run: context.runID, source: source, query: query, format: format.rawValue,
                                                      startedAt: startedAt, on: connection)
                let batch = try RowSink(connection: connection, batchID: batchID, source: source,
                                        maxRejectedShare: config.maxRejectedShare)
                partial = batch
                let (rows, hash, bytes) = try load(batch)
                read = rows
                if let existing = try IngestBatches.earlier(hash: hash, on: connection) {
                    if existing.refused && config.retryRefused {
                        // Read again and stored: the earlier refusal of this content goes.
                        try IngestBatches.remove(refused: existing.batchID, on: connection)
                    } else {
                        throw AlreadyIngested(batchID: existing.batchID, hash: hash)
                    }
                }
                if rows == 0 { throw StageError.emptySource(path: source) }
                try batch.judge(read: rows, whole: true)
                try IngestBatches.complete(batch: batch.batchID, hash: hash, bytes: bytes, read: rows, accepted: batch.accepted,
                                           rejected: batch.rejected, seconds: Clock.monotonic() - started, on: connection)
                return batch
            }
        } catch let repeated as AlreadyIngested {
            return try seen(hash: repeated.hash, context: context, logger: logger) ?? .skipped(existingBatch: repeated.batchID)
        } catch let error as StageError where error.isSourceProblem {
            return try refuse(Refusal(source: source, query: query, format: format.rawValue, error: error, hash: knownHash(),
                                      bytes: 0, read: partial.map { $0.accepted + $0.rejected } ?? read,
                                      accepted: partial?.accepted ?? 0, rejected: partial?.rejected ?? 0,
                                      rejects: partial?.firstRejects ?? [], startedAt: startedAt), context: context)
        }
        let seconds = Clock.monotonic() - started
        logger.info("source ingested", metadata: [
            "batch": "\(sink.batchID)", "format": "\(format.rawValue)", "rows_read": "\(read)",
            "accepted": "\(sink.accepted)", "rejected": "\(sink.rejected)",
            "seconds": "\(String(format: "%.2f", seconds))",
            "rows_per_s": "\(Int(Double(read) / max(seconds, 1e-9)))",
        ])
        return .stored(batchID: sink.batchID, read: read, accepted: sink.accepted, rejected: sink.rejected)
    }

    /// A source that cannot be used, as `ingest_batches` records it.
    struct Refusal {
        var source: String
        var query: String?
        var format: String
        var error: StageError
        /// nil where the content could not be read whole: then a later run reads it again.
        var hash: String?
        var bytes: Int
        var read = 0
        var accepted = 0
        var rejected = 0
        var rejects: [Reject] = []
        var startedAt: String
    }

    /// Records a refused source in its own transaction: a batch with status `refused`, the
    /// reason and the first rejects, no rows. An earlier refusal of the same content (a
    /// retry) is replaced.
    func refuse(_ refusal: Refusal, context: StageContext) throws -> Outcome {
        var refusal = refusal
        if refusal.bytes == 0 { refusal.bytes = (try? FileByteSource.size(path: refusal.source)) ?? 0 }
        let record = IngestBatches.Refusal(
            run: context.runID, source: refusal.source, query: refusal.query, format: refusal.format,
            reason: refusal.error.localizedDescription, hash: refusal.hash, bytes: refusal.bytes, read: refusal.read,
            rejected: refusal.rejected, rejects: refusal.rejects.map(\.row), startedAt: refusal.startedAt)
        let batch = try context.store.queue.write { try IngestBatches.recordRefused(record, in: $0) }
        return .refused(batchID: batch, error: refusal.error)
    }

    static func sniff(path: String) throws -> InputFormat {
        let reader = LineReader(source: try openByteSource(path: path), maxLineBytes: 1 << 16)
        var first = ""
        try reader.forEachLine { line in
            switch line {
            case .text(let bytes), .oversized(let bytes):
                first = String(decoding: bytes, as: UTF8.self)
            }
            return first.trimmingCharacters(in: .whitespaces).isEmpty  // skip leading blank lines
        }
        if first.hasPrefix("\u{FEFF}") { first.removeFirst() }
        return InputFormat.sniff(path: path, firstLine: first)
    }
}

/// Signals that a source's content was already ingested: its transaction rolls back.
struct AlreadyIngested: Error {
    let batchID: Int64
    let hash: String
}

/// SHA-256 of a file's bytes as stored (what `sha256sum` prints), computed on another
/// thread.
final class BackgroundHash: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private var result: Result<String, Error> = .success("")

    init(path: String) {
        DispatchQueue.global().async { [self] in
            result = Result { try Self.hash(path: path) }
            done.signal()
        }
    }

    /// Waits for the hash; may be called more than once.
    func wait() throws -> String {
        done.wait()
        done.signal()
        return try result.get()
    }

    static func hash(path: String) throws -> String {
        let file = try FileByteSource(path: path)
        var hasher = SHA256()
        let capacity = 1 << 20
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            let n = try file.read(into: buffer, count: capacity)
            if n == 0 { break }
            hasher.update(UnsafeRawBufferPointer(start: buffer, count: n))
        }
        return hasher.finalizeHex()
    }
}

/// Reports megabytes read so far for the scheduler's status line, at most every two seconds,
/// counting the bytes of the files (compressed, where they are).
final class IngestProgress: @unchecked Sendable {
    private let total: Int
    private let context: StageContext
    private let lock = NSLock()
    private let interval: Double
    private var before = 0  // bytes of the sources already done
    private var last = Clock.monotonic()

    init(totalBytes: Int, context: StageContext, interval: Double = 2) {
        total = totalBytes
        self.context = context
        self.interval = interval
    }

    /// `bytes` of the current source read so far.
    func reading(_ bytes: Int) {
        let now = Clock.monotonic()
        let done: Int? = lock.withLock {
            guard now - last >= interval else { return nil }
            last = now
            return before + bytes
        }
        if let done { log(done) }
    }

    /// The current source is done (stored, skipped or failed).
    func finished(source size: Int) {
        lock.withLock { before += size }
    }

    private func log(_ done: Int) {
        let mb = { (bytes: Int) in (bytes + (1 << 20) - 1) >> 20 }
        context.progress(done: min(mb(done), mb(total)), total: mb(total), unit: "MB")
    }
}
