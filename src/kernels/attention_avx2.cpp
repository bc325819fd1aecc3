// AVX2 causal grouped-query attention (spec/qwen35.md 2.3): blocked, with an
// online softmax, so no score row longer than one key block is ever held.
//
// A work item is one KV head and a block of up to kQueryTokens consecutive
// query tokens: its rows are every (token, query head of the group) pair, so a
// K or V row is converted (f16 or Q8_0 -> f32) and read once for all of them. Keys are
// visited in blocks of kKeyBlock positions up to the item's last position:
//   scores = Q K_blk^T * scale       (4 x 3 dot-product tiles)
//   running max / sum per row, O rescaled when the max grows
//   O += exp(scores - max) V_blk     (gemm tiles, avx2_math.h)
// and O / sum is written out. Decode (one token) is the same with a single
// item per KV head.
//
// Results differ from the reference by f32 rounding (order of additions, FMA,
// the vector exp, an f32 running sum where the reference sums in double).
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/avx2_math.h"
#include "kernels/fast_kernels.h"
#include "util/fp16.h"
#include "util/thread_pool.h"

namespace pocket::kernels::avx2 {

namespace {

constexpr int64_t kKeyBlock = 32;
constexpr int64_t kQueryTokens = 16;

// out[r][c] = scale * (A_r . B_c) for MR rows of A and NR rows of B, D % 8 == 0.
template <int MR, int NR>
POCKET_AVX2 inline void dot_tile(int64_t D, const float* A, int64_t lda, const float* B,
                                 int64_t ldb, float* out, int64_t ldo, float scale) {
  __m256 acc[MR][NR];
#pragma GCC unroll 4
  for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
    for (int c = 0; c < NR; c++) acc[r][c] = _mm256_setzero_ps();
  for (int64_t d = 0; d < D; d += 8) {
    __m256 b[NR];
#pragma GCC unroll 4
    for (int c = 0; c < NR; c++) b[c] = _mm256_loadu_ps(B + c * ldb + d);
#pragma GCC unroll 4
    for (int r = 0; r < MR; r++) {
      const __m256 a = _mm256_loadu_ps(A + r * lda + d);
#pragma GCC unroll 4
      for (int c = 0; c < NR; c++) acc[r][c] = _mm256_fmadd_ps(a, b[c], acc[r][c]);
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
    for (int c = 0; c < NR; c++) out[r * ldo + c] = hsum8(acc[r][c]) * scale;
}

template <int MR>
POCKET_AVX2 inline void dot_row_tiles(int64_t D, const float* A, int64_t lda, const float* B,
                                      int64_t ldb, int64_t n_b, float* out, int64_t ldo,
                                      float scale) {
  int64_t c = 0;
  for (; c + 3 <= n_b; c += 3) dot_tile<MR, 3>(D, A, lda, B + c * ldb, ldb, out + c, ldo, scale);
  if (n_b - c == 2) dot_tile<MR, 2>(D, A, lda, B + c * ldb, ldb, out + c, ldo, scale);
  if (n_b - c == 1) dot_tile<MR, 1>(D, A, lda, B + c * ldb, ldb, out + c, ldo, scale);
}

// out[r][c] = scale * (A_r . B_c) for n_a rows of A, n_b rows of B.
POCKET_AVX2 void dot_products(int64_t D, const float* A, int64_t lda, int64_t n_a, const float* B,
                              int64_t ldb, int64_t n_b, float* out, int64_t ldo, float scale) {
  int64_t r = 0;
  for (; r + 4 <= n_a; r += 4) dot_row_tiles<4>(D, A + r * lda, lda, B, ldb, n_b, out + r * ldo, ldo, scale);
  switch (n_a - r) {
    case 3: dot_row_tiles<3>(D, A + r * lda, lda, B, ldb, n_b, out + r * ldo, ldo, scale); break;
    case 2: dot_row_tiles<2>(D, A + r * lda, lda, B, ldb, n_b, out + r * ldo, ldo, scale); break;
    case 1: dot_row_tiles<1>(D, A + r * lda, lda, B, ldb, n_b, out + r * ldo, ldo, scale); break;
    default: break;
  }
}

// One cached row's slice for a KV head, as f32. Q8_0 is expanded block by
// block (d * q, exactly quant::dequantize_row's product), so the tiles below
// stay f32. A faster Q8_0 path would quantize the queries to Q8_0 too and take
// Q K^T as int8 dot products (maddubs) scaled by d_q * d_k, and fold the V
// scales into the probabilities, without the f32 scratch.
POCKET_AVX2 inline void load_kv_row(KvType type, const uint8_t* src, int64_t n, float* dst) {
  if (type == KvType::F32) {
    std::memcpy(dst, src, size_t(n) * 4);
    return;
  }
  if (type == KvType::Q8_0) {
    for (int64_t b = 0; b < n / 32; b++, src += 34, dst += 32) {
      uint16_t d16;
      std::memcpy(&d16, src, 2);
      const __m256 d = _mm256_set1_ps(f16_to_f32(d16));
      for (int i = 0; i < 32; i += 8) {
        const __m128i q8 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(src + 2 + i));
        _mm256_storeu_ps(dst + i, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q8))));
      }
    }
    return;
  }
  const auto* h = reinterpret_cast<const uint16_t*>(src);
  for (int64_t i = 0; i < n; i += 8)
    _mm256_storeu_ps(dst + i,
                     _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h + i))));
}

struct AttentionBuffers {
  std::vector<float> q, k, v, scores, o, max, sum;
  void size_for(int64_t rows, int64_t D) {
    auto fit = [](std::vector<float>& b, int64_t n) {
      if (int64_t(b.size()) < n) b.assign(size_t(n), 0.0f);
    };
    fit(q, rows * D);
    fit(k, kKeyBlock * D);
    fit(v, kKeyBlock * D);
    fit(scores, rows * kKeyBlock);
    fit(o, rows * D);
    fit(max, rows);
    fit(sum, rows);
  }
};

