import Foundation
import GRDB
import RecpipeModels
import RecpipeStore

/// One self-contained HTML page about a database: the split, the models and their training
/// curves, the evaluation side by side with 95% confidence intervals, the popularity curve
/// with the long tail and where recommendations fall on it, and the run history. Inline CSS
/// and SVG only: it opens offline.
public enum Report {
    public static func html(_ store: Store) throws -> String {
        try store.queue.read { db in
            var body = "<h1>recpipe report</h1>"
            body += "<p class=\"meta\">\(SVG.escape((store.path as NSString).lastPathComponent)), generated \(Clock.isoNow())</p>"
            body += try splitSection(db)
            body += try modelsSection(db)
            body += try liveSection(db)
            body += try evaluationSection(db)
            body += try augmentationSection(db)
            body += try tradeoffSection(db)
            body += try popularitySection(db)
            body += try closedLoopSection(db)
            body += try historySection(db)
            return """
                <!DOCTYPE html>
                <html lang="en"><head><meta charset="utf-8"><title>recpipe report</title>
                <style>
                body { font: 14px/1.4 system-ui, sans-serif; margin: 24px auto; max-width: 1100px; color: #222; }
                h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 28px; border-bottom: 1px solid #ddd; }
                table { border-collapse: collapse; margin: 8px 0; } td, th { padding: 3px 8px; border-bottom: 1px solid #eee; }
                th { text-align: left; background: #f6f6f6; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
                .meta, .empty { color: #666; } svg { margin: 6px 12px 6px 0; }
                svg .title { font-weight: 600; font-size: 13px; } svg .tick, svg .axis, svg .legend { font-size: 11px; }
                svg .frame { fill: #fcfcfc; stroke: #bbb; } svg .mark { stroke: #c33; stroke-dasharray: 4 3; }
                svg .chosen { fill: none; stroke: #c33; stroke-width: 2; }
                .failed { color: #b00; }
                </style></head><body>
                \(body)
                </body></html>
                """
        }
    }

