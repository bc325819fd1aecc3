// K-quant and IQ4 reference quantizers without importance matrix (spec/gguf.md
// §7). Written literally from the spec — f32 arithmetic, every sum accumulated
// sequentially in element order, products in the order written, and the
// project builds with -ffp-contract=off — which reproduces ggml's reference
// output byte for byte. Do not "optimise" the sums into another order: that
// changes some output bytes.
#include <cmath>
#include <type_traits>

#include "quant/blocks.h"
#include "quant/quant_impl.h"
#include "quant/rounding.h"

namespace pocket::quant::detail {

namespace {

// Sub-block scales whose magnitude is below this are treated as all zero.
constexpr float kGroupMaxEps = 1e-15f;

// ---- Lanes: the sub-block searches below run several independent sub-blocks
// side by side. A lane pack V is either a plain float (one lane, the scalar
// form) or F4, four f32 lanes as a GCC/Clang vector whose operations are
// element-wise IEEE operations — so every lane computes exactly what the scalar
// code computes, in the same order (sequential sums included). The packs only
// let the hardware use SIMD and overlap the latency of the sequential sums.
typedef float F4 __attribute__((vector_size(16)));
typedef int32_t M4 __attribute__((vector_size(16)));

template <typename V>
constexpr int kWidth = sizeof(V) / sizeof(float);
template <typename V>
using Mask = decltype(V{} < V{});  // bool or M4

template <typename V>
inline V splat(float x) {
  if constexpr (std::is_same_v<V, float>) {
    return x;
  } else {
    return F4{x, x, x, x};
  }
}
inline float lane(float v, int) {
  return v;
}
inline float lane(F4 v, int e) {
  return v[e];
}
inline void set_lane(float& v, int, float x) {
  v = x;
}
inline void set_lane(F4& v, int e, float x) {
  v[e] = x;
}
inline bool lane(bool m, int) {
  return m;
}
inline bool lane(M4 m, int e) {
  return m[e] != 0;
}

inline float blend(bool m, float a, float b) {
  return m ? a : b;
}
inline F4 blend(M4 m, F4 a, F4 b) {
  return (F4)(((M4)a & m) | ((M4)b & ~m));
}
inline bool mask_and(bool a, bool b) {
  return a && b;
}
inline M4 mask_and(M4 a, M4 b) {
  return a & b;
}
inline bool mask_not(bool a) {
  return !a;
}
inline M4 mask_not(M4 a) {
  return ~a;
}
inline bool mask_any(bool a) {
  return a;
}
inline bool mask_any(M4 a) {
  return (a[0] | a[1] | a[2] | a[3]) != 0;
}
inline float abs_value(float v) {
  return std::fabs(v);
}
inline F4 abs_value(F4 v) {
  return (F4)((M4)v & 0x7FFFFFFF);
}

// Rounds v to the nearest integer (ties to even) after clamping it to [lo, hi]
// (integers), as f32. Equal to clamp(nearest_int(v), lo, hi) for every v; a
// NaN gives lo.
template <typename V>
inline V round_clamped(V v, V lo, V hi) {
  V c = blend(v > lo, v, lo);
  c = blend(c < hi, c, hi);
  const V magic = splat<V>(12582912.0f);  // 1.5·2^23: exact RNE for |c| < 2^22
  return (c + magic) - magic;
}

// Sub-block k's element i into / out of lane-major storage t[i][pack].
template <typename V, int kN, int kPacks>
void to_lanes(const float* x, V (&t)[kN][kPacks]) {
  for (int k = 0; k < kPacks * kWidth<V>; ++k)
    for (int i = 0; i < kN; ++i) set_lane(t[i][k / kWidth<V>], k % kWidth<V>, x[k * kN + i]);
}

// §7.1 "qkx2": fits x ≈ scale·L + lo (L in 0..nmax, lo ≤ 0) by trying a grid of
// inverse scales and refitting by weighted least squares, on kPacks·width(V)
// sub-blocks of kN values at once (x and w hold them one after the other).
// Writes each sub-block's L (0..nmax), scale, and min (= -lo, the amount
// subtracted at dequantization).
template <typename V, int kPacks, int kN, bool kMad>
void make_qkx2_quants(int nmax, const float* x, const float* w, float rmin, float rdelta, int nstep,
                      uint8_t* L, float* scale_out, float* min_out) {
  V xt[kN][kPacks], wt[kN][kPacks], lt[kN][kPacks], laux[kN][kPacks];
  to_lanes(x, xt);
  to_lanes(w, wt);
  const V zero = splat<V>(0.0f), vnmax = splat<V>(float(nmax));
  const auto err = [](V diff) {
    if constexpr (kMad) {
      return abs_value(diff);
    } else {
      return diff * diff;
    }
  };

  V lo[kPacks], hi[kPacks], sum_w[kPacks], sum_x[kPacks];
  for (int p = 0; p < kPacks; ++p) {
    lo[p] = hi[p] = xt[0][p];
    sum_w[p] = wt[0][p];
    sum_x[p] = sum_w[p] * xt[0][p];
  }
  for (int i = 1; i < kN; ++i)
    for (int p = 0; p < kPacks; ++p) {
      lo[p] = blend(xt[i][p] < lo[p], xt[i][p], lo[p]);
      hi[p] = blend(xt[i][p] > hi[p], xt[i][p], hi[p]);
      sum_w[p] += wt[i][p];
      sum_x[p] += wt[i][p] * xt[i][p];
    }
  // A flat sub-block (hi == lo) gets L = 0, scale 0 and takes no candidate; its
  // lane still computes (harmless infinities and NaNs) to keep the code branch-free.
  Mask<V> flat[kPacks];
  V scale[kPacks], best[kPacks], iscale[kPacks];
  for (int p = 0; p < kPacks; ++p) {
    lo[p] = blend(lo[p] > zero, zero, lo[p]);
    flat[p] = hi[p] == lo[p];
    iscale[p] = vnmax / (hi[p] - lo[p]);
    scale[p] = splat<V>(1.0f) / iscale[p];
    best[p] = zero;
  }
  for (int i = 0; i < kN; ++i)
    for (int p = 0; p < kPacks; ++p) {
      const V l = round_clamped(iscale[p] * (xt[i][p] - lo[p]), zero, vnmax);
      lt[i][p] = l;
      best[p] += wt[i][p] * err(scale[p] * l + lo[p] - xt[i][p]);
    }
  for (int step = 0; step <= nstep; ++step) {
    // Uses the current lo, which changes whenever a candidate is adopted.
    const V num = splat<V>(rmin + rdelta * float(step) + float(nmax));
    V sum_l[kPacks], sum_l2[kPacks], sum_xl[kPacks];
    for (int p = 0; p < kPacks; ++p) {
      iscale[p] = num / (hi[p] - lo[p]);
      sum_l[p] = sum_l2[p] = sum_xl[p] = zero;
    }
    for (int i = 0; i < kN; ++i)
      for (int p = 0; p < kPacks; ++p) {
        const V l = round_clamped(iscale[p] * (xt[i][p] - lo[p]), zero, vnmax);
        laux[i][p] = l;
        const V wl = wt[i][p] * l;
        sum_l[p] += wl;
        sum_l2[p] += wl * l;
        sum_xl[p] += wl * xt[i][p];
      }
    V det[kPacks], this_scale[kPacks], this_min[kPacks], cur[kPacks];
    for (int p = 0; p < kPacks; ++p) {
      det[p] = sum_w[p] * sum_l2[p] - sum_l[p] * sum_l[p];
      const V s = (sum_w[p] * sum_xl[p] - sum_x[p] * sum_l[p]) / det[p];
      const V m = (sum_l2[p] * sum_x[p] - sum_l[p] * sum_xl[p]) / det[p];
      const Mask<V> min_positive = m > zero;
      this_scale[p] = blend(min_positive, sum_xl[p] / sum_l2[p], s);
      this_min[p] = blend(min_positive, zero, m);
      cur[p] = zero;
    }
    for (int i = 0; i < kN; ++i)
      for (int p = 0; p < kPacks; ++p)
        cur[p] += wt[i][p] * err(this_scale[p] * laux[i][p] + this_min[p] - xt[i][p]);
    for (int p = 0; p < kPacks; ++p) {
      const Mask<V> adopt = mask_and(mask_and(mask_not(flat[p]), det[p] > zero), cur[p] < best[p]);
      if (!mask_any(adopt)) continue;
      best[p] = blend(adopt, cur[p], best[p]);
      scale[p] = blend(adopt, this_scale[p], scale[p]);
      lo[p] = blend(adopt, this_min[p], lo[p]);
      for (int i = 0; i < kN; ++i) lt[i][p] = blend(adopt, laux[i][p], lt[i][p]);
    }
  }
  for (int k = 0; k < kPacks * kWidth<V>; ++k) {
    const int p = k / kWidth<V>, e = k % kWidth<V>;
    const bool is_flat = lane(flat[p], e);
    for (int i = 0; i < kN; ++i) L[k * kN + i] = is_flat ? 0 : uint8_t(lane(lt[i][p], e));
    scale_out[k] = is_flat ? 0.0f : lane(scale[p], e);
    min_out[k] = -lane(lo[p], e);
  }
}

// §7.3 per-sub-block search of Q3_K: symmetric, l in -nmax..nmax-1, weights
// x², then coordinate descent. Writes codes l + nmax (or 0 for an all-zero
// sub-block) and returns the scale.
float make_q3_quants(int n, int nmax, const float* x, int8_t* L) {
  const SignedAbsMax m = signed_absmax(x, n);
  if (m.amax < kGroupMaxEps) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.0f;
  }
  const float iscale = float(-nmax) / m.vmax;
  float sumlx = 0.0f, suml2 = 0.0f;
  for (int i = 0; i < n; ++i) {
    const int l = clamp_to(nearest_int(iscale * x[i]), -nmax, nmax - 1);
    L[i] = int8_t(l);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * float(l);
    suml2 += w * float(l) * float(l);
  }
  for (int pass = 0; pass < 5; ++pass) {
    int n_changed = 0;
    for (int i = 0; i < n; ++i) {
      const float w = x[i] * x[i];
      float slx = sumlx - w * x[i] * float(L[i]);
      if (slx > 0) {
        float sl2 = suml2 - w * float(L[i]) * float(L[i]);
        const int new_l = clamp_to(nearest_int(x[i] * sl2 / slx), -nmax, nmax - 1);
        if (new_l != L[i]) {
          slx += w * x[i] * float(new_l);
          sl2 += w * float(new_l) * float(new_l);
          if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
            L[i] = int8_t(new_l);
            sumlx = slx;
            suml2 = sl2;
            ++n_changed;
          }
        }
      }
    }
    if (n_changed == 0) break;
  }
  for (int i = 0; i < n; ++i) L[i] = int8_t(L[i] + nmax);
  return suml2 > 0 ? sumlx / suml2 : 0.0f;
}

