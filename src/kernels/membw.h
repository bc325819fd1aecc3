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

}  // namespace pocket::kernels
