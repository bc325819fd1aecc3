// The numeric kernels the forward pass calls, as a table of function pointers.
//
// reference_ops() is plain scalar C++ written straight from spec/qwen35.md: f32
// arithmetic, weights of any GGUF type expanded one row at a time. Faster tables
// (SIMD per CPU level, threads) can be installed with set_ops() and are tested
// against the reference on random inputs.
//
// Conventions: activations are f32 rows; a "stride" is the distance in floats
// between consecutive rows (tokens). Nothing here allocates per call except a
// per-thread scratch row that grows to the widest matrix once.
#pragma once

#include <cstdint>
#include <string_view>

#include "gguf/types.h"

namespace pocket::kernels {

using gguf::TensorType;

// A weight matrix viewed in place (usually inside the memory-mapped GGUF file):
// n_out rows of n_in elements of `type`; row o starts at data + o * row_bytes.
// GGUF shape {n_in, n_out}: y[o] = sum_i W[o][i] * x[i].
struct Mat {
  TensorType type = TensorType::F32;
  const uint8_t* data = nullptr;
  int64_t n_in = 0;
  int64_t n_out = 0;
  uint64_t row_bytes = 0;

  // Rows [first, first + count) as a matrix of their own.
  Mat rows(int64_t first, int64_t count) const {
    return Mat{type, data + uint64_t(first) * row_bytes, n_in, count, row_bytes};
  }
};

// Element type of a KV cache. Q8_0 stores each row as GGUF Q8_0 blocks of 32
// values (an f16 scale d = amax / 127 and 32 int8), so head_dim must be a
// multiple of 32 and a head's slice of a row starts on a block.
enum class KvType : uint8_t { F32, F16, Q8_0 };

// Bytes of n consecutive cached values (n a multiple of 32 for Q8_0).
inline uint64_t kv_bytes(KvType t, int64_t n) {
  switch (t) {
    case KvType::F32:
      return uint64_t(n) * 4;
    case KvType::F16:
      return uint64_t(n) * 2;
    case KvType::Q8_0:
      return uint64_t(n) / 32 * 34;
  }
  return 0;
}

inline const char* kv_type_name(KvType t) {
  return t == KvType::F32 ? "f32" : t == KvType::F16 ? "f16" : "q8_0";
}

// "f32", "f16" or "q8_0"; false for anything else.
inline bool kv_type_from_name(std::string_view name, KvType& out) {
  for (KvType t : {KvType::F32, KvType::F16, KvType::Q8_0})
    if (name == kv_type_name(t)) {
      out = t;
      return true;
    }
  return false;
}

// One attention layer's K and V for one sequence. Positions live in pages of
// page_tokens rows each; the rows of page i start at pages[i] + k_offset (K)
// and pages[i] + v_offset (V). One row holds the n_kv heads of one position
// (row_elems = n_kv * head_dim). Pages let sequences share a prefix later.
struct KvView {
  KvType type = KvType::F32;
  int64_t row_elems = 0;
  int64_t page_tokens = 0;
  uint8_t* const* pages = nullptr;
  uint64_t k_offset = 0;
  uint64_t v_offset = 0;

  uint64_t row_bytes() const { return kv_bytes(type, row_elems); }
  uint8_t* k_row(int64_t pos) const {
    return pages[pos / page_tokens] + k_offset + uint64_t(pos % page_tokens) * row_bytes();
  }
  uint8_t* v_row(int64_t pos) const {
    return pages[pos / page_tokens] + v_offset + uint64_t(pos % page_tokens) * row_bytes();
  }
};

// Rotary embedding on the first n_rot dims of each head, NEOX pairing
// (x_i, x_{i + n_rot/2}), with IMROPE sections choosing which of the four
// position components drives each pair (spec 2.4).
struct RopeParams {
  int64_t n_rot = 0;
  int32_t sections[4] = {0, 0, 0, 0};
  float theta = 10000.0f;
};

// Causal grouped-query attention over one segment of one sequence.
struct AttentionShape {
  int64_t n_head = 0;
  int64_t n_head_kv = 0;
  int64_t head_dim = 0;
  float scale = 1.0f;
};

// Gated DeltaNet head layout. Value head h reads key/query head h % n_k
// (the tiled order GGUF files store, spec 2.5 step 7).
struct DeltaNetShape {
  int64_t n_k = 0;  // key (and query) heads
  int64_t n_v = 0;  // value heads, each with its own d_k x d_v state
  int64_t d_k = 0;
  int64_t d_v = 0;
};

// One decode token of a Gated DeltaNet layer for one sequence, from the input
// projections to the gated output norm (spec 2.5 steps 5-9): conv + SiLU over
// the conv_dim = 2 * n_k * d_k + n_v * d_v projected values x (q | k | v),
// carrying conv_state; L2 norm of every q and k head, q scaled by q_scale; the
// gated delta rule on state (beta and the log-decay g already computed, n_v
// each); out = rmsnorm(o) * norm_w * silu(z) per value head (norm_w: d_v).
// u: conv_dim scratch floats (holds q | k | v after the conv and the norms).
struct DeltaNetStep {
  DeltaNetShape shape;
  int64_t conv_kernel = 0;
  const float* conv_w = nullptr;  // conv_dim x conv_kernel
  float* conv_state = nullptr;    // (conv_kernel - 1) x conv_dim
  const float* x = nullptr;
  float* u = nullptr;
  const float* g = nullptr;
  const float* beta = nullptr;
  const float* z = nullptr;  // n_v * d_v
  const float* norm_w = nullptr;
  float eps = 0.0f;
  float q_scale = 1.0f;
  float* state = nullptr;
  float* out = nullptr;  // n_v * d_v
};

// One product of a group (Ops::matmul_group): y = W x for the group's input.
struct MatmulOut {
  Mat w;
  float* y = nullptr;
  int64_t y_stride = 0;
};

struct Ops {
  const char* name;

