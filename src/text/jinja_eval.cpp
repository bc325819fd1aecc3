// The renderer: walks the syntax tree with Python/Jinja2 semantics.
//
// Scopes follow Jinja2: the template's top level is one scope; each for-loop
// iteration, macro call, call/filter/set block and `with` gets a child scope,
// so a `set` inside a loop does not leak out (namespace() exists for that).
// `if` does not open a scope.
#include <algorithm>
#include <cmath>
#include <ctime>

#include "text/jinja_internal.h"
#include "text/jinja_text.h"

namespace pocket::jinja {

// A scope: variables by slot, and the enclosing scope.
struct Frame {
  std::vector<std::pair<int, Value>> vars;
  std::shared_ptr<Frame> parent;

  const Value* find(int slot) const {
    for (const auto& [s, v] : vars) {
      if (s == slot) return &v;
    }
    return nullptr;
  }
  void set(int slot, Value v) {
    for (auto& [s, old] : vars) {
      if (s == slot) {
        old = std::move(v);
        return;
      }
    }
    vars.emplace_back(slot, std::move(v));
  }
};

namespace {

[[noreturn]] void fail_undefined(const Value& v) { fail(v.undefined_reason()); }

std::string object_description(const Value& obj) {
  // Jinja2's wording: "'dict object' has no attribute 'x'", "'None' has ...".
  if (obj.is_none()) return "None";
  return obj.type_name() + " object";
}

// A user macro (or a call block's caller), bound to the scope it was defined in.
class MacroCallable : public Callable {
 public:
  MacroCallable(const MacroDef* def, std::weak_ptr<Frame> scope, Value caller = {})
      : def_(def), scope_(std::move(scope)), caller_(std::move(caller)) {}
  std::string name() const override { return def_->name; }
  std::string repr() const override { return "<Macro '" + def_->name + "'>"; }
  Value call(Renderer& r, CallArgs& args) const override {
    return r.call_macro(*def_, scope_.lock(), args, caller_);
  }

 private:
  const MacroDef* def_;
  std::weak_ptr<Frame> scope_;
  Value caller_;
};

// The `loop` variable of a for loop. Jinja2's LoopContext advances in place,
// so one object serves all iterations.
class LoopObject : public Object, public std::enable_shared_from_this<LoopObject> {
 public:
  explicit LoopObject(Value items) : items_(std::move(items)) {}
  void set_index(size_t i) { index_ = i; }
  size_t index() const { return index_; }
  const List& items() const { return items_.items(); }

  std::string type_name() const override { return "LoopContext"; }
  std::string repr() const override {
    return "<LoopContext " + std::to_string(index_ + 1) + "/" + std::to_string(items().size()) +
           ">";
  }
  Value get_attr(std::string_view name) const override {
    const size_t n = items().size();
    if (name == "index") return Value::integer(int64_t(index_ + 1));
    if (name == "index0") return Value::integer(int64_t(index_));
    if (name == "revindex") return Value::integer(int64_t(n - index_));
    if (name == "revindex0") return Value::integer(int64_t(n - index_ - 1));
    if (name == "first") return Value::boolean(index_ == 0);
    if (name == "last") return Value::boolean(index_ + 1 == n);
    if (name == "length") return Value::integer(int64_t(n));
    if (name == "depth") return Value::integer(1);
    if (name == "depth0") return Value::integer(0);
    if (name == "previtem") {
      if (index_ == 0) return Value::undefined("there is no previous item");
      return items()[index_ - 1];
    }
    if (name == "nextitem") {
      if (index_ + 1 >= n) return Value::undefined("there is no next item");
      return items()[index_ + 1];
    }
    if (name == "cycle" || name == "changed") {
      return Value::callable(std::make_shared<LoopMethod>(
          std::const_pointer_cast<LoopObject>(shared_from_this()), std::string(name)));
    }
    return Value::undefined("'LoopContext object' has no attribute '" + std::string(name) + "'");
  }

 private:
  class LoopMethod : public Callable {
   public:
    LoopMethod(std::shared_ptr<LoopObject> loop, std::string method)
        : loop_(std::move(loop)), method_(std::move(method)) {}
    std::string name() const override { return "loop." + method_; }
    Value call(Renderer&, CallArgs& args) const override {
      if (!args.keyword.empty()) fail("loop.", method_, "() takes no keyword arguments");
      if (method_ == "cycle") {
        if (args.positional.empty()) fail("no items for cycling given");
        return args.positional[loop_->index_ % args.positional.size()];
      }
      // changed(*values): true when the values differ from the previous call's.
      Value now = Value::list(args.positional);
      bool changed = !loop_->has_last_changed_ || !equals(now, loop_->last_changed_);
      loop_->last_changed_ = now;
      loop_->has_last_changed_ = true;
      return Value::boolean(changed);
    }

   private:
    std::shared_ptr<LoopObject> loop_;
    std::string method_;
  };

