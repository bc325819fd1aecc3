// UTF-8 decoding, validation and repair.
//
// Ill-formed input is handled the way the Unicode standard recommends (and
// Python's decode("utf-8", "replace") does): each *maximal subpart* of an
// ill-formed sequence, i.e. the longest prefix of it that could still start a
// well-formed character, becomes one U+FFFD. Overlongs, surrogates (ED A0..BF)
// and code points above U+10FFFF are ill-formed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pocket::text {

inline constexpr char32_t kReplacementChar = 0xFFFD;
inline constexpr std::string_view kReplacementUtf8 = "\xEF\xBF\xBD";

enum class Utf8Status : uint8_t {
  kValid,      // `length` bytes form the character `code_point`
  kInvalid,    // `length` bytes (a maximal subpart, >= 1) can never be well formed
  kTruncated,  // `length` bytes are a valid prefix that the input ends inside of
};

struct Utf8Step {
  Utf8Status status;
  uint8_t length;
  char32_t code_point;  // kValid only
};

// Decodes the character at the start of [p, p+n); n must be >= 1.
Utf8Step utf8_step(const char* p, size_t n);

// Byte offset of the first ill-formed (or truncated) sequence, or nullopt when
// the whole text is well-formed UTF-8.
std::optional<size_t> find_invalid_utf8(std::string_view text);

// The text with every maximal ill-formed subpart (including a truncated tail)
// replaced by U+FFFD. Well-formed text is returned unchanged.
std::string replace_invalid_utf8(std::string_view text);

// Appends the UTF-8 encoding of cp (which must be a scalar value).
void append_utf8(std::string& out, char32_t cp);

// Decodes well-formed UTF-8 at p (caller guarantees validity and n >= 1).
inline char32_t decode_valid_utf8(const char* p, size_t n, size_t* length) {
  const auto b0 = static_cast<unsigned char>(p[0]);
  if (b0 < 0x80) {
    *length = 1;
    return b0;
  }
  Utf8Step s = utf8_step(p, n);
  *length = s.length;
  return s.code_point;
}

}  // namespace pocket::text
