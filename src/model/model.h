// A Qwen3.5 text model (dense `qwen35` or MoE `qwen35moe`) loaded from GGUF:
// weights stay in the memory-mapped file as views of any tensor type, and the
// forward pass (spec/qwen35.md section 2) runs over a batch of segments.
//
//   auto model = Model::load("model.gguf");
//   runtime::Sequence seq(*model, ...);            // see runtime/sequence.h
//   Workspace ws;
//   model->forward(Batch{{Segment{&seq, tokens}}}, ws);
//   const float* logits = ws.logits(0);            // n_vocab values
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "kernels/ops.h"
#include "model/batch.h"
#include "model/config.h"

namespace pocket::model {

using kernels::Mat;

// Full-attention layer (spec 2.3).
struct AttentionWeights {
  Mat q;       // {H, 2 * n_head * D}: per head, D query rows then D gate rows
  Mat k, v;    // {H, n_head_kv * D}
  Mat output;  // {n_head * D, H}
  const float* q_norm = nullptr;  // {D}, zero-centred norm stored +1
  const float* k_norm = nullptr;
};

// Gated DeltaNet layer (spec 2.5). Value-head-indexed weights are in the GGUF
// tiled order: value head h reads key head h % n_k.
struct DeltaNetWeights {
  Mat qkv;     // {H, conv_dim}: rows q (key_dim), k (key_dim), v (value_dim)
  Mat gate;    // {H, value_dim}: z
  Mat beta;    // {H, n_v}
  Mat alpha;   // {H, n_v}
  Mat output;  // {value_dim, H}
  const float* conv = nullptr;     // {kernel, conv_dim}: conv[ch * kernel + tap]
  const float* dt_bias = nullptr;  // {n_v}
  const float* a = nullptr;        // {n_v}, already -exp(A_log)
  const float* norm = nullptr;     // {d_v}, plain RMSNorm weight
};

// Dense SwiGLU feed-forward (spec 2.6).
struct FfnWeights {
  Mat gate, up;  // {H, n_ff}
  Mat down;      // {n_ff, H}
};

// Mixture of experts with a shared expert (spec 2.7).
struct MoeWeights {
  Mat router;  // {H, n_expert}
  // Expert e's matrices are row ranges of the stacked 3-D tensors. With the
  // merged ffn_gate_up_exps, gate_up holds 2 * n_ff_exp rows per expert (gate
  // rows first); otherwise gate and up hold n_ff_exp rows per expert each.
  bool merged_gate_up = false;
  Mat gate, up, gate_up;
  Mat down;  // n_in = n_ff_exp, H rows per expert
  // Shared expert; absent (n_out = 0) when expert_shared_feed_forward_length is 0.
  Mat shared_gate, shared_up, shared_down;
  Mat shared_scale;  // {H} as a 1-row matrix: logit of the shared expert's sigmoid gate

  Mat expert_gate(int64_t e, int64_t n_ff) const;
  Mat expert_up(int64_t e, int64_t n_ff) const;
  Mat expert_down(int64_t e, int64_t n_embd) const;
};

struct Layer {
  LayerKind kind = LayerKind::kDeltaNet;
  int64_t kind_index = 0;  // index among the layers of the same kind (state slot)
  const float* attn_norm = nullptr;  // {H}, stored +1
  const float* post_norm = nullptr;  // {H}, stored +1
  AttentionWeights attn;
  DeltaNetWeights deltanet;
  FfnWeights ffn;
  MoeWeights moe;
};

// Scratch memory for forward() and its output. Buffers grow to the largest
// batch seen and are then reused, so a decode loop does not allocate. One
// Workspace per thread calling forward().
class Workspace {
 public:
  // Logits of the positions that asked for them, in batch order.
  struct Row {
    int32_t segment;  // index into Batch::segments
    int32_t token;    // index into that segment's tokens
  };
  int64_t n_logits() const { return int64_t(rows_.size()); }
  const Row& row(int64_t i) const { return rows_[size_t(i)]; }
  const float* logits(int64_t i) const { return logits_.data() + i * n_vocab_; }
  int64_t n_vocab() const { return n_vocab_; }

 private:
  friend class Model;
  std::vector<Row> rows_;
  std::vector<float> logits_;
  int64_t n_vocab_ = 0;

  struct SegmentRows {  // segment s covers rows [row0, row0 + len), positions pos0 ..
    int64_t row0, len, pos0;
  };
  std::vector<SegmentRows> segments_;
  std::vector<int64_t> pos_;     // per row: position in its sequence
  std::vector<int64_t> wanted_;  // rows that want logits
  std::vector<float> x, xn, out;              // residual stream, normed input, block output
  std::vector<float> att_qg, att_q, att_k, att_v, att_y;  // attention
  std::vector<float> dn_c, dn_z, dn_b, dn_g, dn_u, dn_o;  // delta net
  std::vector<float> ff_gate, ff_up;                      // dense FFN, shared expert
  std::vector<float> moe_probs, moe_x, moe_gate, moe_up, moe_out, moe_shared_scale;
  std::vector<int32_t> moe_expert;  // per row: the chosen experts
  std::vector<float> moe_weight;    // per row: their renormalised weights
  std::vector<int32_t> moe_rows;    // rows routed to the current expert
};

class Model {
 public:
  // Maps and validates a GGUF file. Errors name the file and the key or tensor.
  static std::unique_ptr<Model> load(const std::string& path,
                                     FileBacking backing = FileBacking::kMap);
  static std::unique_ptr<Model> from_file(gguf::File file);

  const Config& config() const { return config_; }
  const gguf::File& file() const { return file_; }
  const std::vector<Layer>& layers() const { return layers_; }
  Mat token_embd() const { return token_embd_; }
  Mat lm_head() const { return output_; }

  // Per-sequence state sizes (runtime/sequence.h allocates them).
  int64_t kv_row_elems() const { return config_.n_head_kv * config_.head_dim; }
  int64_t conv_state_floats() const {
    return (config_.ssm_conv_kernel - 1) * config_.ssm_conv_dim();
  }
  int64_t recurrent_state_floats() const {
    return config_.ssm_n_v * config_.ssm_d_state * config_.ssm_d_state;
  }
  uint64_t weight_bytes() const;  // tensor bytes the forward pass reads

  // Runs every segment's tokens through the model, updates each sequence's
  // state (KV rows, conv and recurrent state) and leaves the logits of the
  // positions that asked in ws. Checks the batch first (token ids, one segment
  // per sequence, room in every sequence) and throws pocket::Error before
  // touching any state. Kernels come from kernels::ops(). (Past those checks
  // nothing is expected to throw; if something did, the sequences' states
  // would be partly updated and should be reset.)
  void forward(const Batch& batch, Workspace& ws) const;

 private:
  explicit Model(gguf::File file);
  void load_weights();
  void attention_block(const Layer& layer, const Batch& batch, Workspace& ws, int64_t n) const;
  void deltanet_block(const Layer& layer, const Batch& batch, Workspace& ws, int64_t n) const;
  void ffn_block(const Layer& layer, Workspace& ws, int64_t n) const;
  void moe_block(const Layer& layer, Workspace& ws, int64_t n) const;

  gguf::File file_;
  Config config_;
  Mat token_embd_;
  const float* output_norm_ = nullptr;
  Mat output_;
  std::vector<Layer> layers_;
  std::vector<std::vector<float>> converted_;  // small non-f32 vectors expanded at load
};

}  // namespace pocket::model