    static func table(_ header: [String], _ rows: [[String]], numeric: Set<Int> = []) -> String {
        var html = "<table><tr>" + header.map { "<th>\(SVG.escape($0))</th>" }.joined() + "</tr>"
        for row in rows {
            html += "<tr>" + row.enumerated().map { i, cell in
                "<td\(numeric.contains(i) ? " class=\"num\"" : "")>\(SVG.escape(cell))</td>"
            }.joined() + "</tr>"
        }
        return html + "</table>"
    }

    static func splitSection(_ db: Database) throws -> String {
        guard let run = try Split.latestRunRow(in: db) else {
            return "<h2>Data</h2><p class=\"empty\">No clean run yet.</p>"
        }
        let rows: [[String]] = [
            ["split", run["split"]], ["users", "\(run["users"] as Int)"], ["items", "\(run["items"] as Int)"],
            ["interactions", "\(run["interactions"] as Int)"], ["density", String(format: "%.4f", run["density"] as Double)],
            ["training users / rows", "\(run["train_users"] as Int) / \(run["train_rows"] as Int)"],
            ["validation users", "\(run["validation_users"] as Int)"], ["test users", "\(run["test_users"] as Int)"],
            ["raw rows", "\(run["raw_rows"] as Int)"], ["created", run["created_at"]],
        ]
        return "<h2>Data</h2>" + table(["", "value"], rows, numeric: [1])
    }

    /// `{"ndcg@100": 0.2834...}` as `ndcg@100 0.2834`; text that is not such an object as it is.
    static func metricsText(_ json: String?) -> String {
        guard let json, let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any] else {
            return json ?? ""
        }
        return object.keys.sorted().map { key in
            (object[key] as? Double).map { "\(key) \(String(format: "%.4f", $0))" } ?? "\(key) \(object[key]!)"
        }.joined(separator: ", ")
    }

    static func modelsSection(_ db: Database) throws -> String {
        var html = "<h2>Models</h2>"
        let models = try Models.recent(20, in: db)
        guard !models.isEmpty else { return html + "<p class=\"empty\">No model trained yet.</p>" }
        html += table(["model", "kind", "status", "epochs", "best epoch", "validation", "seconds", "created"], models.map {
            ["\($0["model_id"] as Int64)", $0["kind"], $0["status"], "\($0["epochs"] as Int)",
             ($0["best_epoch"] as Int?).map(String.init) ?? "", metricsText($0["validation_metrics"]),
             String(format: "%.1f", $0["training_seconds"] as Double), $0["created_at"]]
        }, numeric: [0, 3, 4, 6])
        // Training curves of the newest published model trained by epochs (else the newest
        // such model); the baselines have none.
        guard let chosen = try Models.newestWithCurve(in: db) else { return html }
        let id: Int64 = chosen["model_id"]
        let log = try Models.trainingLog(id, in: db)
        guard !log.isEmpty else { return html }
        func series(_ column: String, _ name: String, _ color: String) -> [SVG.Series] {
            let points = log.compactMap { row -> (x: Double, y: Double)? in
                (row[column] as Double?).map { (Double(row["epoch"] as Int), $0) }
            }
            return points.isEmpty ? [] : [SVG.Series(name: name, points: points, color: color)]
        }
        html += "<p>Training of model \(id) (\(SVG.escape(chosen["kind"]))):</p>"
        html += SVG.lineChart(title: "Training loss", xLabel: "epoch", yLabel: "loss", series: series("loss", "loss", "#1f77b4"))
        html += SVG.lineChart(title: "Validation NDCG@100", xLabel: "epoch", yLabel: "NDCG@100",
                              series: series("validation_ndcg100", "NDCG@100", "#2ca02c"),
                              verticalMarks: (chosen["best_epoch"] as Int?).map { [(Double($0), "best")] } ?? [])
        let kl = series("kl", "KL", "#9467bd"), beta = series("beta", "β", "#ff7f0e")
        if !kl.isEmpty { html += SVG.lineChart(title: "KL divergence", xLabel: "epoch", yLabel: "KL", series: kl) }
        if !beta.isEmpty { html += SVG.lineChart(title: "KL weight β", xLabel: "epoch", yLabel: "β", series: beta) }
        return html
    }

    /// Which model the live lists come from, and why (the champion's figures).
    static func liveSection(_ db: Database) throws -> String {
        var html = "<h2>Live lists</h2>"
        guard let live = try LiveLists.summary(in: db) else { return html + "<p class=\"empty\">Nothing published yet.</p>" }
        html += "<p>Run \(live.run), model \(live.modelID) (\(SVG.escape(live.kind))), published \(SVG.escape(live.publishedAt)).</p>"
        let coverage = try LiveLists.coverage(in: db)
        let listed = coverage.bySource.reduce(0) { $0 + $1.users }
        html += "<p>Coverage: \(listed) of the \(coverage.rawUsers) users in raw_interactions have a list"
            + String(format: " (%.1f%%)", 100 * Double(listed) / Double(max(coverage.rawUsers, 1))) + ", by source:</p>"
        html += table(["source", "users", "share of raw users"], coverage.bySource.map {
            [$0.source, "\($0.users)", String(format: "%.1f%%", 100 * Double($0.users) / Double(max(coverage.rawUsers, 1)))]
        }, numeric: [1, 2])
        html += "<p>Re-ranking: " + SVG.escape(try LiveLists.rerank(in: db) ?? "none") + ".</p>"
        guard let text = try LiveLists.choice(in: db),
              let choice = try? JSONDecoder().decode(Champion.Choice.self, from: Data(text.utf8)) else {
            return html + "<p>The model was named on the command line (<code>score --model</code>).</p>"
        }
        html += "<p>\(SVG.escape(choice.reason)).</p>"
        guard !choice.candidates.isEmpty else { return html }
        html += "<p>Candidates, validation \(SVG.escape(choice.metric)) on the same \(choice.users) users:</p>"
        return html + table(["model", "kind", choice.metric, "live before", "chosen"], choice.candidates.sorted { $0.value > $1.value }.map {
            ["\($0.modelID)", $0.kind, String(format: "%.4f", $0.value), $0.live ? "yes" : "", $0.modelID == choice.chosen ? "yes" : ""]
        }, numeric: [0, 2])
    }

    static func evaluationSection(_ db: Database) throws -> String {
        var html = "<h2>Evaluation</h2>"
        guard let run = try Evaluations.latestRunRow(in: db) else {
            return html + "<p class=\"empty\">No evaluation yet.</p>"
        }
        let runID: Int64 = run["run_id"]
        html += "<p>\(SVG.escape(run["part"])) users: \(run["users"] as Int); head: the \(run["head_items"] as Int) most popular items holding 80% of training interactions. Per-user metrics: mean ± 1.96 standard errors (95% interval).</p>"
        let rows = try Evaluations.figures(run: runID, in: db)
        var metrics: [String] = []
        var byModel: [String: [String: String]] = [:]
        var models: [String] = []
        for row in rows {
            let name = "\(row["metric"] as String)@\(row["k"] as Int)"
            if !metrics.contains(name) { metrics.append(name) }
            let model: String = row["model"]
            if !models.contains(model) { models.append(model) }
            let value: Double = row["value"]
            byModel[model, default: [:]][name] = String(format: "%.4f", value)
                + ((row["stderr"] as Double?).map { String(format: " ± %.3f", 1.96 * $0) } ?? "")
        }
        return html + table(["model"] + metrics, models.map { m in [m] + metrics.map { byModel[m]?[$0] ?? "" } },
                            numeric: Set(1...max(1, metrics.count)))
    }

    /// The generator's training curves, the latest augment run, and the ablation: the VAE
    /// with and without synthetic interactions in the latest evaluation.
    static func augmentationSection(_ db: Database) throws -> String {
        var html = "<h2>Augmentation</h2>"
        guard let run = try Augmentations.latestRunRow(in: db) else {
            return html + "<p class=\"empty\">No augment run yet.</p>"
        }
        let modelID: Int64 = run["model_id"]
        html += "<p>Augment run \(run["run_id"] as Int64) (generator: model \(modelID)): \(run["rows"] as Int) synthetic interactions for \(run["users"] as Int) training users; selection \(SVG.escape(run["parameters"])).</p>"
        let log = try Augmentations.ganLog(modelID, in: db)
        func series(_ column: String, _ name: String, _ color: String) -> SVG.Series {
            SVG.Series(name: name, points: log.compactMap { row in
                (row[column] as Double?).map { (Double(row["epoch"] as Int), $0) }
            }, color: color)
        }
        if !log.isEmpty {
            let best = try Models.bestEpoch(modelID, in: db)
            html += SVG.lineChart(title: "Generator training losses", xLabel: "epoch", yLabel: "loss", series: [
                series("generator_loss", "G (adversarial)", "#1f77b4"), series("discriminator_loss", "D", "#d62728"),
                series("zr_loss", "ZR", "#2ca02c"),
            ])
            let probe = series("validation_ndcg100", "probe NDCG@100", "#2ca02c")
            if !probe.points.isEmpty {
                html += SVG.lineChart(title: "Generator as a recommender (probe users)", xLabel: "epoch", yLabel: "NDCG@100",
                                      series: [probe], verticalMarks: best.map { [(Double($0), "kept")] } ?? [])
            }
            html += SVG.lineChart(title: "Output spread across users (collapse check)", xLabel: "epoch", yLabel: "spread",
                                  series: [series("output_spread", "spread", "#9467bd")])
        }
        guard let evaluation = try Evaluations.latestRunRow(in: db)?["run_id"] as Int64? else { return html }
        for kind in [ModelKind.multvae, .multdae] {
            let plain = kind.rawValue, augmented = kind.rawValue + EvaluateStage.augmentedSuffix
            func perUser(_ model: String, _ metric: String, _ k: Int) throws -> [ExactKey: Double] {
                let rows = try Evaluations.perUser(run: evaluation, model: model, metric: metric, k: k, in: db)
                return Dictionary(rows.map { (ExactKey($0.user), $0.value) }, uniquingKeysWith: { a, _ in a })
            }
            func change(_ metric: String, _ k: Int) throws -> AugmentationAblation.Change? {
                let a = try perUser(plain, metric, k), b = try perUser(augmented, metric, k)
                let users = a.keys.filter { b[$0] != nil }.sorted()
                guard !users.isEmpty else { return nil }
                return AugmentationAblation.change(users.map { a[$0]! }, users.map { b[$0]! })
            }
            guard let ndcg = try change("ndcg", 100), let aplt = try change("aplt", 20) else {
                if kind == .multvae {
                    html += "<p class=\"failed\">Ablation (\(SVG.escape(plain))): not available in evaluation run \(evaluation); it needs a \(SVG.escape(plain)) trained on real data only and one trained with <code>--augmented</code> on the same split.</p>"
                }
                continue
            }
            let ablation = AugmentationAblation(ndcg: ndcg, aplt: aplt)
            html += "<p><b>Ablation, \(SVG.escape(plain)) with and without synthetic interactions</b> (evaluation run \(evaluation), the same users; changes ± 1.96 paired standard errors):</p>"
            html += table(["metric", "without", "with", "change"], [("NDCG@100", ndcg), ("APLT@20", aplt)].map { name, c in
                [name, String(format: "%.4f", c.without), String(format: "%.4f", c.with),
                 String(format: "%+.1f%% ± %.1f%%", 100 * c.relative, 196 * c.relativeStandardError)]
            }, numeric: [1, 2, 3])
            let verdict = ablation.lines(model: plain).last ?? ""
            html += "<p class=\"\(ablation.goalMet ? "" : "failed")\">\(SVG.escape(verdict))</p>"
        }
        return html
    }

    static func popularitySection(_ db: Database) throws -> String {
        var html = "<h2>Popularity and the long tail</h2>"
        let counts = try Split.itemsByPopularity(in: db)
        guard !counts.isEmpty else { return html + "<p class=\"empty\">No items yet.</p>" }
        let values = counts.map { Float($0.interactions) }
        let head = Evaluation.head(counts: values).filter { $0 }.count
        var curve = SVG.Series(name: "training interactions", points: [], color: "#1f77b4")
        let step = max(1, values.count / 400)
        for rank in stride(from: 0, to: values.count, by: step) { curve.points.append((Double(rank + 1), Double(max(values[rank], 1)))) }
        html += SVG.lineChart(title: "Item popularity (items by rank)", xLabel: "popularity rank", yLabel: "interactions",
                              series: [curve], width: 540, logY: true, verticalMarks: [(Double(head), "head | long tail")])
        // Where the live top-20 lists fall on that curve: share of recommendations per bucket
        // of popularity ranks.
        let rank = Dictionary(uniqueKeysWithValues: counts.enumerated().map { (ExactKey($1.item), $0) })
        let recommended = try LiveLists.liveItems(k: 20, in: db)
        if !recommended.isEmpty {
            let buckets = 50
            var share = [Double](repeating: 0, count: buckets)
            var tail = 0
            for item in recommended {
                guard let r = rank[ExactKey(item)] else { continue }
                share[min(buckets - 1, r * buckets / values.count)] += 1
                if r >= head { tail += 1 }
            }
            let total = Double(recommended.count)
            let series = SVG.Series(name: "share of top-20 recommendations", points: share.enumerated().map {
                (Double(($0.offset * values.count) / buckets + 1), $0.element / total)
            }, color: "#d62728")
            html += SVG.lineChart(title: "Live recommendations by item popularity rank", xLabel: "popularity rank",
                                  yLabel: "share", series: [series], width: 540, verticalMarks: [(Double(head), "long tail")])
            html += "<p>\(String(format: "%.1f%%", 100 * Double(tail) / total)) of the live top-20 recommendations are long-tail items (\(values.count - head) of \(values.count) items).</p>"
        }
        return html
    }

    /// The closed loop: each published list set against what its users did next, the
    /// latest first.
    static func closedLoopSection(_ db: Database) throws -> String {
        var html = "<h2>Closed loop: published lists against what users did next</h2>"
        let rows = try Evaluations.closedLoop(runs: 14, in: db)
        guard !rows.isEmpty else {
            return html + "<p class=\"empty\">No closed-loop figures yet: they need lists published by one run and new interactions of their users ingested after them.</p>"
        }
        html += table(["feedback run", "lists of score run", "published", "K", "users", "new interactions", "hit rate@K", "recall@K"], rows.map {
            ["\($0["run_id"] as Int64)", "\($0["score_run_id"] as Int64)", $0["since"], "\($0["k"] as Int)", "\($0["users"] as Int)",
             "\($0["new_interactions"] as Int)", String(format: "%.4f", $0["hit_rate"] as Double), String(format: "%.4f", $0["recall"] as Double)]
        }, numeric: [0, 1, 3, 4, 5, 6, 7])
        return html
    }

    static func historySection(_ db: Database) throws -> String {
        let runs = try StageRuns.recent(50, in: db)
        return "<h2>Run history</h2>" + table(["run", "stage", "status", "started", "seconds", "rows in", "rows out", "error"], runs.map {
            ["\($0["run_id"] as Int64)", $0["stage"], $0["status"], $0["started_at"],
             ($0["seconds"] as Double?).map { String(format: "%.2f", $0) } ?? "",
             ($0["rows_in"] as Int?).map(String.init) ?? "", ($0["rows_out"] as Int?).map(String.init) ?? "",
             ($0["error"] as String?) ?? ""]
        }, numeric: [0, 4, 5, 6])
    }
}

