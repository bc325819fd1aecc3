#include "text/jinja_text.h"

#include <unicode/bytestream.h>
#include <unicode/casemap.h>
#include <unicode/uchar.h>

#include <algorithm>

namespace pocket::jinja::text {

size_t decode(std::string_view s, size_t pos, char32_t* cp) {
  const auto b0 = static_cast<unsigned char>(s[pos]);
  if (b0 < 0x80) {
    *cp = b0;
    return 1;
  }
  size_t n = 0;
  char32_t c = 0;
  char32_t min = 0;
  if ((b0 & 0xE0) == 0xC0) {
    n = 2, c = b0 & 0x1F, min = 0x80;
  } else if ((b0 & 0xF0) == 0xE0) {
    n = 3, c = b0 & 0x0F, min = 0x800;
  } else if ((b0 & 0xF8) == 0xF0) {
    n = 4, c = b0 & 0x07, min = 0x10000;
  } else {
    *cp = 0xFFFD;
    return 1;
  }
  if (pos + n > s.size()) {
    *cp = 0xFFFD;
    return 1;
  }
  for (size_t i = 1; i < n; i++) {
    const auto b = static_cast<unsigned char>(s[pos + i]);
    if ((b & 0xC0) != 0x80) {
      *cp = 0xFFFD;
      return 1;
    }
    c = (c << 6) | (b & 0x3F);
  }
  if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) {
    *cp = 0xFFFD;
    return 1;
  }
  *cp = c;
  return n;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD;
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else if (cp <= 0x10FFFF) {
    out += char(0xF0 | (cp >> 18));
    out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else {
    append_utf8(out, 0xFFFD);
  }
}

bool is_space(char32_t c) {
  if (c < 0x80) return c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F);
  return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 ||
         c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

bool is_ascii(std::string_view s) {
  for (char ch : s) {
    if (static_cast<unsigned char>(ch) >= 0x80) return false;
  }
  return true;
}

namespace {

// Start of the code point that ends just before `end` (end > 0).
size_t previous_start(std::string_view s, size_t end) {
  size_t start = end - 1;
  // Step back over at most 3 continuation bytes, then check the sequence really
  // covers [start, end); otherwise treat the last byte alone.
  while (start > 0 && end - start < 4 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) {
    start--;
  }
  char32_t cp;
  if (decode(s, start, &cp) == end - start) return start;
  return end - 1;
}

template <typename Pred>
std::string_view strip_if(std::string_view s, bool left, bool right, Pred strip_it) {
  size_t begin = 0, end = s.size();
  if (left) {
    while (begin < end) {
      char32_t cp;
      size_t n = decode(s, begin, &cp);
      if (!strip_it(cp)) break;
      begin += n;
    }
  }
  if (right) {
    while (end > begin) {
      size_t start = previous_start(s, end);
      char32_t cp;
      decode(s, start, &cp);
      if (!strip_it(cp)) break;
      end = start;
    }
  }
  return s.substr(begin, end - begin);
}

}  // namespace

std::string_view strip(std::string_view s, bool left, bool right) {
  return strip_if(s, left, right, is_space);
}

std::string_view strip_chars(std::string_view s, std::string_view chars, bool left, bool right) {
  std::vector<char32_t> set;
  for (size_t i = 0; i < chars.size();) {
    char32_t cp;
    i += decode(chars, i, &cp);
    set.push_back(cp);
  }
  return strip_if(s, left, right,
                  [&](char32_t cp) { return std::find(set.begin(), set.end(), cp) != set.end(); });
}

size_t length(std::string_view s) {
  size_t n = 0;
  for (size_t i = 0; i < s.size(); n++) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      i++;
    } else {
      char32_t cp;
      i += decode(s, i, &cp);
    }
  }
  return n;
}

std::vector<size_t> offsets(std::string_view s) {
  std::vector<size_t> out;
  out.reserve(s.size() + 1);
  for (size_t i = 0; i < s.size();) {
    out.push_back(i);
    char32_t cp;
    i += decode(s, i, &cp);
  }
  out.push_back(s.size());
  return out;
}

std::vector<std::string> chars(std::string_view s) {
  std::vector<std::string> out;
  for (size_t i = 0; i < s.size();) {
    char32_t cp;
    size_t n = decode(s, i, &cp);
    out.emplace_back(s.substr(i, n));
    i += n;
  }
  return out;
}

