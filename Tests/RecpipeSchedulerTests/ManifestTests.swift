import Testing
@testable import RecpipeScheduler
