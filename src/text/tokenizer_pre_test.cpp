// The hand-written pre-tokenizers against the regexes themselves, run by
// PCRE2 (UTF + UCP) on many random strings, plus hand-checked cases.
//
// PCRE2 is loaded with dlopen so the test needs no link-time dependency; the
// cross-check is skipped (with a message) when libpcre2-8 is not installed.
#include <dlfcn.h>
#include <gtest/gtest.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <unicode/uchar.h>

#include <random>
#include <string>
#include <vector>

#include "text/tokenizer_pre.h"
#include "text/unicode.h"
#include "text/utf8.h"

namespace pocket::text {
namespace {

std::vector<std::string> split(std::string_view text, PreTokenizer kind) {
  return pre_tokenize(text, kind);
}

// ---------------------------------------------------------------------------
// Hand-checked cases (derived from the regex semantics by hand).

TEST(TokenizerPre, Basics) {
  using V = std::vector<std::string>;
  const auto q2 = PreTokenizer::kQwen2;
  EXPECT_EQ(split("", q2), V{});
  EXPECT_EQ(split("Hello world!", q2), (V{"Hello", " world", "!"}));
  // Contractions, any case; "'ſ" folds to "'s".
  EXPECT_EQ(split("I'm they'RE we'Ll it's", q2),
            (V{"I", "'m", " they", "'RE", " we", "'Ll", " it", "'s"}));
  EXPECT_EQ(split("x'\xC5\xBF", q2), (V{"x", "'\xC5\xBF"}));
  EXPECT_EQ(split("'hello", q2), (V{"'hello"}));
  // Digits one by one; a word may take one leading non-letter (not CR/LF).
  EXPECT_EQ(split("abc123 4x", q2), (V{"abc", "1", "2", "3", " ", "4", "x"}));
  EXPECT_EQ(split("\tfoo\nbar", q2), (V{"\tfoo", "\n", "bar"}));
  // Whitespace: the last space joins the next word; newline runs with the
  // whitespace before them; trailing whitespace stays whole.
  EXPECT_EQ(split("a   b", q2), (V{"a", "  ", " b"}));
  EXPECT_EQ(split("a  \n\n  b", q2), (V{"a", "  \n\n", " ", " b"}));
  EXPECT_EQ(split("a \n \t", q2), (V{"a", " \n", " \t"}));
  EXPECT_EQ(split("a \n x \t ", q2), (V{"a", " \n", " x", " \t "}));
  // Punctuation runs take one leading space and trailing newlines.
  EXPECT_EQ(split("x += 1;\n\ny", q2), (V{"x", " +=", " ", "1", ";\n\n", "y"}));
  EXPECT_EQ(split(" \xE4\xBD\xA0\xE5\xA5\xBD\xE3\x80\x82", q2),  // " 你好。"
            (V{" \xE4\xBD\xA0\xE5\xA5\xBD", "\xE3\x80\x82"}));
}

TEST(TokenizerPre, CombiningMarksDifferBetweenQwen2AndQwen35) {
  using V = std::vector<std::string>;
  const std::string decomposed = "cafe\xCC\x81 ok";  // e + U+0301
  EXPECT_EQ(split(decomposed, PreTokenizer::kQwen2), (V{"cafe", "\xCC\x81", " ok"}));
  EXPECT_EQ(split(decomposed, PreTokenizer::kQwen35), (V{"cafe\xCC\x81", " ok"}));
  // A lone mark: punctuation for qwen2, a one-character word for qwen35.
  EXPECT_EQ(split("\xCC\x81!", PreTokenizer::kQwen2), (V{"\xCC\x81!"}));
  EXPECT_EQ(split("\xCC\x81!", PreTokenizer::kQwen35), (V{"\xCC\x81", "!"}));
  // Thai vowel signs are marks.
  const std::string thai = "\xE0\xB8\x97\xE0\xB8\xB5\xE0\xB9\x88";  // ที่
  EXPECT_EQ(split(thai, PreTokenizer::kQwen35), (V{thai}));
  EXPECT_EQ(split(thai, PreTokenizer::kQwen2).size(), 2u);
}

TEST(TokenizerPre, RegexDetection) {
  for (PreTokenizer k : {PreTokenizer::kQwen2, PreTokenizer::kQwen35}) {
    EXPECT_EQ(pre_tokenizer_from_regex(pre_tokenizer_regex(k)), k);
    EXPECT_EQ(pre_tokenizer_from_name(pre_tokenizer_name(k)), k);
  }
  EXPECT_FALSE(pre_tokenizer_from_name("gpt2"));
  EXPECT_FALSE(pre_tokenizer_from_regex("\\s+"));
}

// The lookup table is exactly ICU's data for every code point.
TEST(TokenizerPre, CharClassTableMatchesIcu) {
  const CharClassTable& table = CharClassTable::get();
  for (char32_t cp = 0; cp <= 0x10FFFF; cp++) {
    ASSERT_EQ(table.classes(cp), char_classes_from_icu(cp)) << std::hex << uint32_t(cp);
  }
}

// ---------------------------------------------------------------------------
// PCRE2 cross-check.

class Pcre2 {
 public:
  Pcre2() {
    lib_ = dlopen("libpcre2-8.so.0", RTLD_NOW | RTLD_LOCAL);
    if (!lib_) return;
    compile_ = reinterpret_cast<decltype(compile_)>(dlsym(lib_, "pcre2_compile_8"));
    code_free_ = reinterpret_cast<decltype(code_free_)>(dlsym(lib_, "pcre2_code_free_8"));
    md_create_ = reinterpret_cast<decltype(md_create_)>(
        dlsym(lib_, "pcre2_match_data_create_from_pattern_8"));
    md_free_ = reinterpret_cast<decltype(md_free_)>(dlsym(lib_, "pcre2_match_data_free_8"));
    match_ = reinterpret_cast<decltype(match_)>(dlsym(lib_, "pcre2_match_8"));
    ovector_ = reinterpret_cast<decltype(ovector_)>(dlsym(lib_, "pcre2_get_ovector_pointer_8"));
    if (!compile_ || !code_free_ || !md_create_ || !md_free_ || !match_ || !ovector_) {
      dlclose(lib_);
      lib_ = nullptr;
    }
  }
  ~Pcre2() {
    if (lib_) dlclose(lib_);
  }
  bool available() const { return lib_ != nullptr; }

