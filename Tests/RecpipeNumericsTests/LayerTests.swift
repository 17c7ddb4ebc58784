import Foundation
import RecpipeTestSupport
import Testing
@testable import RecpipeNumerics

/// Random values in [−scale, scale).
private func randomArray(_ n: Int, _ rng: inout SeededRandom, scale: Float = 1) -> [Float] {
    (0..<n).map { _ in (2 * rng.uniformFloat() - 1) * scale }
}

/// Checks an analytic gradient against central differences of `loss` at every coordinate
/// (or a sample of them).
private func checkGradient(_ name: String, _ values: inout [Float], analytic: [Float], step: Float = 1e-2,
                           sample: Int = 60, loss: ([Float]) -> Double) {
    var rng = SeededRandom(seed: 99)
    let indices = values.count <= sample ? Array(0..<values.count) : (0..<sample).map { _ in rng.below(values.count) }
    var worst = 0.0
    for k in indices {
        let saved = values[k]
        values[k] = saved + step
        let up = loss(values)
        values[k] = saved - step
        let down = loss(values)
        values[k] = saved
        let numeric = (up - down) / (2 * Double(step))
        let error = abs(numeric - Double(analytic[k])) / max(1, abs(numeric))
        worst = max(worst, error)
    }
    #expect(worst < 2e-2, "\(name): worst relative error \(worst)")
}

private func dot(_ a: [Float], _ b: [Float]) -> Double { zip(a, b).reduce(0) { $0 + Double($1.0) * Double($1.1) } }

