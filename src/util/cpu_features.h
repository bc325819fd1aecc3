// What the processor (and the operating system) let us run, detected once, and
// the kernel "level" chosen from it.
//
// A feature counts only when the CPU reports it AND the OS saves its register
// state (XCR0 via xgetbv); AMX additionally needs Linux's per-process
// permission (arch_prctl ARCH_REQ_XCOMP_PERM) and a probe instruction that ran
// under a SIGILL guard. Detection never executes an instruction the machine
// might not have.
//
// Levels are ordered: a machine that has a level has every lower one. The
// active level is the highest the machine has, lowered by the environment
// variable POCKET_CPU_LEVEL (scalar|avx2|avx512) or limit_cpu_level() (a CLI
// flag), so tests and users can force a lower level but never a higher one.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pocket {

struct CpuFeatures {
  std::string vendor;  // "GenuineIntel", "AuthenticAMD", ...
  bool avx = false;
  bool avx2 = false;
  bool fma = false;
  bool f16c = false;
  bool avx512f = false;
  bool avx512bw = false;
  bool avx512vl = false;
  bool avx512dq = false;
  bool avx512vnni = false;
  bool avx512bf16 = false;
  bool avx_vnni = false;  // the VEX (256-bit) form of VNNI
  bool amx_tile = false;
  bool amx_int8 = false;
  bool amx_bf16 = false;

  // Space-separated list of the usable features, for logs and `pocket bench`.
  std::string describe() const;
};

// Detected on first call (thread-safe), then cached.
const CpuFeatures& cpu_features();

enum class CpuLevel : int {
  kScalar = 0,  // portable C++
  kAvx2 = 1,    // AVX2 + FMA + F16C (x86-64-v3)
  kAvx512 = 2,  // + AVX-512 F/BW/VL/DQ (x86-64-v4)
};

const char* cpu_level_name(CpuLevel level);
// "scalar", "avx2", "avx512"; nullopt for anything else.
std::optional<CpuLevel> parse_cpu_level(std::string_view name);

// The highest level this machine supports.
CpuLevel machine_cpu_level();
// The level in force: machine_cpu_level(), lowered by POCKET_CPU_LEVEL and by
// limit_cpu_level(). Throws pocket::Error if POCKET_CPU_LEVEL is not a level name.
CpuLevel cpu_level();
// Lowers the active level (a `--cpu-level` flag); a level above the machine's
// is clamped to it. Call before the kernels are chosen.
void limit_cpu_level(CpuLevel level);

// Every level from scalar up to the machine's (for tests that cover them all).
std::vector<CpuLevel> machine_cpu_levels();

}  // namespace pocket
