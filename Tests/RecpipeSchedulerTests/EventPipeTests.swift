import Foundation
import RecpipeStages
import RecpipeTestSupport
import Testing
@testable import RecpipeScheduler

@Suite(.tags(.medium)) struct EventPipeTests {
    final class Received: @unchecked Sendable {
        let lock = NSLock()
        var events: [StageEvent] = []
        func add(_ event: StageEvent) { lock.withLock { events.append(event) } }
    }

    /// Events arrive whole and in order, whatever their text holds: a message with newlines
    /// or the end marker itself neither splits an event nor ends the channel early.
    @Test func eventsArriveWholeAndInOrder() throws {
        let pipe = try EventPipe()
        let received = Received()
        pipe.startReading { received.add($0) }
        let channel = EventChannel.inherited(environment: [EventChannel.environmentVariable: pipe.path])
        #expect(channel.isOpen)
        let sent: [StageEvent] = [
            .progress(done: 1, total: 10, unit: "users"),
            .error(message: "bad\nend\n{\"epoch\":3}", details: ["file": "a\nb.csv"]),
            .epoch(3),
            .warning(message: EventPipe.endMarker, details: [:]),
            .report(rowsIn: 5, rowsOut: 4, summary: ["one", "two\nlines"]),
        ] + (0..<2000).map { .progress(done: $0, total: 2000, unit: "MB") }  // more than a FIFO holds at once
        for event in sent { channel.send(event) }
        #expect(pipe.close(timeout: 10))
        #expect(received.events == sent)
        #expect(!FileManager.default.fileExists(atPath: pipe.path))
    }

    /// A half-written event (a child killed mid-line) is skipped; the end marker still ends
    /// reading.
    @Test func aTruncatedEventIsSkipped() throws {
        let pipe = try EventPipe()
        let received = Received()
        pipe.startReading { received.add($0) }
        let writer = open(pipe.path, O_WRONLY)
        let text = Array("{\"epoch\":{\"_0\":2}}\n{\"progress\":{\"do".utf8)
        _ = text.withUnsafeBytes { write(writer, $0.baseAddress!, $0.count) }
        close(writer)
        #expect(pipe.close(timeout: 10))
        #expect(received.events == [.epoch(2)])
    }

    /// Run by hand (no channel named), sending does nothing; a channel nobody can open is
    /// dropped without failing.
    @Test func noChannelDropsEvents() {
        #expect(!EventChannel.inherited(environment: [:]).isOpen)
        EventChannel.none.send(.epoch(1))
        let unopenable = EventChannel.inherited(environment: [EventChannel.environmentVariable: "/nonexistent/events"])
        #expect(!unopenable.isOpen)
        #expect(unopenable.problem?.hasPrefix("cannot open the event channel /nonexistent/events: ") == true)
    }

    /// The channel of a scheduler that was killed is removed by the next; a live one stays.
    @Test func abandonedChannelsAreRemoved() throws {
        let exited = Process()
        exited.executableURL = URL(fileURLWithPath: "/bin/true")
        try exited.run()
        exited.waitUntilExit()
        let abandoned = NSTemporaryDirectory() + "/\(EventPipe.prefix)\(exited.processIdentifier)-test"
        try FileManager.default.createDirectory(atPath: abandoned, withIntermediateDirectories: true)
        #expect(mkfifo(abandoned + "/events", 0o600) == 0)
        let live = try EventPipe()
        EventPipe.removeAbandoned()
        #expect(!FileManager.default.fileExists(atPath: abandoned))
        #expect(FileManager.default.fileExists(atPath: live.path))
        #expect(live.close())
        #expect(!FileManager.default.fileExists(atPath: live.path))
    }
}
