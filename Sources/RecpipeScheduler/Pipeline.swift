import Foundation
import RecpipeStore

/// A validated manifest: every stage's kind exists in this binary, its parameters are
/// options of that command with values it accepts, and the needs form a DAG.
public struct Pipeline: Sendable {
    public let manifest: Manifest
    /// In an order where every stage comes after its needs (file order where free).
    public let stages: [PipelineStage]

    public var name: String { manifest.name }
    public var database: String { manifest.database }

    public func stage(_ name: String) -> PipelineStage? { stages.first { $0.name == name } }

    /// Where `run --only STAGE --shard I/N` writes shard I of a score stage's N, and
    /// `run --merge-shards N` reads them: beside the database, one folder per pipeline and stage.
    public func shardFile(stage: String, index: Int, count: Int) -> String {
        let directory = (database as NSString).deletingLastPathComponent
        return "\(directory)/\(name)-\(stage)-shards/shard-\(index)-of-\(count).sqlite"
    }

    /// The stages that (transitively) need `name`, and `name` itself.
    public func downstream(of name: String) -> Set<String> {
        var found: Set<String> = [name]
        for stage in stages where !found.contains(stage.name) && stage.needs.contains(where: found.contains) {
            found.insert(stage.name)
        }
        return found
    }

    /// The stages `name` (transitively) needs, and `name` itself.
    public func upstream(of name: String) -> Set<String> {
        var found: Set<String> = [name]
        for stage in stages.reversed() where found.contains(stage.name) { found.formUnion(stage.needs) }
        return found
    }
}

/// A stage ready to run: the command line its parameters make, and what it reads and writes.
public struct PipelineStage: Sendable {
    /// The parameters as text (flags set as "true", lists joined by commas), for `Job.inputs`.
    var textParameters: [String: String] {
        parameters.compactMapValues { value in
            switch value {
            case .text(let text): text
            case .flag(let on): on ? "true" : nil
            case .list(let items): items.joined(separator: ",")
            }
        }
    }

    public let name: String
    public let kind: StageKind
    public let needs: [String]
    public let policy: StagePolicy
    /// The resolved parameters (paths absolute), for the fingerprint and the run history.
    public let parameters: [String: ParameterValue]
    /// The command and its options, without `--db`.
    public let arguments: [String]
    /// Whether the command takes `--db`.
    public let takesDatabase: Bool
    /// Absolute paths (or glob patterns) of the files and directories it reads.
    public let inputPaths: [String]
    /// Absolute paths of the files it writes.
    public let outputPaths: [String]

    /// The full command line after the binary, for `database`, with `options` (such as
    /// `--quiet`) before the stage's own. Positional paths with wildcards (ingest's
    /// `sources: "events/*.csv.gz"`) are expanded now; one that matches nothing is left as
    /// it is, for the stage to report.
    public func commandLine(database: String, options: [String] = []) -> [String] {
        var expanded: [String] = []
        var positional = false
        for argument in arguments.dropFirst() {
            if positional, let matches = FilePattern.glob(argument), !matches.isEmpty {
                expanded += matches
            } else {
                expanded.append(argument)
            }
            if argument == "--" { positional = true }
        }
        return [arguments[0]] + (takesDatabase ? ["--db", database] : []) + options + expanded
    }
}

/// Checks a manifest against the stage kinds and this binary's commands, collecting every
/// problem with its file and line before anything runs.
public struct Validator {
    public let commands: StageCommands
    public let kinds: [StageKind]

    public init(commands: StageCommands, kinds: [StageKind] = StageKind.all) {
        self.commands = commands
        self.kinds = kinds
    }

