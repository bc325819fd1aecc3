// AVX2 versions of the small per-row kernels: norms, SiLU / sigmoid / SwiGLU and
// the causal conv + SiLU. The formulas are the reference's; exp is a vector
// polynomial (avx2_math.h, within 2 ulp of std::exp over the range that
// matters), so results differ from the reference by f32 rounding only.
#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/avx2_math.h"
#include "kernels/fast_kernels.h"
#include "util/thread_pool.h"

namespace pocket::kernels::avx2 {

namespace {

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

namespace {

// Element counts above which a kernel splits its row range across the pool
// (below, the hand-off costs more than it saves).
constexpr int64_t kParallelElements = 1 << 15;

POCKET_AVX2 void swiglu_range(const float* gate, const float* up, float* out, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(out + i,
                     _mm256_mul_ps(silu256(_mm256_loadu_ps(gate + i)), _mm256_loadu_ps(up + i)));
  for (; i < n; i++) out[i] = kernels::silu(gate[i]) * up[i];
}

// Conv outputs of channels [c0, c1) for every token; taps tap-major.
POCKET_AVX2 void conv_channels(int64_t n_tokens, int64_t channels, int64_t kernel, const float* x,
                               int64_t x_stride, const float* taps, const float* state, float* out,
                               int64_t out_stride, int64_t c0, int64_t c1) {
  const int64_t n_hist = kernel - 1;
  const float* inputs[8];
  for (int64_t t = 0; t < n_tokens; t++) {
    for (int64_t i = 0; i < kernel; i++) {  // the input row at time t - n_hist + i
      const int64_t u = t - n_hist + i;
      inputs[i] = u >= 0 ? x + u * x_stride : state + (u + n_hist) * channels;
    }
    float* o = out + t * out_stride;
    for (int64_t ch = c0; ch < c1; ch += 8) {
      // Summed in tap order with separate products, as the reference (no FMA).
      __m256 sum = _mm256_setzero_ps();
      for (int64_t i = 0; i < kernel; i++)
        sum = _mm256_add_ps(sum, _mm256_mul_ps(_mm256_loadu_ps(taps + i * channels + ch),
                                               _mm256_loadu_ps(inputs[i] + ch)));
      _mm256_storeu_ps(o + ch, silu256(sum));
    }
  }
}

// The 4 taps of channels [ch, ch + 8) from w's channel-major layout (w points
// at channel ch): tap i of channel ch + c in lane c of taps[i]. An in-register
// 8 x 4 transpose, so decode needs no tap-major copy of the weights.
POCKET_AVX2 inline void load_taps4(const float* w, __m256 taps[4]) {
  const __m256 v0 = _mm256_loadu_ps(w), v1 = _mm256_loadu_ps(w + 8);
  const __m256 v2 = _mm256_loadu_ps(w + 16), v3 = _mm256_loadu_ps(w + 24);
  // Within each 128-bit half: a0 = (c0t0 c2t0 c0t1 c2t1 | c1t0 c3t0 c1t1 c3t1), ...
  const __m256 a0 = _mm256_unpacklo_ps(v0, v1), a1 = _mm256_unpackhi_ps(v0, v1);
  const __m256 a2 = _mm256_unpacklo_ps(v2, v3), a3 = _mm256_unpackhi_ps(v2, v3);
  // Tap i as channels (0 2 4 6 | 1 3 5 7), then put in order.
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  taps[0] = _mm256_permutevar8x32_ps(_mm256_shuffle_ps(a0, a2, _MM_SHUFFLE(1, 0, 1, 0)), order);
  taps[1] = _mm256_permutevar8x32_ps(_mm256_shuffle_ps(a0, a2, _MM_SHUFFLE(3, 2, 3, 2)), order);
  taps[2] = _mm256_permutevar8x32_ps(_mm256_shuffle_ps(a1, a3, _MM_SHUFFLE(1, 0, 1, 0)), order);
  taps[3] = _mm256_permutevar8x32_ps(_mm256_shuffle_ps(a1, a3, _MM_SHUFFLE(3, 2, 3, 2)), order);
}

// conv_channels for kernel 4 reading the taps straight from w (few tokens).
POCKET_AVX2 void conv_channels_taps4(int64_t n_tokens, int64_t channels, const float* x,
                                     int64_t x_stride, const float* w, const float* state,
                                     float* out, int64_t out_stride) {
  for (int64_t ch = 0; ch < channels; ch += 8) {
    __m256 taps[4];
    load_taps4(w + ch * 4, taps);
    for (int64_t t = 0; t < n_tokens; t++) {
      __m256 sum = _mm256_setzero_ps();
      for (int64_t i = 0; i < 4; i++) {
        const int64_t u = t - 3 + i;
        const float* in = u >= 0 ? x + u * x_stride : state + (u + 3) * channels;
        sum = _mm256_add_ps(sum, _mm256_mul_ps(taps[i], _mm256_loadu_ps(in + ch)));
      }
      _mm256_storeu_ps(out + t * out_stride + ch, silu256(sum));
    }
  }
}

// Many tokens: the taps copied tap-major once, channels split across threads.
void conv_tap_major(int64_t n_tokens, int64_t channels, int64_t kernel, const float* x,
                    int64_t x_stride, const float* w, const float* state, float* out,
                    int64_t out_stride) {
  // Taps as rows (tap-major) so that 8 channels of one tap are one load.
  thread_local std::vector<float> taps;
  taps.resize(size_t(kernel * channels));
  for (int64_t ch = 0; ch < channels; ch++)
    for (int64_t i = 0; i < kernel; i++) taps[size_t(i * channels + ch)] = w[ch * kernel + i];
  const float* tap_rows = taps.data();
  if (n_tokens * channels < kParallelElements) {
    conv_channels(n_tokens, channels, kernel, x, x_stride, tap_rows, state, out, out_stride, 0,
                  channels);
  } else {
    parallel_for(
        channels,
        [&](int64_t c0, int64_t c1) {
          conv_channels(n_tokens, channels, kernel, x, x_stride, tap_rows, state, out, out_stride,
                        c0, c1);
        },
        64);
  }
}

}  // namespace

void swiglu(const float* gate, const float* up, float* out, int64_t n) {
  if (n < kParallelElements) {
    swiglu_range(gate, up, out, n);
    return;
  }
  parallel_for(
      n, [&](int64_t b, int64_t e) { swiglu_range(gate + b, up + b, out + b, e - b); }, 4096);
}

POCKET_AVX2 void add_rmsnorm(float* x, const float* add, const float* w, int64_t n, float eps,
                             float* y) {
  // The add and the sum of squares (in double, as the reference) in one pass.
  __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_add_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(add + i));
    _mm256_storeu_ps(x + i, v);
    const __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(v));
    const __m256d hi = _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
    a0 = _mm256_fmadd_pd(lo, lo, a0);
    a1 = _mm256_fmadd_pd(hi, hi, a1);
  }
  alignas(32) double lanes[4];
  _mm256_store_pd(lanes, _mm256_add_pd(a0, a1));
  double sum = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
  for (; i < n; i++) {
    x[i] += add[i];
    sum += double(x[i]) * double(x[i]);
  }
  scale_row(x, w, float(1.0 / std::sqrt(sum / double(n) + double(eps))), n, y);
}

