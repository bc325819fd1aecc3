// quantize -> dequantize on synthetic rows with awkward shapes and contents:
// error bounds per type, stability under re-quantization, special blocks
// (zero, constant, ±0, tiny, large), and the API's error handling.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "quant/blocks.h"
#include "quant/quant.h"
#include "util/error.h"

namespace pocket::quant {
namespace {

struct TypeBounds {
  TensorType type;
  // Max |error| of an element relative to the absolute maximum of its block
  // (super-block for the K types), for data whose scales are normal f16.
  double max_rel;
  // RMS error relative to the RMS of the data, for Gaussian rows.
  double rms_rel;
  // Whether dequantize(quantize(y)) == y for y = dequantize(quantize(x)).
  bool idempotent;
};

// Bounds: analytic for the simple types (half a step, plus clamping of the
// positive extreme for Q4_0/Q5_0, plus the f16 rounding of the scales), measured
// with margin for the search-based K and IQ4 types.
const TypeBounds kTypes[] = {
    {TensorType::F32, 0.0, 0.0, true},
    {TensorType::F16, 1.0 / 2048, 1.0 / 2048, true},
    {TensorType::BF16, 1.0 / 256, 1.0 / 256, true},
    {TensorType::Q8_0, 0.6 / 127, 0.0075, true},
    {TensorType::Q8_1, 0.6 / 127, 0.0075, true},
    {TensorType::Q8_K, 0.55 / 127, 0.01, false},  // d = 1/iscale: re-quantizing moves it an ulp
    {TensorType::Q4_0, 1.01 / 8, 0.12, true},
    {TensorType::Q5_0, 1.01 / 16, 0.06, true},
    {TensorType::Q4_1, 1.0 / 15 + 0.002, 0.11, true},
    {TensorType::Q5_1, 1.0 / 31 + 0.002, 0.055, true},
    {TensorType::Q2_K, 0.45, 0.42, false},
    {TensorType::Q3_K, 0.26, 0.22, false},
    {TensorType::Q4_K, 0.11, 0.10, false},
    {TensorType::Q5_K, 0.062, 0.052, false},
    {TensorType::Q6_K, 0.028, 0.026, false},
    {TensorType::IQ4_NL, 0.14, 0.11, false},
    {TensorType::IQ4_XS, 0.13, 0.11, false},
};

void PrintTo(const TypeBounds& tb, std::ostream* os) {
  *os << gguf::type_name(tb.type);
}

int64_t block_size(TensorType t) {
  return gguf::type_traits(t)->block_size;
}

// Block size used to build test rows: plain types get 32-element "blocks" so the
// same special-block patterns apply.
int64_t pattern_block(TensorType t) {
  return std::max<int64_t>(block_size(t), 32);
}

enum class Fill { kGauss, kUniformOffset, kZero, kConstant, kSignedZeros, kTiny, kLarge, kMixed };
const char* fill_name(Fill f) {
  switch (f) {
    case Fill::kGauss:
      return "gauss";
    case Fill::kUniformOffset:
      return "uniform+offset";
    case Fill::kZero:
      return "zero";
    case Fill::kConstant:
      return "constant";
    case Fill::kSignedZeros:
      return "signed-zeros";
    case Fill::kTiny:
      return "tiny";
    case Fill::kLarge:
      return "large";
    case Fill::kMixed:
      return "mixed";
  }
  return "?";
}

// Fills one block of `n` values with the given pattern.
void fill_block(Fill f, std::mt19937& rng, float* x, int64_t n) {
  std::normal_distribution<float> gauss(0.0f, 1.0f);
  std::uniform_real_distribution<float> unif(0.0f, 1.0f);
  switch (f) {
    case Fill::kGauss:
      for (int64_t i = 0; i < n; ++i) x[i] = gauss(rng);
      break;
    case Fill::kUniformOffset: {
      const float offset = unif(rng) < 0.5f ? 3.0f : -3.0f;
      for (int64_t i = 0; i < n; ++i) x[i] = offset + unif(rng);
      break;
    }
    case Fill::kZero:
      for (int64_t i = 0; i < n; ++i) x[i] = 0.0f;
      break;
    case Fill::kConstant: {
      const float c = unif(rng) < 0.5f ? 0.7f : -1.3f;
      for (int64_t i = 0; i < n; ++i) x[i] = c;
      break;
    }
    case Fill::kSignedZeros:
      for (int64_t i = 0; i < n; ++i) x[i] = (rng() & 1) ? -0.0f : 0.0f;
      break;
    case Fill::kTiny:
      for (int64_t i = 0; i < n; ++i) x[i] = 1e-20f * gauss(rng);
      break;
    case Fill::kLarge:
      for (int64_t i = 0; i < n; ++i) x[i] = 1e4f * gauss(rng);
      break;
    case Fill::kMixed: {
      // Each 32-element stretch gets its own pattern, so K-quant super-blocks see
      // zero / constant / ±0 / normal sub-blocks side by side.
      const Fill parts[] = {Fill::kGauss,       Fill::kZero,          Fill::kConstant,
                            Fill::kSignedZeros, Fill::kUniformOffset, Fill::kGauss};
      for (int64_t i = 0; i < n; i += 32)
        fill_block(parts[rng() % 6], rng, x + i, std::min<int64_t>(32, n - i));
      break;
    }
  }
}

std::vector<float> dequant(TensorType t, const std::vector<uint8_t>& q, int64_t n) {
  std::vector<float> y(static_cast<size_t>(n));
  dequantize_row(t, q.data(), y.data(), n);
  return y;
}

std::vector<uint8_t> quant(TensorType t, const std::vector<float>& x) {
  const int64_t n = int64_t(x.size());
  std::vector<uint8_t> q(gguf::row_bytes(t, uint64_t(n)));
  quantize_row(t, x.data(), q.data(), n);
  return q;
}

double max_abs(const float* x, int64_t n) {
  double m = 0;
  for (int64_t i = 0; i < n; ++i) m = std::max(m, std::fabs(double(x[i])));
  return m;
}

bool has_f16_scale(TensorType t) {
  return t != TensorType::F32 && t != TensorType::Q8_K && t != TensorType::BF16;
}

class RoundTripTest : public ::testing::TestWithParam<TypeBounds> {};

TEST_P(RoundTripTest, ErrorBoundsAndStability) {
  const TypeBounds tb = GetParam();
  const TensorType t = tb.type;
  const int64_t pb = pattern_block(t);
  const int64_t qb = block_size(t);
  std::mt19937 rng(uint32_t(t) * 7919 + 1);
  for (Fill fill : {Fill::kGauss, Fill::kUniformOffset, Fill::kZero, Fill::kConstant,
                    Fill::kSignedZeros, Fill::kTiny, Fill::kLarge, Fill::kMixed}) {
    for (int64_t n_blocks : {1, 7}) {
      for (int64_t rows : {1, 3}) {
        SCOPED_TRACE(std::string(fill_name(fill)) + " blocks=" + std::to_string(n_blocks) +
                     " rows=" + std::to_string(rows));
        const int64_t n = n_blocks * pb;
        for (int64_t r = 0; r < rows; ++r) {
          std::vector<float> x(static_cast<size_t>(n));
          for (int64_t b = 0; b < n; b += pb) fill_block(fill, rng, x.data() + b, pb);
          const std::vector<uint8_t> q = quant(t, x);
          const std::vector<float> y = dequant(t, q, n);

          double sq_err = 0, sq_x = 0;
          for (int64_t b = 0; b < n; b += qb) {
            const double amax = max_abs(x.data() + b, qb);
            // Where the scales underflow f16, values can only shrink towards 0.
            const bool f16_underflow = has_f16_scale(t) && amax < 1e-3;
            for (int64_t i = b; i < b + qb; ++i) {
              ASSERT_TRUE(std::isfinite(y[i])) << "element " << i;
              const double err = std::fabs(double(y[i]) - double(x[i]));
              if (f16_underflow) {
                ASSERT_LE(std::fabs(double(y[i])), 2 * amax + 1e-4) << "element " << i;
              } else {
                ASSERT_LE(err, tb.max_rel * amax)
                    << "element " << i << " x=" << x[i] << " y=" << y[i];
              }
              sq_err += err * err;
              sq_x += double(x[i]) * double(x[i]);
            }
          }
          // RMS over at least 224 values (a single 32-value block is too noisy).
          if ((fill == Fill::kGauss || fill == Fill::kLarge) && n >= 224) {
            EXPECT_LE(std::sqrt(sq_err / sq_x), tb.rms_rel);
          }
          if (fill == Fill::kZero || fill == Fill::kSignedZeros) {
            for (int64_t i = 0; i < n; ++i) ASSERT_EQ(y[i], 0.0f) << "element " << i;
          }

          // Re-quantizing the dequantized row: identical for the idempotent
          // types, never worse than a fresh quantization for the others.
          const std::vector<float> y2 = dequant(t, quant(t, y), n);
          for (int64_t b = 0; b < n; b += qb) {
            const double amax = max_abs(y.data() + b, qb);
            for (int64_t i = b; i < b + qb; ++i) {
              if (tb.idempotent) {
                ASSERT_EQ(f32_bits(y2[i]) & 0x7FFFFFFFu, f32_bits(y[i]) & 0x7FFFFFFFu)
                    << "element " << i;
              } else if (!(has_f16_scale(t) && amax < 1e-3)) {
                ASSERT_LE(std::fabs(double(y2[i]) - double(y[i])), tb.max_rel * amax)
                    << "element " << i;
              }
            }
          }
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllTypes, RoundTripTest, ::testing::ValuesIn(kTypes),
                         [](const ::testing::TestParamInfo<TypeBounds>& info) {
                           return std::string(gguf::type_name(info.param.type));
                         });

// Blocks of exact grid values come back unchanged.
TEST(RoundTrip, ExactlyRepresentableBlocks) {
  // Q8_0: integers -127..127 times a power of two with the max present.
  std::vector<float> x(32);
  for (int i = 0; i < 32; ++i) x[i] = float((i * 37) % 255 - 127) * 0.25f;
  x[5] = 127 * 0.25f;
  EXPECT_EQ(dequant(TensorType::Q8_0, quant(TensorType::Q8_0, x), 32), x);
  // Q4_0: -8..7 times 0.5 with -8 present (the sign of the scale comes from it).
  for (int i = 0; i < 32; ++i) x[i] = float(i % 16 - 8) * 0.5f;
  EXPECT_EQ(dequant(TensorType::Q4_0, quant(TensorType::Q4_0, x), 32), x);
}

TEST(RoundTrip, SignedAbsMaxTieKeepsFirst) {
  // x = [-3, ..., 3]: the first element of largest |x| (-3) sets the Q4_0 scale
  // sign, so -3 maps to code 0 and +3 is clamped to code 15 (spec §6).
  std::vector<float> x(32, 0.0f);
  x[0] = -3.0f;
  x[31] = 3.0f;
  const std::vector<uint8_t> q = quant(TensorType::Q4_0, x);
  const auto& blk = *reinterpret_cast<const BlockQ4_0*>(q.data());
  EXPECT_EQ(load_f16(blk.d), f16_to_f32(f32_to_f16(-3.0f / -8.0f)));
  EXPECT_EQ(blk.qs[0] & 0x0F, 0);
  EXPECT_EQ(blk.qs[15] >> 4, 15);
}

TEST(RoundTrip, AllZeroBlocksEncodeAsSpecified) {
  const std::vector<float> zeros(256, 0.0f);
  // Q4_0 / Q5_0: d = +0 / -8 = -0.0 (f16 0x8000).
  EXPECT_EQ(load_u16(quant(TensorType::Q4_0, std::vector<float>(32, 0.0f)).data()), 0x8000);
  EXPECT_EQ(load_u16(quant(TensorType::Q5_0, std::vector<float>(32, 0.0f)).data()), 0x8000);
  // IQ4_NL: scale 0, every index 8.
  const std::vector<uint8_t> nl = quant(TensorType::IQ4_NL, std::vector<float>(32, 0.0f));
  EXPECT_EQ(load_u16(nl.data()), 0x0000);
  for (int j = 2; j < 18; ++j) EXPECT_EQ(nl[j], 0x88);
  // Q6_K: the whole block is zero bytes. Q8_K: d = 0, qs = 0, bsums = 0.
  for (uint8_t byte : quant(TensorType::Q6_K, zeros)) EXPECT_EQ(byte, 0);
  for (uint8_t byte : quant(TensorType::Q8_K, zeros)) EXPECT_EQ(byte, 0);
}

TEST(RoundTrip, Q8KScaleSignAndBlockSums) {
  std::mt19937 rng(5);
  std::normal_distribution<float> gauss;
  std::vector<float> x(512);
  for (float& v : x) v = gauss(rng);
  x[17] = 9.0f;    // vmax of block 0 is positive -> d < 0, x[17] -> -127
  x[300] = -9.0f;  // vmax of block 1 is negative -> d > 0, x[300] -> -127
  const std::vector<uint8_t> q = quant(TensorType::Q8_K, x);
  const auto* blocks = reinterpret_cast<const BlockQ8_K*>(q.data());
  EXPECT_LT(load_f32(blocks[0].d), 0.0f);
  EXPECT_GT(load_f32(blocks[1].d), 0.0f);
  EXPECT_EQ(blocks[0].qs[17], -127);
  EXPECT_EQ(blocks[1].qs[300 - 256], -127);
  for (int b = 0; b < 2; ++b) {
    for (int k = 0; k < 16; ++k) {
      int sum = 0;
      for (int i = 0; i < 16; ++i) sum += blocks[b].qs[16 * k + i];
      EXPECT_EQ(load_i16(blocks[b].bsums + 2 * k), sum);
    }
  }
}

TEST(RoundTrip, Q8_1SumField) {
  std::mt19937 rng(6);
  std::normal_distribution<float> gauss;
  std::vector<float> x(96);
  for (float& v : x) v = gauss(rng);
  const std::vector<uint8_t> q = quant(TensorType::Q8_1, x);
  const auto* blocks = reinterpret_cast<const BlockQ8_1*>(q.data());
  for (int b = 0; b < 3; ++b) {
    int sum = 0;
    for (int i = 0; i < 32; ++i) sum += blocks[b].qs[i];
    // s = fp16(sum * d) with the unrounded d: within f16 precision of sum * fp16(d).
    const double want = double(sum) * load_f16(blocks[b].d);
    EXPECT_NEAR(load_f16(blocks[b].s), want, std::fabs(want) * 2e-3 + 1e-6);
  }
}

TEST(QuantApi, SupportAndErrors) {
  for (const TypeBounds& tb : kTypes) {
    EXPECT_TRUE(can_quantize(tb.type)) << gguf::type_name(tb.type);
    EXPECT_TRUE(can_dequantize(tb.type)) << gguf::type_name(tb.type);
  }
  for (TensorType t : {TensorType::IQ2_XXS, TensorType::IQ3_S, TensorType::I8, TensorType::F64,
                       TensorType::TQ1_0, TensorType::MXFP4}) {
    EXPECT_FALSE(can_quantize(t));
    EXPECT_FALSE(can_dequantize(t));
  }
  std::vector<float> x(256, 1.0f);
  std::vector<uint8_t> buf(4096);
  EXPECT_THROW(quantize_row(TensorType::Q4_K, x.data(), buf.data(), 32), Error);
  EXPECT_THROW(dequantize_row(TensorType::Q8_0, buf.data(), x.data(), 33), Error);
  EXPECT_THROW(dequantize_row(TensorType::IQ2_XXS, buf.data(), x.data(), 256), Error);
  EXPECT_THROW(quantize_row(TensorType::IQ2_XS, x.data(), buf.data(), 256), Error);
  EXPECT_THROW(quantize_row(TensorType(4), x.data(), buf.data(), 32), Error);
  EXPECT_THROW(activation_type(TensorType::Q8_K), Error);
  EXPECT_THROW(vec_dot(TensorType::Q8_1, buf.data(), buf.data(), 32), Error);
  EXPECT_THROW(vec_dot(TensorType::Q6_K, buf.data(), buf.data(), 100), Error);
  // Zero-length rows are fine.
  quantize_row(TensorType::Q4_K, x.data(), buf.data(), 0);
  dequantize_row(TensorType::Q4_K, buf.data(), x.data(), 0);
  EXPECT_EQ(vec_dot(TensorType::Q4_K, buf.data(), buf.data(), 0), 0.0f);
}

}  // namespace
}  // namespace pocket::quant
