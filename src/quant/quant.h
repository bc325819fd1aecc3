// Block quantization formats (spec/gguf.md §5-§8): reference dequantizers,
// quantizers and quantized dot products, plain C++. The fast SIMD kernels in
// src/kernels are tested against these.
#pragma once

#include <cstdint>

#include "gguf/types.h"

namespace pocket::quant {

using gguf::TensorType;

// Whether dequantize_row / quantize_row support a type.
bool can_dequantize(TensorType t);
bool can_quantize(TensorType t);

// Converts n elements (a multiple of the type's block size) to f32. Bit-exact
// with the reference (golden/quant).
void dequantize_row(TensorType t, const void* src, float* dst, int64_t n);

// Quantizes n elements (a multiple of the block size) into dst, which must hold
// gguf::row_bytes(t, n) bytes. Reference quantizers without importance matrix.
void quantize_row(TensorType t, const float* src, void* dst, int64_t n);

// The activation format a weight type is multiplied with in the integer dot
// path (§8): Q8_0, Q8_1, Q8_K, or F16/BF16/F32 for the float types.
TensorType activation_type(TensorType weight);

// Reference dot product of one weight row of type t with an activation row of
// n elements already quantized to activation_type(t).
float vec_dot(TensorType t, const void* weight_row, const void* act_row, int64_t n);

}  // namespace pocket::quant
