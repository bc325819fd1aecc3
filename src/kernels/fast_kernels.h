// The non-matmul kernels of the fast tables (fast_ops.h), per CPU level, with
// the signatures of the Ops fields they replace. Tested against reference_ops()
// in recurrent_test.cpp.
#pragma once

#include <cstdint>

#include "kernels/ops.h"

namespace pocket::kernels::avx2 {

// Ops::gated_delta_rule, threaded over value heads: the chunked form for
// segments of at least kChunkedDeltaMinTokens tokens, else the fused per-token
// update.
void gated_delta_rule(const DeltaNetShape& s, int64_t n_tokens, const float* q, const float* k,
                      int64_t qk_stride, const float* v, int64_t v_stride, const float* g,
                      const float* beta, int64_t gb_stride, float* state, float* out,
                      int64_t out_stride);

// The two forms, for tests and measurements. Sequential: one pass over each
// head's state per token. Chunked (spec/qwen35.md section 3, 64-token chunks):
// the same result as matrix products within each chunk.
inline constexpr int64_t kChunkedDeltaMinTokens = 16;
void gated_delta_rule_sequential(const DeltaNetShape& s, int64_t n_tokens, const float* q,
                                 const float* k, int64_t qk_stride, const float* v,
                                 int64_t v_stride, const float* g, const float* beta,
                                 int64_t gb_stride, float* state, float* out, int64_t out_stride);
void gated_delta_rule_chunked(const DeltaNetShape& s, int64_t n_tokens, const float* q,
                              const float* k, int64_t qk_stride, const float* v, int64_t v_stride,
                              const float* g, const float* beta, int64_t gb_stride, float* state,
                              float* out, int64_t out_stride);

// The per-token (sequential) delta rule visits each head's state in memory
// order, row by row (default), or in column strips of 32 (the earlier kernel;
// POCKET_DELTA_STRIPS=1 at start-up). Both give the same bits; the switch is
// for tests and A/B measurements (not while kernels run).
void use_delta_strips(bool strips);

// Ops::deltanet_step: the whole decode step of a DeltaNet layer as one
// hand-off to the threads, each claiming key heads: the conv of the head's q,
// k and value-head channels, their norms, then the delta rule and the gated
// norm of every value head that reads it. Bit for bit the avx2 kernels one
// after another (falls back to that for a conv kernel other than 4 or head
// sizes that are not multiples of 8).
void deltanet_step(const DeltaNetStep& step);

// One token of conv1d_silu with 4 taps on channels [c0, c1) (multiples of 8),
// updating those channels' state: conv1d_silu's arithmetic for a split by channel.
void conv4_silu_step(int64_t channels, const float* x, const float* w, float* state, float* out,
                     int64_t c0, int64_t c1);

// Ops::attention (attention_avx2.cpp): blocked online-softmax attention,
// threaded over (block of query tokens, KV head) items.
void attention(const AttentionShape& s, const float* q, int64_t q_stride, int64_t n_tokens,
               int64_t pos0, const KvView& kv, float* out, int64_t out_stride);

// Ops::rmsnorm, l2norm, silu, sigmoid, add_rmsnorm, sigmoid_mul,
// rmsnorm_silu_gate: one row, single-threaded (the forward pass splits rows
// across threads). swiglu and conv1d_silu split large calls across the pool.
void rmsnorm(const float* x, const float* w, int64_t n, float eps, float* y);
void l2norm(float* x, int64_t n, float eps);
void silu(float* x, int64_t n);
void sigmoid(float* x, int64_t n);
void add_rmsnorm(float* x, const float* add, const float* w, int64_t n, float eps, float* y);
void sigmoid_mul(const float* gate, float* y, int64_t n);
void rmsnorm_silu_gate(float* x, const float* z, const float* w, int64_t n, float eps);
void swiglu(const float* gate, const float* up, float* out, int64_t n);
void conv1d_silu(int64_t n_tokens, int64_t channels, int64_t kernel, const float* x,
                 int64_t x_stride, const float* w, float* state, float* out, int64_t out_stride);

}  // namespace pocket::kernels::avx2
