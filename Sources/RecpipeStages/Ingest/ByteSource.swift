import CZlib
import Foundation

/// A stream of bytes read in chunks: a plain file or a gzip-decompressed one.
protocol ByteSource: AnyObject {
    /// Reads up to `count` bytes into `buffer`; returns 0 at the end.
    func read(into buffer: UnsafeMutableRawPointer, count: Int) throws -> Int
}

/// Reads a file with read(2); memory use is the caller's buffer, whatever the file size.
final class FileByteSource: ByteSource {
    let path: String
    private let fd: Int32
    /// Called after each read with the bytes read so far (for progress reports).
    var onRead: (@Sendable (Int) -> Void)?
    private var consumed = 0

    init(path: String) throws {
        self.path = path
        var info = stat()
        guard stat(path, &info) == 0 else { throw StageError.unreadable(path: path, reason: String(cString: strerror(errno))) }
        guard (info.st_mode & S_IFMT) == S_IFREG else { throw StageError.unreadable(path: path, reason: "not a regular file") }
        fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw StageError.unreadable(path: path, reason: String(cString: strerror(errno))) }
    }

    deinit { close(fd) }

    func read(into buffer: UnsafeMutableRawPointer, count: Int) throws -> Int {
        while true {
            let n = Glibc.read(fd, buffer, count)
            if n > 0, let onRead {
                consumed += n
                onRead(consumed)
            }
            if n >= 0 { return n }
            if errno == EINTR { continue }
            throw StageError.unreadable(path: path, reason: String(cString: strerror(errno)))
        }
    }

    /// The size in bytes of a regular file.
    static func size(path: String) throws -> Int {
        var info = stat()
        guard stat(path, &info) == 0 else { throw StageError.unreadable(path: path, reason: String(cString: strerror(errno))) }
        guard (info.st_mode & S_IFMT) == S_IFREG else { throw StageError.unreadable(path: path, reason: "not a regular file") }
        return Int(info.st_size)
    }

    /// True when the file starts with the gzip magic bytes.
    static func isGzip(path: String) throws -> Bool {
        let source = try FileByteSource(path: path)
        var magic: [UInt8] = [0, 0]
        let n = try magic.withUnsafeMutableBytes { try source.read(into: $0.baseAddress!, count: 2) }
        return n == 2 && magic[0] == 0x1f && magic[1] == 0x8b
    }
}

/// Inflates a gzip stream (several concatenated members allowed) from another source.
final class GzipByteSource: ByteSource {
    private let input: ByteSource
    private let path: String
    private var stream = z_stream()
    private let inputBuffer: UnsafeMutablePointer<UInt8>
    private let inputCapacity = 1 << 18
    private var finished = false
    private var inputEnded = false

    init(input: ByteSource, path: String) throws {
        self.input = input
        self.path = path
        inputBuffer = .allocate(capacity: inputCapacity)
        // 15 + 16: a gzip wrapper with the largest window.
        let status = inflateInit2_(&stream, 15 + 16, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
        guard status == Z_OK else {
            inputBuffer.deallocate()
            throw StageError.unreadable(path: path, reason: "cannot start gzip decoder (zlib status \(status))")
        }
    }

    deinit {
        inflateEnd(&stream)
        inputBuffer.deallocate()
    }

    func read(into buffer: UnsafeMutableRawPointer, count: Int) throws -> Int {
        if finished { return 0 }
        stream.next_out = buffer.assumingMemoryBound(to: Bytef.self)
        stream.avail_out = uInt(count)
        while stream.avail_out == uInt(count) {
            if stream.avail_in == 0 && !inputEnded {
                let n = try input.read(into: inputBuffer, count: inputCapacity)
                if n == 0 { inputEnded = true } else {
                    stream.next_in = inputBuffer
                    stream.avail_in = uInt(n)
                }
            }
            if stream.avail_in == 0 && inputEnded {
                // A stream that stopped mid-member is truncated; one that ended on a member
                // boundary is complete.
                if stream.total_in > 0 && !atMemberBoundary {
                    throw StageError.unreadable(path: path, reason: "gzip stream is truncated")
                }
                finished = true
                break
            }
            let status = inflate(&stream, Z_NO_FLUSH)
            switch status {
            case Z_OK, Z_BUF_ERROR:
                atMemberBoundary = false
            case Z_STREAM_END:
                atMemberBoundary = true
                // Another member may follow (as `cat a.gz b.gz` produces).
                inflateReset(&stream)
            default:
                let message = stream.msg.map { String(cString: $0) } ?? "zlib status \(status)"
                throw StageError.unreadable(path: path, reason: "gzip data is corrupt: \(message)")
            }
        }
        return count - Int(stream.avail_out)
    }

    private var atMemberBoundary = false
}

/// Opens a file, decompressing it on the fly when it is gzip-compressed. `onRead` gets the
/// bytes of the file (compressed, where it is) read so far.
func openByteSource(path: String, onRead: (@Sendable (Int) -> Void)? = nil) throws -> ByteSource {
    let file = try FileByteSource(path: path)
    file.onRead = onRead
    return try FileByteSource.isGzip(path: path) ? GzipByteSource(input: file, path: path) : file
}
