// Exact scalar conversions between f32 and the 16-bit float formats (spec/gguf.md §2).
#pragma once

#include <cstdint>
#include <cstring>

namespace pocket {

inline uint32_t f32_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float bits_f32(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// f16 -> f32, exact for every pattern; NaNs keep their payload with the quiet bit forced.
inline float f16_to_f32(uint16_t h) {
  const uint32_t s = uint32_t(h >> 15) << 31;
  const uint32_t e = (h >> 10) & 31;
  const uint32_t m = h & 1023;
  if (e == 0) {
    if (m == 0) return bits_f32(s);
    // Subnormal: m * 2^-24, exact in f32.
    float v = float(m) * (1.0f / 16777216.0f);
    return s ? -v : v;
  }
  if (e == 31) return bits_f32(s | 0x7F800000u | (m ? (0x00400000u | (m << 13)) : 0));
  return bits_f32(s | ((e + 112) << 23) | (m << 13));
}

// f32 -> f16, IEEE round to nearest, ties to even.
inline uint16_t f32_to_f16(float f) {
  const uint32_t u = f32_bits(f);
  const uint16_t s = uint16_t((u >> 16) & 0x8000);
  const uint32_t a = u & 0x7FFFFFFFu;
  if (a > 0x7F800000u) return s | 0x7E00;   // NaN
  if (a >= 0x477FF000u) return s | 0x7C00;  // >= 65520 (and inf) -> inf
  if (a >= 0x38800000u) {                   // >= 2^-14: normal f16
    uint32_t mant = a & 0x7FFFFF;
    uint32_t exp = (a >> 23) - 112;
    uint32_t r = (exp << 10) | (mant >> 13);
    uint32_t rest = mant & 0x1FFF;
    if (rest > 0x1000 || (rest == 0x1000 && (r & 1))) r++;
    return s | uint16_t(r);
  }
  // Subnormal f16 (or zero): round |x| / 2^-24 to nearest even.
  if (a <= 0x33000000u) return s;  // <= 2^-25 -> 0 (2^-25 is a tie to even 0)
  const uint32_t exp = a >> 23;    // 102..112
  const uint32_t mant = (a & 0x7FFFFF) | 0x800000;
  const uint32_t shift = 126 - exp;  // value = mant * 2^(exp-150); /2^-24 -> mant >> (126-exp)
  uint32_t r = mant >> shift;
  const uint32_t rest = mant & ((1u << shift) - 1);
  const uint32_t half = 1u << (shift - 1);
  if (rest > half || (rest == half && (r & 1))) r++;
  return s | uint16_t(r);
}

inline float bf16_to_f32(uint16_t h) { return bits_f32(uint32_t(h) << 16); }

// f32 -> bf16 as ggml does it: NaN truncated with the quiet bit, else round to nearest even.
inline uint16_t f32_to_bf16(float f) {
  const uint32_t u = f32_bits(f);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return uint16_t((u >> 16) | 0x0040);
  return uint16_t((u + 0x7FFF + ((u >> 16) & 1)) >> 16);
}

}  // namespace pocket
