import Foundation

/// Assembles the records of a delimited file from its lines and splits them into fields.
/// Fields point into the line (fast path, no quotes) or into a scratch buffer (quoted
/// fields, RFC 4180: `"a ""b"", c"`, possibly spanning lines when `quoting` is on).
final class DelimitedRecords {
    let separator: [UInt8]
    let quoting: Bool
    let maxRecordBytes: Int
    private(set) var fields: [UnsafeBufferPointer<UInt8>] = []
    private var scratch: UnsafeMutablePointer<UInt8>
    private var scratchCapacity: Int
    /// Lines of a record whose quoted field is still open.
    private var pending: [UInt8] = []
    private(set) var pendingLine = 0

    init(separator: [UInt8], quoting: Bool, maxRecordBytes: Int) {
        precondition(separator.count == 1 || separator.count == 2, "separator of 1 or 2 bytes")
        self.separator = separator
        self.quoting = quoting
        self.maxRecordBytes = maxRecordBytes
        scratchCapacity = 1 << 16
        scratch = .allocate(capacity: scratchCapacity)
    }

    deinit { scratch.deallocate() }

    enum Outcome {
        /// `fields` holds the record that started on `line`.
        case record(line: Int)
        /// The record goes on in the next line.
        case incomplete
        /// The record is malformed; `raw` is its text.
        case malformed(line: Int, reason: RejectReason, detail: String, raw: String)
    }

    var hasPending: Bool { !pending.isEmpty }

    /// Feeds one line. The fields stay valid until the next call.
    func feed(_ line: UnsafeBufferPointer<UInt8>, number: Int) -> Outcome {
        if !pending.isEmpty {
            pending.append(UInt8(ascii: "\n"))
            pending.append(contentsOf: line)
            if pending.count > maxRecordBytes {
                let raw = pending.withUnsafeBufferPointer { FieldParsing.displayText($0) }
                let start = pendingLine
                pending.removeAll()
                return .malformed(line: start, reason: .oversizedField,
                                  detail: "quoted field runs past \(maxRecordBytes) bytes (unterminated quote?)", raw: raw)
            }
            let outcome = pending.withUnsafeBufferPointer { splitQuoted($0, number: pendingLine) }
            if case .incomplete = outcome { return outcome }
            // The record's fields live in scratch, so pending can go.
            pending.removeAll(keepingCapacity: true)
            return outcome
        }
        if quoting, line.count > 0, memchr(line.baseAddress!, Int32(UInt8(ascii: "\"")), line.count) != nil {
            let outcome = splitQuoted(line, number: number)
            if case .incomplete = outcome {
                pending.append(contentsOf: line)
                pendingLine = number
            }
            return outcome
        }
        splitPlain(line)
        return .record(line: number)
    }

    /// The record left open at the end of the input, if any.
    func finish() -> Outcome? {
        guard !pending.isEmpty else { return nil }
        let raw = pending.withUnsafeBufferPointer { FieldParsing.displayText($0) }
        pending.removeAll()
        return .malformed(line: pendingLine, reason: .badQuoting, detail: "quoted field not closed before end of file", raw: raw)
    }

    private func splitPlain(_ line: UnsafeBufferPointer<UInt8>) {
        fields.removeAll(keepingCapacity: true)
        guard let base = line.baseAddress, line.count > 0 else {
            fields.append(line)
            return
        }
        let first = separator[0]
        var start = 0
        var position = 0
        while position < line.count,
              let hit = memchr(base + position, Int32(first), line.count - position) {
            let at = UnsafeRawPointer(hit).assumingMemoryBound(to: UInt8.self) - base
            if separator.count == 2 {
                guard at + 1 < line.count, base[at + 1] == separator[1] else {
                    position = at + 1
                    continue
                }
            }
            fields.append(UnsafeBufferPointer(start: base + start, count: at - start))
            start = at + separator.count
            position = start
        }
        fields.append(UnsafeBufferPointer(start: base + start, count: line.count - start))
    }

    private func splitQuoted(_ bytes: UnsafeBufferPointer<UInt8>, number: Int) -> Outcome {
        if bytes.count > scratchCapacity {
            scratch.deallocate()
            scratchCapacity = bytes.count * 2
            scratch = .allocate(capacity: scratchCapacity)
        }
        let quote = UInt8(ascii: "\"")
        let sep = separator[0]
        var ranges: [(Int, Int)] = []
        var out = 0, i = 0
        let n = bytes.count
        while true {
            let fieldStart = out
            if i < n && bytes[i] == quote {
                i += 1
                var closed = false
                while i < n {
                    if bytes[i] == quote {
                        if i + 1 < n && bytes[i + 1] == quote {
                            scratch[out] = quote; out += 1; i += 2
                        } else {
                            i += 1; closed = true; break
                        }
                    } else {
                        scratch[out] = bytes[i]; out += 1; i += 1
                    }
                }
                if !closed { return .incomplete }
                if i < n && bytes[i] != sep {
                    return .malformed(line: number, reason: .badQuoting,
                                      detail: "text after a closing quote in field \(ranges.count + 1)",
                                      raw: FieldParsing.displayText(bytes))
                }
            } else {
                while i < n && bytes[i] != sep {
                    scratch[out] = bytes[i]; out += 1; i += 1
                }
            }
            ranges.append((fieldStart, out - fieldStart))
            if i >= n { break }
            i += 1  // the separator
        }
        fields.removeAll(keepingCapacity: true)
        for (start, count) in ranges { fields.append(UnsafeBufferPointer(start: scratch + start, count: count)) }
        return .record(line: number)
    }
}
