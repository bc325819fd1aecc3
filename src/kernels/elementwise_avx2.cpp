// AVX2 versions of the small per-row kernels: norms, SiLU / sigmoid / SwiGLU and
// the causal conv + SiLU. The formulas are the reference's; exp is a vector
// polynomial (within 2 ulp of std::exp over the range that matters), so results
// differ from the reference by f32 rounding only.
#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/fast_kernels.h"

namespace pocket::kernels::avx2 {

namespace {

#define POCKET_AVX2 __attribute__((target("avx2,fma,f16c")))

// e^x for each lane: x = n ln2 + r (|r| <= ln2 / 2, ln2 split in two for an
// exact n ln2), e^r by a degree-6 polynomial (the Cephes expf one), times 2^n
// through the exponent bits. Inputs are clamped to [-87.3, 88.7]: the result
// saturates to ~1e-38 / ~3e38 instead of 0 / inf, which every caller here
// (1 / (1 + e^-x)) turns into the same 0 / x as the exact value would.
POCKET_AVX2 inline __m256 exp256(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.7f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  // 2^n: n in [-126, 128]; split in two factors so that n = 128 does not overflow the exponent.
  const __m256i ni = _mm256_cvtps_epi32(n);
  const __m256i half = _mm256_srai_epi32(ni, 1);
  const __m256 f1 =
      _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(half, _mm256_set1_epi32(127)), 23));
  const __m256 f2 = _mm256_castsi256_ps(
      _mm256_slli_epi32(_mm256_add_epi32(_mm256_sub_epi32(ni, half), _mm256_set1_epi32(127)), 23));
  return _mm256_mul_ps(_mm256_mul_ps(p, f1), f2);
}

POCKET_AVX2 inline __m256 silu256(__m256 x) {
  const __m256 e = exp256(_mm256_sub_ps(_mm256_setzero_ps(), x));
  return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

POCKET_AVX2 inline __m256 sigmoid256(__m256 x) {
  const __m256 e = exp256(_mm256_sub_ps(_mm256_setzero_ps(), x));
  return _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

// Sum of squares in double (as the reference), 8 lanes at a time.
POCKET_AVX2 double sum_squares(const float* x, int64_t n) {
  __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    const __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(v));
    const __m256d hi = _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
    a0 = _mm256_fmadd_pd(lo, lo, a0);
    a1 = _mm256_fmadd_pd(hi, hi, a1);
  }
  alignas(32) double lanes[4];
  _mm256_store_pd(lanes, _mm256_add_pd(a0, a1));
  double sum = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
  for (; i < n; i++) sum += double(x[i]) * double(x[i]);
  return sum;
}

POCKET_AVX2 void scale_row(const float* x, const float* w, float scale, int64_t n, float* y) {
  const __m256 s = _mm256_set1_ps(scale);
  int64_t i = 0;
  if (w) {
    for (; i + 8 <= n; i += 8)
      _mm256_storeu_ps(
          y + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), s), _mm256_loadu_ps(w + i)));
    for (; i < n; i++) y[i] = x[i] * scale * w[i];
  } else {
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), s));
    for (; i < n; i++) y[i] = x[i] * scale;
  }
}

// A lane-wise function over a row, with a masked tail through a small buffer.
template <typename F>
POCKET_AVX2 inline void map_row(const float* x, float* y, int64_t n, F f) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, f(_mm256_loadu_ps(x + i)));
  if (i < n) {
    alignas(32) float buf[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    std::memcpy(buf, x + i, size_t(n - i) * 4);
    _mm256_store_ps(buf, f(_mm256_load_ps(buf)));
    std::memcpy(y + i, buf, size_t(n - i) * 4);
  }
}

}  // namespace

POCKET_AVX2 void rmsnorm(const float* x, const float* w, int64_t n, float eps, float* y) {
  const float scale = float(1.0 / std::sqrt(sum_squares(x, n) / double(n) + double(eps)));
  scale_row(x, w, scale, n, y);
}

POCKET_AVX2 void l2norm(float* x, int64_t n, float eps) {
  const float scale = float(1.0 / std::fmax(std::sqrt(sum_squares(x, n)), double(eps)));
  scale_row(x, nullptr, scale, n, x);
}

POCKET_AVX2 void silu(float* x, int64_t n) {
  map_row(x, x, n, [](__m256 v) POCKET_AVX2 { return silu256(v); });
}

POCKET_AVX2 void sigmoid(float* x, int64_t n) {
  map_row(x, x, n, [](__m256 v) POCKET_AVX2 { return sigmoid256(v); });
}

POCKET_AVX2 void swiglu(const float* gate, const float* up, float* out, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(out + i,
                     _mm256_mul_ps(silu256(_mm256_loadu_ps(gate + i)), _mm256_loadu_ps(up + i)));
  for (; i < n; i++) out[i] = kernels::silu(gate[i]) * up[i];
}

POCKET_AVX2 void conv1d_silu(int64_t n_tokens, int64_t channels, int64_t kernel, const float* x,
                             int64_t x_stride, const float* w, float* state, float* out,
                             int64_t out_stride) {
  if (channels % 8 != 0 || kernel > 8) {
    reference_ops().conv1d_silu(n_tokens, channels, kernel, x, x_stride, w, state, out, out_stride);
    return;
  }
  const int64_t n_hist = kernel - 1;
  // Taps as rows (tap-major) so that 8 channels of one tap are one load.
  thread_local std::vector<float> taps;
  taps.resize(size_t(kernel * channels));
  for (int64_t ch = 0; ch < channels; ch++)
    for (int64_t i = 0; i < kernel; i++) taps[size_t(i * channels + ch)] = w[ch * kernel + i];
  const float* inputs[8];
  for (int64_t t = 0; t < n_tokens; t++) {
    for (int64_t i = 0; i < kernel; i++) {  // the input row at time t - n_hist + i
      const int64_t u = t - n_hist + i;
      inputs[i] = u >= 0 ? x + u * x_stride : state + (u + n_hist) * channels;
    }
    float* o = out + t * out_stride;
    for (int64_t ch = 0; ch < channels; ch += 8) {
      // Summed in tap order with separate products, as the reference (no FMA).
      __m256 sum = _mm256_setzero_ps();
      for (int64_t i = 0; i < kernel; i++)
        sum = _mm256_add_ps(sum, _mm256_mul_ps(_mm256_loadu_ps(&taps[size_t(i * channels + ch)]),
                                               _mm256_loadu_ps(inputs[i] + ch)));
      _mm256_storeu_ps(o + ch, silu256(sum));
    }
  }
  // The new state: the last kernel-1 raw inputs (as the reference).
  for (int64_t r = 0; r < n_hist; r++) {
    const int64_t u = n_tokens - n_hist + r;
    if (u < 0)
      std::memmove(state + r * channels, state + (u + n_hist) * channels, size_t(channels) * 4);
    else
      std::memcpy(state + r * channels, x + u * x_stride, size_t(channels) * 4);
  }
}

}  // namespace pocket::kernels::avx2
