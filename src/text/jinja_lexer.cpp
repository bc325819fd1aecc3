#include "text/jinja_lexer.h"

#include <unicode/uchar.h>

#include <charconv>
#include <cstdlib>

#include "text/jinja.h"
#include "text/jinja_text.h"

namespace pocket::jinja {

namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }

class Lexer {
 public:
  Lexer(std::string_view source, const LexOptions& options) : opt_(options) {
    // Jinja2 turns \r\n and \r into \n and drops one trailing newline.
    src_.reserve(source.size());
    for (size_t i = 0; i < source.size(); i++) {
      if (source[i] == '\r') {
        src_ += '\n';
        if (i + 1 < source.size() && source[i + 1] == '\n') i++;
      } else {
        src_ += source[i];
      }
    }
    if (!opt_.keep_trailing_newline && !src_.empty() && src_.back() == '\n') src_.pop_back();
  }

  std::vector<Token> run() {
    while (pos_ < src_.size()) {
      size_t tag = find_tag_start(pos_);
      if (tag == std::string::npos) {
        emit_text(src_.substr(pos_));
        break;
      }
      lex_tag(tag);
    }
    Token eof;
    eof.type = Token::Type::kEof;
    eof.line = line_;
    tokens_.push_back(std::move(eof));
    return std::move(tokens_);
  }

 private:
  [[noreturn]] void error(const std::string& message) const { throw TemplateError(line_, message); }