std::vector<std::string> split(std::string_view s, const std::string* sep, long long maxsplit) {
  std::vector<std::string> out;
  if (sep) {
    size_t pos = 0;
    while (maxsplit < 0 || (long long)out.size() < maxsplit) {
      size_t hit = s.find(*sep, pos);
      if (hit == std::string_view::npos) break;
      out.emplace_back(s.substr(pos, hit - pos));
      pos = hit + sep->size();
    }
    out.emplace_back(s.substr(pos));
    return out;
  }
  // Whitespace runs; leading and trailing whitespace yields no empty parts.
  size_t i = 0;
  auto skip_space = [&] {
    while (i < s.size()) {
      char32_t cp;
      size_t n = decode(s, i, &cp);
      if (!is_space(cp)) break;
      i += n;
    }
  };
  skip_space();
  while (i < s.size()) {
    if (maxsplit >= 0 && (long long)out.size() >= maxsplit) {
      // The rest, trailing whitespace included, is the last part.
      out.emplace_back(s.substr(i));
      return out;
    }
    size_t start = i;
    while (i < s.size()) {
      char32_t cp;
      size_t n = decode(s, i, &cp);
      if (is_space(cp)) break;
      i += n;
    }
    out.emplace_back(s.substr(start, i - start));
    skip_space();
  }
  return out;
}

std::vector<std::string> rsplit(std::string_view s, const std::string* sep, long long maxsplit) {
  if (maxsplit < 0) return split(s, sep, maxsplit);
  std::vector<std::string> out;
  if (sep) {
    size_t end = s.size();
    while ((long long)out.size() < maxsplit) {
      if (end < sep->size()) break;
      size_t hit = s.rfind(*sep, end - sep->size());
      if (hit == std::string_view::npos) break;
      out.emplace_back(s.substr(hit + sep->size(), end - hit - sep->size()));
      end = hit;
    }
    out.emplace_back(s.substr(0, end));
    std::reverse(out.begin(), out.end());
    return out;
  }
  size_t end = s.size();
  auto skip_space_back = [&] {
    while (end > 0) {
      size_t start = previous_start(s, end);
      char32_t cp;
      decode(s, start, &cp);
      if (!is_space(cp)) break;
      end = start;
    }
  };
  skip_space_back();
  while (end > 0) {
    if ((long long)out.size() >= maxsplit) {
      out.emplace_back(s.substr(0, end));
      break;
    }
    size_t stop = end;
    while (end > 0) {
      size_t start = previous_start(s, end);
      char32_t cp;
      decode(s, start, &cp);
      if (is_space(cp)) break;
      end = start;
    }
    out.emplace_back(s.substr(end, stop - end));
    skip_space_back();
  }
  std::reverse(out.begin(), out.end());
  return out;
}

std::vector<std::string> splitlines(std::string_view s) {
  std::vector<std::string> out;
  size_t start = 0, i = 0;
  while (i < s.size()) {
    char32_t cp;
    size_t n = decode(s, i, &cp);
    bool is_break = cp == '\n' || cp == '\r' || cp == 0x0B || cp == 0x0C || cp == 0x1C ||
                    cp == 0x1D || cp == 0x1E || cp == 0x85 || cp == 0x2028 || cp == 0x2029;
    if (!is_break) {
      i += n;
      continue;
    }
    out.emplace_back(s.substr(start, i - start));
    i += n;
    if (cp == '\r' && i < s.size() && s[i] == '\n') i++;
    start = i;
  }
  if (start < s.size()) out.emplace_back(s.substr(start));
  return out;
}

std::string replace(std::string_view s, std::string_view from, std::string_view to,
                    long long count) {
  std::string out;
  if (from.empty()) {
    // Python inserts `to` before every character and at the end.
    long long done = 0;
    size_t i = 0;
    while (i <= s.size()) {
      if (count < 0 || done < count) {
        out += to;
        done++;
      }
      if (i == s.size()) break;
      char32_t cp;
      size_t n = decode(s, i, &cp);
      out += s.substr(i, n);
      i += n;
    }
    return out;
  }
  size_t pos = 0;
  long long done = 0;
  while (count < 0 || done < count) {
    size_t hit = s.find(from, pos);
    if (hit == std::string_view::npos) break;
    out += s.substr(pos, hit - pos);
    out += to;
    pos = hit + from.size();
    done++;
  }
  out += s.substr(pos);
  return out;
}

