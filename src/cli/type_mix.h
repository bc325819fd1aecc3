// Which tensor type each tensor of a Qwen3.5 model gets for a given --type, shared
// by `make-model` and `quantize`. The _m mixes follow the community files: the LM
// head (or the tied embedding) in Q6_K; attn_v, attn_qkv and ffn_down in Q6_K on
// the "more bits" layers (first and last eighth, every third layer between);
// other matrices in the base type. Norms, the conv kernel, ssm_a/dt/alpha/beta
// and the MoE routers stay F32. A row length the block size does not divide
// falls back to Q8_0 (or F32).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "gguf/types.h"

namespace pocket::cli {

struct TypeMix {
  const char* name;
  gguf::TensorType base;
  gguf::TensorType head;       // output.weight, or token_embd.weight when tied
  gguf::TensorType embd;       // token_embd.weight when untied
  gguf::TensorType more_bits;  // attn_v / attn_qkv / ffn_down on the more-bits layers
  uint32_t file_type;          // general.file_type (llama_ftype numbering)
};

// nullptr for an unknown name; names() lists the valid ones for messages.
const TypeMix* find_type_mix(const std::string& name);
std::string type_mix_names();

// The type for tensor `name` whose rows have ne0 elements, in a model of n_layer
// blocks with (tied) or without an output.weight.
gguf::TensorType choose_tensor_type(const TypeMix& mix, const std::string& name, int64_t ne0,
                                    uint32_t n_layer, bool tied);

// Runs fn(begin, end) over [0, n) split into `threads` contiguous ranges.
void parallel_ranges(int64_t n, int threads, const std::function<void(int64_t, int64_t)>& fn);

}  // namespace pocket::cli