  size_t find_tag_start(size_t from) const {
    for (size_t i = src_.find('{', from); i != std::string::npos; i = src_.find('{', i + 1)) {
      if (i + 1 < src_.size() && (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#')) {
        return i;
      }
    }
    return std::string::npos;
  }

  // Length of the Python-whitespace run at `pos`.
  size_t space_run(size_t pos) const {
    size_t p = pos;
    while (p < src_.size()) {
      char32_t cp;
      size_t n = text::decode(src_, p, &cp);
      if (!text::is_space(cp)) break;
      p += n;
    }
    return p - pos;
  }

  void count_lines(std::string_view s) {
    for (char c : s) line_ += c == '\n';
  }

  void emit_text(std::string_view text) {
    if (!text.empty()) {
      Token t;
      t.type = Token::Type::kText;
      t.line = line_;
      t.text = std::string(text);
      tokens_.push_back(std::move(t));
    }
    count_lines(text);
  }

  // Applies `{%-` / lstrip_blocks to the text before a tag, emits it.
  void emit_text_before_tag(std::string_view text, char sign, bool lstrip_allowed) {
    std::string_view kept = text;
    if (sign == '-') {
      kept = text::strip(text, false, true);
    } else if (sign != '+' && opt_.lstrip_blocks && lstrip_allowed) {
      size_t line_start = text.rfind('\n');
      line_start = line_start == std::string_view::npos ? 0 : line_start + 1;
      if (line_start > 0 || line_starting_) {
        std::string_view tail = text.substr(line_start);
        if (!tail.empty() && text::strip(tail, true, false).empty()) kept = text.substr(0, line_start);
      }
    }
    if (!kept.empty()) {
      Token t;
      t.type = Token::Type::kText;
      t.line = line_;
      t.text = std::string(kept);
      tokens_.push_back(std::move(t));
    }
    count_lines(text);
  }

  // After a tag end with modifier `sign`: `-` eats all whitespace, plain ends
  // of blocks/comments eat one newline when trim_blocks is on.
  void after_tag_end(char sign, bool trimmable) {
    size_t start = pos_;
    if (sign == '-') {
      pos_ += space_run(pos_);
    } else if (sign != '+' && trimmable && opt_.trim_blocks && pos_ < src_.size() &&
               src_[pos_] == '\n') {
      pos_++;
    }
    count_lines(std::string_view(src_).substr(start, pos_ - start));
    line_starting_ = pos_ > start && src_[pos_ - 1] == '\n';
  }

  void lex_tag(size_t tag) {
    const char kind = src_[tag + 1];
    size_t p = tag + 2;
    char sign = 0;
    if (p < src_.size() && (src_[p] == '-' || src_[p] == '+')) sign = src_[p++];
    std::string_view text = std::string_view(src_).substr(pos_, tag - pos_);

    if (kind == '%' && lex_raw(tag, p, sign, text)) return;
    emit_text_before_tag(text, sign, kind != '{');
    pos_ = p;
    if (kind == '#') {
      lex_comment();
    } else {
      lex_expression_tag(kind == '%');
    }
  }

  bool starts_with(size_t pos, std::string_view s) const {
    return std::string_view(src_).substr(pos, s.size()) == s;
  }

  // `{% raw %}...{% endraw %}`: the content is text, tags inside are not parsed.
  bool lex_raw(size_t tag, size_t p, char sign, std::string_view text) {
    size_t q = p + space_run(p);
    if (!starts_with(q, "raw")) return false;
    q += 3;
    q += space_run(q);
    size_t content;
    char begin_end_sign = 0;
    if (starts_with(q, "-%}")) {
      content = q + 3;
      begin_end_sign = '-';
    } else if (starts_with(q, "%}")) {
      content = q + 2;
    } else {
      return false;
    }
    const int raw_line = line_;
    emit_text_before_tag(text, sign, true);
    count_lines(std::string_view(src_).substr(tag, content - tag));
    pos_ = content;
    if (begin_end_sign == '-') pos_ += space_run(pos_);  // no trim_blocks after raw
    count_lines(std::string_view(src_).substr(content, pos_ - content));
    line_starting_ = pos_ > 0 && src_[pos_ - 1] == '\n';

    // Find `{%[-+]? endraw [-+]?%}`.
    for (size_t k = find_tag_start(pos_); k != std::string::npos; k = find_tag_start(k + 1)) {
      if (src_[k + 1] != '%') continue;
      size_t r = k + 2;
      char end_sign = 0;
      if (r < src_.size() && (src_[r] == '-' || src_[r] == '+')) end_sign = src_[r++];
      r += space_run(r);
      if (!starts_with(r, "endraw")) continue;
      r += 6;
      r += space_run(r);
      char close_sign = 0;
      size_t after;
      if (starts_with(r, "+%}")) {
        close_sign = '+';
        after = r + 3;
      } else if (starts_with(r, "-%}")) {
        close_sign = '-';
        after = r + 3;
      } else if (starts_with(r, "%}")) {
        after = r + 2;
      } else {
        continue;
      }
      emit_text_before_tag(std::string_view(src_).substr(pos_, k - pos_), end_sign, true);
      count_lines(std::string_view(src_).substr(k, after - k));
      pos_ = after;
      after_tag_end(close_sign, true);
      return true;
    }
    line_ = raw_line;
    error("missing end of raw directive ({% endraw %})");
  }

  void lex_comment() {
    const size_t content = pos_;
    size_t close = src_.find("#}", content);
    if (close == std::string::npos) error("missing end of comment tag ('#}')");
    char sign = 0;
    if (close > content && (src_[close - 1] == '-' || src_[close - 1] == '+')) sign = src_[close - 1];
    count_lines(std::string_view(src_).substr(content, close - content));
    pos_ = close + 2;
    after_tag_end(sign, true);
  }

  void push(Token::Type type, std::string text = {}) {
    Token t;
    t.type = type;
    t.line = line_;
    t.text = std::move(text);
    tokens_.push_back(std::move(t));
  }

  void lex_expression_tag(bool is_block) {
    const int open_line = line_;
    push(is_block ? Token::Type::kBlockBegin : Token::Type::kVarBegin);
    std::string brackets;  // expected closers
    while (true) {
      if (pos_ >= src_.size()) {
        line_ = open_line;
        error(std::string("unexpected end of template: tag '") + (is_block ? "{%" : "{{") +
              "' is not closed");
      }
      if (brackets.empty() && lex_tag_end(is_block)) return;
      size_t ws = space_run(pos_);
      if (ws) {
        count_lines(std::string_view(src_).substr(pos_, ws));
        pos_ += ws;
        continue;
      }
      lex_token(brackets);
    }
  }

  bool lex_tag_end(bool is_block) {
    if (is_block) {
      char sign = 0;
      size_t after;
      if (starts_with(pos_, "+%}")) {
        sign = '+', after = pos_ + 3;
      } else if (starts_with(pos_, "-%}")) {
        sign = '-', after = pos_ + 3;
      } else if (starts_with(pos_, "%}")) {
        after = pos_ + 2;
      } else {
        return false;
      }
      push(Token::Type::kBlockEnd);
      pos_ = after;
      after_tag_end(sign, true);
      return true;
    }
    char sign = 0;
    size_t after;
    if (starts_with(pos_, "-}}")) {
      sign = '-', after = pos_ + 3;
    } else if (starts_with(pos_, "}}")) {
      after = pos_ + 2;
    } else {
      return false;
    }
    push(Token::Type::kVarEnd);
    pos_ = after;
    after_tag_end(sign, false);
    return true;
  }

  // `(\d+_)*\d+` from p; returns the end or p when no digit.
  size_t digits_end(size_t p) const {
    if (p >= src_.size() || !is_digit(src_[p])) return p;
    while (p < src_.size() && is_digit(src_[p])) p++;
    while (p + 1 < src_.size() && src_[p] == '_' && is_digit(src_[p + 1])) {
      p++;
      while (p < src_.size() && is_digit(src_[p])) p++;
    }
    return p;
  }

  void lex_number() {
    const size_t start = pos_;
    // Float: digits, then a fraction and/or an exponent (not right after a '.').
    if (start == 0 || src_[start - 1] != '.') {
      size_t int_end = digits_end(start);
      size_t frac_end = int_end;
      if (int_end + 1 < src_.size() && src_[int_end] == '.' && is_digit(src_[int_end + 1])) {
        frac_end = digits_end(int_end + 1);
      }
      size_t end = frac_end;
      if (frac_end < src_.size() && (src_[frac_end] == 'e' || src_[frac_end] == 'E')) {
        size_t q = frac_end + 1;
        if (q < src_.size() && (src_[q] == '+' || src_[q] == '-')) q++;
        size_t exp_end = digits_end(q);
        if (exp_end > q) end = exp_end;
      }
      if (end > int_end) {
        std::string digits;
        for (size_t i = start; i < end; i++) {
          if (src_[i] != '_') digits += src_[i];
        }
        Token t;
        t.type = Token::Type::kFloat;
        t.line = line_;
        t.text = src_.substr(start, end - start);
        // strtod (C locale) rather than from_chars: 1e999 must give inf, as in Python.
        t.float_value = std::strtod(digits.c_str(), nullptr);
        tokens_.push_back(std::move(t));
        pos_ = end;
        return;
      }
    }
    // Integer: 0b/0o/0x prefixes, decimal with single underscores between digits.
    int base = 10;
    size_t p = start;
    if (src_[p] == '0' && p + 1 < src_.size()) {
      char x = char(src_[p + 1] | 32);
      base = x == 'b' ? 2 : x == 'o' ? 8 : x == 'x' ? 16 : 10;
    }
    auto is_base_digit = [&](char c) {
      if (base == 2) return c == '0' || c == '1';
      if (base == 8) return c >= '0' && c <= '7';
      if (base == 16) return is_digit(c) || ((c | 32) >= 'a' && (c | 32) <= 'f');
      return is_digit(c);
    };
    std::string digits;
    if (base != 10) {
      size_t q = p + 2;
      while (q < src_.size()) {
        if (src_[q] == '_' && q + 1 < src_.size() && is_base_digit(src_[q + 1])) q++;
        if (!is_base_digit(src_[q])) break;
        digits += src_[q++];
      }
      if (digits.empty()) {
        base = 10;
      } else {
        p = q;
      }
    }
    if (base == 10) {
      if (src_[start] == '0') {
        // "0", "0_0", "00": only zeros may follow a leading zero.
        p = start + 1;
        while (p < src_.size()) {
          if (src_[p] == '0') {
            p++;
          } else if (src_[p] == '_' && p + 1 < src_.size() && src_[p + 1] == '0') {
            p += 2;
          } else {
            break;
          }
        }
        digits.assign(1, '0');  // not = "0": GCC 12 -Wrestrict false positive
      } else {
        p = digits_end(start);
        for (size_t i = start; i < p; i++) {
          if (src_[i] != '_') digits += src_[i];
        }
      }
    }
    Token t;
    t.type = Token::Type::kInt;
    t.line = line_;
    t.text = src_.substr(start, p - start);
    auto res = std::from_chars(digits.data(), digits.data() + digits.size(), t.int_value, base);
    if (res.ec != std::errc()) error("integer literal " + t.text + " is too large");
    tokens_.push_back(std::move(t));
    pos_ = p;
  }

  static bool is_name_start(char32_t cp) {
    if (cp < 0x80) return cp == '_' || ((cp | 32) >= 'a' && (cp | 32) <= 'z');
    return u_hasBinaryProperty(UChar32(cp), UCHAR_XID_START);
  }
  static bool is_name_char(char32_t cp) {
    if (cp < 0x80) return cp == '_' || is_digit(char(cp)) || ((cp | 32) >= 'a' && (cp | 32) <= 'z');
    return u_hasBinaryProperty(UChar32(cp), UCHAR_XID_CONTINUE);
  }

  void lex_string() {
    const char quote = src_[pos_];
    const int start_line = line_;
    size_t p = pos_ + 1;
    std::string value;
    while (true) {
      if (p >= src_.size()) error("unterminated string literal");
      char c = src_[p];
      if (c == quote) break;
      if (c != '\\') {
        value += c;
        p++;
        continue;
      }
      if (p + 1 >= src_.size()) error("unterminated string literal");
      p = decode_escape(p, value);
    }
    Token t;
    t.type = Token::Type::kString;
    t.line = start_line;
    t.text = std::move(value);
    tokens_.push_back(std::move(t));
    count_lines(std::string_view(src_).substr(pos_, p + 1 - pos_));
    pos_ = p + 1;
  }

  // Python's unicode-escape decoding of one escape at src_[p] == '\\'; returns
  // the position after it.
  size_t decode_escape(size_t p, std::string& out) {
    char e = src_[p + 1];
    auto hex_value = [&](size_t from, int n, const char* what) -> char32_t {
      char32_t v = 0;
      for (int i = 0; i < n; i++) {
        size_t q = from + size_t(i);
        char h = q < src_.size() ? src_[q] : 0;
        int d = is_digit(h) ? h - '0' : ((h | 32) >= 'a' && (h | 32) <= 'f') ? (h | 32) - 'a' + 10 : -1;
        if (d < 0) error(std::string("truncated ") + what + " escape in string literal");
        v = v * 16 + char32_t(d);
      }
      return v;
    };
    switch (e) {
      case '\n': return p + 2;  // line continuation
      case '\\': out += '\\'; return p + 2;
      case '\'': out += '\''; return p + 2;
      case '"': out += '"'; return p + 2;
      case 'a': out += '\a'; return p + 2;
      case 'b': out += '\b'; return p + 2;
      case 'f': out += '\f'; return p + 2;
      case 'n': out += '\n'; return p + 2;
      case 'r': out += '\r'; return p + 2;
      case 't': out += '\t'; return p + 2;
      case 'v': out += '\v'; return p + 2;
      case 'x': text::append_utf8(out, hex_value(p + 2, 2, "\\xXX")); return p + 4;
      case 'u':
      case 'U': {
        const int n = e == 'u' ? 4 : 8;
        char32_t cp = hex_value(p + 2, n, e == 'u' ? "\\uXXXX" : "\\UXXXXXXXX");
        size_t next = p + 2 + size_t(n);
        if (cp > 0x10FFFF) error("illegal Unicode character in string literal");
        // A \uD8xx\uDCxx pair becomes one character (Python would keep two
        // surrogates, which cannot be written out as UTF-8 anyway).
        if (cp >= 0xD800 && cp <= 0xDBFF && starts_with(next, "\\u")) {
          char32_t low = hex_value(next + 2, 4, "\\uXXXX");
          if (low >= 0xDC00 && low <= 0xDFFF) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
            next += 6;
          }
        }
        text::append_utf8(out, cp);
        return next;
      }
      case 'N': error("\\N{...} escapes are not supported in string literals");
      default:
        if (e >= '0' && e <= '7') {
          char32_t v = 0;
          size_t q = p + 1;
          for (int i = 0; i < 3 && q < src_.size() && src_[q] >= '0' && src_[q] <= '7'; i++, q++) {
            v = v * 8 + char32_t(src_[q] - '0');
          }
          text::append_utf8(out, v);
          return q;
        }
        // Unknown escapes keep their backslash, as in Python.
        out += '\\';
        return p + 1;
    }
  }

