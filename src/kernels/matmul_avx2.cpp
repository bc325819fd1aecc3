// AVX2 + FMA + F16C matmul kernels (x86-64-v3). Everything in this file after
// the includes is compiled for that target by the pragma below, and only called
// after runtime detection says the CPU has it (kernels/matmul.cpp). Helpers
// with state are local types (internal linkage), so no AVX2 copy of a shared
// inline function can leak into code that runs on older CPUs.
//
// Integer path (spec/gguf.md §8): weights are unpacked to 32 int8 per vector
// and multiplied with vpmaddubsw (u8 x s8 -> pairs of i16) and vpmaddwd (-> i32,
// with the sub-block scale folded in where there is one). Signed weights use
// the usual sign trick: |w| x (a * sign(w)). Unsigned weights with an offset
// (Q3_K: n + 4, Q6_K: n + 32) subtract offset * scale * bsums instead.
//
//  - Few activation rows (decode): per-type kernels read the blocks in place,
//    templated on RA, the number of activation rows served per pass over a
//    weight row (the bit unpacking is paid once per RA rows); weights are
//    prefetched ahead of the rows being read.
//  - Many activation rows (prefill, batched decode): each weight row is first
//    unpacked into an L1 buffer (quants as bytes, scale vectors, per-block
//    factors), then one kernel per format family runs over all activation rows
//    of the chunk; blocks of weight rows stay in L1 while groups of activation
//    rows pass over them.
//
// Float path: an RW x RA register tile of f32 FMAs; F16 and BF16 weights are
// widened in registers.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "kernels/act_layout.h"
#include "kernels/matmul.h"
#include "quant/blocks.h"
#include "util/fp16.h"

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#endif

namespace pocket::kernels::avx2 {

namespace {

using quant::kIQ4Values;

#define POCKET_INLINE inline __attribute__((always_inline))
#define POCKET_LAMBDA_INLINE __attribute__((always_inline))

// ---------------------------------------------------------------------------
// Small helpers

POCKET_INLINE __m256i load256(const void* p) {
  return _mm256_loadu_si256(static_cast<const __m256i*>(p));
}
POCKET_INLINE __m128i load128(const void* p) {
  return _mm_loadu_si128(static_cast<const __m128i*>(p));
}
POCKET_INLINE uint32_t load32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
POCKET_INLINE float f16_at(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}

POCKET_INLINE float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

POCKET_INLINE int hsum_i32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
  return _mm_cvtsi128_si32(s);
}

// u8 x s8 products summed in groups of four, as 8 x i32.
POCKET_INLINE __m256i dot_u8s8(__m256i u, __m256i s) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}
// The same with the pair sums multiplied by 16-bit scales.
POCKET_INLINE __m256i dot_u8s8_scaled(__m256i u, __m256i s, __m256i scales16) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), scales16);
}

// The 32 nibbles of a 32-element block in element order: low nibbles of 16
// bytes are elements 0..15, high nibbles 16..31 (spec §5.2).
POCKET_INLINE __m256i nibbles32(const uint8_t* qs) {
  const __m128i x = load128(qs);
  return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(x, 4), x), _mm256_set1_epi8(0x0F));
}

// Byte e = 0xFF where bit e of `bits` is set, else 0.
POCKET_INLINE __m256i bits_to_bytes(uint32_t bits) {
  const __m256i spread = _mm256_shuffle_epi8(
      _mm256_set1_epi32(int(bits)), _mm256_setr_epi64x(0x0000000000000000, 0x0101010101010101,
                                                       0x0202020202020202, 0x0303030303030303));
  const __m256i bit_of_byte = _mm256_set1_epi64x(int64_t(0x8040201008040201));
  return _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit_of_byte), bit_of_byte);
}

// Bit From of every byte moved to bit To, all other bits cleared.
template <int From, int To>
POCKET_INLINE __m256i move_bit(__m256i v) {
  const __m256i mask = _mm256_set1_epi8(char(1 << To));
  if constexpr (From > To)
    return _mm256_and_si256(_mm256_srli_epi16(v, From - To), mask);
  else if constexpr (From < To)
    return _mm256_and_si256(_mm256_slli_epi16(v, To - From), mask);
  else
    return _mm256_and_si256(v, mask);
}

// Shuffle masks, as constant tables (a load, not a computation, per use):
// kWordMask[j] broadcasts 16-bit element j of each 128-bit lane;
// kWordPairMask[j] broadcasts element 2j in the low lane and 2j + 1 in the high.
struct MaskTables {
  alignas(32) uint8_t word[8][32];
  alignas(32) uint8_t word_pair[4][32];
  constexpr MaskTables() : word{}, word_pair{} {
    for (int j = 0; j < 8; j++)
      for (int b = 0; b < 32; b++) word[j][b] = uint8_t(2 * j + b % 2);
    for (int j = 0; j < 4; j++)
      for (int b = 0; b < 32; b++) word_pair[j][b] = uint8_t((b < 16 ? 4 * j : 4 * j + 2) + b % 2);
  }
};
constexpr MaskTables kMasks;
POCKET_INLINE __m256i word_mask(int j) {
  return load256(kMasks.word[j]);
}
POCKET_INLINE __m256i word_pair_mask(int j) {
  return load256(kMasks.word_pair[j]);
}

// Calls f(std::integral_constant<int, K>) for K = 0 .. N-1, unrolled, so that
// shift counts and masks depending on K are compile-time constants.
template <class F, int... K>
POCKET_INLINE void unroll_impl(F&& f, std::integer_sequence<int, K...>) {
  (f(std::integral_constant<int, K>{}), ...);
}
template <int N, class F>
POCKET_INLINE void unroll(F&& f) {
  unroll_impl(f, std::make_integer_sequence<int, N>{});
}

// Prefetches the cache lines of the Bytes bytes at p (decode kernels: the
// block `distance` ahead of the one being read, so the requests are spread
// over the computation instead of issued in bursts).
template <int Bytes>
POCKET_INLINE void prefetch_block(const uint8_t* p) {
  for (int off = 0; off < Bytes; off += 64)
    _mm_prefetch(reinterpret_cast<const char*>(p + off), _MM_HINT_T0);
}

// ---------------------------------------------------------------------------
// Activation quantization into the ActLayout arrays: the same quants and
// scales as quant::quantize_row (checked bit for bit by the tests).

// Four vectors of 8 x i32 (values in int8 range) to 32 x i8 in order.
POCKET_INLINE __m256i pack_i32_to_i8(__m256i a, __m256i b, __m256i c, __m256i d) {
  const __m256i ab = _mm256_packs_epi32(a, b);
  const __m256i cd = _mm256_packs_epi32(c, d);
  const __m256i abcd = _mm256_packs_epi16(ab, cd);
  return _mm256_permutevar8x32_epi32(abcd, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

POCKET_INLINE float max_abs(const float* x, int n) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 m = _mm256_setzero_ps();
  // max(|x|, m) keeps m when |x| is NaN, as the reference's `a > amax` does.
  for (int i = 0; i < n; i += 8)
    m = _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + i)), m);
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

float f16_round(float v) {
  return f16_to_f32(f32_to_f16(v));
}

void quantize_q8_0_or_1(TensorType t, const float* x, int64_t n, uint8_t* row) {
  const ActLayout L = act_layout(t, n);
  auto* qs = reinterpret_cast<int8_t*>(row);
  auto* d_out = reinterpret_cast<float*>(row + L.d_offset);
  auto* s_out = reinterpret_cast<float*>(row + L.s_offset);
  auto* sums = reinterpret_cast<int16_t*>(row + L.sums32_offset);
  for (int64_t b = 0; b < n / 32; b++) {
    const float* xb = x + 32 * b;
    // The activation scheme of matmul.h: id = 127 / amax, round half to even.
    const float amax = max_abs(xb, 32);
    const float d = amax / 127.0f;
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    const __m256 vid = _mm256_set1_ps(id);
    const __m256 lo = _mm256_set1_ps(-127.0f), hi = _mm256_set1_ps(127.0f);
    __m256i q[4];
    for (int k = 0; k < 4; k++) {
      const __m256 v = _mm256_mul_ps(_mm256_loadu_ps(xb + 8 * k), vid);
      q[k] = _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(v, lo), hi));  // MXCSR default: RNE
    }
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(qs + 32 * b),
                        pack_i32_to_i8(q[0], q[1], q[2], q[3]));
    const int sum =
        hsum_i32(_mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3])));
    d_out[b] = f16_round(d);
    sums[b] = int16_t(sum);
    if (t == TensorType::Q8_1) s_out[b] = f16_round(float(sum) * d);
  }
}

