// AVX2 versions of the per-token sequence kernels: the gated delta rule and
// causal attention. Same formulas as reference.cpp (spec/qwen35.md 2.3, 2.5),
// reorganised for speed and split across the thread pool by heads:
//
//  - gated delta rule: each head's d_k x d_v state is visited in column strips
//    of up to 32 floats, two passes per token instead of three (the decay is
//    folded in: m = decay * S^T k, then S = decay * S + k delta^T and o = S^T q
//    in one sweep), and a head runs all of a segment's tokens while its state
//    is in cache.
//  - attention: the query heads that share a KV head are processed together,
//    so each cached K and V row is converted (f16 -> f32) and read once for the
//    whole group; scores, softmax (max-subtracted, f32 exp, double sum as the
//    reference) and the weighted V sum are vectorised.
//
// Results differ from the reference by f32 rounding (order of additions, FMA).
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/fast_kernels.h"
#include "util/thread_pool.h"

namespace pocket::kernels::avx2 {

namespace {

#define POCKET_AVX2 __attribute__((target("avx2,fma,f16c")))

POCKET_AVX2 inline float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// One token of one head on columns [j0, j0 + 8 * NV) of the state.
template <int NV>
POCKET_AVX2 void delta_strip(int64_t dk, int64_t dv, int64_t j0, float* S, const float* q,
                             const float* k, const float* v, float decay, float beta, float* o) {
  __m256 m[NV];
  for (int c = 0; c < NV; c++) m[c] = _mm256_setzero_ps();
  for (int64_t i = 0; i < dk; i++) {
    const float* Si = S + i * dv + j0;
    const __m256 ki = _mm256_broadcast_ss(k + i);
    for (int c = 0; c < NV; c++) m[c] = _mm256_fmadd_ps(_mm256_loadu_ps(Si + 8 * c), ki, m[c]);
  }
  // delta = beta * (v - decay * S^T k)
  const __m256 vdecay = _mm256_set1_ps(decay), vbeta = _mm256_set1_ps(beta);
  __m256 delta[NV], acc[NV];
  for (int c = 0; c < NV; c++) {
    delta[c] =
        _mm256_mul_ps(vbeta, _mm256_fnmadd_ps(vdecay, m[c], _mm256_loadu_ps(v + j0 + 8 * c)));
    acc[c] = _mm256_setzero_ps();
  }
  for (int64_t i = 0; i < dk; i++) {
    float* Si = S + i * dv + j0;
    const __m256 ki = _mm256_broadcast_ss(k + i);
    const __m256 qi = _mm256_broadcast_ss(q + i);
    for (int c = 0; c < NV; c++) {
      const __m256 s =
          _mm256_fmadd_ps(ki, delta[c], _mm256_mul_ps(vdecay, _mm256_loadu_ps(Si + 8 * c)));
      _mm256_storeu_ps(Si + 8 * c, s);
      acc[c] = _mm256_fmadd_ps(s, qi, acc[c]);
    }
  }
  for (int c = 0; c < NV; c++) _mm256_storeu_ps(o + j0 + 8 * c, acc[c]);
}

POCKET_AVX2 void delta_head_token(int64_t dk, int64_t dv, float* S, const float* q, const float* k,
                                  const float* v, float decay, float beta, float* o) {
  int64_t j0 = 0;
  for (; j0 + 32 <= dv; j0 += 32) delta_strip<4>(dk, dv, j0, S, q, k, v, decay, beta, o);
  switch ((dv - j0) / 8) {
    case 3:
      delta_strip<3>(dk, dv, j0, S, q, k, v, decay, beta, o);
      break;
    case 2:
      delta_strip<2>(dk, dv, j0, S, q, k, v, decay, beta, o);
      break;
    case 1:
      delta_strip<1>(dk, dv, j0, S, q, k, v, decay, beta, o);
      break;
    default:
      break;
  }
}

// Scores of one cached position for a group of query heads.
POCKET_AVX2 inline __m256 load8_kv(KvType type, const uint8_t* row, int64_t i) {
  if (type == KvType::F32) return _mm256_loadu_ps(reinterpret_cast<const float*>(row) + i);
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 * i)));
}