    public func validate(_ manifest: Manifest) throws -> Pipeline {
        var problems = manifest.problems
        let file = manifest.file
        let names = manifest.stages.map(\.name)
        var stages: [String: PipelineStage] = [:]

        for spec in manifest.stages {
            func problem(_ line: Int?, _ message: String) {
                problems.append(ManifestProblem(file, line: line, "stage \(spec.name): \(message)"))
            }
            var needs: [String] = []
            for need in spec.needs {
                if !names.contains(need.name) {
                    problem(need.line, "needs unknown stage '\(need.name)'\(didYouMean(need.name, among: names.filter { $0 != spec.name }))")
                } else if need.name == spec.name {
                    problem(need.line, "needs itself")
                } else if !needs.contains(need.name) {
                    needs.append(need.name)
                }
            }
            guard !spec.uses.isEmpty else { continue }
            guard let kind = kinds.first(where: { $0.name == spec.uses }) else {
                problem(spec.usesLine, "unknown stage kind '\(spec.uses)'\(didYouMean(spec.uses, among: kinds.map(\.name))); kinds: \(kinds.map(\.name).joined(separator: ", "))")
                continue
            }
            guard let command = commands.spec(for: kind.name) else {
                problem(spec.usesLine, "stage kind '\(kind.name)' is not available in this recpipe (it has no '\(kind.name)' command); upgrade recpipe or remove the stage")
                continue
            }
            if let stage = resolve(spec, kind: kind, command: command, needs: needs, manifest: manifest, &problems) {
                stages[spec.name] = stage
            }
        }
        let order = topologicalOrder(manifest, &problems)
        if problems.isEmpty {
            problems += unorderedDataFlow(Pipeline(manifest: manifest, stages: order.compactMap { stages[$0] }))
        }
        guard problems.isEmpty else {
            // In file order; command-line problems last.
            let ordered = problems.enumerated().sorted { a, b in
                (a.element.line ?? .max, a.offset) < (b.element.line ?? .max, b.offset)
            }
            throw SchedulerError.invalidManifest(ordered.map(\.element))
        }
        return Pipeline(manifest: manifest, stages: order.compactMap { stages[$0] })
    }

    /// A stage that reads a table another stage writes, where neither needs the other: the
    /// order between them, and so what the reader sees, would be left to chance.
    func unorderedDataFlow(_ pipeline: Pipeline) -> [ManifestProblem] {
        var problems: [ManifestProblem] = []
        let lines = Dictionary(pipeline.manifest.stages.map { ($0.name, $0.line) }, uniquingKeysWith: { a, _ in a })
        let upstream = Dictionary(uniqueKeysWithValues: pipeline.stages.map { ($0.name, pipeline.upstream(of: $0.name)) })
        let inputs = pipeline.stages.map { $0.kind.inputs($0.textParameters) }, outputs = pipeline.stages.map { $0.kind.outputs($0.textParameters) }
        for (r, reader) in pipeline.stages.enumerated() {
            for (w, writer) in pipeline.stages.enumerated() where w != r {
                guard !upstream[reader.name]!.contains(writer.name), !upstream[writer.name]!.contains(reader.name) else { continue }
                let shared = inputs[r].filter { input in outputs[w].contains { $0.overlaps(input) } }
                guard !shared.isEmpty else { continue }
                problems.append(ManifestProblem(pipeline.manifest.file, line: lines[reader.name], """
                    stage \(reader.name): reads \(Set(shared.map(\.description)).sorted().joined(separator: ", ")), which stage \(writer.name) writes, \
                    but neither needs the other; add needs: [\(writer.name)] to \(reader.name) (or the other way round)
                    """))
            }
        }
        return problems
    }

