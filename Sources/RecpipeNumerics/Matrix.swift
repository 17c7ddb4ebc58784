/// A dense Float32 matrix, row-major and contiguous.
public struct Matrix: Equatable, Sendable {
    public var rows: Int
    public var cols: Int
    public var data: [Float]

    public init(rows: Int, cols: Int, data: [Float]) {
        precondition(data.count == rows * cols, "matrix data of \(data.count) values for \(rows) × \(cols)")
        self.rows = rows
        self.cols = cols
        self.data = data
    }

    public init(rows: Int, cols: Int, repeating value: Float = 0) {
        self.init(rows: rows, cols: cols, data: [Float](repeating: value, count: rows * cols))
    }

    public subscript(row: Int, col: Int) -> Float {
        get { data[row * cols + col] }
        set { data[row * cols + col] = newValue }
    }

    /// Sets every value to zero, keeping the storage.
    public mutating func zero() {
        data.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
    }

    /// Changes the shape, reusing storage (contents undefined when it grows).
    public mutating func resize(rows: Int, cols: Int) {
        if rows * cols != data.count { data = [Float](repeating: 0, count: rows * cols) }
        self.rows = rows
        self.cols = cols
    }
}

/// A sparse matrix in compressed sparse row form: row r's entries are
/// `columns[rowStart[r]..<rowStart[r + 1]]` with `values` alongside.
public struct CSRMatrix: Equatable, Sendable {
    public var rows: Int
    public var cols: Int
    public var rowStart: [Int]
    public var columns: [Int32]
    public var values: [Float]

    public init(rows: Int, cols: Int, rowStart: [Int], columns: [Int32], values: [Float]) {
        precondition(rowStart.count == rows + 1 && columns.count == values.count && rowStart.last == columns.count,
                     "inconsistent CSR arrays")
        self.rows = rows
        self.cols = cols
        self.rowStart = rowStart
        self.columns = columns
        self.values = values
    }

    /// A binary matrix from the column lists of each row.
    public init(cols: Int, rowsOfColumns: [[Int32]]) {
        var start = [0], columns: [Int32] = []
        for row in rowsOfColumns {
            columns.append(contentsOf: row)
            start.append(columns.count)
        }
        self.init(rows: rowsOfColumns.count, cols: cols, rowStart: start, columns: columns,
                  values: [Float](repeating: 1, count: columns.count))
    }

    public var nonZeros: Int { columns.count }

    public func count(row: Int) -> Int { rowStart[row + 1] - rowStart[row] }

    /// The rows `indices`, in that order.
    public func rows(_ indices: ArraySlice<Int>) -> CSRMatrix {
        var start = [0], columns: [Int32] = [], values: [Float] = []
        start.reserveCapacity(indices.count + 1)
        for r in indices {
            columns.append(contentsOf: self.columns[rowStart[r]..<rowStart[r + 1]])
            values.append(contentsOf: self.values[rowStart[r]..<rowStart[r + 1]])
            start.append(columns.count)
        }
        return CSRMatrix(rows: indices.count, cols: cols, rowStart: start, columns: columns, values: values)
    }

    public func dense() -> Matrix {
        var m = Matrix(rows: rows, cols: cols)
        for r in 0..<rows { for k in rowStart[r]..<rowStart[r + 1] { m[r, Int(columns[k])] += values[k] } }
        return m
    }
}