void quantize_q8_k(const float* x, int64_t n, uint8_t* row) {
  const ActLayout L = act_layout(TensorType::Q8_K, n);
  auto* qs = reinterpret_cast<int8_t*>(row);
  auto* d_out = reinterpret_cast<float*>(row + L.d_offset);
  auto* bsums = reinterpret_cast<int16_t*>(row + L.bsums_offset);
  auto* sums = reinterpret_cast<int16_t*>(row + L.sums32_offset);
  for (int64_t b = 0; b < n / 256; b++) {
    const float* xb = x + 256 * b;
    int8_t* qb = qs + 256 * b;
    const float amax = max_abs(xb, 256);
    if (amax == 0.0f) {
      std::memset(qb, 0, 256);
      d_out[b] = 0.0f;
      for (int k = 0; k < 16; k++) bsums[16 * b + k] = 0;
      for (int k = 0; k < 8; k++) sums[8 * b + k] = 0;
      continue;
    }
    // The first element whose |x| is the maximum gives the scale its sign.
    float vmax = 0.0f;
    const __m256 sign = _mm256_set1_ps(-0.0f), vamax = _mm256_set1_ps(amax);
    for (int i = 0; i < 256; i += 8) {
      const __m256 v = _mm256_loadu_ps(xb + i);
      const int hits =
          _mm256_movemask_ps(_mm256_cmp_ps(_mm256_andnot_ps(sign, v), vamax, _CMP_EQ_OQ));
      if (hits) {
        vmax = xb[i + __builtin_ctz(unsigned(hits))];
        break;
      }
    }
    const float iscale = -127.0f / vmax;
    const __m256 vscale = _mm256_set1_ps(iscale);
    for (int j = 0; j < 8; j++) {  // 32 elements at a time
      __m256i q[4];
      for (int k = 0; k < 4;
           k++)  // round half to even, as nearest_int; packing saturates to [-128, 127]
        q[k] = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xb + 32 * j + 8 * k), vscale));
      const __m256i q8 = pack_i32_to_i8(q[0], q[1], q[2], q[3]);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(qb + 32 * j), q8);
      // Sums of 16: pairs, then quads, then two horizontal adds per lane.
      __m256i s =
          _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), q8), _mm256_set1_epi16(1));
      s = _mm256_hadd_epi32(s, s);
      s = _mm256_hadd_epi32(s, s);
      const int s0 = _mm256_extract_epi32(s, 0), s1 = _mm256_extract_epi32(s, 4);
      bsums[16 * b + 2 * j] = int16_t(s0);
      bsums[16 * b + 2 * j + 1] = int16_t(s1);
      sums[8 * b + j] = int16_t(s0 + s1);
    }
    d_out[b] = 1.0f / iscale;
  }
}

uint64_t act_row_bytes(TensorType act_type, int64_t n) {
  return act_layout(act_type, n).row_bytes;
}

void quantize_act(TensorType act_type, const float* x, int64_t n, uint8_t* row) {
  if (act_type == TensorType::Q8_K)
    quantize_q8_k(x, n, row);
  else
    quantize_q8_0_or_1(act_type, x, n, row);
}

// ---------------------------------------------------------------------------
// Weights with Q8_0 activations: Q8_0, Q4_0, Q5_0, IQ4_NL. decode() gives the
// 32 signed integer weights of a block; the f16 scale is its first field.
// Every kernel of these keeps quant::vec_dot's f32 order (lane l = elements
// 4l..4l+3, fma with dw * da, hsum): the tests require the same bits.

struct Q8_0Weights {
  static constexpr int kBytes = 34;
  static POCKET_INLINE __m256i decode(const uint8_t* blk) { return load256(blk + 2); }
};
struct Q4_0Weights {
  static constexpr int kBytes = 18;
  static POCKET_INLINE __m256i decode(const uint8_t* blk) {
    return _mm256_sub_epi8(nibbles32(blk + 2), _mm256_set1_epi8(8));
  }
};
struct Q5_0Weights {
  static constexpr int kBytes = 22;
  static POCKET_INLINE __m256i decode(const uint8_t* blk) {
    const __m256i high = _mm256_and_si256(bits_to_bytes(load32(blk + 2)), _mm256_set1_epi8(0x10));
    return _mm256_sub_epi8(_mm256_or_si256(nibbles32(blk + 6), high), _mm256_set1_epi8(16));
  }
};
struct IQ4_NLWeights {
  static constexpr int kBytes = 18;
  static POCKET_INLINE __m256i decode(const uint8_t* blk) {
    const __m256i table = _mm256_broadcastsi128_si256(load128(kIQ4Values));
    return _mm256_shuffle_epi8(table, nibbles32(blk + 2));
  }
};

template <class W>
struct WithQ8_0 {
  using Weights = W;
  static constexpr TensorType kActType = TensorType::Q8_0;
  template <int RA>
  static void dot(const uint8_t* w, const ActRow* a, int64_t n, float* out) {
    __m256 acc[RA];
    for (int r = 0; r < RA; r++) acc[r] = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / 32; b++) {
      const uint8_t* blk = w + b * W::kBytes;
      const __m256i q = W::decode(blk);
      const __m256i q_abs = _mm256_sign_epi8(q, q);
      const float dw = f16_at(blk);
      for (int r = 0; r < RA; r++) {
        const __m256i signed_act = _mm256_sign_epi8(load256(a[r].qs + 32 * b), q);
        const __m256i p = dot_u8s8(q_abs, signed_act);
        acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(dw * a[r].d[b]), acc[r]);
      }
    }
    for (int r = 0; r < RA; r++) out[r] = hsum(acc[r]);
  }
  // RW weight rows against one activation row (decode): the same arithmetic
  // per row as dot<1>, but RW independent accumulator chains, so the
  // one-FMA-per-block chain of a single row no longer sets the pace.
  template <int RW>
  static void dot_rows(const uint8_t* w, uint64_t w_row_bytes, const ActRow& a, int64_t n,
                       float* out, uint64_t prefetch_distance = 0) {
    __m256 acc[RW];
    for (int k = 0; k < RW; k++) acc[k] = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / 32; b++) {
      const __m256i act = load256(a.qs + 32 * b);
      const float da = a.d[b];
      for (int k = 0; k < RW; k++) {
        const uint8_t* blk = w + uint64_t(k) * w_row_bytes + b * W::kBytes;
        if (prefetch_distance) prefetch_block<W::kBytes>(blk + prefetch_distance);
        const __m256i q = W::decode(blk);
        const __m256i p = dot_u8s8(_mm256_sign_epi8(q, q), _mm256_sign_epi8(act, q));
        acc[k] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(f16_at(blk) * da), acc[k]);
      }
    }
    for (int k = 0; k < RW; k++) out[k] = hsum(acc[k]);
  }
};

// ---------------------------------------------------------------------------
// Weights dw * n + mw with Q8_1 activations: Q4_1, Q5_1 (§8.2).

struct Q4_1Weights {
  static constexpr int kBytes = 20;
  static POCKET_INLINE __m256i decode(const uint8_t* blk) { return nibbles32(blk + 4); }
};
struct Q5_1Weights {
  static constexpr int kBytes = 24;
  static POCKET_INLINE __m256i decode(const uint8_t* blk) {
    const __m256i high = _mm256_and_si256(bits_to_bytes(load32(blk + 4)), _mm256_set1_epi8(0x10));
    return _mm256_or_si256(nibbles32(blk + 8), high);
  }
};

template <class W>
struct WithQ8_1 {
  using Weights = W;
  static constexpr TensorType kActType = TensorType::Q8_1;
  template <int RA>
  static void dot(const uint8_t* w, const ActRow* a, int64_t n, float* out) {
    __m256 acc[RA];
    float min_sum[RA];
    for (int r = 0; r < RA; r++) {
      acc[r] = _mm256_setzero_ps();
      min_sum[r] = 0.0f;
    }
    for (int64_t b = 0; b < n / 32; b++) {
      const uint8_t* blk = w + b * W::kBytes;
      const __m256i q = W::decode(blk);  // unsigned 0..31
      const float dw = f16_at(blk), mw = f16_at(blk + 2);
      for (int r = 0; r < RA; r++) {
        const __m256i p = dot_u8s8(q, load256(a[r].qs + 32 * b));
        acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(dw * a[r].d[b]), acc[r]);
        min_sum[r] += mw * a[r].s[b];
      }
    }
    for (int r = 0; r < RA; r++) out[r] = hsum(acc[r]) + min_sum[r];
  }
};

// ---------------------------------------------------------------------------
// K-quants and IQ4_XS with Q8_K activations (§8.3).

// Q4_K / Q5_K: eight 6-bit scale codes and eight min codes from 12 bytes
// (§5.10), as two little-endian u64 of bytes.
POCKET_INLINE void k4_scales_and_mins(const uint8_t* scales, uint64_t* sc, uint64_t* mn) {
  uint32_t u[3];
  std::memcpy(u, scales, 12);
  const uint32_t sc_lo = u[0] & 0x3f3f3f3f;
  const uint32_t mn_lo = u[1] & 0x3f3f3f3f;
  const uint32_t sc_hi = (u[2] & 0x0f0f0f0f) | ((u[0] >> 2) & 0x30303030);
  const uint32_t mn_hi = ((u[2] >> 4) & 0x0f0f0f0f) | ((u[1] >> 2) & 0x30303030);
  *sc = uint64_t(sc_hi) << 32 | sc_lo;
  *mn = uint64_t(mn_hi) << 32 | mn_lo;
}

