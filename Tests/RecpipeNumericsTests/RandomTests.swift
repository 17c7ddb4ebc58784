import RecpipeTestSupport
import Testing
@testable import RecpipeNumerics

@Suite(.tags(.small)) struct RandomTests {
    @Test func sameSeedSameStream() {
        var a = SeededRandom(seed: 42), b = SeededRandom(seed: 42), c = SeededRandom(seed: 43)
        let xs = (0..<100).map { _ in a.next() }
        #expect(xs == (0..<100).map { _ in b.next() })
        #expect(xs != (0..<100).map { _ in c.next() })
        var s1 = SeededRandom(seed: 42, stream: 1), s2 = SeededRandom(seed: 42, stream: 2)
        #expect(s1.next() != s2.next())
    }

    @Test func belowIsUniform() {
        var rng = SeededRandom(seed: 1)
        let bins = 10, draws = 100_000
        var counts = [Int](repeating: 0, count: bins)
        for _ in 0..<draws { counts[rng.below(bins)] += 1 }
        let expected = Double(draws) / Double(bins)
        let chiSquare = counts.reduce(0.0) { $0 + pow2(Double($1) - expected) / expected }
        // 9 degrees of freedom: P(χ² > 27.9) = 0.001.
        #expect(chiSquare < 27.9)
    }

    @Test func normalHasUnitMoments() {
        var rng = SeededRandom(seed: 2)
        let xs = (0..<200_000).map { _ in rng.normal() }
        let mean = xs.reduce(0, +) / Double(xs.count)
        let variance = xs.reduce(0) { $0 + pow2($1 - mean) } / Double(xs.count)
        #expect(abs(mean) < 0.01)
        #expect(abs(variance - 1) < 0.02)
    }

    @Test func shuffleAndSampleArePermutations() {
        var rng = SeededRandom(seed: 3)
        var values = Array(0..<1000)
        rng.shuffle(&values)
        #expect(values != Array(0..<1000))
        #expect(values.sorted() == Array(0..<1000))
        let sample = rng.sample(100, from: 1000)
        #expect(Set(sample).count == 100)
        #expect(sample.allSatisfy { (0..<1000).contains($0) })
        #expect(rng.sample(5, from: 5).sorted() == [0, 1, 2, 3, 4])
    }

    @Test func uniformStaysInRange() {
        var rng = SeededRandom(seed: 4)
        for _ in 0..<10_000 {
            let x = rng.uniform(), y = rng.uniformFloat()
            #expect(x >= 0 && x < 1)
            #expect(y >= 0 && y < 1)
        }
    }
}

private func pow2(_ x: Double) -> Double { x * x }