// §7.6 "qx" search of Q6_K (weights x², candidates -(nmax + 0.1k)/vmax), on
// kPacks·width(V) sub-blocks of kN values at once like make_qkx2_quants. Writes
// codes l + nmax (0 for an all-zero sub-block) and the scale of each sub-block.
template <typename V, int kPacks, int kN>
void make_qx_quants(int nmax, const float* x, int8_t* L, float* scale_out) {
  V xt[kN][kPacks], wt[kN][kPacks], lt[kN][kPacks];
  to_lanes(x, xt);
  const V zero = splat<V>(0.0f), lo = splat<V>(float(-nmax)), hi = splat<V>(float(nmax - 1));
  V amax[kPacks], vmax[kPacks];
  for (int p = 0; p < kPacks; ++p) amax[p] = vmax[p] = zero;
  for (int i = 0; i < kN; ++i)
    for (int p = 0; p < kPacks; ++p) {
      const V a = abs_value(xt[i][p]);
      const Mask<V> larger = a > amax[p];
      amax[p] = blend(larger, a, amax[p]);
      vmax[p] = blend(larger, xt[i][p], vmax[p]);
      wt[i][p] = xt[i][p] * xt[i][p];
    }
  V iscale[kPacks], sumlx[kPacks], suml2[kPacks], scale[kPacks], best[kPacks];
  for (int p = 0; p < kPacks; ++p) {
    iscale[p] = splat<V>(float(-nmax)) / vmax[p];
    sumlx[p] = suml2[p] = zero;
  }
  for (int i = 0; i < kN; ++i)
    for (int p = 0; p < kPacks; ++p) {
      const V l = round_clamped(iscale[p] * xt[i][p], lo, hi);
      lt[i][p] = l;
      sumlx[p] += wt[i][p] * xt[i][p] * l;
      suml2[p] += wt[i][p] * l * l;
    }
  for (int p = 0; p < kPacks; ++p) {
    scale[p] = blend(suml2[p] != zero, sumlx[p] / suml2[p], zero);
    best[p] = scale[p] * sumlx[p];
  }
  for (int step = -9; step <= 9; ++step) {
    if (step == 0) continue;
    const V num = splat<V>(-(float(nmax) + 0.1f * float(step)));
    for (int p = 0; p < kPacks; ++p) {
      iscale[p] = num / vmax[p];
      sumlx[p] = suml2[p] = zero;
    }
    for (int i = 0; i < kN; ++i)
      for (int p = 0; p < kPacks; ++p) {
        const V l = round_clamped(iscale[p] * xt[i][p], lo, hi);
        sumlx[p] += wt[i][p] * xt[i][p] * l;
        suml2[p] += wt[i][p] * l * l;
      }
    for (int p = 0; p < kPacks; ++p) {
      const Mask<V> adopt = mask_and(suml2[p] > zero, sumlx[p] * sumlx[p] > best[p] * suml2[p]);
      if (!mask_any(adopt)) continue;
      scale[p] = blend(adopt, sumlx[p] / suml2[p], scale[p]);
      best[p] = blend(adopt, scale[p] * sumlx[p], best[p]);
      for (int i = 0; i < kN; ++i)
        lt[i][p] = blend(adopt, round_clamped(iscale[p] * xt[i][p], lo, hi), lt[i][p]);
    }
  }
  for (int k = 0; k < kPacks * kWidth<V>; ++k) {
    const int p = k / kWidth<V>, e = k % kWidth<V>;
    const bool zero_block = lane(amax[p], e) < kGroupMaxEps;
    for (int i = 0; i < kN; ++i)
      L[k * kN + i] = zero_block ? 0 : int8_t(int(lane(lt[i][p], e)) + nmax);
    scale_out[k] = zero_block ? 0.0f : lane(scale[p], e);
  }
}

