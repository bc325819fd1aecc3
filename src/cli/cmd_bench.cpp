// `pocket bench`: prompt-processing and generation speed (named like
// llama-bench's tests: pp512, tg128), the machine's memory read bandwidth and
// the bandwidth-bound decode ceiling of the model; or, with --kernels, a matmul
// micro-benchmark that needs no model.
//
//   pocket bench -m model.gguf                    # pp512, tg128, 5 repetitions
//   pocket bench -m model.gguf -p 0 -n 64 --batch 8 --json
//   pocket bench --kernels q4_K,q6_K,q8_0,f16 -p 512
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "cli/args.h"
#include "cli/commands.h"
#include "kernels/fast_kernels.h"
#include "kernels/fast_ops.h"
#include "kernels/matmul.h"
#include "kernels/membw.h"
#include "model/model.h"
#include "quant/quant.h"
#include "runtime/generate.h"
#include "runtime/sequence.h"
#include "util/cpu_features.h"
#include "util/error.h"
#include "util/huge_page_allocator.h"
#include "util/thread_pool.h"

namespace pocket::cli {

namespace {

const char* kUsage = R"(usage: pocket bench -m FILE [options]
       pocket bench --kernels TYPES [options]

Measures prompt processing (ppP: P prompt tokens in one sequence) and generation
(tgN: N tokens decoded one step at a time from an empty context; with --batch B,
B sequences decode together, each step one forward call) in tokens/s, mean +-
standard deviation over the repetitions, after one warm-up run. Also measures the
memory read bandwidth (all threads streaming a 512 MiB buffer) and prints the
bandwidth-bound decode ceiling: bytes of weights one decode step reads / bandwidth.

options:
  -m, --model FILE       GGUF model
  -p, --n-prompt P       prompt tokens (default 512; 0 = skip)
  -n, --n-gen N          generated tokens (default 128; 0 = skip)
  -t, --threads T        threads (default: physical cores)
  -r, --repetitions R    measured runs per test (default 5)
  --batch B              sequences decoding together in the tg test (default 1)
  --ubatch U             prompt tokens per forward call (default P)
  --kv-type f16|f32|q8_0 KV cache type (default f16)
  --weights map|copy|hugepages
                         where the weights live: the file mapped (default), a
                         private copy, or a copy on 2 MiB pages (fewer TLB misses)
  --cpu-level L          use kernels up to level L (scalar, avx2, avx512)
  --reference            reference kernels (exact f32 activations, one thread)
  --no-bandwidth         skip the bandwidth measurement
  --profile              time every kernel (thread CPU time of the calling thread;
                         use -t 1 to count all the work) and print a breakdown;
                         matmul per weight type and bytes per call, with the speed
                         its weights stream at (weight GB/s)
  --profile-matmul       the same with only the matrix products timed: the
                         "outside matmul" time per token without the timers'
                         own cost on the many small kernel calls
  --ab-unfused           tg test alternates, repetition by repetition, the fused
                         decode DeltaNet step with the same step as separate
                         kernels (A/B of Ops::deltanet_step), one row each
  --ab-strips            the same for the per-token delta rule's visiting order:
                         rows (current) against 32-column strips (before)
  --ab-state-4k          the same for where the recurrent state lives: huge
                         pages (current) against 4 KiB pages (before); the --ab
                         options combine (B = all the earlier variants at once)
  --kernels TYPES        matmul micro-benchmark for comma-separated weight types
                         (q4_K,q6_K,q8_0,f16,...): decode (1 row) on a 256 MiB
                         matrix and prefill (P rows) on 1024 x 3584, with the
                         machine's multiply-add peak of each type's inner loop
  --decode-mib M         size of the --kernels decode matrix in MiB (default 256;
                         one that fits the caches, e.g. 1, shows the compute speed)
  --decode-matrices K    K distinct decode matrices of that size, multiplied one
                         after another (default 1): e.g. --decode-mib 1.2
                         --decode-matrices 64 shows the cost per product of a
                         decode step's many small cold matrices
  --json                 one JSON object instead of the table
)";

struct Stats {
  double mean = 0, stddev = 0;
  std::vector<double> samples;
};

Stats stats_of(const std::vector<double>& v) {
  Stats s;
  s.samples = v;
  if (v.empty()) return s;
  for (double x : v) s.mean += x;
  s.mean /= double(v.size());
  if (v.size() > 1) {
    double ss = 0;
    for (double x : v) ss += (x - s.mean) * (x - s.mean);
    s.stddev = std::sqrt(ss / double(v.size() - 1));
  }
  return s;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

long long int_option(Args& args, const char* name, const char* alt, long long dflt) {
  auto v = args.value(name, alt);
  if (!v) return dflt;
  char* end = nullptr;
  const long long r = std::strtoll(v->c_str(), &end, 10);
  if (v->empty() || *end || r < 0) fail("option ", name, ": expected a count, got '", *v, "'");
  return r;
}

double double_option(Args& args, const char* name, double dflt) {
  auto v = args.value(name);
  if (!v) return dflt;
  char* end = nullptr;
  const double r = std::strtod(v->c_str(), &end);
  if (v->empty() || *end) fail("option ", name, ": expected a number, got '", *v, "'");
  return r;
}

std::string format_bytes(uint64_t b) {
  char buf[64];
  if (b >= (uint64_t(1) << 30))
    std::snprintf(buf, sizeof buf, "%.2f GiB", double(b) / double(uint64_t(1) << 30));
  else
    std::snprintf(buf, sizeof buf, "%.1f MiB", double(b) / double(1 << 20));
  return buf;
}

// ---------------------------------------------------------------------------
// --profile: where the time goes. Every kernel of the table is wrapped with a
// timer (thread CPU time of the calling thread, and wall time); matmul is
// broken down by weight type and bytes per call. Run with -t 1 for CPU times
// that include all the work (with more threads only the calling thread's share
// is counted).

struct ProfileSlot {
  std::string name;
  int64_t calls = 0;
  double cpu_s = 0, wall_s = 0;
  uint64_t bytes_per_call = 0;  // matmul slots: weight bytes one call reads
};
std::vector<ProfileSlot>& profile_slots() {
  static std::vector<ProfileSlot> slots;
  return slots;
}
kernels::Ops g_profiled_inner;  // the table being measured
bool g_profile = false;

double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}

class ProfileScope {
 public:
  explicit ProfileScope(size_t slot)
      : slot_(slot), cpu0_(thread_cpu_seconds()), wall0_(std::chrono::steady_clock::now()) {}
  ~ProfileScope() {
    ProfileSlot& s = profile_slots()[slot_];
    s.calls++;
    s.cpu_s += thread_cpu_seconds() - cpu0_;
    s.wall_s += seconds_since(wall0_);
  }

