import CBLAS
import Foundation

/// Thin wrappers over OpenBLAS.
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
                    cblas_sgemm(CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
                                Int32(m), Int32(n), Int32(k), alpha, pa.baseAddress, Int32(a.cols), pb.baseAddress,
                                Int32(b.cols), beta, pc.baseAddress, Int32(c.cols))
                }
            }
        }
    }

    public static var threads: Int {
        get { Int(openblas_get_num_threads()) }
        set { openblas_set_num_threads(Int32(newValue)) }
    }

    /// The kernel family OpenBLAS chose for this CPU (e.g. "Zen").
    public static var coreName: String { String(cString: openblas_get_corename()) }
}

extension BLAS {
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
