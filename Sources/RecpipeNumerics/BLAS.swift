import CBLAS
import Foundation

/// Every matrix product and factorization of the project, over OpenBLAS and its LAPACK, with
/// shapes checked. Each has a naive reference beside it (`…Naive`, in double precision) that
/// the tests compare it with.
public enum BLAS {
    /// C = alpha · op(A) · op(B) + beta · C, row-major.
    public static func gemm(_ c: inout Matrix, _ a: Matrix, transposeA: Bool = false, _ b: Matrix, transposeB: Bool = false,
                            alpha: Float = 1, beta: Float = 0) {
        let m = transposeA ? a.cols : a.rows, k = transposeA ? a.rows : a.cols
        let n = transposeB ? b.rows : b.cols
        precondition((transposeB ? b.cols : b.rows) == k, "gemm: inner dimensions \(k) and \(transposeB ? b.cols : b.rows)")
        precondition(c.rows == m && c.cols == n, "gemm: output is \(c.rows) × \(c.cols), expected \(m) × \(n)")
        guard m > 0, n > 0 else { return }
        a.data.withUnsafeBufferPointer { pa in
            b.data.withUnsafeBufferPointer { pb in
                c.data.withUnsafeMutableBufferPointer { pc in
                    gemm(m: m, n: n, k: k, alpha: alpha, pa.baseAddress!, lda: a.cols, transposeA: transposeA,
                         pb.baseAddress!, ldb: b.cols, transposeB: transposeB, beta: beta, pc.baseAddress!, ldc: c.cols)
                }
            }
        }
    }

