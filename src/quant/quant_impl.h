// Per-type reference routines behind the quant.h dispatchers. Each works on a
// whole number of blocks (nb) of its type; the dispatchers check n and types.
#pragma once

#include <cstdint>

namespace pocket::quant::detail {

// §5: block bytes -> f32, bit-exact.
void dequantize_q4_0(const uint8_t* src, float* dst, int64_t nb);
void dequantize_q4_1(const uint8_t* src, float* dst, int64_t nb);
void dequantize_q5_0(const uint8_t* src, float* dst, int64_t nb);
void dequantize_q5_1(const uint8_t* src, float* dst, int64_t nb);
void dequantize_q8_0(const uint8_t* src, float* dst, int64_t nb);
void dequantize_q8_1(const uint8_t* src, float* dst, int64_t nb);
void dequantize_q2_k(const uint8_t* src, float* dst, int64_t nb);
void dequantize_q3_k(const uint8_t* src, float* dst, int64_t nb);
void dequantize_q4_k(const uint8_t* src, float* dst, int64_t nb);
void dequantize_q5_k(const uint8_t* src, float* dst, int64_t nb);
void dequantize_q6_k(const uint8_t* src, float* dst, int64_t nb);
void dequantize_q8_k(const uint8_t* src, float* dst, int64_t nb);
void dequantize_iq4_nl(const uint8_t* src, float* dst, int64_t nb);
void dequantize_iq4_xs(const uint8_t* src, float* dst, int64_t nb);

// §6: the simple quantizers (byte-exact with ggml's reference).
void quantize_q4_0(const float* src, uint8_t* dst, int64_t nb);
void quantize_q4_1(const float* src, uint8_t* dst, int64_t nb);
void quantize_q5_0(const float* src, uint8_t* dst, int64_t nb);
void quantize_q5_1(const float* src, uint8_t* dst, int64_t nb);
void quantize_q8_0(const float* src, uint8_t* dst, int64_t nb);
void quantize_q8_1(const float* src, uint8_t* dst, int64_t nb);
void quantize_q8_k(const float* src, uint8_t* dst, int64_t nb);

// §7: K-quant and IQ4 quantizers (no importance matrix).
void quantize_q2_k(const float* src, uint8_t* dst, int64_t nb);
void quantize_q3_k(const float* src, uint8_t* dst, int64_t nb);
void quantize_q4_k(const float* src, uint8_t* dst, int64_t nb);
void quantize_q5_k(const float* src, uint8_t* dst, int64_t nb);
void quantize_q6_k(const float* src, uint8_t* dst, int64_t nb);
void quantize_iq4_nl(const float* src, uint8_t* dst, int64_t nb);
void quantize_iq4_xs(const float* src, uint8_t* dst, int64_t nb);

// The quantizers above run several sub-block searches side by side (same f32
// operations per sub-block, SIMD-friendly). These run one sub-block at a time,
// the plain scalar form; tests check both write identical bytes.
void quantize_q2_k_one_lane(const float* src, uint8_t* dst, int64_t nb);
void quantize_q4_k_one_lane(const float* src, uint8_t* dst, int64_t nb);
void quantize_q5_k_one_lane(const float* src, uint8_t* dst, int64_t nb);
void quantize_q6_k_one_lane(const float* src, uint8_t* dst, int64_t nb);

// §8: weight blocks times activation blocks (nb block pairs).
float vec_dot_q4_0_q8_0(const uint8_t* w, const uint8_t* a, int64_t nb);
float vec_dot_q5_0_q8_0(const uint8_t* w, const uint8_t* a, int64_t nb);
float vec_dot_q8_0_q8_0(const uint8_t* w, const uint8_t* a, int64_t nb);
float vec_dot_iq4_nl_q8_0(const uint8_t* w, const uint8_t* a, int64_t nb);
float vec_dot_q4_1_q8_1(const uint8_t* w, const uint8_t* a, int64_t nb);
float vec_dot_q5_1_q8_1(const uint8_t* w, const uint8_t* a, int64_t nb);
float vec_dot_q2_k_q8_k(const uint8_t* w, const uint8_t* a, int64_t nb);
float vec_dot_q3_k_q8_k(const uint8_t* w, const uint8_t* a, int64_t nb);
float vec_dot_q4_k_q8_k(const uint8_t* w, const uint8_t* a, int64_t nb);
float vec_dot_q5_k_q8_k(const uint8_t* w, const uint8_t* a, int64_t nb);
float vec_dot_q6_k_q8_k(const uint8_t* w, const uint8_t* a, int64_t nb);
float vec_dot_iq4_xs_q8_k(const uint8_t* w, const uint8_t* a, int64_t nb);

}  // namespace pocket::quant::detail
