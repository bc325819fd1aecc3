#include "util/cpu_features.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "util/error.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define POCKET_X86 1
#endif

#if defined(POCKET_X86) && defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#include <csetjmp>
#include <csignal>
#define POCKET_X86_LINUX 1
#endif

namespace pocket {

namespace {

#ifdef POCKET_X86

struct CpuidRegs {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
};

CpuidRegs cpuid(unsigned leaf, unsigned subleaf) {
  CpuidRegs r;
  __cpuid_count(leaf, subleaf, r.eax, r.ebx, r.ecx, r.edx);
  return r;
}

bool bit(unsigned reg, int n) {
  return (reg >> n) & 1u;
}

// XCR0: which register states the OS saves on context switch. Only valid to
// call when CPUID.1:ECX.OSXSAVE is set.
uint64_t read_xcr0() {
  unsigned lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (uint64_t(hi) << 32) | lo;
}

#ifdef POCKET_X86_LINUX
// Linux keeps AMX tile data off by default; a process asks for it once.
bool request_amx_permission() {
  constexpr long kArchReqXcompPerm = 0x1023;
  constexpr long kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
}

sigjmp_buf g_probe_jump;
void on_probe_sigill(int) {
  siglongjmp(g_probe_jump, 1);
}

// Loads a one-tile configuration, zeroes the tile and releases it, with SIGILL
// turned into a "no". The instructions are spelled as bytes so that any
// assembler accepts them (ldtilecfg (%rdi); tilezero %tmm0; tilerelease).
bool amx_probe_runs() {
  alignas(64) static unsigned char config[64];
  std::memset(config, 0, sizeof config);
  config[0] = 1;   // palette 1
  config[16] = 4;  // tile 0: 4 bytes per row
  config[48] = 1;  // tile 0: 1 row

  struct sigaction guard {
  }, previous{};
  guard.sa_handler = on_probe_sigill;
  sigemptyset(&guard.sa_mask);
  if (sigaction(SIGILL, &guard, &previous) != 0) return false;
  volatile bool ran = false;
  if (sigsetjmp(g_probe_jump, 1) == 0) {
    __asm__ volatile(".byte 0xc4,0xe2,0x78,0x49,0x07" ::"D"(config) : "memory");  // ldtilecfg
    __asm__ volatile(".byte 0xc4,0xe2,0x7b,0x49,0xc0" ::: "memory");              // tilezero tmm0
    __asm__ volatile(".byte 0xc4,0xe2,0x78,0x49,0xc0" ::: "memory");              // tilerelease
    ran = true;
  }
  sigaction(SIGILL, &previous, nullptr);
  return ran;
}
#endif  // POCKET_X86_LINUX

CpuFeatures detect() {
  CpuFeatures f;
  const CpuidRegs leaf0 = cpuid(0, 0);
  char vendor[13] = {};
  std::memcpy(vendor + 0, &leaf0.ebx, 4);
  std::memcpy(vendor + 4, &leaf0.edx, 4);
  std::memcpy(vendor + 8, &leaf0.ecx, 4);
  f.vendor = vendor;
  const unsigned max_leaf = leaf0.eax;
  if (max_leaf < 1) return f;

  const CpuidRegs leaf1 = cpuid(1, 0);
  const bool osxsave = bit(leaf1.ecx, 27);
  const uint64_t xcr0 = osxsave ? read_xcr0() : 0;
  const bool os_avx = (xcr0 & 0x6) == 0x6;          // XMM and YMM state
  const bool os_avx512 = (xcr0 & 0xE6) == 0xE6;     // + opmask, ZMM_Hi256, Hi16_ZMM
  const bool os_amx = (xcr0 & 0x60000) == 0x60000;  // XTILECFG and XTILEDATA

  f.avx = os_avx && bit(leaf1.ecx, 28);
  f.fma = f.avx && bit(leaf1.ecx, 12);
  f.f16c = f.avx && bit(leaf1.ecx, 29);
  if (max_leaf < 7) return f;

  const CpuidRegs leaf7 = cpuid(7, 0);
  f.avx2 = f.avx && bit(leaf7.ebx, 5);
  f.avx512f = os_avx512 && bit(leaf7.ebx, 16);
  f.avx512dq = f.avx512f && bit(leaf7.ebx, 17);
  f.avx512bw = f.avx512f && bit(leaf7.ebx, 30);
  f.avx512vl = f.avx512f && bit(leaf7.ebx, 31);
  f.avx512vnni = f.avx512f && bit(leaf7.ecx, 11);
  if (leaf7.eax >= 1) {
    const CpuidRegs leaf7_1 = cpuid(7, 1);
    f.avx_vnni = f.avx2 && bit(leaf7_1.eax, 4);
    f.avx512bf16 = f.avx512f && bit(leaf7_1.eax, 5);
  }
  const bool cpu_amx_tile = bit(leaf7.edx, 24);
#ifdef POCKET_X86_LINUX
  if (os_amx && cpu_amx_tile && request_amx_permission() && amx_probe_runs()) {
    f.amx_tile = true;
    f.amx_int8 = bit(leaf7.edx, 25);
    f.amx_bf16 = bit(leaf7.edx, 22);
  }
#else
  (void)os_amx;
  (void)cpu_amx_tile;
#endif
  return f;
}

#else  // not x86

CpuFeatures detect() {
  return CpuFeatures{};
}

#endif

CpuLevel level_of(const CpuFeatures& f) {
  if (!(f.avx2 && f.fma && f.f16c)) return CpuLevel::kScalar;
  if (!(f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq)) return CpuLevel::kAvx2;
  return CpuLevel::kAvx512;
}

std::atomic<int> g_level_limit{int(CpuLevel::kAvx512)};

}  // namespace

std::string CpuFeatures::describe() const {
  std::string out;
  auto add = [&](bool has, const char* name) {
    if (!has) return;
    if (!out.empty()) out += ' ';
    out += name;
  };
  add(avx, "avx");
  add(avx2, "avx2");
  add(fma, "fma");
  add(f16c, "f16c");
  add(avx512f, "avx512f");
  add(avx512bw, "avx512bw");
  add(avx512vl, "avx512vl");
  add(avx512dq, "avx512dq");
  add(avx512vnni, "avx512vnni");
  add(avx512bf16, "avx512bf16");
  add(avx_vnni, "avxvnni");
  add(amx_tile, "amx-tile");
  add(amx_int8, "amx-int8");
  add(amx_bf16, "amx-bf16");
  return out.empty() ? "none" : out;
}

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = detect();
  return features;
}

