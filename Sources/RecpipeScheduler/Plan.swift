import Foundation
import RecpipeStore

/// Which stages of a pipeline a run covers: `--only`, `--from` (it and everything
/// downstream), `--until` (it and everything upstream); all when none is given.
public struct Selection: Sendable, Equatable {
    public var only: [String]
    public var from: String?
    public var until: String?

    public init(only: [String] = [], from: String? = nil, until: String? = nil) {
        self.only = only
        self.from = from
        self.until = until
    }

    /// The selected stage names, in pipeline order.
    public func stages(in pipeline: Pipeline) throws -> [String] {
        let names = pipeline.stages.map(\.name)
        for (option, name) in only.map({ ("--only", $0) }) + [from.map { ("--from", $0) }, until.map { ("--until", $0) }].compactMap({ $0 })
        where !names.contains(name) {
            throw SchedulerError.badSelection(
                "\(option) \(name): no such stage in \(pipeline.manifest.file)\(didYouMean(name, among: names)); stages: \(names.joined(separator: ", "))")
        }
        var selected = Set(only.isEmpty ? names : only)
        if let from { selected.formIntersection(pipeline.downstream(of: from)) }
        if let until { selected.formIntersection(pipeline.upstream(of: until)) }
        guard !selected.isEmpty else { throw SchedulerError.badSelection("the options select no stage") }
        return names.filter(selected.contains)
    }
}

/// Whether a stage runs, and why: shown by `recpipe plan`, logged and recorded by `recpipe run`.
public struct Decision: Sendable, Equatable, Codable {
    public var run: Bool
    public var reason: String

    public init(run: Bool, reason: String) {
        self.run = run
        self.reason = reason
    }
}

public enum Planner {
    /// Decides from the stage's fingerprint now and its last success.
    /// - Parameters:
    ///   - pendingUpstream: needs that will run first (planning only): their outputs are not known yet.
    ///   - missingOutputs: files the stage writes that are not there.
    public static func decide(_ fingerprint: Fingerprint, last: StageAttemptRecord?, forced: Bool,
                              pendingUpstream: [String] = [], missingOutputs: [String] = []) -> Decision {
        if forced { return Decision(run: true, reason: "forced") }
        guard let last, let lastHash = last.fingerprint else { return Decision(run: true, reason: "never run") }
        if !pendingUpstream.isEmpty {
            return Decision(run: true, reason: "stale input: \(pendingUpstream.joined(separator: ", ")) will run first")
        }
        if lastHash == fingerprint.hash && missingOutputs.isEmpty {
            return Decision(run: false, reason: "up to date (succeeded in pipeline run \(last.pipelineRunID) at \(last.finishedAt ?? last.startedAt))")
        }
        var reasons: [String] = []
        let lastParameters = last.parameters ?? [:]
        for key in Set(lastParameters.keys).union(fingerprint.parameters.keys).sorted()
        where lastParameters[key] != fingerprint.parameters[key] {
            let before = lastParameters[key]?.description ?? "(default)"
            let after = fingerprint.parameters[key]?.description ?? "(default)"
            reasons.append("changed parameter: \(key) \(before) → \(after)")
        }
        let lastInputs = last.inputs ?? [:]
        for key in Set(lastInputs.keys).union(fingerprint.inputs.keys).sorted() where lastInputs[key] != fingerprint.inputs[key] {
            if key.hasPrefix("stage:") {
                reasons.append("stale input: \(key.dropFirst(6)) ran since")
            } else if key == "code" {
                reasons.append("recpipe changed")
            } else if key == "rules" {
                reasons.append("business rules changed (item_availability, user_exclusions or the categories)")
            } else {
                let path = key.dropFirst(5)
                switch (lastInputs[key], fingerprint.inputs[key]) {
                case (nil, _): reasons.append("source added: \(path)")
                case (_, nil), (_, "missing"): reasons.append("source removed: \(path)")
                default: reasons.append("source changed: \(path)")
                }
            }
        }
        if reasons.isEmpty && lastHash != fingerprint.hash { reasons.append("stage kind changed: \(last.kind) → \(fingerprint.kind)") }
        reasons += missingOutputs.map { "output missing: \($0)" }
        return Decision(run: true, reason: reasons.joined(separator: "; "))
    }
}

extension Planner {
    /// A stage's fingerprint now: its kind, parameters, the recpipe build, its source files and
    /// its upstream stages' outputs as `upstreamOutput` gives them.
    public static func fingerprint(_ stage: PipelineStage, code: String, store: Store? = nil,
                                   upstreamOutput: (String) -> String) throws -> Fingerprint {
        var inputs = Fingerprint.files(stage.inputPaths)
        inputs["code"] = code
        if let store, let rules = try stage.kind.ruleDigest(stage.textParameters, store) { inputs["rules"] = rules }
        for need in stage.needs { inputs["stage:" + need] = upstreamOutput(need) }
        return Fingerprint(kind: stage.kind.name, parameters: stage.parameters, inputs: inputs)
    }

    /// The files a stage writes that are not there.
    public static func missingOutputs(_ stage: PipelineStage) -> [String] {
        stage.outputPaths.filter { !FileManager.default.fileExists(atPath: $0) }
    }

    /// What a run with this selection would do, without running anything: each selected
    /// stage's decision, given that a stage that runs makes its dependents run too.
    public static func plan(_ pipeline: Pipeline, history: RunHistory, selection: [String], forced: Bool,
                            code: String) throws -> [(stage: PipelineStage, decision: Decision?)] {
        var willRun: Set<String> = []
        var result: [(stage: PipelineStage, decision: Decision?)] = []
        for stage in pipeline.stages {
            guard selection.contains(stage.name) else {
                result.append((stage, nil))
                continue
            }
            var lastOutputs: [String: String] = [:]
            for need in stage.needs {
                lastOutputs[need] = try history.lastSuccess(pipeline: pipeline.name, stage: need)?.output ?? "never"
            }
            let current = try fingerprint(stage, code: code, store: history.store) { lastOutputs[$0] ?? "never" }
            let decision = decide(current, last: try history.lastSuccess(pipeline: pipeline.name, stage: stage.name), forced: forced,
                                  pendingUpstream: stage.needs.filter(willRun.contains), missingOutputs: missingOutputs(stage))
            if decision.run { willRun.insert(stage.name) }
            result.append((stage, decision))
        }
        return result
    }
}
