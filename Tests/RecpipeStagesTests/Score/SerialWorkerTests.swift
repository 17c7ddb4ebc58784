import Foundation
import GRDB
import RecpipeTestSupport
import Testing
@testable import RecpipeModels
@testable import RecpipeStages
@testable import RecpipeStore

@Suite(.tags(.small)) struct SerialWorkerTests {
    final class Log: @unchecked Sendable { var values: [Int] = [] }
    struct Boom: Error {}

    @Test func runsJobsInOrderOnItsOwnThread() throws {
        let worker = SerialWorker(capacity: 1)
        let log = Log()
        for n in 0..<200 { try worker.submit { log.values.append(n); #expect(!Thread.isMainThread) } }
        try worker.finish()
        #expect(log.values == Array(0..<200))
    }

    @Test func theFirstFailureStopsTheRestAndIsRethrown() throws {
        let worker = SerialWorker(capacity: 1)
        let log = Log()
        do {
            try worker.submit { throw Boom() }
            for n in 0..<50 { try worker.submit { log.values.append(n) } }
        } catch is Boom {}
        #expect(throws: Boom.self) { try worker.finish() }
        #expect(log.values.isEmpty, "no job runs after a failure")
    }
}