// Packs 256 2-bit codes as Q2_K/Q3_K qs: byte 32h+t holds elements 128h+t, +32, +64, +96.
void pack_2bit_256(const uint8_t* L, uint8_t* qs) {
  for (int h = 0; h < 2; ++h) {
    const uint8_t* l = L + 128 * h;
    for (int t = 0; t < 32; ++t)
      qs[32 * h + t] = uint8_t(l[t] | (l[t + 32] << 2) | (l[t + 64] << 4) | (l[t + 96] << 6));
  }
}

// Shared part of Q4_K and Q5_K: per-sub-block qkx2 with weights rms + |x|,
// then 6-bit scale/min codes packed per §5.10 and the requantized L (0..nmax).
template <typename V>
void quantize_k_scales_mins(const float* x, int nmax, float rmin, float rdelta, int nstep,
                            uint8_t* d_out, uint8_t* dmin_out, uint8_t* scales_out, uint8_t* L) {
  float weights[kQKK];
  float scales[8];
  float mins[8];
  for (int j = 0; j < 8; ++j) {
    const float* xs = x + 32 * j;
    float sum_x2 = 0.0f;
    for (int i = 0; i < 32; ++i) sum_x2 += xs[i] * xs[i];
    const float av_x = std::sqrt(sum_x2 / 32.0f);
    for (int i = 0; i < 32; ++i) weights[32 * j + i] = av_x + std::fabs(xs[i]);
  }
  constexpr int kPacks = 8 / kWidth<V>;
  make_qkx2_quants<V, kPacks, 32, false>(nmax, x, weights, rmin, rdelta, nstep, L, scales, mins);
  float max_scale = 0.0f, max_min = 0.0f;
  for (int j = 0; j < 8; ++j) {
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  const float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f;
  const float inv_min = max_min > 0 ? 63.0f / max_min : 0.0f;
  for (int j = 0; j < 8; ++j) {
    // The reference stores nearest_int() in a uint8_t before clamping to 63.
    uint8_t ls = uint8_t(nearest_int(inv_scale * scales[j]));
    uint8_t lm = uint8_t(nearest_int(inv_min * mins[j]));
    if (ls > 63) ls = 63;
    if (lm > 63) lm = 63;
    if (j < 4) {
      scales_out[j] = ls;
      scales_out[j + 4] = lm;
    } else {
      scales_out[j + 4] = uint8_t((ls & 0x0F) | ((lm & 0x0F) << 4));
      scales_out[j - 4] |= uint8_t((ls >> 4) << 6);
      scales_out[j] |= uint8_t((lm >> 4) << 6);
    }
  }
  store_f16(d_out, max_scale / 63.0f);
  store_f16(dmin_out, max_min / 63.0f);
  const float d = load_f16(d_out);
  const float dmin = load_f16(dmin_out);
  for (int j = 0; j < 8; ++j) {
    int sc, m;
    scale_min_k4(j, scales_out, &sc, &m);
    const float d_eff = d * float(sc);
    if (d_eff == 0.0f) continue;  // keep the provisional quants
    const float m_eff = dmin * float(m);
    for (int i = 0; i < 32; ++i)
      L[32 * j + i] = uint8_t(clamp_to(nearest_int((x[32 * j + i] + m_eff) / d_eff), 0, nmax));
  }
}

// §7.7 best_index: nearest codebook entry, ties to the larger index. The
// bracketing entry is found by counting (branch-free) rather than by binary
// search; both give the m with K[m-1] <= v < K[m], and the final comparison is
// the reference's own f32 expression. A NaN gives 15, as the binary search does.
inline int iq4_best_index(float v) {
  const int8_t* k = kIQ4Values;
  if (v <= float(k[0])) return 0;
  if (!(v < float(k[15]))) return 15;
  int m = 0;
  for (int i = 0; i < 16; ++i) m += v >= float(k[i]);
  return v - float(k[m - 1]) < float(k[m]) - v ? m - 1 : m;
}

// §7.7 steps 1-4 for one 32-element sub-block: the (possibly negative) scale.
float iq4_sub_block_scale(const float* x) {
  const SignedAbsMax m = signed_absmax(x, 32);
  if (m.amax < kGroupMaxEps) return 0.0f;
  float weights[32];
  for (int i = 0; i < 32; ++i) weights[i] = x[i] * x[i];
  float d = -m.vmax / float(kIQ4Values[0]);
  float id = 1.0f / d;
  float sumqx = 0.0f, sumq2 = 0.0f;
  for (int i = 0; i < 32; ++i) {
    const float q = float(kIQ4Values[iq4_best_index(id * x[i])]);
    sumqx += weights[i] * q * x[i];
    sumq2 += weights[i] * q * q;
  }
  d = sumq2 > 0 ? sumqx / sumq2 : 0.0f;
  float best = d * sumqx;
  for (int t = -7; t <= 7; ++t) {
    id = float(t + kIQ4Values[0]) / m.vmax;
    sumqx = sumq2 = 0.0f;
    for (int i = 0; i < 32; ++i) {
      const float q = float(kIQ4Values[iq4_best_index(id * x[i])]);
      sumqx += weights[i] * q * x[i];
      sumq2 += weights[i] * q * q;
    }
    if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
      d = sumqx / sumq2;
      best = d * sumqx;
    }
  }
  return d;
}

