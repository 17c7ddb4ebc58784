import CKernels
import Foundation

/// exp of every value: y[k] = e^(x[k] − shift); returns Σ y. (y may be x.) The loop is in
/// C (`CKernels`), vectorized for the running CPU.
@inline(__always)
public func shiftedExp(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, shift: Float, count n: Int) -> Float {
    recpipe_shifted_exp(y, x, shift, n)
}

/// `shiftedExp` with the library's exp in double precision: the reference.
public func shiftedExpNaive(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, shift: Float, count n: Int) -> Float {
    var sum = 0.0
    for k in 0..<n {
        let value = exp(Double(x[k]) - Double(shift))
        y[k] = Float(value)
        sum += value
    }
    return Float(sum)
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

/// `maximum` one value at a time: the reference.
public func maximumNaive(_ x: UnsafePointer<Float>, count n: Int) -> Float {
    (0..<n).reduce(-Float.infinity) { x[$1] > $0 ? x[$1] : $0 }
}