 private:
  size_t slot_;
  double cpu0_;
  std::chrono::steady_clock::time_point wall0_;
};

template <auto Member, typename Fn>
struct Timed;
template <auto Member, typename... Args>
struct Timed<Member, void (*)(Args...)> {
  static inline size_t slot = 0;
  static void call(Args... args) {
    ProfileScope scope(slot);
    (g_profiled_inner.*Member)(args...);
  }
};

template <auto Member>
void wrap(kernels::Ops& t, const char* name) {
  using W = Timed<Member, std::remove_reference_t<decltype(t.*Member)>>;
  W::slot = profile_slots().size();
  profile_slots().push_back({name});
  t.*Member = &W::call;
}

// Matmul slots by weight type and weight bytes per call (one slot per matrix
// shape of the model: the small per-layer products and the LM head stream at
// different speeds). A group is counted under its first product's type.
size_t matmul_slot(uint32_t type, uint64_t bytes) {
  static std::map<std::pair<uint32_t, uint64_t>, size_t> slots;
  auto [it, added] = slots.try_emplace({type, bytes}, profile_slots().size());
  if (added) {
    char name[64];
    std::snprintf(name, sizeof name, "matmul %s %.2f MB",
                  std::string(gguf::type_name(type)).c_str(), double(bytes) * 1e-6);
    profile_slots().push_back({name, 0, 0, 0, bytes});
  }
  return it->second;
}

void timed_matmul(const kernels::Mat& w, const float* x, int64_t n_rows, int64_t x_stride, float* y,
                  int64_t y_stride) {
  ProfileScope scope(matmul_slot(uint32_t(w.type), uint64_t(w.n_out) * w.row_bytes));
  g_profiled_inner.matmul(w, x, n_rows, x_stride, y, y_stride);
}

void timed_matmul_group(const kernels::MatmulOut* outs, int n_outs, const float* x, int64_t n_rows,
                        int64_t x_stride) {
  uint64_t bytes = 0;
  for (int i = 0; i < n_outs; i++) bytes += uint64_t(outs[i].w.n_out) * outs[i].w.row_bytes;
  ProfileScope scope(matmul_slot(n_outs > 0 ? uint32_t(outs[0].w.type) : 0, bytes));
  g_profiled_inner.matmul_group(outs, n_outs, x, n_rows, x_stride);
}

// matmul_only: time the weight products alone, so that the ~1000 small kernel
// calls of a decode step do not pay a timer each (the timers themselves, a
// syscall for the thread CPU clock, would add ~1 ms per token to "outside").
void install_profiler(bool matmul_only) {
  g_profiled_inner = kernels::ops();
  static kernels::Ops table;
  table = g_profiled_inner;
  table.name = g_profiled_inner.name;
  table.matmul = timed_matmul;
  table.matmul_group = timed_matmul_group;
  if (matmul_only) {  // and the few per-layer sequence kernels (a timer each is cheap there)
    wrap<&kernels::Ops::deltanet_step>(table, "deltanet_step");
    wrap<&kernels::Ops::attention>(table, "attention");
    kernels::set_ops(table);
    return;
  }
  wrap<&kernels::Ops::rmsnorm>(table, "rmsnorm");
  wrap<&kernels::Ops::l2norm>(table, "l2norm");
  wrap<&kernels::Ops::softmax>(table, "softmax");
  wrap<&kernels::Ops::silu>(table, "silu");
  wrap<&kernels::Ops::sigmoid>(table, "sigmoid");
  wrap<&kernels::Ops::swiglu>(table, "swiglu");
  wrap<&kernels::Ops::rope>(table, "rope");
  wrap<&kernels::Ops::kv_store>(table, "kv_store");
  wrap<&kernels::Ops::attention>(table, "attention");
  wrap<&kernels::Ops::conv1d_silu>(table, "conv1d_silu");
  wrap<&kernels::Ops::gated_delta_rule>(table, "gated_delta_rule");
  wrap<&kernels::Ops::deltanet_step>(table, "deltanet_step");
  wrap<&kernels::Ops::add_rmsnorm>(table, "add_rmsnorm");
  wrap<&kernels::Ops::sigmoid_mul>(table, "sigmoid_mul");
  wrap<&kernels::Ops::rmsnorm_silu_gate>(table, "rmsnorm_silu_gate");
  kernels::set_ops(table);
}

void reset_profile() {
  for (ProfileSlot& s : profile_slots()) s.calls = 0, s.cpu_s = 0, s.wall_s = 0;
}

void print_profile(const char* test, double total_cpu_s, double total_wall_s, int64_t tokens) {
  std::vector<ProfileSlot> slots;
  double cpu = 0, wall = 0;
  for (const ProfileSlot& s : profile_slots())
    if (s.calls) {
      slots.push_back(s);
      cpu += s.cpu_s;
      wall += s.wall_s;
    }
  slots.push_back({"(outside kernels)", 0, total_cpu_s - cpu, total_wall_s - wall, 0});
  std::sort(slots.begin(), slots.end(),
            [](const auto& a, const auto& b) { return a.cpu_s > b.cpu_s; });
  std::printf("\nprofile of %s (calling thread: CPU %.1f ms, wall %.1f ms)\n", test,
              total_cpu_s * 1e3, total_wall_s * 1e3);
  double matmul_wall = 0;
  for (const ProfileSlot& s : slots)
    if (s.bytes_per_call) matmul_wall += s.wall_s;
  // The part a decode step spends outside the weight products (small kernels,
  // glue, hand-offs): what --profile of tg is mostly used to find.
  std::printf("per token (%lld tokens): wall %.3f ms, matmul %.3f ms, outside matmul %.3f ms\n",
              (long long)tokens, total_wall_s * 1e3 / double(std::max<int64_t>(1, tokens)),
              matmul_wall * 1e3 / double(std::max<int64_t>(1, tokens)),
              (total_wall_s - matmul_wall) * 1e3 / double(std::max<int64_t>(1, tokens)));
  std::printf("| %-24s | %7s | %10s | %6s | %10s | %11s | %9s |\n", "kernel", "calls", "cpu ms",
              "cpu %", "wall ms", "weight GB/s", "us/token");
  for (const ProfileSlot& s : slots) {
    char gbps[32] = "";
    if (s.bytes_per_call && s.wall_s > 0)
      std::snprintf(gbps, sizeof gbps, "%.1f",
                    double(s.bytes_per_call) * double(s.calls) / s.wall_s * 1e-9);
    std::printf("| %-24s | %7lld | %10.2f | %5.1f%% | %10.2f | %11s | %9.1f |\n", s.name.c_str(),
                (long long)s.calls, s.cpu_s * 1e3, 100.0 * s.cpu_s / std::max(1e-12, total_cpu_s),
                s.wall_s * 1e3, gbps, s.wall_s * 1e6 / double(std::max<int64_t>(1, tokens)));
  }
}

// --ab-unfused: the table's deltanet_step switches between the table's own
// (fused) and the same step as its separate kernels, per repetition.
const kernels::Ops* g_ab_table = nullptr;
bool g_ab_unfused = false;

void ab_deltanet_step(const kernels::DeltaNetStep& step) {
  if (g_ab_unfused)
    kernels::deltanet_step_unfused(*g_ab_table, step);
  else
    g_ab_table->deltanet_step(step);
}

void install_ab_unfused() {
  g_ab_table = &kernels::ops();
  static kernels::Ops table;
  table = kernels::ops();
  table.deltanet_step = ab_deltanet_step;
  kernels::set_ops(table);
}

// ---------------------------------------------------------------------------
// Model benchmark

uint64_t mat_bytes(const kernels::Mat& m) {
  return uint64_t(m.n_out) * m.row_bytes;
}

// Bytes of weights one decode step reads: every matrix of every layer (for MoE
// the routed experts' expected share), the LM head and one embedding row.
uint64_t decode_bytes_per_step(const model::Model& m) {
  const model::Config& c = m.config();
  double bytes = 0;
  for (const model::Layer& L : m.layers()) {
    bytes += 2.0 * double(c.n_embd) * 4;  // norms
    if (L.kind == model::LayerKind::kAttention) {
      for (const auto* w : {&L.attn.q, &L.attn.k, &L.attn.v, &L.attn.output})
        bytes += double(mat_bytes(*w));
    } else {
      const auto& d = L.deltanet;
      for (const auto* w : {&d.qkv, &d.gate, &d.beta, &d.alpha, &d.output})
        bytes += double(mat_bytes(*w));
      bytes += double(c.ssm_conv_dim() * c.ssm_conv_kernel) * 4;
    }
    if (!c.moe) {
      for (const auto* w : {&L.ffn.gate, &L.ffn.up, &L.ffn.down}) bytes += double(mat_bytes(*w));
    } else {
      const auto& e = L.moe;
      const double experts =
          double(mat_bytes(e.gate) + mat_bytes(e.up) + mat_bytes(e.gate_up) + mat_bytes(e.down));
      bytes += experts * double(c.n_expert_used) / double(std::max<int64_t>(1, c.n_expert));
      for (const auto* w :
           {&e.router, &e.shared_gate, &e.shared_up, &e.shared_down, &e.shared_scale})
        bytes += double(mat_bytes(*w));
    }
  }
  bytes += double(mat_bytes(m.lm_head())) + double(m.token_embd().row_bytes);
  return uint64_t(bytes);
}

// The process's memory on transparent huge pages (0 where unknown).
uint64_t anon_huge_page_bytes() {
  std::FILE* f = std::fopen("/proc/self/smaps_rollup", "r");
  if (!f) return 0;
  char line[256];
  unsigned long long kb = 0;
  while (std::fgets(line, sizeof line, f))
    if (std::sscanf(line, "AnonHugePages: %llu kB", &kb) == 1) break;
  std::fclose(f);
  return uint64_t(kb) * 1024;
}

std::vector<int32_t> random_tokens(int64_t n, int64_t n_vocab, std::mt19937& rng) {
  std::uniform_int_distribution<int32_t> id(0, int32_t(std::min<int64_t>(n_vocab, 1 << 20) - 1));
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (int32_t& x : t) x = id(rng);
  return t;
}

struct TestResult {
  std::string name;
  int64_t n_prompt = 0, n_gen = 0, batch = 1;
  Stats tokens_per_s;
};

TestResult bench_prompt(const model::Model& m, runtime::KvPool& pool, int64_t p, int64_t ubatch,
                        int reps) {
  std::mt19937 rng(1);
  model::Workspace ws;
  std::vector<double> tps;
  double cpu0 = 0;
  auto wall0 = std::chrono::steady_clock::now();
  for (int rep = -1; rep < reps; rep++) {  // rep -1: warm-up
    if (g_profile && rep == 0) {
      reset_profile();
      cpu0 = thread_cpu_seconds();
      wall0 = std::chrono::steady_clock::now();
    }
    const std::vector<int32_t> tokens = random_tokens(p, m.config().n_vocab, rng);
    runtime::Sequence seq(m, pool, p + 1);
    const auto t0 = std::chrono::steady_clock::now();
    runtime::prefill(m, seq, tokens, ubatch, ws);
    const double s = seconds_since(t0);
    if (rep >= 0) tps.push_back(double(p) / s);
  }
  const std::string name = "pp" + std::to_string(p);
  if (g_profile)
    print_profile(name.c_str(), thread_cpu_seconds() - cpu0, seconds_since(wall0), p * reps);
  return {name, p, 0, 1, stats_of(tps)};
}

TestResult bench_generation(const model::Model& m, runtime::KvPool& pool, int64_t n, int64_t batch,
                            int reps) {
  std::mt19937 rng(2);
  model::Workspace ws;
  std::vector<double> tps;
  double cpu0 = 0;
  auto wall0 = std::chrono::steady_clock::now();
  for (int rep = -1; rep < reps; rep++) {
    if (g_profile && rep == 0) {
      reset_profile();
      cpu0 = thread_cpu_seconds();
      wall0 = std::chrono::steady_clock::now();
    }
    const int64_t steps = rep < 0 ? std::min<int64_t>(n, 4) : n;
    std::vector<runtime::Sequence> seqs;
    seqs.reserve(size_t(batch));
    for (int64_t b = 0; b < batch; b++) seqs.emplace_back(m, pool, n + 1);
    std::vector<int32_t> next = random_tokens(batch, m.config().n_vocab, rng);
    model::Batch step;
    for (int64_t b = 0; b < batch; b++)
      step.segments.push_back(
          {&seqs[size_t(b)], std::span<const int32_t>(&next[size_t(b)], 1), model::Logits::kLast});
    const auto t0 = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < steps; i++) {
      m.forward(step, ws);
      // The next token of each sequence: cheap and data-dependent (no sampler cost).
      for (int64_t b = 0; b < batch; b++)
        next[size_t(b)] = int32_t((next[size_t(b)] * 31 + i) % 256);
    }
    const double s = seconds_since(t0);
    if (rep >= 0) tps.push_back(double(batch * n) / s);
  }
  std::string name = "tg" + std::to_string(n);
  if (batch > 1) name += " x" + std::to_string(batch);
  if (g_profile)
    print_profile(name.c_str(), thread_cpu_seconds() - cpu0, seconds_since(wall0),
                  n * batch * reps);
  return {name, 0, n, batch, stats_of(tps)};
}

