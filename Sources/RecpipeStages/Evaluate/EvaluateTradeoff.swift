import Foundation
import RecpipeModels
import RecpipeStore

extension EvaluateStage {
    /// A model's points on one part.
    typealias Curve = (name: String, id: Int64?, part: Part, points: [Tradeoff.Point])

    /// The rows of `tradeoff_points`: each point with its paired standard errors against its
    /// base (the model's own lists; for an augmented model, the model of its kind trained on
    /// real data only), and each model's operating point, chosen on the validation users,
    /// marked on both parts.
    static func tradeoffPoints(_ curves: [Curve], maxNDCGLoss: Double) -> [Tradeoffs.Point] {
        var chosen: [String: (lever: Tradeoff.Lever, setting: Double)] = [:]
        for curve in curves where curve.part == .validation {
            if let i = Tradeoff.choose(curve.points, maxNDCGLoss: maxNDCGLoss) {
                chosen[curve.name] = (curve.points[i].lever, curve.points[i].setting)
            }
        }
        var rows: [Tradeoffs.Point] = []
        for curve in curves {
            let baseName = curve.name.hasSuffix(augmentedSuffix) ? String(curve.name.dropLast(augmentedSuffix.count)) : curve.name
            let base = curves.first { $0.name == baseName && $0.part == curve.part }?.points.first { $0.lever == .none }
            for p in curve.points {
                let paired = base.flatMap { b -> (Double, Double)? in
                    guard b.users == p.users, !(p.lever == .none && baseName == curve.name) else { return nil }
                    return (Evaluation.pairedStandardError(p.ndcg, b.ndcg), Evaluation.pairedStandardError(p.aplt, b.aplt))
                }
                let isChosen = chosen[curve.name].map { $0.lever == p.lever && $0.setting == p.setting } ?? false
                rows.append(Tradeoffs.Point(
                    model: curve.name, modelID: curve.id, lever: p.lever.rawValue, setting: p.setting, part: curve.part.rawValue,
                    ndcg: p.ndcgMean, ndcgSE: Evaluation.standardError(p.ndcg), aplt: p.apltMean,
                    apltSE: Evaluation.standardError(p.aplt), coverage: p.coverage, novelty: p.novelty, users: p.users,
                    ndcgChangeSE: paired?.0, apltChangeSE: paired?.1, chosen: isChosen))
            }
        }
        return rows
    }

    /// The model whose curve the table and the report show: the one whose own lists have
    /// the best validation NDCG@100 (test, without validation users), of those with
    /// re-ranked points, unless `preferred` (the model behind the live lists) has points.
    static func tradeoffChampion(_ points: [Tradeoffs.Point], preferred: Int64? = nil) -> String? {
        let bases = points.filter { $0.lever == Tradeoff.Lever.none.rawValue }
        if let preferred, let live = bases.first(where: { $0.modelID == preferred }) { return live.model }
        let part = bases.contains { $0.part == Part.validation.rawValue } ? Part.validation.rawValue : Part.test.rawValue
        return bases.filter { $0.part == part }.max { $0.ndcg != $1.ndcg ? $0.ndcg < $1.ndcg : $0.model > $1.model }?.model
    }

