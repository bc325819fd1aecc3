// Builtin filters, tests, globals and methods of the Jinja interpreter, with
// the behaviour of Jinja2 3.1 (and transformers' tojson, raise_exception and
// strftime_now). Errors are thrown as pocket::Error; the renderer prefixes
// the construct ("filter 'items': ...") and the template line.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string_view>
#include <unordered_map>

#include <unicode/uchar.h>

#include "text/jinja_internal.h"
#include "text/jinja_text.h"

namespace pocket::jinja {

namespace {

// ---------------------------------------------------------------- helpers

bool is_integral(const Value& v) { return v.is_int() || v.is_bool(); }
int64_t as_integer(const Value& v) { return v.is_bool() ? int64_t(v.as_bool()) : v.as_int(); }
bool given(const Value& v) { return !v.is_undefined(); }

int64_t int_arg(const Value& v, int64_t dflt, const char* what) {
  if (!given(v) || v.is_none()) return dflt;
  if (is_integral(v)) return as_integer(v);
  fail(what, " must be an integer, not ", v.type_name());
}

bool bool_arg(const Value& v, bool dflt) { return given(v) ? v.truthy() : dflt; }

std::string str_arg(const Value& v, const char* dflt) { return given(v) ? v.to_str() : dflt; }

void no_args(const CallArgs& args, std::string_view what) {
  if (!args.positional.empty() || !args.keyword.empty()) fail(what, "() takes no arguments");
}

// len() of a value, or an error for types without one.
size_t length_of(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kString: return text::length(v.str());
    case Value::Kind::kList: return v.items().size();
    case Value::Kind::kDict: return v.dict().size();
    case Value::Kind::kUndefined: return 0;
    default: fail("object of type '", v.type_name(), "' has no len()");
  }
}

// The elements of an iterable value (list items, dict keys, characters).
List elements(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kList: return v.items();
    case Value::Kind::kDict: {
      List keys;
      for (const auto& [key, value] : v.dict().entries()) keys.push_back(key);
      return keys;
    }
    case Value::Kind::kString: {
      List out;
      for (std::string& c : text::chars(v.str())) out.push_back(Value::string(std::move(c)));
      return out;
    }
    case Value::Kind::kUndefined: return {};
    default: fail("'", v.type_name(), "' object is not iterable");
  }
}

// Stable merge sort that stays memory-safe even when `less` is not a strict
// weak ordering (NaN, or mixed values from a hostile template).
template <typename T, typename Less>
void merge_sort(std::vector<T>& v, Less less) {
  if (v.size() < 2) return;
  std::vector<T> tmp(v.size());
  for (size_t width = 1; width < v.size(); width *= 2) {
    for (size_t lo = 0; lo < v.size(); lo += 2 * width) {
      size_t mid = std::min(lo + width, v.size()), hi = std::min(lo + 2 * width, v.size());
      size_t i = lo, j = mid, k = lo;
      while (i < mid && j < hi) tmp[k++] = less(v[j], v[i]) ? std::move(v[j++]) : std::move(v[i++]);
      while (i < mid) tmp[k++] = std::move(v[i++]);
      while (j < hi) tmp[k++] = std::move(v[j++]);
    }
    v.swap(tmp);
  }
}

// Jinja's ignore_case: strings compare lowercased unless case_sensitive.
Value sort_key(const Value& v, bool case_sensitive) {
  if (!case_sensitive && v.is_string()) return Value::string(text::lower(v.str()));
  return v;
}

// `attribute="a.b.0"` lookups (Jinja2's make_attrgetter: getitem per part).
Value get_path(Renderer& r, const Value& item, const std::string& path) {
  Value v = item;
  size_t start = 0;
  while (true) {
    size_t dot = path.find('.', start);
    std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    bool numeric = !part.empty() && std::all_of(part.begin(), part.end(), [](char c) {
      return c >= '0' && c <= '9';
    });
    v = numeric && part.size() < 18 ? r.getitem(v, Value::integer(std::stoll(part)))
                                    : r.getitem(v, Value::string(part));
    if (dot == std::string::npos) return v;
    start = dot + 1;
  }
}

std::vector<std::string> split_attributes(const std::string& attribute) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    size_t comma = attribute.find(',', start);
    parts.push_back(attribute.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (comma == std::string::npos) return parts;
    start = comma + 1;
  }
}

// ---------------------------------------------------------------- filters

Value f_abs(Renderer&, const Value& in, CallArgs& args) {
  no_args(args, "abs");
  if (in.is_float()) return Value::number(std::fabs(in.as_float()));
  if (is_integral(in)) {
    int64_t i = as_integer(in);
    if (i == INT64_MIN) fail("integer overflow");
    return Value::integer(i < 0 ? -i : i);
  }
  fail("bad operand type for abs(): '", in.type_name(), "'");
}

Value f_attr(Renderer&, const Value& in, CallArgs& args) {
  auto a = bind_args(args, {"name"}, "attr", 1);
  std::string name = a[0].to_str();
  // Python attributes only: dict keys are not attributes.
  if (in.is_object()) return in.object()->get_attr(name);
  bool found = false;
  Value method = get_method(in, name, &found);
  if (found) return method;
  return Value::undefined(str("'", in.type_name(), " object' has no attribute '", name, "'"));
}

Value f_batch(Renderer& r, const Value& in, CallArgs& args) {
  auto a = bind_args(args, {"linecount", "fill_with"}, "batch", 1);
  int64_t n = int_arg(a[0], 0, "batch size");
  if (n <= 0) fail("batch size must be positive");
  List items = elements(in);
  r.count_iterations(items.size());
  List out, current;
  for (Value& item : items) {
    current.push_back(std::move(item));
    if (int64_t(current.size()) == n) out.push_back(Value::list(std::exchange(current, {})));
  }
  if (!current.empty()) {
    if (given(a[1]) && !a[1].is_none()) {
      while (int64_t(current.size()) < n) current.push_back(a[1]);
    }
    out.push_back(Value::list(std::move(current)));
  }
  return Value::list(std::move(out));
}

Value f_capitalize(Renderer& r, const Value& in, CallArgs& args) {
  no_args(args, "capitalize");
  return r.make_string(text::capitalize(in.to_str()));
}

// Python str.center/ljust/rjust padding.
std::string pad(const std::string& s, int64_t width, const std::string& fill, char align) {
  int64_t len = int64_t(text::length(s));
  if (width <= len) return s;
  if (width > (1 << 24)) fail("width ", width, " is too large");
  int64_t margin = width - len, left = 0;
  if (align == 'c') left = margin / 2 + (margin & width & 1);
  if (align == 'r') left = margin;
  std::string out;
  for (int64_t i = 0; i < left; i++) out += fill;
  out += s;
  for (int64_t i = 0; i < margin - left; i++) out += fill;
  return out;
}

Value f_center(Renderer& r, const Value& in, CallArgs& args) {
  auto a = bind_args(args, {"width"}, "center");
  int64_t width = int_arg(a[0], 80, "width");
  r.check_size(size_t(std::clamp<int64_t>(width, 0, 1 << 24)));
  return r.make_string(pad(in.to_str(), width, " ", 'c'));
}

Value f_length(Renderer&, const Value& in, CallArgs& args) {
  no_args(args, "length");
  return Value::integer(int64_t(length_of(in)));
}

Value f_default(Renderer&, const Value& in, CallArgs& args) {
  auto a = bind_args(args, {"default_value", "boolean"}, "default");
  bool boolean = bool_arg(a[1], false);
  if (in.is_undefined() || (boolean && !in.truthy())) {
    return given(a[0]) ? a[0] : Value::string("");
  }
  return in;
}

Value f_dictsort(Renderer& r, const Value& in, CallArgs& args) {
  auto a = bind_args(args, {"case_sensitive", "by", "reverse"}, "dictsort");
  if (!in.is_dict()) fail("dictsort expects a mapping, got ", in.type_name());
  bool case_sensitive = bool_arg(a[0], false);
  std::string by = str_arg(a[1], "key");
  if (by != "key" && by != "value") fail("You can only sort by either \"key\" or \"value\"");
  bool reverse = bool_arg(a[2], false);
  const size_t pos = by == "key" ? 0 : 1;
  List pairs;
  for (const auto& [key, value] : in.dict().entries()) pairs.push_back(Value::tuple({key, value}));
  r.count_iterations(pairs.size());
  merge_sort(pairs, [&](const Value& x, const Value& y) {
    Value kx = sort_key(x.items()[pos], case_sensitive), ky = sort_key(y.items()[pos], case_sensitive);
    return reverse ? less(ky, kx) : less(kx, ky);
  });
  return Value::list(std::move(pairs));
}

