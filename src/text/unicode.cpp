#include "text/unicode.h"

#include <unicode/bytestream.h>
#include <unicode/normalizer2.h>
#include <unicode/stringpiece.h>
#include <unicode/uchar.h>

#include <array>
#include <map>

#include "text/utf8.h"
#include "util/error.h"

namespace pocket::text {

uint8_t char_classes_from_icu(char32_t cp) {
  uint8_t c = 0;
  const UChar32 u = static_cast<UChar32>(cp);
  const uint32_t mask = U_MASK(u_charType(u));
  if (mask & U_GC_L_MASK) c |= kLetter;
  if (mask & U_GC_N_MASK) c |= kNumber;
  if (mask & U_GC_M_MASK) c |= kMark;
  if (u_isUWhiteSpace(u)) c |= kWhitespace;
  return c;
}

CharClassTable::CharClassTable() {
  for (char32_t cp = 0; cp < 0x80; cp++) ascii_[cp] = char_classes_from_icu(cp);
  // Most 256-code-point blocks are identical (unassigned planes, CJK, Hangul),
  // so deduplicating them keeps the table around 100 KB.
  constexpr size_t kBlocks = 0x110000 >> 8;
  block_index_.resize(kBlocks);
  std::map<std::array<uint8_t, 256>, uint16_t> seen;
  std::array<uint8_t, 256> block;
  for (size_t b = 0; b < kBlocks; b++) {
    for (size_t i = 0; i < 256; i++) block[i] = char_classes_from_icu(char32_t(b * 256 + i));
    auto [it, inserted] = seen.emplace(block, uint16_t(seen.size()));
    if (inserted) blocks_.insert(blocks_.end(), block.begin(), block.end());
    block_index_[b] = it->second;
  }
}

const CharClassTable& CharClassTable::get() {
  static const CharClassTable table;
  return table;
}

char32_t fold_case(char32_t cp) {
  if (cp < 0x80) return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
  return static_cast<char32_t>(u_foldCase(static_cast<UChar32>(cp), U_FOLD_CASE_DEFAULT));
}

namespace {

const icu::Normalizer2& nfc_instance() {
  static const icu::Normalizer2* instance = [] {
    UErrorCode status = U_ZERO_ERROR;
    const icu::Normalizer2* n = icu::Normalizer2::getNFCInstance(status);
    if (U_FAILURE(status) || !n) fail("ICU: cannot load the NFC normalizer: ", u_errorName(status));
    return n;
  }();
  return *instance;
}

}  // namespace

bool nfc_normalize(std::string_view text, std::string& out) {
  // Code points below U+0300 are NFC-stable and never combine with what comes
  // before them, so text without a lead byte >= 0xCC is already NFC.
  bool may_change = false;
  for (unsigned char b : text) {
    if (b >= 0xCC) {
      may_change = true;
      break;
    }
  }
  if (!may_change) return false;
  const icu::Normalizer2& nfc = nfc_instance();
  const icu::StringPiece piece(text.data(), static_cast<int32_t>(text.size()));
  UErrorCode status = U_ZERO_ERROR;
  if (nfc.isNormalizedUTF8(piece, status) && U_SUCCESS(status)) return false;
  status = U_ZERO_ERROR;
  std::string result;
  icu::StringByteSink<std::string> sink(&result, static_cast<int32_t>(text.size()));
  nfc.normalizeUTF8(0, piece, sink, nullptr, status);
  if (U_FAILURE(status)) fail("NFC normalization failed: ", u_errorName(status));
  out = std::move(result);
  return true;
}

std::string to_nfc(std::string_view text) {
  std::string out;
  if (!nfc_normalize(text, out)) out.assign(text);
  return out;
}

namespace {

struct ByteLevelMaps {
  char32_t to_unicode[256];
  int16_t to_byte[0x144];    // every symbol is below U+0144
  std::string spelled[256];  // UTF-8 of each byte's symbol

  ByteLevelMaps() {
    for (auto& b : to_byte) b = -1;
    int next_extra = 0;
    for (int b = 0; b < 256; b++) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
      to_unicode[b] = printable ? char32_t(b) : char32_t(0x100 + next_extra++);
      to_byte[to_unicode[b]] = int16_t(b);
      append_utf8(spelled[b], to_unicode[b]);
    }
  }
};

const ByteLevelMaps& byte_level_maps() {
  static const ByteLevelMaps maps;
  return maps;
}

}  // namespace

char32_t byte_to_unicode(uint8_t byte) {
  return byte_level_maps().to_unicode[byte];
}

int unicode_to_byte(char32_t cp) {
  return cp < 0x144 ? byte_level_maps().to_byte[cp] : -1;
}

std::string bytes_to_byte_level(std::string_view bytes) {
  const ByteLevelMaps& maps = byte_level_maps();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char b : bytes) out += maps.spelled[b];
  return out;
}

bool byte_level_to_bytes(std::string_view byte_level, std::string& out) {
  out.clear();
  size_t i = 0;
  while (i < byte_level.size()) {
    Utf8Step s = utf8_step(byte_level.data() + i, byte_level.size() - i);
    if (s.status != Utf8Status::kValid) return false;
    const int b = unicode_to_byte(s.code_point);
    if (b < 0) return false;
    out.push_back(char(b));
    i += s.length;
  }
  return true;
}

}  // namespace pocket::text
