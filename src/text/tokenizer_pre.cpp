#include "text/tokenizer_pre.h"

#include "text/unicode.h"
#include "text/utf8.h"

namespace pocket::text {

namespace {

constexpr std::string_view kQwen2Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kQwen35Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

struct Char {
  char32_t cp;
  uint8_t length;
  uint8_t classes;
};

// Reads the character at pos (pos < text.size()).
inline Char char_at(std::string_view text, size_t pos, const CharClassTable& table) {
  const auto b = static_cast<unsigned char>(text[pos]);
  if (b < 0x80) return {b, 1, table.classes(b)};
  size_t len = 0;
  const char32_t cp = decode_valid_utf8(text.data() + pos, text.size() - pos, &len);
  return {cp, uint8_t(len), table.classes(cp)};
}

inline bool is_cr_or_lf(char32_t cp) {
  return cp == '\r' || cp == '\n';
}

}  // namespace

std::string_view pre_tokenizer_name(PreTokenizer kind) {
  return kind == PreTokenizer::kQwen2 ? "qwen2" : "qwen35";
}

std::optional<PreTokenizer> pre_tokenizer_from_name(std::string_view name) {
  if (name == "qwen2") return PreTokenizer::kQwen2;
  if (name == "qwen35") return PreTokenizer::kQwen35;
  return std::nullopt;
}

std::string_view pre_tokenizer_regex(PreTokenizer kind) {
  return kind == PreTokenizer::kQwen2 ? kQwen2Regex : kQwen35Regex;
}

std::optional<PreTokenizer> pre_tokenizer_from_regex(std::string_view regex) {
  if (regex == kQwen2Regex) return PreTokenizer::kQwen2;
  if (regex == kQwen35Regex) return PreTokenizer::kQwen35;
  return std::nullopt;
}

size_t pre_token_length(std::string_view text, size_t pos, PreTokenizer kind) {
  const CharClassTable& table = CharClassTable::get();
  const size_t n = text.size();
  // qwen35 keeps combining marks with letters and out of punctuation runs.
  const uint8_t word_classes = kind == PreTokenizer::kQwen35 ? (kLetter | kMark) : kLetter;
  const uint8_t not_punct_classes = kind == PreTokenizer::kQwen35
                                        ? (kWhitespace | kLetter | kMark | kNumber)
                                        : (kWhitespace | kLetter | kNumber);

  // End of the run of characters whose classes intersect `classes` (or, with
  // negate, do not), starting at `from`.
  auto run_end = [&](size_t from, uint8_t classes, bool negate) {
    while (from < n) {
      const Char c = char_at(text, from, table);
      const bool in = (c.classes & classes) != 0;
      if (in == negate) break;
      from += c.length;
    }
    return from;
  };
  auto newlines_end = [&](size_t from) {
    while (from < n && is_cr_or_lf(static_cast<unsigned char>(text[from]))) from++;
    return from;
  };

  const Char c0 = char_at(text, pos, table);
  const size_t after0 = pos + c0.length;

  // (?i:'s|'t|'re|'ve|'m|'ll|'d)
  if (c0.cp == '\'' && after0 < n) {
    const Char c1 = char_at(text, after0, table);
    const char32_t f1 = fold_case(c1.cp);
    if (f1 == 's' || f1 == 't' || f1 == 'm' || f1 == 'd') return after0 + c1.length - pos;
    const size_t after1 = after0 + c1.length;
    if ((f1 == 'r' || f1 == 'v' || f1 == 'l') && after1 < n) {
      const char32_t f2 = fold_case(char_at(text, after1, table).cp);
      if ((f1 == 'l' && f2 == 'l') || (f1 != 'l' && f2 == 'e')) {
        return after1 + char_at(text, after1, table).length - pos;
      }
    }
  }

  // [^\r\n\p{L}\p{N}]?\p{L}+   (qwen35: [^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+)
  const bool c0_can_prefix = !(c0.classes & (kLetter | kNumber)) && !is_cr_or_lf(c0.cp);
  if (c0_can_prefix && after0 < n) {
    const Char c1 = char_at(text, after0, table);
    if (c1.classes & word_classes) return run_end(after0 + c1.length, word_classes, false) - pos;
  }
  if (c0.classes & word_classes) return run_end(after0, word_classes, false) - pos;

  // \p{N}
  if (c0.classes & kNumber) return c0.length;

  // " ?[^\s\p{L}\p{N}]+[\r\n]*"   (qwen35 also excludes \p{M})
  if (c0.cp == ' ' && after0 < n) {
    const Char c1 = char_at(text, after0, table);
    if (!(c1.classes & not_punct_classes)) {
      return newlines_end(run_end(after0 + c1.length, not_punct_classes, true)) - pos;
    }
  }
  if (!(c0.classes & not_punct_classes)) {
    return newlines_end(run_end(after0, not_punct_classes, true)) - pos;
  }

  // \s*[\r\n]+ | \s+(?!\S) | \s+
  if (c0.classes & kWhitespace) {
    size_t end = pos;
    size_t last_start = pos;        // start of the run's last character
    size_t after_last_newline = 0;  // end of the run's last CR/LF, 0 if none
    size_t chars = 0;
    while (end < n) {
      const Char c = char_at(text, end, table);
      if (!(c.classes & kWhitespace)) break;
      last_start = end;
      end += c.length;
      chars++;
      if (is_cr_or_lf(c.cp)) after_last_newline = end;
    }
    // \s*[\r\n]+ backtracks to the last CR/LF of the run.
    if (after_last_newline) return after_last_newline - pos;
    // \s+(?!\S): the whole run at the end of the text, else all but the last
    // character (which then joins the next piece as its prefix).
    if (end == n || chars == 1) return end - pos;
    return last_start - pos;
  }

  // Unreachable for well-formed input (every character is in some class
  // above); kept so the function always makes progress.
  return c0.length;
}

std::vector<std::string> pre_tokenize(std::string_view text, PreTokenizer kind) {
  std::vector<std::string> pieces;
  pre_tokenize(text, kind, [&](std::string_view piece) { pieces.emplace_back(piece); });
  return pieces;
}

}  // namespace pocket::text
