#include "text/jinja_value.h"

#include <unicode/uchar.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "text/jinja_text.h"
#include "util/error.h"

namespace pocket::jinja {

namespace {

uint32_t child_depth(const Value& v) { return v.depth(); }

void check_depth(uint32_t depth) {
  if (depth > kMaxValueDepth) fail("value nested deeper than ", kMaxValueDepth, " levels");
}

}  // namespace

Value Value::undefined(std::string reason) {
  Value v;
  if (!reason.empty()) v.ptr_ = std::make_shared<std::string>(std::move(reason));
  return v;
}

Value Value::none() {
  Value v;
  v.kind_ = Kind::kNone;
  return v;
}

Value Value::boolean(bool b) {
  Value v;
  v.kind_ = Kind::kBool;
  v.i_ = 0;
  v.b_ = b;
  return v;
}

Value Value::integer(int64_t i) {
  Value v;
  v.kind_ = Kind::kInt;
  v.i_ = i;
  return v;
}

Value Value::number(double d) {
  Value v;
  v.kind_ = Kind::kFloat;
  v.f_ = d;
  return v;
}

Value Value::string(std::string s) {
  Value v;
  v.kind_ = Kind::kString;
  v.ptr_ = std::make_shared<std::string>(std::move(s));
  return v;
}

Value Value::list(List items) {
  Value v;
  v.kind_ = Kind::kList;
  uint32_t depth = 0;
  for (const Value& item : items) depth = std::max(depth, child_depth(item));
  check_depth(depth + 1);
  v.depth_ = depth + 1;
  v.ptr_ = std::make_shared<List>(std::move(items));
  return v;
}

Value Value::tuple(List items) {
  Value v = list(std::move(items));
  v.tuple_ = true;
  return v;
}

Value Value::dict(Dict d) {
  Value v;
  v.kind_ = Kind::kDict;
  uint32_t depth = 0;
  for (const auto& [key, value] : d.entries()) depth = std::max(depth, child_depth(value));
  check_depth(depth + 1);
  v.depth_ = depth + 1;
  v.ptr_ = std::make_shared<Dict>(std::move(d));
  return v;
}

Value Value::object(std::shared_ptr<Object> o) {
  Value v;
  v.kind_ = Kind::kObject;
  v.ptr_ = std::move(o);
  return v;
}

Value Value::callable(std::shared_ptr<const Callable> c) {
  Value v;
  v.kind_ = Kind::kCallable;
  v.ptr_ = std::const_pointer_cast<Callable>(std::move(c));
  return v;
}

double Value::to_double() const {
  switch (kind_) {
    case Kind::kBool: return b_ ? 1.0 : 0.0;
    case Kind::kInt: return double(i_);
    case Kind::kFloat: return f_;
    default: return 0.0;
  }
}

std::string Value::undefined_reason() const {
  if (kind_ == Kind::kUndefined && ptr_) return *static_cast<const std::string*>(ptr_.get());
  return "value is undefined";
}

bool Value::truthy() const {
  switch (kind_) {
    case Kind::kUndefined:
    case Kind::kNone: return false;
    case Kind::kBool: return b_;
    case Kind::kInt: return i_ != 0;
    case Kind::kFloat: return f_ != 0.0;
    case Kind::kString: return !str().empty();
    case Kind::kList: return !items().empty();
    case Kind::kDict: return !dict().empty();
    case Kind::kObject:
    case Kind::kCallable: return true;
  }
  return false;
}

std::string Value::type_name() const {
  switch (kind_) {
    case Kind::kUndefined: return "Undefined";
    case Kind::kNone: return "NoneType";
    case Kind::kBool: return "bool";
    case Kind::kInt: return "int";
    case Kind::kFloat: return "float";
    case Kind::kString: return "str";
    case Kind::kList: return tuple_ ? "tuple" : "list";
    case Kind::kDict: return "dict";
    case Kind::kObject: return object()->type_name();
    case Kind::kCallable: return "function";
  }
  return "?";
}

std::string format_float(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d < 0 ? "-inf" : "inf";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), d, std::chars_format::scientific);
  std::string sci(buf, res.ptr);
  // sci looks like "-1.2345e+02": split sign, digits and exponent.
  std::string out;
  size_t i = 0;
  if (sci[0] == '-') {
    out += '-';
    i = 1;
  }
  size_t e = sci.find('e');
  std::string digits;
  for (size_t k = i; k < e; k++) {
    if (sci[k] != '.') digits += sci[k];
  }
  int exp = std::stoi(sci.substr(e + 1));
  if (exp >= -5 + 1 && exp < 16) {  // Python repr uses fixed notation for 1e-4 <= |d| < 1e16
    int decpt = exp + 1;
    int ndigits = int(digits.size());
    if (decpt <= 0) {
      out += "0." + std::string(size_t(-decpt), '0') + digits;
    } else if (decpt >= ndigits) {
      out += digits + std::string(size_t(decpt - ndigits), '0') + ".0";
    } else {
      out += digits.substr(0, size_t(decpt)) + "." + digits.substr(size_t(decpt));
    }
    return out;
  }
  out += digits.substr(0, 1);
  if (digits.size() > 1) out += "." + digits.substr(1);
  char ebuf[16];
  std::snprintf(ebuf, sizeof(ebuf), "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
  out += ebuf;
  return out;
}

