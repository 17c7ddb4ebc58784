import Foundation
import Yams

/// A pipeline manifest as written: a YAML file with a name, a database and named stages.
///
/// ```yaml
/// name: nightly
/// database: data/recs.sqlite        # relative to this file
/// defaults: { retries: 1, retry_backoff: 30s, timeout: 2h }
/// stages:
///   ingest: { uses: ingest, with: { sources: "events/*.csv.gz" } }
///   clean:  { uses: clean, needs: [ingest], with: { min_user_interactions: 5 } }
/// ```
public struct Manifest: Sendable {
    /// The file as given on the command line.
    public var file: String
    /// The absolute directory of the file; relative paths in it are relative to this.
    public var directory: String
    public var name: String
    /// The database, absolute.
    public var database: String
    public var defaults: StagePolicy
    /// When an orchestrator should run it (`schedule:`, five cron fields or an @-shortcut);
    /// `recpipe export airflow` writes it into the DAG. Nil: on demand.
    public var schedule: String?
    /// In file order.
    public var stages: [StageSpec]
    /// Problems found while reading; `Validator` reports them with its own.
    public var problems: [ManifestProblem] = []

    public func stage(_ name: String) -> StageSpec? { stages.first { $0.name == name } }

    /// Resolves a path written in the manifest against its directory.
    public func resolve(_ path: String) -> String { absolutePath(path, relativeTo: directory) }
}

/// `path` made absolute against `directory` (by default the current one), `.` and `..` removed.
public func absolutePath(_ path: String, relativeTo directory: String = FileManager.default.currentDirectoryPath) -> String {
    let url = path.hasPrefix("/") ? URL(fileURLWithPath: path) : URL(fileURLWithPath: directory).appendingPathComponent(path)
    return url.standardized.path
}

/// Retries, backoff and timeout of a stage (`defaults:` for all, or per stage).
public struct StagePolicy: Sendable, Equatable, Codable {
    /// Further attempts after a failure.
    public var retries = 0
    /// Seconds before the first retry; doubled for each further one.
    public var retryBackoff: Double = 30
    /// Seconds a stage may run before it is stopped (SIGTERM, then SIGKILL); nil: no limit.
    public var timeout: Double?

    public init(retries: Int = 0, retryBackoff: Double = 30, timeout: Double? = nil) {
        self.retries = retries
        self.retryBackoff = retryBackoff
        self.timeout = timeout
    }
}

/// One entry of `stages:`.
public struct StageSpec: Sendable {
    public var name: String
    public var line: Int
    /// The stage kind (`uses:`), and its line.
    public var uses: String
    public var usesLine: Int
    public var needs: [(name: String, line: Int)]
    /// `with:` in file order.
    public var parameters: [Parameter]
    public var withLine: Int
    /// The stage's policy: its own fields over the manifest's defaults.
    public var policy: StagePolicy
    /// The policy fields the stage sets itself.
    var ownPolicy = PolicyFields()
}

/// Policy fields as written; unset ones come from the level above.
struct PolicyFields: Sendable {
    var retries: Int?
    var retryBackoff: Double?
    var timeout: Double?

    func over(_ base: StagePolicy) -> StagePolicy {
        StagePolicy(retries: retries ?? base.retries, retryBackoff: retryBackoff ?? base.retryBackoff, timeout: timeout ?? base.timeout)
    }
}

/// A stage parameter (`with: { epochs: 50 }`) as written.
public struct Parameter: Sendable, Equatable {
    public enum Value: Sendable, Equatable {
        /// A scalar's text, and its reading as a boolean when YAML reads it as one.
        case scalar(String, bool: Bool?)
        case list([String])
        /// A mapping or a nested list: no command option takes one.
        case structured
    }

    public var name: String
    public var value: Value
    /// Where it was written: the manifest and line, or the `--set` option.
    public var location: String
    public var line: Int?

    public var problemLocation: (String, Int?) { (location, line) }
}

