// Unicode helpers for the tokenizer: character classes (from ICU's property
// data, never hand-written ranges), NFC normalization (ICU) and the GPT-2
// byte <-> unicode mapping used by byte-level BPE vocabularies.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pocket::text {

// Classes the pre-tokenizer regexes ask about. kWhitespace is the Unicode
// White_Space property (what \s means in the Hugging Face / Oniguruma regexes).
enum CharClass : uint8_t {
  kLetter = 1 << 0,      // \p{L}: Lu Ll Lt Lm Lo
  kNumber = 1 << 1,      // \p{N}: Nd Nl No
  kMark = 1 << 2,        // \p{M}: Mn Mc Me
  kWhitespace = 1 << 3,  // \s
};

// A flat two-level lookup table over all code points, built once from ICU.
class CharClassTable {
 public:
  static const CharClassTable& get();  // thread-safe lazy construction

  uint8_t classes(char32_t cp) const {
    if (cp < 0x80) return ascii_[cp];
    if (cp > 0x10FFFF) return 0;
    return blocks_[size_t(block_index_[cp >> 8]) * 256 + (cp & 0xFF)];
  }

 private:
  CharClassTable();
  uint8_t ascii_[128];
  std::vector<uint16_t> block_index_;  // (cp >> 8) -> block number
  std::vector<uint8_t> blocks_;        // deduplicated 256-entry blocks
};

// Classes computed directly through ICU (slow path; for tests and table building).
uint8_t char_classes_from_icu(char32_t cp);

// Unicode simple case folding (ICU u_foldCase), e.g. 'S' -> 's', U+017F -> 's'.
char32_t fold_case(char32_t cp);

// NFC. Returns true and fills `out` when `text` (well-formed UTF-8) changes
// under normalization; returns false (out untouched) when it is already NFC.
bool nfc_normalize(std::string_view text, std::string& out);
// Convenience form: always returns the NFC text.
std::string to_nfc(std::string_view text);

// GPT-2 byte-level mapping: every byte value has a printable code point
// (printable Latin-1 bytes map to themselves, the others to U+0100 + k).
char32_t byte_to_unicode(uint8_t byte);
// Inverse of byte_to_unicode, or -1 if cp is not one of the 256 symbols.
int unicode_to_byte(char32_t cp);
// The byte-level (vocabulary) spelling of raw bytes, e.g. " hi" -> "Ġhi".
std::string bytes_to_byte_level(std::string_view bytes);
// Raw bytes of a byte-level string; false if it contains a non-symbol character
// or is not well-formed UTF-8.
bool byte_level_to_bytes(std::string_view byte_level, std::string& out);

}  // namespace pocket::text