size_t count(std::string_view s, std::string_view sub) {
  if (sub.empty()) return length(s) + 1;
  size_t n = 0;
  for (size_t pos = s.find(sub); pos != std::string_view::npos; pos = s.find(sub, pos + sub.size())) {
    n++;
  }
  return n;
}

namespace {

enum class CaseOp { kUpper, kLower };

std::string map_case(std::string_view s, CaseOp op) {
  if (is_ascii(s)) {
    std::string out(s);
    for (char& ch : out) {
      if (op == CaseOp::kUpper && ch >= 'a' && ch <= 'z') ch = char(ch - 32);
      if (op == CaseOp::kLower && ch >= 'A' && ch <= 'Z') ch = char(ch + 32);
    }
    return out;
  }
  std::string out;
  icu::StringByteSink<std::string> sink(&out);
  UErrorCode status = U_ZERO_ERROR;
  icu::StringPiece piece(s.data(), int32_t(s.size()));
  if (op == CaseOp::kUpper) {
    icu::CaseMap::utf8ToUpper("", 0, piece, sink, nullptr, status);
  } else {
    icu::CaseMap::utf8ToLower("", 0, piece, sink, nullptr, status);
  }
  if (U_FAILURE(status)) return std::string(s);
  return out;
}

}  // namespace

std::string upper(std::string_view s) { return map_case(s, CaseOp::kUpper); }
std::string lower(std::string_view s) { return map_case(s, CaseOp::kLower); }

namespace {

// Full title-case mapping of one character ("ß" -> "Ss"), as Python's
// str.title() and str.capitalize() apply to the first letter of a word.
std::string title_char(std::string_view ch) {
  std::string out;
  icu::StringByteSink<std::string> sink(&out);
  UErrorCode status = U_ZERO_ERROR;
  icu::CaseMap::utf8ToTitle("", U_TITLECASE_NO_BREAK_ADJUSTMENT, nullptr,
                            icu::StringPiece(ch.data(), int32_t(ch.size())), sink, nullptr, status);
  if (U_FAILURE(status)) return std::string(ch);
  return out;
}

}  // namespace

std::string title(std::string_view s) {
  // Python: a cased character following a cased one is lowered, any other is
  // title-cased.
  std::string out;
  bool previous_cased = false;
  for (size_t i = 0; i < s.size();) {
    char32_t cp;
    size_t n = decode(s, i, &cp);
    std::string_view ch = s.substr(i, n);
    if (cp < 0x80) {
      char c = char(cp);
      if (previous_cased && c >= 'A' && c <= 'Z') c = char(c + 32);
      if (!previous_cased && c >= 'a' && c <= 'z') c = char(c - 32);
      out += c;
    } else if (cp == 0xFFFD && n == 1) {
      out += ch;
    } else {
      out += previous_cased ? lower(ch) : title_char(ch);
    }
    previous_cased = u_hasBinaryProperty(UChar32(cp), UCHAR_CASED);
    i += n;
  }
  return out;
}

std::string capitalize(std::string_view s) {
  if (s.empty()) return std::string();
  char32_t cp;
  size_t n = decode(s, 0, &cp);
  std::string out = cp < 0x80 ? upper(s.substr(0, n)) : title_char(s.substr(0, n));
  out += lower(s.substr(n));
  return out;
}

bool is_word_char(char32_t cp) {
  if (cp < 0x80) return cp == '_' || (cp >= '0' && cp <= '9') || ((cp | 32) >= 'a' && (cp | 32) <= 'z');
  return u_isalnum(UChar32(cp)) || u_hasBinaryProperty(UChar32(cp), UCHAR_ALPHABETIC);
}

namespace {
// str.isupper()/islower(): at least one cased character and no cased character
// of the other case.
bool case_test(std::string_view s, bool want_upper) {
  bool any_cased = false;
  for (size_t i = 0; i < s.size();) {
    char32_t cp;
    i += decode(s, i, &cp);
    bool is_up = u_isupper(UChar32(cp)) || u_istitle(UChar32(cp));
    bool is_low = u_islower(UChar32(cp));
    if (want_upper ? is_low : (is_up)) return false;
    if (want_upper ? is_up : is_low) any_cased = true;
  }
  return any_cased;
}
}  // namespace

bool is_upper(std::string_view s) { return case_test(s, true); }
bool is_lower(std::string_view s) { return case_test(s, false); }

}  // namespace pocket::jinja::text