  Value items_;
  size_t index_ = 0;
  Value last_changed_;
  bool has_last_changed_ = false;
};

// Restores the renderer's scope and output buffer when leaving a block.
template <typename T>
class Restore {
 public:
  Restore(T& slot, T value) : slot_(slot), saved_(std::move(slot)) { slot_ = std::move(value); }
  ~Restore() { slot_ = std::move(saved_); }
  Restore(const Restore&) = delete;
  Restore& operator=(const Restore&) = delete;

 private:
  T& slot_;
  T saved_;
};

// The elements a for loop or unpacking iterates over.
List iterate(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kList: return v.items();
    case Value::Kind::kDict: {
      List keys;
      keys.reserve(v.dict().size());
      for (const auto& [key, value] : v.dict().entries()) keys.push_back(key);
      return keys;
    }
    case Value::Kind::kString: {
      List chars;
      for (std::string& c : text::chars(v.str())) chars.push_back(Value::string(std::move(c)));
      return chars;
    }
    case Value::Kind::kUndefined: return {};
    default: fail("'", v.type_name(), "' object is not iterable");
  }
}

int64_t as_integer(const Value& v) { return v.is_bool() ? int64_t(v.as_bool()) : v.as_int(); }
bool is_integral(const Value& v) { return v.is_int() || v.is_bool(); }

[[noreturn]] void bad_operands(const char* op, const Value& a, const Value& b) {
  fail("unsupported operand type(s) for ", op, ": '", a.type_name(), "' and '", b.type_name(),
       "'");
}

// Python slice index normalisation (PySlice_AdjustIndices).
struct SliceIndices {
  int64_t start, stop, step, count;
};

SliceIndices slice_indices(int64_t length, const Value& start_v, const Value& stop_v,
                           const Value& step_v) {
  auto as_index = [](const Value& v, const char* what) -> int64_t {
    if (is_integral(v)) return as_integer(v);
    fail("slice ", what, " must be an integer or None, not ", v.type_name());
  };
  int64_t step = step_v.is_none() || step_v.is_undefined() ? 1 : as_index(step_v, "step");
  if (step == 0) fail("slice step cannot be zero");
  int64_t start, stop;
  const int64_t lower = step < 0 ? -1 : 0;
  const int64_t upper = step < 0 ? length - 1 : length;
  auto adjust = [&](const Value& v, int64_t dflt) {
    if (v.is_none() || v.is_undefined()) return dflt;
    int64_t i = as_index(v, "index");
    if (i < 0) {
      i += length;
      if (i < lower) i = lower;
    } else if (i > upper) {
      i = upper;
    }
    return i;
  };
  start = adjust(start_v, step < 0 ? upper : lower);
  stop = adjust(stop_v, step < 0 ? lower : upper);
  int64_t count = 0;
  if (step > 0 && start < stop) count = (stop - start - 1) / step + 1;
  if (step < 0 && stop < start) count = (start - stop - 1) / (-step) + 1;
  return {start, stop, step, count};
}

}  // namespace

// ---------------------------------------------------------------- renderer

Renderer::Renderer(const Template::Impl& tpl, const RenderOptions& options)
    : tpl_(tpl), options_(options), limits_(options.limits ? *options.limits : tpl.options.limits) {}

Renderer::~Renderer() {
  // Namespaces may reference each other (or themselves); empty them while
  // all are still alive so that releasing them cannot recurse deeply.
  std::vector<std::shared_ptr<Object>> alive;
  for (auto& weak : tracked_) {
    if (auto obj = weak.lock()) alive.push_back(std::move(obj));
  }
  for (auto& obj : alive) obj->clear();
}

void Renderer::track(const std::shared_ptr<Object>& object) { tracked_.push_back(object); }

int64_t Renderer::now_seconds() const {
  if (options_.now) return *options_.now;
  return int64_t(std::time(nullptr));
}

void Renderer::charge(size_t bytes) {
  work_ += bytes;
  if (work_ > limits_.max_work_bytes) {
    fail("template built more than ", limits_.max_work_bytes, " bytes of text (work limit)");
  }
}

void Renderer::check_size(size_t bytes) const {
  if (bytes > limits_.max_output_bytes) {
    fail("a string or list of ", bytes, " bytes exceeds the output limit of ", limits_.max_output_bytes,
         " bytes");
  }
}

Value Renderer::make_string(std::string s) {
  check_size(s.size());
  charge(s.size());
  return Value::string(std::move(s));
}

void Renderer::count_iterations(uint64_t n) {
  iterations_ += n;
  if (iterations_ > limits_.max_loop_iterations) {
    fail("template exceeded ", limits_.max_loop_iterations, " loop iterations");
  }
}

