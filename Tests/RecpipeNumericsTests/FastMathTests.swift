import Foundation
import RecpipeTestSupport
import CKernels
import Testing
@testable import RecpipeNumerics

@Suite(.tags(.small)) struct FastMathTests {
    /// The vectorized sigmoid against the library's exp, over the whole float range it can
    /// meet, on a buffer large enough to be split across cores, in place and out of place.
    @Test func sigmoidMatchesTheLibrary() {
        let n = 300_007
        let x = (0..<n).map { Float($0) / Float(n) * 200 - 100 }
        var y = [Float](repeating: .nan, count: n)
        sigmoidForward(&y, x, count: n)
        var inPlace = x
        inPlace.withUnsafeMutableBufferPointer { sigmoidForward($0.baseAddress!, $0.baseAddress!, count: n) }
        var reference = [Float](repeating: .nan, count: n)
        sigmoidForwardNaive(&reference, x, count: n)
        var worst: Float = 0
        for k in 0..<n {
            let expected = reference[k]
            worst = max(worst, abs(y[k] - expected) / max(expected, 1e-30))
            #expect(y[k] == inPlace[k])
        }
        #expect(worst < 1e-6, "worst relative error \(worst)")
        #expect(y[0] >= 0 && y[0] < 1e-37 && y[n - 1] == 1)
    }

    @Test(arguments: [1, 15, 16, 17, 100])
    func shiftedExpAndMaximumHandleTails(n: Int) {
        let x = (0..<n).map { Float($0) * 0.1 - 3 }
        var y = [Float](repeating: 0, count: n)
        let top = maximum(x, count: n)
        #expect(top == maximumNaive(x, count: n) && top == x.max()!)
        let sum = shiftedExp(&y, x, shift: top, count: n)
        var reference = [Float](repeating: 0, count: n)
        let expected = shiftedExpNaive(&reference, x, shift: top, count: n)
        for k in 0..<n { #expect(abs(y[k] - reference[k]) < 1e-6) }
        #expect(abs(sum - expected) / expected < 1e-5)
    }

    /// Every kernel variant this CPU can run (AVX-512, AVX2, plain x86-64) against the Swift
    /// reference. Adam's elementwise arithmetic is IEEE-rounded in the same order in every
    /// variant (no fused multiply-adds), so its values are compared exactly; exp is compared
    /// to double precision within its stated error (its values, too, equal across variants),
    /// and top-K lists must be the same.
    @Test func everyKernelVariantMatchesTheReference() {
        #expect((0...2).contains(Kernels.level) && Kernels.level <= Kernels.cpuLevel)
        var rng = SeededRandom(seed: 9)
        let n = 70_001
        let g0 = (0..<n).map { _ in Float(rng.normal()) * (rng.uniformFloat() < 0.1 ? 0 : 1) }
        let m0 = (0..<n).map { _ in Float(rng.normal()) * 0.1 }, v0 = (0..<n).map { _ in rng.uniformFloat() * 0.01 }
        let p0 = (0..<n).map { _ in Float(rng.normal()) }
        var (pr, gr, mr, vr) = (p0, g0, m0, v0)
        for k in 0..<n {
            Adam.referenceUpdate(parameter: &pr[k], gradient: &gr[k], m: &mr[k], v: &vr[k], b1: 0.9, b2: 0.999, rate: 1e-3, epsilon: 1e-8)
        }
        let x = (0..<n).map { _ in Float(rng.normal()) * 6 - 30 }  // well inside exp's normal range
        var reference = [Float](repeating: 0, count: n)
        _ = shiftedExpNaive(&reference, x, shift: 0, count: n)
        var best: [Int32] = [], exps: [Float] = []
        for level in 0...Kernels.cpuLevel {
            var (p, g, m, v) = (p0, g0, m0, v0)
            recpipe_adam_at(Int32(level), &p, &g, &m, &v, n, 0.9, 0.999, 1e-3, 1e-8)
            #expect(p == pr && m == mr && v == vr, "Adam, variant \(Kernels.names[level])")
            #expect(g.allSatisfy { $0 == 0 }, "Adam zeroes the gradients, variant \(Kernels.names[level])")
            var y = [Float](repeating: .nan, count: n)
            _ = recpipe_shifted_exp_at(Int32(level), &y, x, 0, n)
            let worst = zip(y, reference).map { abs($0 - $1) / max($1, 1e-30) }.max() ?? 0
            #expect(worst < 1e-6, "exp, variant \(Kernels.names[level]): worst relative error \(worst)")
            if level == 0 { exps = y }
            #expect(y == exps, "exp's elementwise values are the same in every variant (\(Kernels.names[level]))")
            var idx = [Int32](repeating: -1, count: 100), val = [Float](repeating: 0, count: 100)
            #expect(recpipe_top_k_at(Int32(level), x, n, 100, &idx, &val) == 100)
            if level == 0 { best = idx }
            #expect(idx == best, "top-K, variant \(Kernels.names[level])")
        }
        // The reference's own top 100.
        let sorted = x.indices.sorted { x[$0] > x[$1] || (x[$0] == x[$1] && $0 < $1) }.prefix(100).map(Int32.init)
        #expect(best == Array(sorted))
    }
}