std::string html_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

Value f_escape(Renderer& r, const Value& in, CallArgs& args) {
  no_args(args, "escape");
  return r.make_string(html_escape(in.to_str()));
}

Value f_first(Renderer&, const Value& in, CallArgs& args) {
  no_args(args, "first");
  if (in.is_list()) {
    if (in.items().empty()) return Value::undefined("No first item, sequence was empty.");
    return in.items().front();
  }
  if (in.is_string()) {
    if (in.str().empty()) return Value::undefined("No first item, sequence was empty.");
    char32_t cp;
    size_t n = text::decode(in.str(), 0, &cp);
    return Value::string(in.str().substr(0, n));
  }
  List items = elements(in);
  if (items.empty()) return Value::undefined("No first item, sequence was empty.");
  return items.front();
}

Value f_last(Renderer&, const Value& in, CallArgs& args) {
  no_args(args, "last");
  if (in.is_list()) {
    if (in.items().empty()) return Value::undefined("No last item, sequence was empty.");
    return in.items().back();
  }
  List items = elements(in);
  if (items.empty()) return Value::undefined("No last item, sequence was empty.");
  return items.back();
}

// Python float(str): surrounding whitespace, underscores between digits,
// inf/nan words. Returns false when the text is not a float.
bool parse_python_float(std::string_view s, double* out) {
  s = text::strip(s, true, true);
  std::string clean;
  for (size_t i = 0; i < s.size(); i++) {
    if (s[i] == '_') {
      bool between = i > 0 && i + 1 < s.size() && std::isdigit((unsigned char)s[i - 1]) &&
                     std::isdigit((unsigned char)s[i + 1]);
      if (!between) return false;
      continue;
    }
    clean += s[i];
  }
  if (clean.empty()) return false;
  std::string lower = text::lower(clean);
  std::string body = lower[0] == '+' || lower[0] == '-' ? lower.substr(1) : lower;
  if (body == "inf" || body == "infinity" || body == "nan") {
    double v = body == "nan" ? NAN : INFINITY;
    *out = lower[0] == '-' ? -v : v;
    return true;
  }
  for (char c : body) {
    if (!(std::isdigit((unsigned char)c) || c == '.' || c == 'e' || c == '+' || c == '-')) return false;
  }
  char* end = nullptr;
  *out = std::strtod(clean.c_str(), &end);
  return end && *end == 0;
}

Value f_float(Renderer&, const Value& in, CallArgs& args) {
  auto a = bind_args(args, {"default"}, "float");
  Value dflt = given(a[0]) ? a[0] : Value::number(0.0);
  if (in.is_undefined()) fail(in.undefined_reason());
  if (in.is_number()) return Value::number(in.to_double());
  if (in.is_string()) {
    double d;
    if (parse_python_float(in.str(), &d)) return Value::number(d);
  }
  return dflt;
}

Value f_format(Renderer& r, const Value& in, CallArgs& args) {
  if (!args.keyword.empty() && !args.positional.empty()) {
    fail("can't handle positional and keyword arguments at the same time");
  }
  if (!args.keyword.empty()) {
    Dict d;
    for (auto& [k, v] : args.keyword) d.set(Value::string(k), v);
    return r.make_string(percent_format(in.to_str(), Value::dict(std::move(d))));
  }
  return r.make_string(percent_format(in.to_str(), Value::tuple(args.positional)));
}

Value f_indent(Renderer& r, const Value& in, CallArgs& args) {
  auto a = bind_args(args, {"width", "first", "blank"}, "indent");
  std::string indent;
  if (given(a[0]) && a[0].is_string()) {
    indent = a[0].str();
  } else {
    int64_t width = int_arg(a[0], 4, "width");
    if (width > 4096) fail("indent width ", width, " is too large");
    indent.assign(size_t(std::max<int64_t>(0, width)), ' ');
  }
  bool first = bool_arg(a[1], false), blank = bool_arg(a[2], false);
  if (!in.is_string()) fail("expected a string, got ", in.type_name());
  std::string s = in.str() + "\n";  // Jinja2's quirk for splitlines
  std::vector<std::string> lines = text::splitlines(s);
  r.check_size(s.size() + lines.size() * indent.size());
  std::string out;
  if (blank) {
    for (size_t i = 0; i < lines.size(); i++) {
      if (i) out += "\n" + indent;
      out += lines[i];
    }
  } else {
    out = lines.empty() ? std::string() : lines[0];
    for (size_t i = 1; i < lines.size(); i++) {
      out += "\n";
      if (!lines[i].empty()) out += indent;
      out += lines[i];
    }
  }
  if (first) out = indent + out;
  return r.make_string(std::move(out));
}

// Python int(text, base); false when invalid.
bool parse_python_int(std::string_view s, int base, int64_t* out) {
  s = text::strip(s, true, true);
  bool negative = false;
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) {
    negative = s[0] == '-';
    s.remove_prefix(1);
  }
  if (s.size() > 2 && s[0] == '0') {
    char p = char(s[1] | 32);
    int prefix_base = p == 'x' ? 16 : p == 'o' ? 8 : p == 'b' ? 2 : 0;
    if (prefix_base && (base == prefix_base || base == 0)) {
      base = prefix_base;
      s.remove_prefix(2);
      if (!s.empty() && s[0] == '_') s.remove_prefix(1);
    }
  }
  if (base == 0) base = 10;
  if (s.empty()) return false;
  unsigned long long value = 0;
  bool prev_underscore = true;  // no leading underscore
  for (char c : s) {
    if (c == '_') {
      if (prev_underscore) return false;
      prev_underscore = true;
      continue;
    }
    prev_underscore = false;
    int d = std::isdigit((unsigned char)c) ? c - '0'
            : std::isalpha((unsigned char)c) ? (c | 32) - 'a' + 10
                                              : 99;
    if (d >= base) return false;
    if (value > (ULLONG_MAX - unsigned(d)) / unsigned(base)) fail("integer too large");
    value = value * unsigned(base) + unsigned(d);
  }
  if (prev_underscore) return false;
  if (value > (unsigned long long)INT64_MAX + (negative ? 1 : 0)) fail("integer too large");
  *out = negative ? int64_t(0 - value) : int64_t(value);
  return true;
}

Value f_int(Renderer&, const Value& in, CallArgs& args) {
  auto a = bind_args(args, {"default", "base"}, "int");
  Value dflt = given(a[0]) ? a[0] : Value::integer(0);
  int64_t base = int_arg(a[1], 10, "base");
  if (in.is_undefined()) fail(in.undefined_reason());
  if (is_integral(in)) return Value::integer(as_integer(in));
  auto from_double = [&](double d) {
    if (std::isnan(d)) return dflt;
    if (std::isinf(d)) fail("cannot convert float infinity to integer");
    if (d >= 9.2233720368547758e18 || d < -9.2233720368547758e18) fail("integer too large");
    return Value::integer(int64_t(d));
  };
  if (in.is_float()) return from_double(in.as_float());
  if (in.is_string()) {
    int64_t i;
    if ((base == 0 || (base >= 2 && base <= 36)) && parse_python_int(in.str(), int(base), &i)) {
      return Value::integer(i);
    }
    double d;
    if (parse_python_float(in.str(), &d)) return from_double(d);
  }
  return dflt;
}

Value f_items(Renderer&, const Value& in, CallArgs& args) {
  no_args(args, "items");
  if (in.is_undefined()) return Value::list({});
  if (!in.is_dict()) fail("Can only get item pairs from a mapping.");
  List pairs;
  pairs.reserve(in.dict().size());
  for (const auto& [key, value] : in.dict().entries()) pairs.push_back(Value::tuple({key, value}));
  return Value::list(std::move(pairs));
}

Value f_join(Renderer& r, const Value& in, CallArgs& args) {
  auto a = bind_args(args, {"d", "attribute"}, "join");
  std::string sep = str_arg(a[0], "");
  List items = elements(in);
  r.count_iterations(items.size());
  std::string out;
  for (size_t i = 0; i < items.size(); i++) {
    if (i) out += sep;
    Value v = given(a[1]) && !a[1].is_none() ? get_path(r, items[i], a[1].to_str()) : items[i];
    out += v.to_str();
    r.check_size(out.size());
  }
  return r.make_string(std::move(out));
}

Value f_list(Renderer&, const Value& in, CallArgs& args) {
  no_args(args, "list");
  return Value::list(elements(in));
}

Value f_lower(Renderer& r, const Value& in, CallArgs& args) {
  no_args(args, "lower");
  return r.make_string(text::lower(in.to_str()));
}