void Renderer::write(std::string_view s) {
  work_ += s.size();
  if (work_ > limits_.max_work_bytes) {
    fail("template built more than ", limits_.max_work_bytes, " bytes of text (work limit)");
  }
  if (out_->size() + s.size() > limits_.max_output_bytes) {
    fail("output exceeds ", limits_.max_output_bytes, " bytes");
  }
  out_->append(s);
}

void Renderer::error(int line, const std::string& message) const {
  throw TemplateError(line, message);
}

std::string Renderer::render(const nlohmann::ordered_json& context) {
  root_ = std::make_shared<Frame>();
  if (!context.is_null()) {
    if (!context.is_object()) fail("the template context must be a JSON object");
    for (const auto& [key, value] : context.items()) {
      // Only variables the template mentions are converted.
      auto it = tpl_.slots.find(key);
      if (it != tpl_.slots.end()) root_->set(it->second, Value::from_json(value));
    }
  }
  frame_ = root_;
  std::string output;
  out_ = &output;
  exec_body(tpl_.body);
  return output;
}

// ---------------------------------------------------------------- variables

Value Renderer::lookup(int slot, const std::string& name) const {
  for (const Frame* f = frame_.get(); f; f = f->parent.get()) {
    if (const Value* v = f->find(slot)) return *v;
  }
  const Value& global = tpl_.globals[size_t(slot)];
  if (!global.is_undefined()) return global;
  return Value::undefined("'" + name + "' is undefined");
}

void Renderer::set_var(int slot, Value v) { frame_->set(slot, std::move(v)); }

void Renderer::assign(const Target& t, const Value& v) {
  switch (t.kind) {
    case Target::Kind::kName: set_var(t.slot, v); return;
    case Target::Kind::kTuple: {
      if (!v.is_list() && !v.is_string() && !v.is_dict()) {
        fail("cannot unpack non-iterable ", v.type_name(), " object");
      }
      List items = iterate(v);
      if (items.size() < t.items.size()) {
        fail("not enough values to unpack (expected ", t.items.size(), ", got ", items.size(), ")");
      }
      if (items.size() > t.items.size()) {
        fail("too many values to unpack (expected ", t.items.size(), ")");
      }
      for (size_t i = 0; i < items.size(); i++) assign(t.items[i], items[i]);
      return;
    }
    case Target::Kind::kNamespaceAttr: {
      Value ns = lookup(t.slot, t.name);
      if (!ns.is_object() || !ns.object()->set_attr(t.attr, v)) {
        fail("cannot assign attribute '", t.attr, "' on non-namespace object '", t.name, "'");
      }
      return;
    }
  }
}

// ---------------------------------------------------------------- statements

Renderer::Flow Renderer::exec_body(const Body& body) {
  for (const StmtPtr& s : body) {
    Flow f = exec(*s);
    if (f != Flow::kNormal) return f;
  }
  return Flow::kNormal;
}

Renderer::Flow Renderer::exec(const Stmt& s) {
  if (s.kind == StmtKind::kText) {
    write(s.text);
    return Flow::kNormal;
  }
  if (++depth_ > limits_.max_depth) {
    depth_--;
    error(s.line, "template nested or recursed more than " + std::to_string(limits_.max_depth) +
                      " levels deep");
  }
  struct DepthGuard {
    int& d;
    ~DepthGuard() { d--; }
  } guard{depth_};
  try {
    return exec_inner(s);
  } catch (const TemplateError& e) {
    // Errors from builtins (raise_exception) come without a line.
    if (e.line() == 0) throw TemplateError(s.line, e.message(), e.raised());
    throw;
  } catch (const Error& e) {
    throw TemplateError(s.line, e.what());
  }
}

std::string Renderer::capture(const Body& body) {
  std::string buffer;
  {
    Restore<std::string*> redirect(out_, &buffer);
    exec_body(body);
  }
  return buffer;
}

