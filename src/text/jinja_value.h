// Values of the Jinja interpreter (src/text/jinja.h): the data a template sees
// (JSON-like: none, bools, ints, floats, strings, lists, tuples, dicts) plus
// undefined, host objects (namespace(), the loop variable) and callables
// (macros, globals, bound methods).
//
// Semantics follow Python, because chat templates are written against Python
// Jinja2: str() of True is "True", 1.0 prints as "1.0", 1 == 1.0 == True, dicts
// keep insertion order, strings index by code point. Containers are immutable
// once built and shared by reference, so copying a Value is cheap (like the
// ImmutableSandboxedEnvironment Hugging Face renders with, where list.append
// and friends are refused).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace pocket::jinja {

class Value;
class Dict;
class Object;
class Callable;
class Renderer;
using List = std::vector<Value>;

// Containers may not nest deeper than this (protects the recursive printers,
// comparisons and destructors from hostile data or templates).
constexpr uint32_t kMaxValueDepth = 256;

class Value {
 public:
  enum class Kind : uint8_t {
    kUndefined,
    kNone,
    kBool,
    kInt,
    kFloat,
    kString,
    kList,  // list or tuple (is_tuple())
    kDict,
    kObject,
    kCallable,
  };

  Value() = default;  // undefined
  // An undefined value carrying the reason it is undefined; the reason becomes
  // the error message when the value is used in a way that needs a value.
  static Value undefined(std::string reason);
  static Value none();
  static Value boolean(bool b);
  static Value integer(int64_t i);
  static Value number(double d);
  static Value string(std::string s);
  static Value list(List items);
  static Value tuple(List items);
  static Value dict(Dict d);
  static Value object(std::shared_ptr<Object> o);
  static Value callable(std::shared_ptr<const Callable> c);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::kUndefined; }
  bool is_none() const { return kind_ == Kind::kNone; }
  bool is_bool() const { return kind_ == Kind::kBool; }
  bool is_int() const { return kind_ == Kind::kInt; }
  bool is_float() const { return kind_ == Kind::kFloat; }
  bool is_number() const { return kind_ == Kind::kInt || kind_ == Kind::kFloat || kind_ == Kind::kBool; }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_list() const { return kind_ == Kind::kList; }  // list or tuple
  bool is_tuple() const { return kind_ == Kind::kList && tuple_; }
  bool is_dict() const { return kind_ == Kind::kDict; }
  bool is_object() const { return kind_ == Kind::kObject; }
  bool is_callable() const { return kind_ == Kind::kCallable; }

  bool as_bool() const { return b_; }
  int64_t as_int() const { return i_; }
  double as_float() const { return f_; }
  // Numeric value of a bool, int or float.
  double to_double() const;
  const std::string& str() const { return *static_cast<const std::string*>(ptr_.get()); }
  const List& items() const { return *static_cast<const List*>(ptr_.get()); }
  const Dict& dict() const { return *static_cast<const Dict*>(ptr_.get()); }
  Object* object() const { return static_cast<Object*>(ptr_.get()); }
  const Callable* callable() const { return static_cast<const Callable*>(ptr_.get()); }
  // Why an undefined value is undefined ("'x' is undefined").
  std::string undefined_reason() const;

  // Nesting depth of containers (0 for scalars).
  uint32_t depth() const { return depth_; }

  // Python truthiness (undefined is false).
  bool truthy() const;
  // Python str(): strings as is, None/True/False, 0.5, [1, 'a'], undefined "".
  std::string to_str() const;
  // Python repr(): strings quoted ('a'), everything else like to_str().
  std::string repr() const;
  // Python type name for messages: "str", "int", "list", "dict", "NoneType"...
  std::string type_name() const;

  // From JSON data (objects keep their key order).
  static Value from_json(const nlohmann::ordered_json& j);
  // To JSON (for tests and callers); undefined and callables are rejected.
  nlohmann::ordered_json to_json() const;

 private:
  Kind kind_ = Kind::kUndefined;
  bool tuple_ = false;
  uint32_t depth_ = 0;
  union {
    bool b_;
    int64_t i_ = 0;
    double f_;
  };
  // String, List, Dict, Object, Callable, or the undefined reason (a string).
  std::shared_ptr<void> ptr_;
};

// An insertion-ordered mapping. Keys are hashable Values (strings, numbers,
// bools, None); equal keys in the Python sense (1 == 1.0 == True) collide.
class Dict {
 public:
  using Entry = std::pair<Value, Value>;
  const Value* find(const Value& key) const;
  const Value* find(std::string_view key) const;
  // Inserts, or replaces the value of an existing key keeping its position.
  void set(Value key, Value value);
  // Appends a key known not to be present (JSON objects).
  void append_unique(Value key, Value value) { entries_.emplace_back(std::move(key), std::move(value)); }
  size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }
  const std::vector<Entry>& entries() const { return entries_; }

 private:
  std::vector<Entry> entries_;
};

// Host objects with attributes: namespace() and the loop variable.
class Object {
 public:
  virtual ~Object() = default;
  virtual std::string type_name() const = 0;
  // The attribute, or undefined.
  virtual Value get_attr(std::string_view name) const = 0;
  // Assigns an attribute; false when the object does not allow it.
  virtual bool set_attr(std::string_view name, Value v) { return false; }
  virtual std::string repr() const { return "<" + type_name() + " object>"; }
  // Drops references held by the object (breaks cycles at the end of a render).
  virtual void clear() {}
};

// Arguments of a call: positional values, then keyword arguments in order.
struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
};

// Macros, globals and bound methods.
class Callable {
 public:
  virtual ~Callable() = default;
  virtual std::string name() const = 0;
  virtual std::string repr() const { return "<function " + name() + ">"; }
  virtual Value call(Renderer& r, CallArgs& args) const = 0;
};

// Whether a value can be a dict key (str, numbers, bool, None, tuples of those).
bool is_hashable(const Value& v);

// Python ==. Never fails: values of unrelated types are unequal.
bool equals(const Value& a, const Value& b);
// Python <: numbers with numbers, strings with strings, lists/tuples
// lexicographically; other pairs throw pocket::Error ("'<' not supported ...").
bool less(const Value& a, const Value& b);

// json.dumps(v, ensure_ascii=..., indent=..., separators=..., sort_keys=...) as
// Python writes it. indent < 0 means None (one line). Without explicit
// separators, the defaults are (", ", ": "), or (",", ": ") with an indent.
struct JsonFormat {
  int indent = -1;
  std::string indent_str;  // used instead of spaces when non-empty (indent="\t")
  bool ensure_ascii = false;
  bool sort_keys = false;
  bool has_separators = false;
  std::string item_separator;
  std::string key_separator;
};
std::string to_json_text(const Value& v, const JsonFormat& format = {});

// Python float repr(): shortest round-trip digits, "1.0", "1e+16", "inf", "nan".
std::string format_float(double d);
// Python repr() of a string: 'a', "it's", with \n \t \\ \xNN escapes.
std::string repr_string(std::string_view s);

}  // namespace pocket::jinja