// ---------------------------------------------------------------------------
// Matmul micro-benchmark

struct KernelResult {
  std::string type, test;
  int64_t n_in, n_out, rows;
  Stats ms;
  double weight_gbps, gmacs;
  double cpu_ms;             // process CPU time per thread: close to ms unless the machine is busy
  double best_ms;            // fastest run (least disturbed by other processes)
  double peak_fraction = 0;  // GMAC/s over the machine's peak for the type's path (0: unknown)
};

double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}

// A weight matrix whose rows all hold one quantized random row (speed does
// not depend on the values; building it is fast).
std::vector<uint8_t> replicated_weights(gguf::TensorType t, int64_t n_in, int64_t n_out) {
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 0.05f);
  std::vector<float> row(static_cast<size_t>(n_in));
  for (float& v : row) v = normal(rng);
  const uint64_t rb = gguf::row_bytes(t, uint64_t(n_in));
  std::vector<uint8_t> bytes(rb * uint64_t(n_out));
  quant::quantize_row(t, row.data(), bytes.data(), n_in);
  parallel_for(n_out, [&](int64_t b, int64_t e) {
    for (int64_t o = std::max<int64_t>(b, 1); o < e; o++)
      std::copy(bytes.begin(), bytes.begin() + int64_t(rb), bytes.begin() + int64_t(rb) * o);
  });
  return bytes;
}

