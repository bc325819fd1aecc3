// Reference quantizers of the 32-element formats and Q8_K (spec/gguf.md §6),
// written to reproduce ggml's reference output byte for byte: f32 arithmetic in
// the order given, the scale's reciprocal taken from the unrounded f32 scale.
#include <cfloat>

#include "quant/blocks.h"
#include "quant/quant_impl.h"
#include "quant/rounding.h"

namespace pocket::quant::detail {

namespace {

// Packs 32 4-bit values: byte j holds element j (low nibble) and j+16 (high).
inline void pack_nibbles32(const int* n, uint8_t* qs) {
  for (int j = 0; j < 16; ++j) qs[j] = uint8_t((n[j] & 15) | ((n[j + 16] & 15) << 4));
}

// The 5th bits of 32 values as the little-endian u32 of Q5_0/Q5_1.
inline void pack_high_bits32(const int* n, uint8_t* qh) {
  uint32_t h = 0;
  for (int e = 0; e < 32; ++e) h |= uint32_t((n[e] >> 4) & 1) << e;
  store_u32(qh, h);
}

// Plain min/max scans with strict comparisons (earliest wins among equals).
inline void min_max(const float* x, int n, float* mn, float* mx) {
  float lo = FLT_MAX, hi = -FLT_MAX;
  for (int i = 0; i < n; ++i) {
    if (x[i] < lo) lo = x[i];
    if (x[i] > hi) hi = x[i];
  }
  *mn = lo;
  *mx = hi;
}

}  // namespace

void quantize_q4_0(const float* x, uint8_t* dst, int64_t nb) {
  auto* blocks = reinterpret_cast<BlockQ4_0*>(dst);
  int n[kQK];
  for (int64_t b = 0; b < nb; ++b, x += kQK) {
    const float d = signed_absmax(x, kQK).vmax / -8.0f;  // all zero: -0.0
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    store_f16(blocks[b].d, d);
    for (int e = 0; e < kQK; ++e) n[e] = clamp_to(trunc_to_int(x[e] * id + 8.5f), 0, 15);
    pack_nibbles32(n, blocks[b].qs);
  }
}

void quantize_q4_1(const float* x, uint8_t* dst, int64_t nb) {
  auto* blocks = reinterpret_cast<BlockQ4_1*>(dst);
  int n[kQK];
  for (int64_t b = 0; b < nb; ++b, x += kQK) {
    float mn, mx;
    min_max(x, kQK, &mn, &mx);
    const float d = (mx - mn) / 15.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    store_f16(blocks[b].d, d);
    store_f16(blocks[b].m, mn);
    for (int e = 0; e < kQK; ++e) n[e] = clamp_to(trunc_to_int((x[e] - mn) * id + 0.5f), 0, 15);
    pack_nibbles32(n, blocks[b].qs);
  }
}

void quantize_q5_0(const float* x, uint8_t* dst, int64_t nb) {
  auto* blocks = reinterpret_cast<BlockQ5_0*>(dst);
  int n[kQK];
  for (int64_t b = 0; b < nb; ++b, x += kQK) {
    const float d = signed_absmax(x, kQK).vmax / -16.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    store_f16(blocks[b].d, d);
    for (int e = 0; e < kQK; ++e) n[e] = clamp_to(trunc_to_int(x[e] * id + 16.5f), 0, 31);
    pack_nibbles32(n, blocks[b].qs);
    pack_high_bits32(n, blocks[b].qh);
  }
}

void quantize_q5_1(const float* x, uint8_t* dst, int64_t nb) {
  auto* blocks = reinterpret_cast<BlockQ5_1*>(dst);
  int n[kQK];
  for (int64_t b = 0; b < nb; ++b, x += kQK) {
    float mn, mx;
    min_max(x, kQK, &mn, &mx);
    const float d = (mx - mn) / 31.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    store_f16(blocks[b].d, d);
    store_f16(blocks[b].m, mn);
    // The reference does not clamp; for finite input the value never exceeds 31.
    for (int e = 0; e < kQK; ++e) n[e] = clamp_to(trunc_to_int((x[e] - mn) * id + 0.5f), 0, 31);
    pack_nibbles32(n, blocks[b].qs);
    pack_high_bits32(n, blocks[b].qh);
  }
}

void quantize_q8_0(const float* x, uint8_t* dst, int64_t nb) {
  auto* blocks = reinterpret_cast<BlockQ8_0*>(dst);
  for (int64_t b = 0; b < nb; ++b, x += kQK) {
    const float d = signed_absmax(x, kQK).amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;  // 1/d, not 127/amax: they differ
    store_f16(blocks[b].d, d);
    for (int e = 0; e < kQK; ++e)
      blocks[b].qs[e] = int8_t(clamp_to(round_away_to_int(x[e] * id), -127, 127));
  }
}

void quantize_q8_1(const float* x, uint8_t* dst, int64_t nb) {
  auto* blocks = reinterpret_cast<BlockQ8_1*>(dst);
  for (int64_t b = 0; b < nb; ++b, x += kQK) {
    const float d = signed_absmax(x, kQK).amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    int sum = 0;
    for (int e = 0; e < kQK; ++e) {
      const int q = clamp_to(round_away_to_int(x[e] * id), -127, 127);
      blocks[b].qs[e] = int8_t(q);
      sum += q;
    }
    store_f16(blocks[b].d, d);
    store_f16(blocks[b].s, float(sum) * d);  // with the unrounded d
  }
}

void quantize_q8_k(const float* x, uint8_t* dst, int64_t nb) {
  auto* blocks = reinterpret_cast<BlockQ8_K*>(dst);
  for (int64_t b = 0; b < nb; ++b, x += kQKK) {
    BlockQ8_K& blk = blocks[b];
    const SignedAbsMax m = signed_absmax(x, kQKK);
    if (m.amax == 0.0f) {
      std::memset(&blk, 0, sizeof(blk));
      continue;
    }
    // The scale carries vmax's sign: d is negative when vmax > 0.
    const float iscale = -127.0f / m.vmax;
    for (int e = 0; e < kQKK; ++e)
      blk.qs[e] = int8_t(clamp_to(nearest_int(iscale * x[e]), -128, 127));
    for (int k = 0; k < 16; ++k) {
      int sum = 0;
      for (int i = 0; i < 16; ++i) sum += blk.qs[16 * k + i];
      store_i16(blk.bsums + 2 * k, int16_t(sum));
    }
    store_f32(blk.d, 1.0f / iscale);
  }
}

}  // namespace pocket::quant::detail