Renderer::Flow Renderer::exec_inner(const Stmt& s) {
  switch (s.kind) {
    case StmtKind::kText: write(s.text); return Flow::kNormal;
    case StmtKind::kOutput: {
      Value v = eval(*s.expr);
      if (v.is_string()) {
        write(v.str());
      } else {
        std::string text = v.to_str();
        write(text);
      }
      return Flow::kNormal;
    }
    case StmtKind::kIf:
      for (const Branch& b : s.branches) {
        if (eval(*b.cond).truthy()) return exec_body(b.body);
      }
      return exec_body(s.else_body);
    case StmtKind::kFor: return exec_for(s);
    case StmtKind::kSet: assign(s.target, eval(*s.expr)); return Flow::kNormal;
    case StmtKind::kSetBlock: {
      std::string body;
      {
        auto scope = std::make_shared<Frame>();
        scope->parent = frame_;
        Restore<std::shared_ptr<Frame>> enter(frame_, scope);
        body = capture(s.body);
      }
      Value v = Value::string(std::move(body));
      if (s.expr) v = eval_filter(*s.expr, &v);
      assign(s.target, v);
      return Flow::kNormal;
    }
    case StmtKind::kMacro:
      set_var(s.target.slot,
              Value::callable(std::make_shared<MacroCallable>(s.macro.get(), frame_)));
      return Flow::kNormal;
    case StmtKind::kCallBlock: {
      Value caller = Value::callable(std::make_shared<MacroCallable>(s.macro.get(), frame_));
      const Expr& call = *s.expr;
      Value callee = eval(*call.a);
      CallArgs args;
      eval_args(call.args, args);
      args.keyword.emplace_back("caller", caller);
      Value result = this->call(callee, args);
      write(result.to_str());
      return Flow::kNormal;
    }
    case StmtKind::kFilterBlock: {
      std::string body;
      {
        auto scope = std::make_shared<Frame>();
        scope->parent = frame_;
        Restore<std::shared_ptr<Frame>> enter(frame_, scope);
        body = capture(s.body);
      }
      Value input = Value::string(std::move(body));
      write(eval_filter(*s.expr, &input).to_str());
      return Flow::kNormal;
    }
    case StmtKind::kWith: {
      std::vector<Value> values;
      for (const ExprPtr& e : s.with_values) values.push_back(eval(*e));
      auto scope = std::make_shared<Frame>();
      scope->parent = frame_;
      Restore<std::shared_ptr<Frame>> enter(frame_, scope);
      for (size_t i = 0; i < values.size(); i++) assign(s.with_targets[i], values[i]);
      return exec_body(s.body);
    }
    case StmtKind::kScope: {
      auto scope = std::make_shared<Frame>();
      scope->parent = frame_;
      Restore<std::shared_ptr<Frame>> enter(frame_, scope);
      return exec_body(s.body);
    }
    case StmtKind::kBreak: return Flow::kBreak;
    case StmtKind::kContinue: return Flow::kContinue;
  }
  return Flow::kNormal;
}

Renderer::Flow Renderer::exec_for(const Stmt& s) {
  Value iterable = eval(*s.expr);
  if (iterable.is_object() || iterable.is_callable()) {
    fail("'", iterable.type_name(), "' object is not iterable");
  }
  List items = iterate(iterable);
  auto scope = std::make_shared<Frame>();
  scope->parent = frame_;
  Restore<std::shared_ptr<Frame>> enter(frame_, scope);
  if (s.cond) {
    // `for x in xs if cond`: filter first, so loop.length and friends count
    // only the kept items.
    List kept;
    for (Value& item : items) {
      count_iterations(1);
      scope->vars.clear();
      assign(s.target, item);
      if (eval(*s.cond).truthy()) kept.push_back(std::move(item));
    }
    items = std::move(kept);
  }
  if (items.empty()) {
    scope->vars.clear();
    return exec_body(s.else_body) == Flow::kBreak ? Flow::kBreak : Flow::kNormal;
  }
  auto loop = std::make_shared<LoopObject>(Value::list(std::move(items)));
  Value loop_value = Value::object(loop);
  const List& list = loop->items();
  for (size_t i = 0; i < list.size(); i++) {
    count_iterations(1);
    loop->set_index(i);
    // One scope object reused across iterations, emptied each time, so that
    // assignments never carry over from one iteration to the next.
    scope->vars.clear();
    scope->set(kSlotLoop, loop_value);
    assign(s.target, list[i]);
    if (exec_body(s.body) == Flow::kBreak) break;
  }
  return Flow::kNormal;
}

// ---------------------------------------------------------------- expressions

Value Renderer::eval(const Expr& e) {
  if (++depth_ > limits_.max_depth) {
    depth_--;
    error(e.line, "template nested or recursed more than " + std::to_string(limits_.max_depth) +
                      " levels deep");
  }
  struct DepthGuard {
    int& d;
    ~DepthGuard() { d--; }
  } guard{depth_};
  return eval_inner(e);
}

void Renderer::eval_args(const std::vector<Arg>& args, CallArgs& out) {
  for (const Arg& arg : args) {
    if (arg.name.empty()) {
      out.positional.push_back(eval(*arg.value));
    } else {
      for (const auto& [name, value] : out.keyword) {
        if (name == arg.name) fail("keyword argument repeated: ", arg.name);
      }
      out.keyword.emplace_back(arg.name, eval(*arg.value));
    }
  }
}