// Packs 32 codebook indices like Q4_0: byte j = idx[j] | idx[j+16] << 4.
inline void pack_iq4_indices(const float* x, float id, uint8_t* qs) {
  for (int j = 0; j < 16; ++j)
    qs[j] = uint8_t(iq4_best_index(id * x[j]) | (iq4_best_index(id * x[j + 16]) << 4));
}

}  // namespace

template <typename V>
void quantize_q2_k_impl(const float* x, uint8_t* dst, int64_t nb) {
  auto* blocks = reinterpret_cast<BlockQ2_K*>(dst);
  uint8_t L[kQKK];
  float weights[kQKK], scales[16], mins[16];
  for (int64_t b = 0; b < nb; ++b, x += kQKK) {
    BlockQ2_K& blk = blocks[b];
    for (int i = 0; i < kQKK; ++i) weights[i] = std::fabs(x[i]);
    make_qkx2_quants<V, 16 / kWidth<V>, 16, true>(3, x, weights, -0.5f, 0.1f, 15, L, scales, mins);
    float max_scale = 0.0f, max_min = 0.0f;
    for (int j = 0; j < 16; ++j) {
      if (scales[j] > max_scale) max_scale = scales[j];
      if (mins[j] > max_min) max_min = mins[j];
    }
    if (max_scale > 0) {
      const float iscale = 15.0f / max_scale;
      for (int j = 0; j < 16; ++j) blk.scales[j] = uint8_t(nearest_int(iscale * scales[j]));
      store_f16(blk.d, max_scale / 15.0f);
    } else {
      for (int j = 0; j < 16; ++j) blk.scales[j] = 0;
      store_f16(blk.d, 0.0f);
    }
    if (max_min > 0) {
      const float iscale = 15.0f / max_min;
      for (int j = 0; j < 16; ++j) blk.scales[j] |= uint8_t(nearest_int(iscale * mins[j]) << 4);
      store_f16(blk.dmin, max_min / 15.0f);
    } else {
      store_f16(blk.dmin, 0.0f);
    }
    const float d = load_f16(blk.d);
    const float dmin = load_f16(blk.dmin);
    for (int j = 0; j < 16; ++j) {
      const float d_eff = d * float(blk.scales[j] & 0x0F);
      if (d_eff == 0.0f) continue;  // keep the provisional quants
      const float m_eff = dmin * float(blk.scales[j] >> 4);
      for (int i = 0; i < 16; ++i)
        L[16 * j + i] = uint8_t(clamp_to(nearest_int((x[16 * j + i] + m_eff) / d_eff), 0, 3));
    }
    pack_2bit_256(L, blk.qs);
  }
}

