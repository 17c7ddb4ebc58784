import Foundation

/// Where validated rows go: straight into SQLite (`RowSink`) or, across threads, into
/// batches (`BatchingConsumer`).
protocol RowConsumer: AnyObject {
    func accept(line: Int, user: UnsafeBufferPointer<UInt8>, item: UnsafeBufferPointer<UInt8>,
                rating: Double?, timestamp: Int64?) throws
    func reject(line: Int, reason: RejectReason, detail: String, raw: String) throws
}

extension RowConsumer {
    func accept(line: Int, user: String, item: String, rating: Double?, timestamp: Int64?) throws {
        var user = user, item = item
        try user.withUTF8 { u in
            try item.withUTF8 { i in try accept(line: line, user: u, item: i, rating: rating, timestamp: timestamp) }
        }
    }
}

/// Rows parsed on one thread, waiting to be written on another. Keys are copied into one
/// byte arena.
final class RowBatch: @unchecked Sendable {
    var keys: [UInt8] = []
    var userStart: [Int32] = [], userCount: [Int32] = []
    var itemStart: [Int32] = [], itemCount: [Int32] = []
    var line: [Int] = []
    var rating: [Double] = []  // NaN: none
    var timestamp: [Int64] = []  // Int64.min: none
    var rejects: [Reject] = []

    static let rows = 8192

    init() {
        keys.reserveCapacity(Self.rows * 16)
        userStart.reserveCapacity(Self.rows); userCount.reserveCapacity(Self.rows)
        itemStart.reserveCapacity(Self.rows); itemCount.reserveCapacity(Self.rows)
        line.reserveCapacity(Self.rows); rating.reserveCapacity(Self.rows); timestamp.reserveCapacity(Self.rows)
    }

    var count: Int { line.count }
    var isEmpty: Bool { line.isEmpty && rejects.isEmpty }
}

/// A bounded queue of batches between one producer and one consumer.
final class BatchChannel: @unchecked Sendable {
    private let condition = NSCondition()
    private var queue: [RowBatch] = []
    private var finished = false
    private var cancelled = false
    private var failure: Error?
    private(set) var producedRows = 0
    let capacity: Int

    struct Cancelled: Error {}

    init(capacity: Int = 4) { self.capacity = capacity }

    /// Blocks while the queue is full; throws when the consumer has gone away.
    func send(_ batch: RowBatch) throws {
        condition.lock()
        defer { condition.unlock() }
        while queue.count >= capacity && !cancelled { condition.wait() }
        if cancelled { throw Cancelled() }
        queue.append(batch)
        condition.broadcast()
    }

    /// The producer is done (with the number of rows read, or an error).
    func finish(rows: Int, error: Error?) {
        condition.lock()
        producedRows = rows
        failure = error
        finished = true
        condition.broadcast()
        condition.unlock()
    }

    /// The next batch; nil when the producer finished; rethrows the producer's error.
    func receive() throws -> RowBatch? {
        condition.lock()
        defer { condition.unlock() }
        while queue.isEmpty && !finished { condition.wait() }
        if !queue.isEmpty {
            let batch = queue.removeFirst()
            condition.broadcast()
            return batch
        }
        if let failure { throw failure }
        return nil
    }

    /// The consumer stops: the producer's next send throws.
    func cancel() {
        condition.lock()
        cancelled = true
        condition.broadcast()
        condition.unlock()
    }

    /// Waits for the producer to finish (after a cancel, for its thread to let go of the file).
    func waitForProducer() {
        condition.lock()
        while !finished { condition.wait() }
        condition.unlock()
    }
}

/// Collects rows into batches and sends them down a channel.
final class BatchingConsumer: RowConsumer {
    private let channel: BatchChannel
    private var batch = RowBatch()

    init(channel: BatchChannel) { self.channel = channel }

    func accept(line: Int, user: UnsafeBufferPointer<UInt8>, item: UnsafeBufferPointer<UInt8>,
                rating: Double?, timestamp: Int64?) throws {
        let b = batch
        b.userStart.append(Int32(b.keys.count)); b.userCount.append(Int32(user.count))
        b.keys.append(contentsOf: user)
        b.itemStart.append(Int32(b.keys.count)); b.itemCount.append(Int32(item.count))
        b.keys.append(contentsOf: item)
        b.line.append(line)
        b.rating.append(rating ?? .nan)
        b.timestamp.append(timestamp ?? Int64.min)
        if b.count >= RowBatch.rows { try flush() }
    }

    /// Rejects go in batches of their own size too: a file that fails line by line is not
    /// held in memory.
    func reject(line: Int, reason: RejectReason, detail: String, raw: String) throws {
        batch.rejects.append(Reject(line: line, reason: reason, detail: detail, raw: raw))
        if batch.rejects.count >= RowBatch.rows { try flush() }
    }

    func flush() throws {
        guard !batch.isEmpty else { return }
        try channel.send(batch)
        batch = RowBatch()
    }
}

extension RowReader {
    /// Parses on another thread while the calling thread writes into `sink`: the two cores
    /// split the work between parsing and SQLite. Returns the number of rows read.
    func readPipelined(into sink: RowSink) throws -> Int {
        let channel = BatchChannel()
        let reader = self
        DispatchQueue.global().async {
            let batching = BatchingConsumer(channel: channel)
            do {
                let rows = try reader.read(into: batching)
                try batching.flush()
                channel.finish(rows: rows, error: nil)
            } catch {
                channel.finish(rows: 0, error: error)
            }
        }
        do {
            while let batch = try channel.receive() { try sink.write(batch) }
        } catch {
            channel.cancel()
            channel.waitForProducer()
            throw error
        }
        return channel.producedRows
    }
}