// Query tokens [t0, t0 + n_t) against KV head m.
POCKET_AVX2 void attend_block(const AttentionShape& s, const float* q, int64_t q_stride,
                              int64_t t0, int64_t n_t, int64_t pos0, int64_t m, const KvView& kv,
                              float* out, int64_t out_stride) {
  const int64_t D = s.head_dim, group = s.n_head / s.n_head_kv;
  const int64_t rows = n_t * group;  // row (t - t0) * group + j: token t, query head m*group + j
  thread_local AttentionBuffers b;
  b.size_for(rows, D);
  for (int64_t t = 0; t < n_t; t++)
    std::memcpy(b.q.data() + t * group * D, q + (t0 + t) * q_stride + m * group * D,
                size_t(group * D) * 4);
  std::fill(b.o.begin(), b.o.begin() + rows * D, 0.0f);
  std::fill(b.max.begin(), b.max.begin() + rows, -INFINITY);
  std::fill(b.sum.begin(), b.sum.begin() + rows, 0.0f);

  const uint64_t head_offset = kv_bytes(kv.type, m * D);
  const int64_t n_keys = pos0 + t0 + n_t;  // positions the last token sees
  const __m256 lane = _mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7);
  for (int64_t p0 = 0; p0 < n_keys; p0 += kKeyBlock) {
    const int64_t bk = std::min(kKeyBlock, n_keys - p0);
    for (int64_t c = 0; c < bk; c++) {
      load_kv_row(kv.type, kv.k_row(p0 + c) + head_offset, D, b.k.data() + c * D);
      load_kv_row(kv.type, kv.v_row(p0 + c) + head_offset, D, b.v.data() + c * D);
    }
    dot_products(D, b.q.data(), D, rows, b.k.data(), D, bk, b.scores.data(), kKeyBlock, s.scale);
    // Online softmax: scores -> e^(score - running max), masked beyond each row's position.
    for (int64_t i = 0; i < rows; i++) {
      const int64_t visible = std::min(bk, pos0 + t0 + i / group + 1 - p0);
      float* sc = b.scores.data() + i * kKeyBlock;
      if (visible <= 0) {
        std::fill(sc, sc + bk, 0.0f);
        continue;
      }
      float mx = b.max[size_t(i)];
      for (int64_t c = 0; c < visible; c++) mx = std::max(mx, sc[c]);
      const __m256 vmax = _mm256_set1_ps(mx), vvis = _mm256_set1_ps(float(visible));
      __m256 vsum = _mm256_setzero_ps();
      for (int64_t c = 0; c < bk; c += 8) {
        const __m256 keep = _mm256_cmp_ps(_mm256_add_ps(lane, _mm256_set1_ps(float(c))), vvis,
                                          _CMP_LT_OQ);
        const __m256 e =
            _mm256_and_ps(exp256(_mm256_sub_ps(_mm256_loadu_ps(sc + c), vmax)), keep);
        _mm256_storeu_ps(sc + c, e);
        vsum = _mm256_add_ps(vsum, e);
      }
      const float alpha = std::exp(b.max[size_t(i)] - mx);  // 0 on the first block
      b.sum[size_t(i)] = b.sum[size_t(i)] * alpha + hsum8(vsum);
      b.max[size_t(i)] = mx;
      if (alpha != 1.0f) {
        float* oi = b.o.data() + i * D;
        const __m256 va = _mm256_set1_ps(alpha);
        for (int64_t d = 0; d < D; d += 8)
          _mm256_storeu_ps(oi + d, _mm256_mul_ps(va, _mm256_loadu_ps(oi + d)));
      }
    }
    gemm(rows, D, bk, b.scores.data(), kKeyBlock, b.v.data(), D, b.o.data(), D, 1.0f, 1.0f);
  }
  for (int64_t i = 0; i < rows; i++) {
    const int64_t t = t0 + i / group, j = m * group + i % group;
    const __m256 inv = _mm256_set1_ps(1.0f / b.sum[size_t(i)]);
    float* dst = out + t * out_stride + j * D;
    const float* oi = b.o.data() + i * D;
    for (int64_t d = 0; d < D; d += 8)
      _mm256_storeu_ps(dst + d, _mm256_mul_ps(inv, _mm256_loadu_ps(oi + d)));
  }
}

}  // namespace

void attention(const AttentionShape& s, const float* q, int64_t q_stride, int64_t n_tokens,
               int64_t pos0, const KvView& kv, float* out, int64_t out_stride) {
  if (s.head_dim % 8 != 0 || n_tokens <= 0 || (kv.type == KvType::Q8_0 && s.head_dim % 32 != 0)) {
    reference_ops().attention(s, q, q_stride, n_tokens, pos0, kv, out, out_stride);
    return;
  }
  const int64_t n_blocks = (n_tokens + kQueryTokens - 1) / kQueryTokens;
  const int64_t n_items = n_blocks * s.n_head_kv;
  // Items cost in proportion to their last position: threads claim them
  // latest block first, so that the cheap ones even out the end.
  std::atomic<int64_t> next{0};
  thread_pool().run([&](int, int) {
    for (int64_t item; (item = next.fetch_add(1, std::memory_order_relaxed)) < n_items;) {
      const int64_t block = n_blocks - 1 - item / s.n_head_kv, m = item % s.n_head_kv;
      const int64_t t0 = block * kQueryTokens;
      attend_block(s, q, q_stride, t0, std::min(kQueryTokens, n_tokens - t0), pos0, m, kv, out,
                   out_stride);
    }
  });
}

}  // namespace pocket::kernels::avx2
