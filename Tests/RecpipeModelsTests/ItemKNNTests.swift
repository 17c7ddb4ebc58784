import Foundation
import RecpipeTestSupport
import Testing
@testable import RecpipeModels
@testable import RecpipeNumerics

@Suite(.tags(.medium)) struct ItemKNNTests {
    @Test func similaritiesAndScoresByHand() {
        // Users: {0,1}, {0,1,2}, {2,3}. |U0|=2, |U1|=2, |U2|=2, |U3|=1; U0∩U1 = 2, U1∩U2 = 1, U2∩U3 = 1.
        let x = CSRMatrix(cols: 4, rowsOfColumns: [[0, 1], [0, 1, 2], [2, 3]])
        let knn = ItemKNN.fit(train: x, neighbours: 10, shrink: 1)
        func s(_ i: Int, _ j: Int) -> Float {
            let row = knn.similarity.rowStart[i]..<knn.similarity.rowStart[i + 1]
            return row.first { knn.similarity.columns[$0] == Int32(j) }.map { knn.similarity.values[$0] } ?? 0
        }
        #expect(abs(s(0, 1) - 2 / (2 + 1)) < 1e-6)
        #expect(abs(s(1, 2) - 1 / (2 + 1)) < 1e-6)
        #expect(abs(s(2, 3) - 1 / (Float(2).squareRoot() + 1)) < 1e-6)
        #expect(s(0, 3) == 0 && s(0, 0) == 0)
        knn.scores(CSRMatrix(cols: 4, rowsOfColumns: [[1, 3]]), batchSize: 500) { _, scores in
            #expect(abs(scores[2] - (s(1, 2) + s(3, 2))) < 1e-6)
            #expect(abs(scores[0] - s(1, 0)) < 1e-6)
        }
        // Only the most similar neighbour kept.
        let one = ItemKNN.fit(train: x, neighbours: 1, shrink: 1)
        #expect((0..<4).allSatisfy { one.similarity.count(row: $0) == 1 })
    }
}