// n_mats distinct copies of the matrix, multiplied one after another per run:
// with more bytes in all than the caches hold, each product starts cold, as
// the many small products of a decode step do (per-call costs show).
KernelResult bench_matmul(const kernels::Ops& ops, gguf::TensorType t, const std::string& test,
                          int64_t n_in, int64_t n_out, int64_t rows, int reps, int n_mats = 1) {
  const std::vector<uint8_t> w = replicated_weights(t, n_in, n_out);
  std::vector<std::vector<uint8_t>> copies(size_t(n_mats - 1), w);
  std::vector<kernels::Mat> mats;
  for (int i = 0; i < n_mats; i++)
    mats.push_back({t, i == 0 ? w.data() : copies[size_t(i - 1)].data(), n_in, n_out,
                    gguf::row_bytes(t, uint64_t(n_in))});
  std::mt19937 rng(4);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(size_t(rows * n_in)), y(size_t(rows * n_out));
  for (float& v : x) v = normal(rng);
  std::vector<double> ms;
  double cpu = 0;
  for (int rep = -1; rep < reps; rep++) {
    const double c0 = process_cpu_seconds();
    const auto t0 = std::chrono::steady_clock::now();
    for (const kernels::Mat& mat : mats) ops.matmul(mat, x.data(), rows, n_in, y.data(), n_out);
    if (rep >= 0) {
      ms.push_back(seconds_since(t0) * 1e3);
      cpu += (process_cpu_seconds() - c0) * 1e3;
    }
  }
  KernelResult r{
      std::string(gguf::type_name(t)),        test, n_in, n_out, rows, stats_of(ms), 0, 0, 0,
      *std::min_element(ms.begin(), ms.end())};
  r.cpu_ms = cpu / reps / thread_count();
  r.weight_gbps = double(w.size()) * n_mats / (r.ms.mean * 1e-3) * 1e-9;
  r.gmacs = double(n_in) * double(n_out) * double(rows) * n_mats / (r.ms.mean * 1e-3) * 1e-9;
  return r;
}

