import Foundation

/// Runs jobs one after another on a thread of its own, with at most `capacity` waiting: the
/// scoring thread hands each batch's SQLite writes over and goes on computing the next
/// batch. The first job that throws stops the rest; `submit` and `finish` rethrow its error.
final class SerialWorker: @unchecked Sendable {
    private let condition = NSCondition()
    private var jobs: [() throws -> Void] = []
    private var closed = false
    private var stopped = false
    private var failure: Error?
    private let capacity: Int

    init(capacity: Int = 2) {
        self.capacity = capacity
        Thread { [self] in loop() }.start()
    }

    /// Queues a job; blocks while `capacity` jobs are waiting.
    func submit(_ job: @escaping () throws -> Void) throws {
        condition.lock()
        defer { condition.unlock() }
        precondition(!closed, "submit after finish")
        while jobs.count >= capacity && failure == nil { condition.wait() }
        if let failure { throw failure }
        jobs.append(job)
        condition.broadcast()
    }

    /// Waits until every queued job has run and the thread has ended; rethrows the first
    /// failure. Call it exactly once, also on the way out of an error.
    func finish() throws {
        condition.lock()
        defer { condition.unlock() }
        closed = true
        condition.broadcast()
        while !stopped { condition.wait() }
        if let failure { throw failure }
    }

    private func loop() {
        condition.lock()
        while true {
            while jobs.isEmpty && !closed { condition.wait() }
            if jobs.isEmpty { break }
            let job = jobs.removeFirst()
            condition.broadcast()
            condition.unlock()
            var error: Error?
            do { try job() } catch let thrown { error = thrown }
            condition.lock()
            if let error, failure == nil {
                failure = error
                jobs.removeAll()
                condition.broadcast()
            }
        }
        stopped = true
        condition.broadcast()
        condition.unlock()
    }
}