  // y[r][o] = sum_i W[o][i] * x[r][i] for r < n_rows: every weight row is read
  // (and expanded) once for the whole batch.
  void (*matmul)(const Mat& w, const float* x, int64_t n_rows, int64_t x_stride, float* y,
                 int64_t y_stride);
  // Several products of the same input rows (q/k/v, gate/up): the same results
  // as one matmul call per entry, but the threads are handed the work once.
  void (*matmul_group)(const MatmulOut* outs, int n_outs, const float* x, int64_t n_rows,
                       int64_t x_stride);

  // y = x / sqrt(mean(x^2) + eps) * w   (w may be null: no weight). y may alias x.
  void (*rmsnorm)(const float* x, const float* w, int64_t n, float eps, float* y);
  // x = x / max(sqrt(sum(x^2)), eps), in place.
  void (*l2norm)(float* x, int64_t n, float eps);
  // In place, over n values, f32.
  void (*softmax)(float* x, int64_t n);
  void (*silu)(float* x, int64_t n);
  void (*sigmoid)(float* x, int64_t n);
  // out[i] = silu(gate[i]) * up[i]
  void (*swiglu)(const float* gate, const float* up, float* out, int64_t n);
  // Fused element-wise steps of the forward pass (one pass over the row each):
  // x += add, then y = rmsnorm(x) * w (the residual add and the next norm);
  void (*add_rmsnorm)(float* x, const float* add, const float* w, int64_t n, float eps, float* y);
  // y[i] *= sigmoid(gate[i]) (the attention output gate);
  void (*sigmoid_mul)(const float* gate, float* y, int64_t n);
  // x = rmsnorm(x) * w * silu(z), in place (the delta-net output norm).
  void (*rmsnorm_silu_gate)(float* x, const float* z, const float* w, int64_t n, float eps);

  // Rotates each of n_heads heads (head_dim apart) in place for the position
  // components pos[4] = (t, h, w, e).
  void (*rope)(float* x, int64_t n_heads, int64_t head_dim, const RopeParams& p,
               const int64_t pos[4]);

  // Writes one position's K and V rows (n_kv * head_dim values each) into the cache.
  void (*kv_store)(const KvView& kv, int64_t pos, const float* k, const float* v);
  // For n_tokens queries at positions pos0 .. pos0 + n_tokens - 1 (rows of
  // n_head * head_dim, already normed and rotated), attends to cache positions
  // 0 .. own position; writes n_head * head_dim values per token to out.
  void (*attention)(const AttentionShape& s, const float* q, int64_t q_stride, int64_t n_tokens,
                    int64_t pos0, const KvView& kv, float* out, int64_t out_stride);

  // Causal depthwise conv + SiLU over n_tokens rows of `channels` values.
  // w: channels x kernel taps (tap kernel-1 multiplies the current input).
  // state: the last kernel-1 raw inputs, oldest first, channels values each;
  // read as the inputs before the first token and updated to the last ones.
  void (*conv1d_silu)(int64_t n_tokens, int64_t channels, int64_t kernel, const float* x,
                      int64_t x_stride, const float* w, float* state, float* out,
                      int64_t out_stride);

  // The gated delta rule (spec 2.5 step 8) for n_tokens tokens of one sequence.
  // Per token: q and k rows of n_k * d_k (q already L2-normed and scaled, k
  // L2-normed) at q + t*qk_stride and k + t*qk_stride, v row of n_v * d_v,
  // log-decay g and beta rows of n_v. state: n_v matrices S[d_k][d_v], updated
  // in place. out: n_v * d_v per token, S^T q after the update.
  void (*gated_delta_rule)(const DeltaNetShape& s, int64_t n_tokens, const float* q, const float* k,
                           int64_t qk_stride, const float* v, int64_t v_stride, const float* g,
                           const float* beta, int64_t gb_stride, float* state, float* out,
                           int64_t out_stride);

  // DeltaNetStep (decode, one token): the same results as the steps one at a
  // time with this table's kernels (deltanet_step_unfused), but fast tables
  // run it as one hand-off to the threads, split by key head.
  void (*deltanet_step)(const DeltaNetStep& step);
};

// DeltaNetStep as the separate kernels of `table`, one after another (the
// reference's deltanet_step, and the fallback of the fast ones).
void deltanet_step_unfused(const Ops& table, const DeltaNetStep& step);

// The scalar reference table.
const Ops& reference_ops();
// The table the model uses (reference_ops() unless set_ops changed it).
const Ops& ops();
void set_ops(const Ops& table);

// Helpers shared by kernels (reference numerics, exposed for tests).
float silu(float x);
float sigmoid(float x);
float softplus(float x);  // ln(1 + e^x); x for x > 20 (as PyTorch and ggml)
// The reference's f32 dot product: 8 partial sums, added pairwise at the end.
// Kernels that must match reference_ops().matmul bit for bit use this one.
float dot8(const float* a, const float* b, int64_t n);

}  // namespace pocket::kernels