POCKET_AVX2 void sigmoid_mul(const float* gate, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i,
                     _mm256_mul_ps(_mm256_loadu_ps(y + i), sigmoid256(_mm256_loadu_ps(gate + i))));
  for (; i < n; i++) y[i] *= kernels::sigmoid(gate[i]);
}

POCKET_AVX2 void rmsnorm_silu_gate(float* x, const float* z, const float* w, int64_t n, float eps) {
  const float scale = float(1.0 / std::sqrt(sum_squares(x, n) / double(n) + double(eps)));
  const __m256 s = _mm256_set1_ps(scale);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 normed =
        _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), s), _mm256_loadu_ps(w + i));
    _mm256_storeu_ps(x + i, _mm256_mul_ps(normed, silu256(_mm256_loadu_ps(z + i))));
  }
  for (; i < n; i++) x[i] = x[i] * scale * w[i] * kernels::silu(z[i]);
}

POCKET_AVX2 void conv4_silu_step(int64_t channels, const float* x, const float* w, float* state,
                                 float* out, int64_t c0, int64_t c1) {
  float* s0 = state;
  float* s1 = state + channels;
  float* s2 = state + 2 * channels;
  for (int64_t ch = c0; ch < c1; ch += 8) {
    __m256 taps[4];
    load_taps4(w + ch * 4, taps);
    const __m256 in0 = _mm256_loadu_ps(s0 + ch), in1 = _mm256_loadu_ps(s1 + ch);
    const __m256 in2 = _mm256_loadu_ps(s2 + ch), in3 = _mm256_loadu_ps(x + ch);
    // conv_channels_taps4's order: from zero, tap by tap, no FMA.
    __m256 sum = _mm256_add_ps(_mm256_setzero_ps(), _mm256_mul_ps(taps[0], in0));
    sum = _mm256_add_ps(sum, _mm256_mul_ps(taps[1], in1));
    sum = _mm256_add_ps(sum, _mm256_mul_ps(taps[2], in2));
    sum = _mm256_add_ps(sum, _mm256_mul_ps(taps[3], in3));
    _mm256_storeu_ps(out + ch, silu256(sum));
    _mm256_storeu_ps(s0 + ch, in1);
    _mm256_storeu_ps(s1 + ch, in2);
    _mm256_storeu_ps(s2 + ch, in3);
  }
}

void conv1d_silu(int64_t n_tokens, int64_t channels, int64_t kernel, const float* x,
                 int64_t x_stride, const float* w, float* state, float* out, int64_t out_stride) {
  if (channels % 8 != 0 || kernel > 8) {
    reference_ops().conv1d_silu(n_tokens, channels, kernel, x, x_stride, w, state, out, out_stride);
    return;
  }
  const int64_t n_hist = kernel - 1;
  if (kernel == 4 && n_tokens <= 4) {
    conv_channels_taps4(n_tokens, channels, x, x_stride, w, state, out, out_stride);
  } else {
    conv_tap_major(n_tokens, channels, kernel, x, x_stride, w, state, out, out_stride);
  }
  // The new state: the last kernel-1 raw inputs (as the reference), once every
  // output has read the old one.
  for (int64_t r = 0; r < n_hist; r++) {
    const int64_t u = n_tokens - n_hist + r;
    if (u < 0)
      std::memmove(state + r * channels, state + (u + n_hist) * channels, size_t(channels) * 4);
    else
      std::memcpy(state + r * channels, x + u * x_stride, size_t(channels) * 4);
  }
}

}  // namespace pocket::kernels::avx2
