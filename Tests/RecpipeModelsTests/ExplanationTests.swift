import Foundation
import RecpipeTestSupport
import Testing
@testable import RecpipeModels
@testable import RecpipeNumerics

/// The history item behind each recommended item, against hand-computed and naive answers.
@Suite(.tags(.small)) struct ExplanationTests {
    /// EASE: the support of i from j is B[j, i], the term j adds to i's score.
    @Test func easeNamesTheLargestTermOfTheScore() {
        // 4 items; the user has items 0 and 1.
        let b: [Float] = [
            0, 0.2, 0.5, 0.9,  // from item 0
            0.3, 0, 0.7, 0.1,  // from item 1
            0.1, 0.1, 0, 0.2,
            0.4, 0.6, 0.3, 0,
        ]
        let ease = EASE(items: 4, lambda: 1, weights: b)
        let explainer = Explanations.explainer(for: ease)!
        // Item 2: 0.5 from 0, 0.7 from 1 → 1. Item 3: 0.9 from 0, 0.1 from 1 → 0.
        #expect(explainer.because([2, 3], history: [0, 1]) == [1, 0])
        #expect(explainer.because([3, 2], history: [1]) == [1, 1])
        #expect(explainer.because([3], history: []) == [nil])
    }

    @Test func itemKNNNamesTheMostSimilarNeighbour() {
        // Row j: j's neighbours. 0 → {2: 0.4, 3: 0.1}; 1 → {2: 0.6}; item 3 not reached from 1.
        let similarity = CSRMatrix(rows: 4, cols: 4, rowStart: [0, 2, 3, 3, 3], columns: [2, 3, 2], values: [0.4, 0.1, 0.6])
        let knn = ItemKNN(items: 4, neighbours: 2, shrink: 0, similarity: similarity)
        let explainer = Explanations.explainer(for: knn)!
        #expect(explainer.because([2, 3], history: [0, 1]) == [1, 0])
        // Nothing reaches item 3 from history [1]: support 0 from all, the first history item.
        #expect(explainer.because([3], history: [1]) == [1])
    }

    /// Cosine of item vectors, by BLAS against a naive double-precision loop: from the table
    /// of every pair (its upper triangle in one product, or in blocks of 16 rows and a short
    /// last one), and from one product per list (a catalogue over the table's limit).
    @Test(arguments: [(Explanations.Cosine.tableLimitBytes, 2048), (Explanations.Cosine.tableLimitBytes, 16), (0, 2048)])
    func cosineMatchesANaiveReference(tableLimitBytes: Int, blockRows: Int) {
        var rng = SeededRandom(seed: 9)
        let items = 60, width = 13
        var vectors = (0..<(items * width)).map { _ in Float.random(in: -1...1, using: &rng) }
        for c in 0..<width { vectors[7 * width + c] = 0 }  // a zero vector: cosine 0 with all
        let explainer = Explanations.Cosine(items: items, width: width, vectors: vectors, tableLimitBytes: tableLimitBytes,
                                            blockRows: blockRows)
        #expect(explainer.tabulated == (tableLimitBytes > 0))
        func cosine(_ a: Int, _ b: Int) -> Double {
            var dot = 0.0, na = 0.0, nb = 0.0
            for c in 0..<width {
                let x = Double(vectors[a * width + c]), y = Double(vectors[b * width + c])
                dot += x * y; na += x * x; nb += y * y
            }
            return na == 0 || nb == 0 ? 0 : dot / (na.squareRoot() * nb.squareRoot())
        }
        for trial in 0..<40 {
            let history = Array(Set((0..<(1 + trial % 9)).map { _ in Int32.random(in: 0..<Int32(items), using: &rng) })).sorted()
            let ranked = (0..<10).map { _ in Int32.random(in: 0..<Int32(items), using: &rng) }
            let got = explainer.because(ranked, history: history[...])
            for (i, j) in zip(ranked, got) {
                let best = history.map { cosine(Int(i), Int($0)) }.max()!
                // The chosen item's cosine is the best one, within float rounding of the product.
                #expect(abs(cosine(Int(i), Int(j!)) - best) < 1e-5, "trial \(trial): item \(i)")
            }
        }
    }

    @Test func multVAEAndIALSUseTheirItemVectors() {
        var rng = SeededRandom(seed: 2)
        var config = MultVAE.Config()
        config.hidden = 8
        config.latent = 4
        var vae = MultVAE(items: 12, config: config)
        vae.initialize(rng: &rng)
        #expect(Explanations.explainer(for: vae) is Explanations.Cosine)
        #expect(Explanations.explainer(for: Popularity(counts: [1, 2, 3])) == nil)
    }
}
