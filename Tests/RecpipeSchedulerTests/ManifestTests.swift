import Foundation
import RecpipeTestSupport
import Testing
@testable import RecpipeScheduler
import RecpipeStages

@Suite(.tags(.small)) struct ManifestTests {
    static let nightly = """
        name: nightly
        database: data/recs.sqlite
        defaults: { retries: 1, retry_backoff: 2m }
        stages:
          ingest:   { uses: ingest,   with: { sources: "events/*.csv.gz" } }
          clean:    { uses: clean,    needs: [ingest], with: { min_user_interactions: 5 } }
          train:    { uses: train,    needs: clean, with: { epochs: 50, lambda: [20, 200], warm_start: true }, timeout: 1h30m }
          baseline: { uses: train,    needs: [clean], with: { model: ease, warm_start: false }, retries: 0 }
          score:    { uses: score,    needs: [train, baseline], with: { k: 100 } }
          evaluate: { uses: evaluate, needs: [score] }
        """

    @Test func resolvesCommandLinesPathsOrderAndPolicies() throws {
        let dir = scratchDirectory()
        let p = try pipeline(Self.nightly, in: dir)
        #expect(p.name == "nightly")
        #expect(p.database == dir + "/data/recs.sqlite")
        #expect(p.stages.map(\.name) == ["ingest", "clean", "train", "baseline", "score", "evaluate"])
        let ingest = try #require(p.stage("ingest"))
        #expect(ingest.commandLine(database: "db") == ["ingest", "--db", "db", "--", dir + "/events/*.csv.gz"])
        // Wildcards are expanded when the stage runs.
        try FileManager.default.createDirectory(atPath: dir + "/events", withIntermediateDirectories: true)
        for name in ["b.csv.gz", "a.csv.gz", "notes.txt"] { _ = FileManager.default.createFile(atPath: dir + "/events/" + name, contents: nil) }
        #expect(ingest.commandLine(database: "db", options: ["--quiet"])
                == ["ingest", "--db", "db", "--quiet", "--", dir + "/events/a.csv.gz", dir + "/events/b.csv.gz"])
        #expect(ingest.inputPaths == [dir + "/events/*.csv.gz"])
        let train = try #require(p.stage("train"))
        #expect(train.arguments == ["train", "--epochs=50", "--lambda=20", "--lambda=200", "--warm-start"])
        #expect(train.parameters["lambda"] == .list(["20", "200"]) && train.parameters["warm_start"] == .flag(true))
        #expect(train.needs == ["clean"])
        #expect(train.policy == StagePolicy(retries: 1, retryBackoff: 120, timeout: 5400))
        #expect(p.stage("baseline")?.arguments == ["train", "--model=ease"])
        #expect(p.stage("baseline")?.policy.retries == 0)
        #expect(p.downstream(of: "train") == ["train", "score", "evaluate"])
        #expect(p.upstream(of: "score") == ["score", "train", "baseline", "clean", "ingest"])
    }

    @Test func everyProblemIsReportedWithItsLine() {
        let found = problems("""
            name: bad
            database: bad.sqlite
            stages:
              ingest:  { uses: ingest, with: { source: "x.csv" } }
              clean:   { uses: clean, needs: [ingets], with: { split: strng } }
              train:
                uses: train
                needs: [clean]
                with:
                  epochs: lots
              base:    { uses: trian, needs: [clean] }
              score:   { uses: score, needs: [train], with: { k: [1, 2] } }
              flags:   { uses: train, needs: [clean], with: { warm_start: 3, model: { a: 1 } } }
              rep:     { uses: report, needs: [score], retries: x, timeot: 5m }
              nouses:  { needs: [score] }
            colour: blue
            """)
        #expect(found == [
            "bad.yaml:4: stage ingest: unknown parameter 'source' for ingest (did you mean 'sources'?)",
            "bad.yaml:5: stage clean: needs unknown stage 'ingets' (did you mean 'ingest'?)",
            "bad.yaml:5: stage clean: parameter 'split': 'strng' is not one of strong, temporal (did you mean 'strong'?)",
            "bad.yaml:10: stage train: train rejects its parameters: The value 'lots' is invalid for '--epochs <epochs>'",
            "bad.yaml:11: stage base: unknown stage kind 'trian' (did you mean 'train'?); kinds: ingest, clean, augment, train, score, rollback, evaluate, feedback, prune, report, synth",
            "bad.yaml:12: stage score: parameter 'k' takes a single value, not a list",
            "bad.yaml:13: stage flags: parameter 'warm_start' is a flag: expected true or false",
            "bad.yaml:13: stage flags: parameter 'model': expected a single value, not a mapping or nested list",
            "bad.yaml:14: stage rep: retries: expected a whole number ≥ 0, got 'x'",
            "bad.yaml:14: stage rep: unknown field 'timeot' (did you mean 'timeout'?)",
            "bad.yaml:14: stage rep: missing required parameter 'out' for report",
            "bad.yaml:15: stage nouses: missing field 'uses' (the stage kind)",
            "bad.yaml:16: unknown field 'colour'",
        ])
    }

    @Test func cyclesArePrintedOnce() {
        let found = problems("""
            name: loop
            database: x.sqlite
            stages:
              start: { uses: synth, with: { out: a.csv } }
              a: { uses: evaluate, needs: [start, c] }
              b: { uses: evaluate, needs: [a] }
              c: { uses: evaluate, needs: [b] }
              after: { uses: report, needs: [c], with: { out: r.html } }
              self: { uses: evaluate, needs: [self] }
            """)
        #expect(found == [
            "bad.yaml:5: cycle in needs: a -> c -> b -> a (each needs the next)",
            "bad.yaml:9: stage self: needs itself",
        ])
    }

    /// A stage that reads what another writes must be ordered with it by `needs`; trainers of
    /// different kinds are independent.
    @Test func unorderedDataFlowIsReported() {
        let found = problems("""
            name: flow
            database: x.sqlite
            stages:
              clean: { uses: clean }
              train: { uses: train, needs: [clean] }
              ease: { uses: train, needs: [clean], with: { model: ease } }
              score: { uses: score }
              report: { uses: report, needs: [score, ease], with: { out: r.html } }
            """)
        #expect(found.count == 4, "\(found)")
        #expect(found.contains { $0.hasPrefix("bad.yaml:7: stage score: reads clean_runs, interactions, items, users, which stage clean writes") })
        // Without --model, score judges the published model of every kind.
        #expect(found.contains { $0.hasPrefix("bad.yaml:7: stage score: reads model_carryovers (multvae), model_items (multvae), model_weights (multvae), models (multvae), which stage train writes") })
        #expect(found.contains { $0.hasPrefix("bad.yaml:7: stage score: reads model_carryovers (ease), model_items (ease), model_weights (ease), models (ease), which stage ease writes") })
        #expect(found.contains { $0.hasPrefix("bad.yaml:8: stage report: reads") && $0.contains("which stage train writes, but neither needs the other; add needs: [train] to report") })
    }

    /// The model tables are told apart by kind, and a trainer that never publishes writes only
    /// candidates, which no scorer reads; the CFGAN's output feeds training with augmentation.
    @Test func modelTablesAreSplitByKind() throws {
        let train = try #require(StageKind.named("train")), score = try #require(StageKind.named("score"))
        let augment = try #require(StageKind.named("augment"))
        func overlap(_ written: [DataSet], _ read: [DataSet]) -> Bool { read.contains { r in written.contains { $0.overlaps(r) } } }
        #expect(overlap(train.outputs([:]), score.inputs([:])))
        // The champion is chosen among the published models of every kind.
        #expect(overlap(train.outputs(["model": "ease"]), score.inputs([:])))
        #expect(!overlap(train.outputs(["model": "ials"]), score.inputs(["model": "multvae"])))
        #expect(overlap(train.outputs(["model": "ease"]), score.inputs(["model": "ease"])))
        #expect(overlap(train.outputs(["model": "ease"]), score.inputs(["model": "17"])))
        #expect(!overlap(augment.outputs([:]), score.inputs([:])))
        #expect(!overlap(train.outputs(["no_publish": "true", "augmented": "true"]), score.inputs([:])))
        #expect(!overlap(train.outputs(["no_publish": "true"]), train.inputs([:])))
        #expect(overlap(augment.outputs([:]), train.inputs(["augmented": "true"])))
        #expect(!overlap(augment.outputs([:]), train.inputs([:])))
        // A whole table overlaps every part of it.
        #expect(DataSet(.models).overlaps(DataSet(.models, part: "ease")))
    }

    @Test func duplicateNamesAndBrokenYAMLNameTheLine() {
        #expect(problems("name: d\ndatabase: d.sqlite\nstages:\n  a: { uses: synth }\n  b: { uses: synth }\n  a: { uses: synth }\n")
                == ["bad.yaml:6: duplicate name 'a' (first at line 4); each name may appear once"])
        let broken = problems("name: d\ndatabase: d.sqlite\nstages:\n  a: { uses: synth\n")
        #expect(broken.count == 1 && broken[0].hasPrefix("bad.yaml:5: YAML: "), "\(broken)")
        #expect(problems("- just\n- a list\n") == ["bad.yaml:1: expected a mapping with name, database and stages"])
        #expect(problems("stages: {}\n") == [
            "bad.yaml:1: stages: expected a mapping of stage names to stages",
            "bad.yaml:1: missing field 'name'", "bad.yaml:1: missing field 'database'",
        ])
    }

    @Test func aKindThisBinaryLacksFailsValidation() {
        let yaml = "name: g\ndatabase: g.sqlite\nstages:\n  gan: { uses: augment, with: { epochs: 3 } }\n"
        #expect(problems(yaml) == [
            "bad.yaml:4: stage gan: stage kind 'augment' is not available in this recpipe (it has no 'augment' command); upgrade recpipe or remove the stage",
        ])
        // Once the command exists, the same manifest is valid: the kind needs no other change.
        #expect(problems(yaml, commands: FakeCommands(without: [])) == [])
    }

    @Test func overridesAndEnvironment() throws {
        let yaml = """
            name: env
            database: ${DATA_DIR:-data}/recs.sqlite
            stages:
              ingest: { uses: ingest, with: { sources: "${EVENTS}" } }
              train:  { uses: train, needs: [ingest], with: { epochs: 50 } }
            """
        let dir = scratchDirectory()
        let p = try pipeline(yaml, in: dir, overrides: ["train.epochs=7", "train.lambda=[1, 2]", "train.warm_start=true"],
                             environment: ["EVENTS": "/srv/events.csv"])
        #expect(p.database == dir + "/data/recs.sqlite")
        #expect(p.stage("ingest")?.arguments == ["ingest", "--", "/srv/events.csv"])
        #expect(p.stage("train")?.arguments == ["train", "--epochs=7", "--lambda=1", "--lambda=2", "--warm-start"])
        #expect(try pipeline(yaml, in: dir, environment: ["EVENTS": "e.csv", "DATA_DIR": "/var/recs"]).database == "/var/recs/recs.sqlite")

        #expect(problems(yaml) == [
            "bad.yaml:4: environment variable EVENTS is not set (write ${EVENTS:-default} for a default)",
        ])
        #expect(problems(yaml, overrides: ["trian.epochs=3", "train.epochs=many", "train"], environment: ["EVENTS": "e.csv"]) == [
            "--set trian.epochs=3: no stage named 'trian' (did you mean 'train'?)",
            "--set train: expected --set STAGE.PARAMETER=VALUE",
            "--set train.epochs=many: stage train: train rejects its parameters: The value 'many' is invalid for '--epochs <epochs>'",
        ])
    }

    @Test func relativePaths() throws {
        #expect(absolutePath("../shared/x", relativeTo: "/srv/repo") == "/srv/shared/x")
        #expect(absolutePath("./a/../b.yaml", relativeTo: "/srv") == "/srv/b.yaml")
        #expect(absolutePath("/etc/./x", relativeTo: "/srv") == "/etc/x")
        // A manifest reached through `..` resolves its paths against its real directory.
        let dir = scratchDirectory()
        try FileManager.default.createDirectory(atPath: dir + "/sub/pipelines", withIntermediateDirectories: true)
        try "name: r\ndatabase: ../data/r.sqlite\nstages:\n  s: { uses: synth, with: { out: ../data/e.csv } }\n"
            .write(toFile: dir + "/sub/pipelines/p.yaml", atomically: true, encoding: .utf8)
        let manifest = try ManifestParser().load(dir + "/sub/pipelines/../pipelines/p.yaml")
        #expect(manifest.directory == dir + "/sub/pipelines" && manifest.database == dir + "/sub/data/r.sqlite")
    }

    @Test func reservedOptionsAreTheSchedulers() {
        #expect(problems("name: r\ndatabase: r.sqlite\nstages:\n  s: { uses: score, with: { db: other.sqlite } }\n") == [
            "bad.yaml:4: stage s: parameter 'db' is set by the scheduler (the manifest's database and log level)",
        ])
    }

    @Test(arguments: [("90", 90.0), ("90s", 90), ("30m", 1800), ("2h", 7200), ("1h30m", 5400), ("1d", 86400), ("0.5s", 0.5)])
    func durations(text: String, seconds: Double) {
        #expect(ManifestParser.duration(text) == seconds)
    }

    @Test func badDurations() {
        for text in ["", "m", "5x", "1h30"] { #expect(ManifestParser.duration(text) == nil, "\(text)") }
    }

    @Test func commandSpecFromToolInfo() throws {
        let json = """
            {"command": {"commandName": "clean", "arguments": [
              {"kind": "option", "names": [{"kind": "long", "name": "db"}], "preferredName": {"kind": "long", "name": "db"},
               "isOptional": false, "isRepeating": false, "shouldDisplay": true, "parsingStrategy": "default"},
              {"kind": "flag", "names": [{"kind": "long", "name": "verbose"}, {"kind": "short", "name": "v"}],
               "isOptional": true, "isRepeating": false, "shouldDisplay": true, "parsingStrategy": "default"},
              {"kind": "option", "names": [{"kind": "long", "name": "min-user-interactions"}], "defaultValue": "5",
               "isOptional": true, "isRepeating": false, "shouldDisplay": true, "parsingStrategy": "default"},
              {"kind": "option", "names": [{"kind": "long", "name": "split"}], "allValues": ["strong", "temporal"],
               "isOptional": true, "isRepeating": false, "shouldDisplay": true, "parsingStrategy": "default"},
              {"kind": "option", "names": [{"kind": "long", "name": "out"}],
               "isOptional": false, "isRepeating": false, "shouldDisplay": true, "parsingStrategy": "default"},
              {"kind": "positional", "valueName": "sources", "isOptional": true, "isRepeating": true, "shouldDisplay": true, "parsingStrategy": "default"},
              {"kind": "flag", "names": [{"kind": "long", "name": "warm-start"}],
               "isOptional": true, "isRepeating": false, "shouldDisplay": true, "parsingStrategy": "default"}
            ]}}
            """
        let spec = try CommandSpec(command: "clean", toolInfoJSON: Data(json.utf8))
        #expect(spec.takesDatabase)
        #expect(spec.options.map(\.key) == ["min_user_interactions", "split", "out", "sources", "warm_start"])
        #expect(spec.option("min_user_interactions")?.spelling == "--min-user-interactions")
        #expect(spec.option("split")?.allowedValues == ["strong", "temporal"])
        #expect(spec.option("out")?.isRequired == true && spec.option("split")?.isRequired == false)
        #expect(spec.option("sources")?.kind == .positional && spec.option("sources")?.isRepeating == true)
        #expect(spec.option("warm_start")?.kind == .flag && spec.option("warm_start")?.isRequired == false)
    }

    @Test func suggestions() {
        #expect(suggestion(for: "epoch", among: ["epochs", "seed"]) == "epochs")
        #expect(suggestion(for: "trian", among: StageKind.all.map(\.name)) == "train")
        #expect(suggestion(for: "completely_different", among: ["epochs", "seed"]) == nil)
        #expect(suggestion(for: "vae", among: ["multvae", "ease"]) == nil)
        #expect(editDistance("kitten", "sitting") == 3 && editDistance("", "abc") == 3 && editDistance("abc", "") == 3)
        #expect(editDistance("trian", "train") == 1 && editDistance("ingets", "ingest") == 1)
    }
}
