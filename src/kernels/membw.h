// Memory read bandwidth of this machine, as a decode step sees it: all pool
// threads streaming through a buffer much larger than the caches.
#pragma once

#include <cstdint>

namespace pocket::kernels {

struct Bandwidth {
  double best_gbps = 0;  // fastest pass (10^9 bytes per second)
  double mean_gbps = 0;
  uint64_t bytes = 0;  // buffer size
  int threads = 0;
};

// Reads a `bytes` buffer (touched once beforehand) `passes` times with every
// thread of the pool, each thread its own contiguous share.
Bandwidth measure_read_bandwidth(uint64_t bytes = uint64_t(512) << 20, int passes = 5);

// Multiply-add throughput of this machine on every pool thread, for the two
// inner loops the matmul kernels are built on: the integer dot path (u8 x s8
// vpmaddubsw, then vpmaddwd and an add: 32 multiply-adds) and the float path
// (f32 FMA, 8 multiply-adds). Registers only, no memory traffic: a ceiling no
// kernel exceeds. Zeros where the CPU lacks AVX2 + FMA.
struct ComputePeak {
  double int8_gmacs = 0;  // 10^9 multiply-adds per second, all threads
  double f32_gmacs = 0;
  int threads = 0;
};
ComputePeak measure_compute_peak(int passes = 3);

}  // namespace pocket::kernels
