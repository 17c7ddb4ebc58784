import Foundation
import RecpipeNumerics

/// Implicit ALS (Hu, Koren, Volinsky 2008) with the conjugate-gradient update of Takács et
/// al. 2011 (as the `implicit` library does): confidence c_ui = 1 + α for observed pairs,
/// 1 otherwise; user and item factors alternate, each row solved approximately by a few CG
/// steps from its previous value. Held-out users are folded in by an exact solve against
/// the item factors. A score is the dot product of user and item factors.
public struct IALS: Recommender {
    public struct Config: Codable, Sendable, Equatable {
        public var factors = 64
        public var regularization: Float = 0.1
        public var alpha: Float = 10
        public var iterations = 15
        public var cgSteps = 3
        public var seed: UInt64 = 42
        public init() {}
    }

    public let config: Config
    public let items: Int
    /// Item factors, items × factors.
    public let itemFactors: [Float]

    /// Fits on the rows of `train`. A warm start gives `initialItems`: a factor row per item
    /// (nil for an item to start afresh, as every item does without it), e.g. the previous
    /// night's model's rows for the items it knew; each iteration solves the users against
    /// the item factors first, so a few iterations refine what the previous model learnt.
    public static func fit(train: CSRMatrix, config: Config, initialItems: [[Float]?]? = nil) -> IALS {
        let f = config.factors
        var rng = SeededRandom(seed: config.seed)
        var users = (0..<(train.rows * f)).map { _ in Float(rng.normal()) * 0.01 }
        var items = (0..<(train.cols * f)).map { _ in Float(rng.normal()) * 0.01 }
        let byItem = transpose(train)
        if let initialItems {
            precondition(initialItems.count == train.cols, "one initial row (or nil) per item")
            for (i, row) in initialItems.enumerated() {
                guard let row else { continue }
                precondition(row.count == f, "initial item factors of \(row.count), the configuration has \(f)")
                for a in 0..<f { items[i * f + a] = row[a] }
            }
        }
        for _ in 0..<config.iterations {
            solveCG(&users, fixed: items, ratings: train, config: config)
            solveCG(&items, fixed: users, ratings: byItem, config: config)
        }
        return IALS(config: config, items: train.cols, itemFactors: items)
    }

    /// Gram matrix of the fixed factors plus the regularization: YᵀY + λI (f × f).
    static func gram(_ y: [Float], rows: Int, factors f: Int, regularization: Float) -> [Float] {
        var g = [Float](repeating: 0, count: f * f)
        y.withUnsafeBufferPointer { y in
            g.withUnsafeMutableBufferPointer { g in
                BLAS.gemm(m: f, n: f, k: rows, y.baseAddress!, transposeA: true, y.baseAddress!, g.baseAddress!)
            }
        }
        for k in 0..<f { g[k * f + k] += regularization }
        return g
    }

    /// One pass of CG updates over the rows of `x` (users or items) against `fixed`.
    static func solveCG(_ x: inout [Float], fixed y: [Float], ratings: CSRMatrix, config: Config) {
        let f = config.factors
        let yty = gram(y, rows: ratings.cols, factors: f, regularization: config.regularization)
        let c1 = config.alpha  // c − 1 for an observed pair
        x.withUnsafeMutableBufferPointer { xs in
            let xs = xs.baseAddress!
            y.withUnsafeBufferPointer { ys in
                let ys = ys.baseAddress!
                parallelRows(ratings.rows) { u in
                    let xu = xs + u * f
                    var r = [Float](repeating: 0, count: f), p = [Float](repeating: 0, count: f), ap = [Float](repeating: 0, count: f)
                    // r = Yᵀ C p − (YᵀY + λI) x − Σ (c − 1)(yᵢ·x) yᵢ
                    for a in 0..<f {
                        var s: Float = 0
                        for b in 0..<f { s += yty[a * f + b] * xu[b] }
                        r[a] = -s
                    }
                    for k in ratings.rowStart[u]..<ratings.rowStart[u + 1] {
                        let yi = ys + Int(ratings.columns[k]) * f
                        var dot: Float = 0
                        for a in 0..<f { dot += yi[a] * xu[a] }
                        let w = (1 + c1) - c1 * dot
                        for a in 0..<f { r[a] += w * yi[a] }
                    }
                    for a in 0..<f { p[a] = r[a] }
                    var rsOld: Float = 0
                    for a in 0..<f { rsOld += r[a] * r[a] }
                    for _ in 0..<config.cgSteps {
                        if rsOld < 1e-20 { break }
                        for a in 0..<f {
                            var s: Float = 0
                            for b in 0..<f { s += yty[a * f + b] * p[b] }
                            ap[a] = s
                        }
                        for k in ratings.rowStart[u]..<ratings.rowStart[u + 1] {
                            let yi = ys + Int(ratings.columns[k]) * f
                            var dot: Float = 0
                            for a in 0..<f { dot += yi[a] * p[a] }
                            for a in 0..<f { ap[a] += c1 * dot * yi[a] }
                        }
                        var pap: Float = 0
                        for a in 0..<f { pap += p[a] * ap[a] }
                        let step = rsOld / pap
                        var rsNew: Float = 0
                        for a in 0..<f {
                            xu[a] += step * p[a]
                            r[a] -= step * ap[a]
                            rsNew += r[a] * r[a]
                        }
                        for a in 0..<f { p[a] = r[a] + (rsNew / rsOld) * p[a] }
                        rsOld = rsNew
                    }
                }
            }
        }
    }

