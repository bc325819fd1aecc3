// Pre-tokenizers: split text into the pieces that BPE encodes independently.
//
// Both are hand-written matchers equivalent to the Hugging Face "Split"
// pre-tokenizer (behaviour "Isolated") with these regexes (spec §6.2):
//
//   qwen2:  (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|
//           ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//   qwen35: the same with \p{L}+ -> [\p{L}\p{M}]+ and [^\s\p{L}\p{N}] -> [^\s\p{L}\p{M}\p{N}]
//
// \s is the Unicode White_Space property and the categories come from ICU.
// The contractions are matched with Unicode simple case folding, as the
// (?i:...) group does in the regex engines (so "'ſ" counts as "'s").
// tokenizer_pre_test.cpp cross-checks the matcher against PCRE2.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pocket::text {

enum class PreTokenizer : uint8_t { kQwen2, kQwen35 };

std::string_view pre_tokenizer_name(PreTokenizer kind);  // "qwen2", "qwen35"
std::optional<PreTokenizer> pre_tokenizer_from_name(std::string_view name);
// The regex in Hugging Face tokenizer.json syntax.
std::string_view pre_tokenizer_regex(PreTokenizer kind);
// Which pre-tokenizer a tokenizer.json Split regex is, if any.
std::optional<PreTokenizer> pre_tokenizer_from_regex(std::string_view regex);

// Byte length of the piece that starts at byte `pos` of `text` (well-formed
// UTF-8, pos < text.size(), at a character boundary). Always >= 1.
size_t pre_token_length(std::string_view text, size_t pos, PreTokenizer kind);

// Calls emit(std::string_view piece) for every piece, in order. The pieces
// partition the text exactly.
template <typename Emit>
void pre_tokenize(std::string_view text, PreTokenizer kind, Emit&& emit) {
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t len = pre_token_length(text, pos, kind);
    emit(text.substr(pos, len));
    pos += len;
  }
}

std::vector<std::string> pre_tokenize(std::string_view text, PreTokenizer kind);

}  // namespace pocket::text
