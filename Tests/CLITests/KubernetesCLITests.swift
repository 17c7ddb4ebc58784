import Foundation
import GRDB
import RecpipeTestSupport
import Testing

/// `recpipe export k8s-score`: the Jobs validate against the Kubernetes schema, and the pods'
/// commands, run here as N processes with JOB_COMPLETION_INDEX set and then the merge, give the
/// lists one process gives.
@Suite(.serialized, .tags(.large)) struct KubernetesCLITests {
    /// The schema validator from PyPI (kubernetes-validate, the version scripts/test installs).
    static var validator: String? {
        let candidates = [ProcessInfo.processInfo.environment["RECPIPE_KUBERNETES_VALIDATE"],
                          URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../.build-k8s/venv/bin/kubernetes-validate").standardized.path].compactMap { $0 }
        return candidates.first(where: FileManager.default.isExecutableFile(atPath:))
    }

    /// The `args:` lists of each Job in the rendered YAML, in order.
    func containerArguments(_ yaml: String) -> [[String]] {
        var lists: [[String]] = []
        var current: [String]?
        for line in yaml.components(separatedBy: "\n") {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed == "args:" { current = []; continue }
            if var list = current {
                if trimmed.hasPrefix("- \"") {
                    let quoted = trimmed.dropFirst(2)
                    let value = try! JSONDecoder().decode(String.self, from: Data(quoted.utf8))
                    list.append(value)
                    current = list
                } else {
                    lists.append(list)
                    current = nil
                }
            }
        }
        return lists
    }

    /// What Kubernetes does to an argument: $(VAR) from the container's environment.
    func expand(_ argument: String, index: Int) -> String {
        argument.replacingOccurrences(of: "$(JOB_COMPLETION_INDEX)", with: "\(index)")
    }

    func liveLists(_ db: String) throws -> [String] {
        try DatabaseQueue(path: db).read { db in
            try String.fetchAll(db, sql: "SELECT user_key || ' ' || rank || ' ' || item_key || ' ' || score || ' ' || source || ' ' || ifnull(because_item_key, '') FROM recommendations ORDER BY user_key, rank")
        }
    }

    @Test func theJobsValidateAndTheirPodsGiveTheListsOfOneProcess() throws {
        let (dir, db) = try publishedDatabase()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try recpipeSucceeding(["score", "--db", "recs.sqlite", "--model", "ease", "--k", "7", "--rerank", "none"], in: dir)
        let single = try liveLists(db)
        #expect(!single.isEmpty)

        let shards = 3
        let export = try recpipe(["export", "k8s-score", "--shards", "\(shards)", "--image", "registry.example/recpipe:test",
                                  "--db-path", db, "--score-arg=--model", "--score-arg=ease", "--score-arg=--k", "--score-arg=7",
                                  "--score-arg=--rerank", "--score-arg=none", "--out", "jobs.yaml"], in: dir)
        #expect(export.status == 0, "\(export.stderr)")
        let yaml = try String(contentsOfFile: dir + "/jobs.yaml", encoding: .utf8)
        #expect(yaml.contains("completionMode: Indexed") && yaml.contains("completions: \(shards)") && yaml.contains("backoffLimitPerIndex: 2"))

        if let validator = Self.validator {
            for version in ["1.33.0", "1.37.0"] {
                let process = Process()
                process.executableURL = URL(fileURLWithPath: validator)
                process.arguments = ["--strict", "-k", version, dir + "/jobs.yaml"]
                let out = Pipe()
                process.standardOutput = out
                process.standardError = out
                try process.run()
                let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                process.waitUntilExit()
                #expect(process.terminationStatus == 0, "Kubernetes \(version): \(text)")
                #expect(text.contains("passed for resource job/recpipe-score-shards") && text.contains("passed for resource job/recpipe-score-merge"))
            }
        } else {
            print("KubernetesCLITests: kubernetes-validate not installed (scripts/test installs it into .build-k8s/); schema check skipped")
        }

        // The pods, emulated: the shard Job's command once per index, all at once, with
        // JOB_COMPLETION_INDEX set; then the merge Job's.
        let arguments = containerArguments(yaml)
        #expect(arguments.count == 2)
        let (shard, merge) = (arguments[0], arguments[1])
        #expect(shard.contains("--shard") && merge.contains("--merge"))
        var processes: [Process] = []
        for index in 0..<shards {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: recpipeBinary)
            process.arguments = shard.map { expand($0, index: index) } + ["--quiet"]
            process.environment = ProcessInfo.processInfo.environment.merging(["JOB_COMPLETION_INDEX": "\(index)"]) { $1 }
            process.currentDirectoryURL = URL(fileURLWithPath: dir)
            try process.run()
            processes.append(process)
        }
        for process in processes {
            process.waitUntilExit()
            #expect(process.terminationStatus == 0)
        }
        let merged = try recpipe(merge + ["--quiet"], in: dir)
        #expect(merged.status == 0, "\(merged.stderr)")
        #expect(try liveLists(db) == single, "the merged shards give the lists of one process")

        // Bad options are refused before anything is written.
        let bad = try recpipe(["export", "k8s-score", "--shards", "2", "--image", "x", "--db-path", "relative.sqlite"], in: dir)
        #expect(bad.status == 64 && bad.stderr.contains("--db-path must be absolute"))
        let typo = try recpipe(["export", "k8s-score", "--shards", "2", "--image", "x", "--db-path", "/d/r.sqlite", "--score-arg=--kk"], in: dir)
        #expect(typo.status == 64 && typo.stderr.contains("--score-arg"), "\(typo.stderr)")
    }
}
