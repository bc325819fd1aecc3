// The vocabulary `make-model` writes into a GGUF file (tokenizer.ggml.* keys).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "gguf/gguf.h"

namespace pocket::cli {

struct ModelVocab {
  std::vector<std::string> tokens;  // byte-level (GPT-2 unicode) spelling
  std::vector<int32_t> types;       // 1 normal, 3 control, 4 user-defined, 5 unused
  std::vector<std::string> merges;  // "left right", priority order
  std::string pre = "qwen35";
  int32_t bos = -1, eos = -1, pad = -1;
  std::string chat_template;        // from the tokenizer's config, if it has one
};

// 256 byte tokens, no merges, then the Qwen3.5 special tokens.
ModelVocab byte_level_vocab();
// Converts a Hugging Face tokenizer.json (and a tokenizer_config.json beside it, if
// present, for the chat template and special ids) through Pocket's tokenizer loader.
ModelVocab vocab_from_tokenizer_json(const std::string& path);
// Fills the table up to n entries with unused "[PAD<id>]" tokens, as real files do.
void pad_vocab(ModelVocab& v, uint32_t n);
void add_vocab_metadata(gguf::Writer& w, const ModelVocab& v);

}  // namespace pocket::cli
