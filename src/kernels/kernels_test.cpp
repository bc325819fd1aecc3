// The reference kernels against direct double-precision evaluations of the
// spec's formulas, on random inputs. Faster kernel tables will be compared with
// these the same way.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/ops.h"
#include "quant/quant.h"
#include "util/fp16.h"

namespace pocket::kernels {
namespace {

const Ops& K = reference_ops();

std::vector<float> randn(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(gen);
  return v;
}

TEST(Kernels, MatmulAnyWeightTypeMatchesExpandedProduct) {
  const int64_t n_in = 256, n_out = 13, n_rows = 5;
  const std::vector<float> w = randn(size_t(n_in * n_out), 1);
  const std::vector<float> x = randn(size_t(n_in * n_rows), 2);
  for (TensorType type : {TensorType::F32, TensorType::F16, TensorType::BF16, TensorType::Q8_0,
                          TensorType::Q4_0, TensorType::Q4_K, TensorType::Q6_K}) {
    ASSERT_TRUE(quant::can_quantize(type)) << gguf::type_name(type);
    const uint64_t rb = gguf::row_bytes(type, n_in);
    std::vector<uint8_t> bytes(rb * n_out);
    for (int64_t o = 0; o < n_out; o++) quant::quantize_row(type, w.data() + o * n_in, bytes.data() + o * rb, n_in);
    const Mat m{type, bytes.data(), n_in, n_out, rb};
    std::vector<float> y(size_t(n_rows * n_out));
    K.matmul(m, x.data(), n_rows, n_in, y.data(), n_out);
    std::vector<float> row(static_cast<size_t>(n_in));
    for (int64_t o = 0; o < n_out; o++) {
      quant::dequantize_row(type, bytes.data() + o * rb, row.data(), n_in);
      for (int64_t r = 0; r < n_rows; r++) {
        double ref = 0.0, mag = 0.0;
        for (int64_t i = 0; i < n_in; i++) {
          ref += double(row[size_t(i)]) * x[size_t(r * n_in + i)];
          mag += std::abs(double(row[size_t(i)]) * x[size_t(r * n_in + i)]);
        }
        EXPECT_NEAR(y[size_t(r * n_out + o)], ref, 1e-6 * mag + 1e-7) << gguf::type_name(type);
      }
    }
    // A row's result does not depend on the batch around it.
    std::vector<float> single(static_cast<size_t>(n_out));
    K.matmul(m, x.data() + 3 * n_in, 1, n_in, single.data(), n_out);
    for (int64_t o = 0; o < n_out; o++) EXPECT_EQ(single[size_t(o)], y[size_t(3 * n_out + o)]);
  }
}

TEST(Kernels, NormsAndSoftmax) {
  const std::vector<float> x = randn(40, 3), w = randn(40, 4);
  std::vector<float> y(40);
  K.rmsnorm(x.data(), w.data(), 40, 1e-6f, y.data());
  double ss = 0.0;
  for (float v : x) ss += double(v) * v;
  const double scale = 1.0 / std::sqrt(ss / 40 + 1e-6);
  for (int i = 0; i < 40; i++) EXPECT_NEAR(y[size_t(i)], x[size_t(i)] * scale * w[size_t(i)], 1e-5);

  std::vector<float> l2 = x;
  K.l2norm(l2.data(), 40, 1e-6f);
  for (int i = 0; i < 40; i++) EXPECT_NEAR(l2[size_t(i)], x[size_t(i)] / std::sqrt(ss), 1e-6);
  std::vector<float> zero(8, 0.0f);
  K.l2norm(zero.data(), 8, 1e-6f);  // max(norm, eps): no division by zero
  for (float v : zero) EXPECT_EQ(v, 0.0f);

  std::vector<float> p = {1000.0f, 999.0f, -INFINITY, 998.0f};
  K.softmax(p.data(), 4);
  const double z = 1.0 + std::exp(-1.0) + std::exp(-2.0);
  EXPECT_NEAR(p[0], 1.0 / z, 1e-6);
  EXPECT_NEAR(p[1], std::exp(-1.0) / z, 1e-6);
  EXPECT_EQ(p[2], 0.0f);
  EXPECT_NEAR(softplus(30.0f), 30.0f, 0.0f);
  EXPECT_NEAR(softplus(0.5f), std::log1p(std::exp(0.5)), 1e-6);
}

// Expected rotation of one head: pair i rotated by pos_of_pair[i] * theta^(-2i/n_rot).
std::vector<float> rotate(const std::vector<float>& x, int64_t n_rot, double theta,
                          const std::vector<int64_t>& pos_of_pair) {
  std::vector<float> y = x;
  const int64_t half = n_rot / 2;
  for (int64_t i = 0; i < half; i++) {
    const double a = double(pos_of_pair[size_t(i)]) * std::pow(theta, -2.0 * double(i) / double(n_rot));
    y[size_t(i)] = float(x[size_t(i)] * std::cos(a) - x[size_t(i + half)] * std::sin(a));
    y[size_t(i + half)] = float(x[size_t(i)] * std::sin(a) + x[size_t(i + half)] * std::cos(a));
  }
  return y;
}

TEST(Kernels, RopeImropeSectionsPickThePositionComponents) {
  const int64_t D = 24, n_rot = 16;
  RopeParams p;
  p.n_rot = n_rot;
  p.theta = 1e7f;
  const int32_t sec[4] = {3, 3, 2, 0};
  std::copy(sec, sec + 4, p.sections);
  const std::vector<float> x = randn(size_t(2 * D), 5);

  // Distinct components: pairs cycle t, h, w (sector = i mod 8): 0 t, 1 h, 2 w, 3 t, 4 h, 5 w, 6 t, 7 h.
  const int64_t t = 5, h = 11, w = 23;
  const int64_t pos[4] = {t, h, w, 1000};
  std::vector<float> y = x;
  K.rope(y.data(), 2, D, p, pos);
  const std::vector<int64_t> per_pair = {t, h, w, t, h, w, t, h};
  for (int head = 0; head < 2; head++) {
    const std::vector<float> xh(x.begin() + head * D, x.begin() + (head + 1) * D);
    const std::vector<float> want = rotate(xh, n_rot, 1e7, per_pair);
    for (int64_t d = 0; d < D; d++) EXPECT_NEAR(y[size_t(head * D + d)], want[size_t(d)], 2e-6) << d;
  }

  // Text positions (all components equal, e = 0): plain NEOX rope on n_rot dims.
  const int64_t same[4] = {77, 77, 77, 0};
  y = x;
  K.rope(y.data(), 1, D, p, same);
  const std::vector<float> want = rotate(std::vector<float>(x.begin(), x.begin() + D), n_rot, 1e7,
                                         std::vector<int64_t>(8, 77));
  for (int64_t d = 0; d < D; d++) EXPECT_NEAR(y[size_t(d)], want[size_t(d)], 2e-6);

  // The real models' sections [11, 11, 10, 0] never use the fourth component.
  RopeParams real;
  real.n_rot = 64;
  real.theta = 1e7f;
  const int32_t rs[4] = {11, 11, 10, 0};
  std::copy(rs, rs + 4, real.sections);
  std::vector<float> a = randn(256, 6), b = a;
  const int64_t e0[4] = {9, 9, 9, 0}, e1[4] = {9, 9, 9, 12345};
  K.rope(a.data(), 1, 256, real, e0);
  K.rope(b.data(), 1, 256, real, e1);
  EXPECT_EQ(a, b);
}

TEST(Kernels, AttentionMatchesSoftmaxFormulaWithPagedF32AndF16Cache) {
  const AttentionShape s{4, 2, 8, 1.0f / std::sqrt(8.0f)};
  const int64_t n_pos = 11, row = s.n_head_kv * s.head_dim, page = 3;
  const std::vector<float> k = randn(size_t(n_pos * row), 7), v = randn(size_t(n_pos * row), 8);
  const std::vector<float> q = randn(size_t(n_pos * s.n_head * s.head_dim), 9);
  for (KvType type : {KvType::F32, KvType::F16}) {
    const uint64_t rb = kv_bytes(type, row);
    std::vector<std::vector<uint8_t>> pages(4, std::vector<uint8_t>(size_t(2 * page * rb)));
    std::vector<uint8_t*> ptrs;
    for (auto& pg : pages) ptrs.push_back(pg.data());
    const KvView kv{type, row, page, ptrs.data(), 0, page * rb};
    for (int64_t p = 0; p < n_pos; p++) K.kv_store(kv, p, k.data() + p * row, v.data() + p * row);
    // Queries for positions 6..10 in one call.
    const int64_t pos0 = 6, n = n_pos - pos0, qw = s.n_head * s.head_dim;
    std::vector<float> out(size_t(n * qw));
    K.attention(s, q.data() + pos0 * qw, qw, n, pos0, kv, out.data(), qw);
    const double tol = type == KvType::F32 ? 1e-5 : 5e-3;
    for (int64_t t = 0; t < n; t++)
      for (int64_t j = 0; j < s.n_head; j++) {
        const int64_t m = j / (s.n_head / s.n_head_kv);
        const float* qj = q.data() + (pos0 + t) * qw + j * s.head_dim;
        std::vector<double> w;
        double mx = -INFINITY, z = 0.0;
        for (int64_t p = 0; p <= pos0 + t; p++) {
          double d = 0.0;
          for (int64_t i = 0; i < s.head_dim; i++) d += double(qj[i]) * k[size_t(p * row + m * s.head_dim + i)];
          w.push_back(d * s.scale);
          mx = std::max(mx, w.back());
        }
        for (double& x : w) z += (x = std::exp(x - mx));
        for (int64_t i = 0; i < s.head_dim; i++) {
          double o = 0.0;
          for (size_t p = 0; p < w.size(); p++) o += w[p] / z * v[p * size_t(row) + size_t(m * s.head_dim + i)];
          EXPECT_NEAR(out[size_t(t * qw + j * s.head_dim + i)], o, tol);
        }
      }
  }
}

// A Q8_0 cache holds exactly GGUF Q8_0 blocks of each row, and attention over
// it is attention over the dequantized rows (an f32 cache holding them).
TEST(Kernels, Q8_0CacheIsAttentionOverDequantizedRows) {
  const AttentionShape s{6, 3, 32, 1.0f / std::sqrt(32.0f)};
  const int64_t n_pos = 13, row = s.n_head_kv * s.head_dim, page = 4, n_pages = 4;
  const std::vector<float> k = randn(size_t(n_pos * row), 21, 3.0f),
                           v = randn(size_t(n_pos * row), 22);
  const std::vector<float> q = randn(size_t(n_pos * s.n_head * s.head_dim), 23);
  EXPECT_EQ(kv_bytes(KvType::Q8_0, row), uint64_t(row / 32 * 34));
  struct Cache {
    std::vector<std::vector<uint8_t>> pages;
    std::vector<uint8_t*> ptrs;
    KvView kv;
    Cache(KvType type, int64_t row, int64_t page, int64_t n) {
      const uint64_t rb = kv_bytes(type, row);
      for (int64_t i = 0; i < n; i++) pages.emplace_back(size_t(2 * page * rb), uint8_t(0));
      for (auto& pg : pages) ptrs.push_back(pg.data());
      kv = KvView{type, row, page, ptrs.data(), 0, page * rb};
    }
  } q8(KvType::Q8_0, row, page, n_pages), f32(KvType::F32, row, page, n_pages);
  std::vector<uint8_t> block(size_t(kv_bytes(KvType::Q8_0, row)));
  std::vector<float> kd(static_cast<size_t>(row)), vd(kd);
  for (int64_t p = 0; p < n_pos; p++) {
    K.kv_store(q8.kv, p, k.data() + p * row, v.data() + p * row);
    quant::quantize_row(TensorType::Q8_0, k.data() + p * row, block.data(), row);
    ASSERT_EQ(std::memcmp(q8.kv.k_row(p), block.data(), block.size()), 0) << "K row " << p;
    quant::quantize_row(TensorType::Q8_0, v.data() + p * row, block.data(), row);
    ASSERT_EQ(std::memcmp(q8.kv.v_row(p), block.data(), block.size()), 0) << "V row " << p;
    quant::dequantize_row(TensorType::Q8_0, q8.kv.k_row(p), kd.data(), row);
    quant::dequantize_row(TensorType::Q8_0, q8.kv.v_row(p), vd.data(), row);
    K.kv_store(f32.kv, p, kd.data(), vd.data());
    // Error per value: d / 2 from the int8 rounding plus 127 * |d - f16(d)|, d = amax / 127.
    float amax = 0.0f;
    for (int64_t i = 0; i < row; i++) amax = std::max(amax, std::abs(k[size_t(p * row + i)]));
    for (int64_t i = 0; i < row; i++)
      EXPECT_NEAR(kd[size_t(i)], k[size_t(p * row + i)], 0.56 * amax / 127);
  }
  const int64_t qw = s.n_head * s.head_dim;
  for (int64_t pos0 : {0, 3, 12}) {
    const int64_t n = n_pos - pos0;
    std::vector<float> a(size_t(n * qw)), b(a.size());
    K.attention(s, q.data() + pos0 * qw, qw, n, pos0, q8.kv, a.data(), qw);
    K.attention(s, q.data() + pos0 * qw, qw, n, pos0, f32.kv, b.data(), qw);
    EXPECT_EQ(a, b) << "pos0 " << pos0;
  }
}

TEST(Kernels, ConvCarriesStateAcrossCalls) {
  const int64_t C = 6, taps = 4, T = 9;
  const std::vector<float> x = randn(size_t(T * C), 10), w = randn(size_t(C * taps), 11);
  std::vector<float> state(size_t((taps - 1) * C), 0.0f), out(size_t(T * C));
  K.conv1d_silu(T, C, taps, x.data(), C, w.data(), state.data(), out.data(), C);
  for (int64_t t = 0; t < T; t++)
    for (int64_t ch = 0; ch < C; ch++) {
      double sum = 0.0;
      for (int64_t i = 0; i < taps; i++) {
        const int64_t u = t - (taps - 1) + i;
        if (u >= 0) sum += double(w[size_t(ch * taps + i)]) * x[size_t(u * C + ch)];
      }
      EXPECT_NEAR(out[size_t(t * C + ch)], sum / (1.0 + std::exp(-sum)), 1e-5);
    }
  // The final state holds the last three raw inputs, oldest first.
  for (int64_t r = 0; r < taps - 1; r++)
    for (int64_t ch = 0; ch < C; ch++) EXPECT_EQ(state[size_t(r * C + ch)], x[size_t((T - 3 + r) * C + ch)]);

  // Pieces of 1, 2, 1, 5 tokens with the carried state give the same outputs.
  std::vector<float> st(size_t((taps - 1) * C), 0.0f), piecewise(size_t(T * C));
  int64_t t0 = 0;
  for (int64_t len : {1, 2, 1, 5}) {
    K.conv1d_silu(len, C, taps, x.data() + t0 * C, C, w.data(), st.data(), piecewise.data() + t0 * C, C);
    t0 += len;
  }
  EXPECT_EQ(piecewise, out);
  EXPECT_EQ(st, state);
}

TEST(Kernels, GatedDeltaRuleMatchesClosedFormWithTiledHeads) {
  const DeltaNetShape s{2, 4, 5, 3};  // value head h reads key head h % 2
  const int64_t T = 7, qk = s.n_k * s.d_k, vw = s.n_v * s.d_v;
  std::vector<float> q = randn(size_t(T * qk), 12), k = randn(size_t(T * qk), 13);
  for (int64_t i = 0; i < T * s.n_k; i++) {  // unit-norm keys, as after the L2 norm
    double n = 0.0;
    for (int64_t d = 0; d < s.d_k; d++) n += double(k[size_t(i * s.d_k + d)]) * k[size_t(i * s.d_k + d)];
    for (int64_t d = 0; d < s.d_k; d++) k[size_t(i * s.d_k + d)] = float(k[size_t(i * s.d_k + d)] / std::sqrt(n));
  }
  const std::vector<float> v = randn(size_t(T * vw), 14);
  std::vector<float> g(size_t(T * s.n_v)), beta(size_t(T * s.n_v));
  std::mt19937 gen(15);
  for (float& x : g) x = -std::uniform_real_distribution<float>(0.01f, 2.0f)(gen);
  for (float& x : beta) x = std::uniform_real_distribution<float>(0.05f, 0.95f)(gen);

  std::vector<float> state(size_t(s.n_v * s.d_k * s.d_v), 0.0f), out(size_t(T * vw));
  K.gated_delta_rule(s, T, q.data(), k.data(), qk, v.data(), vw, g.data(), beta.data(), s.n_v, state.data(),
                     out.data(), vw);

  // S_t = e^g (I - beta k k^T) S_{t-1} + beta k v^T ;  o_t = S_t^T q
  std::vector<double> S(size_t(s.n_v * s.d_k * s.d_v), 0.0);
  for (int64_t t = 0; t < T; t++)
    for (int64_t h = 0; h < s.n_v; h++) {
      const int64_t kh = h % s.n_k;
      const float* kt = k.data() + t * qk + kh * s.d_k;
      const float* qt = q.data() + t * qk + kh * s.d_k;
      const float* vt = v.data() + t * vw + h * s.d_v;
      const double b = beta[size_t(t * s.n_v + h)], decay = std::exp(double(g[size_t(t * s.n_v + h)]));
      double* Sh = S.data() + h * s.d_k * s.d_v;
      std::vector<double> next(size_t(s.d_k * s.d_v));
      for (int64_t i = 0; i < s.d_k; i++)
        for (int64_t j = 0; j < s.d_v; j++) {
          double proj = 0.0;  // ((I - b k k^T) S)[i][j]
          for (int64_t l = 0; l < s.d_k; l++) proj += ((i == l) - b * kt[i] * kt[l]) * Sh[l * s.d_v + j];
          next[size_t(i * s.d_v + j)] = decay * proj + b * kt[i] * vt[j];
        }
      std::copy(next.begin(), next.end(), Sh);
      for (int64_t j = 0; j < s.d_v; j++) {
        double o = 0.0;
        for (int64_t i = 0; i < s.d_k; i++) o += Sh[i * s.d_v + j] * qt[i];
        EXPECT_NEAR(out[size_t(t * vw + h * s.d_v + j)], o, 1e-5) << "t " << t << " head " << h;
      }
    }
  for (size_t i = 0; i < S.size(); i++) EXPECT_NEAR(state[i], S[i], 1e-5);

  // Two calls (3 + 4 tokens) with the carried state: identical.
  std::vector<float> st(state.size(), 0.0f), out2(out.size());
  K.gated_delta_rule(s, 3, q.data(), k.data(), qk, v.data(), vw, g.data(), beta.data(), s.n_v, st.data(),
                     out2.data(), vw);
  K.gated_delta_rule(s, 4, q.data() + 3 * qk, k.data() + 3 * qk, qk, v.data() + 3 * vw, vw, g.data() + 3 * s.n_v,
                     beta.data() + 3 * s.n_v, s.n_v, st.data(), out2.data() + 3 * vw, vw);
  EXPECT_EQ(out2, out);
  EXPECT_EQ(st, state);
}

}  // namespace
}  // namespace pocket::kernels