    /// Users' factors from their items with the item factors fixed, solved exactly:
    /// (YᵀY + λI + α Σ yᵢyᵢᵀ) x = (1 + α) Σ yᵢ, by Cholesky.
    public func userFactors(_ foldIn: CSRMatrix) -> [Float] {
        let f = config.factors
        let yty = IALS.gram(itemFactors, rows: items, factors: f, regularization: config.regularization)
        var out = [Float](repeating: 0, count: foldIn.rows * f)
        for u in 0..<foldIn.rows {
            var a = yty, b = [Float](repeating: 0, count: f)
            for k in foldIn.rowStart[u]..<foldIn.rowStart[u + 1] {
                let i = Int(foldIn.columns[k]) * f
                for p in 0..<f {
                    b[p] += (1 + config.alpha) * itemFactors[i + p]
                    for q in 0..<f { a[p * f + q] += config.alpha * itemFactors[i + p] * itemFactors[i + q] }
                }
            }
            let solved = BLAS.solvePositiveDefinite(&a, &b, n: f)
            for p in 0..<f { out[u * f + p] = solved ? b[p] : 0 }
        }
        return out
    }

    public func scores(_ foldIn: CSRMatrix, batchSize: Int = 500, body: (Int, UnsafeMutableBufferPointer<Float>) -> Void) {
        let f = config.factors
        let users = userFactors(foldIn)
        var buffer = [Float](repeating: 0, count: batchSize * items)
        for start in stride(from: 0, to: foldIn.rows, by: batchSize) {
            let count = min(batchSize, foldIn.rows - start)
            users.withUnsafeBufferPointer { u in
                itemFactors.withUnsafeBufferPointer { v in
                    buffer.withUnsafeMutableBufferPointer { out in
                        BLAS.gemm(m: count, n: items, k: f, u.baseAddress! + start * f, v.baseAddress!, transposeB: true, out.baseAddress!)
                    }
                }
            }
            buffer.withUnsafeMutableBufferPointer { all in
                for k in 0..<count { body(start + k, UnsafeMutableBufferPointer(rebasing: all[(k * items)..<((k + 1) * items)])) }
            }
        }
    }

    /// The settings tried when none are given.
    public static let defaultFactors = [32, 64, 128]
    public static let defaultRegularizations: [Float] = [0.01, 0.1, 1]
    public static let defaultAlphas: [Float] = [1, 10]

    /// The grid of settings: every combination of the given values, the rest of `base` kept.
    public static func grid(base: Config = Config(), factors: [Int] = defaultFactors,
                            regularizations: [Float] = defaultRegularizations, alphas: [Float] = defaultAlphas) -> [Config] {
        factors.flatMap { f in
            regularizations.flatMap { reg in
                alphas.map { alpha in
                    var config = base
                    config.factors = f
                    config.regularization = reg
                    config.alpha = alpha
                    return config
                }
            }
        }
    }

    /// Factors, regularization and α with the best mean NDCG@100 on `validation`.
    public static func tuned(train: CSRMatrix, validation: ValidationSet, factors: [Int] = defaultFactors,
                             regularizations: [Float] = defaultRegularizations, alphas: [Float] = defaultAlphas,
                             trial: (Config, Double) -> Void = { _, _ in }) -> (IALS, Double) {
        let best = Tuning.best(grid(factors: factors, regularizations: regularizations, alphas: alphas),
                               validation: validation, fit: { fit(train: train, config: $0) }, trial: trial)
        return (best.model, best.ndcg ?? 0)
    }
}

/// The transpose of a sparse matrix (columns become rows).
func transpose(_ x: CSRMatrix) -> CSRMatrix {
    var rows = [[Int32]](repeating: [], count: x.cols)
    var values = [[Float]](repeating: [], count: x.cols)
    for r in 0..<x.rows {
        for k in x.rowStart[r]..<x.rowStart[r + 1] {
            rows[Int(x.columns[k])].append(Int32(r))
            values[Int(x.columns[k])].append(x.values[k])
        }
    }
    var out = CSRMatrix(cols: x.rows, rowsOfColumns: rows)
    out.values = values.flatMap { $0 }
    return out
}
