// Matrix products for every weight type, per CPU level (the fast Ops::matmul).
//
// y[r][o] = sum_i W[o][i] * x[r][i], r < n_rows, o < n_out.
//
// Quantized weights take the integer path of spec/gguf.md §8: each activation
// row is quantized once per call to the weight type's activation format (Q8_0,
// Q8_1 or Q8_K), then every block pair is an exact integer dot product scaled
// in f32. Float weights (F32, F16, BF16) take the float path: weights widened
// to f32 in registers, f32 activations, f32 accumulation (no activation
// rounding, unlike ggml's F16 path).
//
// The work is split across the thread pool by output rows; activation rows are
// processed in cache-sized chunks, and inside a chunk each weight row is read
// once for several activation rows (register tiles), so the weights stream from
// memory once per batch. Weights are read in place: no dequantized copies.
//
// Each level keeps the same structure; the scalar level's dot products are the
// reference quant::vec_dot (so it matches it bit for bit), the AVX2 level's are
// SIMD kernels tested against it: bit for bit too for the Q8_0-activation
// formats, whose f32 order (ggml's) quant/vec_dot.cpp fixes for every level.
#pragma once

#include <cstdint>

#include "kernels/ops.h"
#include "util/cpu_features.h"

namespace pocket::kernels {

// Kernels of one CPU level for one weight type, as the driver sees them. The
// layout of a quantized activation row is the level's own business: the
// driver only allocates act_row_bytes per row and hands the rows back.
struct MatmulKernel {
  // F32/F16/BF16 for the float path, else Q8_0/Q8_1/Q8_K.
  TensorType act_type = TensorType::F32;
  // Integer path: bytes of one quantized activation row of n elements.
  uint64_t (*act_row_bytes)(TensorType act_type, int64_t n) = nullptr;
  // Integer path: quantizes n floats (a whole number of activation blocks).
  void (*quantize_act)(TensorType act_type, const float* x, int64_t n, uint8_t* row) = nullptr;
  // Computes y[r * y_stride + o] for o < n_out weight rows starting at w and
  // r < n_act activation rows starting at act (act_stride bytes apart: the
  // quantized rows, or the f32 rows on the float path), rows of n elements.
  void (*block)(TensorType type, const uint8_t* w, uint64_t w_row_bytes, int64_t n_out,
                const uint8_t* act, uint64_t act_stride, int64_t n_act, int64_t n, float* y,
                int64_t y_stride) = nullptr;
};

// Activations are quantized as spec/gguf.md §8 describes for x86 (and as the
// golden Q8_0 model's reference did): Q8_0 and Q8_1 blocks take d = amax / 127
// (stored f16) and q = round-half-even(x * 127 / amax), Q8_1 also s = f16(d *
// sum(q)); Q8_K blocks are quant::quantize_row's. quantize_act_blocks writes
// those blocks in the standard block layout: the reference every level's
// quantizer is tested against (then quant::vec_dot gives the exact products).
void quantize_act_blocks(TensorType act_type, const float* x, int64_t n, uint8_t* blocks);

// The level's kernel for a weight type; block == nullptr if unsupported.
MatmulKernel matmul_kernel(CpuLevel level, TensorType weight_type);

// The whole product with the kernels of `level`, threaded. Throws
// pocket::Error for a weight type the level cannot multiply.
void matmul_at_level(CpuLevel level, const Mat& w, const float* x, int64_t n_rows, int64_t x_stride,
                     float* y, int64_t y_stride);

// Several products of the same input rows in one hand-off to the threads
// (Ops::matmul_group); results equal one matmul_at_level call per entry.
void matmul_group_at_level(CpuLevel level, const MatmulOut* outs, int n_outs, const float* x,
                           int64_t n_rows, int64_t x_stride);

// The same product on the calling thread only (benchmarks, tests).
void matmul_single_thread(CpuLevel level, const Mat& w, const float* x, int64_t n_rows,
                          int64_t x_stride, float* y, int64_t y_stride);

namespace scalar {
MatmulKernel kernel_for(TensorType weight_type);
}
namespace avx2 {
MatmulKernel kernel_for(TensorType weight_type);  // only call where the CPU has AVX2

// The prefill layout of the 32-element formats' quants (n / 32 blocks): every 8
// consecutive blocks dword-transposed, the blocks past the last multiple of 8 in
// element order. dst must be 32-byte aligned. Exposed for its test; only call
// where the CPU has AVX2.
void interleave_blocks_for_test(const int8_t* src, int64_t n, int8_t* dst);
}

}  // namespace pocket::kernels