void quantize_q3_k(const float* x, uint8_t* dst, int64_t nb) {
  auto* blocks = reinterpret_cast<BlockQ3_K*>(dst);
  int8_t L[kQKK];
  float scales[16];
  for (int64_t b = 0; b < nb; ++b, x += kQKK) {
    BlockQ3_K& blk = blocks[b];
    float max_scale = 0.0f, amax = 0.0f;
    for (int j = 0; j < 16; ++j) {
      scales[j] = make_q3_quants(16, 4, x + 16 * j, L + 16 * j);
      const float a = std::fabs(scales[j]);
      if (a > amax) {
        amax = a;
        max_scale = scales[j];
      }
    }
    std::memset(blk.scales, 0, sizeof(blk.scales));
    if (max_scale != 0.0f) {
      const float iscale = -32.0f / max_scale;
      for (int j = 0; j < 16; ++j) {
        const int code = clamp_to(nearest_int(iscale * scales[j]), -32, 31) + 32;
        if (j < 8) {
          blk.scales[j] = uint8_t(code & 0x0F);
        } else {
          blk.scales[j - 8] |= uint8_t((code & 0x0F) << 4);
        }
        blk.scales[8 + j % 4] |= uint8_t((code >> 4) << (2 * (j / 4)));
      }
      store_f16(blk.d, 1.0f / iscale);
    } else {
      store_f16(blk.d, 0.0f);
    }
    const float d = load_f16(blk.d);
    for (int j = 0; j < 16; ++j) {
      const float d_eff = d * float(q3_k_scale_code(j, blk.scales) - 32);
      if (d_eff == 0.0f) continue;  // keep the provisional quants
      for (int i = 0; i < 16; ++i)
        L[16 * j + i] = int8_t(clamp_to(nearest_int(x[16 * j + i] / d_eff), -4, 3) + 4);
    }
    // High bit of element e -> bit e/32 of hmask[e%32]; the 2 low bits go to qs.
    std::memset(blk.hmask, 0, sizeof(blk.hmask));
    uint8_t low[kQKK];
    for (int e = 0; e < kQKK; ++e) {
      int u = L[e];
      if (u > 3) {
        blk.hmask[e % 32] |= uint8_t(1u << (e / 32));
        u -= 4;
      }
      low[e] = uint8_t(u);
    }
    pack_2bit_256(low, blk.qs);
  }
}

