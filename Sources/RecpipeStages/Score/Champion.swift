import Foundation
import RecpipeModels

/// Which model the live lists come from when `score` is not told: the champion among the
/// published models trained on the current split, judged on the validation users.
///
/// Validation sets are small (60 users give NDCG@100 a standard error near 0.02), so raw
/// means alone would let noise swap the model behind the lists night after night. The rules:
/// - The incumbent (the model behind the live lists, or the model of its kind that the
///   quality gate published after it) stays unless a challenger beats it by more than one
///   paired standard error of the per-user differences.
/// - An incumbent not trained on the current split (nothing of its kind was retrained) is
///   displaced by the best candidate whenever that one reaches (1 − margin) × its figure,
///   measured now on the same users: new data is worth a small loss, not a large one.
/// - With nothing live, the best candidate wins, except that a cheaper model within one paired
///   standard error of it is preferred (cost order: `costOrder`).
public enum Champion {
    /// From cheapest to dearest to train and score.
    public static let costOrder: [ModelKind] = [.popularity, .itemknn, .ease, .edlae, .ials, .multdae, .multvae]

    /// A model and its figure for each validation user (the same users, in the same order,
    /// for every contender).
    public struct Contender: Sendable, Equatable {
        public var modelID: Int64
        public var kind: ModelKind
        public var perUser: [Double]
        public init(modelID: Int64, kind: ModelKind, perUser: [Double]) {
            self.modelID = modelID
            self.kind = kind
            self.perUser = perUser
        }
        public var mean: Double { perUser.isEmpty ? 0 : perUser.reduce(0, +) / Double(perUser.count) }
    }

    /// What was chosen and why, as `score_runs.choice` records it (JSON).
    public struct Choice: Sendable, Equatable, Codable {
        public struct Entry: Sendable, Equatable, Codable {
            public var modelID: Int64
            public var kind: String
            public var value: Double
            /// The model behind the live lists when scoring began.
            public var live: Bool
            enum CodingKeys: String, CodingKey { case modelID = "model_id", kind, value, live }
        }
        public var metric: String
        public var users: Int
        public var chosen: Int64
        public var reason: String
        public var candidates: [Entry]
    }


    static func cost(_ kind: ModelKind) -> Int { costOrder.firstIndex(of: kind) ?? costOrder.count }

    /// Chooses among `candidates` (the published models on the current split) against the
    /// `incumbent` (nil when nothing is live). `incumbentOnSplit`: the incumbent is one of
    /// the candidates. `margin`: the gate for an incumbent from another split (nil: none).
    public static func decide(candidates: [Contender], incumbent: Contender?, incumbentOnSplit: Bool, margin: Double?,
                              metric: String, liveModel: Int64?) -> Choice {
        precondition(!candidates.isEmpty || incumbent != nil, "something to choose from")
        var entries = candidates.map {
            Choice.Entry(modelID: $0.modelID, kind: $0.kind.rawValue, value: $0.mean, live: $0.modelID == liveModel)
        }
        if let incumbent, !incumbentOnSplit {
            entries.append(Choice.Entry(modelID: incumbent.modelID, kind: incumbent.kind.rawValue, value: incumbent.mean,
                                        live: incumbent.modelID == liveModel))
        }
        let users = (candidates.first ?? incumbent)!.perUser.count
        func choice(_ chosen: Contender, _ reason: String) -> Choice {
            Choice(metric: metric, users: users, chosen: chosen.modelID, reason: reason, candidates: entries)
        }
        func name(_ c: Contender) -> String { "model \(c.modelID) (\(c.kind.rawValue))" }
        func figure(_ x: Double) -> String { String(format: "%.4f", x) }
        // Best first: by mean, then cheaper, then newer.
        let ranked = candidates.sorted {
            ($0.mean, -cost($0.kind), $0.modelID) > ($1.mean, -cost($1.kind), $1.modelID)
        }
        guard let best = ranked.first else {
            return choice(incumbent!, "no published model was trained on the current split; the live \(name(incumbent!)) stays")
        }
        guard let incumbent else {
            let cheaper = ranked.filter { cost($0.kind) < cost(best.kind) && best.mean - $0.mean <= Evaluation.pairedStandardError(best.perUser, $0.perUser) }
                .min { (cost($0.kind), -$0.mean) < (cost($1.kind), -$1.mean) }
            if let cheaper {
                let se = Evaluation.pairedStandardError(best.perUser, cheaper.perUser)
                return choice(cheaper, "nothing live yet: \(name(cheaper)) \(figure(cheaper.mean)) is within one paired standard error (\(figure(se))) of the best, \(name(best)) \(figure(best.mean)), and cheaper")
            }
            return choice(best, "nothing live yet: \(name(best)) has the best validation \(metric), \(figure(best.mean))")
        }
        if incumbentOnSplit {
            if best.modelID == incumbent.modelID {
                return choice(incumbent, "the live \(name(incumbent)) has the best validation \(metric), \(figure(incumbent.mean))")
            }
            let se = Evaluation.pairedStandardError(best.perUser, incumbent.perUser)
            if best.mean - incumbent.mean > se {
                return choice(best, "\(name(best)) \(figure(best.mean)) beats the live \(name(incumbent)) \(figure(incumbent.mean)) by more than one paired standard error (\(figure(se)))")
            }
            return choice(incumbent, "\(name(best)) \(figure(best.mean)) does not beat the live \(name(incumbent)) \(figure(incumbent.mean)) by more than one paired standard error (\(figure(se))); it stays")
        }
        guard let margin else {
            return choice(best, "\(name(best)) has the best validation \(metric) on the current split, \(figure(best.mean)); the live \(name(incumbent)) was trained on another split")
        }
        let floor = (1 - margin) * incumbent.mean
        if best.mean >= floor {
            return choice(best, "\(name(best)) \(figure(best.mean)) on the current split reaches (1 − \(margin)) × the live \(name(incumbent))'s \(figure(incumbent.mean)), trained on another split")
        }
        return choice(incumbent, "\(name(best)) \(figure(best.mean)) is below (1 − \(margin)) × the live \(name(incumbent))'s \(figure(incumbent.mean)); the live model stays")
    }
}