int run_kernel_bench(const std::string& list, int64_t prompt_rows, double decode_mib,
                     int decode_matrices, int reps, bool json) {
  const kernels::Ops& ops = kernels::ops();
  const kernels::ComputePeak peak = kernels::measure_compute_peak();
  std::vector<KernelResult> results;
  std::stringstream ss(list);
  for (std::string name; std::getline(ss, name, ',');) {
    const auto t = gguf::parse_type_name(name);
    if (!t) fail("--kernels: unknown type '", name, "'");
    const int64_t n_in = 1024;
    const uint64_t rb = gguf::row_bytes(*t, n_in);
    const int64_t big_rows =
        std::max<int64_t>(1, int64_t(decode_mib * double(1 << 20) / double(rb)));
    results.push_back(bench_matmul(
        ops, *t, decode_matrices > 1 ? "decode x" + std::to_string(decode_matrices) : "decode",
        n_in, big_rows, 1, reps, decode_matrices));
    if (prompt_rows > 0)
      results.push_back(bench_matmul(ops, *t, "prefill", n_in, 3584, prompt_rows, reps));
  }
  for (KernelResult& r : results) {
    const auto t = gguf::parse_type_name(r.type);
    const bool is_float =
        *t == gguf::TensorType::F32 || *t == gguf::TensorType::F16 || *t == gguf::TensorType::BF16;
    const double p = is_float ? peak.f32_gmacs : peak.int8_gmacs;
    if (p > 0) r.peak_fraction = r.gmacs / p;
  }
  if (json) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& r : results)
      out.push_back({{"type", r.type},
                     {"test", r.test},
                     {"n_in", r.n_in},
                     {"n_out", r.n_out},
                     {"rows", r.rows},
                     {"ms", r.ms.mean},
                     {"ms_stddev", r.ms.stddev},
                     {"weight_gbps", r.weight_gbps},
                     {"gmacs", r.gmacs},
                     {"cpu_ms", r.cpu_ms},
                     {"peak_fraction", r.peak_fraction}});
    std::printf("%s\n", nlohmann::json{{"kernels", ops.name},
                                       {"threads", thread_count()},
                                       {"peak_int8_gmacs", peak.int8_gmacs},
                                       {"peak_f32_gmacs", peak.f32_gmacs},
                                       {"results", out}}
                            .dump(2)
                            .c_str());
    return 0;
  }
  std::printf("kernels %s, %d threads\n", ops.name, thread_count());
  std::printf("| %-7s | %-11s | %5s | %6s | %4s | %17s | %8s | %7s | %6s | %8s | %8s |\n", "type",
              "test", "n_in", "n_out", "rows", "ms", "GB/s", "GMAC/s", "% peak", "cpu ms",
              "best ms");
  for (const auto& r : results)
    std::printf(
        "| %-7s | %-11s | %5lld | %6lld | %4lld | %8.3f +- %6.3f | %8.2f | %7.2f | %5.0f%% | %8.3f "
        "| %8.3f |\n",
        r.type.c_str(), r.test.c_str(), (long long)r.n_in, (long long)r.n_out, (long long)r.rows,
        r.ms.mean, r.ms.stddev, r.weight_gbps, r.gmacs, 100.0 * r.peak_fraction, r.cpu_ms,
        r.best_ms);
  if (peak.int8_gmacs > 0)
    std::printf(
        "compute peak (%d threads, registers only): integer dot path (vpmaddubsw + vpmaddwd) "
        "%.1f GMAC/s, f32 FMA %.1f GMAC/s; %% peak: GMAC/s over the peak of the type's path\n",
        peak.threads, peak.int8_gmacs, peak.f32_gmacs);
  return 0;
}

}  // namespace