// Shared body of Q4_K and Q5_K: per super-block, sub-blocks 2k and 2k+1 are the
// low and high nibbles of qs[32k .. 32k+32) (plus a fifth bit for Q5_K).
template <bool kFiveBits>
struct Q45K {
  static constexpr TensorType kActType = TensorType::Q8_K;
  static constexpr int kBytes = kFiveBits ? 176 : 144;
  template <int RA>
  static void dot(const uint8_t* w, const ActRow* a, int64_t n, float* out) {
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    __m256 acc[RA];
    for (int r = 0; r < RA; r++) acc[r] = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / 256; b++) {
      const uint8_t* blk = w + b * kBytes;
      const float d = f16_at(blk), dmin = f16_at(blk + 2);
      uint64_t sc, mn;
      k4_scales_and_mins(blk + 4, &sc, &mn);
      const __m256i scales =
          _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(_mm_cvtsi64_si128(int64_t(sc))));
      const __m128i mins = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(int64_t(mn)));
      const uint8_t* qs = blk + (kFiveBits ? 48 : 16);
      const __m256i qh = kFiveBits ? load256(blk + 16) : _mm256_setzero_si256();
      __m256i sumi[RA];
      for (int r = 0; r < RA; r++) sumi[r] = _mm256_setzero_si256();
      auto pair_of_subblocks = [&](int k) POCKET_LAMBDA_INLINE {
        const __m256i q = load256(qs + 32 * k);
        __m256i lo = _mm256_and_si256(q, m4);
        __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
        if constexpr (kFiveBits) {  // bit j of qh[t] is the fifth bit of sub-block j
          const __m256i bit_lo = _mm256_set1_epi8(char(1 << (2 * k)));
          const __m256i bit_hi = _mm256_set1_epi8(char(2 << (2 * k)));
          const __m256i five = _mm256_set1_epi8(0x10);
          lo = _mm256_or_si256(
              lo, _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qh, bit_lo), bit_lo), five));
          hi = _mm256_or_si256(
              hi, _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qh, bit_hi), bit_hi), five));
        }
        const __m256i s_lo = _mm256_shuffle_epi8(scales, word_mask(2 * k));
        const __m256i s_hi = _mm256_shuffle_epi8(scales, word_mask(2 * k + 1));
        for (int r = 0; r < RA; r++) {
          const int8_t* aq = a[r].qs + 256 * b + 64 * k;
          const __m256i p_lo = dot_u8s8_scaled(lo, load256(aq), s_lo);
          const __m256i p_hi = dot_u8s8_scaled(hi, load256(aq + 32), s_hi);
          sumi[r] = _mm256_add_epi32(sumi[r], _mm256_add_epi32(p_lo, p_hi));
        }
      };
      if constexpr (RA <= 2) {
        unroll<4>(pair_of_subblocks);
      } else {  // a run-time loop keeps the many accumulators in registers
#pragma GCC unroll 1
        for (int k = 0; k < 4; k++) pair_of_subblocks(k);
      }
      for (int r = 0; r < RA; r++) {
        const float dy = a[r].d[b];
        const __m128i m = _mm_madd_epi16(mins, load128(a[r].sums32 + 8 * b));
        acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(d * dy), _mm256_cvtepi32_ps(sumi[r]), acc[r]);
        acc[r] = _mm256_fnmadd_ps(_mm256_set1_ps(dmin * dy),
                                  _mm256_cvtepi32_ps(_mm256_zextsi128_si256(m)), acc[r]);
      }
    }
    for (int r = 0; r < RA; r++) out[r] = hsum(acc[r]);
  }
  // RW weight rows against one activation row (decode), each row's arithmetic
  // that of dot<1>: the rows' scale decoding and accumulator chains overlap.
  template <int RW>
  static void dot_rows(const uint8_t* w, uint64_t w_row_bytes, const ActRow& a, int64_t n,
                       float* out, uint64_t prefetch_distance = 0) {
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    __m256 acc[RW];
    for (int k = 0; k < RW; k++) acc[k] = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / 256; b++) {
      const float dy = a.d[b];
      const __m128i act_sums = load128(a.sums32 + 8 * b);
      for (int k = 0; k < RW; k++) {
        const uint8_t* blk = w + uint64_t(k) * w_row_bytes + b * kBytes;
        if (prefetch_distance) prefetch_block<kBytes>(blk + prefetch_distance);
        const float d = f16_at(blk), dmin = f16_at(blk + 2);
        uint64_t sc, mn;
        k4_scales_and_mins(blk + 4, &sc, &mn);
        const __m256i scales =
            _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(_mm_cvtsi64_si128(int64_t(sc))));
        const __m128i mins = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(int64_t(mn)));
        const uint8_t* qs = blk + (kFiveBits ? 48 : 16);
        const __m256i qh = kFiveBits ? load256(blk + 16) : _mm256_setzero_si256();
        __m256i sumi = _mm256_setzero_si256();
        unroll<4>([&](auto kc) POCKET_LAMBDA_INLINE {
          constexpr int j = kc.value;
          const __m256i q = load256(qs + 32 * j);
          __m256i lo = _mm256_and_si256(q, m4);
          __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
          if constexpr (kFiveBits) {
            const __m256i bit_lo = _mm256_set1_epi8(char(1 << (2 * j)));
            const __m256i bit_hi = _mm256_set1_epi8(char(2 << (2 * j)));
            const __m256i five = _mm256_set1_epi8(0x10);
            lo = _mm256_or_si256(
                lo,
                _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qh, bit_lo), bit_lo), five));
            hi = _mm256_or_si256(
                hi,
                _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qh, bit_hi), bit_hi), five));
          }
          const int8_t* aq = a.qs + 256 * b + 64 * j;
          const __m256i p_lo =
              dot_u8s8_scaled(lo, load256(aq), _mm256_shuffle_epi8(scales, word_mask(2 * j)));
          const __m256i p_hi = dot_u8s8_scaled(hi, load256(aq + 32),
                                               _mm256_shuffle_epi8(scales, word_mask(2 * j + 1)));
          sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p_lo, p_hi));
        });
        const __m128i m = _mm_madd_epi16(mins, act_sums);
        acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(d * dy), _mm256_cvtepi32_ps(sumi), acc[k]);
        acc[k] = _mm256_fnmadd_ps(_mm256_set1_ps(dmin * dy),
                                  _mm256_cvtepi32_ps(_mm256_zextsi128_si256(m)), acc[k]);
      }
    }
    for (int k = 0; k < RW; k++) out[k] = hsum(acc[k]);
  }
};

// Q2_K, Q3_K and Q6_K share a shape: 16 sub-blocks of 16; per half h of the
// super-block, four 32-element groups g, group g covering sub-blocks 8h+2g
// (its low 16 elements) and 8h+2g+1 (its high 16). scales16: the 16 sub-block
// scales as i16 (lane 0: 0..7, lane 1: 8..15).
// group(h, gc) returns the unsigned quants of group gc.value of half h (h a
// run-time value when RA > 2: a loop keeps the accumulators in registers).
template <int RA, class Group>
POCKET_INLINE void sixteen_subblocks(__m256i scales16, const ActRow* a, int64_t b, __m256i* sumi,
                                     Group group) {
  auto half = [&](int h) POCKET_LAMBDA_INLINE {
    const __m128i half_scales =
        h == 0 ? _mm256_castsi256_si128(scales16) : _mm256_extracti128_si256(scales16, 1);
    const __m256i sc = _mm256_broadcastsi128_si256(half_scales);
    unroll<4>([&](auto gc) POCKET_LAMBDA_INLINE {
      constexpr int g = gc.value;
      const __m256i u = group(h, gc);
      const __m256i s = _mm256_shuffle_epi8(sc, word_pair_mask(g));
      for (int r = 0; r < RA; r++)
        sumi[r] = _mm256_add_epi32(
            sumi[r], dot_u8s8_scaled(u, load256(a[r].qs + 256 * b + 128 * h + 32 * g), s));
    });
  };
  if constexpr (RA <= 2) {
    unroll<2>(half);
  } else {
#pragma GCC unroll 1
    for (int h = 0; h < 2; h++) half(h);
  }
}

struct Q2K {
  static constexpr TensorType kActType = TensorType::Q8_K;
  template <int RA>
  static void dot(const uint8_t* w, const ActRow* a, int64_t n, float* out) {
    __m256 acc[RA];
    for (int r = 0; r < RA; r++) acc[r] = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / 256; b++) {
      const uint8_t* blk = w + b * 84;
      const float d = f16_at(blk + 80), dmin = f16_at(blk + 82);
      const __m128i raw = load128(blk);
      const __m256i scales = _mm256_cvtepu8_epi16(_mm_and_si128(raw, _mm_set1_epi8(0x0F)));
      const __m256i mins =
          _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(raw, 4), _mm_set1_epi8(0x0F)));
      __m256i sumi[RA];
      for (int r = 0; r < RA; r++) sumi[r] = _mm256_setzero_si256();
      sixteen_subblocks<RA>(scales, a, b, sumi, [&](int h, auto gc) POCKET_LAMBDA_INLINE {
        const __m256i q = load256(blk + 16 + 32 * h);
        return _mm256_and_si256(_mm256_srli_epi16(q, 2 * gc.value), _mm256_set1_epi8(3));
      });
      for (int r = 0; r < RA; r++) {
        const float dy = a[r].d[b];
        const __m256i m = _mm256_madd_epi16(mins, load256(a[r].bsums + 16 * b));
        acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(d * dy), _mm256_cvtepi32_ps(sumi[r]), acc[r]);
        acc[r] = _mm256_fnmadd_ps(_mm256_set1_ps(dmin * dy), _mm256_cvtepi32_ps(m), acc[r]);
      }
    }
    for (int r = 0; r < RA; r++) out[r] = hsum(acc[r]);
  }
};

