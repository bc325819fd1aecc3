// vec_dot against the float64 sum of the dequantized products, for every
// weight type with its activation type, on quantized random rows and on random
// block bytes, with awkward block counts.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "quant/blocks.h"
#include "quant/quant.h"

namespace pocket::gguf {
// Type names instead of raw bytes in gtest messages.
void PrintTo(TensorType t, std::ostream* os) {
  *os << type_name(t);
}
}  // namespace pocket::gguf

namespace pocket::quant {
namespace {

const TensorType kWeightTypes[] = {
    TensorType::F32,  TensorType::F16,  TensorType::BF16, TensorType::Q4_0,   TensorType::Q4_1,
    TensorType::Q5_0, TensorType::Q5_1, TensorType::Q8_0, TensorType::Q2_K,   TensorType::Q3_K,
    TensorType::Q4_K, TensorType::Q5_K, TensorType::Q6_K, TensorType::IQ4_NL, TensorType::IQ4_XS,
};

// Byte offsets of the f16 scale fields in each block type (randomised blocks
// get finite scales there).
std::vector<int> f16_fields(TensorType t) {
  switch (t) {
    case TensorType::Q4_1:
    case TensorType::Q5_1:
    case TensorType::Q4_K:
    case TensorType::Q5_K:
      return {0, 2};
    case TensorType::Q2_K:
      return {80, 82};
    case TensorType::Q3_K:
      return {108};
    case TensorType::Q6_K:
      return {208};
    case TensorType::F32:
    case TensorType::F16:
    case TensorType::BF16:
      return {};
    default:
      return {0};
  }
}

struct Sums {
  double exact = 0;  // Σ w·a in float64
  double abs = 0;    // Σ |w·a|
};

Sums reference_dot(TensorType wt, const std::vector<uint8_t>& w, TensorType at,
                   const std::vector<uint8_t>& a, int64_t n) {
  std::vector<float> wf(static_cast<size_t>(n)), af(static_cast<size_t>(n));
  dequantize_row(wt, w.data(), wf.data(), n);
  dequantize_row(at, a.data(), af.data(), n);
  Sums s;
  for (int64_t i = 0; i < n; ++i) {
    const double p = double(wf[i]) * double(af[i]);
    s.exact += p;
    s.abs += std::fabs(p);
  }
  if (at == TensorType::Q8_1) {
    // The min term of Q4_1/Q5_1 · Q8_1 uses the activation's stored s =
    // fp16(d·Σq) instead of the exact d·Σq (spec §8.2), which is only f16
    // precise: move the reference to the value the formula defines.
    const auto* ab = reinterpret_cast<const BlockQ8_1*>(a.data());
    const size_t wsize = gguf::type_traits(wt)->type_size;
    for (int64_t b = 0; b < n / 32; ++b) {
      const float m = load_f16(w.data() + b * wsize + 2);  // Q4_1/Q5_1: m at offset 2
      int sum_q = 0;
      for (int i = 0; i < 32; ++i) sum_q += ab[b].qs[i];
      const double exact_s = double(load_f16(ab[b].d)) * sum_q;
      s.exact += double(m) * (double(load_f16(ab[b].s)) - exact_s);
    }
  }
  return s;
}

std::vector<uint8_t> quantized(TensorType t, const std::vector<float>& x) {
  std::vector<uint8_t> q(gguf::row_bytes(t, x.size()));
  quantize_row(t, x.data(), q.data(), int64_t(x.size()));
  return q;
}

class VecDotTest : public ::testing::TestWithParam<TensorType> {};

TEST_P(VecDotTest, MatchesDequantizedProducts) {
  const TensorType wt = GetParam();
  const TensorType at = activation_type(wt);
  const int64_t block =
      gguf::type_traits(wt)->block_size == 1 ? 32 : int64_t(gguf::type_traits(wt)->block_size);
  std::mt19937 rng(uint32_t(wt) + 100);
  std::normal_distribution<float> gauss;
  std::uniform_real_distribution<float> unif(-1.0f, 1.0f);
  for (int64_t n_blocks : {1, 3, 7, 16}) {
    const int64_t n = n_blocks * block;
    for (int trial = 0; trial < 6; ++trial) {
      SCOPED_TRACE("blocks=" + std::to_string(n_blocks) + " trial=" + std::to_string(trial));
      std::vector<float> wx(static_cast<size_t>(n)), ax(static_cast<size_t>(n));
      for (auto& v : wx) v = trial % 2 ? gauss(rng) : 0.5f + unif(rng);  // also offset weights
      for (auto& v : ax) v = trial % 3 ? gauss(rng) : 3.0f * unif(rng);
      std::vector<uint8_t> w = quantized(wt, wx);
      if (trial >= 4 && !f16_fields(wt).empty()) {
        // Random block bytes (every code pattern) with sane finite scales.
        const size_t bsize = gguf::type_traits(wt)->type_size;
        for (auto& byte : w) byte = uint8_t(rng());
        for (size_t off = 0; off < w.size(); off += bsize)
          for (int f : f16_fields(wt)) store_f16(w.data() + off + f, unif(rng));
      }
      const std::vector<uint8_t> a = quantized(at, ax);
      const Sums want = reference_dot(wt, w, at, a, n);
      const float got = vec_dot(wt, w.data(), a.data(), n);
      EXPECT_NEAR(double(got), want.exact, 1e-5 * want.abs + 1e-30) << "sum |w*a| = " << want.abs;
    }
  }
}

TEST_P(VecDotTest, ZeroRowsGiveZero) {
  const TensorType wt = GetParam();
  const TensorType at = activation_type(wt);
  const int64_t n = 512;
  const std::vector<float> zeros(n, 0.0f);
  std::vector<float> ones(n, 1.0f);
  EXPECT_EQ(vec_dot(wt, quantized(wt, zeros).data(), quantized(at, ones).data(), n), 0.0f);
  EXPECT_EQ(vec_dot(wt, quantized(wt, ones).data(), quantized(at, zeros).data(), n), 0.0f);
}

INSTANTIATE_TEST_SUITE_P(AllTypes, VecDotTest, ::testing::ValuesIn(kWeightTypes),
                         [](const ::testing::TestParamInfo<TensorType>& info) {
                           return std::string(gguf::type_name(info.param));
                         });

TEST(VecDot, ActivationTypes) {
  EXPECT_EQ(activation_type(TensorType::F32), TensorType::F32);
  EXPECT_EQ(activation_type(TensorType::F16), TensorType::F16);
  EXPECT_EQ(activation_type(TensorType::BF16), TensorType::BF16);
  for (TensorType t : {TensorType::Q4_0, TensorType::Q5_0, TensorType::Q8_0, TensorType::IQ4_NL})
    EXPECT_EQ(activation_type(t), TensorType::Q8_0);
  for (TensorType t : {TensorType::Q4_1, TensorType::Q5_1})
    EXPECT_EQ(activation_type(t), TensorType::Q8_1);
  for (TensorType t : {TensorType::Q2_K, TensorType::Q3_K, TensorType::Q4_K, TensorType::Q5_K,
                       TensorType::Q6_K, TensorType::IQ4_XS})
    EXPECT_EQ(activation_type(t), TensorType::Q8_K);
}

}  // namespace
}  // namespace pocket::quant