Value f_upper(Renderer& r, const Value& in, CallArgs& args) {
  no_args(args, "upper");
  return r.make_string(text::upper(in.to_str()));
}

Value f_map(Renderer& r, const Value& in, CallArgs& args) {
  // Jinja2's generator starts with `if value:`; falsy input yields nothing.
  List items = in.truthy() ? elements(in) : List{};
  r.count_iterations(items.size());
  List out;
  out.reserve(items.size());
  if (args.positional.empty()) {
    Value attribute, dflt;
    for (auto& [k, v] : args.keyword) {
      if (k == "attribute") {
        attribute = v;
      } else if (k == "default") {
        dflt = v;
      } else {
        fail("Unexpected keyword argument '", k, "'");
      }
    }
    if (!given(attribute)) fail("map requires a filter argument");
    for (const Value& item : items) {
      Value v = get_path(r, item, attribute.to_str());
      if (v.is_undefined() && given(dflt) && !dflt.is_none()) v = dflt;
      out.push_back(std::move(v));
    }
    return Value::list(std::move(out));
  }
  std::string filter = args.positional[0].to_str();
  CallArgs rest;
  rest.positional.assign(args.positional.begin() + 1, args.positional.end());
  rest.keyword = args.keyword;
  for (const Value& item : items) {
    CallArgs copy = rest;
    out.push_back(r.apply_filter(filter, item, copy));
  }
  return Value::list(std::move(out));
}

Value min_max(Renderer& r, const Value& in, CallArgs& args, bool want_max, const char* what) {
  auto a = bind_args(args, {"case_sensitive", "attribute"}, what);
  bool case_sensitive = bool_arg(a[0], false);
  List items = elements(in);
  r.count_iterations(items.size());
  if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
  auto key = [&](const Value& v) {
    Value k = given(a[1]) && !a[1].is_none() ? get_path(r, v, a[1].to_str()) : v;
    return sort_key(k, case_sensitive);
  };
  size_t best = 0;
  Value best_key = key(items[0]);
  for (size_t i = 1; i < items.size(); i++) {
    Value k = key(items[i]);
    if (want_max ? less(best_key, k) : less(k, best_key)) {
      best = i;
      best_key = std::move(k);
    }
  }
  return items[best];
}

Value f_max(Renderer& r, const Value& in, CallArgs& args) { return min_max(r, in, args, true, "max"); }
Value f_min(Renderer& r, const Value& in, CallArgs& args) { return min_max(r, in, args, false, "min"); }

Value f_replace(Renderer& r, const Value& in, CallArgs& args) {
  auto a = bind_args(args, {"old", "new", "count"}, "replace", 2);
  if (!given(a[0]) || !given(a[1])) fail("replace() needs the old and new strings");
  std::string s = in.to_str();
  std::string from = a[0].to_str(), to = a[1].to_str();
  int64_t count = int_arg(a[2], -1, "count");
  size_t hits = from.empty() ? text::length(s) + 1 : text::count(s, from);
  r.check_size(s.size() + hits * to.size());
  return r.make_string(text::replace(s, from, to, count));
}

Value f_reverse(Renderer& r, const Value& in, CallArgs& args) {
  no_args(args, "reverse");
  if (in.is_string()) {
    std::vector<std::string> chars = text::chars(in.str());
    std::string out;
    for (auto it = chars.rbegin(); it != chars.rend(); ++it) out += *it;
    return r.make_string(std::move(out));
  }
  List items = elements(in);
  std::reverse(items.begin(), items.end());
  return Value::list(std::move(items));
}

Value f_round(Renderer&, const Value& in, CallArgs& args) {
  auto a = bind_args(args, {"precision", "method"}, "round");
  int64_t precision = int_arg(a[0], 0, "precision");
  std::string method = str_arg(a[1], "common");
  if (method != "common" && method != "ceil" && method != "floor") {
    fail("method must be 'common', 'ceil' or 'floor'");
  }
  if (!in.is_number()) fail("round() needs a number, got ", in.type_name());
  if (precision > 300 || precision < -300) fail("precision out of range");
  if (method == "common") {
    if (is_integral(in) && precision >= 0) return Value::integer(as_integer(in));
    double x = in.to_double();
    if (!std::isfinite(x)) return Value::number(x);
    if (precision >= 0) {
      // Python rounds the exact binary value to `precision` decimals, ties to
      // even: what printf does, so round-trip through it.
      char buf[512];
      std::snprintf(buf, sizeof(buf), "%.*f", int(precision), x);
      double r = std::strtod(buf, nullptr);
      return is_integral(in) ? Value::integer(int64_t(r)) : Value::number(r);
    }
    double scale = std::pow(10.0, double(-precision));
    double r = std::nearbyint(x / scale) * scale;
    return is_integral(in) ? Value::integer(int64_t(r)) : Value::number(r);
  }
  double scale = std::pow(10.0, double(precision));
  double x = in.to_double() * scale;
  return Value::number((method == "ceil" ? std::ceil(x) : std::floor(x)) / scale);
}

Value f_safe(Renderer&, const Value& in, CallArgs& args) {
  no_args(args, "safe");
  return in;
}

// select/reject/selectattr/rejectattr.
Value select_items(Renderer& r, const Value& in, CallArgs& args, bool by_attribute, bool keep,
                   const char* what) {
  List items = in.truthy() ? elements(in) : List{};
  r.count_iterations(items.size());
  size_t next = 0;
  std::string attribute;
  if (by_attribute) {
    if (args.positional.empty()) fail(what, "() needs an attribute name");
    attribute = args.positional[next++].to_str();
  }
  std::string test;
  bool has_test = next < args.positional.size();
  if (has_test) test = args.positional[next++].to_str();
  CallArgs test_args;
  test_args.positional.assign(args.positional.begin() + std::ptrdiff_t(next), args.positional.end());
  test_args.keyword = args.keyword;
  List out;
  for (const Value& item : items) {
    Value subject = by_attribute ? get_path(r, item, attribute) : item;
    bool ok;
    if (has_test) {
      CallArgs copy = test_args;
      ok = r.apply_test(test, subject, copy);
    } else {
      ok = subject.truthy();
    }
    if (ok == keep) out.push_back(item);
  }
  return Value::list(std::move(out));
}

Value f_select(Renderer& r, const Value& in, CallArgs& a) { return select_items(r, in, a, false, true, "select"); }
Value f_reject(Renderer& r, const Value& in, CallArgs& a) { return select_items(r, in, a, false, false, "reject"); }
Value f_selectattr(Renderer& r, const Value& in, CallArgs& a) {
  return select_items(r, in, a, true, true, "selectattr");
}
Value f_rejectattr(Renderer& r, const Value& in, CallArgs& a) {
  return select_items(r, in, a, true, false, "rejectattr");
}

Value f_slice(Renderer& r, const Value& in, CallArgs& args) {
  auto a = bind_args(args, {"slices", "fill_with"}, "slice", 1);
  int64_t slices = int_arg(a[0], 0, "slices");
  if (slices <= 0 || slices > 100000) fail("slices must be between 1 and 100000");
  List seq = elements(in);
  r.count_iterations(seq.size() + size_t(slices));
  const int64_t length = int64_t(seq.size());
  const int64_t per = length / slices, extra = length % slices;
  int64_t offset = 0;
  List out;
  for (int64_t k = 0; k < slices; k++) {
    int64_t start = offset + k * per;
    if (k < extra) offset++;
    int64_t end = offset + (k + 1) * per;
    List part(seq.begin() + start, seq.begin() + end);
    if (given(a[1]) && !a[1].is_none() && k >= extra) part.push_back(a[1]);
    out.push_back(Value::list(std::move(part)));
  }
  return Value::list(std::move(out));
}

Value f_sort(Renderer& r, const Value& in, CallArgs& args) {
  auto a = bind_args(args, {"reverse", "case_sensitive", "attribute"}, "sort");
  bool reverse = bool_arg(a[0], false), case_sensitive = bool_arg(a[1], false);
  List items = elements(in);
  r.count_iterations(items.size());
  std::vector<std::string> attrs;
  if (given(a[2]) && !a[2].is_none()) attrs = split_attributes(a[2].to_str());
  // Decorate with keys so each is computed once.
  std::vector<std::pair<Value, size_t>> keyed;
  for (size_t i = 0; i < items.size(); i++) {
    Value key;
    if (attrs.empty()) {
      key = sort_key(items[i], case_sensitive);
    } else {
      List parts;
      for (const std::string& attr : attrs) parts.push_back(sort_key(get_path(r, items[i], attr), case_sensitive));
      key = attrs.size() == 1 ? parts[0] : Value::tuple(std::move(parts));
    }
    keyed.emplace_back(std::move(key), i);
  }
  merge_sort(keyed, [&](const auto& x, const auto& y) {
    return reverse ? less(y.first, x.first) : less(x.first, y.first);
  });
  List out;
  for (auto& [key, i] : keyed) out.push_back(items[i]);
  return Value::list(std::move(out));
}