// Attention for one token and the `group` query heads that read KV head m.
// scores: at least group * n_ctx floats of scratch.
POCKET_AVX2 void attend_group(const AttentionShape& s, const float* q_heads, int64_t group,
                              int64_t m, int64_t n_ctx, const KvView& kv, float* scores,
                              float* out_heads) {
  const int64_t D = s.head_dim;
  const uint64_t head_offset = uint64_t(m * D) * kv_type_size(kv.type);
  // Scores: q_j . k_p * scale, one K row conversion for all heads of the group.
  for (int64_t p = 0; p < n_ctx; p++) {
    const uint8_t* krow = kv.k_row(p) + head_offset;
    for (int64_t j = 0; j < group; j++) {
      const float* qj = q_heads + j * D;
      __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
      int64_t i = 0;
      for (; i + 16 <= D; i += 16) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(qj + i), load8_kv(kv.type, krow, i), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(qj + i + 8), load8_kv(kv.type, krow, i + 8), a1);
      }
      for (; i < D; i += 8)
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(qj + i), load8_kv(kv.type, krow, i), a0);
      scores[j * n_ctx + p] = hsum8(_mm256_add_ps(a0, a1)) * s.scale;
    }
  }
  // Softmax per head (as the reference: max-subtracted f32 exp, double sum).
  for (int64_t j = 0; j < group; j++) {
    float* sc = scores + j * n_ctx;
    float mx = -INFINITY;
    for (int64_t p = 0; p < n_ctx; p++) mx = std::max(mx, sc[p]);
    double sum = 0.0;
    for (int64_t p = 0; p < n_ctx; p++) {
      sc[p] = std::exp(sc[p] - mx);
      sum += sc[p];
    }
    const float inv = float(1.0 / sum);
    for (int64_t p = 0; p < n_ctx; p++) sc[p] *= inv;
  }
  // out_j = sum_p w_jp v_p, one V row conversion for all heads; 32 columns at a time.
  for (int64_t d0 = 0; d0 < D; d0 += 32) {
    const int64_t nv = std::min<int64_t>(4, (D - d0) / 8);
    for (int64_t j = 0; j < group; j++) {
      __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                       _mm256_setzero_ps()};
      const float* w = scores + j * n_ctx;
      for (int64_t p = 0; p < n_ctx; p++) {
        const uint8_t* vrow = kv.v_row(p) + head_offset;
        const __m256 wp = _mm256_broadcast_ss(w + p);
        for (int64_t c = 0; c < nv; c++)
          acc[c] = _mm256_fmadd_ps(wp, load8_kv(kv.type, vrow, d0 + 8 * c), acc[c]);
      }
      for (int64_t c = 0; c < nv; c++) _mm256_storeu_ps(out_heads + j * D + d0 + 8 * c, acc[c]);
    }
  }
}

}  // namespace

void gated_delta_rule(const DeltaNetShape& s, int64_t n_tokens, const float* q, const float* k,
                      int64_t qk_stride, const float* v, int64_t v_stride, const float* g,
                      const float* beta, int64_t gb_stride, float* state, float* out,
                      int64_t out_stride) {
  if (s.d_v % 8 != 0 || n_tokens <= 0) {
    reference_ops().gated_delta_rule(s, n_tokens, q, k, qk_stride, v, v_stride, g, beta, gb_stride,
                                     state, out, out_stride);
    return;
  }
  const int64_t dk = s.d_k, dv = s.d_v;
  // Heads are independent: each thread runs all tokens of its heads.
  parallel_for(s.n_v, [&](int64_t h0, int64_t h1) {
    for (int64_t h = h0; h < h1; h++) {
      const int64_t kh = h % s.n_k;  // tiled GGUF head order
      float* S = state + h * dk * dv;
      for (int64_t t = 0; t < n_tokens; t++) {
        const float decay = std::exp(g[t * gb_stride + h]);
        delta_head_token(dk, dv, S, q + t * qk_stride + kh * dk, k + t * qk_stride + kh * dk,
                         v + t * v_stride + h * dv, decay, beta[t * gb_stride + h],
                         out + t * out_stride + h * dv);
      }
    }
  });
}

void attention(const AttentionShape& s, const float* q, int64_t q_stride, int64_t n_tokens,
               int64_t pos0, const KvView& kv, float* out, int64_t out_stride) {
  if (s.head_dim % 8 != 0 || n_tokens <= 0) {
    reference_ops().attention(s, q, q_stride, n_tokens, pos0, kv, out, out_stride);
    return;
  }
  const int64_t group = s.n_head / s.n_head_kv;
  const int64_t D = s.head_dim;
  const int64_t n_items = n_tokens * s.n_head_kv;
  // Work items (token, KV head) cost in proportion to the token's context:
  // threads take items round-robin so that the causal triangle is shared evenly.
  thread_pool().run([&](int t, int n_threads) {
    thread_local std::vector<float> scores;
    const uint64_t need = uint64_t(group * (pos0 + n_tokens));
    if (scores.size() < need) scores.resize(need);
    for (int64_t item = t; item < n_items; item += n_threads) {
      const int64_t tok = item / s.n_head_kv, m = item % s.n_head_kv;
      attend_group(s, q + tok * q_stride + m * group * D, group, m, pos0 + tok + 1, kv,
                   scores.data(), out + tok * out_stride + m * group * D);
    }
  });
}

}  // namespace pocket::kernels::avx2