  void lex_token(std::string& brackets) {
    const char c = src_[pos_];
    if (is_digit(c)) return lex_number();
    if (c == '\'' || c == '"') return lex_string();
    char32_t cp;
    size_t n = text::decode(src_, pos_, &cp);
    if (is_name_start(cp)) {
      size_t p = pos_ + n;
      while (p < src_.size()) {
        size_t m = text::decode(src_, p, &cp);
        if (!is_name_char(cp)) break;
        p += m;
      }
      push(Token::Type::kName, src_.substr(pos_, p - pos_));
      pos_ = p;
      return;
    }
    static const char* const kTwoCharOps[] = {"//", "**", "==", "!=", ">=", "<="};
    for (const char* op : kTwoCharOps) {
      if (starts_with(pos_, op)) {
        push(Token::Type::kOperator, op);
        pos_ += 2;
        return;
      }
    }
    static const std::string_view kOneCharOps = "+-/*%~[](){}><=.:|,;";
    if (kOneCharOps.find(c) == std::string_view::npos) {
      error("unexpected character '" + src_.substr(pos_, n) + "' in tag");
    }
    if (c == '(' || c == '[' || c == '{') {
      brackets += c == '(' ? ')' : c == '[' ? ']' : '}';
    } else if (c == ')' || c == ']' || c == '}') {
      if (brackets.empty()) error(std::string("unexpected '") + c + "'");
      if (brackets.back() != c) {
        error(std::string("unexpected '") + c + "', expected '" + brackets.back() + "'");
      }
      brackets.pop_back();
    }
    push(Token::Type::kOperator, std::string(1, c));
    pos_++;
  }

  LexOptions opt_;
  std::string src_;
  size_t pos_ = 0;
  int line_ = 1;
  bool line_starting_ = true;
  std::vector<Token> tokens_;
};

}  // namespace

std::vector<Token> tokenize(std::string_view source, const LexOptions& options) {
  return Lexer(source, options).run();
}

std::string describe(const Token& token) {
  switch (token.type) {
    case Token::Type::kText: return "template text";
    case Token::Type::kVarBegin: return "'{{'";
    case Token::Type::kVarEnd: return "'}}'";
    case Token::Type::kBlockBegin: return "'{%'";
    case Token::Type::kBlockEnd: return "'%}'";
    case Token::Type::kName: return "'" + token.text + "'";
    case Token::Type::kString: return "string literal";
    case Token::Type::kInt:
    case Token::Type::kFloat: return "number " + token.text;
    case Token::Type::kOperator: return "'" + token.text + "'";
    case Token::Type::kEof: return "end of template";
  }
  return "?";
}

}  // namespace pocket::jinja
