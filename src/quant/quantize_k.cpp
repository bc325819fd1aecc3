// K-quant and IQ4 reference quantizers without importance matrix (spec/gguf.md
// §7). Written literally from the spec — f32 arithmetic, every sum accumulated
// sequentially in element order, products in the order written, and the
// project builds with -ffp-contract=off — which reproduces ggml's reference
// output byte for byte. Do not "optimise" the sums into another order: that
// changes some output bytes.
#include <cmath>

#include "quant/blocks.h"
#include "quant/quant_impl.h"
#include "quant/rounding.h"

namespace pocket::quant::detail {

namespace {

// Sub-block scales whose magnitude is below this are treated as all zero.
constexpr float kGroupMaxEps = 1e-15f;

// §7.1 "qkx2": fits x ≈ scale·L + lo (L in 0..nmax, lo ≤ 0) by trying a grid of
// inverse scales and refitting by weighted least squares. Writes L, returns the
// scale and stores min = -lo in *the_min. `laux` is scratch of n bytes.
float make_qkx2_quants(int n, int nmax, const float* x, const float* w, uint8_t* L, float* the_min,
                       uint8_t* laux, float rmin, float rdelta, int nstep, bool use_mad) {
  float lo = x[0];
  float hi = x[0];
  float sum_w = w[0];
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < lo) lo = x[i];
    if (x[i] > hi) hi = x[i];
    sum_w += w[i];
    sum_x += w[i] * x[i];
  }
  if (lo > 0) lo = 0;
  if (hi == lo) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    *the_min = -lo;
    return 0.0f;
  }
  const auto err = [use_mad](float diff) { return use_mad ? std::fabs(diff) : diff * diff; };

  float iscale = float(nmax) / (hi - lo);
  float scale = 1.0f / iscale;
  float best_error = 0.0f;
  for (int i = 0; i < n; ++i) {
    const int l = clamp_to(nearest_int(iscale * (x[i] - lo)), 0, nmax);
    L[i] = uint8_t(l);
    best_error += w[i] * err(scale * float(l) + lo - x[i]);
  }
  for (int k = 0; k <= nstep; ++k) {
    // Uses the current lo, which changes whenever a candidate is adopted.
    iscale = (rmin + rdelta * float(k) + float(nmax)) / (hi - lo);
    float sum_l = 0.0f, sum_l2 = 0.0f, sum_xl = 0.0f;
    for (int i = 0; i < n; ++i) {
      const int l = clamp_to(nearest_int(iscale * (x[i] - lo)), 0, nmax);
      laux[i] = uint8_t(l);
      const float wl = w[i] * float(l);
      sum_l += wl;
      sum_l2 += wl * float(l);
      sum_xl += wl * x[i];
    }
    const float det = sum_w * sum_l2 - sum_l * sum_l;
    if (det > 0) {
      float this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
      float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
      if (this_min > 0) {
        this_min = 0;
        this_scale = sum_xl / sum_l2;
      }
      float cur_error = 0.0f;
      for (int i = 0; i < n; ++i) cur_error += w[i] * err(this_scale * float(laux[i]) + this_min - x[i]);
      if (cur_error < best_error) {
        for (int i = 0; i < n; ++i) L[i] = laux[i];
        best_error = cur_error;
        scale = this_scale;
        lo = this_min;
      }
    }
  }
  *the_min = -lo;
  return scale;
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

