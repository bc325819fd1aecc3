// Byte layouts of the ggml quantization blocks (spec/gguf.md §5) and small
// helpers to read their fields. Every struct holds only byte arrays, so it has
// alignment 1 and can be overlaid on tensor data at any address; multi-byte
// fields are read and written with memcpy (little-endian host assumed).
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>

#include "util/fp16.h"

namespace pocket::quant {

static_assert(std::endian::native == std::endian::little, "block fields are little-endian");

constexpr int kQK = 32;    // elements per block of the 32-wide formats
constexpr int kQKK = 256;  // elements per K-quant super-block

struct BlockQ4_0 {
  uint8_t d[2];  // f16
  uint8_t qs[16];
};
struct BlockQ4_1 {
  uint8_t d[2];  // f16
  uint8_t m[2];  // f16
  uint8_t qs[16];
};
struct BlockQ5_0 {
  uint8_t d[2];   // f16
  uint8_t qh[4];  // u32 LE, bit e = 5th bit of element e
  uint8_t qs[16];
};
struct BlockQ5_1 {
  uint8_t d[2];  // f16
  uint8_t m[2];  // f16
  uint8_t qh[4];
  uint8_t qs[16];
};
struct BlockQ8_0 {
  uint8_t d[2];  // f16
  int8_t qs[32];
};
struct BlockQ8_1 {
  uint8_t d[2];  // f16
  uint8_t s[2];  // f16: d * sum(qs)
  int8_t qs[32];
};
struct BlockQ2_K {
  uint8_t scales[16];  // low nibble scale code, high nibble min code
  uint8_t qs[64];
  uint8_t d[2];     // f16
  uint8_t dmin[2];  // f16
};
struct BlockQ3_K {
  uint8_t hmask[32];
  uint8_t qs[64];
  uint8_t scales[12];
  uint8_t d[2];  // f16
};
struct BlockQ4_K {
  uint8_t d[2];     // f16
  uint8_t dmin[2];  // f16
  uint8_t scales[12];
  uint8_t qs[128];
};
struct BlockQ5_K {
  uint8_t d[2];     // f16
  uint8_t dmin[2];  // f16
  uint8_t scales[12];
  uint8_t qh[32];
  uint8_t qs[128];
};
struct BlockQ6_K {
  uint8_t ql[128];
  uint8_t qh[64];
  int8_t scales[16];
  uint8_t d[2];  // f16
};
struct BlockQ8_K {
  uint8_t d[4];  // f32
  int8_t qs[256];
  uint8_t bsums[32];  // i16[16]: sums of 16 consecutive qs
};
struct BlockIQ4_NL {
  uint8_t d[2];  // f16
  uint8_t qs[16];
};
struct BlockIQ4_XS {
  uint8_t d[2];         // f16
  uint8_t scales_h[2];  // u16 LE: bits 2j..2j+1 = high bits of sub-block j's code
  uint8_t scales_l[4];
  uint8_t qs[128];
};

static_assert(sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4_1) == 20);
static_assert(sizeof(BlockQ5_0) == 22 && sizeof(BlockQ5_1) == 24);
static_assert(sizeof(BlockQ8_0) == 34 && sizeof(BlockQ8_1) == 36);
static_assert(sizeof(BlockQ2_K) == 84 && sizeof(BlockQ3_K) == 110);
static_assert(sizeof(BlockQ4_K) == 144 && sizeof(BlockQ5_K) == 176);
static_assert(sizeof(BlockQ6_K) == 210 && sizeof(BlockQ8_K) == 292);
static_assert(sizeof(BlockIQ4_NL) == 18 && sizeof(BlockIQ4_XS) == 136);

// The IQ4_NL / IQ4_XS codebook (§5.15).
inline constexpr int8_t kIQ4Values[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                          1,    13,   25,  38,  53,  69,  89,  113};

inline uint16_t load_u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}
inline void store_u16(uint8_t* p, uint16_t v) {
  std::memcpy(p, &v, 2);
}
inline uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
inline void store_u32(uint8_t* p, uint32_t v) {
  std::memcpy(p, &v, 4);
}
inline float load_f16(const uint8_t* p) {
  return f16_to_f32(load_u16(p));
}
inline void store_f16(uint8_t* p, float v) {
  store_u16(p, f32_to_f16(v));
}
inline float load_f32(const uint8_t* p) {
  float v;
  std::memcpy(&v, p, 4);
  return v;
}
inline void store_f32(uint8_t* p, float v) {
  std::memcpy(p, &v, 4);
}
inline int16_t load_i16(const uint8_t* p) {
  int16_t v;
  std::memcpy(&v, p, 2);
  return v;
}
inline void store_i16(uint8_t* p, int16_t v) {
  std::memcpy(p, &v, 2);
}

// Scale code (0..63) and min code (0..63) of sub-block j of a Q4_K/Q5_K block (§5.10).
inline void scale_min_k4(int j, const uint8_t* b, int* sc, int* m) {
  if (j < 4) {
    *sc = b[j] & 63;
    *m = b[j + 4] & 63;
  } else {
    *sc = (b[j + 4] & 0x0F) | ((b[j - 4] >> 6) << 4);
    *m = (b[j + 4] >> 4) | ((b[j] >> 6) << 4);
  }
}

// Unsigned 6-bit scale code (0..63) of sub-block j of a Q3_K block (§5.9); the
// signed scale is code - 32.
inline int q3_k_scale_code(int j, const uint8_t* b) {
  const int low = j < 8 ? (b[j] & 0x0F) : (b[j - 8] >> 4);
  const int high = (b[8 + j % 4] >> (2 * (j / 4))) & 3;
  return low | (high << 4);
}

// Unsigned 6-bit scale code (0..63) of sub-block j of an IQ4_XS block (§5.16).
inline int iq4_xs_scale_code(int j, const BlockIQ4_XS& blk) {
  const int low = (blk.scales_l[j / 2] >> (4 * (j % 2))) & 0x0F;
  const int high = (load_u16(blk.scales_h) >> (2 * j)) & 3;
  return low | (high << 4);
}

}  // namespace pocket::quant
