// The fast matmul of every level against the references: quant::vec_dot on
// reference-quantized activations (integer path) and f32 dot products of the
// dequantized weights (float path), on random data with awkward shapes.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/act_layout.h"
#include "kernels/fast_ops.h"
#include "kernels/matmul.h"
#include "kernels/membw.h"
#include "quant/blocks.h"
#include "quant/quant.h"
#include "util/error.h"
#include "util/fp16.h"
#include "util/thread_pool.h"

namespace pocket::kernels {
namespace {

using gguf::TensorType;

const TensorType kAllTypes[] = {
    TensorType::F32,  TensorType::F16,  TensorType::BF16, TensorType::Q8_0,   TensorType::Q4_0,
    TensorType::Q4_1, TensorType::Q5_0, TensorType::Q5_1, TensorType::Q2_K,   TensorType::Q3_K,
    TensorType::Q4_K, TensorType::Q5_K, TensorType::Q6_K, TensorType::IQ4_NL, TensorType::IQ4_XS,
};

bool is_float(TensorType t) {
  return t == TensorType::F32 || t == TensorType::F16 || t == TensorType::BF16;
}

int64_t block_size(TensorType t) {
  return gguf::type_traits(t)->block_size;
}

std::string label(CpuLevel level, TensorType t) {
  return std::string(cpu_level_name(level)) + "/" + std::string(gguf::type_name(t));
}

// Byte offsets of the f16 scale fields in a block, which random bytes must not
// turn into inf/NaN.
std::vector<int> f16_fields(TensorType t) {
  switch (t) {
    case TensorType::Q4_0:
    case TensorType::Q5_0:
    case TensorType::Q8_0:
    case TensorType::IQ4_NL:
    case TensorType::Q3_K:
    case TensorType::Q6_K:
    case TensorType::IQ4_XS:
      return {t == TensorType::Q3_K ? 108 : t == TensorType::Q6_K ? 208 : 0};
    case TensorType::Q4_1:
    case TensorType::Q5_1:
    case TensorType::Q4_K:
    case TensorType::Q5_K:
      return {0, 2};
    case TensorType::Q2_K:
      return {80, 82};
    default:
      return {};
  }
}

struct Weights {
  TensorType type;
  int64_t n_in, n_out;
  uint64_t row_bytes;
  std::vector<uint8_t> bytes;
  Mat mat() const { return Mat{type, bytes.data(), n_in, n_out, row_bytes}; }
};

// Random weights: either real quantizations of Gaussian data or random block
// bytes (every bit pattern of the quants) with sane scales.
Weights random_weights(TensorType t, int64_t n_in, int64_t n_out, std::mt19937& rng,
                       bool raw_bytes) {
  Weights w{t, n_in, n_out, gguf::row_bytes(t, uint64_t(n_in)), {}};
  w.bytes.resize(w.row_bytes * uint64_t(n_out));
  std::normal_distribution<float> normal(0.0f, 1.0f);
  if (!raw_bytes || is_float(t)) {
    std::vector<float> row(static_cast<size_t>(n_in));
    for (int64_t o = 0; o < n_out; o++) {
      const float scale = 0.02f * (1 + o % 5);
      for (float& v : row) v = normal(rng) * scale;
      quant::quantize_row(t, row.data(), w.bytes.data() + uint64_t(o) * w.row_bytes, n_in);
    }
    return w;
  }
  std::uniform_int_distribution<int> byte(0, 255);
  for (uint8_t& b : w.bytes) b = uint8_t(byte(rng));
  const auto traits = *gguf::type_traits(t);
  std::uniform_real_distribution<float> scale(-0.05f, 0.05f);
  for (uint64_t blk = 0; blk < w.bytes.size() / traits.type_size; blk++)
    for (int off : f16_fields(t))
      quant::store_f16(w.bytes.data() + blk * traits.type_size + off, scale(rng));
  return w;
}

std::vector<float> random_acts(int64_t n_rows, int64_t stride, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(size_t(n_rows * stride));
  for (int64_t r = 0; r < n_rows; r++)
    for (int64_t i = 0; i < stride; i++)
      x[size_t(r * stride + i)] = normal(rng) * (1.0f + float(r % 3));
  return x;
}

// Expected products and a magnitude sum(|w_e * a_e|) for the tolerance.
struct Expected {
  std::vector<double> value, magnitude;
};

Expected expected_products(const Weights& w, const std::vector<float>& x, int64_t n_rows,
                           int64_t x_stride) {
  Expected e;
  e.value.resize(size_t(n_rows * w.n_out));
  e.magnitude.resize(e.value.size());
  const int64_t n = w.n_in;
  std::vector<float> wrow(static_cast<size_t>(n)), arow(static_cast<size_t>(n));
  if (is_float(w.type)) {
    for (int64_t o = 0; o < w.n_out; o++) {
      quant::dequantize_row(w.type, w.bytes.data() + uint64_t(o) * w.row_bytes, wrow.data(), n);
      for (int64_t r = 0; r < n_rows; r++) {
        double sum = 0, mag = 0;
        for (int64_t i = 0; i < n; i++) {
          const double p = double(wrow[size_t(i)]) * double(x[size_t(r * x_stride + i)]);
          sum += p;
          mag += std::fabs(p);
        }
        e.value[size_t(r * w.n_out + o)] = sum;
        e.magnitude[size_t(r * w.n_out + o)] = mag;
      }
    }
    return e;
  }
  const TensorType at = quant::activation_type(w.type);
  const uint64_t arb = gguf::row_bytes(at, uint64_t(n));
  std::vector<uint8_t> act(arb * uint64_t(n_rows));
  for (int64_t r = 0; r < n_rows; r++)
    quantize_act_blocks(at, &x[size_t(r * x_stride)], n, &act[arb * uint64_t(r)]);
  for (int64_t o = 0; o < w.n_out; o++) {
    const uint8_t* wr = w.bytes.data() + uint64_t(o) * w.row_bytes;
    quant::dequantize_row(w.type, wr, wrow.data(), n);
    for (int64_t r = 0; r < n_rows; r++) {
      quant::dequantize_row(at, &act[arb * uint64_t(r)], arow.data(), n);
      double mag = 0;
      for (int64_t i = 0; i < n; i++)
        mag += std::fabs(double(wrow[size_t(i)]) * double(arow[size_t(i)]));
      e.value[size_t(r * w.n_out + o)] = quant::vec_dot(w.type, wr, &act[arb * uint64_t(r)], n);
      e.magnitude[size_t(r * w.n_out + o)] = mag;
    }
  }
  return e;
}

// Runs level's matmul and checks every product; y has padding that must stay.
void check_matmul(CpuLevel level, const Weights& w, int64_t n_rows, std::mt19937& rng) {
  const int64_t x_stride = w.n_in + 3, y_stride = w.n_out + 2;
  const std::vector<float> x = random_acts(n_rows, x_stride, rng);
  const Expected e = expected_products(w, x, n_rows, x_stride);
  constexpr float kSentinel = -12345.0f;
  std::vector<float> y(size_t(n_rows * y_stride), kSentinel);
  matmul_at_level(level, w.mat(), x.data(), n_rows, x_stride, y.data(), y_stride);
  // The scalar level calls quant::vec_dot itself; the SIMD kernels for the
  // Q8_0-activation formats keep its f32 order too (quant/vec_dot.cpp says why),
  // except the prefill kernel (16 or more activation rows, kUnpackMinRows in
  // matmul_avx2.cpp) on rows of 8 blocks or more, which sums each block first.
  const bool simd_prefill = n_rows >= 16 && w.n_in >= 256;
  const bool exact =
      !is_float(w.type) &&
      (level == CpuLevel::kScalar ||
       (quant::activation_type(w.type) == TensorType::Q8_0 && !simd_prefill));
  for (int64_t r = 0; r < n_rows; r++) {
    for (int64_t o = 0; o < w.n_out; o++) {
      const double got = y[size_t(r * y_stride + o)];
      const double want = e.value[size_t(r * w.n_out + o)];
      const double tol = 4e-6 * e.magnitude[size_t(r * w.n_out + o)] + 1e-30;
      if (exact)
        ASSERT_EQ(float(got), float(want))
            << label(level, w.type) << " n_in=" << w.n_in << " row " << r << " out " << o;
      else
        ASSERT_NEAR(got, want, tol)
            << label(level, w.type) << " n_in=" << w.n_in << " n_out=" << w.n_out
            << " rows=" << n_rows << " row " << r << " out " << o;
    }
    for (int64_t o = w.n_out; o < y_stride; o++) ASSERT_EQ(y[size_t(r * y_stride + o)], kSentinel);
  }
}

TEST(Matmul, EveryTypeEveryLevelAwkwardShapes) {
  std::mt19937 rng(1234);
  for (CpuLevel level : available_levels()) {
    for (TensorType t : kAllTypes) {
      // Rows of n_in = blocks * unit elements (unit = the block size, or 32 for the float types).
      const int64_t bs = block_size(t);
      const int64_t unit = bs == 1 ? 32 : bs;
      struct Shape {
        int64_t n_in, n_out, n_rows;
      };
      std::vector<Shape> shapes = {
          {unit, 1, 1}, {unit, 7, 3}, {2 * unit, 3, 17}, {3 * unit, 5, 5}, {5 * unit, 1, 9}};
      for (int64_t rows = 1; rows <= 17; rows++)
        shapes.push_back({(bs == 256 ? 2 : 4) * unit, 3 + rows % 4, rows});
      if (bs == 1) {  // float types: any width, including ones that are not a multiple of 8
        for (int64_t n : {1, 7, 8, 9, 31, 33, 100}) shapes.push_back({n, 5, 6});
      } else {
        shapes.push_back({(bs == 256 ? 6 : 40) * unit, 33, 4});
        // Enough rows for the prefill kernels; for the 32-element formats two groups of 8
        // blocks (stored interleaved) and a tail of 5 in element order.
        shapes.push_back({(bs == 256 ? 3 : 21) * unit, 9, 19});
      }
      for (size_t i = 0; i < shapes.size(); i++) {
        const Shape& s = shapes[i];
        const Weights w = random_weights(t, s.n_in, s.n_out, rng, /*raw_bytes=*/i % 2 == 1);
        check_matmul(level, w, s.n_rows, rng);
        if (HasFatalFailure()) return;
      }
    }
  }
}

// Many activation rows (several cache chunks) and many output rows (several
// threads), against the reference on a realistic row length.
TEST(Matmul, ManyRowsCrossChunksAndThreads) {
  std::mt19937 rng(99);
  for (CpuLevel level : available_levels()) {
    for (TensorType t : {TensorType::Q4_K, TensorType::Q6_K, TensorType::Q8_0, TensorType::F16,
                         TensorType::Q4_1}) {
      const Weights w = random_weights(t, 4096, 37, rng, false);
      check_matmul(level, w, 70, rng);
      if (HasFatalFailure()) return;
    }
  }
}

// Decode (one activation row) on long rows, as the ffn_down / ssm_out products
// have: passes of two rows longer than the burst-prefetch limit take the
// kernels' spread-prefetch path; products against the reference, an odd row
// count (a one-row tail), 1 and 2 threads.
TEST(Matmul, DecodeLongRowsAgainstReference) {
  std::mt19937 rng(4242);
  const int saved = thread_count();
  for (int threads : {1, 2}) {
    set_thread_count(threads);
    for (TensorType t : {TensorType::Q4_K, TensorType::Q5_K, TensorType::Q6_K, TensorType::Q8_0,
                         TensorType::Q4_0, TensorType::IQ4_NL}) {
      for (int64_t n_in : {3584, 5120}) {
        const Weights w = random_weights(t, n_in, 37, rng, n_in == 5120);
        ASSERT_GT(2 * w.row_bytes, 3000u) << gguf::type_name(t);
        for (CpuLevel level : available_levels()) {
          check_matmul(level, w, 1, rng);
          if (HasFatalFailure()) return;
        }
      }
    }
  }
  set_thread_count(saved);
}

// The scalar float path is the reference arithmetic: identical results.
TEST(Matmul, ScalarFloatPathMatchesReferenceBitForBit) {
  std::mt19937 rng(5);
  for (TensorType t : {TensorType::F32, TensorType::F16, TensorType::BF16}) {
    const Weights w = random_weights(t, 300, 9, rng, false);
    const std::vector<float> x = random_acts(5, 300, rng);
    std::vector<float> a(5 * 9), b(5 * 9);
    reference_ops().matmul(w.mat(), x.data(), 5, 300, a.data(), 9);
    ops_for_level(CpuLevel::kScalar).matmul(w.mat(), x.data(), 5, 300, b.data(), 9);
    EXPECT_EQ(a, b) << gguf::type_name(t);
  }
}

// Results do not depend on how the rows were split across threads.
TEST(Matmul, ThreadCountDoesNotChangeResults) {
  std::mt19937 rng(7);
  const int saved = thread_count();
  for (TensorType t : {TensorType::Q4_K, TensorType::Q8_0, TensorType::F16}) {
    const Weights w = random_weights(t, 1024, 203, rng, false);
    const std::vector<float> x = random_acts(6, 1024, rng);
    std::vector<float> first;
    for (int threads : {1, 2, 3, 5}) {
      set_thread_count(threads);
      std::vector<float> y(6 * 203);
      best_ops().matmul(w.mat(), x.data(), 6, 1024, y.data(), 203);
      if (first.empty())
        first = y;
      else
        EXPECT_EQ(first, y) << gguf::type_name(t) << " threads=" << threads;
    }
  }
  set_thread_count(saved);
}

// A group (one hand-off to the threads, each activation format quantized
// once, claims across products) gives exactly the values of one call per
// product, whatever the thread count; mixed weight types and formats share
// the input, and a group longer than the driver's limit is split.
TEST(Matmul, GroupEqualsSeparateProducts) {
  std::mt19937 rng(31);
  const int saved = thread_count();
  const int64_t n_in = 512, x_stride = n_in + 5;
  const TensorType types[] = {
      TensorType::Q4_K,   TensorType::Q6_K, TensorType::Q8_0, TensorType::F16,  TensorType::Q4_K,
      TensorType::IQ4_NL, TensorType::F32,  TensorType::Q5_1, TensorType::Q8_0, TensorType::Q2_K};
  const int64_t n_outs[] = {203, 1, 77, 35, 16, 3, 9, 130, 2, 33};
  std::vector<Weights> ws;
  for (size_t i = 0; i < std::size(types); i++)
    ws.push_back(random_weights(types[i], n_in, n_outs[i], rng, i % 2 == 1));
  for (CpuLevel level : available_levels()) {
    for (int threads : {1, 2, 3}) {
      set_thread_count(threads);
      for (int64_t n_rows : {1, 3, 17, 40}) {
        const std::vector<float> x = random_acts(n_rows, x_stride, rng);
        for (int n_group : {1, 2, 4, 10}) {
          std::vector<std::vector<float>> want(static_cast<size_t>(n_group));
          std::vector<std::vector<float>> got(static_cast<size_t>(n_group));
          std::vector<MatmulOut> outs;
          for (int i = 0; i < n_group; i++) {
            const int64_t y_stride = ws[size_t(i)].n_out + 1;
            want[size_t(i)].assign(size_t(n_rows * y_stride), -7.0f);
            got[size_t(i)].assign(size_t(n_rows * y_stride), -7.0f);
            matmul_at_level(level, ws[size_t(i)].mat(), x.data(), n_rows, x_stride,
                            want[size_t(i)].data(), y_stride);
            outs.push_back({ws[size_t(i)].mat(), got[size_t(i)].data(), y_stride});
          }
          ops_for_level(level).matmul_group(outs.data(), n_group, x.data(), n_rows, x_stride);
          for (int i = 0; i < n_group; i++)
            ASSERT_EQ(want[size_t(i)], got[size_t(i)])
                << cpu_level_name(level) << " threads=" << threads << " rows=" << n_rows
                << " group=" << n_group << " product " << i << " "
                << gguf::type_name(types[size_t(i)]);
        }
      }
    }
  }
  set_thread_count(saved);
}

// The reference group is the reference matmul per product.
TEST(Matmul, ReferenceGroupIsReferenceMatmul) {
  std::mt19937 rng(32);
  const Weights a = random_weights(TensorType::Q4_K, 256, 5, rng, false);
  const Weights b = random_weights(TensorType::F16, 256, 3, rng, false);
  const std::vector<float> x = random_acts(2, 256, rng);
  std::vector<float> ya(10), yb(6), ga(10), gb(6);
  reference_ops().matmul(a.mat(), x.data(), 2, 256, ya.data(), 5);
  reference_ops().matmul(b.mat(), x.data(), 2, 256, yb.data(), 3);
  const MatmulOut outs[] = {{a.mat(), ga.data(), 5}, {b.mat(), gb.data(), 3}};
  reference_ops().matmul_group(outs, 2, x.data(), 2, 256);
  EXPECT_EQ(ya, ga);
  EXPECT_EQ(yb, gb);
}

TEST(Matmul, EmptyProductsWriteNothing) {
  std::vector<uint8_t> bytes(34 * 4);
  Mat w{TensorType::Q8_0, bytes.data(), 32, 4, 34};
  float y = 7.0f;
  for (CpuLevel level : available_levels()) {
    matmul_at_level(level, w, nullptr, 0, 32, &y, 4);
    matmul_at_level(level, w.rows(0, 0), nullptr, 1, 32, &y, 4);
  }
  EXPECT_EQ(y, 7.0f);
}

TEST(Matmul, UnsupportedTypeThrows) {
  std::vector<uint8_t> bytes(1024);
  Mat w{TensorType::IQ2_XXS, bytes.data(), 256, 1, 66};
  std::vector<float> x(256, 1.0f);
  float y = 0;
  for (CpuLevel level : available_levels())
    EXPECT_THROW(matmul_at_level(level, w, x.data(), 1, 256, &y, 1), Error);
}

// ---------------------------------------------------------------------------
// The SIMD activation quantizer gives the reference's quants and scales.

void check_act_quantizer(CpuLevel level, TensorType act_type, const std::vector<float>& x) {
  // A weight type whose kernel uses this activation type.
  const TensorType weight = act_type == TensorType::Q8_0   ? TensorType::Q8_0
                            : act_type == TensorType::Q8_1 ? TensorType::Q4_1
                                                           : TensorType::Q4_K;
  const MatmulKernel k = matmul_kernel(level, weight);
  ASSERT_EQ(k.act_type, act_type);
  const int64_t n = int64_t(x.size());
  std::vector<uint8_t> ref(gguf::row_bytes(act_type, uint64_t(n)));
  quantize_act_blocks(act_type, x.data(), n, ref.data());
  std::vector<uint8_t> fast(k.act_row_bytes(act_type, n) + 64);
  uint8_t* row = fast.data() + (64 - reinterpret_cast<uintptr_t>(fast.data()) % 64) % 64;
  k.quantize_act(act_type, x.data(), n, row);
  if (level == CpuLevel::kScalar) {  // the scalar level stores the block format itself
    EXPECT_EQ(0, std::memcmp(row, ref.data(), ref.size()));
    return;
  }
  const ActLayout L = act_layout(act_type, n);
  const ActRow a = act_row(row, L);
  if (act_type == TensorType::Q8_K) {
    const auto* blocks = reinterpret_cast<const quant::BlockQ8_K*>(ref.data());
    for (int64_t b = 0; b < n / 256; b++) {
      ASSERT_EQ(0, std::memcmp(a.qs + 256 * b, blocks[b].qs, 256)) << "block " << b;
      ASSERT_EQ(a.d[b], quant::load_f32(blocks[b].d)) << "block " << b;
      for (int k16 = 0; k16 < 16; k16++)
        ASSERT_EQ(a.bsums[16 * b + k16], quant::load_i16(blocks[b].bsums + 2 * k16));
      for (int k32 = 0; k32 < 8; k32++)
        ASSERT_EQ(a.sums32[8 * b + k32], a.bsums[16 * b + 2 * k32] + a.bsums[16 * b + 2 * k32 + 1]);
    }
    return;
  }
  for (int64_t b = 0; b < n / 32; b++) {
    const uint8_t* blk = ref.data() + b * (act_type == TensorType::Q8_0 ? 34 : 36);
    const int8_t* qs =
        reinterpret_cast<const int8_t*>(blk + (act_type == TensorType::Q8_0 ? 2 : 4));
    ASSERT_EQ(0, std::memcmp(a.qs + 32 * b, qs, 32)) << "block " << b;
    ASSERT_EQ(a.d[b], quant::load_f16(blk)) << "block " << b;
    int sum = 0;
    for (int e = 0; e < 32; e++) sum += qs[e];
    ASSERT_EQ(a.sums32[b], sum);
    if (act_type == TensorType::Q8_1) {
      ASSERT_EQ(a.s[b], quant::load_f16(blk + 2)) << "block " << b;
    }
  }
}

TEST(ActivationQuantizer, MatchesReferenceQuantsAndScales) {
  std::mt19937 rng(42);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (CpuLevel level : available_levels()) {
    for (TensorType at : {TensorType::Q8_0, TensorType::Q8_1, TensorType::Q8_K}) {
      for (int trial = 0; trial < 40; trial++) {
        std::vector<float> x(1024);
        const float scale = std::pow(10.0f, float(trial % 9) - 4.0f);
        for (float& v : x) v = normal(rng) * scale;
        if (trial % 4 == 1) {  // exact halves after scaling: rounding ties
          for (size_t i = 0; i < x.size(); i++) x[i] = float(int(i % 255) - 127) * 0.5f;
        }
        if (trial % 4 == 2) {  // zero blocks, a lone outlier, ties of |max| with both signs
          std::fill(x.begin(), x.begin() + 256, 0.0f);
          x[300] = 50.0f;
          x[600] = -7.0f;
          x[601] = 7.0f;
          x[700] = 7.0f;
          x[701] = -7.0f;
        }
        if (trial % 4 == 3) {  // small integers (many exact ties of x * id)
          for (size_t i = 0; i < x.size(); i++) x[i] = float(int(rng() % 9) - 4);
        }
        check_act_quantizer(level, at, x);
        if (HasFatalFailure()) return;
      }
    }
  }
}

// ---------------------------------------------------------------------------

TEST(FastOps, TablesAreCompleteAndNamedByLevel) {
  const Ops& ref = reference_ops();
  for (CpuLevel level : available_levels()) {
    const Ops& t = ops_for_level(level);
    EXPECT_STREQ(t.name, cpu_level_name(level));
    EXPECT_NE(t.matmul, ref.matmul);
    EXPECT_NE(t.matmul_group, ref.matmul_group);
    EXPECT_NE(t.matmul_group, nullptr);
    for (const void* fn : {(const void*)t.rmsnorm, (const void*)t.l2norm, (const void*)t.softmax,
                           (const void*)t.silu, (const void*)t.sigmoid, (const void*)t.swiglu,
                           (const void*)t.rope, (const void*)t.kv_store, (const void*)t.attention,
                           (const void*)t.conv1d_silu, (const void*)t.gated_delta_rule})
      EXPECT_NE(fn, nullptr);
  }
  // Levels above the machine's fall back to the best table it has.
  EXPECT_EQ(&ops_for_level(CpuLevel::kAvx512), &ops_for_level(machine_cpu_level()));
}

// The dword transpose behind the 32-element formats' prefill layout, against its
// definition: in each group of 8 blocks (256 quants), byte k of dword j of block
// i goes to dword i of vector j; blocks past the last full group keep their order.
// Awkward block counts: fewer than 8, exactly 8, one past, several groups plus a tail.
TEST(Matmul, InterleavedBlocksAreTheDwordTransposeOfEachGroupOfEight) {
  if (machine_cpu_level() < CpuLevel::kAvx2) GTEST_SKIP() << "no AVX2 on this CPU";
  std::mt19937 rng(11);
  for (int64_t blocks : {1, 7, 8, 9, 16, 23, 24, 31}) {
    const int64_t n = 32 * blocks;
    std::vector<int8_t> src(n), want(n);
    alignas(32) int8_t got[32 * 31] = {};  // the kernel's stores need 32-byte alignment
    for (auto& v : src) v = int8_t(int(rng() % 256) - 128);
    const int64_t grouped = n / 256 * 256;
    for (int64_t g = 0; g < grouped; g += 256)
      for (int i = 0; i < 8; i++)      // block within the group
        for (int j = 0; j < 8; j++)    // dword within the block
          for (int k = 0; k < 4; k++)  // byte within the dword
            want[g + 32 * j + 4 * i + k] = src[g + 32 * i + 4 * j + k];
    for (int64_t e = grouped; e < n; e++) want[e] = src[e];
    avx2::interleave_blocks_for_test(src.data(), n, got);
    EXPECT_EQ(std::vector<int8_t>(got, got + n), want) << blocks << " blocks";
  }
}

TEST(CpuFeatures, LevelsAreConsistent) {
  const CpuFeatures& f = cpu_features();
  const CpuLevel m = machine_cpu_level();
  if (m >= CpuLevel::kAvx2) {
    EXPECT_TRUE(f.avx2 && f.fma && f.f16c);
  }
  if (m >= CpuLevel::kAvx512) {
    EXPECT_TRUE(f.avx512f && f.avx512bw && f.avx512vl);
  }
  if (f.amx_int8 || f.amx_bf16) {
    EXPECT_TRUE(f.amx_tile);
  }
  EXPECT_LE(int(cpu_level()), int(m));
  EXPECT_EQ(machine_cpu_levels().size(), size_t(int(m) + 1));
  EXPECT_FALSE(f.describe().empty());
  for (CpuLevel l : {CpuLevel::kScalar, CpuLevel::kAvx2, CpuLevel::kAvx512})
    EXPECT_EQ(parse_cpu_level(cpu_level_name(l)), l);
  EXPECT_FALSE(parse_cpu_level("sse2").has_value());
}

// The multiply-add ceiling `pocket bench --kernels` compares prefill with: real
// numbers where the CPU has the instructions. An absurd rate (10^5 GMAC/s per
// thread is far beyond any CPU) means the compiler removed the loop's work.
TEST(ComputePeak, MeasuresTheInnerLoopsOfBothPaths) {
  const ComputePeak peak = measure_compute_peak(1);
  EXPECT_EQ(peak.threads, thread_count());
  if (machine_cpu_level() < CpuLevel::kAvx2) {
    EXPECT_EQ(peak.int8_gmacs, 0.0);
    EXPECT_EQ(peak.f32_gmacs, 0.0);
    return;
  }
  for (double gmacs : {peak.int8_gmacs, peak.f32_gmacs}) {
    EXPECT_GT(gmacs, 0.1);
    EXPECT_LT(gmacs, 1e5 * peak.threads);
  }
}

}  // namespace
}  // namespace pocket::kernels