// §7.6 "qx" search of Q6_K (weights x², candidates -(nmax + 0.1k)/vmax).
// Writes codes l + nmax (0 for an all-zero sub-block) and returns the scale.
float make_qx_quants(int n, int nmax, const float* x, int8_t* L) {
  const SignedAbsMax m = signed_absmax(x, n);
  if (m.amax < kGroupMaxEps) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.0f;
  }
  float iscale = float(-nmax) / m.vmax;
  float sumlx = 0.0f, suml2 = 0.0f;
  for (int i = 0; i < n; ++i) {
    const int l = clamp_to(nearest_int(iscale * x[i]), -nmax, nmax - 1);
    L[i] = int8_t(l + nmax);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * float(l);
    suml2 += w * float(l) * float(l);
  }
  float scale = suml2 != 0 ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  for (int k = -9; k <= 9; ++k) {
    if (k == 0) continue;
    iscale = -(float(nmax) + 0.1f * float(k)) / m.vmax;
    sumlx = suml2 = 0.0f;
    for (int i = 0; i < n; ++i) {
      const int l = clamp_to(nearest_int(iscale * x[i]), -nmax, nmax - 1);
      const float w = x[i] * x[i];
      sumlx += w * x[i] * float(l);
      suml2 += w * float(l) * float(l);
    }
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; ++i)
        L[i] = int8_t(nmax + clamp_to(nearest_int(iscale * x[i]), -nmax, nmax - 1));
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
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
void quantize_k_scales_mins(const float* x, int nmax, float rmin, float rdelta, int nstep,
                            uint8_t* d_out, uint8_t* dmin_out, uint8_t* scales_out, uint8_t* L) {
  float weights[32];
  float scales[8];
  float mins[8];
  uint8_t laux[32];
  float max_scale = 0.0f, max_min = 0.0f;
  for (int j = 0; j < 8; ++j) {
    const float* xs = x + 32 * j;
    float sum_x2 = 0.0f;
    for (int i = 0; i < 32; ++i) sum_x2 += xs[i] * xs[i];
    const float av_x = std::sqrt(sum_x2 / 32.0f);
    for (int i = 0; i < 32; ++i) weights[i] = av_x + std::fabs(xs[i]);
    scales[j] = make_qkx2_quants(32, nmax, xs, weights, L + 32 * j, &mins[j], laux, rmin, rdelta,
                                 nstep, false);
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

// §7.7 best_index: nearest codebook entry, ties to the larger index.
inline int iq4_best_index(float v) {
  const int8_t* k = kIQ4Values;
  if (v <= float(k[0])) return 0;
  if (v >= float(k[15])) return 15;
  int lo = 0, hi = 15;
  while (hi - lo > 1) {
    const int mid = (lo + hi) / 2;
    if (v < float(k[mid])) {
      hi = mid;
    } else {
      lo = mid;
    }
  }
  return v - float(k[hi - 1]) < float(k[hi]) - v ? hi - 1 : hi;
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

void quantize_q2_k(const float* x, uint8_t* dst, int64_t nb) {
  auto* blocks = reinterpret_cast<BlockQ2_K*>(dst);
  uint8_t L[kQKK];
  uint8_t laux[16];
  float weights[16], scales[16], mins[16];
  for (int64_t b = 0; b < nb; ++b, x += kQKK) {
    BlockQ2_K& blk = blocks[b];
    float max_scale = 0.0f, max_min = 0.0f;
    for (int j = 0; j < 16; ++j) {
      for (int i = 0; i < 16; ++i) weights[i] = std::fabs(x[16 * j + i]);
      scales[j] = make_qkx2_quants(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], laux, -0.5f,
                                   0.1f, 15, true);
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

void quantize_q4_k(const float* x, uint8_t* dst, int64_t nb) {
  auto* blocks = reinterpret_cast<BlockQ4_K*>(dst);
  uint8_t L[kQKK];
  for (int64_t b = 0; b < nb; ++b, x += kQKK) {
    BlockQ4_K& blk = blocks[b];
    quantize_k_scales_mins(x, 15, -1.0f, 0.1f, 20, blk.d, blk.dmin, blk.scales, L);
    for (int c = 0; c < 4; ++c)
      for (int t = 0; t < 32; ++t)
        blk.qs[32 * c + t] = uint8_t(L[64 * c + t] | (L[64 * c + 32 + t] << 4));
  }
}

void quantize_q5_k(const float* x, uint8_t* dst, int64_t nb) {
  auto* blocks = reinterpret_cast<BlockQ5_K*>(dst);
  uint8_t L[kQKK];
  for (int64_t b = 0; b < nb; ++b, x += kQKK) {
    BlockQ5_K& blk = blocks[b];
    quantize_k_scales_mins(x, 31, -0.5f, 0.1f, 15, blk.d, blk.dmin, blk.scales, L);
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

void quantize_q6_k(const float* x, uint8_t* dst, int64_t nb) {
  auto* blocks = reinterpret_cast<BlockQ6_K*>(dst);
  int8_t L[kQKK];
  float scales[16];
  for (int64_t b = 0; b < nb; ++b, x += kQKK) {
    BlockQ6_K& blk = blocks[b];
    float max_scale = 0.0f, max_abs_scale = 0.0f;
    for (int j = 0; j < 16; ++j) {
      scales[j] = make_qx_quants(16, 32, x + 16 * j, L + 16 * j);
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

}  // namespace pocket::quant::detail
