#include "kernels/membw.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>

#include "util/cpu_features.h"
#include "util/thread_pool.h"

namespace pocket::kernels {

namespace {

// Sums 64-bit words with eight independent accumulators (the compiler keeps
// them in SSE registers): enough to keep one core's loads in flight.
uint64_t read_words(const uint64_t* p, uint64_t n) {
  uint64_t acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  uint64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; k++) acc[k] += p[i + k];
  for (; i < n; i++) acc[0] += p[i];
  uint64_t s = 0;
  for (uint64_t a : acc) s += a;
  return s;
}

__attribute__((target("avx2"))) uint64_t read_words_avx2(const uint64_t* p, uint64_t n) {
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
  uint64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const auto* v = reinterpret_cast<const __m256i*>(p + i);
    a0 = _mm256_add_epi64(a0, _mm256_load_si256(v));
    a1 = _mm256_add_epi64(a1, _mm256_load_si256(v + 1));
    a2 = _mm256_add_epi64(a2, _mm256_load_si256(v + 2));
    a3 = _mm256_add_epi64(a3, _mm256_load_si256(v + 3));
  }
  alignas(32) uint64_t lanes[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes),
                     _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3)));
  uint64_t s = lanes[0] + lanes[1] + lanes[2] + lanes[3];
  for (; i < n; i++) s += p[i];
  return s;
}

volatile uint64_t g_sink = 0;

// Eight independent chains, so that latency never limits; the empty asm
// makes the inputs opaque each iteration (otherwise the compiler hoists the
// loop-invariant products out of the loop).
__attribute__((target("avx2,fma"))) int64_t int8_peak_loop(int64_t iters, int seed) {
  __m256i a[8], acc[8];
  for (int i = 0; i < 8; i++) {
    a[i] = _mm256_set1_epi8(char(seed + i));
    acc[i] = _mm256_setzero_si256();
  }
  const __m256i u = _mm256_set1_epi8(3), ones = _mm256_set1_epi16(1);
  for (int64_t it = 0; it < iters; it++) {
    for (int i = 0; i < 8; i++)
      acc[i] = _mm256_add_epi32(acc[i], _mm256_madd_epi16(_mm256_maddubs_epi16(u, a[i]), ones));
    __asm__ volatile(""
                     : "+x"(a[0]), "+x"(a[1]), "+x"(a[2]), "+x"(a[3]), "+x"(a[4]), "+x"(a[5]),
                       "+x"(a[6]), "+x"(a[7]));
  }
  int64_t s = 0;
  for (int i = 0; i < 8; i++) s += _mm256_extract_epi32(acc[i], 0);
  return s;
}

__attribute__((target("avx2,fma"))) int64_t f32_peak_loop(int64_t iters, int seed) {
  __m256 acc[8];
  __m256 x = _mm256_set1_ps(1.0f + 1e-7f * float(seed)), y = _mm256_set1_ps(0.999f);
  for (int i = 0; i < 8; i++) acc[i] = _mm256_setzero_ps();
  for (int64_t it = 0; it < iters; it++) {
    for (int i = 0; i < 8; i++) acc[i] = _mm256_fmadd_ps(x, y, acc[i]);
    __asm__ volatile("" : "+x"(x), "+x"(y));
  }
  float s = 0;
  for (int i = 0; i < 8; i++) s += _mm256_cvtss_f32(acc[i]);
  return int64_t(s);
}

// Best rate over `passes` runs of loop(iters) on every pool thread at once.
double peak_gmacs(int64_t (*loop)(int64_t, int), int64_t iters, double macs_per_iter, int passes) {
  const int threads = thread_count();
  double best = 0;
  std::atomic<int64_t> sink{0};
  for (int pass = 0; pass < std::max(1, passes); pass++) {
    const auto t0 = std::chrono::steady_clock::now();
    parallel_for(threads, [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; t++)
        sink.fetch_add(loop(iters, int(t)), std::memory_order_relaxed);
    });
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, double(threads) * double(iters) * macs_per_iter / seconds * 1e-9);
  }
  g_sink = uint64_t(sink.load());
  return best;
}

}  // namespace

Bandwidth measure_read_bandwidth(uint64_t bytes, int passes) {
  Bandwidth result;
  const uint64_t n_words = std::max<uint64_t>(bytes / 8, 1024) & ~uint64_t(15);
  result.bytes = n_words * 8;
  result.threads = thread_count();
  std::unique_ptr<uint64_t[]> storage(new uint64_t[n_words + 8]);
  uint64_t* words = storage.get();
  while (reinterpret_cast<uintptr_t>(words) % 64) words++;
  // Touch every page with the threads that will read it (first-touch placement).
  parallel_for(
      int64_t(n_words),
      [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; i++) words[i] = uint64_t(i);
      },
      4096);

  const bool avx2 = machine_cpu_level() >= CpuLevel::kAvx2;
  std::atomic<uint64_t> sink{0};
  double total = 0;
  for (int pass = 0; pass < std::max(1, passes); pass++) {
    const auto t0 = std::chrono::steady_clock::now();
    parallel_for(
        int64_t(n_words),
        [&](int64_t b, int64_t e) {
          const uint64_t s = avx2 ? read_words_avx2(words + b, uint64_t(e - b))
                                  : read_words(words + b, uint64_t(e - b));
          sink.fetch_add(s, std::memory_order_relaxed);
        },
        4096);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double gbps = double(result.bytes) / seconds * 1e-9;
    result.best_gbps = std::max(result.best_gbps, gbps);
    total += gbps;
  }
  result.mean_gbps = total / std::max(1, passes);
  g_sink = sink.load();  // keeps the reads from being optimised away
  return result;
}

ComputePeak measure_compute_peak(int passes) {
  ComputePeak peak;
  peak.threads = thread_count();
  if (machine_cpu_level() < CpuLevel::kAvx2) return peak;
  // About 0.1 s per pass on a 3 GHz core.
  peak.int8_gmacs = peak_gmacs(int8_peak_loop, int64_t(10) << 20, 8 * 32, passes);
  peak.f32_gmacs = peak_gmacs(f32_peak_loop, int64_t(40) << 20, 8 * 8, passes);
  return peak;
}

}  // namespace pocket::kernels