    /// What the trade-off says in one sentence, on the test users: the re-ranking at the
    /// champion's chosen point and the augmentation at its best-APLT weight, each against its
    /// base with paired standard errors, which gives the larger APLT@20 gain, and whether the
    /// augmentation goal is met.
    static func tradeoffSentence(_ points: [Tradeoffs.Point], champion: String) -> String? {
        let test = points.filter { $0.part == Part.test.rawValue }
        guard let base = test.first(where: { $0.model == champion && $0.lever == "none" }),
              let chosen = test.first(where: { $0.model == champion && $0.chosen }) else { return nil }
        func change(_ p: Tradeoffs.Point, _ b: Tradeoffs.Point) -> String {
            let ndcg = b.ndcg > 0 ? (p.ndcg - b.ndcg) / b.ndcg : 0
            let ndcgSE = b.ndcg > 0 ? (p.ndcgChangeSE ?? 0) / b.ndcg : 0
            return String(format: "APLT@20 %.3f → %.3f (%+.3f ± %.3f), NDCG@100 %.4f → %.4f (%+.1f%% ± %.1f%%)", b.aplt, p.aplt,
                          p.aplt - b.aplt, p.apltChangeSE ?? 0, b.ndcg, p.ndcg, 100 * ndcg, 100 * ndcgSE)
        }
        var text = chosen.lever == "none"
            ? "trade-off on the test users (\(champion)): no re-ranking chosen (none kept NDCG@100 within the loss allowed on the validation users)"
            : "trade-off on the test users (\(champion)): re-ranking at the chosen point (\(chosen.lever) λ \(format(chosen.setting)), chosen on the validation users) "
                + change(chosen, base)
        let augmented = test.filter { $0.lever == Tradeoff.Lever.augmentation.rawValue }
        if let best = augmented.max(by: { $0.aplt < $1.aplt }),
           let plain = test.first(where: { $0.model == String(best.model.dropLast(augmentedSuffix.count)) && $0.lever == "none" }) {
            let rerankGain = chosen.aplt - base.aplt, augmentGain = best.aplt - plain.aplt
            let ndcgChange = plain.ndcg > 0 ? (best.ndcg - plain.ndcg) / plain.ndcg : 0
            let apltChange = plain.aplt > 0 ? (best.aplt - plain.aplt) / plain.aplt : (best.aplt > 0 ? Double.infinity : 0)
            let goal = apltChange >= AugmentationAblation.apltGoal && ndcgChange >= -AugmentationAblation.ndcgTolerance
            text += "; the augmentation (\(best.model), weight \(format(best.setting))) against \(plain.model): " + change(best, plain)
                + "; " + verdict(rerankGain, chosen.apltChangeSE ?? 0, augmentGain, best.apltChangeSE ?? 0)
                + String(format: "; the augmentation goal (APLT@20 ≥ +%.0f%%, NDCG@100 ≥ −%.0f%%) is %@", 100 * AugmentationAblation.apltGoal,
                         100 * AugmentationAblation.ndcgTolerance, goal ? "met" : "not met")
        } else {
            text += "; no augmented model on this split to compare with"
        }
        return text
    }

    /// Which lever gains more APLT@20, said only where the gains differ by more than their
    /// combined standard error (the two are measured against different bases, so their
    /// per-user differences are not paired with each other).
    static func verdict(_ rerank: Double, _ rerankSE: Double, _ augment: Double, _ augmentSE: Double) -> String {
        let se = (rerankSE * rerankSE + augmentSE * augmentSE).squareRoot()
        guard abs(rerank - augment) > se else {
            return String(format: "neither lever gives a clearly larger APLT@20 gain (%+.3f against %+.3f, within their combined standard error %.3f)",
                          rerank, augment, se)
        }
        return (rerank > augment ? "re-ranking" : "the augmentation") + String(format: " gives the larger APLT@20 gain (%+.3f against %+.3f, ± %.3f)",
                                                                           max(rerank, augment), min(rerank, augment), se)
    }

    /// The table `evaluate` prints: the champion's points on both parts, side by side.
    static func tradeoffLines(_ points: [Tradeoffs.Point], maxNDCGLoss: Double) -> [String] {
        guard let champion = tradeoffChampion(points) else { return [] }
        let mine = points.filter { $0.model == champion || $0.lever == Tradeoff.Lever.augmentation.rawValue }
        var lines = [String(format: "trade-off of %@ (operating point: the largest validation APLT@20 with NDCG@100 at least %.0f%% of the base's)",
                            champion, 100 * (1 - maxNDCGLoss)),
                     "model".padding(toLength: 20, withPad: " ", startingAt: 0) + "lever".padding(toLength: 14, withPad: " ", startingAt: 0)
                        + ["λ", "val NDCG@100", "val APLT@20", "test NDCG@100", "test APLT@20", "test cov@20"].map { $0.leftPadded(to: 14) }.joined()]
        var seen = Set<String>()
        for p in mine where !seen.contains("\(p.model) \(p.lever) \(p.setting)") {
            seen.insert("\(p.model) \(p.lever) \(p.setting)")
            func figure(_ part: Part, _ value: (Tradeoffs.Point) -> Double, _ digits: Int) -> String {
                mine.first { $0.model == p.model && $0.lever == p.lever && $0.setting == p.setting && $0.part == part.rawValue }
                    .map { String(format: "%.\(digits)f", value($0)) } ?? "-"
            }
            let mark = points.contains { $0.model == p.model && $0.lever == p.lever && $0.setting == p.setting && $0.chosen } ? " *" : ""
            lines.append(p.model.padding(toLength: 20, withPad: " ", startingAt: 0) + p.lever.padding(toLength: 14, withPad: " ", startingAt: 0)
                         + [format(p.setting), figure(.validation, \.ndcg, 4), figure(.validation, \.aplt, 3), figure(.test, \.ndcg, 4),
                            figure(.test, \.aplt, 3), figure(.test, \.coverage, 3)].map { $0.leftPadded(to: 14) }.joined() + mark)
        }
        if let sentence = tradeoffSentence(points, champion: champion) { lines.append(sentence) }
        return lines
    }

    static func format(_ value: Double) -> String { String(format: "%g", value) }
}
