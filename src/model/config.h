// Hyper-parameters of a Qwen3.5 text model (arch `qwen35` or `qwen35moe`), read
// from GGUF metadata (spec/qwen35.md section 5.1). Every size comes from the
// file; nothing is assumed from the published model sizes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace pocket::gguf {
class File;
}

namespace pocket::model {

enum class LayerKind : uint8_t { kAttention, kDeltaNet };

struct Config {
  std::string arch;  // "qwen35" or "qwen35moe"
  bool moe = false;

  int64_t n_embd = 0;   // H
  int64_t n_layer = 0;  // layers used by the main model (block_count - nextn_predict_layers)
  int64_t n_vocab = 0;  // rows of token_embd
  int64_t n_ctx_train = 0;
  float rms_eps = 1e-6f;
  bool tied_output = false;  // no output.weight: the LM head is token_embd

  // Full attention.
  int64_t n_head = 0;
  int64_t n_head_kv = 0;
  int64_t head_dim = 0;  // attention.key_length (= value_length)
  int64_t n_rot = 0;     // rope.dimension_count
  int32_t rope_sections[4] = {0, 0, 0, 0};
  float rope_theta = 0.0f;
  float attn_scale = 0.0f;  // attention.scale if present, else 1/sqrt(head_dim)
  int64_t full_attention_interval = 4;

  // Gated DeltaNet.
  int64_t ssm_conv_kernel = 0;  // taps of the causal conv
  int64_t ssm_d_state = 0;      // d_k = d_v (ssm.state_size)
  int64_t ssm_n_k = 0;          // key heads (ssm.group_count)
  int64_t ssm_n_v = 0;          // value heads (ssm.time_step_rank)
  int64_t ssm_key_dim() const { return ssm_n_k * ssm_d_state; }
  int64_t ssm_value_dim() const { return ssm_n_v * ssm_d_state; }  // = ssm.inner_size
  int64_t ssm_conv_dim() const { return 2 * ssm_key_dim() + ssm_value_dim(); }

  // Feed-forward: dense SwiGLU or mixture of experts.
  int64_t n_ff = 0;  // dense only
  int64_t n_expert = 0;
  int64_t n_expert_used = 0;
  int64_t n_ff_exp = 0;
  int64_t n_ff_shexp = 0;

  std::vector<LayerKind> layers;
  int64_t n_attention_layers() const;
  int64_t n_deltanet_layers() const;

  // Reads and checks the metadata (tensor shapes are checked by the loader).
  // Errors name the file and the key.
  static Config from_gguf(const gguf::File& file);
  std::string summary() const;  // one line for logs
};

}  // namespace pocket::model