// Q3_K's 16 signed scales (code - 32) from 12 bytes (§5.9), as i16.
POCKET_INLINE __m256i q3_k_scales(const uint8_t* bytes) {
  uint32_t u[3];
  std::memcpy(u, bytes, 12);
  const uint32_t low = 0x0f0f0f0f, two = 0x03030303;
  const uint32_t s0 = (u[0] & low) | ((u[2] & two) << 4);
  const uint32_t s1 = (u[1] & low) | (((u[2] >> 2) & two) << 4);
  const uint32_t s2 = ((u[0] >> 4) & low) | (((u[2] >> 4) & two) << 4);
  const uint32_t s3 = ((u[1] >> 4) & low) | (((u[2] >> 6) & two) << 4);
  const __m128i codes = _mm_setr_epi32(int(s0), int(s1), int(s2), int(s3));
  return _mm256_cvtepi8_epi16(_mm_sub_epi8(codes, _mm_set1_epi8(32)));
}

struct Q3K {
  static constexpr TensorType kActType = TensorType::Q8_K;
  template <int RA>
  static void dot(const uint8_t* w, const ActRow* a, int64_t n, float* out) {
    __m256 acc[RA];
    for (int r = 0; r < RA; r++) acc[r] = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / 256; b++) {
      const uint8_t* blk = w + b * 110;
      const float d = f16_at(blk + 108);
      const __m256i scales = q3_k_scales(blk + 96);
      const __m256i hmask = load256(blk);
      __m256i sumi[RA];
      for (int r = 0; r < RA; r++) sumi[r] = _mm256_setzero_si256();
      // u = low two bits | high bit << 2 = n + 4; element e's high bit is bit
      // e / 32 = 4h + g of hmask[e % 32].
      sixteen_subblocks<RA>(scales, a, b, sumi, [&](int h, auto gc) POCKET_LAMBDA_INLINE {
        constexpr int g = gc.value;
        const __m256i q = load256(blk + 32 + 32 * h);
        const __m256i hm = h == 0 ? hmask : _mm256_srli_epi16(hmask, 4);  // bits 4h.. to 0..
        const __m256i low = _mm256_and_si256(_mm256_srli_epi16(q, 2 * g), _mm256_set1_epi8(3));
        return _mm256_or_si256(low, move_bit<g, 2>(hm));
      });
      for (int r = 0; r < RA; r++) {
        const __m256i offset = _mm256_madd_epi16(scales, load256(a[r].bsums + 16 * b));
        sumi[r] = _mm256_sub_epi32(sumi[r], _mm256_slli_epi32(offset, 2));
        acc[r] =
            _mm256_fmadd_ps(_mm256_set1_ps(d * a[r].d[b]), _mm256_cvtepi32_ps(sumi[r]), acc[r]);
      }
    }
    for (int r = 0; r < RA; r++) out[r] = hsum(acc[r]);
  }
};

// Q6_K: the 32 six-bit quants u = n + 32 of group g (0..3) of half h of a
// super-block: the low four bits from ql, the two high bits from qh.
template <int g>
POCKET_INLINE __m256i q6k_group(const uint8_t* ql, const uint8_t* qh, int h, __m256i m4,
                                __m256i m2) {
  const __m256i l = load256(ql + 64 * h + 32 * (g % 2));
  const __m256i hb = load256(qh + 32 * h);
  const __m256i low =
      g < 2 ? _mm256_and_si256(l, m4) : _mm256_and_si256(_mm256_srli_epi16(l, 4), m4);
  __m256i high;
  if constexpr (g == 0)
    high = _mm256_slli_epi16(hb, 4);
  else if constexpr (g == 1)
    high = _mm256_slli_epi16(hb, 2);
  else if constexpr (g == 2)
    high = hb;
  else
    high = _mm256_srli_epi16(hb, 2);
  return _mm256_or_si256(low, _mm256_and_si256(high, m2));
}

struct Q6K {
  static constexpr TensorType kActType = TensorType::Q8_K;
  // The integer sums of super-block b (blk) against RA activation rows,
  // before the offset correction.
  template <int RA>
  static POCKET_INLINE void block_sums(const uint8_t* blk, __m256i scales, const ActRow* a,
                                       int64_t b, __m256i* sumi) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(0x30);
    const uint8_t* ql = blk;
    const uint8_t* qh = blk + 128;
    for (int r = 0; r < RA; r++) sumi[r] = _mm256_setzero_si256();
    // u = low four bits (ql) | two high bits (qh) << 4 = n + 32.
    sixteen_subblocks<RA>(scales, a, b, sumi, [&](int h, auto gc) POCKET_LAMBDA_INLINE {
      return q6k_group<gc.value>(ql, qh, h, m4, m2);
    });
  }
  template <int RA>
  static void dot(const uint8_t* w, const ActRow* a, int64_t n, float* out) {
    __m256 acc[RA];
    for (int r = 0; r < RA; r++) acc[r] = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / 256; b++) {
      const uint8_t* blk = w + b * 210;
      const float d = f16_at(blk + 208);
      const __m256i scales = _mm256_cvtepi8_epi16(load128(blk + 192));
      __m256i sumi[RA];
      block_sums<RA>(blk, scales, a, b, sumi);
      for (int r = 0; r < RA; r++) {
        const __m256i offset = _mm256_madd_epi16(scales, load256(a[r].bsums + 16 * b));
        sumi[r] = _mm256_sub_epi32(sumi[r], _mm256_slli_epi32(offset, 5));
        acc[r] =
            _mm256_fmadd_ps(_mm256_set1_ps(d * a[r].d[b]), _mm256_cvtepi32_ps(sumi[r]), acc[r]);
      }
    }
    for (int r = 0; r < RA; r++) out[r] = hsum(acc[r]);
  }
  // RW weight rows against one activation row (decode), each row's arithmetic
  // that of dot<1> (the LM head of the _m files is Q6_K: the largest matrix).
  template <int RW>
  static void dot_rows(const uint8_t* w, uint64_t w_row_bytes, const ActRow& a, int64_t n,
                       float* out, uint64_t prefetch_distance = 0) {
    __m256 acc[RW];
    for (int k = 0; k < RW; k++) acc[k] = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / 256; b++) {
      const __m256i bsums = load256(a.bsums + 16 * b);
      const float dy = a.d[b];
      for (int k = 0; k < RW; k++) {
        const uint8_t* blk = w + uint64_t(k) * w_row_bytes + b * 210;
        if (prefetch_distance) prefetch_block<210>(blk + prefetch_distance);
        const float d = f16_at(blk + 208);
        const __m256i scales = _mm256_cvtepi8_epi16(load128(blk + 192));
        __m256i sumi;
        block_sums<1>(blk, scales, &a, b, &sumi);
        const __m256i offset = _mm256_madd_epi16(scales, bsums);
        sumi = _mm256_sub_epi32(sumi, _mm256_slli_epi32(offset, 5));
        acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(d * dy), _mm256_cvtepi32_ps(sumi), acc[k]);
      }
    }
    for (int k = 0; k < RW; k++) out[k] = hsum(acc[k]);
  }
};

struct IQ4XS {
  static constexpr TensorType kActType = TensorType::Q8_K;
  template <int RA>
  static void dot(const uint8_t* w, const ActRow* a, int64_t n, float* out) {
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i table = _mm256_broadcastsi128_si256(load128(kIQ4Values));
    __m256 acc[RA];
    for (int r = 0; r < RA; r++) acc[r] = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / 256; b++) {
      const uint8_t* blk = w + b * 136;
      const float d = f16_at(blk);
      const unsigned scales_h = unsigned(blk[2]) | unsigned(blk[3]) << 8;
      alignas(16) int16_t ls[8];
      for (int j = 0; j < 8; j++)
        ls[j] = int16_t(
            (((blk[4 + j / 2] >> (4 * (j % 2))) & 0x0F) | (((scales_h >> (2 * j)) & 3) << 4)) - 32);
      const __m256i scales =
          _mm256_broadcastsi128_si256(_mm_load_si128(reinterpret_cast<const __m128i*>(ls)));
      const uint8_t* qs = blk + 8;
      __m256i sumi[RA];
      for (int r = 0; r < RA; r++) sumi[r] = _mm256_setzero_si256();
      unroll<4>([&](auto kc) POCKET_LAMBDA_INLINE {
        constexpr int k = kc.value;
        // 16 bytes per sub-block: sub-block 2k in bytes 0..15, 2k+1 in 16..31.
        const __m256i q = load256(qs + 32 * k);
        const __m256i lo = _mm256_and_si256(q, m4),
                      hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
        const __m256i w0 = _mm256_shuffle_epi8(table, _mm256_permute2x128_si256(lo, hi, 0x20));
        const __m256i w1 = _mm256_shuffle_epi8(table, _mm256_permute2x128_si256(lo, hi, 0x31));
        const __m256i w0_abs = _mm256_sign_epi8(w0, w0), w1_abs = _mm256_sign_epi8(w1, w1);
        const __m256i s0 = _mm256_shuffle_epi8(scales, word_mask(2 * k));
        const __m256i s1 = _mm256_shuffle_epi8(scales, word_mask(2 * k + 1));
        for (int r = 0; r < RA; r++) {
          const int8_t* aq = a[r].qs + 256 * b + 64 * k;
          const __m256i p0 = dot_u8s8_scaled(w0_abs, _mm256_sign_epi8(load256(aq), w0), s0);
          const __m256i p1 = dot_u8s8_scaled(w1_abs, _mm256_sign_epi8(load256(aq + 32), w1), s1);
          sumi[r] = _mm256_add_epi32(sumi[r], _mm256_add_epi32(p0, p1));
        }
      });
      for (int r = 0; r < RA; r++)
        acc[r] =
            _mm256_fmadd_ps(_mm256_set1_ps(d * a[r].d[b]), _mm256_cvtepi32_ps(sumi[r]), acc[r]);
    }
    for (int r = 0; r < RA; r++) out[r] = hsum(acc[r]);
  }
};