extension Report {
    /// The accuracy / long-tail trade-off of the newest evaluation: NDCG@100 against APLT@20
    /// and against coverage@20, one curve per re-ranking lever, the augmented models as
    /// points, validation and test side by side, the operating point circled.
    static func tradeoffSection(_ db: Database) throws -> String {
        var html = "<h2>Long tail: accuracy against tail exposure</h2>"
        guard let run = try Tradeoffs.latestRun(in: db) else {
            return html + "<p class=\"empty\">No trade-off yet: recpipe evaluate records it.</p>"
        }
        let points = try Tradeoffs.points(run: run, in: db)
        let live = try LiveLists.summary(in: db)?.modelID
        guard let champion = EvaluateStage.tradeoffChampion(points, preferred: live) else {
            return html + "<p class=\"empty\">Evaluation run \(run) has no model with re-ranked points.</p>"
        }
        let isLive = points.contains { $0.model == champion && $0.modelID == live && live != nil }
        html += "<p>Evaluation run \(run), the lists of \(SVG.escape(champion)) (\(isLive ? "the model behind the live lists" : "the best validation NDCG@100"))"
            + " re-ranked from its best \(Reranking.candidateFactor)×K candidates by each lever at each weight λ (the curves start at λ = 0, its own lists);"
            + " the models trained with synthetic interactions as dots. Circled: the operating point, chosen on the validation users"
            + " (the largest APLT@20 whose NDCG@100 is within the allowed loss of λ = 0's), which <code>score --rerank auto</code> applies.</p>"
        let colors = ["xquad": "#1f77b4", "popularity": "#ff7f0e", "augmentation": "#2ca02c"]
        for (label, x) in [("APLT@20", \Tradeoffs.Point.aplt), ("coverage@20", \Tradeoffs.Point.coverage)] {
            for part in ["validation", "test"] {
                let mine = points.filter { $0.part == part && $0.model == champion }
                guard let base = mine.first(where: { $0.lever == "none" }) else { continue }
                var series = ["xquad", "popularity"].map { lever in
                    SVG.Series(name: lever, points: [(base[keyPath: x], base.ndcg)]
                        + mine.filter { $0.lever == lever }.sorted { $0.setting < $1.setting }.map { ($0[keyPath: x], $0.ndcg) },
                               color: colors[lever]!)
                }
                let augmented = points.filter { $0.part == part && $0.lever == "augmentation" }.sorted { $0.setting < $1.setting }
                if !augmented.isEmpty {
                    series.append(SVG.Series(name: "augmentation (weights " + augmented.map { EvaluateStage.format($0.setting) }.joined(separator: ", ") + ")",
                                             points: augmented.map { ($0[keyPath: x], $0.ndcg) }, color: colors["augmentation"]!, dotsOnly: true))
                }
                let chosen = mine.first { $0.chosen }.map { [($0[keyPath: x], $0.ndcg, "chosen: \($0.lever) λ \(EvaluateStage.format($0.setting))")] } ?? []
                html += SVG.lineChart(title: "\(part) users: NDCG@100 against \(label)", xLabel: label, yLabel: "NDCG@100", series: series,
                                      width: 520, circled: chosen)
            }
        }
        let rows = points.filter { $0.part == "validation" && ($0.model == champion || $0.lever == "augmentation") }.map { v -> [String] in
            let t = points.first { $0.part == "test" && $0.model == v.model && $0.lever == v.lever && $0.setting == v.setting }
            func f(_ value: Double?, _ digits: Int) -> String { value.map { String(format: "%.\(digits)f", $0) } ?? "" }
            return [v.model, v.lever, EvaluateStage.format(v.setting), f(v.ndcg, 4), f(v.aplt, 3), f(v.coverage, 3), f(t?.ndcg, 4),
                    f(t?.ndcgChangeSE, 4), f(t?.aplt, 3), f(t?.apltChangeSE, 3), f(t?.coverage, 3), v.chosen ? "yes" : ""]
        }
        html += table(["model", "lever", "λ / weight", "val NDCG@100", "val APLT@20", "val cov@20", "test NDCG@100", "± paired s.e.",
                       "test APLT@20", "± paired s.e.", "test cov@20", "chosen"], rows, numeric: Set(2...10))
        if let sentence = EvaluateStage.tradeoffSentence(points, champion: champion) {
            html += "<p><b>\(SVG.escape(sentence.prefix(1).uppercased() + sentence.dropFirst())).</b></p>"
        }
        return html
    }
}