Value Renderer::eval_inner(const Expr& e) {
  switch (e.kind) {
    case ExprKind::kConst: return e.value;
    case ExprKind::kName: return lookup(e.slot, e.name);
    case ExprKind::kList:
    case ExprKind::kTuple: {
      List items;
      items.reserve(e.items.size());
      for (const ExprPtr& item : e.items) items.push_back(eval(*item));
      return e.kind == ExprKind::kList ? Value::list(std::move(items))
                                       : Value::tuple(std::move(items));
    }
    case ExprKind::kDict: {
      Dict d;
      for (size_t i = 0; i + 1 < e.items.size(); i += 2) {
        Value key = eval(*e.items[i]);
        d.set(std::move(key), eval(*e.items[i + 1]));
      }
      return Value::dict(std::move(d));
    }
    case ExprKind::kGetattr: return getattr(eval(*e.a), e.name);
    case ExprKind::kGetitem: {
      Value obj = eval(*e.a);
      return getitem(obj, eval(*e.b));
    }
    case ExprKind::kSlice: return eval_slice(e);
    case ExprKind::kCall: return eval_call(e);
    case ExprKind::kFilter: return eval_filter(e, nullptr);
    case ExprKind::kTest: {
      Value input = eval(*e.a);
      CallArgs args;
      eval_args(e.args, args);
      bool result;
      try {
        result = e.test(*this, input, args);
      } catch (const TemplateError&) {
        throw;
      } catch (const Error& err) {
        fail("test '", e.name, "': ", err.what());
      }
      return Value::boolean(result != e.negated);
    }
    case ExprKind::kNot: return Value::boolean(!eval(*e.a).truthy());
    case ExprKind::kNeg:
    case ExprKind::kPos: {
      Value v = eval(*e.a);
      if (v.is_undefined()) fail_undefined(v);
      const bool neg = e.kind == ExprKind::kNeg;
      if (v.is_float()) return Value::number(neg ? -v.as_float() : v.as_float());
      if (is_integral(v)) {
        int64_t i = as_integer(v);
        if (neg && i == INT64_MIN) fail("integer overflow");
        return Value::integer(neg ? -i : i);
      }
      fail("bad operand type for unary ", neg ? "-" : "+", ": '", v.type_name(), "'");
    }
    case ExprKind::kBinary: return eval_binary(e);
    case ExprKind::kConcat: {
      std::string out;
      for (const ExprPtr& item : e.items) {
        Value v = eval(*item);
        if (v.is_string()) {
          check_size(out.size() + v.str().size());
          out += v.str();
        } else {
          std::string s = v.to_str();
          check_size(out.size() + s.size());
          out += s;
        }
      }
      return make_string(std::move(out));
    }
    case ExprKind::kCompare: return eval_compare(e);
    case ExprKind::kAnd: {
      Value left = eval(*e.a);
      if (!left.truthy()) return left;
      return eval(*e.b);
    }
    case ExprKind::kOr: {
      Value left = eval(*e.a);
      if (left.truthy()) return left;
      return eval(*e.b);
    }
    case ExprKind::kCond:
      if (eval(*e.b).truthy()) return eval(*e.a);
      if (e.c) return eval(*e.c);
      return Value::undefined("the inline if expression evaluated to false and has no else");
  }
  return Value();
}

