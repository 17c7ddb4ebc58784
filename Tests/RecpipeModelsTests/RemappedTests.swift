import Foundation
import RecpipeTestSupport
import Testing
@testable import RecpipeModels
@testable import RecpipeNumerics

@Suite(.tags(.medium)) struct RemappedTests {
    @Test func scoresFollowItemsAcrossIndexChanges() {
        // The base model knows items a, b, c at positions 0, 1, 2; the current index is c, x, a.
        struct Base: Recommender {
            var items: Int { 3 }
            func scores(_ foldIn: CSRMatrix, batchSize: Int, body: (Int, UnsafeMutableBufferPointer<Float>) -> Void) {
                for r in 0..<foldIn.rows {
                    // Score = 10·position + number of known items, to see the fold-in arrive.
                    var s = (0..<3).map { Float(10 * $0 + foldIn.count(row: r)) }
                    s.withUnsafeMutableBufferPointer { body(r, $0) }
                }
            }
        }
        let remapped = Remapped(Base(), mapping: [2, nil, 0])
        let foldIn = CSRMatrix(cols: 3, rowsOfColumns: [[0, 1, 2]])  // c, x, a: x is unknown
        remapped.scores(foldIn, batchSize: 500) { _, s in
            #expect(Array(s) == [22, -.infinity, 2])
        }
    }
}
