// Internals of the Jinja interpreter shared by its parts: the syntax tree
// (jinja_parser.cpp builds it), the renderer (jinja_eval.cpp walks it) and the
// builtins (jinja_builtins.cpp: filters, tests, globals, methods).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "text/jinja.h"
#include "text/jinja_value.h"

namespace pocket::jinja {

// ---------------------------------------------------------------- builtins

// A filter: input | name(args). Builtins throw pocket::Error; the renderer
// adds the template line.
using FilterFn = Value (*)(Renderer& r, const Value& input, CallArgs& args);
// A test: input is name(args).
using TestFn = bool (*)(Renderer& r, const Value& input, CallArgs& args);

FilterFn find_filter(std::string_view name);
TestFn find_test(std::string_view name);
// Globals: range, namespace, dict, joiner, raise_exception, strftime_now.
// Undefined when `name` is not a global.
Value find_global(std::string_view name);
// obj.name(...) for strings, dicts and lists. Sets *found = false (and returns
// undefined) when the type has no such method.
Value call_method(Renderer& r, const Value& obj, std::string_view name, CallArgs& args,
                  bool* found);
// obj.name without a call: the bound method as a callable, an "unsafe"
// undefined for mutating list/dict methods, or *found = false.
Value get_method(const Value& obj, std::string_view name, bool* found);

// Python's `fmt % args` (printf-style: %s %r %d %i %x %o %f %e %g, %(key)s).
std::string percent_format(const std::string& fmt, const Value& args);

// Binds call arguments to parameter names (Python rules: positional first,
// then keywords; unknown or duplicate keywords fail). Missing ones are
// undefined. `what` names the callee in messages.
std::vector<Value> bind_args(const CallArgs& args, std::initializer_list<const char*> names,
                             std::string_view what, size_t required = 0);

// ---------------------------------------------------------------- syntax tree

struct Expr;
struct Stmt;
using ExprPtr = std::unique_ptr<Expr>;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

enum class ExprKind : uint8_t {
  kConst,    // value
  kName,     // name, slot
  kList,     // items
  kTuple,    // items
  kDict,     // items: key, value, key, value...
  kGetattr,  // a.name
  kGetitem,  // a[b]
  kSlice,    // a[b:c:d], each of b, c, d optional
  kCall,     // a(args)
  kFilter,   // a | name(args); a is null in filter blocks (input comes from the body)
  kTest,     // a is name(args); negated for `is not`
  kNot,      // not a
  kNeg,      // -a
  kPos,      // +a
  kBinary,   // a op b
  kConcat,   // items[0] ~ items[1] ~ ...
  kCompare,  // a cmp[0] items[0] cmp[1] items[1] ... (chained)
  kAnd,      // a and b
  kOr,       // a or b
  kCond,     // a if b else c (c optional)
};

enum class BinOp : uint8_t { kAdd, kSub, kMul, kDiv, kFloorDiv, kMod, kPow };
enum class CmpOp : uint8_t { kEq, kNe, kLt, kLe, kGt, kGe, kIn, kNotIn };

struct Arg {
  std::string name;  // empty for positional arguments
  ExprPtr value;
};

struct Expr {
  ExprKind kind = ExprKind::kConst;
  int line = 0;
  int depth = 1;  // height of the subtree (bounded at parse time)
  Value value;
  std::string name;
  int slot = -1;
  BinOp op = BinOp::kAdd;
  bool negated = false;
  ExprPtr a, b, c, d;
  std::vector<ExprPtr> items;
  std::vector<CmpOp> cmp;
  std::vector<Arg> args;
  FilterFn filter = nullptr;
  TestFn test = nullptr;
};

// Assignment targets: `x`, `a, b`, `(a, (b, c))`, `ns.attr`.
struct Target {
  enum class Kind : uint8_t { kName, kTuple, kNamespaceAttr };
  Kind kind = Kind::kName;
  std::string name;
  int slot = -1;
  std::string attr;
  std::vector<Target> items;
};

struct Param {
  std::string name;
  int slot = -1;
  ExprPtr default_value;  // null when required
};

struct MacroDef {
  std::string name;
  int line = 0;
  std::vector<Param> params;
  Body body;
  bool uses_varargs = false;
  bool uses_kwargs = false;
  bool uses_caller = false;
};

enum class StmtKind : uint8_t {
  kText,         // text
  kOutput,       // {{ expr }}
  kIf,           // branches (cond, body), else_body
  kFor,          // target in expr [if cond] body [else else_body]
  kSet,          // target = expr
  kSetBlock,     // {% set target [| filters] %}body{% endset %}; expr = filter chain or null
  kMacro,        // macro
  kCallBlock,    // {% call(params) expr %}body: macro is the caller
  kFilterBlock,  // {% filter chain %}body
  kWith,         // with_targets = with_values; body
  kScope,        // body in its own scope ({% generation %})
  kBreak,
  kContinue,
};

struct Branch {
  ExprPtr cond;
  Body body;
};

struct Stmt {
  StmtKind kind = StmtKind::kText;
  int line = 0;
  std::string text;
  ExprPtr expr;
  ExprPtr cond;
  Target target;
  std::vector<Branch> branches;
  Body body;
  Body else_body;
  std::unique_ptr<MacroDef> macro;
  std::vector<Target> with_targets;
  std::vector<ExprPtr> with_values;
};

// Variable slots reserved by the parser for names the renderer binds itself.
enum ReservedSlot : int { kSlotLoop = 0, kSlotCaller, kSlotVarargs, kSlotKwargs, kNumReservedSlots };

struct Template::Impl {
  Options options;
  Body body;
  std::vector<std::string> names;  // slot -> variable name
  std::unordered_map<std::string, int> slots;
  std::vector<Value> globals;  // slot -> builtin global (undefined if none)
};

// Parses `source` into impl (body, names, slots, globals).
void parse_template(std::string_view source, Template::Impl& impl);

// ---------------------------------------------------------------- renderer

struct Frame;

// One render: variables, output, limits. Builtins call back into it.
class Renderer {
 public:
  Renderer(const Template::Impl& tpl, const RenderOptions& options);
  ~Renderer();
  std::string render(const nlohmann::ordered_json& context);