Value Renderer::eval_binary(const Expr& e) {
  Value a = eval(*e.a);
  Value b = eval(*e.b);
  if (a.is_undefined()) fail_undefined(a);
  if (b.is_undefined()) fail_undefined(b);
  const bool numbers = a.is_number() && b.is_number();
  const bool ints = is_integral(a) && is_integral(b);
  switch (e.op) {
    case BinOp::kAdd:
      if (ints) {
        int64_t r = 0;
        if (__builtin_add_overflow(as_integer(a), as_integer(b), &r)) fail("integer overflow");
        return Value::integer(r);
      }
      if (numbers) return Value::number(a.to_double() + b.to_double());
      if (a.is_string() && b.is_string()) {
        check_size(a.str().size() + b.str().size());
        return make_string(a.str() + b.str());
      }
      if (a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple()) {
        // Lists count against the same size limit as strings.
        check_size((a.items().size() + b.items().size()) * sizeof(Value));
        charge((a.items().size() + b.items().size()) * sizeof(Value));
        List items = a.items();
        items.insert(items.end(), b.items().begin(), b.items().end());
        return a.is_tuple() ? Value::tuple(std::move(items)) : Value::list(std::move(items));
      }
      bad_operands("+", a, b);
    case BinOp::kSub:
      if (ints) {
        int64_t r = 0;
        if (__builtin_sub_overflow(as_integer(a), as_integer(b), &r)) fail("integer overflow");
        return Value::integer(r);
      }
      if (numbers) return Value::number(a.to_double() - b.to_double());
      bad_operands("-", a, b);
    case BinOp::kMul: {
      if (ints) {
        int64_t r = 0;
        if (__builtin_mul_overflow(as_integer(a), as_integer(b), &r)) fail("integer overflow");
        return Value::integer(r);
      }
      if (numbers) return Value::number(a.to_double() * b.to_double());
      // Sequence repetition: "ab" * 3, [1] * 2.
      const Value* seq = a.is_string() || a.is_list() ? &a : &b;
      const Value* times = seq == &a ? &b : &a;
      if ((seq->is_string() || seq->is_list()) && is_integral(*times)) {
        int64_t n = std::max<int64_t>(0, as_integer(*times));
        if (seq->is_string()) {
          const std::string& s = seq->str();
          if (!s.empty() && uint64_t(n) > limits_.max_output_bytes / s.size()) {
            fail("string repetition result exceeds the output limit");
          }
          charge(s.size() * size_t(n));
          std::string out;
          out.reserve(s.size() * size_t(n));
          for (int64_t i = 0; i < n; i++) out += s;
          return Value::string(std::move(out));
        }
        const List& items = seq->items();
        if (!items.empty() && uint64_t(n) > limits_.max_output_bytes / (items.size() * sizeof(Value))) {
          fail("list repetition result exceeds the output limit");
        }
        charge(items.size() * size_t(n) * sizeof(Value));
        List out;
        for (int64_t i = 0; i < n; i++) out.insert(out.end(), items.begin(), items.end());
        return seq->is_tuple() ? Value::tuple(std::move(out)) : Value::list(std::move(out));
      }
      bad_operands("*", a, b);
    }
    case BinOp::kDiv:
      if (numbers) {
        if (b.to_double() == 0) fail("division by zero");
        return Value::number(a.to_double() / b.to_double());
      }
      bad_operands("/", a, b);
    case BinOp::kFloorDiv:
      if (ints) {
        int64_t x = as_integer(a), y = as_integer(b);
        if (y == 0) fail("integer division or modulo by zero");
        if (x == INT64_MIN && y == -1) fail("integer overflow");
        int64_t q = x / y;
        if ((x % y != 0) && ((x < 0) != (y < 0))) q--;
        return Value::integer(q);
      }
      if (numbers) {
        if (b.to_double() == 0) fail("float floor division by zero");
        return Value::number(std::floor(a.to_double() / b.to_double()));
      }
      bad_operands("//", a, b);
    case BinOp::kMod:
      if (ints) {
        int64_t x = as_integer(a), y = as_integer(b);
        if (y == 0) fail("integer division or modulo by zero");
        if (y == -1) return Value::integer(0);
        int64_t r = x % y;
        if (r != 0 && ((r < 0) != (y < 0))) r += y;
        return Value::integer(r);
      }
      if (numbers) {
        double y = b.to_double();
        if (y == 0) fail("float modulo");
        double r = std::fmod(a.to_double(), y);
        if (r != 0 && ((r < 0) != (y < 0))) r += y;
        return Value::number(r);
      }
      if (a.is_string()) return make_string(percent_format(a.str(), b));
      bad_operands("%", a, b);
    case BinOp::kPow:
      if (ints && as_integer(b) >= 0) {
        int64_t base = as_integer(a), exp = as_integer(b), r = 1;
        while (exp > 0) {
          if ((exp & 1) && __builtin_mul_overflow(r, base, &r)) fail("integer overflow");
          exp >>= 1;
          if (exp > 0 && __builtin_mul_overflow(base, base, &base)) fail("integer overflow");
        }
        return Value::integer(r);
      }
      if (numbers) {
        if (a.to_double() == 0 && b.to_double() < 0) fail("0.0 cannot be raised to a negative power");
        return Value::number(std::pow(a.to_double(), b.to_double()));
      }
      bad_operands("** or pow()", a, b);
  }
  return Value();
}

namespace {

bool contains(const Value& container, const Value& item) {
  switch (container.kind()) {
    case Value::Kind::kString:
      if (!item.is_string()) {
        if (item.is_undefined()) fail_undefined(item);
        fail("'in <string>' requires string as left operand, not ", item.type_name());
      }
      return container.str().find(item.str()) != std::string::npos;
    case Value::Kind::kList:
      for (const Value& v : container.items()) {
        if (equals(v, item)) return true;
      }
      return false;
    case Value::Kind::kDict:
      if (!is_hashable(item)) fail("unhashable type: '", item.type_name(), "'");
      return container.dict().find(item) != nullptr;
    case Value::Kind::kUndefined: return false;
    default: fail("argument of type '", container.type_name(), "' is not iterable");
  }
}

}  // namespace

Value Renderer::eval_compare(const Expr& e) {
  Value left = eval(*e.a);
  for (size_t i = 0; i < e.items.size(); i++) {
    Value right = eval(*e.items[i]);
    bool ok;
    const CmpOp op = e.cmp[i];
    switch (op) {
      case CmpOp::kEq: ok = equals(left, right); break;
      case CmpOp::kNe: ok = !equals(left, right); break;
      case CmpOp::kIn: ok = contains(right, left); break;
      case CmpOp::kNotIn: ok = !contains(right, left); break;
      default:
        if (left.is_undefined()) fail_undefined(left);
        if (right.is_undefined()) fail_undefined(right);
        if (op == CmpOp::kLt) ok = less(left, right);
        else if (op == CmpOp::kGt) ok = less(right, left);
        else if (op == CmpOp::kLe) ok = less(left, right) || equals(left, right);
        else ok = less(right, left) || equals(left, right);
        // Python compares NaN as unordered: <= and >= need the < check first.
        break;
    }
    if (!ok) return Value::boolean(false);
    left = std::move(right);
  }
  return Value::boolean(true);
}