namespace {

bool is_printable(char32_t cp) {
  if (cp == ' ') return true;
  if (cp < 0x20 || cp == 0x7F) return false;
  if (cp < 0x7F) return true;
  int8_t type = u_charType(UChar32(cp));
  switch (type) {
    case U_CONTROL_CHAR:
    case U_FORMAT_CHAR:
    case U_SURROGATE:
    case U_PRIVATE_USE_CHAR:
    case U_UNASSIGNED:
    case U_LINE_SEPARATOR:
    case U_PARAGRAPH_SEPARATOR:
    case U_SPACE_SEPARATOR: return false;
    default: return true;
  }
}

}  // namespace

std::string repr_string(std::string_view s) {
  bool has_single = s.find('\'') != std::string_view::npos;
  bool has_double = s.find('"') != std::string_view::npos;
  char quote = (has_single && !has_double) ? '"' : '\'';
  std::string out(1, quote);
  for (size_t i = 0; i < s.size();) {
    char32_t cp;
    size_t n = text::decode(s, i, &cp);
    if (cp == 0xFFFD && n == 1 && static_cast<unsigned char>(s[i]) >= 0x80) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", static_cast<unsigned char>(s[i]));
      out += buf;
    } else if (cp == static_cast<char32_t>(quote) || cp == '\\') {
      out += '\\';
      out += char(cp);
    } else if (cp == '\n') {
      out += "\\n";
    } else if (cp == '\r') {
      out += "\\r";
    } else if (cp == '\t') {
      out += "\\t";
    } else if (!is_printable(cp)) {
      char buf[16];
      if (cp < 0x100) {
        std::snprintf(buf, sizeof(buf), "\\x%02x", unsigned(cp));
      } else if (cp < 0x10000) {
        std::snprintf(buf, sizeof(buf), "\\u%04x", unsigned(cp));
      } else {
        std::snprintf(buf, sizeof(buf), "\\U%08x", unsigned(cp));
      }
      out += buf;
    } else {
      out.append(s.substr(i, n));
    }
    i += n;
  }
  out += quote;
  return out;
}

namespace {

void append_str(std::string& out, const Value& v, bool quoted);

void append_sequence(std::string& out, const Value& v) {
  const List& items = v.items();
  out += v.is_tuple() ? '(' : '[';
  for (size_t i = 0; i < items.size(); i++) {
    if (i) out += ", ";
    append_str(out, items[i], true);
  }
  if (v.is_tuple() && items.size() == 1) out += ',';
  out += v.is_tuple() ? ')' : ']';
}

void append_str(std::string& out, const Value& v, bool quoted) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      if (quoted) out += "Undefined";
      return;
    case Value::Kind::kNone: out += "None"; return;
    case Value::Kind::kBool: out += v.as_bool() ? "True" : "False"; return;
    case Value::Kind::kInt: out += std::to_string(v.as_int()); return;
    case Value::Kind::kFloat: out += format_float(v.as_float()); return;
    case Value::Kind::kString:
      if (quoted) {
        out += repr_string(v.str());
      } else {
        out += v.str();
      }
      return;
    case Value::Kind::kList: append_sequence(out, v); return;
    case Value::Kind::kDict: {
      out += '{';
      bool first = true;
      for (const auto& [key, value] : v.dict().entries()) {
        if (!first) out += ", ";
        first = false;
        append_str(out, key, true);
        out += ": ";
        append_str(out, value, true);
      }
      out += '}';
      return;
    }
    case Value::Kind::kObject: out += v.object()->repr(); return;
    case Value::Kind::kCallable: out += v.callable()->repr(); return;
  }
}

}  // namespace

std::string Value::to_str() const {
  if (kind_ == Kind::kString) return str();
  std::string out;
  append_str(out, *this, false);
  return out;
}

std::string Value::repr() const {
  std::string out;
  append_str(out, *this, true);
  return out;
}