Value f_string(Renderer& r, const Value& in, CallArgs& args) {
  no_args(args, "string");
  if (in.is_string()) return in;
  return r.make_string(in.to_str());
}

Value f_sum(Renderer& r, const Value& in, CallArgs& args) {
  auto a = bind_args(args, {"attribute", "start"}, "sum");
  List items = elements(in);
  r.count_iterations(items.size());
  Value total = given(a[1]) ? a[1] : Value::integer(0);
  for (const Value& item : items) {
    Value v = given(a[0]) && !a[0].is_none() ? get_path(r, item, a[0].to_str()) : item;
    if (total.is_list() && v.is_list() && total.is_tuple() == v.is_tuple()) {
      List joined = total.items();
      r.check_size((joined.size() + v.items().size()) * sizeof(Value));
      r.charge((joined.size() + v.items().size()) * sizeof(Value));
      joined.insert(joined.end(), v.items().begin(), v.items().end());
      total = total.is_tuple() ? Value::tuple(std::move(joined)) : Value::list(std::move(joined));
      continue;
    }
    if (!total.is_number() || !v.is_number()) {
      fail("unsupported operand type(s) for +: '", total.type_name(), "' and '", v.type_name(), "'");
    }
    if (is_integral(total) && is_integral(v)) {
      int64_t s;
      if (__builtin_add_overflow(as_integer(total), as_integer(v), &s)) fail("integer overflow");
      total = Value::integer(s);
    } else {
      total = Value::number(total.to_double() + v.to_double());
    }
  }
  return total;
}

Value f_title(Renderer& r, const Value& in, CallArgs& args) {
  no_args(args, "title");
  // Jinja2: split at runs of [-\s({[<], capitalize each piece.
  std::string s = in.to_str(), out;
  auto is_boundary = [](char32_t cp) {
    return cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<' || text::is_space(cp);
  };
  size_t i = 0;
  while (i < s.size()) {
    size_t start = i;
    char32_t cp;
    size_t n = text::decode(s, i, &cp);
    bool boundary = is_boundary(cp);
    while (i < s.size()) {
      n = text::decode(s, i, &cp);
      if (is_boundary(cp) != boundary) break;
      i += n;
    }
    std::string_view piece = std::string_view(s).substr(start, i - start);
    if (boundary) {
      out += piece;
    } else {
      size_t first = text::decode(piece, 0, &cp);
      out += text::upper(piece.substr(0, first));
      out += text::lower(piece.substr(first));
    }
  }
  return r.make_string(std::move(out));
}

Value f_tojson(Renderer& r, const Value& in, CallArgs& args) {
  // transformers' tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False).
  auto a = bind_args(args, {"ensure_ascii", "indent", "separators", "sort_keys"}, "tojson");
  JsonFormat f;
  f.ensure_ascii = bool_arg(a[0], false);
  if (given(a[1]) && !a[1].is_none()) {
    if (a[1].is_string()) {
      f.indent_str = a[1].str();
      f.indent = 0;
      if (f.indent_str.empty()) f.indent = 0;
    } else {
      f.indent = int(std::clamp<int64_t>(int_arg(a[1], 0, "indent"), 0, 64));
    }
  }
  if (given(a[2]) && !a[2].is_none()) {
    if (!a[2].is_list() || a[2].items().size() != 2) fail("separators must be a pair of strings");
    f.has_separators = true;
    f.item_separator = a[2].items()[0].to_str();
    f.key_separator = a[2].items()[1].to_str();
  }
  f.sort_keys = bool_arg(a[3], false);
  return r.make_string(to_json_text(in, f));
}

Value f_trim(Renderer& r, const Value& in, CallArgs& args) {
  auto a = bind_args(args, {"chars"}, "trim");
  std::string s = in.to_str();
  if (given(a[0]) && !a[0].is_none()) return r.make_string(std::string(text::strip_chars(s, a[0].to_str(), true, true)));
  return r.make_string(std::string(text::strip(s, true, true)));
}

Value f_truncate(Renderer& r, const Value& in, CallArgs& args) {
  auto a = bind_args(args, {"length", "killwords", "end", "leeway"}, "truncate");
  int64_t length = int_arg(a[0], 255, "length");
  bool killwords = bool_arg(a[1], false);
  std::string end = str_arg(a[2], "...");
  int64_t leeway = int_arg(a[3], 5, "leeway");
  int64_t end_len = int64_t(text::length(end));
  if (length < end_len) fail("expected length >= ", end_len, ", got ", length);
  if (leeway < 0) fail("expected leeway >= 0, got ", leeway);
  // Jinja2 measures len() of the value itself: short lists and dicts come
  // back unchanged.
  if (!in.is_string() && int64_t(length_of(in)) <= length + leeway) return in;
  std::string s = in.to_str();
  std::vector<size_t> at = text::offsets(s);
  const int64_t n = int64_t(at.size()) - 1;
  if (n <= length + leeway) return in.is_string() ? in : r.make_string(std::move(s));
  std::string head = s.substr(0, at[size_t(length - end_len)]);
  if (!killwords) {
    size_t space = head.rfind(' ');
    if (space != std::string::npos) head = head.substr(0, space);
  }
  return r.make_string(head + end);
}

Value f_unique(Renderer& r, const Value& in, CallArgs& args) {
  auto a = bind_args(args, {"case_sensitive", "attribute"}, "unique");
  bool case_sensitive = bool_arg(a[0], false);
  List items = elements(in);
  List out, seen;
  for (const Value& item : items) {
    Value key = sort_key(given(a[1]) && !a[1].is_none() ? get_path(r, item, a[1].to_str()) : item,
                         case_sensitive);
    r.count_iterations(seen.size() + 1);
    bool dup = std::any_of(seen.begin(), seen.end(), [&](const Value& s) { return equals(s, key); });
    if (!dup) {
      seen.push_back(std::move(key));
      out.push_back(item);
    }
  }
  return Value::list(std::move(out));
}

Value f_wordcount(Renderer&, const Value& in, CallArgs& args) {
  no_args(args, "wordcount");
  std::string s = in.to_str();
  int64_t words = 0;
  bool in_word = false;
  for (size_t i = 0; i < s.size();) {
    char32_t cp;
    i += text::decode(s, i, &cp);
    bool w = text::is_word_char(cp);
    if (w && !in_word) words++;
    in_word = w;
  }
  return Value::integer(words);
}

const std::unordered_map<std::string_view, FilterFn>& filters() {
  static const std::unordered_map<std::string_view, FilterFn> table = {
      {"abs", f_abs},
      {"attr", f_attr},
      {"batch", f_batch},
      {"capitalize", f_capitalize},
      {"center", f_center},
      {"count", f_length},
      {"d", f_default},
      {"default", f_default},
      {"dictsort", f_dictsort},
      {"e", f_escape},
      {"escape", f_escape},
      {"first", f_first},
      {"float", f_float},
      {"forceescape", f_escape},
      {"format", f_format},
      {"indent", f_indent},
      {"int", f_int},
      {"items", f_items},
      {"join", f_join},
      {"last", f_last},
      {"length", f_length},
      {"list", f_list},
      {"lower", f_lower},
      {"map", f_map},
      {"max", f_max},
      {"min", f_min},
      {"reject", f_reject},
      {"rejectattr", f_rejectattr},
      {"replace", f_replace},
      {"reverse", f_reverse},
      {"round", f_round},
      {"safe", f_safe},
      {"select", f_select},
      {"selectattr", f_selectattr},
      {"slice", f_slice},
      {"sort", f_sort},
      {"string", f_string},
      {"sum", f_sum},
      {"title", f_title},
      {"tojson", f_tojson},
      {"trim", f_trim},
      {"truncate", f_truncate},
      {"unique", f_unique},
      {"upper", f_upper},
      {"wordcount", f_wordcount},
  };
  return table;
}

// ---------------------------------------------------------------- tests

const Value& test_arg(const CallArgs& args, const char* what) {
  if (args.positional.size() != 1 || !args.keyword.empty()) fail(what, " takes one argument");
  return args.positional[0];
}