template <typename V>
void quantize_q4_k_impl(const float* x, uint8_t* dst, int64_t nb) {
  auto* blocks = reinterpret_cast<BlockQ4_K*>(dst);
  uint8_t L[kQKK];
  for (int64_t b = 0; b < nb; ++b, x += kQKK) {
    BlockQ4_K& blk = blocks[b];
    quantize_k_scales_mins<V>(x, 15, -1.0f, 0.1f, 20, blk.d, blk.dmin, blk.scales, L);
    for (int c = 0; c < 4; ++c)
      for (int t = 0; t < 32; ++t)
        blk.qs[32 * c + t] = uint8_t(L[64 * c + t] | (L[64 * c + 32 + t] << 4));
  }
}

template <typename V>
void quantize_q5_k_impl(const float* x, uint8_t* dst, int64_t nb) {
  auto* blocks = reinterpret_cast<BlockQ5_K*>(dst);
  uint8_t L[kQKK];
  for (int64_t b = 0; b < nb; ++b, x += kQKK) {
    BlockQ5_K& blk = blocks[b];
    quantize_k_scales_mins<V>(x, 31, -0.5f, 0.1f, 15, blk.d, blk.dmin, blk.scales, L);
    std::memset(blk.qh, 0, sizeof(blk.qh));
    for (int c = 0; c < 4; ++c) {
      for (int t = 0; t < 32; ++t) {
        const int l1 = L[64 * c + t], l2 = L[64 * c + 32 + t];
        blk.qs[32 * c + t] = uint8_t((l1 & 15) | ((l2 & 15) << 4));
        blk.qh[t] |= uint8_t(((l1 >> 4) << (2 * c)) | ((l2 >> 4) << (2 * c + 1)));
      }
    }
  }
}

