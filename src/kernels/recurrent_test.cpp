// The fast sequence kernels (gated delta rule, attention) against the
// reference on random inputs: awkward head sizes, several tokens, carried
// state, paged f32 and f16 caches, and more threads than heads.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/fast_kernels.h"
#include "kernels/fast_ops.h"
#include "util/fp16.h"
#include "util/thread_pool.h"

namespace pocket::kernels {
namespace {

std::vector<float> randn(size_t n, std::mt19937& rng, float scale = 1.0f) {
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

void expect_close(const std::vector<float>& got, const std::vector<float>& want, float tol,
                  const char* what) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); i++)
    ASSERT_NEAR(got[i], want[i], tol * (1.0f + std::fabs(want[i]))) << what << " at " << i;
}

class ThreadCount {
 public:
  explicit ThreadCount(int n) : saved_(thread_count()) { set_thread_count(n); }
  ~ThreadCount() { set_thread_count(saved_); }

 private:
  int saved_;
};

bool has_avx2() {
  return machine_cpu_level() >= CpuLevel::kAvx2;
}

TEST(FastDeltaRule, MatchesReference) {
  if (!has_avx2()) GTEST_SKIP() << "no AVX2";
  std::mt19937 rng(11);
  struct Case {
    DeltaNetShape s;
    int64_t tokens;
  };
  const Case cases[] = {{{2, 4, 5, 8}, 3},     {{1, 3, 16, 24}, 7}, {{2, 4, 32, 40}, 2},
                        {{4, 4, 128, 128}, 1}, {{2, 6, 16, 64}, 5}, {{16, 16, 128, 128}, 2}};
  for (int threads : {1, 3}) {
    ThreadCount tc(threads);
    for (const Case& c : cases) {
      const DeltaNetShape& s = c.s;
      const int64_t T = c.tokens, qk_stride = s.n_k * s.d_k + 3, v_stride = s.n_v * s.d_v + 5;
      const int64_t gb_stride = s.n_v + 1, out_stride = s.n_v * s.d_v + 2;
      std::vector<float> q = randn(size_t(T * qk_stride), rng, 0.1f);
      std::vector<float> k = randn(size_t(T * qk_stride), rng);
      for (int64_t t = 0; t < T; t++)  // unit-norm keys, as after the L2 norm
        for (int64_t h = 0; h < s.n_k; h++) {
          float* kh = &k[size_t(t * qk_stride + h * s.d_k)];
          double ss = 0;
          for (int64_t i = 0; i < s.d_k; i++) ss += double(kh[i]) * kh[i];
          for (int64_t i = 0; i < s.d_k; i++) kh[i] = float(kh[i] / std::sqrt(ss));
        }
      const std::vector<float> v = randn(size_t(T * v_stride), rng);
      std::vector<float> g(size_t(T * gb_stride)), beta(size_t(T * gb_stride));
      std::uniform_real_distribution<float> gd(-2.0f, -0.01f), bd(0.05f, 0.95f);
      for (float& x : g) x = gd(rng);
      for (float& x : beta) x = bd(rng);
      const std::vector<float> state0 = randn(size_t(s.n_v * s.d_k * s.d_v), rng, 0.3f);

      std::vector<float> ref_state = state0, fast_state = state0;
      std::vector<float> ref_out(size_t(T * out_stride), 0.0f), fast_out(ref_out);
      reference_ops().gated_delta_rule(s, T, q.data(), k.data(), qk_stride, v.data(), v_stride,
                                       g.data(), beta.data(), gb_stride, ref_state.data(),
                                       ref_out.data(), out_stride);
      avx2::gated_delta_rule(s, T, q.data(), k.data(), qk_stride, v.data(), v_stride, g.data(),
                             beta.data(), gb_stride, fast_state.data(), fast_out.data(),
                             out_stride);
      expect_close(fast_out, ref_out, 2e-5f, "out");
      expect_close(fast_state, ref_state, 2e-5f, "state");
      if (HasFatalFailure()) return;
    }
  }
}

// Random delta-rule inputs for T tokens: unit-norm keys (as after the L2
// norm), log-decays in [g_lo, g_hi], beta in (0, 1).
struct DeltaInputs {
  int64_t qk_stride, v_stride, gb_stride, out_stride;
  std::vector<float> q, k, v, g, beta;
};