bool t_defined(Renderer&, const Value& v, CallArgs&) { return !v.is_undefined(); }
bool t_undefined(Renderer&, const Value& v, CallArgs&) { return v.is_undefined(); }
bool t_none(Renderer&, const Value& v, CallArgs&) { return v.is_none(); }
bool t_boolean(Renderer&, const Value& v, CallArgs&) { return v.is_bool(); }
bool t_true(Renderer&, const Value& v, CallArgs&) { return v.is_bool() && v.as_bool(); }
bool t_false(Renderer&, const Value& v, CallArgs&) { return v.is_bool() && !v.as_bool(); }
bool t_integer(Renderer&, const Value& v, CallArgs&) { return v.is_int(); }
bool t_float(Renderer&, const Value& v, CallArgs&) { return v.is_float(); }
bool t_number(Renderer&, const Value& v, CallArgs&) { return v.is_number(); }
bool t_string(Renderer&, const Value& v, CallArgs&) { return v.is_string(); }
bool t_mapping(Renderer&, const Value& v, CallArgs&) { return v.is_dict(); }
bool t_callable(Renderer&, const Value& v, CallArgs&) { return v.is_callable(); }
bool t_escaped(Renderer&, const Value&, CallArgs&) { return false; }
// iter() works on strings, lists, dicts, the loop object and (in Jinja2)
// undefined; `sequence` also needs len() and [] (dicts qualify).
bool t_iterable(Renderer&, const Value& v, CallArgs&) {
  return v.is_string() || v.is_list() || v.is_dict() || v.is_undefined() ||
         (v.is_object() && v.object()->type_name() == "LoopContext");
}
bool t_sequence(Renderer&, const Value& v, CallArgs&) {
  return v.is_string() || v.is_list() || v.is_dict() || v.is_undefined();
}

int64_t int_for_parity(const Value& v) {
  if (v.is_undefined()) fail(v.undefined_reason());
  if (is_integral(v)) return as_integer(v);
  if (v.is_float()) return std::fmod(v.as_float(), 2.0) == 0 ? 0 : 1;
  fail("'", v.type_name(), "' is not a number");
}
bool t_even(Renderer&, const Value& v, CallArgs&) {
  if (v.is_float()) return std::fmod(v.as_float(), 2.0) == 0;
  return int_for_parity(v) % 2 == 0;
}
bool t_odd(Renderer&, const Value& v, CallArgs&) {
  if (v.is_float()) return std::fabs(std::fmod(v.as_float(), 2.0)) == 1;
  return int_for_parity(v) % 2 != 0;
}
bool t_divisibleby(Renderer&, const Value& v, CallArgs& args) {
  const Value& n = test_arg(args, "divisibleby");
  if (!v.is_number() || !n.is_number()) fail("divisibleby needs numbers");
  if (is_integral(v) && is_integral(n)) {
    if (as_integer(n) == 0) fail("integer division or modulo by zero");
    if (as_integer(n) == -1) return true;
    return as_integer(v) % as_integer(n) == 0;
  }
  if (n.to_double() == 0) fail("float modulo");
  return std::fmod(v.to_double(), n.to_double()) == 0;
}
bool t_eq(Renderer&, const Value& v, CallArgs& a) { return equals(v, test_arg(a, "eq")); }
bool t_ne(Renderer&, const Value& v, CallArgs& a) { return !equals(v, test_arg(a, "ne")); }
bool t_lt(Renderer&, const Value& v, CallArgs& a) { return less(v, test_arg(a, "lt")); }
bool t_gt(Renderer&, const Value& v, CallArgs& a) { return less(test_arg(a, "gt"), v); }
bool t_le(Renderer&, const Value& v, CallArgs& a) {
  const Value& o = test_arg(a, "le");
  return less(v, o) || equals(v, o);
}
bool t_ge(Renderer&, const Value& v, CallArgs& a) {
  const Value& o = test_arg(a, "ge");
  return less(o, v) || equals(v, o);
}
bool t_in(Renderer&, const Value& v, CallArgs& a) {
  const Value& seq = test_arg(a, "in");
  if (seq.is_string()) return v.is_string() && seq.str().find(v.str()) != std::string::npos;
  if (seq.is_dict()) return seq.dict().find(v) != nullptr;
  for (const Value& item : elements(seq)) {
    if (equals(item, v)) return true;
  }
  return false;
}
bool t_sameas(Renderer&, const Value& v, CallArgs& a) {
  const Value& o = test_arg(a, "sameas");
  if (v.kind() != o.kind()) return false;
  switch (v.kind()) {
    case Value::Kind::kNone:
    case Value::Kind::kUndefined: return true;
    case Value::Kind::kBool: return v.as_bool() == o.as_bool();
    case Value::Kind::kInt: return v.as_int() == o.as_int();
    case Value::Kind::kString: return &v.str() == &o.str();
    case Value::Kind::kList: return &v.items() == &o.items();
    case Value::Kind::kDict: return &v.dict() == &o.dict();
    case Value::Kind::kObject: return v.object() == o.object();
    case Value::Kind::kCallable: return v.callable() == o.callable();
    default: return false;
  }
}
bool t_lower(Renderer&, const Value& v, CallArgs&) { return text::is_lower(v.to_str()); }
bool t_upper(Renderer&, const Value& v, CallArgs&) { return text::is_upper(v.to_str()); }
bool t_filter(Renderer&, const Value& v, CallArgs&) { return v.is_string() && find_filter(v.str()); }
bool t_test(Renderer&, const Value& v, CallArgs&) { return v.is_string() && find_test(v.str()); }

const std::unordered_map<std::string_view, TestFn>& tests() {
  static const std::unordered_map<std::string_view, TestFn> table = {
      {"boolean", t_boolean},   {"callable", t_callable}, {"defined", t_defined},
      {"divisibleby", t_divisibleby},
      {"eq", t_eq},             {"equalto", t_eq},        {"==", t_eq},
      {"escaped", t_escaped},   {"even", t_even},         {"false", t_false},
      {"filter", t_filter},     {"float", t_float},       {"ge", t_ge},
      {">=", t_ge},             {"gt", t_gt},             {"greaterthan", t_gt},
      {">", t_gt},              {"in", t_in},             {"integer", t_integer},
      {"iterable", t_iterable}, {"le", t_le},             {"<=", t_le},
      {"lower", t_lower},       {"lt", t_lt},             {"lessthan", t_lt},
      {"<", t_lt},              {"mapping", t_mapping},   {"ne", t_ne},
      {"!=", t_ne},             {"none", t_none},         {"number", t_number},
      {"odd", t_odd},           {"sameas", t_sameas},     {"sequence", t_sequence},
      {"string", t_string},     {"test", t_test},         {"true", t_true},
      {"undefined", t_undefined}, {"upper", t_upper},
  };
  return table;
}

// ---------------------------------------------------------------- globals

class Builtin : public Callable {
 public:
  using Fn = Value (*)(Renderer&, CallArgs&);
  Builtin(const char* name, Fn fn) : name_(name), fn_(fn) {}
  std::string name() const override { return name_; }
  Value call(Renderer& r, CallArgs& args) const override { return fn_(r, args); }

 private:
  const char* name_;
  Fn fn_;
};

// jinja2.utils.Namespace: attributes assignable with {% set ns.x = ... %}.
class Namespace : public Object {
 public:
  std::string type_name() const override { return "Namespace"; }
  Value get_attr(std::string_view name) const override {
    if (const Value* v = attrs_.find(name)) return *v;
    return Value::undefined("'Namespace object' has no attribute '" + std::string(name) + "'");
  }
  bool set_attr(std::string_view name, Value v) override {
    attrs_.set(Value::string(std::string(name)), std::move(v));
    return true;
  }
  std::string repr() const override {
    // A namespace can contain itself; bound the nesting of the printout.
    thread_local int nesting = 0;
    if (nesting >= 8) return "<Namespace ...>";
    nesting++;
    struct Exit {
      ~Exit() { nesting--; }
    } exit;
    Dict copy = attrs_;
    return "<Namespace " + Value::dict(std::move(copy)).repr() + ">";
  }
  void clear() override { attrs_ = Dict(); }

 private:
  Dict attrs_;
};