template <typename V>
void quantize_q6_k_impl(const float* x, uint8_t* dst, int64_t nb) {
  auto* blocks = reinterpret_cast<BlockQ6_K*>(dst);
  int8_t L[kQKK];
  float scales[16];
  for (int64_t b = 0; b < nb; ++b, x += kQKK) {
    BlockQ6_K& blk = blocks[b];
    make_qx_quants<V, 16 / kWidth<V>, 16>(32, x, L, scales);
    float max_scale = 0.0f, max_abs_scale = 0.0f;
    for (int j = 0; j < 16; ++j) {
      const float a = std::fabs(scales[j]);
      if (a > max_abs_scale) {
        max_abs_scale = a;
        max_scale = scales[j];
      }
    }
    if (max_abs_scale < kGroupMaxEps) {
      std::memset(&blk, 0, sizeof(blk));
      continue;
    }
    const float iscale = -128.0f / max_scale;
    store_f16(blk.d, 1.0f / iscale);
    for (int j = 0; j < 16; ++j)
      blk.scales[j] = int8_t(clamp_to(nearest_int(iscale * scales[j]), -128, 127));
    const float d = load_f16(blk.d);
    for (int j = 0; j < 16; ++j) {
      const float d_eff = d * float(blk.scales[j]);
      if (d_eff == 0.0f) continue;  // keep the provisional quants
      for (int i = 0; i < 16; ++i)
        L[16 * j + i] = int8_t(clamp_to(nearest_int(x[16 * j + i] / d_eff), -32, 31) + 32);
    }
    for (int h = 0; h < 2; ++h) {
      const int8_t* u = L + 128 * h;
      for (int t = 0; t < 32; ++t) {
        blk.ql[64 * h + t] = uint8_t((u[t] & 15) | ((u[t + 64] & 15) << 4));
        blk.ql[64 * h + 32 + t] = uint8_t((u[t + 32] & 15) | ((u[t + 96] & 15) << 4));
        blk.qh[32 * h + t] = uint8_t((u[t] >> 4) | ((u[t + 32] >> 4) << 2) |
                                     ((u[t + 64] >> 4) << 4) | ((u[t + 96] >> 4) << 6));
      }
    }
  }
}

