import Foundation
import RecpipeTestSupport
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
}
