import Foundation
import RecpipeTestSupport
import Testing
@testable import RecpipeNumerics

/// Random values in [−1, 1).
private func random(_ n: Int, _ rng: inout SeededRandom) -> [Float] { (0..<n).map { _ in 2 * rng.uniformFloat() - 1 } }

/// The largest difference between `a` and `b`, each relative to 1 + |b|: products of values
/// in [−1, 1) summed over k terms round differently by blocking and kernel (AVX2, AVX-512),
/// by a few ulps of the sum, never more than 1e-4 of it here.
private func worst(_ a: [Float], _ b: [Float]) -> Float {
    zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1) / (1 + abs($1.1))) }
}

@Suite(.tags(.small)) struct BLASTests {
    struct Shape: Sendable, CustomStringConvertible {
        var m, n, k: Int
        var pad = 0  // extra stored columns: a product of a sub-block
        var description: String { "\(m)×\(n)×\(k)+\(pad)" }
    }

    @Test(arguments: [Shape(m: 1, n: 1, k: 1), Shape(m: 3, n: 5, k: 7), Shape(m: 17, n: 1, k: 33), Shape(m: 4, n: 6, k: 0),
                      Shape(m: 0, n: 3, k: 2), Shape(m: 9, n: 11, k: 13, pad: 3), Shape(m: 257, n: 129, k: 65)])
    func gemmMatchesItsReference(shape: Shape) {
        var rng = SeededRandom(seed: UInt64(shape.m * 1000 + shape.n * 10 + shape.k))
        for transposeA in [false, true] {
            for transposeB in [false, true] {
                for (alpha, beta): (Float, Float) in [(1, 0), (0.5, 1), (-2, 0.25)] {
                    let (m, n, k, pad) = (shape.m, shape.n, shape.k, shape.pad)
                    let lda = max(1, transposeA ? m : k) + pad, ldb = max(1, transposeB ? k : n) + pad, ldc = max(1, n) + pad
                    let a = random(max(1, (transposeA ? k : m) * lda), &rng), b = random(max(1, (transposeB ? n : k) * ldb), &rng)
                    let c0 = random(max(1, m * ldc), &rng)
                    var fast = c0, naive = c0
                    fast.withUnsafeMutableBufferPointer { c in
                        BLAS.gemm(m: m, n: n, k: k, alpha: alpha, a, lda: lda, transposeA: transposeA, b, ldb: ldb,
                                  transposeB: transposeB, beta: beta, c.baseAddress!, ldc: ldc)
                    }
                    naive.withUnsafeMutableBufferPointer { c in
                        BLAS.gemmNaive(m: m, n: n, k: k, alpha: alpha, a, lda: lda, transposeA: transposeA, b, ldb: ldb,
                                       transposeB: transposeB, beta: beta, c.baseAddress!, ldc: ldc)
                    }
                    #expect(worst(fast, naive) < 1e-4, "\(shape) A\(transposeA ? "ᵀ" : "") B\(transposeB ? "ᵀ" : "") α \(alpha) β \(beta)")
                    // The padding between rows is never written.
                    for r in 0..<m where pad > 0 && n > 0 {
                        #expect(fast[(r * ldc + n)..<(r * ldc + ldc)] == c0[(r * ldc + n)..<(r * ldc + ldc)])
                    }
                    if m > 0 && n > 0 && k > 0 && alpha == 1 && beta == 0 {
                        #expect(naive != c0, "the reference wrote its output")
                    }
                }
            }
        }
    }

    /// The Matrix form is the same product, shapes checked.
    @Test func matrixGemmIsThePointerGemm() {
        var rng = SeededRandom(seed: 5)
        let a = Matrix(rows: 6, cols: 4, data: random(24, &rng)), b = Matrix(rows: 5, cols: 4, data: random(20, &rng))
        var c = Matrix(rows: 6, cols: 5)
        BLAS.gemm(&c, a, b, transposeB: true)
        var naive = [Float](repeating: 0, count: 30)
        BLAS.gemmNaive(m: 6, n: 5, k: 4, a.data, b.data, transposeB: true, &naive)
        #expect(worst(c.data, naive) < 1e-5)
    }

    @Test func gemvAndAxpyMatchTheirReferences() {
        var rng = SeededRandom(seed: 6)
        for (rows, cols) in [(1, 1), (7, 3), (64, 129)] {
            let a = random(rows * cols, &rng)
            for transpose in [false, true] {
                let x = random(transpose ? rows : cols, &rng), y0 = random(transpose ? cols : rows, &rng)
                var fast = y0, naive = y0
                BLAS.gemv(rows: rows, cols: cols, alpha: 0.5, a, transpose: transpose, x, beta: 2, &fast)
                BLAS.gemvNaive(rows: rows, cols: cols, alpha: 0.5, a, transpose: transpose, x, beta: 2, &naive)
                #expect(worst(fast, naive) < 1e-5, "\(rows)×\(cols) transpose \(transpose)")
            }
            var fast = random(rows, &rng)
            var naive = fast
            let x = random(rows, &rng)
            BLAS.axpy(rows, -1.5, x, &fast)
            BLAS.axpyNaive(rows, -1.5, x, &naive)
            #expect(worst(fast, naive) < 1e-6)
        }
    }

    /// MᵀM + n·I: symmetric positive definite, well conditioned.
    private func positiveDefinite(_ n: Int, _ rng: inout SeededRandom) -> [Float] {
        let m = random(n * n, &rng)
        var a = [Float](repeating: 0, count: n * n)
        BLAS.gemmNaive(m: n, n: n, k: n, m, transposeA: true, m, &a)
        for i in 0..<n { a[i * n + i] += Float(n) }
        return a
    }

    @Test(arguments: [1, 2, 7, 64])
    func inverseAndSolveMatchTheirReferences(n: Int) {
        var rng = SeededRandom(seed: UInt64(n))
        let a = positiveDefinite(n, &rng), b = random(n, &rng)
        var fast = a, naive = a
        #expect(BLAS.invertPositiveDefinite(&fast, n: n))
        #expect(BLAS.invertPositiveDefiniteNaive(&naive, n: n))
        #expect(worst(fast, naive) < 1e-5)
        // A · A⁻¹ = I.
        var identity = [Float](repeating: 0, count: n * n)
        BLAS.gemmNaive(m: n, n: n, k: n, a, fast, &identity)
        #expect(worst(identity, (0..<(n * n)).map { $0 / n == $0 % n ? 1 : 0 }) < 1e-4)
        var fastA = a, naiveA = a, fastB = b, naiveB = b
        #expect(BLAS.solvePositiveDefinite(&fastA, &fastB, n: n))
        #expect(BLAS.solvePositiveDefiniteNaive(&naiveA, &naiveB, n: n))
        #expect(worst(fastB, naiveB) < 1e-5)
    }

    /// A matrix that is not positive definite is refused by both.
    @Test func indefiniteMatricesAreRefused() {
        var a: [Float] = [1, 2, 2, 1]  // eigenvalues 3 and −1
        var naive = a, b: [Float] = [1, 1], a2 = a
        #expect(!BLAS.invertPositiveDefinite(&a, n: 2))
        #expect(!BLAS.invertPositiveDefiniteNaive(&naive, n: 2))
        #expect(!BLAS.solvePositiveDefinite(&a2, &b, n: 2))
    }
}
