#include "text/utf8.h"

namespace pocket::text {

namespace {

bool is_continuation(unsigned char b) {
  return (b & 0xC0) == 0x80;
}

}  // namespace

Utf8Step utf8_step(const char* p, size_t n) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  const unsigned char b0 = u[0];
  if (b0 < 0x80) return {Utf8Status::kValid, 1, b0};

  // Lead byte: number of continuation bytes and the allowed range of the
  // first one (the narrower ranges exclude overlongs, surrogates and > U+10FFFF).
  int extra = 0;
  unsigned char lo = 0x80, hi = 0xBF;
  char32_t cp = 0;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    extra = 1;
    cp = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    extra = 2;
    cp = b0 & 0x0F;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    extra = 3;
    cp = b0 & 0x07;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return {Utf8Status::kInvalid, 1, 0};  // stray continuation, C0/C1, F5..FF
  }

  for (int i = 1; i <= extra; i++) {
    if (size_t(i) >= n) return {Utf8Status::kTruncated, uint8_t(i), 0};
    const unsigned char b = u[i];
    const bool ok = i == 1 ? (b >= lo && b <= hi) : is_continuation(b);
    if (!ok) return {Utf8Status::kInvalid, uint8_t(i), 0};
    cp = (cp << 6) | (b & 0x3F);
  }
  return {Utf8Status::kValid, uint8_t(extra + 1), cp};
}

std::optional<size_t> find_invalid_utf8(std::string_view text) {
  const char* p = text.data();
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    // ASCII runs are the common case: skip 8 bytes at a time.
    while (i + 8 <= n) {
      uint64_t word;
      __builtin_memcpy(&word, p + i, 8);
      if (word & 0x8080808080808080ull) break;
      i += 8;
    }
    if (i >= n) break;
    if (static_cast<unsigned char>(p[i]) < 0x80) {
      i++;
      continue;
    }
    Utf8Step s = utf8_step(p + i, n - i);
    if (s.status != Utf8Status::kValid) return i;
    i += s.length;
  }
  return std::nullopt;
}

std::string replace_invalid_utf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    Utf8Step s = utf8_step(text.data() + i, text.size() - i);
    if (s.status == Utf8Status::kValid) {
      out.append(text.data() + i, s.length);
    } else {
      out.append(kReplacementUtf8);
    }
    i += s.length;
  }
  return out;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(char(cp));
  } else if (cp < 0x800) {
    out.push_back(char(0xC0 | (cp >> 6)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(char(0xE0 | (cp >> 12)));
    out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(char(0xF0 | (cp >> 18)));
    out.push_back(char(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  }
}

}  // namespace pocket::text
