import CKernels
import Foundation

// Layers as free functions on raw buffers, forward and backward side by side. Shapes are in
// the comments; B is the batch. Backward functions accumulate (+=) into gradients, so the
// caller zeroes them once per step. Weights are stored (inputs × outputs), row-major.

/// y = x·W + b      x: (B, I)  W: (I, O)  b: (O)  y: (B, O)
public func linearForward(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
                          _ b: UnsafePointer<Float>, batch: Int, inputs: Int, outputs: Int) {
    for r in 0..<batch { (y + r * outputs).update(from: b, count: outputs) }
    BLAS.gemm(m: batch, n: outputs, k: inputs, x, w, beta: 1, y)
}

/// `linearForward`, one dot product at a time in double precision: the reference.
public func linearForwardNaive(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
                               _ b: UnsafePointer<Float>, batch: Int, inputs: Int, outputs: Int) {
    for r in 0..<batch {
        for o in 0..<outputs {
            var sum = Double(b[o])
            for i in 0..<inputs { sum += Double(x[r * inputs + i]) * Double(w[i * outputs + o]) }
            y[r * outputs + o] = Float(sum)
        }
    }
}

/// dx += dy·Wᵀ (when dx is given)    dW += xᵀ·dy    db += Σ_rows dy
public func linearBackward(_ dx: UnsafeMutablePointer<Float>?, _ dw: UnsafeMutablePointer<Float>,
                           _ db: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>,
                           _ w: UnsafePointer<Float>, batch: Int, inputs: Int, outputs: Int) {
    BLAS.gemm(m: inputs, n: outputs, k: batch, x, transposeA: true, dy, beta: 1, dw)
    // db += dyᵀ·1, as a matrix-vector product.
    withUnsafeTemporaryAllocation(of: Float.self, capacity: batch) { ones in
        ones.initialize(repeating: 1)
        BLAS.gemv(rows: batch, cols: outputs, dy, transpose: true, ones.baseAddress!, beta: 1, db)
    }
    if let dx {
        BLAS.gemm(m: batch, n: inputs, k: outputs, dy, w, transposeB: true, beta: 1, dx)
    }
}

/// `linearBackward` in double precision: the reference.
public func linearBackwardNaive(_ dx: UnsafeMutablePointer<Float>?, _ dw: UnsafeMutablePointer<Float>,
                                _ db: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>,
                                _ w: UnsafePointer<Float>, batch: Int, inputs: Int, outputs: Int) {
    for i in 0..<inputs {
        for o in 0..<outputs {
            var sum = Double(dw[i * outputs + o])
            for r in 0..<batch { sum += Double(x[r * inputs + i]) * Double(dy[r * outputs + o]) }
            dw[i * outputs + o] = Float(sum)
        }
    }
    for o in 0..<outputs { db[o] = Float((0..<batch).reduce(Double(db[o])) { $0 + Double(dy[$1 * outputs + o]) }) }
    guard let dx else { return }
    for r in 0..<batch {
        for i in 0..<inputs {
            var sum = Double(dx[r * inputs + i])
            for o in 0..<outputs { sum += Double(dy[r * outputs + o]) * Double(w[i * outputs + o]) }
            dx[r * inputs + i] = Float(sum)
        }
    }
}

/// y = x·W + b with a sparse x     x: (B, I) CSR  W: (I, O)  y: (B, O)
/// Each non-zero adds a scaled row of W: the cost is nnz(x)·O, not B·I·O.
public func sparseLinearForward(_ y: UnsafeMutablePointer<Float>, _ x: CSRMatrix, _ w: UnsafePointer<Float>,
                                _ b: UnsafePointer<Float>, outputs: Int) {
    sparseProduct(y, x, w, startingFrom: b, outputs: outputs)
}

/// y += x·W with a sparse x (y's rows keep what they hold).
public func sparseLinearAccumulate(_ y: UnsafeMutablePointer<Float>, _ x: CSRMatrix, _ w: UnsafePointer<Float>, outputs: Int) {
    sparseProduct(y, x, w, startingFrom: nil, outputs: outputs)
}

/// y = b + x·W (each row of y first set to b), or y += x·W when b is nil.
private func sparseProduct(_ y: UnsafeMutablePointer<Float>, _ x: CSRMatrix, _ w: UnsafePointer<Float>,
                           startingFrom b: UnsafePointer<Float>?, outputs: Int) {
    x.columns.withUnsafeBufferPointer { columns in
        x.values.withUnsafeBufferPointer { values in
            parallelRows(x.rows) { r in
                let out = y + r * outputs
                if let b { out.update(from: b, count: outputs) }
                for k in x.rowStart[r]..<x.rowStart[r + 1] {
                    BLAS.axpy(outputs, values[k], w + Int(columns[k]) * outputs, out)
                }
            }
        }
    }
}