DeltaInputs delta_inputs(const DeltaNetShape& s, int64_t T, std::mt19937& rng, float g_lo,
                         float g_hi) {
  DeltaInputs in;
  in.qk_stride = s.n_k * s.d_k + 3;
  in.v_stride = s.n_v * s.d_v + 5;
  in.gb_stride = s.n_v + 1;
  in.out_stride = s.n_v * s.d_v + 2;
  in.q = randn(size_t(T * in.qk_stride), rng, 0.1f);
  in.k = randn(size_t(T * in.qk_stride), rng);
  for (int64_t t = 0; t < T; t++)
    for (int64_t h = 0; h < s.n_k; h++) {
      float* kh = &in.k[size_t(t * in.qk_stride + h * s.d_k)];
      double ss = 0;
      for (int64_t i = 0; i < s.d_k; i++) ss += double(kh[i]) * kh[i];
      for (int64_t i = 0; i < s.d_k; i++) kh[i] = float(kh[i] / std::sqrt(ss));
    }
  in.v = randn(size_t(T * in.v_stride), rng);
  in.g.resize(size_t(T * in.gb_stride));
  in.beta.resize(in.g.size());
  std::uniform_real_distribution<float> gd(g_lo, g_hi), bd(0.05f, 0.95f);
  for (float& x : in.g) x = gd(rng);
  for (float& x : in.beta) x = bd(rng);
  return in;
}

// The chunked form (64-token chunks, padded last chunk) against the sequential
// reference: token counts around the chunk size, zero and random initial
// states, fast and slow decay, grouped heads, awkward head sizes, more threads
// than heads; then a decode step continues from the chunked state.
TEST(ChunkedDeltaRule, MatchesSequentialReference) {
  if (!has_avx2()) GTEST_SKIP() << "no AVX2";
  std::mt19937 rng(21);
  const DeltaNetShape shapes[] = {{16, 16, 128, 128}, {2, 4, 16, 24}, {1, 3, 8, 8}, {2, 2, 40, 32}};
  struct Decay {
    float lo, hi;
  };
  const Decay decays[] = {{-2.0f, -0.01f}, {-0.02f, 0.0f}, {-60.0f, -5.0f}};
  for (int threads : {1, 3}) {
    ThreadCount tc(threads);
    for (const DeltaNetShape& s : shapes) {
      for (int64_t T : {1, 63, 64, 65, 130}) {
        if (s.d_k == 128 && threads == 3 && T != 130) continue;  // keep the big shape quick
        for (bool initial_state : {false, true}) {
          const Decay& dec = decays[size_t(T + initial_state) % 3];
          const DeltaInputs in = delta_inputs(s, T, rng, dec.lo, dec.hi);
          const size_t state_size = size_t(s.n_v * s.d_k * s.d_v);
          const std::vector<float> state0 =
              initial_state ? randn(state_size, rng, 0.3f) : std::vector<float>(state_size, 0.0f);
          std::vector<float> ref_state = state0, fast_state = state0;
          std::vector<float> ref_out(size_t(T * in.out_stride), 0.0f), fast_out(ref_out);
          reference_ops().gated_delta_rule(
              s, T, in.q.data(), in.k.data(), in.qk_stride, in.v.data(), in.v_stride, in.g.data(),
              in.beta.data(), in.gb_stride, ref_state.data(), ref_out.data(), in.out_stride);
          avx2::gated_delta_rule_chunked(s, T, in.q.data(), in.k.data(), in.qk_stride, in.v.data(),
                                         in.v_stride, in.g.data(), in.beta.data(), in.gb_stride,
                                         fast_state.data(), fast_out.data(), in.out_stride);
          SCOPED_TRACE(testing::Message()
                       << "d_k " << s.d_k << " d_v " << s.d_v << " n_v " << s.n_v << " tokens " << T
                       << " initial state " << initial_state << " g in [" << dec.lo << ", "
                       << dec.hi << "] threads " << threads);
          expect_close(fast_out, ref_out, 1e-4f, "out");
          expect_close(fast_state, ref_state, 1e-4f, "state");
          if (HasFatalFailure()) return;

          // One decode token after the chunked prefill, through the table's dispatch.
          const DeltaInputs next = delta_inputs(s, 1, rng, dec.lo, dec.hi);
          std::vector<float> ref1(size_t(next.out_stride), 0.0f), fast1(ref1);
          reference_ops().gated_delta_rule(s, 1, next.q.data(), next.k.data(), next.qk_stride,
                                           next.v.data(), next.v_stride, next.g.data(),
                                           next.beta.data(), next.gb_stride, ref_state.data(),
                                           ref1.data(), next.out_stride);
          avx2::gated_delta_rule(s, 1, next.q.data(), next.k.data(), next.qk_stride, next.v.data(),
                                 next.v_stride, next.g.data(), next.beta.data(), next.gb_stride,
                                 fast_state.data(), fast1.data(), next.out_stride);
          expect_close(fast1, ref1, 1e-4f, "decode out after chunked prefill");
          if (HasFatalFailure()) return;
        }
      }
    }
  }
}