  // Charges `bytes` of string or list building against the work budget.
  void charge(size_t bytes);
  // Fails when one string of `bytes` would exceed the output limit; call it
  // before building a string whose size is known in advance.
  void check_size(size_t bytes) const;
  // A string value, size-checked and charged.
  Value make_string(std::string s);
  void count_iterations(uint64_t n);

  Value call(const Value& callee, CallArgs& args);
  Value getattr(const Value& obj, std::string_view name);
  Value getitem(const Value& obj, const Value& key);
  // Filters and tests by name (map('upper'), select('odd')).
  Value apply_filter(std::string_view name, const Value& input, CallArgs& args);
  bool apply_test(std::string_view name, const Value& input, CallArgs& args);
  // Calls a macro (used by MacroCallable).
  Value call_macro(const MacroDef& macro, const std::shared_ptr<Frame>& scope, CallArgs& args,
                   const Value& caller);
  // Registers a namespace() so its references can be dropped after rendering.
  void track(const std::shared_ptr<Object>& object);
  int64_t now_seconds() const;

 private:
  enum class Flow : uint8_t { kNormal, kBreak, kContinue };
  Flow exec_body(const Body& body);
  Flow exec(const Stmt& s);
  Flow exec_inner(const Stmt& s);
  Flow exec_for(const Stmt& s);
  Value eval(const Expr& e);
  Value eval_inner(const Expr& e);
  Value eval_binary(const Expr& e);
  Value eval_compare(const Expr& e);
  Value eval_call(const Expr& e);
  Value eval_filter(const Expr& e, const Value* input);
  Value eval_slice(const Expr& e);
  void eval_args(const std::vector<Arg>& args, CallArgs& out);
  Value lookup(int slot, const std::string& name) const;
  void assign(const Target& t, const Value& v);
  void set_var(int slot, Value v);
  void write(std::string_view s);
  std::string capture(const Body& body);
  [[noreturn]] void error(int line, const std::string& message) const;

  const Template::Impl& tpl_;
  RenderOptions options_;
  Limits limits_;
  std::shared_ptr<Frame> root_;
  std::shared_ptr<Frame> frame_;  // innermost scope
  std::string* out_ = nullptr;
  uint64_t work_ = 0;
  uint64_t iterations_ = 0;
  int depth_ = 0;
  int current_line_ = 0;
  std::vector<std::weak_ptr<Object>> tracked_;
};

}  // namespace pocket::jinja
