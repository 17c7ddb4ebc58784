import CKernels
import Foundation

/// recpipe's C kernels (exp, sigmoid, top-K selection, Adam), built for AVX-512, for AVX2
/// with FMA and for plain x86-64: which variant this process runs.
public enum Kernels {
    /// The variants, by level.
    public static let names = ["default", "avx2", "avx512"]
    /// The variant in use: the best the CPU has, or the one RECPIPE_KERNELS names.
    public static var level: Int { Int(recpipe_kernels_level()) }
    /// The best variant the CPU can run.
    public static var cpuLevel: Int { Int(recpipe_kernels_cpu_level()) }
    public static var variant: String { names[level] }
    /// RECPIPE_KERNELS's value when it is set but not used: it names no variant, or one the
    /// CPU cannot run.
    public static var ignoredRequest: String? {
        guard let value = getenv("RECPIPE_KERNELS").map({ String(cString: $0) }), !value.isEmpty else { return nil }
        let requested = Int(recpipe_kernels_requested())
        return requested >= 0 && requested == level ? nil : value
    }
    /// The variant, and why when it is not the CPU's best (e.g. "avx2 (RECPIPE_KERNELS=avx2;
    /// the CPU has avx512)").
    public static var description: String {
        if let ignored = ignoredRequest { return "\(variant) (RECPIPE_KERNELS=\(ignored) ignored: one of \(names.joined(separator: ", ")) the CPU has)" }
        return level == cpuLevel ? variant : "\(variant) (RECPIPE_KERNELS=\(variant); the CPU has \(names[cpuLevel]))"
    }
}

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
