// The non-matmul kernels of the fast tables (fast_ops.h), per CPU level, with
// the signatures of the Ops fields they replace. Tested against reference_ops()
// in recurrent_test.cpp.
#pragma once

#include <cstdint>

#include "kernels/ops.h"

namespace pocket::kernels::avx2 {

// Ops::gated_delta_rule, threaded over value heads.
void gated_delta_rule(const DeltaNetShape& s, int64_t n_tokens, const float* q, const float* k,
                      int64_t qk_stride, const float* v, int64_t v_stride, const float* g,
                      const float* beta, int64_t gb_stride, float* state, float* out,
                      int64_t out_stride);

// Ops::attention, threaded over (token, KV head) pairs.
void attention(const AttentionShape& s, const float* q, int64_t q_stride, int64_t n_tokens,
               int64_t pos0, const KvView& kv, float* out, int64_t out_stride);

// Ops::rmsnorm, l2norm, silu, sigmoid, swiglu, conv1d_silu (single-threaded:
// they are small next to the matrix products around them).
void rmsnorm(const float* x, const float* w, int64_t n, float eps, float* y);
void l2norm(float* x, int64_t n, float eps);
void silu(float* x, int64_t n);
void sigmoid(float* x, int64_t n);
void swiglu(const float* gate, const float* up, float* out, int64_t n);
void conv1d_silu(int64_t n_tokens, int64_t channels, int64_t kernel, const float* x,
                 int64_t x_stride, const float* w, float* state, float* out, int64_t out_stride);

}  // namespace pocket::kernels::avx2
