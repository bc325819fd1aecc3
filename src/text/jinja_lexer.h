// Jinja lexer: template text -> tokens, applying whitespace control the way
// Jinja2's lexer does (`{%-`/`-%}` strip all whitespace, `{%+`/`+%}` disable
// lstrip/trim, trim_blocks drops one newline after a block or comment tag,
// lstrip_blocks removes spaces and tabs before a block or comment tag that
// starts a line). Tag ends are only recognised outside brackets, so
// `{{ {'a': {'b': 1}} }}` works as in Jinja2.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pocket::jinja {

struct Token {
  enum class Type : uint8_t {
    kText,        // template data (text holds it)
    kVarBegin,    // {{
    kVarEnd,      // }}
    kBlockBegin,  // {%
    kBlockEnd,    // %}
    kName,
    kString,  // text holds the decoded value
    kInt,
    kFloat,
    kOperator,  // text holds the operator: "+", "//", "(", ...
    kEof,
  };
  Type type = Type::kEof;
  int line = 1;
  std::string text;
  int64_t int_value = 0;
  double float_value = 0;
};

struct LexOptions {
  bool trim_blocks = true;
  bool lstrip_blocks = true;
  bool keep_trailing_newline = false;
};

// Throws TemplateError on malformed input (unterminated tags, strings or
// comments, unbalanced brackets, unexpected characters).
std::vector<Token> tokenize(std::string_view source, const LexOptions& options);

// Describes a token for error messages: "name 'foo'", "'%}'", "end of template".
std::string describe(const Token& token);

}  // namespace pocket::jinja