Value Renderer::eval_call(const Expr& e) {
  CallArgs args;
  if (e.a->kind == ExprKind::kGetattr) {
    // obj.method(args) without materialising a bound method.
    Value obj = eval(*e.a->a);
    if (obj.is_string() || obj.is_dict() || obj.is_list()) {
      eval_args(e.args, args);
      bool found = false;
      Value result = call_method(*this, obj, e.a->name, args, &found);
      if (found) return result;
      return call(getattr(obj, e.a->name), args);
    }
    Value callee = getattr(obj, e.a->name);
    eval_args(e.args, args);
    return call(callee, args);
  }
  Value callee = eval(*e.a);
  eval_args(e.args, args);
  if (callee.is_undefined() && e.a->kind == ExprKind::kName) {
    fail("'", e.a->name, "' is undefined (not a known function or macro)");
  }
  return call(callee, args);
}

Value Renderer::call(const Value& callee, CallArgs& args) {
  if (callee.is_undefined()) fail_undefined(callee);
  if (!callee.is_callable()) fail("'", callee.type_name(), "' object is not callable");
  return callee.callable()->call(*this, args);
}

Value Renderer::eval_filter(const Expr& e, const Value* input) {
  Value value;
  if (e.a) {
    value = e.a->kind == ExprKind::kFilter ? eval_filter(*e.a, input) : eval(*e.a);
  } else {
    value = *input;
  }
  CallArgs args;
  eval_args(e.args, args);
  try {
    return e.filter(*this, value, args);
  } catch (const TemplateError&) {
    throw;
  } catch (const Error& err) {
    fail("filter '", e.name, "': ", err.what());
  }
}

Value Renderer::apply_filter(std::string_view name, const Value& input, CallArgs& args) {
  FilterFn f = find_filter(name);
  if (!f) fail("unknown filter '", name, "'");
  return f(*this, input, args);
}

bool Renderer::apply_test(std::string_view name, const Value& input, CallArgs& args) {
  TestFn t = find_test(name);
  if (!t) fail("unknown test '", name, "'");
  return t(*this, input, args);
}

Value Renderer::getattr(const Value& obj, std::string_view name) {
  switch (obj.kind()) {
    case Value::Kind::kUndefined: fail_undefined(obj);
    case Value::Kind::kDict: {
      // Python attribute lookup comes first: d.items is the method even when
      // the dict has an "items" key.
      bool found = false;
      Value method = get_method(obj, name, &found);
      if (found) return method;
      if (const Value* v = obj.dict().find(name)) return *v;
      break;
    }
    case Value::Kind::kObject: {
      Value v = obj.object()->get_attr(name);
      if (!v.is_undefined()) return v;
      break;
    }
    case Value::Kind::kString:
    case Value::Kind::kList: {
      bool found = false;
      Value method = get_method(obj, name, &found);
      if (found) return method;
      break;
    }
    default: break;
  }
  return Value::undefined(str("'", object_description(obj), "' has no attribute '", name, "'"));
}

Value Renderer::getitem(const Value& obj, const Value& key) {
  if (obj.is_undefined()) fail_undefined(obj);
  if (key.is_undefined()) fail_undefined(key);
  switch (obj.kind()) {
    case Value::Kind::kDict: {
      const Value* v = nullptr;
      try {
        v = obj.dict().find(key);
      } catch (const Error&) {
        v = nullptr;  // unhashable key: Python raises TypeError, Jinja2 gives undefined
      }
      if (v) return *v;
      break;
    }
    case Value::Kind::kList:
    case Value::Kind::kString:
      if (is_integral(key)) {
        int64_t i = as_integer(key);
        if (obj.is_list()) {
          const int64_t n = int64_t(obj.items().size());
          if (i < 0) i += n;
          if (i >= 0 && i < n) return obj.items()[size_t(i)];
        } else {
          const std::string& s = obj.str();
          if (text::is_ascii(s)) {
            const int64_t n = int64_t(s.size());
            if (i < 0) i += n;
            if (i >= 0 && i < n) return Value::string(std::string(1, s[size_t(i)]));
          } else {
            std::vector<size_t> at = text::offsets(s);
            const int64_t n = int64_t(at.size()) - 1;
            if (i < 0) i += n;
            if (i >= 0 && i < n) return Value::string(s.substr(at[size_t(i)], at[size_t(i) + 1] - at[size_t(i)]));
          }
        }
        return Value::undefined(object_description(obj) + " has no element " + std::to_string(as_integer(key)));
      }
      break;
    case Value::Kind::kObject:
      if (key.is_string()) return getattr(obj, key.str());
      break;
    default: break;
  }
  // Jinja2 falls back to attribute lookup for string keys.
  if (key.is_string()) return getattr(obj, key.str());
  return Value::undefined(object_description(obj) + " has no element " + key.repr());
}