Value Value::from_json(const nlohmann::ordered_json& j) {
  using J = nlohmann::ordered_json;
  switch (j.type()) {
    case J::value_t::null: return none();
    case J::value_t::boolean: return boolean(j.get<bool>());
    case J::value_t::number_integer: return integer(j.get<int64_t>());
    case J::value_t::number_unsigned: {
      uint64_t u = j.get<uint64_t>();
      // Python ints are unbounded; beyond int64 we keep the magnitude as a float.
      if (u > uint64_t(INT64_MAX)) return number(double(u));
      return integer(int64_t(u));
    }
    case J::value_t::number_float: return number(j.get<double>());
    case J::value_t::string: return string(j.get<std::string>());
    case J::value_t::array: {
      List items;
      items.reserve(j.size());
      for (const auto& item : j) items.push_back(from_json(item));
      return list(std::move(items));
    }
    case J::value_t::object: {
      Dict d;
      for (const auto& [key, value] : j.items()) d.append_unique(string(key), from_json(value));
      return dict(std::move(d));
    }
    case J::value_t::binary:
    case J::value_t::discarded: break;
  }
  fail("unsupported JSON value");
}

nlohmann::ordered_json Value::to_json() const {
  using J = nlohmann::ordered_json;
  switch (kind_) {
    case Kind::kNone: return nullptr;
    case Kind::kBool: return b_;
    case Kind::kInt: return i_;
    case Kind::kFloat: return f_;
    case Kind::kString: return str();
    case Kind::kList: {
      J arr = J::array();
      for (const Value& item : items()) arr.push_back(item.to_json());
      return arr;
    }
    case Kind::kDict: {
      J obj = J::object();
      for (const auto& [key, value] : dict().entries()) obj[key.to_str()] = value.to_json();
      return obj;
    }
    default: fail("a ", type_name(), " value cannot be converted to JSON");
  }
}

// ---------------------------------------------------------------- Dict

namespace {

void check_hashable(const Value& key) {
  if (!is_hashable(key)) fail("unhashable type: '", key.type_name(), "'");
}

}  // namespace

bool is_hashable(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kNone:
    case Value::Kind::kBool:
    case Value::Kind::kInt:
    case Value::Kind::kFloat:
    case Value::Kind::kString:
    case Value::Kind::kObject:
    case Value::Kind::kCallable:
    case Value::Kind::kUndefined: return true;
    case Value::Kind::kList:
      if (!v.is_tuple()) return false;
      for (const Value& item : v.items()) {
        if (!is_hashable(item)) return false;
      }
      return true;
    case Value::Kind::kDict: return false;
  }
  return false;
}

const Value* Dict::find(std::string_view key) const {
  for (const auto& [k, v] : entries_) {
    if (k.is_string() && k.str() == key) return &v;
  }
  return nullptr;
}

const Value* Dict::find(const Value& key) const {
  if (key.is_string()) return find(std::string_view(key.str()));
  for (const auto& [k, v] : entries_) {
    if (equals(k, key)) return &v;
  }
  return nullptr;
}

void Dict::set(Value key, Value value) {
  check_hashable(key);
  for (auto& [k, v] : entries_) {
    if (equals(k, key)) {
      v = std::move(value);
      return;
    }
  }
  entries_.emplace_back(std::move(key), std::move(value));
}

// ---------------------------------------------------------------- comparison

bool equals(const Value& a, const Value& b) {
  using K = Value::Kind;
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.to_double() == b.to_double();
    int64_t x = a.is_bool() ? int64_t(a.as_bool()) : a.as_int();
    int64_t y = b.is_bool() ? int64_t(b.as_bool()) : b.as_int();
    return x == y;
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case K::kUndefined:
    case K::kNone: return true;
    case K::kString: return a.str() == b.str();
    case K::kList: {
      if (a.is_tuple() != b.is_tuple()) return false;
      const List& x = a.items();
      const List& y = b.items();
      if (x.size() != y.size()) return false;
      for (size_t i = 0; i < x.size(); i++) {
        if (!equals(x[i], y[i])) return false;
      }
      return true;
    }
    case K::kDict: {
      const Dict& x = a.dict();
      const Dict& y = b.dict();
      if (x.size() != y.size()) return false;
      for (const auto& [key, value] : x.entries()) {
        const Value* other = y.find(key);
        if (!other || !equals(value, *other)) return false;
      }
      return true;
    }
    case K::kObject: return a.object() == b.object();
    case K::kCallable: return a.callable() == b.callable();
    default: return false;
  }
}

bool less(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.to_double() < b.to_double();
    int64_t x = a.is_bool() ? int64_t(a.as_bool()) : a.as_int();
    int64_t y = b.is_bool() ? int64_t(b.as_bool()) : b.as_int();
    return x < y;
  }
  if (a.is_string() && b.is_string()) return a.str() < b.str();
  if (a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple()) {
    const List& x = a.items();
    const List& y = b.items();
    for (size_t i = 0; i < x.size() && i < y.size(); i++) {
      if (equals(x[i], y[i])) continue;
      return less(x[i], y[i]);
    }
    return x.size() < y.size();
  }
  fail("'<' not supported between instances of '", a.type_name(), "' and '", b.type_name(), "'");
}

