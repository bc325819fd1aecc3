#include "cli/model_vocab.h"

#include "text/tokenizer.h"
#include "text/unicode.h"
#include "text/utf8.h"
#include "util/error.h"

namespace pocket::cli {

namespace {

const char* const kSpecials[][2] = {
    {"<|endoftext|>", "3"},  {"<|im_start|>", "3"},  {"<|im_end|>", "3"},
    {"<think>", "4"},        {"</think>", "4"},      {"<tool_call>", "4"},
    {"</tool_call>", "4"},   {"<tool_response>", "4"}, {"</tool_response>", "4"},
};

}  // namespace

ModelVocab byte_level_vocab() {
  ModelVocab v;
  for (int b = 0; b < 256; b++) {
    std::string symbol;  // GPT-2 byte-level spelling of the byte
    text::append_utf8(symbol, text::byte_to_unicode(uint8_t(b)));
    v.tokens.push_back(symbol);
    v.types.push_back(1);
  }
  for (const auto& s : kSpecials) {
    v.tokens.push_back(s[0]);
    v.types.push_back(s[1][0] - '0');
  }
  v.bos = v.pad = 256;  // <|endoftext|>
  v.eos = 258;          // <|im_end|>
  return v;
}

ModelVocab vocab_from_tokenizer_json(const std::string& path) {
  text::Tokenizer tok = text::Tokenizer::load(path);
  ModelVocab v;
  v.tokens.reserve(tok.n_vocab());
  for (size_t i = 0; i < tok.n_vocab(); i++) {
    v.tokens.push_back(tok.token_text(int32_t(i)));
    v.types.push_back(int32_t(tok.token_type(int32_t(i))));
  }
  (void)tok;
  fail(path, ": --tokenizer is not supported yet (the tokenizer does not expose its merges)");
  v.pre = text::pre_tokenizer_name(tok.pre_tokenizer());
  v.bos = tok.bos_id();
  v.eos = tok.eos_id();
  v.pad = tok.pad_id();
  if (v.eos < 0) {
    if (auto id = tok.find_token("<|im_end|>")) v.eos = *id;
  }
  return v;
}

void pad_vocab(ModelVocab& v, uint32_t n) {
  while (v.tokens.size() < n) {
    v.tokens.push_back("[PAD" + std::to_string(v.tokens.size()) + "]");
    v.types.push_back(5);
  }
}

void add_vocab_metadata(gguf::Writer& w, const ModelVocab& v) {
  using gguf::Value;
  w.add("tokenizer.ggml.model", Value::string("gpt2"));
  w.add("tokenizer.ggml.pre", Value::string(v.pre));
  w.add("tokenizer.ggml.tokens", Value::strings(v.tokens));
  w.add("tokenizer.ggml.token_type", Value::i32s(v.types));
  w.add("tokenizer.ggml.merges", Value::strings(v.merges));
  if (v.eos >= 0) w.add("tokenizer.ggml.eos_token_id", Value::u32(uint32_t(v.eos)));
  if (v.pad >= 0) w.add("tokenizer.ggml.padding_token_id", Value::u32(uint32_t(v.pad)));
  if (v.bos >= 0) w.add("tokenizer.ggml.bos_token_id", Value::u32(uint32_t(v.bos)));
  w.add("tokenizer.ggml.add_bos_token", Value::boolean(false));
}

}  // namespace pocket::cli
