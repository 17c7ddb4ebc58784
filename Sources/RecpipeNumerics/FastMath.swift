import CKernels

/// exp over 16 lanes at once, for the softmax over the catalogue. Range reduction
/// x = n·ln 2 + r (ln 2 split in two parts for accuracy), a degree-6 polynomial for e^r on
/// |r| ≤ ½·ln 2 (the coefficients of Cephes' expf), then scaling by 2^n through the exponent
/// bits. Relative error about 2e-7 for x in [−87, 88]; inputs outside are clamped.
@inline(__always)
public func exp16(_ x: SIMD16<Float>) -> SIMD16<Float> {
    let x = x.clamped(lowerBound: SIMD16(repeating: -87.0), upperBound: SIMD16(repeating: 88.0))
    // Round to the nearest integer by adding and removing 1.5·2²³ (no per-lane calls); the
    // sum's low mantissa bits are then n itself.
    let shifted = x * 1.442_695_04 + 12_582_912
    let n = shifted - 12_582_912
    var r = x - n * 0.693_359_375
    r = r - n * -2.121_944_4e-4
    var p = SIMD16<Float>(repeating: 1.987_569_15e-4)
    p = p * r + 1.398_199_95e-3
    p = p * r + 8.333_451_9e-3
    p = p * r + 4.166_579_59e-2
    p = p * r + 1.666_666_55e-1
    p = p * r + 5.000_000_12e-1
    p = p * (r * r) + r + 1
    let integer = unsafeBitCast(shifted, to: SIMD16<UInt32>.self) &- 0x4B40_0000
    let bits = (integer &+ 127) &<< 23
    return p * unsafeBitCast(bits, to: SIMD16<Float>.self)
}

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
