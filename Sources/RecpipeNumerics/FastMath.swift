import CKernels

/// exp of every value: y[k] = e^(x[k] − shift); returns Σ y. (y may be x.) The loop is in
/// C (`CKernels`), vectorized for the running CPU.
@inline(__always)
public func shiftedExp(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, shift: Float, count n: Int) -> Float {
    recpipe_shifted_exp(y, x, shift, n)
}

/// The largest of n values (four running maxima, which the compiler vectorizes).
public func maximum(_ x: UnsafePointer<Float>, count n: Int) -> Float {
    var m0 = -Float.infinity, m1 = m0, m2 = m0, m3 = m0
    var k = 0
    while k + 4 <= n {
        m0 = x[k] > m0 ? x[k] : m0
        m1 = x[k + 1] > m1 ? x[k + 1] : m1
        m2 = x[k + 2] > m2 ? x[k + 2] : m2
        m3 = x[k + 3] > m3 ? x[k + 3] : m3
        k += 4
    }
    while k < n { m0 = x[k] > m0 ? x[k] : m0; k += 1 }
    return max(max(m0, m1), max(m2, m3))
}