int cmd_bench(int argc, char** argv) {
  Args args(argc, argv);
  if (args.flag("-h", "--help")) {
    std::printf("%s", kUsage);
    return 0;
  }
  const auto model_path = args.value("-m", "--model");
  const int64_t n_prompt = int_option(args, "-p", "--n-prompt", 512);
  const int64_t n_gen = int_option(args, "-n", "--n-gen", 128);
  const int threads = int(int_option(args, "-t", "--threads", 0));
  const int reps = int(std::max<long long>(1, int_option(args, "-r", "--repetitions", 5)));
  const int64_t batch = std::max<long long>(1, int_option(args, "--batch", "", 1));
  const int64_t ubatch = int_option(args, "--ubatch", "", 0);
  const std::string kv = args.value_or("--kv-type", "f16");
  const std::string weights = args.value_or("--weights", "map");
  const auto level_name = args.value("--cpu-level");
  const bool reference = args.flag("--reference");
  const bool no_bandwidth = args.flag("--no-bandwidth");
  const bool ab_unfused = args.flag("--ab-unfused");
  const bool ab_strips = args.flag("--ab-strips");
  const bool ab_small_pages = args.flag("--ab-state-4k");
  const bool profile_matmul_only = args.flag("--profile-matmul");
  g_profile = args.flag("--profile") || profile_matmul_only;
  const auto kernel_types = args.value("--kernels");
  const double decode_mib = double_option(args, "--decode-mib", 256);
  const int decode_matrices =
      int(std::max<long long>(1, int_option(args, "--decode-matrices", "", 1)));
  if (!(decode_mib > 0) || double(decode_matrices) * decode_mib > 16384)
    fail("--decode-mib x --decode-matrices: expected a size > 0 and at most 16384 MiB in all");
  const bool json = args.flag("--json");
  args.finish();

  if (level_name) {
    const auto level = parse_cpu_level(*level_name);
    if (!level) fail("--cpu-level: '", *level_name, "' is not a level (scalar, avx2, avx512)");
    limit_cpu_level(*level);
  }
  set_thread_count(reference ? 1 : threads);
  kernels::set_ops(reference ? kernels::reference_ops() : kernels::best_ops());
  if (ab_unfused) install_ab_unfused();
  if (g_profile) install_profiler(profile_matmul_only);

  if (kernel_types)
    return run_kernel_bench(*kernel_types, n_prompt, decode_mib, decode_matrices, reps, json);
  if (!model_path) fail("-m FILE is required (or --kernels TYPES); see pocket bench --help");
  kernels::KvType kv_type = kernels::KvType::F16;
  if (!kernels::kv_type_from_name(kv, kv_type))
    fail("--kv-type: expected f16, f32 or q8_0, got '", kv, "'");

  FileBacking backing = FileBacking::kMap;
  if (!file_backing_from_name(weights, backing))
    fail("--weights: expected map, copy or hugepages, got '", weights, "'");
  const auto model = model::Model::load(*model_path, backing);
  if (backing == FileBacking::kHugePages && !json)
    std::printf("weights on huge pages: %.0f MiB (AnonHugePages of the process)\n",
                double(anon_huge_page_bytes()) / double(1 << 20));
  runtime::KvPool pool(*model, {.kv_type = kv_type});
  uint64_t params = 0;
  for (const auto& t : model->file().tensors()) params += t.n_elements;
  const std::string model_name = model->file().has("general.name")
                                     ? model->file().find("general.name")->as_string()
                                     : *model_path;

  std::vector<TestResult> results;
  if (n_prompt > 0)
    results.push_back(bench_prompt(*model, pool, n_prompt, ubatch > 0 ? ubatch : n_prompt, reps));
  if (n_gen > 0 && (ab_unfused || ab_strips || ab_small_pages)) {
    // The current kernels (A) and the earlier variant (B), one repetition
    // each in turn: the same machine state for both.
    auto use_b = [&](bool b) {
      if (ab_unfused) g_ab_unfused = b;
      if (ab_strips) kernels::avx2::use_delta_strips(b);
      if (ab_small_pages) g_huge_page_advice = !b;  // the sequences of the next test
    };
    std::vector<double> a_tps, b_tps;
    TestResult r;
    for (int rep = 0; rep < reps; rep++) {
      use_b(false);
      r = bench_generation(*model, pool, n_gen, batch, 1);
      a_tps.push_back(r.tokens_per_s.mean);
      use_b(true);
      b_tps.push_back(bench_generation(*model, pool, n_gen, batch, 1).tokens_per_s.mean);
    }
    use_b(false);
    results.push_back({r.name, 0, n_gen, batch, stats_of(a_tps)});
    results.push_back({r.name + (ab_unfused ? " unfused" : "") + (ab_strips ? " strips" : "") +
                           (ab_small_pages ? " 4k" : ""),
                       0, n_gen, batch, stats_of(b_tps)});
  } else if (n_gen > 0) {
    results.push_back(bench_generation(*model, pool, n_gen, batch, reps));
  }

  kernels::Bandwidth bw;
  const uint64_t step_bytes = decode_bytes_per_step(*model);
  if (!no_bandwidth) bw = kernels::measure_read_bandwidth();
  const double ceiling =
      bw.best_gbps > 0 ? bw.best_gbps * 1e9 / double(step_bytes) * double(batch) : 0;
  const TestResult* tg = nullptr;
  for (const auto& r : results)
    if (r.n_gen > 0) tg = &r;

  const char* backend = kernels::ops().name;
  if (json) {
    nlohmann::json out;
    out["model"] = model_name;
    out["file"] = *model_path;
    out["size_bytes"] = model->weight_bytes();
    out["params"] = params;
    out["backend"] = backend;
    out["cpu_features"] = cpu_features().describe();
    out["threads"] = thread_count();
    out["kv_type"] = kv;
    out["results"] = nlohmann::json::array();
    for (const auto& r : results)
      out["results"].push_back({{"test", r.name},
                                {"n_prompt", r.n_prompt},
                                {"n_gen", r.n_gen},
                                {"batch", r.batch},
                                {"avg_ts", r.tokens_per_s.mean},
                                {"stddev_ts", r.tokens_per_s.stddev},
                                {"samples_ts", r.tokens_per_s.samples}});
    out["decode_bytes_per_step"] = step_bytes;
    if (!no_bandwidth) {
      out["bandwidth"] = {{"read_gbps", bw.best_gbps},
                          {"read_gbps_mean", bw.mean_gbps},
                          {"buffer_bytes", bw.bytes},
                          {"threads", bw.threads}};
      out["decode_ceiling_ts"] = ceiling;
      if (tg) out["tg_fraction_of_ceiling"] = tg->tokens_per_s.mean / ceiling;
    }
    std::printf("%s\n", out.dump(2).c_str());
    return 0;
  }

  std::printf("| %-32s | %10s | %8s | %-7s | %7s | %-12s | %18s |\n", "model", "size", "params",
              "backend", "threads", "test", "t/s");
  std::printf("| %.32s | %.10s | %.8s | %.7s | %.7s | %.12s | %.18s |\n",
              "--------------------------------", "----------", "--------", "-------", "-------",
              "------------", "------------------");
  for (const auto& r : results) {
    char params_text[32], tps[64];
    std::snprintf(params_text, sizeof params_text, "%.2f B", double(params) * 1e-9);
    std::snprintf(tps, sizeof tps, "%.2f +- %.2f", r.tokens_per_s.mean, r.tokens_per_s.stddev);
    std::printf("| %-32s | %10s | %8s | %-7s | %7d | %-12s | %18s |\n",
                model_name.substr(0, 32).c_str(), format_bytes(model->weight_bytes()).c_str(),
                params_text, backend, thread_count(), r.name.c_str(), tps);
  }
  if (!no_bandwidth) {
    std::printf("\nmemory read bandwidth: %.1f GB/s best, %.1f GB/s mean (%d threads, %s buffer)\n",
                bw.best_gbps, bw.mean_gbps, bw.threads, format_bytes(bw.bytes).c_str());
    std::printf("decode reads %s of weights per step: bandwidth-bound ceiling %.1f tokens/s%s\n",
                format_bytes(step_bytes).c_str(), ceiling,
                batch > 1 ? " (all sequences of the batch)" : "");
    if (tg)
      std::printf("%s reaches %.0f%% of the ceiling\n", tg->name.c_str(),
                  100.0 * tg->tokens_per_s.mean / ceiling);
  }
  return 0;
}

}  // namespace pocket::cli