void quantize_iq4_nl(const float* x, uint8_t* dst, int64_t nb) {
  auto* blocks = reinterpret_cast<BlockIQ4_NL*>(dst);
  for (int64_t b = 0; b < nb; ++b, x += kQK) {
    const float d = iq4_sub_block_scale(x);
    store_f16(blocks[b].d, d);
    // Indices from the unrounded d; d = 0 gives index 8 (value 1) everywhere.
    pack_iq4_indices(x, d != 0.0f ? 1.0f / d : 0.0f, blocks[b].qs);
  }
}

void quantize_iq4_xs(const float* x, uint8_t* dst, int64_t nb) {
  auto* blocks = reinterpret_cast<BlockIQ4_XS*>(dst);
  float scales[8];
  for (int64_t b = 0; b < nb; ++b, x += kQKK) {
    BlockIQ4_XS& blk = blocks[b];
    float max_scale = 0.0f, amax_scale = 0.0f;
    for (int j = 0; j < 8; ++j) {
      scales[j] = iq4_sub_block_scale(x + 32 * j);
      const float a = std::fabs(scales[j]);
      if (a > amax_scale) {
        amax_scale = a;
        max_scale = scales[j];
      }
    }
    const float d = -max_scale / 32.0f;  // all zero: -0.0
    store_f16(blk.d, d);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    uint16_t scales_h = 0;
    for (int j = 0; j < 8; ++j) {
      const int l = clamp_to(nearest_int(id * scales[j]), -32, 31);
      const float dl = d * float(l);  // unrounded d
      const float idl = dl != 0.0f ? 1.0f / dl : 0.0f;
      pack_iq4_indices(x + 32 * j, idl, blk.qs + 16 * j);
      const int code = l + 32;
      if (j % 2 == 0) {
        blk.scales_l[j / 2] = uint8_t(code & 0x0F);
      } else {
        blk.scales_l[j / 2] |= uint8_t((code & 0x0F) << 4);
      }
      scales_h |= uint16_t((code >> 4) << (2 * j));
    }
    store_u16(blk.scales_h, scales_h);
  }
}

void quantize_q2_k(const float* x, uint8_t* dst, int64_t nb) {
  quantize_q2_k_impl<F4>(x, dst, nb);
}
void quantize_q4_k(const float* x, uint8_t* dst, int64_t nb) {
  quantize_q4_k_impl<F4>(x, dst, nb);
}
void quantize_q5_k(const float* x, uint8_t* dst, int64_t nb) {
  quantize_q5_k_impl<F4>(x, dst, nb);
}
void quantize_q6_k(const float* x, uint8_t* dst, int64_t nb) {
  quantize_q6_k_impl<F4>(x, dst, nb);
}

void quantize_q2_k_one_lane(const float* x, uint8_t* dst, int64_t nb) {
  quantize_q2_k_impl<float>(x, dst, nb);
}
void quantize_q4_k_one_lane(const float* x, uint8_t* dst, int64_t nb) {
  quantize_q4_k_impl<float>(x, dst, nb);
}
void quantize_q5_k_one_lane(const float* x, uint8_t* dst, int64_t nb) {
  quantize_q5_k_impl<float>(x, dst, nb);
}
void quantize_q6_k_one_lane(const float* x, uint8_t* dst, int64_t nb) {
  quantize_q6_k_impl<float>(x, dst, nb);
}

}  // namespace pocket::quant::detail
