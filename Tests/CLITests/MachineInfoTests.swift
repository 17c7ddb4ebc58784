import Testing
@testable import RecpipeBench

/// What benchmarks record of the machine, read from /proc/cpuinfo as each CPU family writes it.
@Suite(.tags(.small)) struct MachineInfoTests {
    @Test func theVectorFamilyComesFromTheFlags() {
        let intel = """
            processor\t: 0
            model name\t: Intel(R) Xeon(R) Platinum 8480+
            flags\t\t: fpu sse2 avx fma avx2 avx512f avx512dq avx512bw avx512vl avx512_vnni avx512_bf16
            """
        let amd = """
            processor\t: 0
            model name\t: AMD EPYC 7B13 64-Core Processor
            flags\t\t: fpu sse2 avx fma avx2 bmi2
            """
        let old = "model name\t: Some CPU\nflags\t\t: fpu sse2 avx\n"
        let a = MachineInfo.current(cpuinfo: intel), b = MachineInfo.current(cpuinfo: amd), c = MachineInfo.current(cpuinfo: old)
        #expect(a.family == "AVX-512" && a.cpuModel == "Intel(R) Xeon(R) Platinum 8480+")
        #expect(a.flags == ["avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16"])
        #expect(b.family == "AVX2" && b.flags == ["avx2", "fma"] && b.cpuModel.hasPrefix("AMD EPYC"))
        #expect(c.family == "other" && c.flags.isEmpty && c.line.contains("no AVX2"))
        #expect(MachineInfo.current(cpuinfo: nil).cpuModel == "unknown")
        #expect(b.line.hasPrefix("machine: AMD EPYC 7B13 64-Core Processor, AVX2 (avx2 fma), "))
    }

    /// RECPIPE_KERNELS picks a kernel variant the CPU has; a name it does not know is a usage
    /// error (64) before anything runs, not a silent fallback.
    @Test func kernelVariantFromTheEnvironment() throws {
        #expect(try recpipeShell("RECPIPE_KERNELS=default '\(recpipeBinary)' --help >/dev/null") == 0)
        #expect(try recpipeShell("RECPIPE_KERNELS=avx9 '\(recpipeBinary)' --help >/dev/null") == 64)
        #expect(try recpipeShell("RECPIPE_KERNELS= '\(recpipeBinary)' --help >/dev/null") == 0)
    }
}
