// Vector math shared by the AVX2 kernel files (elementwise_avx2.cpp,
// recurrent_avx2.cpp, attention_avx2.cpp). Internal to src/kernels; every
// function needs the caller compiled for avx2,fma,f16c (POCKET_AVX2).
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#define POCKET_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace pocket::kernels::avx2 {

POCKET_AVX2 inline float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// e^x for each lane: x = n ln2 + r (|r| <= ln2 / 2, ln2 split in two for an
// exact n ln2), e^r by a degree-6 polynomial (the Cephes expf one), times 2^n
// through the exponent bits. Inputs are clamped to [-87.3, 88.7]: the result
// saturates to ~1e-38 / ~3e38 instead of 0 / inf, which every caller here
// (1 / (1 + e^-x), decays e^(negative)) turns into the same value as the exact
// one would, to f32 rounding.
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

// Small dense products for the chunked kernels (row-major, f32):
//   Cm[M x N] = beta * Cm + alpha * A[M x K] . B[K x N]
// with leading dimensions lda, ldb, ldc (in floats). N must be a multiple of 8.
// beta == 0 does not read Cm. Shapes that skip known zeros:
//   kLowerA: A is lower triangular (K == M; row m is zero beyond column m),
//   kLowerC: only the lower triangle of Cm is wanted (entries above the
//            diagonal may be written with partial sums or left untouched).
enum class Tri { kFull, kLowerA, kLowerC };

// A tile of MR rows x 8*NV columns; 6 x 16 keeps 12 accumulators in registers.
template <int MR, int NV>
POCKET_AVX2 inline void gemm_tile(int64_t K, const float* A, int64_t lda, const float* B,
                                  int64_t ldb, float* Cm, int64_t ldc, float alpha, float beta) {
  // (The unroll pragmas let GCC keep acc in registers instead of on the stack.)
  __m256 acc[MR][NV];
#pragma GCC unroll 8
  for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
    for (int c = 0; c < NV; c++) acc[r][c] = _mm256_setzero_ps();
  for (int64_t k = 0; k < K; k++) {
    __m256 b[NV];
#pragma GCC unroll 4
    for (int c = 0; c < NV; c++) b[c] = _mm256_loadu_ps(B + k * ldb + 8 * c);
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++) {
      const __m256 a = _mm256_broadcast_ss(A + r * lda + k);
#pragma GCC unroll 4
      for (int c = 0; c < NV; c++) acc[r][c] = _mm256_fmadd_ps(a, b[c], acc[r][c]);
    }
  }
  const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
#pragma GCC unroll 8
  for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
    for (int c = 0; c < NV; c++) {
      float* dst = Cm + r * ldc + 8 * c;
      __m256 v = _mm256_mul_ps(acc[r][c], va);
      if (beta != 0.0f) v = _mm256_fmadd_ps(vb, _mm256_loadu_ps(dst), v);
      _mm256_storeu_ps(dst, v);
    }
}

template <int NV>
POCKET_AVX2 inline void gemm_rows(int mr, int64_t K, const float* A, int64_t lda, const float* B,
                                  int64_t ldb, float* Cm, int64_t ldc, float alpha, float beta) {
  switch (mr) {
    case 6: gemm_tile<6, NV>(K, A, lda, B, ldb, Cm, ldc, alpha, beta); break;
    case 5: gemm_tile<5, NV>(K, A, lda, B, ldb, Cm, ldc, alpha, beta); break;
    case 4: gemm_tile<4, NV>(K, A, lda, B, ldb, Cm, ldc, alpha, beta); break;
    case 3: gemm_tile<3, NV>(K, A, lda, B, ldb, Cm, ldc, alpha, beta); break;
    case 2: gemm_tile<2, NV>(K, A, lda, B, ldb, Cm, ldc, alpha, beta); break;
    default: gemm_tile<1, NV>(K, A, lda, B, ldb, Cm, ldc, alpha, beta); break;
  }
}

POCKET_AVX2 inline void gemm(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda,
                             const float* B, int64_t ldb, float* Cm, int64_t ldc, float alpha,
                             float beta, Tri tri = Tri::kFull) {
  // Column strips outside, so that a strip of B (K x 16) stays in L1 for all rows.
  for (int64_t n0 = 0; n0 < N; n0 += 16) {
    const int nv = N - n0 >= 16 ? 2 : 1;
    for (int64_t m0 = 0; m0 < M; m0 += 6) {
      const int mr = int(std::min<int64_t>(6, M - m0));
      if (tri == Tri::kLowerC && n0 >= m0 + mr) continue;  // tile entirely above the diagonal
      const int64_t k_end = tri == Tri::kLowerA ? std::min<int64_t>(K, m0 + mr) : K;
      const float* a = A + m0 * lda;
      float* c = Cm + m0 * ldc + n0;
      if (nv == 2)
        gemm_rows<2>(mr, k_end, a, lda, B + n0, ldb, c, ldc, alpha, beta);
      else
        gemm_rows<1>(mr, k_end, a, lda, B + n0, ldb, c, ldc, alpha, beta);
    }
  }
}

}  // namespace pocket::kernels::avx2
