// AVX2 gated delta rule (spec/qwen35.md 2.5 step 8 and section 3), split
// across the thread pool by value heads; each head runs all of a segment's
// tokens while its state is in cache.
//
//  - sequential (decode and short segments): the head's d_k x d_v state is
//    visited in column strips of up to 32 floats, two passes per token instead
//    of three (the decay is folded in: m = decay * S^T k, then
//    S = decay * S + k delta^T and o = S^T q in one sweep).
//  - chunked (prefill): 64 tokens at a time as small matrix products, the
//    state read and written once per chunk instead of once per token.
//
// Results differ from the reference by f32 rounding (order of additions, FMA,
// the vector exp of the chunked form's decays).
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "kernels/avx2_math.h"
#include "kernels/fast_kernels.h"
#include "kernels/fast_ops.h"
#include "util/thread_pool.h"

namespace pocket::kernels::avx2 {

namespace {

// One token of one head on columns [j0, j0 + 8 * NV) of the state.
template <int NV>
POCKET_AVX2 void delta_strip(int64_t dk, int64_t dv, int64_t j0, float* S, const float* q,
                             const float* k, const float* v, float decay, float beta, float* o) {
  __m256 m[NV];
#pragma GCC unroll 4
  for (int c = 0; c < NV; c++) m[c] = _mm256_setzero_ps();
  for (int64_t i = 0; i < dk; i++) {
    const float* Si = S + i * dv + j0;
    const __m256 ki = _mm256_broadcast_ss(k + i);
#pragma GCC unroll 4
    for (int c = 0; c < NV; c++) m[c] = _mm256_fmadd_ps(_mm256_loadu_ps(Si + 8 * c), ki, m[c]);
  }
  // delta = beta * (v - decay * S^T k)
  const __m256 vdecay = _mm256_set1_ps(decay), vbeta = _mm256_set1_ps(beta);
  __m256 delta[NV], acc[NV];
#pragma GCC unroll 4
  for (int c = 0; c < NV; c++) {
    delta[c] =
        _mm256_mul_ps(vbeta, _mm256_fnmadd_ps(vdecay, m[c], _mm256_loadu_ps(v + j0 + 8 * c)));
    acc[c] = _mm256_setzero_ps();
  }
  for (int64_t i = 0; i < dk; i++) {
    float* Si = S + i * dv + j0;
    const __m256 ki = _mm256_broadcast_ss(k + i);
    const __m256 qi = _mm256_broadcast_ss(q + i);
#pragma GCC unroll 4
    for (int c = 0; c < NV; c++) {
      const __m256 s =
          _mm256_fmadd_ps(ki, delta[c], _mm256_mul_ps(vdecay, _mm256_loadu_ps(Si + 8 * c)));
      _mm256_storeu_ps(Si + 8 * c, s);
      acc[c] = _mm256_fmadd_ps(s, qi, acc[c]);
    }
  }
#pragma GCC unroll 4
  for (int c = 0; c < NV; c++) _mm256_storeu_ps(o + j0 + 8 * c, acc[c]);
}

// Widest d_v the row-order kernel keeps its column sums for (on the stack).
constexpr int64_t kRowOrderMaxDv = 512;

// One token of one head, the state visited row by row (contiguous, in memory
// order) with the column sums in L1: the same operations per column, in the
// same order, as delta_strip (bit for bit), but the state streams in from
// memory as one sequential run instead of d_v / 32 strided strips (decode:
// the state is cold, 10-15% faster in a cold-state benchmark).
POCKET_AVX2 void delta_head_token_rows(int64_t dk, int64_t dv, float* S, const float* q,
                                       const float* k, const float* v, float decay, float beta,
                                       float* o) {
  alignas(32) float m[kRowOrderMaxDv], delta[kRowOrderMaxDv];
  for (int64_t j = 0; j < dv; j += 8) _mm256_store_ps(m + j, _mm256_setzero_ps());
  for (int64_t i = 0; i < dk; i++) {
    const float* Si = S + i * dv;
    const __m256 ki = _mm256_broadcast_ss(k + i);
    for (int64_t j = 0; j < dv; j += 8)
      _mm256_store_ps(m + j, _mm256_fmadd_ps(_mm256_loadu_ps(Si + j), ki, _mm256_load_ps(m + j)));
  }
  // delta = beta * (v - decay * S^T k); o accumulates in place of m.
  const __m256 vdecay = _mm256_set1_ps(decay), vbeta = _mm256_set1_ps(beta);
  for (int64_t j = 0; j < dv; j += 8) {
    _mm256_store_ps(delta + j, _mm256_mul_ps(vbeta, _mm256_fnmadd_ps(vdecay, _mm256_load_ps(m + j),
                                                                     _mm256_loadu_ps(v + j))));
    _mm256_store_ps(m + j, _mm256_setzero_ps());
  }
  for (int64_t i = 0; i < dk; i++) {
    float* Si = S + i * dv;
    const __m256 ki = _mm256_broadcast_ss(k + i);
    const __m256 qi = _mm256_broadcast_ss(q + i);
    for (int64_t j = 0; j < dv; j += 8) {
      const __m256 s = _mm256_fmadd_ps(ki, _mm256_load_ps(delta + j),
                                       _mm256_mul_ps(vdecay, _mm256_loadu_ps(Si + j)));
      _mm256_storeu_ps(Si + j, s);
      _mm256_store_ps(m + j, _mm256_fmadd_ps(s, qi, _mm256_load_ps(m + j)));
    }
  }
  for (int64_t j = 0; j < dv; j += 8) _mm256_storeu_ps(o + j, _mm256_load_ps(m + j));
}

// Strips or rows: the same result bit for bit (use_delta_strips).
bool g_delta_strips = [] {
  const char* e = std::getenv("POCKET_DELTA_STRIPS");
  return e && e[0] == '1';
}();

POCKET_AVX2 void delta_head_token(int64_t dk, int64_t dv, float* S, const float* q, const float* k,
                                  const float* v, float decay, float beta, float* o) {
  if (dv <= kRowOrderMaxDv && !g_delta_strips)
    return delta_head_token_rows(dk, dv, S, q, k, v, decay, beta, o);
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

// ---- Chunked gated delta rule (spec/qwen35.md section 3) ----

constexpr int64_t kDeltaChunk = 64;

// Per-thread buffers of one (head, chunk) step, sized for chunk rows of d_k, d_v.
struct ChunkBuffers {
  std::vector<float> storage;
  float *q, *k, *kt, *akk, *p, *x, *o, *gam, *beta, *decay_to_end;
  void size_for(int64_t rows, int64_t dk, int64_t dv) {
    const int64_t need = 2 * rows * dk + dk * rows + 2 * rows * rows + rows * (dv + dk) +
                         rows * dv + 3 * rows + 8 * 10;
    if (int64_t(storage.size()) < need) storage.assign(size_t(need), 0.0f);
    float* at = storage.data();
    auto take = [&](int64_t n) {
      float* b = at;
      at += (n + 7) / 8 * 8;
      return b;
    };
    q = take(rows * dk);
    k = take(rows * dk);
    kt = take(dk * rows);
    akk = take(rows * rows);
    p = take(rows * rows);
    x = take(rows * (dv + dk));
    o = take(rows * dv);
    gam = take(rows);
    beta = take(rows);
    decay_to_end = take(rows);
  }
};

// Forward substitution step on columns [j0, j0 + 8 * NV) of row r of X:
// X_r -= sum_{s < r} L_rs X_s.
template <int NV>
POCKET_AVX2 inline void subtract_earlier_rows(float* X, int64_t ldx, const float* l_row, int64_t r,
                                              int64_t j0) {
  float* xr = X + r * ldx + j0;
  __m256 acc[NV];
#pragma GCC unroll 8
  for (int c = 0; c < NV; c++) acc[c] = _mm256_loadu_ps(xr + 8 * c);
  for (int64_t s = 0; s < r; s++) {
    const __m256 l = _mm256_broadcast_ss(l_row + s);
    const float* xs = X + s * ldx + j0;
#pragma GCC unroll 8
    for (int c = 0; c < NV; c++) acc[c] = _mm256_fnmadd_ps(l, _mm256_loadu_ps(xs + 8 * c), acc[c]);
  }
#pragma GCC unroll 8
  for (int c = 0; c < NV; c++) _mm256_storeu_ps(xr + 8 * c, acc[c]);
}

// All tokens of one value head, chunk by chunk. Rows of a short last chunk
// are padded to a multiple of 8 with zero q, k, v, beta and g, which leave the
// state unchanged (spec section 3).
POCKET_AVX2 void delta_head_chunked(const DeltaNetShape& s, int64_t h, int64_t n_tokens,
                                    const float* q, const float* k, int64_t qk_stride,
                                    const float* v, int64_t v_stride, const float* g,
                                    const float* beta, int64_t gb_stride, float* S, float* out,
                                    int64_t out_stride) {
  const int64_t dk = s.d_k, dv = s.d_v, kh = h % s.n_k;
  const int64_t ldx = dv + dk;  // X rows: [U (d_v) | W (d_k)]
  thread_local ChunkBuffers b;
  b.size_for(kDeltaChunk, dk, dv);
  for (int64_t c0 = 0; c0 < n_tokens; c0 += kDeltaChunk) {
    const int64_t n_c = std::min(kDeltaChunk, n_tokens - c0);
    const int64_t R = (n_c + 7) / 8 * 8;  // rows, padded
    // Gather the chunk: q, k rows; cumulative log-decay; beta.
    float cum = 0.0f;
    for (int64_t r = 0; r < R; r++) {
      if (r < n_c) {
        const int64_t t = c0 + r;
        std::memcpy(b.q + r * dk, q + t * qk_stride + kh * dk, size_t(dk) * 4);
        std::memcpy(b.k + r * dk, k + t * qk_stride + kh * dk, size_t(dk) * 4);
        cum += g[t * gb_stride + h];
        b.beta[r] = beta[t * gb_stride + h];
      } else {
        std::memset(b.q + r * dk, 0, size_t(dk) * 4);
        std::memset(b.k + r * dk, 0, size_t(dk) * 4);
        b.beta[r] = 0.0f;
      }
      b.gam[r] = cum;
    }
    for (int64_t r = 0; r < R; r++)
      for (int64_t i = 0; i < dk; i++) b.kt[i * R + r] = b.k[r * dk + i];
    // K K^T (strictly lower part used) and Q K^T (lower with the diagonal).
    gemm(R, R, dk, b.k, dk, b.kt, R, b.akk, R, 1.0f, 0.0f, Tri::kLowerC);
    gemm(R, R, dk, b.q, dk, b.kt, R, b.p, R, 1.0f, 0.0f, Tri::kLowerC);
    // L[r][s] = beta_r (k_r . k_s) e^(gam_r - gam_s) for s < r, P[r][s] = (q_r . k_s)
    // e^(gam_r - gam_s) for s <= r, zero elsewhere. The exponent is clamped to <= 0
    // (entries above the diagonal are masked afterwards, never overflow).
    const __m256 lane = _mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7);
    for (int64_t r = 0; r < R; r++) {
      const __m256 gr = _mm256_set1_ps(b.gam[r]), br = _mm256_set1_ps(b.beta[r]);
      const __m256 vr = _mm256_set1_ps(float(r));
      for (int64_t c = 0; c < R; c += 8) {
        const __m256 idx = _mm256_add_ps(lane, _mm256_set1_ps(float(c)));
        const __m256 below = _mm256_cmp_ps(idx, vr, _CMP_LT_OQ);
        const __m256 on_or_below = _mm256_cmp_ps(idx, vr, _CMP_LE_OQ);
        const __m256 decay = exp256(
            _mm256_min_ps(_mm256_sub_ps(gr, _mm256_loadu_ps(b.gam + c)), _mm256_setzero_ps()));
        const __m256 l =
            _mm256_mul_ps(_mm256_mul_ps(br, _mm256_loadu_ps(b.akk + r * R + c)), decay);
        const __m256 pv = _mm256_mul_ps(_mm256_loadu_ps(b.p + r * R + c), decay);
        _mm256_storeu_ps(b.akk + r * R + c, _mm256_and_ps(l, below));
        _mm256_storeu_ps(b.p + r * R + c, _mm256_and_ps(pv, on_or_below));
      }
    }
    // Right-hand sides [beta V | beta e^gam K], then (I + L) X = Y by forward substitution.
    for (int64_t r = 0; r < R; r++) {
      float* xr = b.x + r * ldx;
      if (r < n_c) {
        const float* vr = v + (c0 + r) * v_stride + h * dv;
        const float bv = b.beta[r], bk = b.beta[r] * std::exp(b.gam[r]);
        for (int64_t j = 0; j < dv; j++) xr[j] = bv * vr[j];
        for (int64_t i = 0; i < dk; i++) xr[dv + i] = bk * b.k[r * dk + i];
      } else {
        std::memset(xr, 0, size_t(ldx) * 4);
      }
    }
    for (int64_t r = 1; r < n_c; r++) {
      int64_t j0 = 0;
      for (; j0 + 64 <= ldx; j0 += 64) subtract_earlier_rows<8>(b.x, ldx, b.akk + r * R, r, j0);
      for (; j0 < ldx; j0 += 8) subtract_earlier_rows<1>(b.x, ldx, b.akk + r * R, r, j0);
    }
    // V' = U - W S (in place over U).
    gemm(R, dv, dk, b.x + dv, ldx, S, dv, b.x, ldx, -1.0f, 1.0f);
    // O = diag(e^gam) Q S + P V'.
    for (int64_t r = 0; r < R; r++) {
      const __m256 e = _mm256_set1_ps(std::exp(b.gam[r]));
      for (int64_t i = 0; i < dk; i += 8)
        _mm256_storeu_ps(b.q + r * dk + i, _mm256_mul_ps(e, _mm256_loadu_ps(b.q + r * dk + i)));
    }
    gemm(R, dv, dk, b.q, dk, S, dv, b.o, dv, 1.0f, 0.0f);
    gemm(R, dv, R, b.p, R, b.x, ldx, b.o, dv, 1.0f, 1.0f, Tri::kLowerA);
    for (int64_t r = 0; r < n_c; r++)
      std::memcpy(out + (c0 + r) * out_stride + h * dv, b.o + r * dv, size_t(dv) * 4);
    // S <- e^gam_last S + (diag(e^(gam_last - gam)) K)^T V'.
    const float gam_last = b.gam[R - 1];
    for (int64_t r = 0; r < R; r++) b.decay_to_end[r] = std::exp(gam_last - b.gam[r]);
    for (int64_t i = 0; i < dk; i++)
      for (int64_t r = 0; r < R; r += 8)
        _mm256_storeu_ps(b.kt + i * R + r, _mm256_mul_ps(_mm256_loadu_ps(b.kt + i * R + r),
                                                         _mm256_loadu_ps(b.decay_to_end + r)));
    gemm(dk, dv, R, b.kt, R, b.x, ldx, S, dv, 1.0f, std::exp(gam_last));
  }
}

}  // namespace

void gated_delta_rule_sequential(const DeltaNetShape& s, int64_t n_tokens, const float* q,
                                 const float* k, int64_t qk_stride, const float* v,
                                 int64_t v_stride, const float* g, const float* beta,
                                 int64_t gb_stride, float* state, float* out, int64_t out_stride) {
  if (s.d_v % 8 != 0 || n_tokens <= 0) {
    reference_ops().gated_delta_rule(s, n_tokens, q, k, qk_stride, v, v_stride, g, beta, gb_stride,
                                     state, out, out_stride);
    return;
  }
  const int64_t dk = s.d_k, dv = s.d_v;
  // Heads are independent: each thread runs all tokens of the heads it claims
  // (claimed a few at a time, so a thread slowed by another process gives its
  // share away).
  parallel_for_chunked(s.n_v, [&](int64_t h0, int64_t h1) {
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

void gated_delta_rule_chunked(const DeltaNetShape& s, int64_t n_tokens, const float* q,
                              const float* k, int64_t qk_stride, const float* v, int64_t v_stride,
                              const float* g, const float* beta, int64_t gb_stride, float* state,
                              float* out, int64_t out_stride) {
  if (s.d_v % 8 != 0 || s.d_k % 8 != 0 || n_tokens <= 0) {
    gated_delta_rule_sequential(s, n_tokens, q, k, qk_stride, v, v_stride, g, beta, gb_stride,
                                state, out, out_stride);
    return;
  }
  parallel_for_chunked(
      s.n_v,
      [&](int64_t h0, int64_t h1) {
        for (int64_t h = h0; h < h1; h++)
          delta_head_chunked(s, h, n_tokens, q, k, qk_stride, v, v_stride, g, beta, gb_stride,
                             state + h * s.d_k * s.d_v, out, out_stride);
      },
      1, 2);
}

void use_delta_strips(bool strips) {
  g_delta_strips = strips;
}

void deltanet_step(const DeltaNetStep& st) {
  const DeltaNetShape& s = st.shape;
  if (st.conv_kernel != 4 || s.n_k <= 0 || s.d_k % 8 != 0 || s.d_v % 8 != 0) {
    deltanet_step_unfused(ops_for_level(CpuLevel::kAvx2), st);
    return;
  }
  const int64_t dk = s.d_k, dv = s.d_v;
  const int64_t key_dim = s.n_k * dk;
  const int64_t conv_dim = 2 * key_dim + s.n_v * dv;
  const int64_t v0 = 2 * key_dim;  // first value channel
  // Key head kh with the value heads kh, kh + n_k, ... that read it: no item
  // depends on another, so the step needs a single hand-off (the separate
  // kernels ran the conv, the norms and the gated norms on one thread).
  parallel_for_chunked(s.n_k, [&](int64_t k0, int64_t k1) {
    for (int64_t kh = k0; kh < k1; kh++) {
      float* q = st.u + kh * dk;
      float* k = st.u + key_dim + kh * dk;
      conv4_silu_step(conv_dim, st.x, st.conv_w, st.conv_state, st.u, kh * dk, kh * dk + dk);
      conv4_silu_step(conv_dim, st.x, st.conv_w, st.conv_state, st.u, key_dim + kh * dk,
                      key_dim + kh * dk + dk);
      for (int64_t h = kh; h < s.n_v; h += s.n_k)
        conv4_silu_step(conv_dim, st.x, st.conv_w, st.conv_state, st.u, v0 + h * dv,
                        v0 + h * dv + dv);
      l2norm(q, dk, st.eps);
      l2norm(k, dk, st.eps);
      for (int64_t i = 0; i < dk; i++) q[i] *= st.q_scale;
      for (int64_t h = kh; h < s.n_v; h += s.n_k) {
        float* o = st.out + h * dv;
        delta_head_token(dk, dv, st.state + h * dk * dv, q, k, st.u + v0 + h * dv,
                         std::exp(st.g[h]), st.beta[h], o);
        rmsnorm_silu_gate(o, st.z + h * dv, st.norm_w, dv, st.eps);
      }
    }
  });
}

void gated_delta_rule(const DeltaNetShape& s, int64_t n_tokens, const float* q, const float* k,
                      int64_t qk_stride, const float* v, int64_t v_stride, const float* g,
                      const float* beta, int64_t gb_stride, float* state, float* out,
                      int64_t out_stride) {
  if (n_tokens >= kChunkedDeltaMinTokens)
    gated_delta_rule_chunked(s, n_tokens, q, k, qk_stride, v, v_stride, g, beta, gb_stride, state,
                             out, out_stride);
  else
    gated_delta_rule_sequential(s, n_tokens, q, k, qk_stride, v, v_stride, g, beta, gb_stride,
                                state, out, out_stride);
}

}  // namespace pocket::kernels::avx2
