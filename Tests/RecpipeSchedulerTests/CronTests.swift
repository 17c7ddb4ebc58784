import Foundation
import RecpipeTestSupport
import Testing
@testable import RecpipeScheduler
import RecpipeStore

@Suite(.tags(.small)) struct CronTests {
    @Test func crontabLine() throws {
        let line = try CronLine.render(schedule: "0 3 * * *", executable: "/usr/local/bin/recpipe", manifest: "/srv/p/nightly.yaml",
                                       log: "/var/log/recpipe/nightly 100%.log", metrics: "/var/lib/node_exporter/recpipe.prom")
        #expect(line.split(separator: "\n").last == """
            0 3 * * * /usr/local/bin/recpipe run /srv/p/nightly.yaml --metrics /var/lib/node_exporter/recpipe.prom >> '/var/log/recpipe/nightly 100\\%.log' 2>&1
            """)
        #expect(try CronLine.render(schedule: "@daily", executable: "/r", manifest: "/m.yaml", log: "/l", metrics: nil)
                .hasSuffix("\n@daily /r run /m.yaml >> /l 2>&1"))
        for bad in ["0 3 * *", "0 3 * * * *", "0 3 * * ; rm", "@sometimes"] {
            #expect(throws: SchedulerError.self) { try CronLine.render(schedule: bad, executable: "/r", manifest: "/m", log: "/l", metrics: nil) }
        }
    }
}