const char* cpu_level_name(CpuLevel level) {
  switch (level) {
    case CpuLevel::kScalar:
      return "scalar";
    case CpuLevel::kAvx2:
      return "avx2";
    case CpuLevel::kAvx512:
      return "avx512";
  }
  return "?";
}

std::optional<CpuLevel> parse_cpu_level(std::string_view name) {
  for (CpuLevel l : {CpuLevel::kScalar, CpuLevel::kAvx2, CpuLevel::kAvx512})
    if (name == cpu_level_name(l)) return l;
  return std::nullopt;
}

CpuLevel machine_cpu_level() {
  static const CpuLevel level = level_of(cpu_features());
  return level;
}

CpuLevel cpu_level() {
  static const CpuLevel env_limit = [] {
    const char* env = std::getenv("POCKET_CPU_LEVEL");
    if (!env || !*env) return CpuLevel::kAvx512;
    const auto parsed = parse_cpu_level(env);
    if (!parsed) fail("POCKET_CPU_LEVEL='", env, "' is not a CPU level (scalar, avx2 or avx512)");
    return *parsed;
  }();
  int level = int(machine_cpu_level());
  if (int(env_limit) < level) level = int(env_limit);
  const int flag_limit = g_level_limit.load(std::memory_order_relaxed);
  if (flag_limit < level) level = flag_limit;
  return CpuLevel(level);
}

void limit_cpu_level(CpuLevel level) {
  g_level_limit.store(int(level), std::memory_order_relaxed);
}

std::vector<CpuLevel> machine_cpu_levels() {
  std::vector<CpuLevel> out;
  for (int l = 0; l <= int(machine_cpu_level()); l++) out.push_back(CpuLevel(l));
  return out;
}

}  // namespace pocket
