// Reference dequantizers (spec/gguf.md §5). Every product below is exact in
// f32 (§1), so the only rounding is the final min/offset addition of the
// asymmetric types and the f32-scale multiply of Q8_K; the output is therefore
// bit-exact whatever the evaluation order.
#include "quant/blocks.h"
#include "quant/quant_impl.h"

namespace pocket::quant::detail {

namespace {

// Element e of a 32-element block whose 16 bytes hold e in the low nibble of
// byte e and e+16 in the high nibble (Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL).
inline int nibble32(const uint8_t* qs, int e) {
  return e < 16 ? (qs[e] & 0x0F) : (qs[e - 16] >> 4);
}

}  // namespace

void dequantize_q4_0(const uint8_t* src, float* dst, int64_t nb) {
  const auto* blocks = reinterpret_cast<const BlockQ4_0*>(src);
  for (int64_t b = 0; b < nb; ++b, dst += kQK) {
    const BlockQ4_0& blk = blocks[b];
    const float d = load_f16(blk.d);
    for (int e = 0; e < kQK; ++e) dst[e] = float(nibble32(blk.qs, e) - 8) * d;
  }
}

void dequantize_q4_1(const uint8_t* src, float* dst, int64_t nb) {
  const auto* blocks = reinterpret_cast<const BlockQ4_1*>(src);
  for (int64_t b = 0; b < nb; ++b, dst += kQK) {
    const BlockQ4_1& blk = blocks[b];
    const float d = load_f16(blk.d);
    const float m = load_f16(blk.m);
    for (int e = 0; e < kQK; ++e) dst[e] = float(nibble32(blk.qs, e)) * d + m;
  }
}

void dequantize_q5_0(const uint8_t* src, float* dst, int64_t nb) {
  const auto* blocks = reinterpret_cast<const BlockQ5_0*>(src);
  for (int64_t b = 0; b < nb; ++b, dst += kQK) {
    const BlockQ5_0& blk = blocks[b];
    const float d = load_f16(blk.d);
    const uint32_t h = load_u32(blk.qh);
    for (int e = 0; e < kQK; ++e) {
      const int n = nibble32(blk.qs, e) | int(((h >> e) & 1) << 4);
      dst[e] = float(n - 16) * d;
    }
  }
}

void dequantize_q5_1(const uint8_t* src, float* dst, int64_t nb) {
  const auto* blocks = reinterpret_cast<const BlockQ5_1*>(src);
  for (int64_t b = 0; b < nb; ++b, dst += kQK) {
    const BlockQ5_1& blk = blocks[b];
    const float d = load_f16(blk.d);
    const float m = load_f16(blk.m);
    const uint32_t h = load_u32(blk.qh);
    for (int e = 0; e < kQK; ++e) {
      const int n = nibble32(blk.qs, e) | int(((h >> e) & 1) << 4);
      dst[e] = float(n) * d + m;
    }
  }
}

void dequantize_q8_0(const uint8_t* src, float* dst, int64_t nb) {
  const auto* blocks = reinterpret_cast<const BlockQ8_0*>(src);
  for (int64_t b = 0; b < nb; ++b, dst += kQK) {
    const float d = load_f16(blocks[b].d);
    for (int e = 0; e < kQK; ++e) dst[e] = float(blocks[b].qs[e]) * d;
  }
}

void dequantize_q8_1(const uint8_t* src, float* dst, int64_t nb) {
  const auto* blocks = reinterpret_cast<const BlockQ8_1*>(src);
  for (int64_t b = 0; b < nb; ++b, dst += kQK) {
    const float d = load_f16(blocks[b].d);
    for (int e = 0; e < kQK; ++e) dst[e] = float(blocks[b].qs[e]) * d;
  }
}

void dequantize_q2_k(const uint8_t* src, float* dst, int64_t nb) {
  const auto* blocks = reinterpret_cast<const BlockQ2_K*>(src);
  for (int64_t b = 0; b < nb; ++b, dst += kQKK) {
    const BlockQ2_K& blk = blocks[b];
    const float d = load_f16(blk.d);
    const float dmin = load_f16(blk.dmin);
    for (int j = 0; j < 16; ++j) {
      const float dl = d * float(blk.scales[j] & 0x0F);
      const float ml = dmin * float(blk.scales[j] >> 4);
      for (int i = 0; i < 16; ++i) {
        const int e = 16 * j + i;
        const int half = e / 128, g = (e % 128) / 32, t = e % 32;
        const int n = (blk.qs[32 * half + t] >> (2 * g)) & 3;
        dst[e] = dl * float(n) - ml;
      }
    }
  }
}

void dequantize_q3_k(const uint8_t* src, float* dst, int64_t nb) {
  const auto* blocks = reinterpret_cast<const BlockQ3_K*>(src);
  for (int64_t b = 0; b < nb; ++b, dst += kQKK) {
    const BlockQ3_K& blk = blocks[b];
    const float d = load_f16(blk.d);
    for (int j = 0; j < 16; ++j) {
      const float dl = d * float(q3_k_scale_code(j, blk.scales) - 32);
      for (int i = 0; i < 16; ++i) {
        const int e = 16 * j + i;
        const int half = e / 128, g = (e % 128) / 32, t = e % 32;
        const int low = (blk.qs[32 * half + t] >> (2 * g)) & 3;
        const int high_set = (blk.hmask[t] >> (e / 32)) & 1;
        dst[e] = dl * float(low - (high_set ? 0 : 4));
      }
    }
  }
}

void dequantize_q4_k(const uint8_t* src, float* dst, int64_t nb) {
  const auto* blocks = reinterpret_cast<const BlockQ4_K*>(src);
  for (int64_t b = 0; b < nb; ++b, dst += kQKK) {
    const BlockQ4_K& blk = blocks[b];
    const float d = load_f16(blk.d);
    const float dmin = load_f16(blk.dmin);
    for (int j = 0; j < 8; ++j) {
      int sc, m;
      scale_min_k4(j, blk.scales, &sc, &m);
      const float dl = d * float(sc);
      const float ml = dmin * float(m);
      const uint8_t* q = blk.qs + 32 * (j / 2);
      const int shift = 4 * (j % 2);
      for (int t = 0; t < 32; ++t) dst[32 * j + t] = dl * float((q[t] >> shift) & 0x0F) - ml;
    }
  }
}

void dequantize_q5_k(const uint8_t* src, float* dst, int64_t nb) {
  const auto* blocks = reinterpret_cast<const BlockQ5_K*>(src);
  for (int64_t b = 0; b < nb; ++b, dst += kQKK) {
    const BlockQ5_K& blk = blocks[b];
    const float d = load_f16(blk.d);
    const float dmin = load_f16(blk.dmin);
    for (int j = 0; j < 8; ++j) {
      int sc, m;
      scale_min_k4(j, blk.scales, &sc, &m);
      const float dl = d * float(sc);
      const float ml = dmin * float(m);
      const uint8_t* q = blk.qs + 32 * (j / 2);
      const int shift = 4 * (j % 2);
      for (int t = 0; t < 32; ++t) {
        const int n = ((q[t] >> shift) & 0x0F) + 16 * ((blk.qh[t] >> j) & 1);
        dst[32 * j + t] = dl * float(n) - ml;
      }
    }
  }
}

void dequantize_q6_k(const uint8_t* src, float* dst, int64_t nb) {
  const auto* blocks = reinterpret_cast<const BlockQ6_K*>(src);
  for (int64_t b = 0; b < nb; ++b, dst += kQKK) {
    const BlockQ6_K& blk = blocks[b];
    const float d = load_f16(blk.d);
    for (int e = 0; e < kQKK; ++e) {
      const int half = e / 128, g = (e % 128) / 32, t = e % 32;
      const int low = (blk.ql[64 * half + 32 * (g % 2) + t] >> (4 * (g / 2))) & 0x0F;
      const int high = (blk.qh[32 * half + t] >> (2 * g)) & 3;
      const int n = (low | (high << 4)) - 32;
      dst[e] = (d * float(blk.scales[e / 16])) * float(n);
    }
  }
}

void dequantize_q8_k(const uint8_t* src, float* dst, int64_t nb) {
  const auto* blocks = reinterpret_cast<const BlockQ8_K*>(src);
  for (int64_t b = 0; b < nb; ++b, dst += kQKK) {
    const float d = load_f32(blocks[b].d);
    for (int e = 0; e < kQKK; ++e) dst[e] = d * float(blocks[b].qs[e]);
  }
}

void dequantize_iq4_nl(const uint8_t* src, float* dst, int64_t nb) {
  const auto* blocks = reinterpret_cast<const BlockIQ4_NL*>(src);
  for (int64_t b = 0; b < nb; ++b, dst += kQK) {
    const float d = load_f16(blocks[b].d);
    for (int e = 0; e < kQK; ++e) dst[e] = d * float(kIQ4Values[nibble32(blocks[b].qs, e)]);
  }
}

void dequantize_iq4_xs(const uint8_t* src, float* dst, int64_t nb) {
  const auto* blocks = reinterpret_cast<const BlockIQ4_XS*>(src);
  for (int64_t b = 0; b < nb; ++b, dst += kQKK) {
    const BlockIQ4_XS& blk = blocks[b];
    const float d = load_f16(blk.d);
    for (int j = 0; j < 8; ++j) {
      const float dl = d * float(iq4_xs_scale_code(j, blk) - 32);
      const uint8_t* q = blk.qs + 16 * j;
      for (int t = 0; t < 32; ++t) dst[32 * j + t] = dl * float(kIQ4Values[nibble32(q, t)]);
    }
  }
}

}  // namespace pocket::quant::detail