Value Renderer::eval_slice(const Expr& e) {
  Value obj = eval(*e.a);
  Value start = e.b ? eval(*e.b) : Value::none();
  Value stop = e.c ? eval(*e.c) : Value::none();
  Value step = e.d ? eval(*e.d) : Value::none();
  if (obj.is_undefined()) fail_undefined(obj);
  if (obj.is_list()) {
    const List& items = obj.items();
    SliceIndices s = slice_indices(int64_t(items.size()), start, stop, step);
    List out;
    out.reserve(size_t(s.count));
    for (int64_t k = 0, i = s.start; k < s.count; k++, i += s.step) out.push_back(items[size_t(i)]);
    charge(out.size() * sizeof(Value));
    return obj.is_tuple() ? Value::tuple(std::move(out)) : Value::list(std::move(out));
  }
  if (obj.is_string()) {
    const std::string& str = obj.str();
    std::string out;
    if (text::is_ascii(str)) {
      SliceIndices s = slice_indices(int64_t(str.size()), start, stop, step);
      if (s.step == 1) {
        out = str.substr(size_t(s.start), size_t(s.count));
      } else {
        for (int64_t k = 0, i = s.start; k < s.count; k++, i += s.step) out += str[size_t(i)];
      }
    } else {
      std::vector<size_t> at = text::offsets(str);
      SliceIndices s = slice_indices(int64_t(at.size()) - 1, start, stop, step);
      for (int64_t k = 0, i = s.start; k < s.count; k++, i += s.step) {
        out.append(str, at[size_t(i)], at[size_t(i) + 1] - at[size_t(i)]);
      }
    }
    return make_string(std::move(out));
  }
  // Jinja2 compiles slices to plain Python subscripts (no sandbox fallback to
  // undefined), so slicing anything else fails.
  if (obj.is_dict()) fail("unhashable type: 'slice'");
  fail("'", obj.type_name(), "' object is not subscriptable");
}

// ---------------------------------------------------------------- macros

Value Renderer::call_macro(const MacroDef& macro, const std::shared_ptr<Frame>& scope,
                           CallArgs& args, const Value& caller) {
  if (++depth_ > limits_.max_depth) {
    depth_--;
    fail("macro '", macro.name, "' recursed more than ", limits_.max_depth, " levels deep");
  }
  struct DepthGuard {
    int& d;
    ~DepthGuard() { d--; }
  } guard{depth_};

  auto frame = std::make_shared<Frame>();
  frame->parent = scope ? scope : root_;
  const size_t n_params = macro.params.size();
  std::vector<const Value*> bound(n_params, nullptr);
  List varargs;
  Dict kwargs;
  Value caller_value = caller;
  for (size_t i = 0; i < args.positional.size(); i++) {
    if (i < n_params) {
      bound[i] = &args.positional[i];
    } else if (macro.uses_varargs) {
      varargs.push_back(args.positional[i]);
    } else {
      fail("macro '", macro.name, "' takes not more than ", n_params, " argument(s)");
    }
  }
  for (const auto& [name, value] : args.keyword) {
    size_t i = 0;
    while (i < n_params && macro.params[i].name != name) i++;
    if (i < n_params) {
      if (bound[i]) fail("macro '", macro.name, "' got multiple values for argument '", name, "'");
      bound[i] = &value;
    } else if (name == "caller" && macro.uses_caller) {
      caller_value = value;
    } else if (macro.uses_kwargs) {
      kwargs.set(Value::string(name), value);
    } else {
      fail("macro '", macro.name, "' takes no keyword argument '", name, "'");
    }
  }

  Restore<std::shared_ptr<Frame>> enter(frame_, frame);
  // Defaults are evaluated in the macro's scope, in order, so they can refer
  // to earlier parameters.
  for (size_t i = 0; i < n_params; i++) {
    const Param& p = macro.params[i];
    if (bound[i]) {
      frame->set(p.slot, *bound[i]);
    } else if (p.default_value) {
      frame->set(p.slot, eval(*p.default_value));
    } else {
      frame->set(p.slot, Value::undefined("parameter '" + p.name + "' was not provided"));
    }
  }
  if (macro.uses_varargs) frame->set(kSlotVarargs, Value::tuple(std::move(varargs)));
  if (macro.uses_kwargs) frame->set(kSlotKwargs, Value::dict(std::move(kwargs)));
  if (macro.uses_caller) {
    frame->set(kSlotCaller, caller_value.is_undefined()
                                ? Value::undefined("macro '" + macro.name +
                                                   "' was not called from a call block")
                                : caller_value);
  }
  return make_string(capture(macro.body));
}

}  // namespace pocket::jinja