struct Cache {
  KvType type;
  int64_t row_elems, page_tokens;
  std::vector<std::vector<uint8_t>> pages;
  std::vector<uint8_t*> ptrs;
  KvView view() const {
    KvView kv;
    kv.type = type;
    kv.row_elems = row_elems;
    kv.page_tokens = page_tokens;
    kv.pages = ptrs.data();
    kv.k_offset = 0;
    kv.v_offset = uint64_t(page_tokens) * kv.row_bytes();
    return kv;
  }
};

Cache make_cache(KvType type, int64_t row_elems, int64_t page_tokens, int64_t n_pos) {
  Cache c{type, row_elems, page_tokens, {}, {}};
  const int64_t n_pages = (n_pos + page_tokens - 1) / page_tokens;
  for (int64_t p = 0; p < n_pages; p++)
    c.pages.emplace_back(size_t(2 * uint64_t(page_tokens) * kv_bytes(type, row_elems)));
  for (auto& p : c.pages) c.ptrs.push_back(p.data());
  return c;
}

TEST(FastAttention, MatchesReferenceOnPagedCaches) {
  if (!has_avx2()) GTEST_SKIP() << "no AVX2";
  std::mt19937 rng(12);
  struct Case {
    int64_t n_head, n_kv, D, pos0, tokens, page;
  };
  // Several 16-token query blocks and 32-key blocks with partial last blocks,
  // causal masks inside a key block, a long-context decode step.
  const Case cases[] = {{8, 2, 256, 0, 5, 32},  {8, 2, 256, 37, 1, 32}, {3, 1, 8, 4, 6, 4},
                        {4, 4, 24, 9, 3, 5},    {2, 1, 64, 0, 1, 1},    {8, 2, 256, 100, 17, 16},
                        {8, 2, 256, 0, 70, 16}, {4, 1, 64, 45, 33, 7},  {8, 2, 256, 300, 1, 64},
                        {6, 3, 16, 31, 50, 32}, {4, 2, 32, 0, 1, 32},   {6, 3, 32, 30, 5, 32},
                        {8, 1, 64, 0, 33, 5}};
  for (int threads : {1, 3}) {
    ThreadCount tc(threads);
    for (KvType type : {KvType::F32, KvType::F16, KvType::Q8_0}) {
      for (const Case& c : cases) {
        if (type == KvType::Q8_0 && c.D % 32 != 0) continue;  // Q8_0 needs whole blocks per head
        const AttentionShape s{c.n_head, c.n_kv, c.D, 1.0f / std::sqrt(float(c.D))};
        const int64_t n_pos = c.pos0 + c.tokens, row = c.n_kv * c.D;
        Cache cache = make_cache(type, row, c.page, n_pos);
        const KvView kv = cache.view();
        const std::vector<float> kk = randn(size_t(n_pos * row), rng),
                                 vv = randn(size_t(n_pos * row), rng);
        for (int64_t p = 0; p < n_pos; p++)
          reference_ops().kv_store(kv, p, &kk[size_t(p * row)], &vv[size_t(p * row)]);
        const int64_t q_stride = c.n_head * c.D + 4, out_stride = c.n_head * c.D + 1;
        const std::vector<float> q = randn(size_t(c.tokens * q_stride), rng);
        std::vector<float> ref(size_t(c.tokens * out_stride), 0.0f), fast(ref);
        reference_ops().attention(s, q.data(), q_stride, c.tokens, c.pos0, kv, ref.data(),
                                  out_stride);
        avx2::attention(s, q.data(), q_stride, c.tokens, c.pos0, kv, fast.data(), out_stride);
        expect_close(fast, ref, 2e-5f, kv_type_name(type));
        if (HasFatalFailure()) return;
      }
    }
  }
}

}  // namespace
}  // namespace pocket::kernels

