// The SIMD levels' layout of one quantized activation row: the same numbers as
// the Q8_0 / Q8_1 / Q8_K blocks of spec/gguf.md §5-§6 (identical quants and
// scales), stored as separate aligned arrays so vector loads never straddle a
// block header:
//
//   qs      int8[n]        the quants
//   d       f32[n / B]     block scales (B = 32, or 256 for Q8_K); for Q8_0/Q8_1
//                          the f16-rounded value the block format stores
//   s       f32[n / 32]    Q8_1 only: the f16-rounded d * sum(qs)
//   bsums   i16[n / 16]    Q8_K only: sums of 16 consecutive quants
//   sums32  i16[n / 32]    sums of 32 consecutive quants (every format)
#pragma once

#include <cstdint>

#include "gguf/types.h"

namespace pocket::kernels {

struct ActLayout {
  int64_t n = 0;
  int block = 32;
  uint64_t d_offset = 0;
  uint64_t s_offset = 0;      // 0 when absent
  uint64_t bsums_offset = 0;  // 0 when absent
  uint64_t sums32_offset = 0;
  uint64_t row_bytes = 0;  // a multiple of 64
};

inline ActLayout act_layout(gguf::TensorType act_type, int64_t n) {
  auto round_up = [](uint64_t v) { return (v + 63) & ~uint64_t(63); };
  ActLayout L;
  L.n = n;
  L.block = act_type == gguf::TensorType::Q8_K ? 256 : 32;
  uint64_t at = round_up(uint64_t(n));
  L.d_offset = at;
  at = round_up(at + uint64_t(n / L.block) * 4);
  if (act_type == gguf::TensorType::Q8_1) {
    L.s_offset = at;
    at = round_up(at + uint64_t(n / 32) * 4);
  }
  if (act_type == gguf::TensorType::Q8_K) {
    L.bsums_offset = at;
    at = round_up(at + uint64_t(n / 16) * 2);
  }
  L.sums32_offset = at;
  at = round_up(at + uint64_t(n / 32) * 2);
  L.row_bytes = at;
  return L;
}

// Typed views of one row in that layout.
struct ActRow {
  const int8_t* qs;
  const float* d;
  const float* s;
  const int16_t* bsums;
  const int16_t* sums32;
};

inline ActRow act_row(const uint8_t* row, const ActLayout& L) {
  return ActRow{reinterpret_cast<const int8_t*>(row),
                reinterpret_cast<const float*>(row + L.d_offset),
                L.s_offset ? reinterpret_cast<const float*>(row + L.s_offset) : nullptr,
                L.bsums_offset ? reinterpret_cast<const int16_t*>(row + L.bsums_offset) : nullptr,
                reinterpret_cast<const int16_t*>(row + L.sums32_offset)};
}

}  // namespace pocket::kernels