  struct Regex {
    const Pcre2* lib;
    pcre2_code* code;
    pcre2_match_data* md;
    ~Regex() {
      lib->md_free_(md);
      lib->code_free_(code);
    }
    // Length of the match starting exactly at or after `start`: (begin, end), or (-1,-1).
    std::pair<long, long> find(std::string_view s, size_t start) const {
      int rc = lib->match_(code, reinterpret_cast<PCRE2_SPTR>(s.data()), s.size(), start,
                           PCRE2_NO_UTF_CHECK, md, nullptr);
      if (rc < 0) return {-1, -1};
      PCRE2_SIZE* ov = lib->ovector_(md);
      return {long(ov[0]), long(ov[1])};
    }
  };

  std::unique_ptr<Regex> compile(std::string_view pattern) const {
    int err = 0;
    PCRE2_SIZE offset = 0;
    pcre2_code* code = compile_(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                PCRE2_UTF | PCRE2_UCP, &err, &offset, nullptr);
    if (!code) return nullptr;
    auto r = std::make_unique<Regex>();
    r->lib = this;
    r->code = code;
    r->md = md_create_(code, nullptr);
    return r;
  }

 private:
  void* lib_ = nullptr;
  pcre2_code* (*compile_)(PCRE2_SPTR, PCRE2_SIZE, uint32_t, int*, PCRE2_SIZE*,
                          pcre2_compile_context*) = nullptr;
  void (*code_free_)(pcre2_code*) = nullptr;
  pcre2_match_data* (*md_create_)(const pcre2_code*, pcre2_general_context*) = nullptr;
  void (*md_free_)(pcre2_match_data*) = nullptr;
  int (*match_)(const pcre2_code*, PCRE2_SPTR, PCRE2_SIZE, PCRE2_SIZE, uint32_t, pcre2_match_data*,
                pcre2_match_context*) = nullptr;
  PCRE2_SIZE* (*ovector_)(pcre2_match_data*) = nullptr;
};

// Hugging Face "Isolated" split: matches and the gaps between them are pieces.
std::vector<std::string> split_with(const Pcre2::Regex& re, std::string_view text) {
  std::vector<std::string> pieces;
  size_t pos = 0;
  while (pos < text.size()) {
    auto [b, e] = re.find(text, pos);
    if (b < 0) {
      pieces.emplace_back(text.substr(pos));
      break;
    }
    if (size_t(b) > pos) pieces.emplace_back(text.substr(pos, b - pos));
    if (e == b) {  // cannot happen with these regexes; avoid looping forever
      ADD_FAILURE() << "empty match";
      break;
    }
    pieces.emplace_back(text.substr(b, e - b));
    pos = size_t(e);
  }
  return pieces;
}

// Characters worth mixing: every kind the regexes distinguish, in several scripts.
std::vector<char32_t> interesting_characters() {
  std::vector<char32_t> chars;
  for (char32_t c = 0; c < 0x80; c++) chars.push_back(c);
  const std::pair<char32_t, char32_t> ranges[] = {
      {0x80, 0x17F},       // Latin-1 (NEL, NBSP, soft hyphen), Latin Extended-A (ſ)
      {0x300, 0x36F},      // combining diacritics
      {0x370, 0x3FF},      // Greek
      {0x400, 0x45F},      // Cyrillic
      {0x591, 0x5F4},      // Hebrew with points
      {0x600, 0x6FF},      // Arabic (marks, Arabic-Indic digits)
      {0x900, 0x97F},      // Devanagari (virama, vowel signs)
      {0xE00, 0xE5B},      // Thai
      {0x1780, 0x17F9},    // Khmer
      {0x1100, 0x1112},    // Hangul jamo
      {0x1680, 0x1680},    // Ogham space
      {0x1800, 0x180F},    // Mongolian (U+180E: \s in PCRE2, not White_Space)
      {0x2000, 0x206F},    // general punctuation: spaces, ZWJ, LS/PS, bidi controls
      {0x2070, 0x209F},    // superscripts / subscripts (No)
      {0x20D0, 0x20F0},    // combining marks for symbols (Me)
      {0x2100, 0x218B},    // letterlike, Roman numerals (Nl), Kelvin sign
      {0x2460, 0x24FF},    // enclosed alphanumerics (No, So)
      {0x3000, 0x303F},    // CJK punctuation, ideographic space
      {0x3040, 0x30FF},    // kana
      {0x4E00, 0x4E80},    // CJK ideographs
      {0xAC00, 0xAC40},    // Hangul syllables
      {0xFE00, 0xFE0F},    // variation selectors (Mn)
      {0xFEFF, 0xFEFF},    // BOM
      {0xFF01, 0xFF5E},    // full-width forms
      {0x1F300, 0x1F320},  // emoji
      {0x1F3FB, 0x1F3FF},  // skin tones
      {0x1F1E6, 0x1F1FF},  // regional indicators
      {0x1D400, 0x1D420},  // math alphanumerics (astral letters)
      {0x10FFFD, 0x10FFFD},
  };
  for (auto [lo, hi] : ranges) {
    for (char32_t c = lo; c <= hi; c++) chars.push_back(c);
  }
  // Plus a random sample of the whole code space (no surrogates).
  std::mt19937 rng(7);
  for (int i = 0; i < 3000; i++) {
    char32_t c = rng() % 0x110000;
    if (c >= 0xD800 && c <= 0xDFFF) continue;
    chars.push_back(c);
  }
  return chars;
}

TEST(TokenizerPre, MatchesPcre2OnRandomStrings) {
  Pcre2 pcre2;
  if (!pcre2.available()) GTEST_SKIP() << "libpcre2-8.so.0 not found; cross-check skipped";

  // Keep only characters on which PCRE2's Unicode data (its own version)
  // agrees with ICU's for every class the regexes use. Report the rest.
  auto class_re = [&](const char* p) { return pcre2.compile(p); };
  auto letter = class_re("^\\p{L}$"), number = class_re("^\\p{N}$"), mark = class_re("^\\p{M}$"),
       space = class_re("^\\s$");
  ASSERT_TRUE(letter && number && mark && space);
  std::vector<char32_t> alphabet;
  std::vector<char32_t> excluded;
  for (char32_t c : interesting_characters()) {
    std::string s;
    append_utf8(s, c);
    const uint8_t ours = char_classes_from_icu(c);
    const uint8_t theirs = (letter->find(s, 0).first == 0 ? kLetter : 0) |
                           (number->find(s, 0).first == 0 ? kNumber : 0) |
                           (mark->find(s, 0).first == 0 ? kMark : 0) |
                           (space->find(s, 0).first == 0 ? kWhitespace : 0);
    if (ours == theirs) {
      alphabet.push_back(c);
    } else {
      excluded.push_back(c);
    }
  }
  std::printf(
      "[ pcre2    ] alphabet %zu characters; %zu excluded where PCRE2's Unicode data "
      "differs from ICU's (newer Unicode, \\s vs White_Space):",
      alphabet.size(), excluded.size());
  for (size_t i = 0; i < excluded.size() && i < 12; i++)
    std::printf(" U+%04X", unsigned(excluded[i]));
  std::printf("\n");
  // Differences should be rare (U+180E in \s, characters new in ICU's Unicode).
  EXPECT_LT(excluded.size(), alphabet.size() / 50);

  // Strings are built from a few "pools" so that the interesting interactions
  // (space before words, apostrophes, CR/LF inside whitespace runs) are common.
  const std::vector<char32_t> hot = {' ', ' ', ' ',   '\n', '\r',   '\t',  '\'',  'a',    's',
                                     'S', 'l', 'L',   'e',  'r',    'v',   'm',   'd',    't',
                                     '1', '.', 0x301, 0xA0, 0x3000, 0x17F, 0xE35, 0x4E00, 0x1F600};
  for (PreTokenizer kind : {PreTokenizer::kQwen2, PreTokenizer::kQwen35}) {
    auto re = pcre2.compile(pre_tokenizer_regex(kind));
    ASSERT_TRUE(re) << "PCRE2 rejects the regex";
    std::mt19937 rng(kind == PreTokenizer::kQwen2 ? 1 : 2);
    size_t checked = 0, failures = 0;
    for (int iter = 0; iter < 60000 && failures < 10; iter++) {
      const size_t len = rng() % 24;
      std::string s;
      for (size_t i = 0; i < len; i++) {
        const char32_t c = rng() % 2 ? hot[rng() % hot.size()] : alphabet[rng() % alphabet.size()];
        append_utf8(s, c);
      }
      const auto want = split_with(*re, s);
      const auto got = split(s, kind);
      checked++;
      if (got != want) {
        failures++;
        std::string w, g;
        for (auto& p : want) w += "[" + p + "]";
        for (auto& p : got) g += "[" + p + "]";
        ADD_FAILURE() << pre_tokenizer_name(kind) << " on " << s << "\n pcre2: " << w
                      << "\n ours:  " << g;
      }
    }
    std::printf("[ pcre2    ] %s: %zu random strings, %zu mismatches\n",
                std::string(pre_tokenizer_name(kind)).c_str(), checked, failures);
  }
}

}  // namespace
}  // namespace pocket::text