// ---------------------------------------------------------------------------
// Prefill path for the K-quants (many activation rows per call).
//
// A weight row is first unpacked into a small buffer (it stays in L1): its
// quants as unsigned bytes in element order, one 16 x i16 scale vector per 32
// elements (the scale of the low 16 elements in lanes 0-7, of the high 16 in
// lanes 8-15), and per super-block the floats D and M and 16 i16 coefficients
// C of the activation's 16-element sums, such that the block pair's value is
//
//   dy * (D * sum_g madd(maddubs(u_g, a_g), sc_g)  -  M * sum_k C_k * bsums_k)
//
// Q4_K/Q5_K: D = d, M = dmin, C_k = min of sub-block k/2.
// Q2_K:      D = d, M = dmin, C_k = min code k.
// Q6_K:      D = M = d, C_k = 32 * scale_k (u = n + 32).
// Q3_K:      D = M = d, C_k = 4 * scale_k (u = n + 4).
// Every activation row of the chunk then runs a kernel without any bit
// unpacking: the decoding is paid once per weight row and chunk, not once per
// four activation rows.

// A 64-byte aligned scratch buffer that grows on demand; freed when its thread
// ends (the kernels keep one set per thread, as thread_local).
class Scratch {
 public:
  Scratch() = default;
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  ~Scratch() { std::free(data_); }
  uint8_t* get(int64_t bytes) {
    if (capacity_ < bytes) {
      std::free(data_);
      const int64_t rounded = (bytes + 63) / 64 * 64;
      data_ = static_cast<uint8_t*>(std::aligned_alloc(64, size_t(rounded)));
      capacity_ = rounded;
    }
    return data_;
  }

 private:
  uint8_t* data_ = nullptr;
  int64_t capacity_ = 0;
};

struct UnpackedRow {
  uint8_t* u;     // n quants
  int16_t* sc;    // n / 32 vectors of 16
  int16_t* coef;  // n / 256 vectors of 16
  float* d;       // n / 256
  float* m;       // n / 256
};

// Storage for unpacked row `index` (< 8) of n elements, owned by the calling thread.
UnpackedRow unpacked_row(int64_t n, int index) {
  thread_local Scratch buffers[8];
  const int64_t nb = n / 256;
  uint8_t* storage = buffers[index].get(n + n + nb * 32 + nb * 8);
  UnpackedRow r;
  r.u = storage;
  r.sc = reinterpret_cast<int16_t*>(storage + n);
  r.coef = reinterpret_cast<int16_t*>(storage + 2 * n);
  r.d = reinterpret_cast<float*>(storage + 2 * n + nb * 32);
  r.m = r.d + nb;
  return r;
}

POCKET_INLINE void store256(void* p, __m256i v) {
  _mm256_store_si256(static_cast<__m256i*>(p), v);
}

// Q4_K / Q5_K: eight sub-blocks of 32, one scale each.
template <bool kFiveBits>
void unpack_q45_k(const uint8_t* row, int64_t nb, const UnpackedRow& out) {
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  for (int64_t b = 0; b < nb; b++) {
    const uint8_t* blk = row + b * (kFiveBits ? 176 : 144);
    out.d[b] = f16_at(blk);
    out.m[b] = f16_at(blk + 2);
    uint64_t sc, mn;
    k4_scales_and_mins(blk + 4, &sc, &mn);
    const __m256i scales =
        _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(_mm_cvtsi64_si128(int64_t(sc))));
    const __m256i mins =
        _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(_mm_cvtsi64_si128(int64_t(mn))));
    // C_k = min of sub-block k / 2: element k of [m0 m0 m1 m1 ... m7 m7].
    const __m256i dup = _mm256_setr_epi8(0, 1, 0, 1, 2, 3, 2, 3, 4, 5, 4, 5, 6, 7, 6, 7, 8, 9, 8, 9,
                                         10, 11, 10, 11, 12, 13, 12, 13, 14, 15, 14, 15);
    store256(out.coef + 16 * b, _mm256_shuffle_epi8(mins, dup));
    const uint8_t* qs = blk + (kFiveBits ? 48 : 16);
    const __m256i qh = kFiveBits ? load256(blk + 16) : _mm256_setzero_si256();
    for (int k = 0; k < 4; k++) {
      const __m256i q = load256(qs + 32 * k);
      __m256i lo = _mm256_and_si256(q, m4);
      __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
      if constexpr (kFiveBits) {
        const __m256i bit_lo = _mm256_set1_epi8(char(1 << (2 * k)));
        const __m256i bit_hi = _mm256_set1_epi8(char(2 << (2 * k)));
        const __m256i five = _mm256_set1_epi8(0x10);
        lo = _mm256_or_si256(
            lo, _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qh, bit_lo), bit_lo), five));
        hi = _mm256_or_si256(
            hi, _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qh, bit_hi), bit_hi), five));
      }
      store256(out.u + 256 * b + 64 * k, lo);
      store256(out.u + 256 * b + 64 * k + 32, hi);
      store256(out.sc + 16 * (8 * b + 2 * k), _mm256_shuffle_epi8(scales, word_mask(2 * k)));
      store256(out.sc + 16 * (8 * b + 2 * k + 1),
               _mm256_shuffle_epi8(scales, word_mask(2 * k + 1)));
    }
  }
}

// Q2_K / Q3_K / Q6_K: sixteen sub-blocks of 16. group(blk, h, gc) gives the
// unsigned quants of group g of half h, as in the direct kernels.
template <class Group>
void unpack_sixteen(const uint8_t* blk, int64_t b, __m256i scales16, __m256i coef16, float d,
                    float m, const UnpackedRow& out, Group group) {
  out.d[b] = d;
  out.m[b] = m;
  store256(out.coef + 16 * b, coef16);
  for (int h = 0; h < 2; h++) {
    const __m128i half_scales =
        h == 0 ? _mm256_castsi256_si128(scales16) : _mm256_extracti128_si256(scales16, 1);
    const __m256i sc = _mm256_broadcastsi128_si256(half_scales);
    unroll<4>([&](auto gc) POCKET_LAMBDA_INLINE {
      constexpr int g = gc.value;
      store256(out.u + 256 * b + 128 * h + 32 * g, group(h, gc));
      store256(out.sc + 16 * (8 * b + 4 * h + g), _mm256_shuffle_epi8(sc, word_pair_mask(g)));
    });
  }
}

void unpack_q6_k(const uint8_t* row, int64_t nb, const UnpackedRow& out) {
  const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(0x30);
  for (int64_t b = 0; b < nb; b++) {
    const uint8_t* blk = row + b * 210;
    const __m256i scales = _mm256_cvtepi8_epi16(load128(blk + 192));
    const float d = f16_at(blk + 208);
    unpack_sixteen(blk, b, scales, _mm256_slli_epi16(scales, 5), d, d, out,
                   [&](int h, auto gc) POCKET_LAMBDA_INLINE {
                     return q6k_group<gc.value>(blk, blk + 128, h, m4, m2);
                   });
  }
}

void unpack_q3_k(const uint8_t* row, int64_t nb, const UnpackedRow& out) {
  for (int64_t b = 0; b < nb; b++) {
    const uint8_t* blk = row + b * 110;
    const __m256i scales = q3_k_scales(blk + 96);
    const __m256i hmask = load256(blk);
    const float d = f16_at(blk + 108);
    unpack_sixteen(blk, b, scales, _mm256_slli_epi16(scales, 2), d, d, out,
                   [&](int h, auto gc) POCKET_LAMBDA_INLINE {
                     constexpr int g = gc.value;
                     const __m256i q = load256(blk + 32 + 32 * h);
                     const __m256i hm = h == 0 ? hmask : _mm256_srli_epi16(hmask, 4);
                     const __m256i low =
                         _mm256_and_si256(_mm256_srli_epi16(q, 2 * g), _mm256_set1_epi8(3));
                     return _mm256_or_si256(low, move_bit<g, 2>(hm));
                   });
  }
}

void unpack_q2_k(const uint8_t* row, int64_t nb, const UnpackedRow& out) {
  for (int64_t b = 0; b < nb; b++) {
    const uint8_t* blk = row + b * 84;
    const __m128i raw = load128(blk);
    const __m256i scales = _mm256_cvtepu8_epi16(_mm_and_si128(raw, _mm_set1_epi8(0x0F)));
    const __m256i mins =
        _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(raw, 4), _mm_set1_epi8(0x0F)));
    unpack_sixteen(blk, b, scales, mins, f16_at(blk + 80), f16_at(blk + 82), out,
                   [&](int h, auto gc) POCKET_LAMBDA_INLINE {
                     const __m256i q = load256(blk + 16 + 32 * h);
                     return _mm256_and_si256(_mm256_srli_epi16(q, 2 * gc.value),
                                             _mm256_set1_epi8(3));
                   });
  }
}

