// Byte-level BPE tokenizer (GPT-2 style, as used by Qwen2/Qwen3/Qwen3.5).
//
// Encoding: UTF-8 check (or repair) -> split on added tokens -> NFC ->
// pre-tokenizer regex (qwen2 / qwen35) -> byte-level mapping -> BPE merges by
// priority. Decoding: ids -> bytes. Results match the Hugging Face tokenizer
// on the same tokenizer.json (and llama.cpp plus NFC on the GGUF form).
//
// A Tokenizer is immutable after loading; encode/decode may be called from any
// number of threads at once (the word cache is internally locked).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "text/tokenizer_pre.h"

namespace pocket::gguf {
class File;
}

namespace pocket::text {

// Values as in GGUF tokenizer.ggml.token_type.
enum class TokenType : uint8_t {
  kNormal = 1,       // byte-level BPE token
  kControl = 3,      // <|im_start|> etc.: matched in text only with parse_special
  kUserDefined = 4,  // <think>, <tool_call> etc.: always matched, rendered as text
  kUnused = 5,       // [PAD...] fillers: never produced by encode
};

struct LoadOptions {
  // Use this pre-tokenizer instead of the one the file names (needed for
  // files whose pre-tokenizer is not recognised).
  std::optional<PreTokenizer> pre_tokenizer;
};

struct EncodeOptions {
  // Recognise control tokens (<|im_start|> ...) in the text. User-defined
  // tokens (<think> ...) are always recognised. Off for untrusted text.
  bool parse_special = false;
  // NFC-normalize text before pre-tokenizing (when the vocabulary asks for it:
  // always for GGUF, per the normalizer for tokenizer.json).
  bool normalize = true;
  // Ill-formed UTF-8: false -> pocket::Error with the byte offset;
  // true -> each maximal ill-formed subpart is encoded as U+FFFD.
  bool lenient_utf8 = false;
  // Prepend BOS: nullopt follows the vocabulary's add_bos_token.
  std::optional<bool> add_bos;
};

struct DecodeOptions {
  // Render control and unused tokens as their text (true) or skip them.
  // User-defined tokens are always rendered.
  bool render_special = true;
};

class Tokenizer {
 public:
  // Loads a GGUF (model or vocab-only) or a Hugging Face tokenizer.json,
  // chosen by content. For a tokenizer.json, a tokenizer_config.json in the
  // same folder supplies bos/eos/pad and add_bos_token when present.
  static Tokenizer load(const std::string& path, const LoadOptions& options = {});
  static Tokenizer from_gguf(const gguf::File& file, const LoadOptions& options = {});
  // `config_json` (tokenizer_config.json text) may be empty. `name` is used in errors.
  static Tokenizer from_tokenizer_json(std::string_view json_text, std::string_view config_json,
                                       const std::string& name, const LoadOptions& options = {});

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  std::vector<int32_t> encode(std::string_view text, const EncodeOptions& options = {}) const;
  // Raw bytes of the tokens; may be ill-formed UTF-8 (a character split over
  // the last token). Throws pocket::Error on an id out of range.
  std::string decode(std::span<const int32_t> ids, const DecodeOptions& options = {}) const;
  // Bytes of one token as decode() renders it (empty for a skipped special).
  std::string_view token_bytes(int32_t id, const DecodeOptions& options = {}) const;

  // The BPE encoding of one pre-token (bytes), without added-token matching.
  void encode_word(std::string_view word, std::vector<int32_t>& out) const;

  size_t n_vocab() const { return tokens_.size(); }
  // The token as stored in the vocabulary (byte-level spelling for normal tokens).
  const std::string& token_text(int32_t id) const;
  TokenType token_type(int32_t id) const;
  // Id of the token spelled exactly `text` in the vocabulary, if any.
  std::optional<int32_t> find_token(std::string_view text) const;

  PreTokenizer pre_tokenizer() const { return pre_; }
  bool nfc() const { return nfc_; }           // the vocabulary asks for NFC normalization
  int32_t bos_id() const { return bos_id_; }  // -1 when none
  int32_t eos_id() const { return eos_id_; }
  int32_t pad_id() const { return pad_id_; }
  bool add_bos() const { return add_bos_; }
  size_t n_merges() const { return n_merges_; }
  const std::string& source() const { return source_; }  // file name, for messages

 private:
  struct Merge {
    uint32_t rank;
    int32_t result;
  };
  class MergeTable;
  class WordCache;
  struct AddedToken {
    std::string text;
    int32_t id;
    bool control;  // only matched with parse_special
  };
  struct RawVocab;  // what a loader read, before validation (tokenizer_load.cpp)

  Tokenizer();
  // Validates a loaded vocabulary and builds the derived tables.
  static Tokenizer build(RawVocab raw);
  void encode_text(std::string_view text, const EncodeOptions& options,
                   std::vector<int32_t>& out) const;
  void bpe(std::string_view word, std::vector<int32_t>& out) const;
  int32_t check_id(int32_t id) const;

  std::string source_;
  std::vector<std::string> tokens_;
  std::vector<TokenType> types_;
  std::vector<std::string> bytes_;  // decoded bytes of every token
  std::unordered_map<std::string, int32_t> token_ids_;
  std::unique_ptr<MergeTable> merges_;
  size_t n_merges_ = 0;
  int32_t byte_token_[256] = {};
  // Added tokens sorted by first byte, longest first within a byte; those
  // starting with byte b are added_[added_begin_[b] .. added_begin_[b + 1]).
  std::vector<AddedToken> added_;
  uint32_t added_begin_[257] = {};
  PreTokenizer pre_ = PreTokenizer::kQwen35;
  bool nfc_ = true;
  bool ignore_merges_ = false;
  int32_t bos_id_ = -1, eos_id_ = -1, pad_id_ = -1;
  bool add_bos_ = false;
  std::unique_ptr<WordCache> cache_;
};

// Turns a stream of token ids into text that is always well-formed UTF-8:
// a character whose bytes are split over several tokens is held back until
// it is complete; bytes that can never be well formed become U+FFFD.
// Concatenating every push() and finish() equals
// replace_invalid_utf8(tokenizer.decode(all ids)).
class StreamingDecoder {
 public:
  explicit StreamingDecoder(const Tokenizer& tokenizer, DecodeOptions options = {})
      : tokenizer_(&tokenizer), options_(options) {}
  // Text that became complete with this token (possibly empty).
  std::string push(int32_t id);
  // Same for raw bytes (for callers that produce bytes themselves).
  std::string push_bytes(std::string_view bytes);
  // Everything still held back; an incomplete tail becomes U+FFFD. The decoder
  // can be reused afterwards.
  std::string finish();
  size_t pending_bytes() const { return pending_.size(); }

 private:
  const Tokenizer* tokenizer_;
  DecodeOptions options_;
  std::string pending_;  // at most one incomplete character (<= 3 bytes)
};

}  // namespace pocket::text
