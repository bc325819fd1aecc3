// Reference quantized dot products (spec/gguf.md §8): exact integer sums inside
// each block pair, scaled in f32, accumulated over blocks in f32.
#include <cmath>

#include "quant/blocks.h"
#include "quant/quant_impl.h"

namespace pocket::quant::detail {

// std::fma is one instruction where the CPU has FMA, else a slow library
// call: the Q8_0-activation dot products get a copy compiled for FMA, chosen
// at load time (the result is the same bit for bit either way).
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define POCKET_FMA_CLONES [[gnu::target_clones("fma", "default")]]
#else
#define POCKET_FMA_CLONES
#endif

namespace {

inline int nibble32(const uint8_t* qs, int e) {
  return e < 16 ? (qs[e] & 0x0F) : (qs[e - 16] >> 4);
}

// Q4_0/Q5_0/Q8_0/IQ4_NL times Q8_0, where WeightQuant(block, e) is the signed
// integer weight quant. The f32 steps are those of ggml's AVX2 kernel (and of
// kernels/matmul_avx2.cpp's, except its prefill kernel on rows of 8 blocks or
// more, which sums each block before scaling it: 1.3x faster): eight lanes, lane l holding the exact integer sum
// of elements 4l..4l+3 of each block, accumulated over blocks as
// fma(f32(lane sum), dw·da, acc) (dw·da rounded first), then the lanes summed
// as (l0+l4)+(l2+l6) + (l1+l5)+(l3+l7). The order matters beyond f32 noise:
// the output goes straight into the residual stream, and a one-ulp difference
// there moves a later activation quant across a rounding boundary now and
// then. With this order the golden Q8_0 model's 8-bit-activation logits are
// the reference's bit for bit (golden README section 2; runtime/golden_test).
template <typename Block, typename WeightQuant>
[[gnu::always_inline]] inline float dot_with_q8_0(const uint8_t* w, const uint8_t* a, int64_t nb,
                                                  WeightQuant quant) {
  const auto* wb = reinterpret_cast<const Block*>(w);
  const auto* ab = reinterpret_cast<const BlockQ8_0*>(a);
  float lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (int64_t b = 0; b < nb; ++b) {
    const float scale = load_f16(wb[b].d) * load_f16(ab[b].d);
    int products[kQK];
    for (int e = 0; e < kQK; ++e) products[e] = quant(wb[b], e) * ab[b].qs[e];
    for (int l = 0; l < 8; ++l) {
      const int* p = products + 4 * l;
      lanes[l] = std::fma(float((p[0] + p[1]) + (p[2] + p[3])), scale, lanes[l]);
    }
  }
  return ((lanes[0] + lanes[4]) + (lanes[2] + lanes[6])) +
         ((lanes[1] + lanes[5]) + (lanes[3] + lanes[7]));
}

// Q4_1/Q5_1 times Q8_1: (dw·da)·sumi + mw·s, with s = da·Σqa stored in the activation.
template <typename Block, typename WeightQuant>
float dot_with_q8_1(const uint8_t* w, const uint8_t* a, int64_t nb, WeightQuant quant) {
  const auto* wb = reinterpret_cast<const Block*>(w);
  const auto* ab = reinterpret_cast<const BlockQ8_1*>(a);
  float sum = 0.0f;
  for (int64_t b = 0; b < nb; ++b) {
    int sumi = 0;
    for (int e = 0; e < kQK; ++e) sumi += quant(wb[b], e) * ab[b].qs[e];
    sum += (load_f16(wb[b].d) * load_f16(ab[b].d)) * float(sumi) +
           load_f16(wb[b].m) * load_f16(ab[b].s);
  }
  return sum;
}

inline int q5_quant(const uint8_t* qh, const uint8_t* qs, int e) {
  return nibble32(qs, e) | int(((load_u32(qh) >> e) & 1) << 4);
}

inline int bsum(const BlockQ8_K& a, int k) {
  return load_i16(a.bsums + 2 * k);
}

}  // namespace

POCKET_FMA_CLONES float vec_dot_q4_0_q8_0(const uint8_t* w, const uint8_t* a, int64_t nb) {
  return dot_with_q8_0<BlockQ4_0>(
      w, a, nb, [](const BlockQ4_0& blk, int e) { return nibble32(blk.qs, e) - 8; });
}

POCKET_FMA_CLONES float vec_dot_q5_0_q8_0(const uint8_t* w, const uint8_t* a, int64_t nb) {
  return dot_with_q8_0<BlockQ5_0>(
      w, a, nb, [](const BlockQ5_0& blk, int e) { return q5_quant(blk.qh, blk.qs, e) - 16; });
}

POCKET_FMA_CLONES float vec_dot_q8_0_q8_0(const uint8_t* w, const uint8_t* a, int64_t nb) {
  return dot_with_q8_0<BlockQ8_0>(w, a, nb,
                                  [](const BlockQ8_0& blk, int e) { return int(blk.qs[e]); });
}

POCKET_FMA_CLONES float vec_dot_iq4_nl_q8_0(const uint8_t* w, const uint8_t* a, int64_t nb) {
  return dot_with_q8_0<BlockIQ4_NL>(
      w, a, nb, [](const BlockIQ4_NL& blk, int e) { return int(kIQ4Values[nibble32(blk.qs, e)]); });
}

float vec_dot_q4_1_q8_1(const uint8_t* w, const uint8_t* a, int64_t nb) {
  return dot_with_q8_1<BlockQ4_1>(w, a, nb,
                                  [](const BlockQ4_1& blk, int e) { return nibble32(blk.qs, e); });
}

float vec_dot_q5_1_q8_1(const uint8_t* w, const uint8_t* a, int64_t nb) {
  return dot_with_q8_1<BlockQ5_1>(
      w, a, nb, [](const BlockQ5_1& blk, int e) { return q5_quant(blk.qh, blk.qs, e); });
}

float vec_dot_q2_k_q8_k(const uint8_t* w, const uint8_t* a, int64_t nb) {
  const auto* wb = reinterpret_cast<const BlockQ2_K*>(w);
  const auto* ab = reinterpret_cast<const BlockQ8_K*>(a);
  float sum = 0.0f;
  for (int64_t b = 0; b < nb; ++b) {
    const BlockQ2_K& x = wb[b];
    const BlockQ8_K& y = ab[b];
    int isum = 0, summs = 0;
    for (int j = 0; j < 16; ++j) {
      int sub = 0;
      for (int i = 0; i < 16; ++i) {
        const int e = 16 * j + i;
        const int n = (x.qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
        sub += n * y.qs[e];
      }
      isum += (x.scales[j] & 0x0F) * sub;
      summs += (x.scales[j] >> 4) * bsum(y, j);
    }
    const float dy = load_f32(y.d);
    sum += (dy * load_f16(x.d)) * float(isum) - (dy * load_f16(x.dmin)) * float(summs);
  }
  return sum;
}

float vec_dot_q3_k_q8_k(const uint8_t* w, const uint8_t* a, int64_t nb) {
  const auto* wb = reinterpret_cast<const BlockQ3_K*>(w);
  const auto* ab = reinterpret_cast<const BlockQ8_K*>(a);
  float sum = 0.0f;
  for (int64_t b = 0; b < nb; ++b) {
    const BlockQ3_K& x = wb[b];
    const BlockQ8_K& y = ab[b];
    int isum = 0;
    for (int j = 0; j < 16; ++j) {
      int sub = 0;
      for (int i = 0; i < 16; ++i) {
        const int e = 16 * j + i;
        const int low = (x.qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
        const int n = low - (((x.hmask[e % 32] >> (e / 32)) & 1) ? 0 : 4);
        sub += n * y.qs[e];
      }
      isum += (q3_k_scale_code(j, x.scales) - 32) * sub;
    }
    sum += (load_f16(x.d) * load_f32(y.d)) * float(isum);
  }
  return sum;
}

float vec_dot_q4_k_q8_k(const uint8_t* w, const uint8_t* a, int64_t nb) {
  const auto* wb = reinterpret_cast<const BlockQ4_K*>(w);
  const auto* ab = reinterpret_cast<const BlockQ8_K*>(a);
  float sum = 0.0f;
  for (int64_t b = 0; b < nb; ++b) {
    const BlockQ4_K& x = wb[b];
    const BlockQ8_K& y = ab[b];
    int isum = 0, summs = 0;
    for (int j = 0; j < 8; ++j) {
      int sc, m;
      scale_min_k4(j, x.scales, &sc, &m);
      const uint8_t* q = x.qs + 32 * (j / 2);
      const int shift = 4 * (j % 2);
      int sub = 0;
      for (int t = 0; t < 32; ++t) sub += ((q[t] >> shift) & 0x0F) * y.qs[32 * j + t];
      isum += sc * sub;
      summs += m * (bsum(y, 2 * j) + bsum(y, 2 * j + 1));
    }
    const float dy = load_f32(y.d);
    sum += (load_f16(x.d) * dy) * float(isum) - (load_f16(x.dmin) * dy) * float(summs);
  }
  return sum;
}

float vec_dot_q5_k_q8_k(const uint8_t* w, const uint8_t* a, int64_t nb) {
  const auto* wb = reinterpret_cast<const BlockQ5_K*>(w);
  const auto* ab = reinterpret_cast<const BlockQ8_K*>(a);
  float sum = 0.0f;
  for (int64_t b = 0; b < nb; ++b) {
    const BlockQ5_K& x = wb[b];
    const BlockQ8_K& y = ab[b];
    int isum = 0, summs = 0;
    for (int j = 0; j < 8; ++j) {
      int sc, m;
      scale_min_k4(j, x.scales, &sc, &m);
      const uint8_t* q = x.qs + 32 * (j / 2);
      const int shift = 4 * (j % 2);
      int sub = 0;
      for (int t = 0; t < 32; ++t) {
        const int n = ((q[t] >> shift) & 0x0F) + 16 * ((x.qh[t] >> j) & 1);
        sub += n * y.qs[32 * j + t];
      }
      isum += sc * sub;
      summs += m * (bsum(y, 2 * j) + bsum(y, 2 * j + 1));
    }
    const float dy = load_f32(y.d);
    sum += (load_f16(x.d) * dy) * float(isum) - (load_f16(x.dmin) * dy) * float(summs);
  }
  return sum;
}

float vec_dot_q6_k_q8_k(const uint8_t* w, const uint8_t* a, int64_t nb) {
  const auto* wb = reinterpret_cast<const BlockQ6_K*>(w);
  const auto* ab = reinterpret_cast<const BlockQ8_K*>(a);
  float sum = 0.0f;
  for (int64_t b = 0; b < nb; ++b) {
    const BlockQ6_K& x = wb[b];
    const BlockQ8_K& y = ab[b];
    int isum = 0;
    for (int j = 0; j < 16; ++j) {
      int sub = 0;
      for (int i = 0; i < 16; ++i) {
        const int e = 16 * j + i;
        const int half = e / 128, g = (e % 128) / 32, t = e % 32;
        const int low = (x.ql[64 * half + 32 * (g % 2) + t] >> (4 * (g / 2))) & 0x0F;
        const int high = (x.qh[32 * half + t] >> (2 * g)) & 3;
        sub += ((low | (high << 4)) - 32) * y.qs[e];
      }
      isum += x.scales[j] * sub;
    }
    sum += (load_f16(x.d) * load_f32(y.d)) * float(isum);
  }
  return sum;
}

float vec_dot_iq4_xs_q8_k(const uint8_t* w, const uint8_t* a, int64_t nb) {
  const auto* wb = reinterpret_cast<const BlockIQ4_XS*>(w);
  const auto* ab = reinterpret_cast<const BlockQ8_K*>(a);
  float sum = 0.0f;
  for (int64_t b = 0; b < nb; ++b) {
    const BlockIQ4_XS& x = wb[b];
    const BlockQ8_K& y = ab[b];
    const float d = load_f16(x.d) * load_f32(y.d);
    for (int j = 0; j < 8; ++j) {
      const uint8_t* q = x.qs + 16 * j;
      int sub = 0;
      for (int t = 0; t < 32; ++t) sub += kIQ4Values[nibble32(q, t)] * y.qs[32 * j + t];
      sum += (d * float(iq4_xs_scale_code(j, x) - 32)) * float(sub);
    }
  }
  return sum;
}

}  // namespace pocket::quant::detail