// The value of the unpacked row against RA activation rows.
template <int RA>
void unpacked_dot(const UnpackedRow& w, const ActRow* a, int64_t nb, float* out) {
  __m256 acc[RA];
  for (int r = 0; r < RA; r++) acc[r] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; b++) {
    __m256i sumi[RA];
    for (int r = 0; r < RA; r++) sumi[r] = _mm256_setzero_si256();
#pragma GCC unroll 2
    for (int g = 0; g < 8; g++) {
      const __m256i u = _mm256_load_si256(reinterpret_cast<const __m256i*>(w.u + 256 * b + 32 * g));
      const __m256i sc =
          _mm256_load_si256(reinterpret_cast<const __m256i*>(w.sc + 16 * (8 * b + g)));
      for (int r = 0; r < RA; r++)
        sumi[r] =
            _mm256_add_epi32(sumi[r], dot_u8s8_scaled(u, load256(a[r].qs + 256 * b + 32 * g), sc));
    }
    const __m256i coef = _mm256_load_si256(reinterpret_cast<const __m256i*>(w.coef + 16 * b));
    const __m256 d = _mm256_set1_ps(w.d[b]), m = _mm256_set1_ps(w.m[b]);
    for (int r = 0; r < RA; r++) {
      const __m256i corr = _mm256_madd_epi16(coef, load256(a[r].bsums + 16 * b));
      const __m256 t = _mm256_fnmadd_ps(m, _mm256_cvtepi32_ps(corr),
                                        _mm256_mul_ps(d, _mm256_cvtepi32_ps(sumi[r])));
      acc[r] = _mm256_fmadd_ps(t, _mm256_broadcast_ss(a[r].d + b), acc[r]);
    }
  }
  for (int r = 0; r < RA; r++) out[r] = hsum(acc[r]);
}

// Activation rows from which unpacking a weight row pays off. Below, the
// direct kernels serve four rows per pass while a block of weight rows stays
// in L1. Measured with 8 at this threshold: batched decode of 8 sequences ran
// slower per token than 4 (q8_0 39.7 vs 46.5 tokens/s); with 16, q8_0 --batch 8
// went from 40.0 / 43.8 to 51.2 / 53.9 tokens/s (two alternating runs),
// q4_k_m --batch 12 from 69 to 83; q4_k_m --batch 8 within the noise.
constexpr int64_t kUnpackMinRows = 16;

// Weight rows per block: the block's (unpacked) rows stay in L1 while every
// group of activation rows passes over all of them, so each activation row is
// read from L2 once per block instead of once per weight row.
POCKET_INLINE int64_t weight_block_rows(uint64_t bytes_per_row) {
  const int64_t rows = int64_t(16384 / (bytes_per_row ? bytes_per_row : 1));
  return rows < 1 ? 1 : (rows > 8 ? 8 : rows);
}

template <void (*Unpack)(const uint8_t*, int64_t, const UnpackedRow&)>
void unpacked_block(const uint8_t* w, uint64_t w_row_bytes, int64_t n_out, const uint8_t* act,
                    uint64_t act_stride, int64_t n_act, int64_t n, float* y, int64_t y_stride) {
  const ActLayout L = act_layout(TensorType::Q8_K, n);
  const int64_t nb = n / 256;
  const int64_t block = weight_block_rows(uint64_t(2 * n));
  UnpackedRow u[8];
  for (int64_t i = 0; i < block; i++) u[i] = unpacked_row(n, int(i));
  ActRow rows[4];
  float out[4];
  for (int64_t o0 = 0; o0 < n_out; o0 += block) {
    const int64_t nw = n_out - o0 < block ? n_out - o0 : block;
    for (int64_t i = 0; i < nw; i++) Unpack(w + uint64_t(o0 + i) * w_row_bytes, nb, u[i]);
    for (int64_t r = 0; r < n_act; r += 4) {
      const int count = int(n_act - r < 4 ? n_act - r : 4);
      for (int i = 0; i < count; i++) rows[i] = act_row(act + uint64_t(r + i) * act_stride, L);
      for (int64_t i = 0; i < nw; i++) {
        if (count == 4) {
          unpacked_dot<4>(u[i], rows, nb, out);
        } else {
          for (int j = 0; j < count; j++) unpacked_dot<1>(u[i], rows + j, nb, out + j);
        }
        for (int j = 0; j < count; j++) y[(r + j) * y_stride + o0 + i] = out[j];
      }
    }
  }
}

// The same for the 32-element formats (Q8_0, Q4_0, Q5_0, IQ4_NL with Q8_0
// activations; Q4_1, Q5_1 with Q8_1): a weight row unpacks to its 32-quant
// vectors (and their absolute values for the sign trick) and its f32 block
// scales. Every 8 consecutive blocks are stored dword-transposed (vector j holds
// quants [4j, 4j + 4) of each of the 8 blocks, block i in lane i), and so are the
// activation rows of the chunk: the 8 products of a vector position then add up,
// lane by lane, to the 8 blocks' integer dot products, which take their factors
// dw * da with one conversion and one FMA per 8 blocks instead of one per block
// (q8_0 prefill was 41 GMAC/s against Q4_K's 68, `bench --kernels`). The blocks
// past the last multiple of 8 stay in element order.

// 8 consecutive 32-byte blocks (src) to their dword transpose (dst; both 32-byte aligned).
POCKET_INLINE void transpose_dwords_8x8(const void* src, void* dst) {
  const __m256i* in = static_cast<const __m256i*>(src);
  __m256i* out = static_cast<__m256i*>(dst);
  __m256i t[8], u[8];
  for (int i = 0; i < 8; i += 2) {
    const __m256i r0 = _mm256_load_si256(in + i), r1 = _mm256_load_si256(in + i + 1);
    t[i] = _mm256_unpacklo_epi32(r0, r1);      // per lane: r0[0] r1[0] r0[1] r1[1]
    t[i + 1] = _mm256_unpackhi_epi32(r0, r1);  // r0[2] r1[2] r0[3] r1[3]
  }
  for (int i = 0; i < 8; i += 4) {
    u[i] = _mm256_unpacklo_epi64(t[i], t[i + 2]);      // dword 0 (4) of blocks i..i+3
    u[i + 1] = _mm256_unpackhi_epi64(t[i], t[i + 2]);  // dword 1 (5)
    u[i + 2] = _mm256_unpacklo_epi64(t[i + 1], t[i + 3]);  // dword 2 (6)
    u[i + 3] = _mm256_unpackhi_epi64(t[i + 1], t[i + 3]);  // dword 3 (7)
  }
  for (int j = 0; j < 4; j++) {
    _mm256_store_si256(out + j, _mm256_permute2x128_si256(u[j], u[4 + j], 0x20));
    _mm256_store_si256(out + 4 + j, _mm256_permute2x128_si256(u[j], u[4 + j], 0x31));
  }
}

// The quants of n elements (n / 32 blocks) in the layout above.
POCKET_INLINE void interleave_blocks(const int8_t* src, int64_t n, int8_t* dst) {
  const int64_t grouped = n / 256 * 256;
  for (int64_t i = 0; i < grouped; i += 256) {
    alignas(32) int8_t tmp[256];
    std::memcpy(tmp, src + i, 256);
    transpose_dwords_8x8(tmp, dst + i);
  }
  std::memcpy(dst + grouped, src + grouped, size_t(n - grouped));
}

struct Unpacked32Row {
  int8_t* q;       // n quants (signed; unsigned for the Q8_1 formats), interleaved
  uint8_t* q_abs;  // n: |q| (signed formats), interleaved
  float* d;        // n / 32
  float* m;        // n / 32: Q8_1 formats' block minimum
};

Unpacked32Row unpacked32_row(int64_t n, int index) {
  thread_local Scratch buffers[8];
  uint8_t* storage = buffers[index].get(2 * n + 2 * (n / 32) * 4);
  Unpacked32Row r;
  r.q = reinterpret_cast<int8_t*>(storage);
  r.q_abs = storage + n;
  r.d = reinterpret_cast<float*>(storage + 2 * n);
  r.m = r.d + n / 32;
  return r;
}

template <class W, bool kWithMin>
void unpack32(const uint8_t* row, int64_t nb, const Unpacked32Row& out) {
  alignas(32) int8_t plain[256];
  auto put = [&](int64_t b, __m256i q, int8_t* to) POCKET_LAMBDA_INLINE {
    store256(to, q);
    if constexpr (kWithMin) out.m[b] = f16_at(row + b * W::kBytes + 2);
    out.d[b] = f16_at(row + b * W::kBytes);
  };
  int64_t b = 0;
  for (; b + 8 <= nb; b += 8) {
    for (int i = 0; i < 8; i++) put(b + i, W::decode(row + (b + i) * W::kBytes), plain + 32 * i);
    transpose_dwords_8x8(plain, out.q + 32 * b);
  }
  for (; b < nb; b++) put(b, W::decode(row + b * W::kBytes), out.q + 32 * b);
  if constexpr (!kWithMin) {
    for (int64_t i = 0; i < nb; i++) {
      const __m256i q = _mm256_load_si256(reinterpret_cast<const __m256i*>(out.q + 32 * i));
      store256(out.q_abs + 32 * i, _mm256_sign_epi8(q, q));
    }
  }
}

