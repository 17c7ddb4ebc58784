import Foundation

/// The same model trained with and without synthetic interactions, compared on the same
/// held-out users: the relative change of NDCG@100 and APLT@20, with the standard error of
/// the paired per-user differences (relative to the value without).
public struct AugmentationAblation: Sendable, Equatable {
    public struct Change: Sendable, Equatable {
        public var without: Double
        public var with: Double
        /// (with − without) / without.
        public var relative: Double
        /// Standard error of the mean per-user difference, over `without`.
        public var relativeStandardError: Double
    }

    /// What the augmentation is for: APLT@20 up by at least 20% (relative) while NDCG@100
    /// falls by at most 1%.
    public static let apltGoal = 0.20
    public static let ndcgTolerance = 0.01

    public var ndcg: Change
    public var aplt: Change
    public var goalMet: Bool { aplt.relative >= Self.apltGoal && ndcg.relative >= -Self.ndcgTolerance }

    public init(ndcg: Change, aplt: Change) {
        self.ndcg = ndcg
        self.aplt = aplt
    }

    /// From the two models' metrics on the same users (as `Evaluation.evaluate` gives them).
    public init(without: [Evaluation.Metric], with: [Evaluation.Metric]) {
        func change(_ name: String, _ k: Int) -> Change {
            let a = without.first { $0.name == name && $0.k == k }, b = with.first { $0.name == name && $0.k == k }
            return Self.change(a?.perUser ?? [], b?.perUser ?? [])
        }
        ndcg = change("ndcg", 100)
        aplt = change("aplt", 20)
    }

    /// The paired change between per-user values of the same users.
    public static func change(_ without: [Double], _ with: [Double]) -> Change {
        precondition(without.count == with.count, "paired values of the same users")
        let n = Double(max(without.count, 1))
        let a = without.reduce(0, +) / n, b = with.reduce(0, +) / n
        let differences = zip(with, without).map { $0 - $1 }
        let mean = b - a
        let base = a != 0 ? abs(a) : .nan
        return Change(without: a, with: b, relative: a != 0 ? mean / abs(a) : (mean == 0 ? 0 : .infinity),
                      relativeStandardError: Evaluation.standardError(differences) / base)
    }

    /// Lines for a person: the two changes with ±1.96 standard errors, and the verdict.
    public func lines(model: String) -> [String] {
        func describe(_ name: String, _ c: Change) -> String {
            String(format: "%@ %.4f → %.4f (%+.1f%% ± %.1f%%)", name, c.without, c.with, 100 * c.relative,
                   196 * c.relativeStandardError)
        }
        return ["augmentation ablation (\(model) with vs without synthetic interactions, same users): "
                + describe("NDCG@100", ndcg) + ", " + describe("APLT@20", aplt),
                String(format: "augmentation goal (APLT@20 ≥ +%.0f%%, NDCG@100 ≥ −%.0f%%): %@", 100 * Self.apltGoal,
                       100 * Self.ndcgTolerance, goalMet ? "met" : "NOT met")]
    }
}