Value g_range(Renderer& r, CallArgs& args) {
  if (!args.keyword.empty()) fail("range() takes no keyword arguments");
  const auto& p = args.positional;
  if (p.empty() || p.size() > 3) fail("range expected 1 to 3 arguments, got ", p.size());
  for (const Value& v : p) {
    if (!is_integral(v)) fail("range(): '", v.type_name(), "' object cannot be interpreted as an integer");
  }
  int64_t start = 0, stop, step = 1;
  if (p.size() == 1) {
    stop = as_integer(p[0]);
  } else {
    start = as_integer(p[0]);
    stop = as_integer(p[1]);
    if (p.size() == 3) step = as_integer(p[2]);
  }
  if (step == 0) fail("range() arg 3 must not be zero");
  int64_t count = 0;
  if (step > 0 && start < stop) count = (stop - start - 1) / step + 1;
  if (step < 0 && stop < start) count = (start - stop - 1) / (-step) + 1;
  // The Jinja2 sandbox refuses ranges over MAX_RANGE items.
  if (count > 100000) fail("Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
  r.charge(size_t(count) * sizeof(Value));
  List out;
  out.reserve(size_t(count));
  for (int64_t k = 0, v = start; k < count; k++, v += step) out.push_back(Value::integer(v));
  return Value::list(std::move(out));
}

Value g_namespace(Renderer& r, CallArgs& args) {
  auto ns = std::make_shared<Namespace>();
  if (args.positional.size() > 1) fail("namespace() takes at most one positional argument");
  if (args.positional.size() == 1) {
    const Value& init = args.positional[0];
    if (!init.is_dict()) fail("namespace() expects a mapping, got ", init.type_name());
    for (const auto& [k, v] : init.dict().entries()) ns->set_attr(k.to_str(), v);
  }
  for (auto& [k, v] : args.keyword) ns->set_attr(k, v);
  r.track(ns);
  return Value::object(ns);
}

Value g_dict(Renderer& r, CallArgs& args) {
  Dict d;
  if (args.positional.size() > 1) fail("dict expected at most 1 argument, got ", args.positional.size());
  if (args.positional.size() == 1) {
    const Value& init = args.positional[0];
    if (init.is_dict()) {
      d = init.dict();
    } else {
      for (const Value& pair : elements(init)) {
        if (!pair.is_list() || pair.items().size() != 2) fail("dict(): sequence elements must be pairs");
        d.set(pair.items()[0], pair.items()[1]);
      }
    }
  }
  r.count_iterations(d.size() + args.keyword.size());
  for (auto& [k, v] : args.keyword) d.set(Value::string(k), v);
  return Value::dict(std::move(d));
}

class Joiner : public Callable {
 public:
  explicit Joiner(std::string sep) : sep_(std::move(sep)) {}
  std::string name() const override { return "joiner"; }
  Value call(Renderer&, CallArgs& args) const override {
    no_args(args, "joiner");
    if (!used_) {
      used_ = true;
      return Value::string("");
    }
    return Value::string(sep_);
  }

 private:
  std::string sep_;
  mutable bool used_ = false;
};

Value g_joiner(Renderer&, CallArgs& args) {
  auto a = bind_args(args, {"sep"}, "joiner");
  return Value::callable(std::make_shared<Joiner>(str_arg(a[0], ", ")));
}

Value g_raise_exception(Renderer&, CallArgs& args) {
  auto a = bind_args(args, {"message"}, "raise_exception", 1);
  throw TemplateError(0, a[0].to_str(), true);
}

Value g_strftime_now(Renderer& r, CallArgs& args) {
  auto a = bind_args(args, {"format"}, "strftime_now", 1);
  std::string fmt = a[0].to_str();
  if (fmt.empty()) return Value::string("");
  std::time_t t = std::time_t(r.now_seconds());
  std::tm tm{};
  localtime_r(&t, &tm);
  std::string buf(fmt.size() * 4 + 64, '\0');
  for (int attempt = 0; attempt < 4; attempt++) {
    size_t n = std::strftime(buf.data(), buf.size(), fmt.c_str(), &tm);
    if (n > 0) {
      buf.resize(n);
      return r.make_string(std::move(buf));
    }
    if (buf.size() > (1u << 20)) break;
    buf.resize(buf.size() * 4);
  }
  return Value::string("");
}

const std::unordered_map<std::string_view, Value>& globals() {
  static const std::unordered_map<std::string_view, Value> table = [] {
    std::unordered_map<std::string_view, Value> t;
    auto add = [&](const char* name, Builtin::Fn fn) {
      t.emplace(name, Value::callable(std::make_shared<Builtin>(name, fn)));
    };
    add("range", g_range);
    add("namespace", g_namespace);
    add("dict", g_dict);
    add("joiner", g_joiner);
    add("raise_exception", g_raise_exception);
    add("strftime_now", g_strftime_now);
    return t;
  }();
  return table;
}

// ---------------------------------------------------------------- methods

// A method looked up without being called (`s.upper`), called later.
class BoundMethod : public Callable {
 public:
  BoundMethod(Value self, std::string name) : self_(std::move(self)), name_(std::move(name)) {}
  std::string name() const override { return name_; }
  Value call(Renderer& r, CallArgs& args) const override {
    bool found = false;
    Value v = call_method(r, self_, name_, args, &found);
    if (!found) fail("'", self_.type_name(), "' object has no attribute '", name_, "'");
    return v;
  }

 private:
  Value self_;
  std::string name_;
};

// Methods that change the object; the immutable sandbox refuses them.
bool is_unsafe_method(const Value& obj, std::string_view name) {
  static const std::string_view kList[] = {"append", "clear", "extend", "insert",
                                           "pop",    "remove", "reverse", "sort"};
  static const std::string_view kDict[] = {"clear", "pop", "popitem", "setdefault", "update"};
  if (obj.is_list()) return std::find(std::begin(kList), std::end(kList), name) != std::end(kList);
  if (obj.is_dict()) return std::find(std::begin(kDict), std::end(kDict), name) != std::end(kDict);
  return false;
}

constexpr std::string_view kStringMethods[] = {
    "capitalize", "center",     "count",      "endswith",   "find",    "format",
    "index",      "isalnum",    "isalpha",    "isdigit",    "islower", "isspace",
    "isupper",    "join",       "ljust",      "lower",      "lstrip",  "removeprefix",
    "removesuffix", "replace",  "rfind",      "rindex",     "rjust",   "rsplit",
    "rstrip",     "split",      "splitlines", "startswith", "strip",   "title",
    "upper",      "zfill"};
constexpr std::string_view kUnsupportedStringMethods[] = {
    "casefold", "encode", "expandtabs", "format_map", "isascii", "isdecimal", "isidentifier",
    "isnumeric", "isprintable", "istitle", "maketrans", "partition", "rpartition",
    "swapcase", "translate"};
constexpr std::string_view kDictMethods[] = {"copy", "get", "items", "keys", "values"};
constexpr std::string_view kListMethods[] = {"copy", "count", "index"};

template <size_t N>
bool in_list(const std::string_view (&list)[N], std::string_view name) {
  return std::find(std::begin(list), std::end(list), name) != std::end(list);
}

// Resolves Python's start/end arguments of find/count/startswith to a byte
// range of s (they count code points).
std::string_view substring_args(const std::string& s, const Value& start_v, const Value& end_v) {
  if (!given(start_v) && !given(end_v)) return s;
  std::vector<size_t> at = text::offsets(s);
  const int64_t n = int64_t(at.size()) - 1;
  auto norm = [&](const Value& v, int64_t dflt) {
    if (!given(v) || v.is_none()) return dflt;
    int64_t i = int_arg(v, dflt, "index");
    if (i < 0) i = std::max<int64_t>(0, i + n);
    return std::min(i, n);
  };
  int64_t start = norm(start_v, 0), end = norm(end_v, n);
  if (end < start) return std::string_view(s).substr(0, 0);
  return std::string_view(s).substr(at[size_t(start)], at[size_t(end)] - at[size_t(start)]);
}

// Code point index of byte offset `byte` in s.
int64_t char_index(std::string_view s, size_t byte) { return int64_t(text::length(s.substr(0, byte))); }

// str.format(): {} {0} {name} {name.attr} {0[key]}, !s / !r; format specs
// beyond an empty one are not supported.
std::string python_format(Renderer& r, const std::string& fmt, const CallArgs& args) {
  std::string out;
  size_t auto_index = 0;
  for (size_t i = 0; i < fmt.size(); i++) {
    char c = fmt[i];
    if (c == '}') {
      if (i + 1 < fmt.size() && fmt[i + 1] == '}') {
        out += '}';
        i++;
        continue;
      }
      fail("Single '}' encountered in format string");
    }
    if (c != '{') {
      out += c;
      continue;
    }
    if (i + 1 < fmt.size() && fmt[i + 1] == '{') {
      out += '{';
      i++;
      continue;
    }
    size_t close = fmt.find('}', i);
    if (close == std::string::npos) fail("Single '{' encountered in format string");
    std::string field = fmt.substr(i + 1, close - i - 1);
    i = close;
    char conversion = 0;
    size_t colon = field.find(':');
    if (colon != std::string::npos) {
      if (colon + 1 != field.size()) fail("format specs ('{:...}') are not supported");
      field.resize(colon);
    }
    size_t bang = field.find('!');
    if (bang != std::string::npos) {
      if (bang + 2 != field.size()) fail("invalid conversion in format string");
      conversion = field[bang + 1];
      field.resize(bang);
    }
    // The first part names the argument; then .attr and [key] parts.
    size_t end = field.find_first_of(".[");
    std::string head = field.substr(0, end);
    Value v;
    if (head.empty()) {
      if (auto_index >= args.positional.size()) fail("Replacement index ", auto_index, " out of range");
      v = args.positional[auto_index++];
    } else if (std::all_of(head.begin(), head.end(), [](char d) { return d >= '0' && d <= '9'; })) {
      size_t idx = head.size() < 9 ? size_t(std::stoul(head)) : SIZE_MAX;
      if (idx >= args.positional.size()) fail("Replacement index ", head, " out of range");
      v = args.positional[idx];
    } else {
      bool found = false;
      for (const auto& [k, kv] : args.keyword) {
        if (k == head) {
          v = kv;
          found = true;
        }
      }
      if (!found) fail("KeyError: '", head, "'");
    }
    while (end != std::string::npos && end < field.size()) {
      if (field[end] == '.') {
        size_t next = field.find_first_of(".[", end + 1);
        v = r.getattr(v, field.substr(end + 1, next == std::string::npos ? std::string::npos : next - end - 1));
        end = next;
      } else {
        size_t rb = field.find(']', end);
        if (rb == std::string::npos) fail("Missing ']' in format string");
        std::string key = field.substr(end + 1, rb - end - 1);
        bool numeric = !key.empty() && key.size() < 18 &&
                       std::all_of(key.begin(), key.end(), [](char d) { return d >= '0' && d <= '9'; });
        v = r.getitem(v, numeric ? Value::integer(std::stoll(key)) : Value::string(key));
        end = rb + 1;
      }
    }
    out += conversion == 'r' ? v.repr() : v.to_str();
    r.check_size(out.size());
  }
  return out;
}

Value string_method(Renderer& r, const Value& self, std::string_view name, CallArgs& args) {
  const std::string& s = self.str();
  auto str_value = [&](const Value& v, const char* what) -> const std::string& {
    if (!v.is_string()) fail(what, " must be str, not ", v.type_name());
    return v.str();
  };
  if (name == "startswith" || name == "endswith") {
    auto a = bind_args(args, {"prefix", "start", "end"}, name, 1);
    std::string_view sub = substring_args(s, a[1], a[2]);
    auto check = [&](const Value& p) {
      const std::string& x = str_value(p, name == "startswith" ? "startswith arg" : "endswith arg");
      return name == "startswith" ? sub.substr(0, x.size()) == x
                                  : sub.size() >= x.size() && sub.substr(sub.size() - x.size()) == x;
    };
    if (a[0].is_tuple()) {
      for (const Value& p : a[0].items()) {
        if (check(p)) return Value::boolean(true);
      }
      return Value::boolean(false);
    }
    return Value::boolean(check(a[0]));
  }
  if (name == "split" || name == "rsplit") {
    auto a = bind_args(args, {"sep", "maxsplit"}, name);
    int64_t maxsplit = int_arg(a[1], -1, "maxsplit");
    std::string sep;
    const std::string* sep_ptr = nullptr;
    if (given(a[0]) && !a[0].is_none()) {
      sep = str_value(a[0], "separator");
      if (sep.empty()) fail("empty separator");
      sep_ptr = &sep;
    }
    auto parts = name == "split" ? text::split(s, sep_ptr, maxsplit) : text::rsplit(s, sep_ptr, maxsplit);
    r.charge(s.size() + parts.size() * sizeof(Value));
    List out;
    out.reserve(parts.size());
    for (std::string& p : parts) out.push_back(Value::string(std::move(p)));
    return Value::list(std::move(out));
  }
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    auto a = bind_args(args, {"chars"}, name);
    bool left = name != "rstrip", right = name != "lstrip";
    if (given(a[0]) && !a[0].is_none()) {
      return r.make_string(std::string(text::strip_chars(s, str_value(a[0], "chars"), left, right)));
    }
    return r.make_string(std::string(text::strip(s, left, right)));
  }
  if (name == "upper") return no_args(args, name), r.make_string(text::upper(s));
  if (name == "lower") return no_args(args, name), r.make_string(text::lower(s));
  if (name == "title") return no_args(args, name), r.make_string(text::title(s));
  if (name == "capitalize") return no_args(args, name), r.make_string(text::capitalize(s));
  if (name == "replace") {
    auto a = bind_args(args, {"old", "new", "count"}, name, 2);
    const std::string& from = str_value(a[0], "replace() argument 1");
    const std::string& to = str_value(a[1], "replace() argument 2");
    size_t hits = from.empty() ? text::length(s) + 1 : text::count(s, from);
    r.check_size(s.size() + hits * to.size());
    return r.make_string(text::replace(s, from, to, int_arg(a[2], -1, "count")));
  }
  if (name == "count") {
    auto a = bind_args(args, {"sub", "start", "end"}, name, 1);
    return Value::integer(int64_t(text::count(substring_args(s, a[1], a[2]), str_value(a[0], "count arg"))));
  }
  if (name == "find" || name == "index" || name == "rfind" || name == "rindex") {
    auto a = bind_args(args, {"sub", "start", "end"}, name, 1);
    const std::string& sub = str_value(a[0], "substring");
    std::string_view range = substring_args(s, a[1], a[2]);
    const bool reverse = name[0] == 'r';
    size_t hit = reverse ? range.rfind(sub) : range.find(sub);
    if (hit == std::string_view::npos) {
      if (name == "index" || name == "rindex") fail("substring not found");
      return Value::integer(-1);
    }
    size_t byte = size_t(range.data() - s.data()) + hit;
    return Value::integer(char_index(s, byte));
  }
  if (name == "join") {
    auto a = bind_args(args, {"iterable"}, name, 1);
    List items = elements(a[0]);
    r.count_iterations(items.size());
    std::string out;
    for (size_t i = 0; i < items.size(); i++) {
      if (!items[i].is_string()) {
        fail("sequence item ", i, ": expected str instance, ", items[i].type_name(), " found");
      }
      if (i) out += s;
      out += items[i].str();
      r.check_size(out.size());
    }
    return r.make_string(std::move(out));
  }
  if (name == "format") return r.make_string(python_format(r, s, args));
  if (name == "splitlines") {
    no_args(args, name);
    List out;
    for (std::string& line : text::splitlines(s)) out.push_back(Value::string(std::move(line)));
    return Value::list(std::move(out));
  }
  if (name == "isdigit" || name == "isalpha" || name == "isalnum" || name == "isspace") {
    no_args(args, name);
    if (s.empty()) return Value::boolean(false);
    for (size_t i = 0; i < s.size();) {
      char32_t cp;
      i += text::decode(s, i, &cp);
      bool ok = name == "isdigit"   ? u_isdigit(UChar32(cp))
                : name == "isalpha" ? bool(u_hasBinaryProperty(UChar32(cp), UCHAR_ALPHABETIC))
                : name == "isalnum" ? (u_isdigit(UChar32(cp)) || u_hasBinaryProperty(UChar32(cp), UCHAR_ALPHABETIC))
                                    : text::is_space(cp);
      if (!ok) return Value::boolean(false);
    }
    return Value::boolean(true);
  }
  if (name == "isupper") return no_args(args, name), Value::boolean(text::is_upper(s));
  if (name == "islower") return no_args(args, name), Value::boolean(text::is_lower(s));
  if (name == "center" || name == "ljust" || name == "rjust") {
    auto a = bind_args(args, {"width", "fillchar"}, name, 1);
    std::string fill = given(a[1]) ? str_value(a[1], "fillchar") : " ";
    if (text::length(fill) != 1) fail("The fill character must be exactly one character long");
    int64_t width = int_arg(a[0], 0, "width");
    r.check_size(size_t(std::clamp<int64_t>(width, 0, 1 << 24)) * fill.size());
    return r.make_string(pad(s, width, fill, name == "center" ? 'c' : name == "ljust" ? 'l' : 'r'));
  }
  if (name == "zfill") {
    auto a = bind_args(args, {"width"}, name, 1);
    int64_t width = int_arg(a[0], 0, "width");
    int64_t len = int64_t(text::length(s));
    if (width <= len) return self;
    if (width > (1 << 24)) fail("width ", width, " is too large");
    r.check_size(size_t(width));
    size_t sign = !s.empty() && (s[0] == '+' || s[0] == '-') ? 1 : 0;
    return r.make_string(s.substr(0, sign) + std::string(size_t(width - len), '0') + s.substr(sign));
  }
  if (name == "removeprefix" || name == "removesuffix") {
    auto a = bind_args(args, {"affix"}, name, 1);
    const std::string& x = str_value(a[0], name == "removeprefix" ? "prefix" : "suffix");
    if (name == "removeprefix" && s.compare(0, x.size(), x) == 0) return r.make_string(s.substr(x.size()));
    if (name == "removesuffix" && s.size() >= x.size() && s.compare(s.size() - x.size(), x.size(), x) == 0) {
      return r.make_string(s.substr(0, s.size() - x.size()));
    }
    return self;
  }
  fail("string method '", name, "' is not supported");
}

