import Foundation

/// Shell-style file patterns (`events/*.csv.gz`), as manifests and ingest take them.
public enum FilePattern {
    /// The sorted matches of a pattern with wildcards (`*`, `?`, `[`); nil for a plain path.
    public static func glob(_ pattern: String) -> [String]? {
        guard pattern.contains(where: { "*?[".contains($0) }) else { return nil }
        var matches = glob_t()
        defer { globfree(&matches) }
        guard Glibc.glob(pattern, 0, nil, &matches) == 0 else { return [] }
        return (0..<Int(matches.gl_pathc)).compactMap { matches.gl_pathv[$0].map { String(cString: $0) } }
    }

    /// Whether `path` names a directory (following symbolic links).
    public static func isDirectory(_ path: String) -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue
    }
}
