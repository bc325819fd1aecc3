// The K-quant searches run several sub-blocks side by side in SIMD lanes; each
// lane must compute exactly what the one-sub-block-at-a-time scalar form does.
// The golden files cover realistic data; this covers adversarial mixtures where
// neighbouring lanes take different paths (flat, zero, spiky, offset sub-blocks).
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "quant/quant_impl.h"

namespace pocket::quant::detail {
namespace {

using QuantizeFn = void (*)(const float*, uint8_t*, int64_t);

struct Variant {
  const char* name;
  QuantizeFn lanes;
  QuantizeFn one_lane;
  size_t block_bytes;
};

const Variant kVariants[] = {
    {"q2_K", quantize_q2_k, quantize_q2_k_one_lane, 84},
    {"q4_K", quantize_q4_k, quantize_q4_k_one_lane, 144},
    {"q5_K", quantize_q5_k, quantize_q5_k_one_lane, 176},
    {"q6_K", quantize_q6_k, quantize_q6_k_one_lane, 210},
};

// Fills 16 values with one of several awkward patterns.
void fill16(std::mt19937& rng, float* x) {
  std::normal_distribution<float> gauss;
  std::uniform_real_distribution<float> unif(0.0f, 1.0f);
  const int pattern = int(rng() % 11);
  for (int i = 0; i < 16; ++i) {
    switch (pattern) {
      case 0:
        x[i] = 0.0f;
        break;
      case 1:
        x[i] = (rng() & 1) ? -0.0f : 0.0f;
        break;
      case 2:
        x[i] = 0.37f;
        break;  // constant positive
      case 3:
        x[i] = -2.5f;
        break;  // constant negative
      case 4:
        x[i] = 5.0f + unif(rng);
        break;  // all positive (lo clamps to 0)
      case 5:
        x[i] = -5.0f - unif(rng);
        break;  // all negative
      case 6:
        x[i] = i == 7 ? 40.0f : 0.01f * gauss(rng);
        break;  // one spike
      case 7:
        x[i] = 1e-20f * gauss(rng);
        break;  // below the zero threshold
      case 8:
        x[i] = 3e4f * gauss(rng);
        break;  // large
      case 9:
        x[i] = float(int(rng() % 7) - 3);
        break;  // integers: ties everywhere
      default:
        x[i] = gauss(rng);
        break;
    }
  }
}

TEST(KQuantLanes, SameBytesAsOneLane) {
  std::mt19937 rng(2024);
  const int64_t nb = 64;
  std::vector<float> x(size_t(nb) * 256);
  for (const Variant& v : kVariants) {
    SCOPED_TRACE(v.name);
    for (int trial = 0; trial < 8; ++trial) {
      for (size_t i = 0; i < x.size(); i += 16) fill16(rng, x.data() + i);
      std::vector<uint8_t> a(size_t(nb) * v.block_bytes), b(a.size());
      v.lanes(x.data(), a.data(), nb);
      v.one_lane(x.data(), b.data(), nb);
      for (int64_t blk = 0; blk < nb; ++blk)
        ASSERT_TRUE(std::equal(a.begin() + blk * v.block_bytes,
                               a.begin() + (blk + 1) * v.block_bytes,
                               b.begin() + blk * v.block_bytes))
            << "trial " << trial << " block " << blk;
    }
  }
}

}  // namespace
}  // namespace pocket::quant::detail
