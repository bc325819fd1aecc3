// The scalar conversions of util/fp16.h against spec/gguf.md §2, checked with an
// independent double-precision formulation of each rule.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>

#include "util/fp16.h"

namespace pocket {
namespace {

// §2.1 written as arithmetic: ±(1 + M/1024)·2^(E-15), ±M·2^-24, ±inf, NaN bits.
uint32_t spec_f16_to_f32_bits(uint16_t h) {
  const int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
  if (e == 31) {
    if (m == 0) return (uint32_t(s) << 31) | 0x7F800000u;
    return (uint32_t(s) << 31) | 0x7F800000u | 0x00400000u | (uint32_t(m) << 13);
  }
  const double mag = e == 0 ? std::ldexp(double(m), -24) : std::ldexp(1.0 + m / 1024.0, e - 15);
  return f32_bits(float(s ? -mag : mag));
}

// §2.2 by searching for the nearest f16 in double arithmetic: the magnitude in
// units of the f16 spacing at its exponent, rounded to nearest even.
uint16_t spec_f32_to_f16(float f) {
  const uint16_t sign = std::signbit(f) ? 0x8000 : 0;
  if (std::isnan(f)) return sign | 0x7E00;
  const double a = std::fabs(double(f));
  if (a >= 65520.0) return sign | 0x7C00;
  int exp = a < std::ldexp(1.0, -14) ? -14 : std::ilogb(a);      // f16 exponent of the result range
  double units = std::nearbyint(a / std::ldexp(1.0, exp - 10));  // RNE (default mode)
  if (exp == -14 && units < 1024) return sign | uint16_t(units);  // subnormal (or zero)
  if (units == 2048) {
    units = 1024;
    ++exp;
  }
  return sign | uint16_t(((exp + 15) << 10) | (int(units) - 1024));
}

// §2.4 by comparing distances to the two bf16 neighbours in double.
uint16_t spec_f32_to_bf16(float f) {
  const uint32_t u = f32_bits(f);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return uint16_t((u >> 16) | 0x40);
  const uint16_t lo = uint16_t(u >> 16);  // truncated towards zero
  if ((u & 0xFFFF) == 0) return lo;
  const uint16_t hi = uint16_t(lo + 1);  // next away from zero (may be inf)
  const double x = std::fabs(double(f));
  const double vlo = std::fabs(double(bf16_to_f32(lo)));
  // Rounding past the largest finite value compares against 2^128, as IEEE does.
  const double vhi =
      (hi & 0x7FFF) == 0x7F80 ? std::ldexp(1.0, 128) : std::fabs(double(bf16_to_f32(hi)));
  if (x - vlo < vhi - x) return lo;
  if (x - vlo > vhi - x) return hi;
  return (lo & 1) ? hi : lo;
}

TEST(Fp16, AllF16PatternsToF32MatchSpec) {
  for (uint32_t h = 0; h < 65536; ++h)
    ASSERT_EQ(f32_bits(f16_to_f32(uint16_t(h))), spec_f16_to_f32_bits(uint16_t(h)))
        << std::hex << h;
}

TEST(Fp16, AllF16PatternsRoundTripThroughF32) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const bool nan = ((h >> 10) & 31) == 31 && (h & 1023) != 0;
    const uint16_t back = f32_to_f16(f16_to_f32(uint16_t(h)));
    // NaNs come back as the canonical quiet NaN with the same sign (§2.2).
    const uint16_t want = nan ? uint16_t((h & 0x8000) | 0x7E00) : uint16_t(h);
    ASSERT_EQ(back, want) << std::hex << h;
  }
}

TEST(Fp16, TiesBetweenNeighboursGoToEven) {
  // Every midpoint between two adjacent finite f16 values (normal and subnormal,
  // including the subnormal/normal boundary) is exact in f32.
  for (uint32_t h = 0; h < 0x7BFF; ++h) {
    const double a = f16_to_f32(uint16_t(h)), b = f16_to_f32(uint16_t(h + 1));
    const float mid = float((a + b) / 2);
    ASSERT_EQ(double(mid), (a + b) / 2);
    const uint16_t even = (h & 1) ? uint16_t(h + 1) : uint16_t(h);
    ASSERT_EQ(f32_to_f16(mid), even) << std::hex << h;
    ASSERT_EQ(f32_to_f16(-mid), uint16_t(even | 0x8000)) << std::hex << h;
    ASSERT_EQ(f32_to_f16(std::nextafter(mid, 0.0f)), uint16_t(h)) << std::hex << h;
    ASSERT_EQ(f32_to_f16(std::nextafter(mid, 1e9f)), uint16_t(h + 1)) << std::hex << h;
  }
}