Value dict_method(Renderer& r, const Value& self, std::string_view name, CallArgs& args) {
  const Dict& d = self.dict();
  if (name == "get") {
    auto a = bind_args(args, {"key", "default"}, name, 1);
    if (!is_hashable(a[0])) fail("unhashable type: '", a[0].type_name(), "'");
    if (const Value* v = d.find(a[0])) return *v;
    return given(a[1]) ? a[1] : Value::none();
  }
  no_args(args, name);
  r.count_iterations(d.size());
  if (name == "copy") return self;
  List out;
  out.reserve(d.size());
  for (const auto& [key, value] : d.entries()) {
    if (name == "items") {
      out.push_back(Value::tuple({key, value}));
    } else {
      out.push_back(name == "keys" ? key : value);
    }
  }
  return Value::list(std::move(out));
}

Value list_method(Renderer& r, const Value& self, std::string_view name, CallArgs& args) {
  const List& items = self.items();
  if (name == "copy") return no_args(args, name), self;
  auto a = bind_args(args, {"value"}, name, 1);
  r.count_iterations(items.size());
  if (name == "count") {
    return Value::integer(int64_t(std::count_if(items.begin(), items.end(),
                                                [&](const Value& v) { return equals(v, a[0]); })));
  }
  for (size_t i = 0; i < items.size(); i++) {
    if (equals(items[i], a[0])) return Value::integer(int64_t(i));
  }
  fail(a[0].repr(), " is not in list");
}

}  // namespace