/// `sparseLinearForward` (b given) and `sparseLinearAccumulate` (b nil) in double precision,
/// one output at a time: the reference.
public func sparseProductNaive(_ y: UnsafeMutablePointer<Float>, _ x: CSRMatrix, _ w: UnsafePointer<Float>,
                               startingFrom b: UnsafePointer<Float>?, outputs: Int) {
    for r in 0..<x.rows {
        for o in 0..<outputs {
            var sum = b.map { Double($0[o]) } ?? Double(y[r * outputs + o])
            for k in x.rowStart[r]..<x.rowStart[r + 1] { sum += Double(x.values[k]) * Double(w[Int(x.columns[k]) * outputs + o]) }
            y[r * outputs + o] = Float(sum)
        }
    }
}

/// dW += xᵀ·dy with a sparse x (only the rows of W that x touches), and db += Σ_rows dy when
/// db is given.
public func sparseLinearBackward(_ dw: UnsafeMutablePointer<Float>, _ db: UnsafeMutablePointer<Float>?,
                                 _ dy: UnsafePointer<Float>, _ x: CSRMatrix, outputs: Int) {
    x.columns.withUnsafeBufferPointer { columns in
        x.values.withUnsafeBufferPointer { values in
            for r in 0..<x.rows {
                let row = dy + r * outputs
                for k in x.rowStart[r]..<x.rowStart[r + 1] {
                    BLAS.axpy(outputs, values[k], row, dw + Int(columns[k]) * outputs)
                }
                if let db { for o in 0..<outputs { db[o] += row[o] } }
            }
        }
    }
}

/// `sparseLinearBackward` in double precision: the reference.
public func sparseLinearBackwardNaive(_ dw: UnsafeMutablePointer<Float>, _ db: UnsafeMutablePointer<Float>?,
                                      _ dy: UnsafePointer<Float>, _ x: CSRMatrix, outputs: Int) {
    for (i, o) in (0..<x.cols).flatMap({ i in (0..<outputs).map { (i, $0) } }) {
        var sum = Double(dw[i * outputs + o])
        for r in 0..<x.rows {
            for k in x.rowStart[r]..<x.rowStart[r + 1] where Int(x.columns[k]) == i {
                sum += Double(x.values[k]) * Double(dy[r * outputs + o])
            }
        }
        dw[i * outputs + o] = Float(sum)
    }
    if let db { for o in 0..<outputs { db[o] = Float((0..<x.rows).reduce(Double(db[o])) { $0 + Double(dy[$1 * outputs + o]) }) } }
}

/// y = tanh(x), elementwise over n values (y may be x).
public func tanhForward(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, count n: Int) {
    // The library's tanhf, one value at a time: blocks of 4,096 on all cores.
    parallelRows((n + 4095) / 4096) { block in
        for k in (block * 4096)..<min(n, (block + 1) * 4096) { y[k] = tanhf(x[k]) }
    }
}

/// dx += dy · (1 − y²), with y = tanh(x).
public func tanhBackward(_ dx: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>, _ y: UnsafePointer<Float>,
                         count n: Int) {
    for k in 0..<n { dx[k] += dy[k] * (1 - y[k] * y[k]) }
}

/// z = μ + ε·exp(½·log σ²)     h: (B, 2L) = [μ | log σ²] per row   ε, z: (B, L)
public func reparameterizeForward(_ z: UnsafeMutablePointer<Float>, _ h: UnsafePointer<Float>,
                                  _ epsilon: UnsafePointer<Float>, batch: Int, latent: Int) {
    for r in 0..<batch {
        let mu = h + r * 2 * latent, logvar = mu + latent
        for l in 0..<latent { z[r * latent + l] = mu[l] + epsilon[r * latent + l] * expf(0.5 * logvar[l]) }
    }
}

/// dμ += dz    d log σ² += dz·ε·½·exp(½·log σ²)     (into dh, laid out like h)
public func reparameterizeBackward(_ dh: UnsafeMutablePointer<Float>, _ dz: UnsafePointer<Float>,
                                   _ h: UnsafePointer<Float>, _ epsilon: UnsafePointer<Float>, batch: Int, latent: Int) {
    for r in 0..<batch {
        let logvar = h + r * 2 * latent + latent
        let dmu = dh + r * 2 * latent, dlogvar = dmu + latent
        for l in 0..<latent {
            let g = dz[r * latent + l]
            dmu[l] += g
            dlogvar[l] += g * epsilon[r * latent + l] * 0.5 * expf(0.5 * logvar[l])
        }
    }
}

/// Σ_rows KL(N(μ, σ²) ‖ N(0, 1)) = Σ ½·(−log σ² + σ² + μ² − 1)     h: (B, 2L)
public func gaussianKL(_ h: UnsafePointer<Float>, batch: Int, latent: Int) -> Double {
    var total = 0.0
    for r in 0..<batch {
        let mu = h + r * 2 * latent, logvar = mu + latent
        for l in 0..<latent {
            total += 0.5 * Double(-logvar[l] + expf(logvar[l]) + mu[l] * mu[l] - 1)
        }
    }
    return total
}

