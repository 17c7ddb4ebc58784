import Foundation
import RecpipeStore

/// What a stage's result depends on. Two runs with equal fingerprints would produce the same
/// tables, so the second is skipped.
public struct Fingerprint: Sendable, Equatable {
    public var kind: String
    /// Resolved parameters.
    public var parameters: [String: ParameterValue]
    /// `code` → the recpipe build (`CodeVersion`), `stage:NAME` → the upstream stage's output
    /// (the attempt that produced it), `file:PATH` → size and modification time of each source file.
    public var inputs: [String: String]

    public init(kind: String, parameters: [String: ParameterValue], inputs: [String: String]) {
        self.kind = kind
        self.parameters = parameters
        self.inputs = inputs
    }

    public var hash: String {
        var text = "recpipe-fingerprint-1\nkind \(kind)\n"
        text += "parameters \(Self.json(parameters))\ninputs \(Self.json(inputs))\n"
        return SHA256.hex(text)
    }

    static func json<T: Encodable>(_ value: T) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: (try? encoder.encode(value)) ?? Data(), as: UTF8.self)
    }

    /// Size and modification time of every file the paths (or glob patterns) name; directories
    /// stand for the files in them. A pattern that matches nothing is recorded as missing.
    public static func files(_ paths: [String]) -> [String: String] {
        var result: [String: String] = [:]
        for pattern in paths {
            let matches = expand(pattern)
            if matches.isEmpty { result["file:" + pattern] = "missing" }
            for path in matches { result["file:" + path] = stamp(path) }
        }
        return result
    }

    /// A glob pattern's matches (the pattern itself when it has no wildcard and exists), and
    /// for a directory the regular files under it.
    static func expand(_ pattern: String) -> [String] {
        let paths = FilePattern.glob(pattern) ?? (FileManager.default.fileExists(atPath: pattern) ? [pattern] : [])
        return paths.flatMap { path -> [String] in
            guard FilePattern.isDirectory(path) else { return [path] }
            let files = (FileManager.default.enumerator(atPath: path)?.allObjects as? [String] ?? []).map { path + "/" + $0 }
            return files.filter { !FilePattern.isDirectory($0) }.sorted()
        }
    }

    static func stamp(_ path: String) -> String {
        var info = stat()
        guard stat(path, &info) == 0 else { return "missing" }
        return "size=\(info.st_size) mtime=\(info.st_mtim.tv_sec).\(String(format: "%09ld", info.st_mtim.tv_nsec))"
    }
}

/// The version of the running recpipe for fingerprints: the GNU build ID of its executable
/// (changes with every build that changes code), else the SHA-256 of the executable.
public enum CodeVersion {
    public static func of(executable path: String) -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else { return "unknown" }
        defer { try? handle.close() }
        let head = (try? handle.read(upToCount: 1 << 20)) ?? Data()
        if let id = buildID(head) { return "build-id:" + id }
        var hasher = SHA256()
        hasher.update(Array(head))
        while let chunk = try? handle.read(upToCount: 1 << 20), !chunk.isEmpty { hasher.update(Array(chunk)) }
        return "sha256:" + hasher.finalizeHex()
    }

    /// The NT_GNU_BUILD_ID note of a 64-bit little-endian ELF file.
    static func buildID(_ data: Data) -> String? {
        let bytes = [UInt8](data)
        guard bytes.count > 64, bytes[0] == 0x7F, bytes[1] == 0x45, bytes[2] == 0x4C, bytes[3] == 0x46,
              bytes[4] == 2, bytes[5] == 1 else { return nil }
        func u16(_ at: Int) -> Int { Int(bytes[at]) | Int(bytes[at + 1]) << 8 }
        func u32(_ at: Int) -> Int { u16(at) | u16(at + 2) << 16 }
        func u64(_ at: Int) -> Int { u32(at) | u32(at + 4) << 32 }
        let programHeaders = u64(0x20), entrySize = u16(0x36), count = u16(0x38)
        for index in 0..<count {
            let header = programHeaders + index * entrySize
            guard header + 56 <= bytes.count, u32(header) == 4 else { continue }  // PT_NOTE
            var offset = u64(header + 8)
            let end = offset + u64(header + 32)
            while offset + 12 <= min(end, bytes.count) {
                let nameSize = u32(offset), descriptorSize = u32(offset + 4), type = u32(offset + 8)
                let name = offset + 12, descriptor = name + (nameSize + 3) / 4 * 4
                guard descriptor + descriptorSize <= bytes.count else { break }
                if type == 3, nameSize == 4, bytes[name..<name + 3].elementsEqual("GNU".utf8) {
                    return bytes[descriptor..<descriptor + descriptorSize].map { String(format: "%02x", $0) }.joined()
                }
                offset = descriptor + (descriptorSize + 3) / 4 * 4
            }
        }
        return nil
    }
}