    /// Maps `with:` onto the command's options and lets the command's parser check the result.
    private func resolve(_ spec: StageSpec, kind: StageKind, command: CommandSpec, needs: [String], manifest: Manifest,
                         _ problems: inout [ManifestProblem]) -> PipelineStage? {
        let before = problems.count
        func problem(_ parameter: Parameter?, _ message: String) {
            problems.append(ManifestProblem(parameter?.location ?? manifest.file, line: parameter == nil ? spec.line : parameter!.line,
                                            "stage \(spec.name): \(message)"))
        }
        var options: [String] = [], positionals: [String] = []
        var parameters: [String: ParameterValue] = [:]
        var inputs: [String] = [], outputs: [String] = []
        for parameter in spec.parameters {
            guard let option = command.option(parameter.name) else {
                let reserved = CommandSpec.reserved.contains(parameter.name)
                problem(parameter, reserved
                    ? "parameter '\(parameter.name)' is set by the scheduler (the manifest's database and log level)"
                    : "unknown parameter '\(parameter.name)' for \(kind.name)\(didYouMean(parameter.name, among: command.options.map(\.key)))")
                continue
            }
            let isPath = kind.inputPaths.contains(option.key) || kind.outputPaths.contains(option.key)
            // Paths in the manifest are relative to it; paths given with --set, to the current directory.
            func resolved(_ value: String) -> String {
                guard isPath else { return value }
                return parameter.line == nil ? absolutePath(value) : manifest.resolve(value)
            }
            var values: [String]
            switch (option.kind, parameter.value) {
            case (.flag, .scalar(_, let bool?)):
                parameters[option.key] = .flag(bool)
                if bool { options.append(option.spelling) }
                continue
            case (.flag, _):
                problem(parameter, "parameter '\(parameter.name)' is a flag: expected true or false")
                continue
            case (_, .structured):
                problem(parameter, "parameter '\(parameter.name)': expected \(option.isRepeating ? "a value or a list of values" : "a single value"), not a mapping or nested list")
                continue
            case (_, .list(let list)):
                guard option.isRepeating else {
                    problem(parameter, "parameter '\(parameter.name)' takes a single value, not a list")
                    continue
                }
                values = list.map(resolved)
                parameters[option.key] = .list(values)
            case (_, .scalar(let text, _)):
                values = [resolved(text)]
                parameters[option.key] = option.isRepeating ? .list(values) : .text(values[0])
            }
            if let allowed = option.allowedValues {
                for value in values where !allowed.contains(value) {
                    problem(parameter, "parameter '\(parameter.name)': '\(value)' is not one of \(allowed.joined(separator: ", "))\(didYouMean(value, among: allowed))")
                }
            }
            if kind.inputPaths.contains(option.key) { inputs += values }
            if kind.outputPaths.contains(option.key) { outputs += values }
            if option.kind == .positional {
                positionals += values
            } else {
                options += values.map { "\(option.spelling)=\($0)" }
            }
        }
        for option in command.options where option.isRequired && parameters[option.key] == nil {
            problem(nil, "missing required parameter '\(option.key)' for \(kind.name)")
        }
        guard problems.count == before else { return nil }
        let arguments = [kind.name] + options + (positionals.isEmpty ? [] : ["--"] + positionals)
        let checked = command.takesDatabase ? [kind.name, "--db", manifest.database] + arguments.dropFirst() : arguments
        if let message = commands.check(checked) {
            // Point at the parameter the parser names, else at `with:`.
            let named = spec.parameters.last { parameter in
                command.option(parameter.name).map { !$0.spelling.isEmpty && message.contains($0.spelling) } ?? false
            }
            problems.append(ManifestProblem(named?.location ?? manifest.file, line: named == nil ? spec.withLine : named!.line,
                                            "stage \(spec.name): \(kind.name) rejects its parameters: \(message)"))
            return nil
        }
        return PipelineStage(name: spec.name, kind: kind, needs: needs, policy: spec.policy, parameters: parameters,
                             arguments: arguments, takesDatabase: command.takesDatabase, inputPaths: inputs, outputPaths: outputs)
    }

    /// Kahn's algorithm, taking stages in file order where several are free; reports each cycle.
    private func topologicalOrder(_ manifest: Manifest, _ problems: inout [ManifestProblem]) -> [String] {
        let names = Set(manifest.stages.map(\.name))
        var needs: [String: [String]] = [:]
        for spec in manifest.stages { needs[spec.name] = spec.needs.map(\.name).filter { names.contains($0) && $0 != spec.name } }
        var order: [String] = [], placed: Set<String> = []
        while order.count < manifest.stages.count {
            guard let next = manifest.stages.first(where: { !placed.contains($0.name) && needs[$0.name]!.allSatisfy(placed.contains) })
            else { break }
            order.append(next.name)
            placed.insert(next.name)
        }
        // What is left is in or behind a cycle: walk needs from each until a stage repeats.
        var reported: Set<String> = []
        for spec in manifest.stages where !placed.contains(spec.name) && !reported.contains(spec.name) {
            var path = [spec.name]
            var current = spec.name
            while let next = needs[current]!.first(where: { !placed.contains($0) }) {
                if let start = path.firstIndex(of: next) {
                    let cycle = Array(path[start...])
                    if reported.isDisjoint(with: cycle) {
                        let first = manifest.stages.first { cycle.contains($0.name) }!
                        let rotated = Array(cycle.drop(while: { $0 != first.name })) + cycle.prefix(while: { $0 != first.name })
                        problems.append(ManifestProblem(manifest.file, line: first.line,
                                                        "cycle in needs: \((rotated + [rotated[0]]).joined(separator: " -> ")) (each needs the next)"))
                    }
                    reported.formUnion(cycle)
                    break
                }
                path.append(next)
                current = next
            }
            reported.insert(spec.name)
        }
        return order
    }
}