@Suite(.tags(.small)) struct LayerTests {
    let batch = 4, inputs = 7, outputs = 5

    @Test func linearMatchesNaiveAndItsGradients() {
        var rng = SeededRandom(seed: 1)
        var x = randomArray(batch * inputs, &rng), w = randomArray(inputs * outputs, &rng), b = randomArray(outputs, &rng)
        let r = randomArray(batch * outputs, &rng)
        func forward(_ x: [Float], _ w: [Float], _ b: [Float]) -> [Float] {
            var y = [Float](repeating: 0, count: batch * outputs)
            linearForward(&y, x, w, b, batch: batch, inputs: inputs, outputs: outputs)
            return y
        }
        // The naive reference, forward and backward (the gradients start from non-zero
        // values: backward accumulates).
        var naive = [Float](repeating: 0, count: batch * outputs)
        linearForwardNaive(&naive, x, w, b, batch: batch, inputs: inputs, outputs: outputs)
        for (a, c) in zip(forward(x, w, b), naive) { #expect(abs(a - c) < 1e-5) }
        let start = randomArray(x.count + w.count + b.count, &rng)
        var dx = Array(start[..<x.count]), dw = Array(start[x.count..<(x.count + w.count)]), db = Array(start[(x.count + w.count)...])
        var (ndx, ndw, ndb) = (dx, dw, db)
        linearBackward(&dx, &dw, &db, r, x, w, batch: batch, inputs: inputs, outputs: outputs)
        linearBackwardNaive(&ndx, &ndw, &ndb, r, x, w, batch: batch, inputs: inputs, outputs: outputs)
        for (a, c) in zip(dx + dw + db, ndx + ndw + ndb) { #expect(abs(a - c) < 1e-5) }
        for k in dx.indices { dx[k] -= start[k] }
        for k in dw.indices { dw[k] -= start[x.count + k] }
        for k in db.indices { db[k] -= start[x.count + w.count + k] }
        let (w0, b0, x0) = (w, b, x)
        checkGradient("linear dx", &x, analytic: dx) { dot(forward($0, w0, b0), r) }
        checkGradient("linear dW", &w, analytic: dw) { dot(forward(x0, $0, b0), r) }
        checkGradient("linear db", &b, analytic: db) { dot(forward(x0, w0, $0), r) }
    }

    @Test func sparseLinearMatchesDenseAndItsGradients() {
        var rng = SeededRandom(seed: 2)
        let x = CSRMatrix(cols: inputs, rowsOfColumns: [[0, 3], [], [1, 2, 6], [4]])
        var sparse = x
        sparse.values = randomArray(x.nonZeros, &rng)
        var w = randomArray(inputs * outputs, &rng), b = randomArray(outputs, &rng)
        let r = randomArray(batch * outputs, &rng)
        func forward(_ w: [Float], _ b: [Float]) -> [Float] {
            var y = [Float](repeating: 0, count: batch * outputs)
            sparseLinearForward(&y, sparse, w, b, outputs: outputs)
            return y
        }
        var dense = [Float](repeating: 0, count: batch * outputs)
        linearForward(&dense, sparse.dense().data, w, b, batch: batch, inputs: inputs, outputs: outputs)
        for (a, c) in zip(forward(w, b), dense) { #expect(abs(a - c) < 1e-5) }
        var naive = [Float](repeating: 0, count: batch * outputs)
        sparseProductNaive(&naive, sparse, w, startingFrom: b, outputs: outputs)
        for (a, c) in zip(forward(w, b), naive) { #expect(abs(a - c) < 1e-5) }
        // Accumulating adds to what y holds.
        var accumulated = naive, accumulatedNaive = naive
        sparseLinearAccumulate(&accumulated, sparse, w, outputs: outputs)
        sparseProductNaive(&accumulatedNaive, sparse, w, startingFrom: nil, outputs: outputs)
        for (a, c) in zip(accumulated, accumulatedNaive) { #expect(abs(a - c) < 1e-5) }
        var ndw = randomArray(w.count, &rng), ndb = randomArray(b.count, &rng)
        var fdw = ndw, fdb = ndb
        sparseLinearBackward(&fdw, &fdb, r, sparse, outputs: outputs)
        sparseLinearBackwardNaive(&ndw, &ndb, r, sparse, outputs: outputs)
        for (a, c) in zip(fdw + fdb, ndw + ndb) { #expect(abs(a - c) < 1e-5) }
        var dw = [Float](repeating: 0, count: w.count), db = [Float](repeating: 0, count: b.count)
        sparseLinearBackward(&dw, &db, r, sparse, outputs: outputs)
        let (w0, b0) = (w, b)
        checkGradient("sparse dW", &w, analytic: dw) { dot(forward($0, b0), r) }
        checkGradient("sparse db", &b, analytic: db) { dot(forward(w0, $0), r) }
    }

    @Test func tanhGradient() {
        var rng = SeededRandom(seed: 3)
        var x = randomArray(20, &rng, scale: 2)
        let r = randomArray(20, &rng)
        var y = [Float](repeating: 0, count: 20), dx = [Float](repeating: 0, count: 20)
        tanhForward(&y, x, count: 20)
        tanhBackward(&dx, r, y, count: 20)
        checkGradient("tanh", &x, analytic: dx) { x in
            var y = [Float](repeating: 0, count: 20)
            tanhForward(&y, x, count: 20)
            return dot(y, r)
        }
    }

    @Test func reparameterizationAndKLGradients() {
        var rng = SeededRandom(seed: 4)
        let latent = 3
        var h = randomArray(batch * 2 * latent, &rng)
        let epsilon = randomArray(batch * latent, &rng), r = randomArray(batch * latent, &rng)
        func z(_ h: [Float]) -> [Float] {
            var z = [Float](repeating: 0, count: batch * latent)
            reparameterizeForward(&z, h, epsilon, batch: batch, latent: latent)
            return z
        }
        var dh = [Float](repeating: 0, count: h.count)
        reparameterizeBackward(&dh, r, h, epsilon, batch: batch, latent: latent)
        checkGradient("reparameterize", &h, analytic: dh) { dot(z($0), r) }

        var dkl = [Float](repeating: 0, count: h.count)
        gaussianKLBackward(&dkl, h, scale: 1, batch: batch, latent: latent)
        checkGradient("KL", &h, analytic: dkl) { gaussianKL($0, batch: batch, latent: latent) }
        // KL of a standard normal is zero.
        #expect(gaussianKL([Float](repeating: 0, count: 2 * latent), batch: 1, latent: latent) == 0)
    }

    @Test func multinomialLikelihoodGradient() {
        var rng = SeededRandom(seed: 5)
        let items = 9
        let x = CSRMatrix(cols: items, rowsOfColumns: [[0, 4], [8], [1, 2, 3], [5, 6]])
        var logits = randomArray(batch * items, &rng, scale: 3)
        var d = [Float](repeating: 0, count: logits.count)
        let loss = multinomialNLL(&d, logits, x, scale: 1, items: items)
        // Reference: −Σ log softmax, by hand.
        var expected = 0.0
        for r in 0..<batch {
            let row = logits[(r * items)..<((r + 1) * items)].map(Double.init)
            let lse = log(row.map { exp($0) }.reduce(0, +))
            for k in x.rowStart[r]..<x.rowStart[r + 1] { expected += lse - row[Int(x.columns[k])] }
        }
        #expect(abs(loss - expected) < 1e-4)
        checkGradient("multinomial", &logits, analytic: d) { z in
            var scratch = [Float](repeating: 0, count: z.count)
            return multinomialNLL(&scratch, z, x, scale: 1, items: items)
        }
    }

    @Test func normalizeAndDropoutKeepsExpectation() {
        var rng = SeededRandom(seed: 6)
        let x = CSRMatrix(cols: 10, rowsOfColumns: [[0, 1, 2, 3], [5]])
        let normalized = normalizeAndDropout(x, dropout: 0, rng: &rng)
        #expect(abs(normalized.values[0] - 0.5) < 1e-6 && normalized.values[4] == 1)
        var kept = 0, total = 0
        for _ in 0..<2000 {
            let dropped = normalizeAndDropout(x, dropout: 0.5, rng: &rng)
            for v in dropped.values[0..<4] {
                total += 1
                if v != 0 { kept += 1; #expect(abs(v - 1.0) < 1e-6) }
            }
        }
        #expect(abs(Double(kept) / Double(total) - 0.5) < 0.03)
    }

    @Test func adamMatchesItsDefinition() {
        var adam = Adam(parameters: 2, learningRate: 0.1)
        var p: [Float] = [1, -1]
        var g: [Float] = [0.5, -2]
        adam.update(&p, &g)
        #expect(g == [0, 0], "the gradients are consumed")
        // First step: m̂ = g, v̂ = g², so the step is lr·g/|g| = ±lr.
        #expect(abs(p[0] - 0.9) < 1e-5 && abs(p[1] + 0.9) < 1e-5)
        // Minimises a quadratic.
        var q: [Float] = [3]
        var opt = Adam(parameters: 1, learningRate: 0.05)
        for _ in 0..<2000 {
            var g = [2 * (q[0] - 1)]
            opt.update(&q, &g)
        }
        #expect(abs(q[0] - 1) < 1e-2)
    }

    @Test func topKMatchesAFullSort() {
        var rng = SeededRandom(seed: 7)
        // Many ties; excluded entries (−∞, NaN); rows shorter than a 16-entry block, of odd
        // lengths, and rising rows where every entry displaces the heap's worst.
        var rows: [[Float]] = (0..<40).map { t in (0..<(t * 37 % 1001)).map { _ in Float(rng.below(50)) } }
        rows.append((0..<999).map(Float.init))
        rows.append((0..<999).map { Float($0 / 3) })
        // Long rows, where the selection first takes a threshold from a sample: random,
        // rising, with ties, and one whose sampled entries (every 8th) are all low, so that
        // too many lie above the threshold and the plain selection takes over.
        rows.append((0..<20_000).map { _ in rng.uniformFloat() })
        rows.append((0..<20_000).map { Float($0 / 2) })
        rows.append((0..<20_000).map { _ in Float(rng.below(300)) })
        rows.append((0..<20_000).map { $0 % 8 == 0 ? 0 : rng.uniformFloat() + 1 })
        for r in rows.indices where rows[r].count > 5 {
            rows[r][3] = -.infinity
            rows[r][rows[r].count - 2] = .nan
        }
        for scores in rows {
            for k in [0, 1, 10, 100, 999, 2000] {
                let (items, values) = scores.withUnsafeBufferPointer { topKWithScores($0, k: k) }
                let (expected, expectedValues) = scores.withUnsafeBufferPointer { topKWithScoresNaive($0, k: k) }
                #expect(items == expected)
                #expect(values == expectedValues)
                #expect(items.count == min(k, scores.filter { $0 > -.infinity }.count))
            }
        }
    }

    @Test func rankingMetrics() {
        let ranked: [Int32] = [5, 1, 9, 2]
        #expect(RankingMetrics.recall(ranked, targets: [1, 2, 7], k: 2) == 0.5)
        let dcg = 1 / log2(3.0) + 1 / log2(5.0), ideal = 1 + 1 / log2(3.0) + 1 / log2(4.0)
        #expect(abs(RankingMetrics.ndcg(ranked, targets: [1, 2, 7], k: 4) - dcg / ideal) < 1e-12)
        #expect(RankingMetrics.ndcg([3, 4], targets: [3, 4], k: 100) == 1)
    }
}