namespace pocket::kernels {
namespace {

TEST(FastElementwise, NormsAndActivationsMatchReference) {
  if (machine_cpu_level() < CpuLevel::kAvx2) GTEST_SKIP() << "no AVX2";
  std::mt19937 rng(13);
  const Ops& ref = reference_ops();
  for (int64_t n : {1, 7, 8, 9, 64, 100, 1024, 3584}) {
    std::vector<float> x = randn(size_t(n), rng, 3.0f), w = randn(size_t(n), rng);
    x[0] = 95.0f;  // e^-x underflows, e^x overflows: the limits must come out right
    if (n > 1) x[1] = -95.0f;
    std::vector<float> a(static_cast<size_t>(n)), b(a.size());
    ref.rmsnorm(x.data(), w.data(), n, 1e-6f, a.data());
    avx2::rmsnorm(x.data(), w.data(), n, 1e-6f, b.data());
    expect_close(b, a, 1e-6f, "rmsnorm");
    ref.rmsnorm(x.data(), nullptr, n, 1e-6f, a.data());
    avx2::rmsnorm(x.data(), nullptr, n, 1e-6f, b.data());
    expect_close(b, a, 1e-6f, "rmsnorm without weight");
    b = x;  // in place, as the model calls it
    avx2::rmsnorm(b.data(), w.data(), n, 1e-6f, b.data());
    ref.rmsnorm(x.data(), w.data(), n, 1e-6f, a.data());
    expect_close(b, a, 1e-6f, "rmsnorm in place");
    a = x, b = x;
    ref.l2norm(a.data(), n, 1e-6f);
    avx2::l2norm(b.data(), n, 1e-6f);
    expect_close(b, a, 1e-6f, "l2norm");
    a = x, b = x;
    ref.silu(a.data(), n);
    avx2::silu(b.data(), n);
    expect_close(b, a, 1e-6f, "silu");
    a = x, b = x;
    ref.sigmoid(a.data(), n);
    avx2::sigmoid(b.data(), n);
    expect_close(b, a, 1e-6f, "sigmoid");
    ref.swiglu(x.data(), w.data(), a.data(), n);
    avx2::swiglu(x.data(), w.data(), b.data(), n);
    expect_close(b, a, 1e-6f, "swiglu");
    const std::vector<float> z = randn(size_t(n), rng, 2.0f);
    // The fused steps: residual add + norm, output gate, gated norm.
    std::vector<float> xa = x, xb = x;
    ref.add_rmsnorm(xa.data(), z.data(), w.data(), n, 1e-6f, a.data());
    avx2::add_rmsnorm(xb.data(), z.data(), w.data(), n, 1e-6f, b.data());
    expect_close(xb, xa, 1e-6f, "add_rmsnorm sum");
    expect_close(b, a, 1e-6f, "add_rmsnorm");
    a = z, b = z;
    ref.sigmoid_mul(x.data(), a.data(), n);
    avx2::sigmoid_mul(x.data(), b.data(), n);
    expect_close(b, a, 1e-6f, "sigmoid_mul");
    a = x, b = x;
    ref.rmsnorm_silu_gate(a.data(), z.data(), w.data(), n, 1e-6f);
    avx2::rmsnorm_silu_gate(b.data(), z.data(), w.data(), n, 1e-6f);
    expect_close(b, a, 2e-6f, "rmsnorm_silu_gate");
    if (HasFatalFailure()) return;
  }
  {  // Large enough to be split across threads.
    ThreadCount tc(3);
    const int64_t n = 40000 + 5;
    const std::vector<float> gate = randn(size_t(n), rng, 3.0f), up = randn(size_t(n), rng);
    std::vector<float> a(static_cast<size_t>(n)), b(a.size());
    ref.swiglu(gate.data(), up.data(), a.data(), n);
    avx2::swiglu(gate.data(), up.data(), b.data(), n);
    expect_close(b, a, 1e-6f, "swiglu, threaded");
  }
  std::vector<float> zero(16, 0.0f);
  avx2::l2norm(zero.data(), 16, 1e-6f);
  for (float v : zero) EXPECT_EQ(v, 0.0f);
}

TEST(FastElementwise, ConvCarriesStateLikeReference) {
  if (machine_cpu_level() < CpuLevel::kAvx2) GTEST_SKIP() << "no AVX2";
  std::mt19937 rng(14);
  ThreadCount tc(3);  // 6144 channels x 6 tokens are split across threads
  for (int64_t channels : {8, 24, 6144}) {
    for (int64_t kernel : {2, 4}) {
      const int64_t x_stride = channels + 3, out_stride = channels + 1;
      const std::vector<float> w = randn(size_t(channels * kernel), rng);
      std::vector<float> ref_state = randn(size_t((kernel - 1) * channels), rng),
                         fast_state = ref_state;
      // Segments of 1, 2 (shorter than the history) and 6 tokens, state carried between them.
      for (int64_t T : {1, 2, 6, 1}) {
        const std::vector<float> x = randn(size_t(T * x_stride), rng);
        std::vector<float> a(size_t(T * out_stride), 0.0f), b(a);
        reference_ops().conv1d_silu(T, channels, kernel, x.data(), x_stride, w.data(),
                                    ref_state.data(), a.data(), out_stride);
        avx2::conv1d_silu(T, channels, kernel, x.data(), x_stride, w.data(), fast_state.data(),
                          b.data(), out_stride);
        expect_close(b, a, 1e-6f, "conv out");
        expect_close(fast_state, ref_state, 0.0f, "conv state");
        if (HasFatalFailure()) return;
      }
    }
  }
}

// The two visiting orders of the per-token delta rule give the same bits
// (d_v up to the row kernel's limit and beyond it, several tokens, 1 and 3
// threads).
TEST(FastDeltaRule, RowOrderEqualsStripsBitForBit) {
  if (!has_avx2()) GTEST_SKIP() << "no AVX2";
  std::mt19937 rng(23);
  const DeltaNetShape shapes[] = {
      {1, 1, 8, 8}, {3, 3, 16, 40}, {2, 6, 24, 128}, {16, 16, 128, 128}, {1, 2, 16, 520}};
  for (int threads : {1, 3}) {
    ThreadCount tc(threads);
    for (const DeltaNetShape& s : shapes) {
      const int64_t T = 3;
      DeltaInputs in = delta_inputs(s, T, rng, -2.0f, -0.01f);
      const std::vector<float> state0 = randn(size_t(s.n_v * s.d_k * s.d_v), rng, 0.3f);
      std::vector<float> rows_state = state0, strips_state = state0;
      std::vector<float> rows_out(size_t(T * in.out_stride), 0.0f), strips_out(rows_out);
      avx2::use_delta_strips(false);
      avx2::gated_delta_rule_sequential(s, T, in.q.data(), in.k.data(), in.qk_stride, in.v.data(),
                                        in.v_stride, in.g.data(), in.beta.data(), in.gb_stride,
                                        rows_state.data(), rows_out.data(), in.out_stride);
      avx2::use_delta_strips(true);
      avx2::gated_delta_rule_sequential(s, T, in.q.data(), in.k.data(), in.qk_stride, in.v.data(),
                                        in.v_stride, in.g.data(), in.beta.data(), in.gb_stride,
                                        strips_state.data(), strips_out.data(), in.out_stride);
      avx2::use_delta_strips(false);
      SCOPED_TRACE(testing::Message()
                   << "n_v " << s.n_v << " d_v " << s.d_v << " threads " << threads);
      expect_close(rows_out, strips_out, 0.0f, "out");
      expect_close(rows_state, strips_state, 0.0f, "state");
      if (HasFatalFailure()) return;
    }
  }
}

// The fused decode step (one hand-off, split by key head) against the same
// step as the avx2 kernels one after another on one thread: bit for bit, for
// 1-3 threads, value heads sharing a key head (n_v a multiple of n_k or not,
// fewer value heads than key heads), one head, and the shapes that fall back
// (head size not a multiple of 8, a 3-tap conv). And within f32 rounding of
// the reference kernels. Two steps, so the carried states are checked too.
TEST(FastDeltaNetStep, MatchesUnfusedKernelsBitForBit) {
  if (!has_avx2()) GTEST_SKIP() << "no AVX2";
  std::mt19937 rng(21);
  struct Case {
    DeltaNetShape s;
    int64_t conv_kernel;
  };
  const Case cases[] = {{{1, 1, 8, 8}, 4},       {{3, 3, 16, 16}, 4}, {{3, 6, 8, 8}, 4},
                        {{2, 5, 24, 24}, 4},     {{5, 3, 16, 16}, 4}, {{16, 16, 128, 128}, 4},
                        {{16, 32, 128, 128}, 4}, {{2, 2, 12, 12}, 4}, {{3, 3, 16, 16}, 3}};
  const Ops& fast = ops_for_level(CpuLevel::kAvx2);
  for (const Case& c : cases) {
    const DeltaNetShape& s = c.s;
    const int64_t key_dim = s.n_k * s.d_k, value_dim = s.n_v * s.d_v;
    const int64_t conv_dim = 2 * key_dim + value_dim;
    const std::vector<float> conv_w = randn(size_t(conv_dim * c.conv_kernel), rng, 0.5f);
    const std::vector<float> norm_w = randn(size_t(s.d_v), rng);
    const std::vector<float> conv_state0 = randn(size_t((c.conv_kernel - 1) * conv_dim), rng);
    const std::vector<float> state0 = randn(size_t(s.n_v * s.d_k * s.d_v), rng, 0.3f);
    for (int threads : {1, 2, 3}) {
      // a: fused at `threads`; b: the avx2 kernels one by one, 1 thread; r: reference.
      std::vector<float> conv_a = conv_state0, conv_b = conv_state0, conv_r = conv_state0;
      std::vector<float> state_a = state0, state_b = state0, state_r = state0;
      for (int token = 0; token < 2; token++) {
        const std::vector<float> x = randn(size_t(conv_dim), rng);
        const std::vector<float> z = randn(size_t(value_dim), rng);
        std::vector<float> g(static_cast<size_t>(s.n_v)), beta(g);
        std::uniform_real_distribution<float> gd(-2.0f, -0.01f), bd(0.05f, 0.95f);
        for (float& v : g) v = gd(rng);
        for (float& v : beta) v = bd(rng);
        std::vector<float> u_a(static_cast<size_t>(conv_dim)), u_b(u_a), u_r(u_a);
        std::vector<float> out_a(static_cast<size_t>(value_dim)), out_b(out_a), out_r(out_a);
        auto step_of = [&](std::vector<float>& conv_state, std::vector<float>& u,
                           std::vector<float>& state, std::vector<float>& out) {
          DeltaNetStep st;
          st.shape = s;
          st.conv_kernel = c.conv_kernel;
          st.conv_w = conv_w.data();
          st.conv_state = conv_state.data();
          st.x = x.data();
          st.u = u.data();
          st.g = g.data();
          st.beta = beta.data();
          st.z = z.data();
          st.norm_w = norm_w.data();
          st.eps = 1e-6f;
          st.q_scale = float(1.0 / std::sqrt(double(s.d_k)));
          st.state = state.data();
          st.out = out.data();
          return st;
        };
        {
          ThreadCount tc(threads);
          avx2::deltanet_step(step_of(conv_a, u_a, state_a, out_a));
        }
        {
          ThreadCount tc(1);
          deltanet_step_unfused(fast, step_of(conv_b, u_b, state_b, out_b));
        }
        reference_ops().deltanet_step(step_of(conv_r, u_r, state_r, out_r));
        SCOPED_TRACE(testing::Message()
                     << "n_k " << s.n_k << " n_v " << s.n_v << " d " << s.d_k << " conv "
                     << c.conv_kernel << " threads " << threads << " token " << token);
        expect_close(out_a, out_b, 0.0f, "out (fused vs separate kernels)");
        expect_close(state_a, state_b, 0.0f, "state");
        expect_close(conv_a, conv_b, 0.0f, "conv state");
        expect_close(u_a, u_b, 0.0f, "u");
        expect_close(out_a, out_r, 2e-5f, "out (vs reference)");
        expect_close(state_a, state_r, 2e-5f, "state (vs reference)");
        expect_close(conv_a, conv_r, 0.0f, "conv state (vs reference)");
        if (HasFatalFailure()) return;
      }
    }
  }
}

}  // namespace
}  // namespace pocket::kernels
