import Foundation

/// Splits a byte stream into lines without copying them: each line is handed to the caller
/// as a pointer into the reader's buffer, valid only during the call. Memory use is fixed
/// (the buffer), whatever the size of the input. Lines end at `\n`; a `\r` before it is
/// dropped. A line longer than `maxLineBytes` is reported as oversized with its first bytes.
final class LineReader {
    private let source: ByteSource
    private let capacity: Int
    private let buffer: UnsafeMutablePointer<UInt8>
    let maxLineBytes: Int

    /// 1-based number of the line most recently handed out.
    private(set) var lineNumber = 0

    init(source: ByteSource, maxLineBytes: Int = 1 << 20) {
        self.source = source
        self.maxLineBytes = maxLineBytes
        capacity = max(maxLineBytes + 1, 1 << 22)
        buffer = .allocate(capacity: capacity)
    }

    deinit { buffer.deallocate() }

    enum Line {
        case text(UnsafeBufferPointer<UInt8>)
        /// The line's first `maxLineBytes` bytes; the rest was skipped.
        case oversized(UnsafeBufferPointer<UInt8>)
    }

    /// Calls `body` for every line; `body` returns false to stop early.
    func forEachLine(_ body: (Line) throws -> Bool) throws {
        var start = 0, end = 0, eof = false
        var skippingOversized = false
        while true {
            // Hand out every complete line in the buffer.
            while start < end {
                let found = memchr(buffer + start, Int32(UInt8(ascii: "\n")), end - start)
                guard let newline = found?.assumingMemoryBound(to: UInt8.self) else { break }
                let stop = newline - buffer
                if skippingOversized {
                    skippingOversized = false
                } else {
                    lineNumber += 1
                    var length = stop - start
                    if length > 0 && buffer[start + length - 1] == UInt8(ascii: "\r") { length -= 1 }
                    if length > maxLineBytes {
                        if try !body(.oversized(UnsafeBufferPointer(start: buffer + start, count: maxLineBytes))) { return }
                    } else if try !body(.text(UnsafeBufferPointer(start: buffer + start, count: length))) {
                        return
                    }
                }
                start = stop + 1
            }
            if eof {
                if start < end && !skippingOversized {
                    lineNumber += 1
                    var length = end - start
                    if buffer[start + length - 1] == UInt8(ascii: "\r") { length -= 1 }
                    let line = UnsafeBufferPointer(start: buffer + start, count: min(length, maxLineBytes))
                    _ = try body(length > maxLineBytes ? .oversized(line) : .text(line))
                }
                return
            }
            // Keep the partial line, then refill.
            if end - start > maxLineBytes && !skippingOversized {
                lineNumber += 1
                if try !body(.oversized(UnsafeBufferPointer(start: buffer + start, count: maxLineBytes))) { return }
                skippingOversized = true
            }
            if skippingOversized {
                start = 0; end = 0
            } else if start > 0 {
                memmove(buffer, buffer + start, end - start)
                end -= start
                start = 0
            }
            let n = try source.read(into: buffer + end, count: capacity - end)
            if n == 0 { eof = true } else { end += n }
        }
    }
}
