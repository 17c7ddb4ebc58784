import Foundation

// usage: EmbedMigrationsTool OUTPUT.swift MIGRATION.sql... --shard SCHEMA.sql... --serving SCHEMA.sql...
// Writes a Swift file declaring `embeddedMigrationFiles` (the database's migrations),
// `embeddedShardSchemaFiles` (a scoring shard file's schema) and `embeddedServingSchemaFiles`
// (a serving snapshot's schema): (file name, SQL text) pairs in order of name.

let arguments = CommandLine.arguments.dropFirst()
guard let output = arguments.first else {
    FileHandle.standardError.write(Data("usage: EmbedMigrationsTool OUTPUT FILE...\n".utf8))
    exit(64)
}

/// A raw string literal delimiter long enough that the text cannot close it early.
func delimiter(for text: String) -> String {
    var hashes = "#"
    while text.contains("\"" + hashes) || text.contains("\"\"\"" + hashes) { hashes += "#" }
    return hashes
}

let files = Array(arguments.dropFirst())
let shardMarker = files.firstIndex(of: "--shard") ?? files.endIndex
let servingMarker = files.firstIndex(of: "--serving") ?? files.endIndex
guard shardMarker <= servingMarker else {
    FileHandle.standardError.write(Data("usage: --shard comes before --serving\n".utf8))
    exit(64)
}
let groups = [("embeddedMigrationFiles", files[..<shardMarker]),
              ("embeddedShardSchemaFiles", files[shardMarker..<servingMarker].dropFirst()),
              ("embeddedServingSchemaFiles", files[servingMarker...].dropFirst())]
var swift = "// Generated from migrations/*.sql, migrations/shard/*.sql and migrations/serving/*.sql at build time. Do not edit.\n"
for (name, paths) in groups {
    swift += "let \(name): [(name: String, sql: String)] = [\n"
    for path in paths.sorted(by: { ($0 as NSString).lastPathComponent < ($1 as NSString).lastPathComponent }) {
        let url = URL(fileURLWithPath: path)
        let text: String
        do {
            text = try String(contentsOf: url, encoding: .utf8)
        } catch {
            FileHandle.standardError.write(Data("\(path): cannot read migration: \(error)\n".utf8))
            exit(65)
        }
        let hashes = delimiter(for: text)
        swift += "    (name: \"\(url.lastPathComponent)\", sql: \(hashes)\"\"\"\n\(text)\n\"\"\"\(hashes)),\n"
    }
    swift += "]\n"
}
do {
    try swift.write(toFile: output, atomically: true, encoding: .utf8)
} catch {
    FileHandle.standardError.write(Data("\(output): cannot write: \(error)\n".utf8))
    exit(73)
}