/// dh += scale · ∂KL/∂h:  dμ += scale·μ,  d log σ² += scale·½·(σ² − 1)
public func gaussianKLBackward(_ dh: UnsafeMutablePointer<Float>, _ h: UnsafePointer<Float>, scale: Float,
                               batch: Int, latent: Int) {
    for r in 0..<batch {
        let mu = h + r * 2 * latent, logvar = mu + latent
        let dmu = dh + r * 2 * latent, dlogvar = dmu + latent
        for l in 0..<latent {
            dmu[l] += scale * mu[l]
            dlogvar[l] += scale * 0.5 * (expf(logvar[l]) - 1)
        }
    }
}

/// Multinomial negative log-likelihood of the counts x under softmax(logits), summed over
/// rows: Σ_r Σ_i −x_ri·log softmax(z_r)_i. Writes dlogits = scale·(softmax(z)·Σ_i x_ri − x)
/// (overwriting), the gradient of scale·loss.     logits, dlogits: (B, I)  x: (B, I) CSR
public func multinomialNLL(_ dlogits: UnsafeMutablePointer<Float>, _ logits: UnsafePointer<Float>, _ x: CSRMatrix,
                           scale: Float, items: Int) -> Double {
    var rowLoss = [Double](repeating: 0, count: x.rows)
    rowLoss.withUnsafeMutableBufferPointer { losses in
        let lossBase = losses.baseAddress!
        parallelRows(x.rows) { r in
            let z = logits + r * items, dz = dlogits + r * items
            let top = maximum(z, count: items)
            let sum = shiftedExp(dz, z, shift: top, count: items)
            let logSum = top + logf(sum)
            var total: Float = 0, loss: Double = 0
            for k in x.rowStart[r]..<x.rowStart[r + 1] {
                let v = x.values[k]
                total += v
                loss += Double(v) * Double(logSum - z[Int(x.columns[k])])
            }
            let factor = scale * total / sum
            for i in 0..<items { dz[i] *= factor }
            for k in x.rowStart[r]..<x.rowStart[r + 1] { dz[Int(x.columns[k])] -= scale * x.values[k] }
            lossBase[r] = loss
        }
    }
    return rowLoss.reduce(0, +)
}

/// Rows scaled to unit L2 norm, then (with `dropout` > 0) each entry kept with probability
/// 1 − dropout and scaled by 1/(1 − dropout), as the Mult-VAE input layer does.
public func normalizeAndDropout(_ x: CSRMatrix, dropout: Float, rng: inout SeededRandom) -> CSRMatrix {
    var out = x
    let keep = 1 - dropout
    for r in 0..<x.rows {
        let range = x.rowStart[r]..<x.rowStart[r + 1]
        var norm: Float = 0
        for k in range { norm += x.values[k] * x.values[k] }
        let inverse = norm > 0 ? 1 / norm.squareRoot() : 0
        for k in range {
            var v = x.values[k] * inverse
            if dropout > 0 { v = rng.uniformFloat() < keep ? v / keep : 0 }
            out.values[k] = v
        }
    }
    return out
}

/// Runs body(r) for r in 0..<n on the available cores, in contiguous blocks (body must only
/// touch row r's own data).
@inline(__always)
public func parallelRows(_ n: Int, _ body: (Int) -> Void) {
    let workers = min(n, ProcessInfo.processInfo.activeProcessorCount)
    if workers <= 1 || n < 16 {
        for r in 0..<n { body(r) }
        return
    }
    // The blocks touch disjoint rows; the closure is shared by the workers only for this call.
    withoutActuallyEscaping(body) { body in
        let shared = UncheckedSendable(body)
        DispatchQueue.concurrentPerform(iterations: workers) { w in
            for r in (n * w / workers)..<(n * (w + 1) / workers) { shared.value(r) }
        }
    }
}

struct UncheckedSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

/// y = 1 / (1 + e^(−x)), elementwise over n values (y may be x): the vectorized kernel of
/// `CKernels`, on all cores for large n.
public func sigmoidForward(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, count n: Int) {
    let block = 1 << 16
    guard n > 2 * block else { return recpipe_sigmoid(y, x, n) }
    parallelRows((n + block - 1) / block) { b in
        let start = b * block
        recpipe_sigmoid(y + start, x + start, min(block, n - start))
    }
}

/// `sigmoidForward` with the library's exp in double precision: the reference.
public func sigmoidForwardNaive(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, count n: Int) {
    for k in 0..<n { y[k] = Float(1 / (1 + exp(-Double(x[k])))) }
}

/// log(1 + e^x) without overflow.
@inline(__always)
public func softplus(_ x: Float) -> Double {
    let x = Double(x)
    return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x))
}

/// dy ← dy · y·(1 − y) in place: from ∂/∂(sigmoid output) to ∂/∂(its input).
public func sigmoidGradientInPlace(_ dy: UnsafeMutablePointer<Float>, _ y: UnsafePointer<Float>, count n: Int) {
    for k in 0..<n { dy[k] *= y[k] * (1 - y[k]) }
}