// ---------------------------------------------------------------- lookups

FilterFn find_filter(std::string_view name) {
  auto it = filters().find(name);
  return it == filters().end() ? nullptr : it->second;
}

TestFn find_test(std::string_view name) {
  auto it = tests().find(name);
  return it == tests().end() ? nullptr : it->second;
}

Value find_global(std::string_view name) {
  auto it = globals().find(name);
  return it == globals().end() ? Value() : it->second;
}

Value get_method(const Value& obj, std::string_view name, bool* found) {
  *found = false;
  if (!obj.is_string() && !obj.is_dict() && !obj.is_list()) return Value();
  if (is_unsafe_method(obj, name)) {
    *found = true;
    return Value::undefined("access to attribute '" + std::string(name) + "' of '" +
                            obj.type_name() + "' object is unsafe.");
  }
  bool known = obj.is_string() ? in_list(kStringMethods, name)
               : obj.is_dict() ? in_list(kDictMethods, name)
                               : in_list(kListMethods, name);
  if (!known) return Value();
  *found = true;
  return Value::callable(std::make_shared<BoundMethod>(obj, std::string(name)));
}

Value call_method(Renderer& r, const Value& obj, std::string_view name, CallArgs& args,
                  bool* found) {
  *found = true;
  if (is_unsafe_method(obj, name)) {
    fail("access to attribute '", name, "' of '", obj.type_name(), "' object is unsafe.");
  }
  if (obj.is_string()) {
    if (in_list(kStringMethods, name)) return string_method(r, obj, name, args);
    if (in_list(kUnsupportedStringMethods, name)) fail("string method '", name, "' is not supported");
  } else if (obj.is_dict()) {
    if (in_list(kDictMethods, name)) return dict_method(r, obj, name, args);
  } else if (obj.is_list()) {
    if (in_list(kListMethods, name)) return list_method(r, obj, name, args);
  }
  *found = false;
  return Value();
}

std::vector<Value> bind_args(const CallArgs& args, std::initializer_list<const char*> names,
                             std::string_view what, size_t required) {
  std::vector<Value> out(names.size());
  std::vector<bool> set(names.size(), false);
  if (args.positional.size() > names.size()) {
    fail(what, "() takes at most ", names.size(), " argument(s) (", args.positional.size(), " given)");
  }
  for (size_t i = 0; i < args.positional.size(); i++) {
    out[i] = args.positional[i];
    set[i] = true;
  }
  for (const auto& [key, value] : args.keyword) {
    size_t i = 0;
    for (const char* n : names) {
      if (key == n) break;
      i++;
    }
    if (i == names.size()) fail(what, "() got an unexpected keyword argument '", key, "'");
    if (set[i]) fail(what, "() got multiple values for argument '", key, "'");
    out[i] = value;
    set[i] = true;
  }
  for (size_t i = 0; i < required; i++) {
    if (!set[i]) fail(what, "() missing required argument '", *(names.begin() + i), "'");
  }
  return out;
}

std::string percent_format(const std::string& fmt, const Value& args) {
  List values = args.is_tuple() ? args.items() : List{args};
  const Dict* mapping = args.is_dict() ? &args.dict() : nullptr;
  size_t next = 0;
  std::string out;
  for (size_t i = 0; i < fmt.size(); i++) {
    if (fmt[i] != '%') {
      out += fmt[i];
      continue;
    }
    if (++i >= fmt.size()) fail("incomplete format");
    if (fmt[i] == '%') {
      out += '%';
      continue;
    }
    const Value* arg = nullptr;
    if (fmt[i] == '(') {
      size_t close = fmt.find(')', i);
      if (close == std::string::npos || !mapping) fail("format requires a mapping");
      arg = mapping->find(std::string_view(fmt).substr(i + 1, close - i - 1));
      if (!arg) fail("KeyError: '", fmt.substr(i + 1, close - i - 1), "'");
      i = close + 1;
    }
    std::string spec = "%";
    int number = 0;
    while (i < fmt.size() && std::string_view("-+ #0123456789.").find(fmt[i]) != std::string::npos) {
      if (fmt[i] >= '0' && fmt[i] <= '9') {
        number = number * 10 + (fmt[i] - '0');
        if (number > 1000) fail("format width or precision too large");
      } else {
        number = 0;
      }
      spec += fmt[i++];
    }
    if (i >= fmt.size()) fail("incomplete format");
    const char conv = fmt[i];
    if (!arg) {
      // A non-tuple argument (even a dict) serves exactly one conversion.
      if (next >= values.size()) fail("not enough arguments for format string");
      arg = &values[next++];
    }
    char buf[2200];
    switch (conv) {
      case 's':
      case 'r': {
        std::string s = conv == 's' ? arg->to_str() : arg->repr();
        if (spec == "%") {
          out += s;
        } else {
          // Width and precision count characters; pad by hand.
          std::snprintf(buf, sizeof(buf), (spec + "s").c_str(), "");
          std::string padded = pad(s, int64_t(std::strlen(buf)), " ",
                                   spec.find('-') != std::string::npos ? 'l' : 'r');
          out += padded;
        }
        break;
      }
      case 'd':
      case 'i':
      case 'x':
      case 'X':
      case 'o': {
        if (!arg->is_number()) fail("%", conv, " format: a number is required, not ", arg->type_name());
        long long n = arg->is_float() ? (long long)arg->as_float() : (long long)as_integer(*arg);
        std::string f = spec + "ll" + (conv == 'i' ? 'd' : conv);
        std::snprintf(buf, sizeof(buf), f.c_str(), n);
        out += buf;
        break;
      }
      case 'f':
      case 'F':
      case 'e':
      case 'E':
      case 'g':
      case 'G': {
        if (!arg->is_number()) fail("%", conv, " format: a real number is required, not ", arg->type_name());
        std::snprintf(buf, sizeof(buf), (spec + conv).c_str(), arg->to_double());
        out += buf;
        break;
      }
      default: fail("unsupported format character '", std::string(1, conv), "'");
    }
  }
  // Python treats any non-tuple with __getitem__ (list, dict) as a mapping and
  // then does not complain about unused arguments.
  const bool mapping_like = mapping || (args.is_list() && !args.is_tuple());
  if (!mapping_like && next < values.size()) fail("not all arguments converted during string formatting");
  return out;
}

}  // namespace pocket::jinja
