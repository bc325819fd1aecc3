// Scalar helpers shared by the reference quantizers (spec/gguf.md §6): the
// three float->int roundings and the signed absolute maximum scan. Inputs out of
// int range (inf, NaN, absurd magnitudes) are saturated instead of being UB;
// for every value the spec's formulas can produce from finite data they give
// exactly the C conversions the reference uses.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

namespace pocket::quant {

// Round half to even ("nearest_int"). The 1.5*2^23 trick is exact for |v| < 2^22;
// beyond that we saturate at +-2^22 (every caller clamps to a far smaller range).
inline int nearest_int(float v) {
  if (!(std::fabs(v) < 4194303.0f)) return v > 0 ? 4194303 : (v < 0 ? -4194303 : 0);
  const float shifted = v + 12582912.0f;
  int32_t bits;
  std::memcpy(&bits, &shifted, 4);
  return (bits & 0x007FFFFF) - 0x00400000;
}

// C-style float -> int conversion: truncation toward zero ("trunc-to-int").
inline int trunc_to_int(float v) {
  if (!(std::fabs(v) < 1e9f)) return v > 0 ? 1000000000 : (v < 0 ? -1000000000 : 0);
  return int(v);
}

// roundf: half away from zero, then to int.
inline int round_away_to_int(float v) {
  if (!(std::fabs(v) < 1e9f)) return v > 0 ? 1000000000 : (v < 0 ? -1000000000 : 0);
  return int(std::round(v));
}

template <typename T>
inline T clamp_to(T v, T lo, T hi) {
  return v < lo ? lo : (v > hi ? hi : v);
}

// The element with the largest |x| (the first one on ties), as |x| and x. An
// all-zero input gives amax = 0, vmax = +0.0.
struct SignedAbsMax {
  float amax = 0.0f;
  float vmax = 0.0f;
};
inline SignedAbsMax signed_absmax(const float* x, int n) {
  SignedAbsMax r;
  for (int i = 0; i < n; ++i) {
    const float a = std::fabs(x[i]);
    if (a > r.amax) {
      r.amax = a;
      r.vmax = x[i];
    }
  }
  return r;
}

}  // namespace pocket::quant
