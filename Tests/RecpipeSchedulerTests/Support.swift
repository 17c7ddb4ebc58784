import Foundation
import Logging
@testable import RecpipeScheduler
import RecpipeStore
import RecpipeTestSupport

/// Commands with a few options each, and a parser that rejects non-integer values of the
/// integer options the way ArgumentParser does.
struct FakeCommands: StageCommands {
    var specs: [String: CommandSpec]
    var integers: Set<String> = ["--epochs", "--k", "--users", "--min-user-interactions"]

    init(without missing: Set<String> = ["augment"]) {
        func option(_ key: String, _ kind: CommandSpec.Kind = .option, repeating: Bool = false, required: Bool = false,
                    values: [String]? = nil) -> CommandSpec.Option {
            CommandSpec.Option(key: key, spelling: kind == .positional ? "" : "--" + key.replacingOccurrences(of: "_", with: "-"),
                               kind: kind, isRepeating: repeating, isRequired: required, allowedValues: values)
        }
        let all: [CommandSpec] = [
            CommandSpec(command: "ingest", options: [option("sources", .positional, repeating: true), option("format", values: ["csv", "tsv"])],
                        takesDatabase: true),
            CommandSpec(command: "clean", options: [option("min_user_interactions"), option("split", values: ["strong", "temporal"]),
                                                    option("split_from")], takesDatabase: true),
            CommandSpec(command: "augment", options: [option("epochs")], takesDatabase: true),
            CommandSpec(command: "train", options: [option("epochs"), option("model", values: ["multvae", "ease", "popularity"]),
                                                    option("lambda", repeating: true), option("warm_start", .flag)], takesDatabase: true),
            CommandSpec(command: "score", options: [option("k")], takesDatabase: true),
            CommandSpec(command: "evaluate", options: [], takesDatabase: true),
            CommandSpec(command: "feedback", options: [option("k", repeating: true)], takesDatabase: true),
            CommandSpec(command: "report", options: [option("out", required: true)], takesDatabase: true),
            CommandSpec(command: "synth", options: [option("out", required: true), option("users"), option("ratings", .flag)],
                        takesDatabase: false),
        ]
        specs = Dictionary(uniqueKeysWithValues: all.filter { !missing.contains($0.command) }.map { ($0.command, $0) })
    }

    func spec(for kind: String) -> CommandSpec? { specs[kind] }

    func check(_ arguments: [String]) -> String? {
        for argument in arguments {
            let parts = argument.split(separator: "=", maxSplits: 1).map(String.init)
            if parts.count == 2, integers.contains(parts[0]), Int(parts[1]) == nil {
                return "The value '\(parts[1])' is invalid for '\(parts[0]) <\(parts[0].dropFirst(2))>'"
            }
        }
        return nil
    }
}

/// Parses and validates manifest text written to a file in `dir`.
func pipeline(_ yaml: String, in dir: String = scratchDirectory(), file: String = "p.yaml", overrides: [String] = [],
              environment: [String: String] = [:], commands: StageCommands = FakeCommands()) throws -> Pipeline {
    try yaml.write(toFile: dir + "/" + file, atomically: true, encoding: .utf8)
    let manifest = try ManifestParser(environment: environment).load(dir + "/" + file, overrides: overrides)
    return try Validator(commands: commands).validate(manifest)
}

/// The problems a manifest has, as printed.
func problems(_ yaml: String, overrides: [String] = [], environment: [String: String] = [:],
              commands: StageCommands = FakeCommands()) -> [String] {
    let dir = scratchDirectory()
    do {
        _ = try pipeline(yaml, in: dir, file: "bad.yaml", overrides: overrides, environment: environment, commands: commands)
        return []
    } catch let error as SchedulerError {
        guard case .invalidManifest(let problems) = error else { return ["unexpected: \(error)"] }
        return problems.map { $0.description.replacingOccurrences(of: dir + "/", with: "") }
    } catch {
        return ["unexpected: \(error)"]
    }
}