// Per-block factors dw[b] * da_r[b] for the rows of a group, 8 blocks at a time.
POCKET_INLINE void block_factors(const float* dw, const float* da, int64_t nb, float* out) {
  int64_t b = 0;
  for (; b + 8 <= nb; b += 8)
    _mm256_store_ps(out + b, _mm256_mul_ps(_mm256_loadu_ps(dw + b), _mm256_loadu_ps(da + b)));
  for (; b < nb; b++) out[b] = dw[b] * da[b];
}

// f: per-row scratch of at least RA * stride floats (stride a multiple of 8).
// The activation rows' quants are interleaved like the weights'.
template <int RA, bool kWithMin>
void unpacked32_dot(const Unpacked32Row& w, const ActRow* a, int64_t nb, float* f, int64_t stride,
                    float* out) {
  for (int r = 0; r < RA; r++) block_factors(w.d, a[r].d, nb, f + r * stride);
  __m256 acc[RA];
  for (int r = 0; r < RA; r++) acc[r] = _mm256_setzero_ps();
  // u8 x s8 products of one vector position, as 8 x i32 (lane i: block i's part).
  auto products = [&](int64_t at, int r, __m256i q, __m256i q_abs) POCKET_LAMBDA_INLINE {
    const __m256i x = load256(a[r].qs + at);
    if constexpr (kWithMin)
      return dot_u8s8(q, x);
    else
      return dot_u8s8(q_abs, _mm256_sign_epi8(x, q));
  };
  auto load_q = [&](int64_t at, __m256i* q, __m256i* q_abs) POCKET_LAMBDA_INLINE {
    *q = _mm256_load_si256(reinterpret_cast<const __m256i*>(w.q + at));
    if constexpr (!kWithMin)
      *q_abs = _mm256_load_si256(reinterpret_cast<const __m256i*>(w.q_abs + at));
  };
  int64_t b = 0;
  for (; b + 8 <= nb; b += 8) {
    __m256i sumi[RA];
    for (int r = 0; r < RA; r++) sumi[r] = _mm256_setzero_si256();
#pragma GCC unroll 2
    for (int j = 0; j < 8; j++) {
      __m256i q, q_abs = _mm256_setzero_si256();
      load_q(32 * (b + j), &q, &q_abs);
      for (int r = 0; r < RA; r++)
        sumi[r] = _mm256_add_epi32(sumi[r], products(32 * (b + j), r, q, q_abs));
    }
    for (int r = 0; r < RA; r++)
      acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi[r]), _mm256_loadu_ps(f + r * stride + b),
                               acc[r]);
  }
  for (; b < nb; b++) {  // element order
    __m256i q, q_abs = _mm256_setzero_si256();
    load_q(32 * b, &q, &q_abs);
    for (int r = 0; r < RA; r++)
      acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(products(32 * b, r, q, q_abs)),
                               _mm256_broadcast_ss(f + r * stride + b), acc[r]);
  }
  for (int r = 0; r < RA; r++) {
    float sum = hsum(acc[r]);
    if constexpr (kWithMin) {  // + sum_b mw[b] * s[b]
      __m256 mins = _mm256_setzero_ps();
      int64_t i = 0;
      for (; i + 8 <= nb; i += 8)
        mins = _mm256_fmadd_ps(_mm256_loadu_ps(w.m + i), _mm256_loadu_ps(a[r].s + i), mins);
      float tail = 0.0f;
      for (; i < nb; i++) tail += w.m[i] * a[r].s[i];
      sum += hsum(mins) + tail;
    }
    out[r] = sum;
  }
}

template <class W, bool kWithMin>
void unpacked32_block(const uint8_t* w, uint64_t w_row_bytes, int64_t n_out, const uint8_t* act,
                      uint64_t act_stride, int64_t n_act, int64_t n, float* y, int64_t y_stride) {
  const ActLayout L = act_layout(kWithMin ? TensorType::Q8_1 : TensorType::Q8_0, n);
  const int64_t nb = n / 32;
  const int64_t block = weight_block_rows(uint64_t(2 * n));
  Unpacked32Row u[8];
  for (int64_t i = 0; i < block; i++) u[i] = unpacked32_row(n, int(i));
  const int64_t stride = (nb + 7) / 8 * 8;
  thread_local Scratch factors_storage, act_storage;
  float* factors = reinterpret_cast<float*>(factors_storage.get(4 * stride * 4));
  // The chunk's activation quants, interleaved (each row a multiple of 32 bytes).
  int8_t* act_q = reinterpret_cast<int8_t*>(act_storage.get(n_act * n));
  for (int64_t r = 0; r < n_act; r++)
    interleave_blocks(act_row(act + uint64_t(r) * act_stride, L).qs, n, act_q + r * n);
  ActRow rows[4];
  float out[4];
  for (int64_t o0 = 0; o0 < n_out; o0 += block) {
    const int64_t nw = n_out - o0 < block ? n_out - o0 : block;
    for (int64_t i = 0; i < nw; i++)
      unpack32<W, kWithMin>(w + uint64_t(o0 + i) * w_row_bytes, nb, u[i]);
    for (int64_t r = 0; r < n_act; r += 4) {
      const int count = int(n_act - r < 4 ? n_act - r : 4);
      for (int i = 0; i < count; i++) {
        rows[i] = act_row(act + uint64_t(r + i) * act_stride, L);
        rows[i].qs = act_q + (r + i) * n;
      }
      for (int64_t i = 0; i < nw; i++) {
        if (count == 4) {
          unpacked32_dot<4, kWithMin>(u[i], rows, nb, factors, stride, out);
        } else {
          for (int j = 0; j < count; j++)
            unpacked32_dot<1, kWithMin>(u[i], rows + j, nb, factors, stride, out + j);
        }
        for (int j = 0; j < count; j++) y[(r + j) * y_stride + o0 + i] = out[j];
      }
    }
  }
}

// The K-quants that take the unpacked path for many activation rows.
using Unpacker = void (*)(const uint8_t*, int64_t, const UnpackedRow&);
template <class K>
constexpr Unpacker kUnpacker = nullptr;
template <>
constexpr Unpacker kUnpacker<Q45K<false>> = unpack_q45_k<false>;
template <>
constexpr Unpacker kUnpacker<Q45K<true>> = unpack_q45_k<true>;
template <>
constexpr Unpacker kUnpacker<Q2K> = unpack_q2_k;
template <>
constexpr Unpacker kUnpacker<Q3K> = unpack_q3_k;
template <>
constexpr Unpacker kUnpacker<Q6K> = unpack_q6_k;

// Asks for the weight bytes kPrefetchBytes ahead of the rows about to be read
// (rows are contiguous): keeps more DRAM requests in flight than the hardware
// prefetcher alone while the kernel computes (decode reads each weight once).
constexpr int kPrefetchBytes = 4096;
POCKET_INLINE void prefetch_ahead(const uint8_t* row, uint64_t row_bytes,
                                  uint64_t distance = kPrefetchBytes) {
  const uint8_t* p = row + distance;
  for (uint64_t off = 0; off < row_bytes; off += 64)
    _mm_prefetch(reinterpret_cast<const char*>(p + off), _MM_HINT_T0);
}

// The first kPrefetchBytes of a claim's weights (prefetch_ahead covers the
// rest): a claim starts where the hardware prefetcher has no stream yet.
POCKET_INLINE void prefetch_start(const uint8_t* w, uint64_t bytes) {
  if (bytes > uint64_t(kPrefetchBytes)) bytes = kPrefetchBytes;
  for (uint64_t off = 0; off < bytes; off += 64)
    _mm_prefetch(reinterpret_cast<const char*>(w + off), _MM_HINT_T0);
}

// Weight rows per pass of the decode kernels (dot_rows).
constexpr int kDecodeRows = 2;

// Decode passes up to this many bytes get their prefetches in one burst
// (prefetch_ahead) before the pass; longer ones (rows of 2048-3584 inputs:
// ffn_down, ssm_out, attn_output) have dot_rows prefetch each block as it reads
// one: a burst of ~90 prefetches filled the core's miss buffers and stalled the
// computation (the 3.0 MB Q6_K ffn_down of the 0.8b q4_k_m file streamed at
// 13 GB/s, spread at 19-23). Spreading the short passes too was slower
// (q4_k_m tg 31.3 vs 35.4 t/s burst-short/spread-long, same quiet run).
constexpr uint64_t kMaxBurstPrefetchBytes = 3000;

