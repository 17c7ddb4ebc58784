import Foundation
import RecpipeNumerics

/// The machine a benchmark ran on, as benchmarks record it: figures from an AVX-512 machine
/// and from an AVX2-only one are not comparable, and OpenBLAS picks its kernels by CPU.
public struct MachineInfo: Codable, Sendable, Equatable {
    /// `model name` from /proc/cpuinfo.
    public var cpuModel: String
    /// The widest vector family the CPU has: "AVX-512", "AVX2" or "other".
    public var family: String
    /// The CPU flags that decide which kernels run (of avx2, fma, avx512f, avx512bw, avx512vl,
    /// avx512_vnni, avx512_bf16), in that order.
    public var flags: [String]
    public var cores: Int
    /// The OpenBLAS kernel set in use, and its threads.
    public var openblasCore: String
    public var blasThreads: Int
    /// recpipe's own kernel variant in use ("avx512", "avx2", "default"; `Kernels.variant`).
    public var kernels: String

    static let kernelFlags = ["avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16"]

    /// This machine, from `cpuinfo` (default: /proc/cpuinfo).
    public static func current(cpuinfo: String? = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) -> MachineInfo {
        let lines = (cpuinfo ?? "").split(separator: "\n")
        func value(_ key: String) -> String? {
            lines.first { $0.hasPrefix(key) }.flatMap { $0.split(separator: ":", maxSplits: 1).last }
                .map { $0.trimmingCharacters(in: .whitespaces) }
        }
        let present = Set((value("flags") ?? "").split(separator: " ").map(String.init))
        let flags = kernelFlags.filter(present.contains)
        let family = flags.contains("avx512f") ? "AVX-512" : flags.contains("avx2") ? "AVX2" : "other"
        return MachineInfo(cpuModel: value("model name") ?? "unknown", family: family, flags: flags,
                           cores: ProcessInfo.processInfo.activeProcessorCount, openblasCore: BLAS.coreName, blasThreads: BLAS.threads,
                           kernels: Kernels.description)
    }

    /// One line for a benchmark's output.
    public var line: String {
        "machine: \(cpuModel), \(family) (\(flags.isEmpty ? "no AVX2" : flags.joined(separator: " "))), \(cores) cores; OpenBLAS \(openblasCore), \(blasThreads) threads; recpipe kernels \(kernels)"
    }
}