// ---------------------------------------------------------------- JSON text

namespace {

void append_json_string(std::string& out, std::string_view s, bool ensure_ascii) {
  out += '"';
  for (size_t i = 0; i < s.size();) {
    const auto byte = static_cast<unsigned char>(s[i]);
    if (byte < 0x80) {
      switch (byte) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        case '\b': out += "\\b"; break;
        case '\f': out += "\\f"; break;
        default:
          if (byte < 0x20 || (ensure_ascii && byte == 0x7F)) {
            char buf[8];
            std::snprintf(buf, sizeof(buf), "\\u%04x", byte);
            out += buf;
          } else {
            out += char(byte);
          }
      }
      i++;
      continue;
    }
    char32_t cp;
    size_t n = text::decode(s, i, &cp);
    if (ensure_ascii) {
      char buf[16];
      if (cp >= 0x10000) {
        char32_t v = cp - 0x10000;
        std::snprintf(buf, sizeof(buf), "\\u%04x\\u%04x", unsigned(0xD800 + (v >> 10)),
                      unsigned(0xDC00 + (v & 0x3FF)));
      } else {
        std::snprintf(buf, sizeof(buf), "\\u%04x", unsigned(cp));
      }
      out += buf;
    } else {
      out.append(s.substr(i, n));
    }
    i += n;
  }
  out += '"';
}

std::string json_float(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d < 0 ? "-Infinity" : "Infinity";
  return format_float(d);
}

std::string json_key(const Value& key) {
  switch (key.kind()) {
    case Value::Kind::kString: return key.str();
    case Value::Kind::kInt: return std::to_string(key.as_int());
    case Value::Kind::kFloat: return json_float(key.as_float());
    case Value::Kind::kBool: return key.as_bool() ? "true" : "false";
    case Value::Kind::kNone: return "null";
    default: fail("keys must be str, int, float, bool or None, not ", key.type_name());
  }
}

void append_json(std::string& out, const Value& v, const JsonFormat& f, int level) {
  auto newline = [&](int lvl) {
    out += '\n';
    for (int i = 0; i < lvl; i++) {
      if (!f.indent_str.empty()) {
        out += f.indent_str;
      } else {
        out.append(size_t(f.indent), ' ');
      }
    }
  };
  const bool pretty = f.indent >= 0 || !f.indent_str.empty();
  const std::string& item_sep = f.item_separator;
  const std::string& key_sep = f.key_separator;
  switch (v.kind()) {
    case Value::Kind::kNone: out += "null"; return;
    case Value::Kind::kBool: out += v.as_bool() ? "true" : "false"; return;
    case Value::Kind::kInt: out += std::to_string(v.as_int()); return;
    case Value::Kind::kFloat: out += json_float(v.as_float()); return;
    case Value::Kind::kString: append_json_string(out, v.str(), f.ensure_ascii); return;
    case Value::Kind::kList: {
      const List& items = v.items();
      if (items.empty()) {
        out += "[]";
        return;
      }
      out += '[';
      for (size_t i = 0; i < items.size(); i++) {
        if (i) out += item_sep;
        if (pretty) newline(level + 1);
        append_json(out, items[i], f, level + 1);
      }
      if (pretty) newline(level);
      out += ']';
      return;
    }
    case Value::Kind::kDict: {
      const Dict& d = v.dict();
      if (d.empty()) {
        out += "{}";
        return;
      }
      std::vector<const Dict::Entry*> entries;
      for (const auto& e : d.entries()) entries.push_back(&e);
      if (f.sort_keys) {
        std::stable_sort(entries.begin(), entries.end(),
                         [](const Dict::Entry* a, const Dict::Entry* b) {
                           return less(a->first, b->first);
                         });
      }
      out += '{';
      bool first = true;
      for (const Dict::Entry* e : entries) {
        if (!first) out += item_sep;
        first = false;
        if (pretty) newline(level + 1);
        append_json_string(out, json_key(e->first), f.ensure_ascii);
        out += key_sep;
        append_json(out, e->second, f, level + 1);
      }
      if (pretty) newline(level);
      out += '}';
      return;
    }
    default: fail("Object of type ", v.type_name(), " is not JSON serializable");
  }
}

}  // namespace

std::string to_json_text(const Value& v, const JsonFormat& format) {
  JsonFormat f = format;
  const bool pretty = f.indent >= 0 || !f.indent_str.empty();
  if (!f.has_separators) {
    f.item_separator = pretty ? "," : ", ";
    f.key_separator = ": ";
  }
  std::string out;
  append_json(out, v, f, 0);
  return out;
}

}  // namespace pocket::jinja