// One weight row against up to four activation rows at a time.
template <class K>
void integer_block(TensorType, const uint8_t* w, uint64_t w_row_bytes, int64_t n_out,
                   const uint8_t* act, uint64_t act_stride, int64_t n_act, int64_t n, float* y,
                   int64_t y_stride) {
  if constexpr (kUnpacker<K> != nullptr) {
    if (n_act >= kUnpackMinRows)
      return unpacked_block<kUnpacker<K>>(w, w_row_bytes, n_out, act, act_stride, n_act, n, y,
                                          y_stride);
  }
  if constexpr (requires { typename K::Weights; }) {
    if (n_act >= kUnpackMinRows)
      return unpacked32_block<typename K::Weights, K::kActType == TensorType::Q8_1>(
          w, w_row_bytes, n_out, act, act_stride, n_act, n, y, y_stride);
  }
  const ActLayout L = act_layout(K::kActType, n);
  const int64_t block = weight_block_rows(w_row_bytes);
  if constexpr (requires { &K::template dot_rows<kDecodeRows>; }) {
    if (n_act == 1) {  // decode: kDecodeRows weight rows per pass
      const uint64_t pass_bytes = uint64_t(kDecodeRows) * w_row_bytes;
      const bool spread = pass_bytes > kMaxBurstPrefetchBytes;
      prefetch_start(w, uint64_t(n_out) * w_row_bytes);
      const ActRow a = act_row(act, L);
      float out[kDecodeRows];
      int64_t o = 0;
      for (; o + kDecodeRows <= n_out; o += kDecodeRows) {
        const uint8_t* wrow = w + uint64_t(o) * w_row_bytes;
        if (!spread) prefetch_ahead(wrow, pass_bytes);
        K::template dot_rows<kDecodeRows>(wrow, w_row_bytes, a, n, out,
                                          spread ? uint64_t(kPrefetchBytes) : 0);
        for (int k = 0; k < kDecodeRows; k++) y[o + k] = out[k];
      }
      for (; o < n_out; o++) {
        K::template dot_rows<1>(w + uint64_t(o) * w_row_bytes, w_row_bytes, a, n, out);
        y[o] = out[0];
      }
      return;
    }
  }
  prefetch_start(w, uint64_t(n_out) * w_row_bytes);
  ActRow rows[4];
  float out[4];
  for (int64_t o0 = 0; o0 < n_out; o0 += block) {
    const int64_t nw = n_out - o0 < block ? n_out - o0 : block;
    for (int64_t r = 0; r < n_act; r += 4) {
      const int count = int(n_act - r < 4 ? n_act - r : 4);
      for (int i = 0; i < count; i++) rows[i] = act_row(act + uint64_t(r + i) * act_stride, L);
      for (int64_t i = 0; i < nw; i++) {
        const uint8_t* wrow = w + uint64_t(o0 + i) * w_row_bytes;
        if (r == 0) prefetch_ahead(wrow, w_row_bytes);  // spread out, one row at a time
        switch (count) {
          case 4:
            K::template dot<4>(wrow, rows, n, out);
            break;
          case 3:
            K::template dot<3>(wrow, rows, n, out);
            break;
          case 2:
            K::template dot<2>(wrow, rows, n, out);
            break;
          default:
            K::template dot<1>(wrow, rows, n, out);
            break;
        }
        for (int j = 0; j < count; j++) y[(r + j) * y_stride + o0 + i] = out[j];
      }
    }
  }
}

// ---------------------------------------------------------------------------
// Float path.

struct F32Weights {
  static POCKET_INLINE __m256 load8(const uint8_t* row, int64_t i) {
    return _mm256_loadu_ps(reinterpret_cast<const float*>(row) + i);
  }
  static POCKET_INLINE float at(const uint8_t* row, int64_t i) {
    float v;
    std::memcpy(&v, row + 4 * i, 4);
    return v;
  }
};
struct F16Weights {
  static POCKET_INLINE __m256 load8(const uint8_t* row, int64_t i) {
    return _mm256_cvtph_ps(load128(row + 2 * i));
  }
  static POCKET_INLINE float at(const uint8_t* row, int64_t i) { return f16_at(row + 2 * i); }
};
struct BF16Weights {
  static POCKET_INLINE __m256 load8(const uint8_t* row, int64_t i) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(load128(row + 2 * i)), 16));
  }
  static POCKET_INLINE float at(const uint8_t* row, int64_t i) {
    uint16_t h;
    std::memcpy(&h, row + 2 * i, 2);
    return bf16_to_f32(h);
  }
};

// RW weight rows x RA activation rows of f32 dot products.
template <class W, int RW, int RA>
void float_tile(const uint8_t* w, uint64_t w_row_bytes, const float* x, int64_t x_stride, int64_t n,
                float* y, int64_t y_stride) {
  __m256 acc[RW][RA];
  for (int k = 0; k < RW; k++)
    for (int r = 0; r < RA; r++) acc[k][r] = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 wv[RW];
    for (int k = 0; k < RW; k++) wv[k] = W::load8(w + uint64_t(k) * w_row_bytes, i);
    for (int r = 0; r < RA; r++) {
      const __m256 xv = _mm256_loadu_ps(x + r * x_stride + i);
      for (int k = 0; k < RW; k++) acc[k][r] = _mm256_fmadd_ps(wv[k], xv, acc[k][r]);
    }
  }
  for (int k = 0; k < RW; k++)
    for (int r = 0; r < RA; r++) {
      float s = hsum(acc[k][r]);
      for (int64_t j = i; j < n; j++)
        s += W::at(w + uint64_t(k) * w_row_bytes, j) * x[r * x_stride + j];
      y[r * y_stride + k] = s;
    }
}

constexpr int kFloatRW = 3;  // weight rows per tile
constexpr int kFloatRA = 4;  // activation rows per tile

template <class W>
using FloatTile = void (*)(const uint8_t*, uint64_t, const float*, int64_t, int64_t, float*,
                           int64_t);

template <class W, int RW, int... RA>
constexpr void fill_tile_row(FloatTile<W> (&row)[kFloatRA], std::integer_sequence<int, RA...>) {
  ((row[RA] = float_tile<W, RW, RA + 1>), ...);
}
template <class W, int... RW>
constexpr void fill_tiles(FloatTile<W> (&t)[kFloatRW][kFloatRA],
                          std::integer_sequence<int, RW...>) {
  (fill_tile_row<W, RW + 1>(t[RW], std::make_integer_sequence<int, kFloatRA>{}), ...);
}

template <class W>
void float_block(TensorType, const uint8_t* w, uint64_t w_row_bytes, int64_t n_out,
                 const uint8_t* act, uint64_t act_stride, int64_t n_act, int64_t n, float* y,
                 int64_t y_stride) {
  static FloatTile<W> tiles[kFloatRW][kFloatRA];
  static const bool filled =
      (fill_tiles<W>(tiles, std::make_integer_sequence<int, kFloatRW>{}), true);
  (void)filled;
  const auto* x = reinterpret_cast<const float*>(act);
  const int64_t x_stride = int64_t(act_stride / 4);
  // Blocks of weight rows (about 16 KiB, whole tiles) stay in L1 while the
  // activation groups of the chunk pass over them.
  int64_t block = weight_block_rows(w_row_bytes) * 2 / kFloatRW * kFloatRW;
  if (block < kFloatRW) block = kFloatRW;
  prefetch_start(w, uint64_t(n_out) * w_row_bytes);
  for (int64_t o0 = 0; o0 < n_out; o0 += block) {
    const int64_t o1 = n_out < o0 + block ? n_out : o0 + block;
    for (int64_t r = 0; r < n_act; r += kFloatRA) {
      const int ra = int(n_act - r < kFloatRA ? n_act - r : kFloatRA);
      for (int64_t o = o0; o < o1; o += kFloatRW) {
        const int rw = int(o1 - o < kFloatRW ? o1 - o : kFloatRW);
        if (r == 0) prefetch_ahead(w + uint64_t(o) * w_row_bytes, uint64_t(rw) * w_row_bytes);
        tiles[rw - 1][ra - 1](w + uint64_t(o) * w_row_bytes, w_row_bytes, x + r * x_stride,
                              x_stride, n, y + r * y_stride + o, y_stride);
      }
    }
  }
}

template <class K>
MatmulKernel integer_kernel() {
  MatmulKernel k;
  k.act_type = K::kActType;
  k.act_row_bytes = act_row_bytes;
  k.quantize_act = quantize_act;
  k.block = integer_block<K>;
  return k;
}

template <class W>
MatmulKernel float_kernel(TensorType t) {
  MatmulKernel k;
  k.act_type = t;
  k.block = float_block<W>;
  return k;
}

}  // namespace

void interleave_blocks_for_test(const int8_t* src, int64_t n, int8_t* dst) {
  interleave_blocks(src, n, dst);
}

MatmulKernel kernel_for(TensorType weight_type) {
  switch (weight_type) {
    case TensorType::F32:
      return float_kernel<F32Weights>(weight_type);
    case TensorType::F16:
      return float_kernel<F16Weights>(weight_type);
    case TensorType::BF16:
      return float_kernel<BF16Weights>(weight_type);
    case TensorType::Q8_0:
      return integer_kernel<WithQ8_0<Q8_0Weights>>();
    case TensorType::Q4_0:
      return integer_kernel<WithQ8_0<Q4_0Weights>>();
    case TensorType::Q5_0:
      return integer_kernel<WithQ8_0<Q5_0Weights>>();
    case TensorType::IQ4_NL:
      return integer_kernel<WithQ8_0<IQ4_NLWeights>>();
    case TensorType::Q4_1:
      return integer_kernel<WithQ8_1<Q4_1Weights>>();
    case TensorType::Q5_1:
      return integer_kernel<WithQ8_1<Q5_1Weights>>();
    case TensorType::Q2_K:
      return integer_kernel<Q2K>();
    case TensorType::Q3_K:
      return integer_kernel<Q3K>();
    case TensorType::Q4_K:
      return integer_kernel<Q45K<false>>();
    case TensorType::Q5_K:
      return integer_kernel<Q45K<true>>();
    case TensorType::Q6_K:
      return integer_kernel<Q6K>();
    case TensorType::IQ4_XS:
      return integer_kernel<IQ4XS>();
    default:
      return MatmulKernel{};
  }
}

}  // namespace pocket::kernels::avx2

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
