// A small sandboxed Jinja interpreter for chat templates.
//
// It implements the part of Jinja2 that Hugging Face chat templates use, with
// the environment transformers renders them in: trim_blocks and lstrip_blocks
// on, the loopcontrols extension (break/continue), raise_exception(msg),
// strftime_now(fmt), tojson as json.dumps(x, ensure_ascii=False) and Python
// semantics for values (str(True) == "True", 1.0 prints "1.0", strings index
// by code point, a missing key or attribute is undefined).
//
//   jinja::Template t(source);                 // parses once; reuse it
//   std::string out = t.render(context_json);  // thread-safe, const
//
// Supported: if/elif/else, for (loop.*, else, `if` filter, unpacking,
// break/continue), set (tuples, namespace attributes, block set with
// filters), macro (defaults, varargs/kwargs, caller) and call blocks, filter
// blocks, with, raw, comments, transformers' {% generation %}; all operators
// and literals; the common filters, tests, str/dict/list methods and the
// globals range, dict, namespace, joiner, raise_exception, strftime_now.
//
// Not supported, rejected at parse time with a TemplateError naming the
// construct and the line: include/import/extends/block (no loader), do,
// autoescape, trans, recursive loops, `*args`/`**kwargs` in calls, and the
// filters groupby, pprint, random, striptags, urlencode, urlize, wordwrap,
// xmlattr, filesizeformat. At render time: str.format() specs ("{:>5}"),
// a few rarely used str methods (casefold, partition, ...), integers beyond
// 64 bits (an error instead of Python's big ints). Values print like their
// Python counterparts except Python iterator objects: d.items(), |map,
// |reverse and friends produce lists here, so printing them directly (rare)
// shows a list where Python shows "dict_items([...])" or "<generator ...>".
//
// Rendering is bounded by Limits, so a hostile template cannot hang, exhaust
// memory or overflow the stack; exceeding a limit is a TemplateError.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "util/error.h"

namespace pocket::jinja {

// A parse or render failure. what() reads "template line N: MESSAGE".
class TemplateError : public Error {
 public:
  TemplateError(int line, std::string message, bool raised = false);
  int line() const { return line_; }
  // The message without the line prefix.
  const std::string& message() const { return message_; }
  // True when the template itself failed via raise_exception(msg); message()
  // is then exactly msg.
  bool raised() const { return raised_; }

 private:
  int line_;
  std::string message_;
  bool raised_;
};

struct Limits {
  size_t max_output_bytes = 64u << 20;   // the rendered text, and any one string value
  uint64_t max_work_bytes = 1ull << 30;  // bytes of strings built in total (bounds time)
  uint64_t max_loop_iterations = 1'000'000;  // for-loop iterations in total
  int max_depth = 256;  // nesting of expression/statement evaluation and macro calls
};

struct Options {
  bool trim_blocks = true;   // drop the first newline after a block tag
  bool lstrip_blocks = true;  // strip spaces/tabs before a block tag at line start
  bool keep_trailing_newline = false;
  Limits limits;
};

struct RenderOptions {
  // Seconds since the epoch used by strftime_now(); the current local time
  // when unset (tests fix it for reproducible output).
  std::optional<int64_t> now;
  // Overrides the template's limits when set.
  std::optional<Limits> limits;
};

class Template {
 public:
  // Parses the template; throws TemplateError on syntax errors and on
  // constructs this interpreter does not support.
  explicit Template(std::string_view source, const Options& options = {});
  ~Template();
  Template(Template&&) noexcept;
  Template& operator=(Template&&) noexcept;

  // Renders with the variables of `context` (a JSON object). Throws
  // TemplateError (raise_exception, runtime errors, limits).
  std::string render(const nlohmann::ordered_json& context,
                     const RenderOptions& options = {}) const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace pocket::jinja