/// Reads manifests: YAML structure, field names and types, `${VAR}` substitution and `--set`
/// overrides. What the stage commands accept is checked later, by `Validator`.
public struct ManifestParser {
    public var environment: [String: String]

    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.environment = environment
    }

    static let topLevelKeys = ["name", "description", "database", "schedule", "defaults", "stages"]
    static let stageKeys = ["uses", "needs", "with", "retries", "retry_backoff", "timeout", "description"]
    static let policyKeys = ["retries", "retry_backoff", "timeout"]

    /// Parses the manifest at `path`; `overrides` are `stage.param=value` strings from `--set`.
    /// Throws for YAML that cannot be read at all; other problems are kept in `problems`.
    public func load(_ path: String, overrides: [String] = []) throws -> Manifest {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw SchedulerError.unreadableManifest(path: path, reason: (error as NSError).localizedFailureReason ?? "no such file or not UTF-8")
        }
        let directory = URL(fileURLWithPath: absolutePath(path)).deletingLastPathComponent().path
        return try parse(text, file: path, directory: directory, overrides: overrides)
    }

    public func parse(_ text: String, file: String, directory: String, overrides: [String] = []) throws -> Manifest {
        var problems: [ManifestProblem] = []
        func problem(_ line: Int?, _ message: String) { problems.append(ManifestProblem(file, line: line, message)) }

        let root: Node
        do {
            guard let node = try Yams.compose(yaml: text) else {
                throw SchedulerError.invalidManifest([ManifestProblem(file, line: 1, "empty manifest")])
            }
            root = node
        } catch let error as YamlError {
            throw SchedulerError.invalidManifest([Self.problem(for: error, file: file)])
        }
        guard let top = root.mapping else {
            throw SchedulerError.invalidManifest([ManifestProblem(file, line: line(root), "expected a mapping with name, database and stages")])
        }

        var name: String?, database: String?, schedule: String?
        var defaults = PolicyFields()
        var stages: [StageSpec] = []
        var sawStages = false
        for (keyNode, value) in top {
            let key = keyNode.string ?? ""
            switch key {
            case "name":
                name = scalar(value, "name", &problems, file: file)
            case "description":
                break
            case "database":
                database = scalar(value, "database", &problems, file: file)
            case "schedule":
                schedule = scalar(value, "schedule", &problems, file: file)
                if let text = schedule, !CronLine.isSchedule(text) {
                    problem(line(value), "schedule: expected five cron fields (minute hour day-of-month month day-of-week), e.g. \"0 3 * * *\", or @daily; got '\(text)'")
                }
            case "defaults":
                guard let mapping = value.mapping else { problem(line(value), "defaults: expected a mapping"); continue }
                for (policyKey, policyValue) in mapping {
                    let field = policyKey.string ?? ""
                    guard Self.policyKeys.contains(field) else {
                        problem(line(policyKey), "unknown field '\(field)' in defaults\(didYouMean(field, among: Self.policyKeys))")
                        continue
                    }
                    apply(policy: field, value: policyValue, to: &defaults, &problems, file: file)
                }
            case "stages":
                sawStages = true
                guard let mapping = value.mapping, !mapping.isEmpty else {
                    problem(line(value), "stages: expected a mapping of stage names to stages")
                    continue
                }
                for (stageKey, stageNode) in mapping {
                    if let stage = parseStage(stageKey, stageNode, &problems, file: file) { stages.append(stage) }
                }
            default:
                problem(line(keyNode), "unknown field '\(key)'\(didYouMean(key, among: Self.topLevelKeys))")
            }
        }
        if name == nil && !problems.contains(where: { $0.message.hasPrefix("name:") }) { problem(1, "missing field 'name'") }
        if database == nil && !problems.contains(where: { $0.message.hasPrefix("database:") }) { problem(1, "missing field 'database'") }
        if !sawStages { problem(1, "missing field 'stages'") }

        // Policies not set on a stage come from defaults.
        let base = defaults.over(StagePolicy())
        for index in stages.indices { stages[index].policy = stages[index].ownPolicy.over(base) }

        for override in overrides { applyOverride(override, to: &stages, &problems) }
        var manifest = Manifest(file: file, directory: directory, name: name ?? "", database: "", defaults: base, stages: stages)
        manifest.database = database.map(manifest.resolve) ?? ""
        manifest.schedule = schedule
        manifest.problems = problems
        return manifest
    }

    // MARK: - Pieces

    private func parseStage(_ keyNode: Node, _ node: Node, _ problems: inout [ManifestProblem], file: String) -> StageSpec? {
        let name = keyNode.string ?? ""
        let stageLine = line(keyNode)
        guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" }) else {
            problems.append(ManifestProblem(file, line: stageLine, "stage name '\(name)': use letters, digits, '_' and '-'"))
            return nil
        }
        var spec = StageSpec(name: name, line: stageLine, uses: "", usesLine: stageLine, needs: [], parameters: [],
                             withLine: stageLine, policy: StagePolicy())
        guard let mapping = node.mapping else {
            problems.append(ManifestProblem(file, line: line(node), "stage \(name): expected a mapping with uses, needs, with"))
            return spec
        }
        for (fieldNode, value) in mapping {
            let field = fieldNode.string ?? ""
            switch field {
            case "uses":
                if let kind = scalar(value, "stage \(name): uses", &problems, file: file) {
                    spec.uses = kind
                    spec.usesLine = line(value)
                }
            case "needs":
                let items: [Node] = value.sequence.map { Array($0) } ?? [value]
                for item in items {
                    if let need = scalar(item, "stage \(name): needs", &problems, file: file) { spec.needs.append((need, line(item))) }
                }
            case "with":
                spec.withLine = line(fieldNode)
                guard let parameters = value.mapping else {
                    if value.null == nil {
                        problems.append(ManifestProblem(file, line: line(value), "stage \(name): with: expected a mapping of parameters"))
                    }
                    continue
                }
                for (parameterKey, parameterValue) in parameters {
                    spec.parameters.append(Parameter(
                        name: parameterKey.string ?? "", value: parameterValueOf(parameterValue, &problems, file: file),
                        location: file, line: line(parameterKey)))
                }
            case "retries", "retry_backoff", "timeout":
                apply(policy: field, value: value, to: &spec.ownPolicy, &problems, file: file, stage: name)
            case "description":
                break
            default:
                problems.append(ManifestProblem(file, line: line(fieldNode),
                                                "stage \(name): unknown field '\(field)'\(didYouMean(field, among: Self.stageKeys))"))
            }
        }
        if spec.uses.isEmpty && mapping.allSatisfy({ $0.key.string != "uses" }) {
            problems.append(ManifestProblem(file, line: stageLine, "stage \(name): missing field 'uses' (the stage kind)"))
        }
        return spec
    }

    private func apply(policy field: String, value: Node, to policy: inout PolicyFields, _ problems: inout [ManifestProblem],
                       file: String, stage: String? = nil) {
        let prefix = stage.map { "stage \($0): " } ?? "defaults: "
        guard let text = scalar(value, prefix + field, &problems, file: file) else { return }
        switch field {
        case "retries":
            guard let retries = Int(text), retries >= 0 else {
                problems.append(ManifestProblem(file, line: line(value), "\(prefix)retries: expected a whole number ≥ 0, got '\(text)'"))
                return
            }
            policy.retries = retries
        default:
            guard let seconds = Self.duration(text), seconds > 0 else {
                problems.append(ManifestProblem(file, line: line(value),
                                                "\(prefix)\(field): expected a duration such as 90s, 30m, 2h or 1h30m, got '\(text)'"))
                return
            }
            if field == "timeout" { policy.timeout = seconds } else { policy.retryBackoff = seconds }
        }
    }

    /// `90`, `90s`, `30m`, `2h`, `1h30m`, `1d` in seconds.
    public static func duration(_ text: String) -> Double? {
        if let seconds = Double(text), seconds.isFinite { return seconds }
        var total = 0.0, number = ""
        for character in text {
            if character.isNumber || character == "." {
                number.append(character)
                continue
            }
            guard let value = Double(number) else { return nil }
            switch character {
            case "s": total += value
            case "m": total += value * 60
            case "h": total += value * 3600
            case "d": total += value * 86400
            default: return nil
            }
            number = ""
        }
        return number.isEmpty && !text.isEmpty ? total : nil
    }

    private func parameterValueOf(_ node: Node, _ problems: inout [ManifestProblem], file: String) -> Parameter.Value {
        if let items = node.sequence {
            var values: [String] = []
            for item in items {
                guard let scalar = item.scalar else { return .structured }
                values.append(substitute(scalar.string, line: line(item), &problems, file: file))
            }
            return .list(values)
        }
        guard let scalar = node.scalar else { return .structured }
        let text = substitute(scalar.string, line: line(node), &problems, file: file)
        return .scalar(text, bool: scalar.style == .plain ? Bool.construct(from: scalar) : nil)
    }

    /// Replaces `${NAME}` and `${NAME:-default}` with the environment's values.
    private func substitute(_ text: String, line: Int, _ problems: inout [ManifestProblem], file: String) -> String {
        guard text.contains("${") else { return text }
        var output = "", rest = Substring(text)
        while let start = rest.range(of: "${") {
            output += rest[..<start.lowerBound]
            guard let end = rest[start.upperBound...].firstIndex(of: "}") else {
                problems.append(ManifestProblem(file, line: line, "unterminated '${' in '\(text)'"))
                return text
            }
            let body = rest[start.upperBound..<end]
            let parts = body.split(separator: ":-", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            let variable = parts[0]
            if let value = environment[variable], !value.isEmpty {
                output += value
            } else if parts.count == 2 {
                output += parts[1]
            } else {
                problems.append(ManifestProblem(file, line: line, "environment variable \(variable) is not set (write ${\(variable):-default} for a default)"))
            }
            rest = rest[rest.index(after: end)...]
        }
        return output + rest
    }

    /// `--set stage.param=value`; the value is read as YAML (`5`, `true`, `[20, 200]`).
    private func applyOverride(_ override: String, to stages: inout [StageSpec], _ problems: inout [ManifestProblem]) {
        let location = "--set \(override)"
        guard let equals = override.firstIndex(of: "="), let dot = override[..<equals].firstIndex(of: ".") else {
            problems.append(ManifestProblem(location, line: nil, "expected --set STAGE.PARAMETER=VALUE"))
            return
        }
        let stageName = String(override[..<dot]), parameter = String(override[override.index(after: dot)..<equals])
        let valueText = String(override[override.index(after: equals)...])
        guard let index = stages.firstIndex(where: { $0.name == stageName }) else {
            problems.append(ManifestProblem(location, line: nil,
                                            "no stage named '\(stageName)'\(didYouMean(stageName, among: stages.map(\.name)))"))
            return
        }
        let value: Parameter.Value
        if let node = try? Yams.compose(yaml: valueText) {
            value = parameterValueOf(node, &problems, file: location)
        } else {
            value = .scalar(valueText, bool: nil)
        }
        let entry = Parameter(name: parameter, value: value, location: location, line: nil)
        if let existing = stages[index].parameters.firstIndex(where: { $0.name == parameter }) {
            stages[index].parameters[existing] = entry
        } else {
            stages[index].parameters.append(entry)
        }
    }

    private func scalar(_ node: Node, _ field: String, _ problems: inout [ManifestProblem], file: String) -> String? {
        guard let scalar = node.scalar, !scalar.string.isEmpty || scalar.style != .plain else {
            problems.append(ManifestProblem(file, line: line(node), "\(field): expected a single value"))
            return nil
        }
        return substitute(scalar.string, line: line(node), &problems, file: file)
    }

    private func line(_ node: Node) -> Int { node.mark?.line ?? 1 }

    static func problem(for error: YamlError, file: String) -> ManifestProblem {
        switch error {
        case let .scanner(context, problem, mark, _), let .parser(context, problem, mark, _):
            return ManifestProblem(file, line: mark.line, "YAML: \(problem)\(context.map { " \($0.text)" } ?? "")")
        case let .composer(context, problem, mark, _):
            return ManifestProblem(file, line: mark.line, "YAML: \(problem)\(context.map { " \($0.text)" } ?? "")")
        case let .duplicatedKeysInMapping(duplicates, context):
            // The error points at the first occurrence; find the next one at the same indentation.
            let lines = context.text.split(separator: "\n", omittingEmptySubsequences: false)
            let key = duplicates.first ?? ""
            let indent = String(repeating: " ", count: max(0, context.mark.column - 1))
            let again = lines.indices.dropFirst(context.mark.line).first { lines[$0].hasPrefix(indent + key + ":") }
            return ManifestProblem(file, line: again.map { $0 + 1 } ?? context.mark.line,
                                   "duplicate name '\(key)' (first at line \(context.mark.line)); each name may appear once")
        default:
            return ManifestProblem(file, line: 1, "YAML: \(error)")
        }
    }
}