    /// C = alpha · op(A) · op(B) + beta · C on row-major buffers: op(A) is m × k, op(B) is
    /// k × n, C is m × n. `lda`, `ldb`, `ldc` are the distances between rows as stored
    /// (default: the stored rows' widths); a product of a sub-block passes its parent's.
    public static func gemm(m: Int, n: Int, k: Int, alpha: Float = 1,
                            _ a: UnsafePointer<Float>, lda: Int? = nil, transposeA: Bool = false,
                            _ b: UnsafePointer<Float>, ldb: Int? = nil, transposeB: Bool = false,
                            beta: Float = 0, _ c: UnsafeMutablePointer<Float>, ldc: Int? = nil) {
        let (lda, ldb, ldc) = checkGemm(m: m, n: n, k: k, lda: lda, transposeA: transposeA, ldb: ldb, transposeB: transposeB, ldc: ldc)
        guard m > 0, n > 0 else { return }
        cblas_sgemm(CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// `gemm`, one dot product at a time in double precision: the reference.
    public static func gemmNaive(m: Int, n: Int, k: Int, alpha: Float = 1,
                                 _ a: UnsafePointer<Float>, lda: Int? = nil, transposeA: Bool = false,
                                 _ b: UnsafePointer<Float>, ldb: Int? = nil, transposeB: Bool = false,
                                 beta: Float = 0, _ c: UnsafeMutablePointer<Float>, ldc: Int? = nil) {
        let (lda, ldb, ldc) = checkGemm(m: m, n: n, k: k, lda: lda, transposeA: transposeA, ldb: ldb, transposeB: transposeB, ldc: ldc)
        for i in 0..<m {
            for j in 0..<n {
                var sum = 0.0
                for p in 0..<k {
                    let x = transposeA ? a[p * lda + i] : a[i * lda + p], y = transposeB ? b[j * ldb + p] : b[p * ldb + j]
                    sum += Double(x) * Double(y)
                }
                let old = beta == 0 ? 0 : Double(beta) * Double(c[i * ldc + j])  // beta 0 ignores C, NaN included
                c[i * ldc + j] = Float(Double(alpha) * sum + old)
            }
        }
    }

    private static func checkGemm(m: Int, n: Int, k: Int, lda: Int?, transposeA: Bool, ldb: Int?, transposeB: Bool,
                                  ldc: Int?) -> (Int, Int, Int) {
        precondition(m >= 0 && n >= 0 && k >= 0, "gemm: negative shape \(m) × \(n) × \(k)")
        let widthA = transposeA ? m : k, widthB = transposeB ? k : n
        let lda = lda ?? max(1, widthA), ldb = ldb ?? max(1, widthB), ldc = ldc ?? max(1, n)
        precondition(lda >= max(1, widthA), "gemm: lda \(lda) below the width \(widthA) of A as stored")
        precondition(ldb >= max(1, widthB), "gemm: ldb \(ldb) below the width \(widthB) of B as stored")
        precondition(ldc >= max(1, n), "gemm: ldc \(ldc) below the width \(n) of C")
        let limit = Int(Int32.max)
        precondition(m <= limit && n <= limit && k <= limit && lda <= limit && ldb <= limit && ldc <= limit,
                     "gemm: a dimension exceeds BLAS's 32-bit integers")
        return (lda, ldb, ldc)
    }

    /// y = alpha · op(A) · x + beta · y, A row-major rows × cols (op(A) = Aᵀ with `transpose`).
    public static func gemv(rows: Int, cols: Int, alpha: Float = 1, _ a: UnsafePointer<Float>, transpose: Bool = false,
                            _ x: UnsafePointer<Float>, beta: Float = 0, _ y: UnsafeMutablePointer<Float>) {
        precondition(rows >= 0 && cols >= 0 && rows <= Int(Int32.max) && cols <= Int(Int32.max), "gemv: shape \(rows) × \(cols)")
        guard rows > 0, cols > 0 else { return }
        cblas_sgemv(CblasRowMajor, transpose ? CblasTrans : CblasNoTrans, Int32(rows), Int32(cols), alpha, a, Int32(cols),
                    x, 1, beta, y, 1)
    }

    /// `gemv` in double precision: the reference.
    public static func gemvNaive(rows: Int, cols: Int, alpha: Float = 1, _ a: UnsafePointer<Float>, transpose: Bool = false,
                                 _ x: UnsafePointer<Float>, beta: Float = 0, _ y: UnsafeMutablePointer<Float>) {
        let outputs = transpose ? cols : rows, inputs = transpose ? rows : cols
        for o in 0..<outputs {
            var sum = 0.0
            for i in 0..<inputs { sum += Double(transpose ? a[i * cols + o] : a[o * cols + i]) * Double(x[i]) }
            y[o] = Float(Double(alpha) * sum + (beta == 0 ? 0 : Double(beta) * Double(y[o])))
        }
    }

    /// y += alpha · x over n values.
    @inline(__always)
    public static func axpy(_ n: Int, _ alpha: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>) {
        cblas_saxpy(Int32(n), alpha, x, 1, y, 1)
    }

    /// `axpy`, one value at a time: the reference.
    public static func axpyNaive(_ n: Int, _ alpha: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>) {
        for k in 0..<n { y[k] = Float(Double(y[k]) + Double(alpha) * Double(x[k])) }
    }

    /// Replaces the symmetric positive definite n × n matrix `a` (row-major, both triangles
    /// set) with its inverse, through its Cholesky factor. Returns false, leaving `a`
    /// undefined, when it is not positive definite.
    public static func invertPositiveDefinite(_ a: inout [Float], n: Int) -> Bool {
        precondition(a.count == n * n && n <= Int(Int32.max), "invertPositiveDefinite: \(a.count) values for \(n) × \(n)")
        guard n > 0 else { return true }
        // Row-major symmetric = column-major symmetric: 'U' in LAPACK is the lower triangle here.
        var size = Int32(n), info: Int32 = 0
        var uplo = CChar(UInt8(ascii: "U"))
        spotrf_(&uplo, &size, &a, &size, &info)
        guard info == 0 else { return false }
        spotri_(&uplo, &size, &a, &size, &info)
        guard info == 0 else { return false }
        // spotri filled the lower triangle (row-major view); mirror it.
        a.withUnsafeMutableBufferPointer { p in
            for i in 0..<n { for j in (i + 1)..<max(i + 1, n) { p[i * n + j] = p[j * n + i] } }
        }
        return true
    }

    /// `invertPositiveDefinite` by Gauss–Jordan elimination in double precision: the reference.
    public static func invertPositiveDefiniteNaive(_ a: inout [Float], n: Int) -> Bool {
        var m = a.map(Double.init), inverse = [Double](repeating: 0, count: n * n)
        for i in 0..<n { inverse[i * n + i] = 1 }
        for col in 0..<n {
            let pivot = m[col * n + col]
            guard pivot > 0 else { return false }  // a positive definite matrix keeps positive pivots
            for j in 0..<n { m[col * n + j] /= pivot; inverse[col * n + j] /= pivot }
            for row in 0..<n where row != col {
                let factor = m[row * n + col]
                if factor == 0 { continue }
                for j in 0..<n { m[row * n + j] -= factor * m[col * n + j]; inverse[row * n + j] -= factor * inverse[col * n + j] }
            }
        }
        a = inverse.map(Float.init)
        return true
    }

    /// Solves A·x = b for the symmetric positive definite n × n `a` (destroyed: it holds the
    /// Cholesky factor after); `b` becomes x. Returns false when `a` is not positive definite.
    public static func solvePositiveDefinite(_ a: inout [Float], _ b: inout [Float], n: Int) -> Bool {
        precondition(a.count == n * n && b.count == n && n <= Int(Int32.max), "solvePositiveDefinite: shapes")
        guard n > 0 else { return true }
        var size = Int32(n), info: Int32 = 0, one: Int32 = 1
        var uplo = CChar(UInt8(ascii: "U"))
        spotrf_(&uplo, &size, &a, &size, &info)
        guard info == 0 else { return false }
        spotrs_(&uplo, &size, &one, &a, &size, &b, &size, &info)
        return info == 0
    }

    /// `solvePositiveDefinite` through the naive inverse: the reference.
    public static func solvePositiveDefiniteNaive(_ a: inout [Float], _ b: inout [Float], n: Int) -> Bool {
        guard invertPositiveDefiniteNaive(&a, n: n) else { return false }
        b = (0..<n).map { i in Float((0..<n).reduce(0.0) { $0 + Double(a[i * n + $1]) * Double(b[$1]) }) }
        return true
    }

    public static var threads: Int {
        get { Int(openblas_get_num_threads()) }
        set { openblas_set_num_threads(Int32(newValue)) }
    }

    /// The kernel family OpenBLAS chose for this CPU (e.g. "Zen").
    public static var coreName: String { String(cString: openblas_get_corename()) }
}

extension BLAS {
    /// OpenBLAS reads two settings from the environment when it loads, so a change means
    /// restarting the process once, with the settings in its environment (values the user
    /// set are left alone). Called first thing by the command line.
    /// - OPENBLAS_CORETYPE: OpenBLAS picks its kernels from the CPU model; where it cannot
    ///   identify the CPU it falls back to kernels without AVX2, at half the speed or less.
    ///   The core type is then chosen from the CPU's feature flags.
    /// - OPENBLAS_THREAD_TIMEOUT: after each product OpenBLAS's worker threads keep polling
    ///   for the next one for about 2^28 cycles by default, taking cores from the work that
    ///   runs between products on threads of recpipe's own (top-K selection while scoring:
    ///   2.9 s against 1.3 s for 136,000 users on 2 cores). 2^4 lets them sleep at once;
    ///   training epochs measured the same either way.
    public static func configureProcess() {
        var changed = false
        if getenv("OPENBLAS_CORETYPE") == nil, let core = betterCoreType() {
            setenv("OPENBLAS_CORETYPE", core, 1)
            changed = true
        }
        if getenv("OPENBLAS_THREAD_TIMEOUT") == nil {
            setenv("OPENBLAS_THREAD_TIMEOUT", "4", 1)
            changed = true
        }
        guard changed else { return }
        // The arguments as the process received them (byte for byte, whatever their encoding).
        execv("/proc/self/exe", CommandLine.unsafeArgv)
        // execv returns only on failure: carry on with what OpenBLAS chose.
    }

    /// Kernel families OpenBLAS falls back to when it cannot identify the CPU (virtual
    /// machines often hide the model), none of which uses AVX2.
    static let fallbackCores: Set<String> = [
        "Prescott", "Core2", "Penryn", "Dunnington", "Nehalem", "Sandybridge", "Atom", "Barcelona", "Bobcat",
        "Bulldozer", "Piledriver", "Steamroller", "Excavator",
    ]

    /// The OpenBLAS core type this CPU supports when OpenBLAS chose a fallback without AVX2
    /// although the CPU has it (from the feature flags in /proc/cpuinfo), else nil.
    public static func betterCoreType(cpuinfo: String? = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
                                      current: String = BLAS.coreName) -> String? {
        guard fallbackCores.contains(current), let cpuinfo,
              let line = cpuinfo.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return nil }
        let flags = Set(line.split(separator: " ").map(String.init))
        if ["avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"].allSatisfy(flags.contains) { return "SkylakeX" }
        if ["avx2", "fma"].allSatisfy(flags.contains) { return "Haswell" }
        return nil
    }
}