TEST(Fp16, OverflowSubnormalsZerosAndNaN) {
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7BFF);
  EXPECT_EQ(f32_to_f16(std::nextafter(65520.0f, 0.0f)), 0x7BFF);
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7C00);  // the tie rounds to even = inf
  EXPECT_EQ(f32_to_f16(-65520.0f), 0xFC00);
  EXPECT_EQ(f32_to_f16(1e10f), 0x7C00);
  EXPECT_EQ(f32_to_f16(inf), 0x7C00);
  EXPECT_EQ(f32_to_f16(-inf), 0xFC00);
  EXPECT_EQ(f32_to_f16(0.0f), 0x0000);
  EXPECT_EQ(f32_to_f16(-0.0f), 0x8000);
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -25)), 0x0000);  // tie -> even 0
  EXPECT_EQ(f32_to_f16(-std::ldexp(1.0f, -25)), 0x8000);
  EXPECT_EQ(f32_to_f16(std::nextafter(std::ldexp(1.0f, -25), 1.0f)), 0x0001);
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -24)), 0x0001);
  EXPECT_EQ(f32_to_f16(std::ldexp(3.0f, -25)), 0x0002);  // 1.5 units: tie -> 2
  EXPECT_EQ(f32_to_f16(std::ldexp(5.0f, -25)), 0x0002);  // 2.5 units: tie -> 2
  EXPECT_EQ(f32_to_f16(std::numeric_limits<float>::denorm_min()), 0x0000);
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -14)), 0x0400);     // smallest normal
  EXPECT_EQ(f32_to_f16(std::ldexp(1023.0f, -24)), 0x03FF);  // largest subnormal
  EXPECT_EQ(f32_to_f16(bits_f32(0x7FC00000u)), 0x7E00);
  EXPECT_EQ(f32_to_f16(bits_f32(0xFF800001u)), 0xFE00);  // signalling, payload dropped
  EXPECT_EQ(f32_to_f16(bits_f32(0x7FBFFFFFu)), 0x7E00);
  // f16 -> f32 NaN keeps the payload and forces the quiet bit (§2.1).
  EXPECT_EQ(f32_bits(f16_to_f32(0x7C01)), 0x7FC02000u);
  EXPECT_EQ(f32_bits(f16_to_f32(0xFE00)), 0xFFC00000u);
  EXPECT_EQ(f32_bits(f16_to_f32(0x0001)), f32_bits(std::ldexp(1.0f, -24)));
  EXPECT_EQ(f32_bits(f16_to_f32(0x8000)), 0x80000000u);
}

TEST(Fp16, RandomF32ToF16MatchesSpec) {
  std::mt19937 rng(1234);
  // Random bit patterns (mostly huge/tiny) and values spread over the f16 range.
  for (int i = 0; i < 1000000; ++i) {
    const float f = bits_f32(rng());
    ASSERT_EQ(f32_to_f16(f), spec_f32_to_f16(f)) << std::hex << f32_bits(f);
  }
  std::uniform_int_distribution<uint32_t> exp_dist(100, 143);  // 2^-27 .. 2^16
  for (int i = 0; i < 1000000; ++i) {
    const uint32_t u = (rng() & 0x807FFFFFu) | (exp_dist(rng) << 23);
    const float f = bits_f32(u);
    ASSERT_EQ(f32_to_f16(f), spec_f32_to_f16(f)) << std::hex << u;
  }
}

TEST(Bf16, AllPatternsRoundTripAndMatchSpec) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = bf16_to_f32(uint16_t(h));
    ASSERT_EQ(f32_bits(f), h << 16);
    const bool nan = (h & 0x7FFF) > 0x7F80;
    ASSERT_EQ(f32_to_bf16(f), nan ? uint16_t(h | 0x40) : uint16_t(h)) << std::hex << h;
  }
}

TEST(Bf16, TiesOverflowSubnormalsAndNaN) {
  EXPECT_EQ(f32_to_bf16(bits_f32(0x3F808000u)), 0x3F80);  // tie, even stays
  EXPECT_EQ(f32_to_bf16(bits_f32(0x3F818000u)), 0x3F82);  // tie, odd rounds up
  EXPECT_EQ(f32_to_bf16(bits_f32(0x3F808001u)), 0x3F81);
  EXPECT_EQ(f32_to_bf16(bits_f32(0x3F817FFFu)), 0x3F81);
  EXPECT_EQ(f32_to_bf16(bits_f32(0x7F7F8000u)), 0x7F80);  // tie past the max -> inf
  EXPECT_EQ(f32_to_bf16(bits_f32(0x7F7F7FFFu)), 0x7F7F);
  EXPECT_EQ(f32_to_bf16(bits_f32(0xFF7FFFFFu)), 0xFF80);
  EXPECT_EQ(f32_to_bf16(bits_f32(0x00008000u)), 0x0000);  // subnormal tie -> even
  EXPECT_EQ(f32_to_bf16(bits_f32(0x00018000u)), 0x0002);
  EXPECT_EQ(f32_to_bf16(bits_f32(0x00000001u)), 0x0000);
  EXPECT_EQ(f32_to_bf16(bits_f32(0x80000000u)), 0x8000);
  EXPECT_EQ(f32_to_bf16(bits_f32(0x7F800001u)), 0x7FC0);  // NaN: truncate, set quiet bit
  EXPECT_EQ(f32_to_bf16(bits_f32(0xFFFFFFFFu)), 0xFFFF);
  EXPECT_EQ(f32_to_bf16(bits_f32(0x7F80FFFFu)), 0x7FC0);
}

TEST(Bf16, RandomF32ToBf16MatchesSpec) {
  std::mt19937 rng(99);
  for (int i = 0; i < 2000000; ++i) {
    const float f = bits_f32(rng());
    ASSERT_EQ(f32_to_bf16(f), spec_f32_to_bf16(f)) << std::hex << f32_bits(f);
  }
}

}  // namespace
}  // namespace pocket
