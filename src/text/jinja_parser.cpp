// Recursive-descent parser for the Jinja subset, following Jinja2's grammar
// and operator precedence (lowest first): `a if c else b`, or, and, not,
// comparisons (chained, in, not in), + -, ~, * / // %, **, unary - +, then
// primaries with .attr [index] (call) and | filter / is test.
#include <algorithm>
#include <initializer_list>

#include "text/jinja_internal.h"
#include "text/jinja_lexer.h"

namespace pocket::jinja {

namespace {

// Bounds recursion while parsing and the height of the syntax tree, so neither
// the parser, the renderer nor the tree's destructor can overflow the stack.
constexpr int kMaxNesting = 200;

class Parser {
 public:
  Parser(std::vector<Token> tokens, Template::Impl& impl) : toks_(std::move(tokens)), impl_(impl) {
    for (const char* reserved : {"loop", "caller", "varargs", "kwargs"}) slot_for(reserved);
  }

  Body parse() {
    Body body = subparse({});
    return body;
  }

 private:
  // ------------------------------------------------------------ token helpers
  const Token& cur() const { return toks_[pos_]; }
  const Token& peek(size_t k = 1) const { return toks_[std::min(pos_ + k, toks_.size() - 1)]; }
  void advance() {
    if (pos_ + 1 < toks_.size()) pos_++;
  }
  bool is_op(const char* op) const {
    return cur().type == Token::Type::kOperator && cur().text == op;
  }
  bool is_name(const char* name) const {
    return cur().type == Token::Type::kName && cur().text == name;
  }
  static bool token_is_name(const Token& t, const char* name) {
    return t.type == Token::Type::kName && t.text == name;
  }
  bool skip_op(const char* op) {
    if (!is_op(op)) return false;
    advance();
    return true;
  }
  bool skip_name(const char* name) {
    if (!is_name(name)) return false;
    advance();
    return true;
  }
  [[noreturn]] void error(const std::string& message) const {
    throw TemplateError(cur().line, message);
  }
  [[noreturn]] void unexpected(const char* expected) const {
    error(std::string("unexpected ") + describe(cur()) + ", expected " + expected);
  }
  void expect_op(const char* op) {
    if (!skip_op(op)) unexpected((std::string("'") + op + "'").c_str());
  }
  std::string expect_name(const char* what) {
    if (cur().type != Token::Type::kName) unexpected(what);
    std::string name = cur().text;
    advance();
    return name;
  }
  void expect_block_end(const char* statement) {
    if (cur().type == Token::Type::kBlockEnd) {
      advance();
      return;
    }
    error(std::string("unexpected ") + describe(cur()) + " in '" + statement +
          "' statement, expected '%}'");
  }

  struct NestingGuard {
    explicit NestingGuard(Parser& p) : p(p) {
      if (++p.nesting_ > kMaxNesting) p.error("template nested too deeply");
    }
    ~NestingGuard() { p.nesting_--; }
    Parser& p;
  };

  int slot_for(const std::string& name) {
    auto it = impl_.slots.find(name);
    if (it != impl_.slots.end()) return it->second;
    int slot = int(impl_.names.size());
    impl_.names.push_back(name);
    impl_.slots.emplace(name, slot);
    impl_.globals.push_back(find_global(name));
    return slot;
  }

  ExprPtr node(ExprKind kind, int line) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = line;
    return e;
  }

  // Computes the subtree height once the children are attached.
  ExprPtr finish(ExprPtr e) {
    int h = 0;
    for (const ExprPtr* child : {&e->a, &e->b, &e->c, &e->d}) {
      if (*child) h = std::max(h, (*child)->depth);
    }
    for (const ExprPtr& item : e->items) h = std::max(h, item->depth);
    for (const Arg& arg : e->args) h = std::max(h, arg.value->depth);
    e->depth = h + 1;
    if (e->depth > kMaxNesting) throw TemplateError(e->line, "expression nested too deeply");
    return e;
  }

  // ------------------------------------------------------------ statements

  // Parses template data and tags until a block tag whose name is in
  // `end_names` (left as the current token) or the end of the template.
  Body subparse(std::initializer_list<const char*> end_names, const char* opener = nullptr,
                int opener_line = 0) {
    NestingGuard guard(*this);
    Body body;
    while (true) {
      const Token& t = cur();
      switch (t.type) {
        case Token::Type::kText: {
          auto s = std::make_unique<Stmt>();
          s->kind = StmtKind::kText;
          s->line = t.line;
          s->text = t.text;
          body.push_back(std::move(s));
          advance();
          break;
        }
        case Token::Type::kVarBegin: {
          auto s = std::make_unique<Stmt>();
          s->kind = StmtKind::kOutput;
          s->line = t.line;
          advance();
          s->expr = parse_tuple(false, true, {}, false);
          if (cur().type != Token::Type::kVarEnd) unexpected("'}}'");
          advance();
          body.push_back(std::move(s));
          break;
        }
        case Token::Type::kBlockBegin: {
          advance();
          if (cur().type == Token::Type::kName) {
            for (const char* end : end_names) {
              if (cur().text == end) return body;
            }
          }
          body.push_back(parse_statement());
          break;
        }
        case Token::Type::kEof: {
          if (end_names.size() == 0) return body;
          std::string wanted;
          for (const char* end : end_names) {
            wanted += wanted.empty() ? "" : " or ";
            wanted += std::string("'") + end + "'";
          }
          throw TemplateError(opener_line, std::string("'") + opener +
                                               "' statement is not closed: reached the end "
                                               "of the template looking for " +
                                               wanted);
        }
        default: unexpected("template data or a tag");
      }
    }
  }

  // After a statement header: expects '%}' and parses the body up to one of
  // `end_names` (left as the current token).
  Body parse_block(const char* statement, int line, std::initializer_list<const char*> end_names) {
    expect_block_end(statement);
    open_blocks_.emplace_back(statement, line);
    Body body = subparse(end_names, statement, line);
    open_blocks_.pop_back();
    return body;
  }

  // Consumes `{% endX %}`'s name and '%}'.
  void finish_end_tag(const char* end_name) {
    advance();  // the end name
    expect_block_end(end_name);
  }

  StmtPtr parse_statement() {
    NestingGuard guard(*this);
    if (cur().type != Token::Type::kName) unexpected("a statement name");
    const std::string name = cur().text;
    const int line = cur().line;
    auto s = std::make_unique<Stmt>();
    s->line = line;
    if (name == "if") {
      advance();
      parse_if(*s);
    } else if (name == "for") {
      advance();
      parse_for(*s);
    } else if (name == "set") {
      advance();
      parse_set(*s);
    } else if (name == "macro") {
      advance();
      parse_macro(*s);
    } else if (name == "call") {
      advance();
      parse_call_block(*s);
    } else if (name == "filter") {
      advance();
      s->kind = StmtKind::kFilterBlock;
      s->expr = parse_filter_chain(nullptr, true);
      s->body = parse_block("filter", line, {"endfilter"});
      finish_end_tag("endfilter");
    } else if (name == "with") {
      advance();
      parse_with(*s);
    } else if (name == "generation") {
      // transformers' AssistantTracker extension: renders its body.
      advance();
      s->kind = StmtKind::kScope;
      s->body = parse_block("generation", line, {"endgeneration"});
      finish_end_tag("endgeneration");
    } else if (name == "break" || name == "continue") {
      advance();
      if (loop_depth_ == 0) error("'" + name + "' outside of a loop");
      s->kind = name == "break" ? StmtKind::kBreak : StmtKind::kContinue;
      expect_block_end(name.c_str());
    } else if (name.rfind("end", 0) == 0 || name == "elif" || name == "else") {
      if (open_blocks_.empty()) error("unexpected '{% " + name + " %}': no block is open");
      error("unexpected '{% " + name + " %}' inside the '" + open_blocks_.back().first +
            "' statement opened on line " + std::to_string(open_blocks_.back().second));
    } else if (name == "include" || name == "import" || name == "from" || name == "extends" ||
               name == "block" || name == "do" || name == "autoescape" || name == "trans" ||
               name == "pluralize" || name == "print") {
      error("unsupported statement '{% " + name + " %}'");
    } else {
      error("unknown statement '{% " + name + " %}'");
    }
    return s;
  }

  void parse_if(Stmt& s) {
    s.kind = StmtKind::kIf;
    const int line = s.line;
    while (true) {
      Branch branch;
      branch.cond = parse_tuple(false, false, {}, false);
      branch.body = parse_block("if", line, {"elif", "else", "endif"});
      s.branches.push_back(std::move(branch));
      if (is_name("elif")) {
        advance();
        continue;
      }
      if (is_name("else")) {
        advance();
        s.else_body = parse_block("if", line, {"endif"});
      }
      finish_end_tag("endif");
      return;
    }
  }

  void parse_for(Stmt& s) {
    s.kind = StmtKind::kFor;
    s.target = parse_assign_target({"in"});
    if (!skip_name("in")) unexpected("'in'");
    s.expr = parse_tuple(false, false, {"recursive"}, false);
    if (skip_name("if")) s.cond = parse_expression(true);
    if (is_name("recursive")) error("recursive loops ('for ... recursive') are not supported");
    loop_depth_++;
    s.body = parse_block("for", s.line, {"endfor", "else"});
    loop_depth_--;
    if (is_name("else")) {
      advance();
      s.else_body = parse_block("for", s.line, {"endfor"});
    }
    finish_end_tag("endfor");
  }

  void parse_set(Stmt& s) {
    if (cur().type == Token::Type::kName && peek().type == Token::Type::kOperator &&
        peek().text == ".") {
      s.target.kind = Target::Kind::kNamespaceAttr;
      s.target.name = cur().text;
      s.target.slot = slot_for(cur().text);
      advance();
      advance();
      s.target.attr = expect_name("an attribute name");
    } else {
      s.target = parse_assign_target({});
    }
    if (skip_op("=")) {
      s.kind = StmtKind::kSet;
      s.expr = parse_tuple(false, true, {}, false);
      expect_block_end("set");
      return;
    }
    s.kind = StmtKind::kSetBlock;
    if (is_op("|")) s.expr = parse_filter_chain(nullptr, false);
    s.body = parse_block("set", s.line, {"endset"});
    finish_end_tag("endset");
  }

  Target parse_assign_target(std::initializer_list<const char*> extra_end) {
    const int line = cur().line;
    std::vector<Target> items;
    bool is_tuple = false;
    while (true) {
      if (!items.empty()) expect_op(",");
      if (is_tuple_end(extra_end)) break;
      items.push_back(parse_target_primary());
      if (is_op(",")) {
        is_tuple = true;
      } else {
        break;
      }
    }
    if (items.empty()) {
      throw TemplateError(line, "expected a variable name to assign to, got " + describe(cur()));
    }
    if (!is_tuple) return std::move(items[0]);
    Target t;
    t.kind = Target::Kind::kTuple;
    t.items = std::move(items);
    return t;
  }

  Target parse_target_primary() {
    NestingGuard guard(*this);
    if (skip_op("(")) {
      Target t = parse_assign_target({});
      expect_op(")");
      return t;
    }
    if (cur().type != Token::Type::kName) unexpected("a variable name");
    Target t;
    t.kind = Target::Kind::kName;
    t.name = cur().text;
    if (t.name == "true" || t.name == "false" || t.name == "none" || t.name == "True" ||
        t.name == "False" || t.name == "None") {
      error("cannot assign to '" + t.name + "'");
    }
    t.slot = slot_for(t.name);
    advance();
    return t;
  }

  void parse_signature(MacroDef& m) {
    expect_op("(");
    while (!is_op(")")) {
      if (!m.params.empty()) expect_op(",");
      if (is_op(")")) break;
      Param p;
      p.name = expect_name("a parameter name");
      p.slot = slot_for(p.name);
      if (skip_op("=")) {
        p.default_value = parse_expression(true);
      } else if (!m.params.empty() && m.params.back().default_value) {
        error("non-default parameter '" + p.name + "' follows a default parameter");
      }
      m.params.push_back(std::move(p));
    }
    advance();
  }

  // Marks which implicit variables a macro body uses (set while parsing it).
  struct MacroScope {
    MacroScope(Parser& p, MacroDef* m) : p(p), saved(p.macro_), saved_loops(p.loop_depth_) {
      p.macro_ = m;
      p.loop_depth_ = 0;
    }
    ~MacroScope() {
      p.macro_ = saved;
      p.loop_depth_ = saved_loops;
    }
    Parser& p;
    MacroDef* saved;
    int saved_loops;
  };

  void parse_macro(Stmt& s) {
    s.kind = StmtKind::kMacro;
    s.macro = std::make_unique<MacroDef>();
    s.macro->line = s.line;
    s.macro->name = expect_name("a macro name");
    s.target.kind = Target::Kind::kName;
    s.target.name = s.macro->name;
    s.target.slot = slot_for(s.macro->name);
    parse_signature(*s.macro);
    MacroScope scope(*this, s.macro.get());
    s.macro->body = parse_block("macro", s.line, {"endmacro"});
    finish_end_tag("endmacro");
  }

  void parse_call_block(Stmt& s) {
    s.kind = StmtKind::kCallBlock;
    s.macro = std::make_unique<MacroDef>();
    s.macro->name = "caller";
    s.macro->line = s.line;
    if (is_op("(")) parse_signature(*s.macro);
    s.expr = parse_expression(true);
    if (s.expr->kind != ExprKind::kCall) {
      throw TemplateError(s.line, "'call' statement expects a macro call");
    }
    MacroScope scope(*this, s.macro.get());
    s.macro->body = parse_block("call", s.line, {"endcall"});
    finish_end_tag("endcall");
  }

  void parse_with(Stmt& s) {
    s.kind = StmtKind::kWith;
    while (cur().type != Token::Type::kBlockEnd) {
      if (!s.with_targets.empty()) expect_op(",");
      s.with_targets.push_back(parse_assign_target({}));
      expect_op("=");
      s.with_values.push_back(parse_expression(true));
    }
    s.body = parse_block("with", s.line, {"endwith"});
    finish_end_tag("endwith");
  }

  // ------------------------------------------------------------ expressions

  bool is_tuple_end(std::initializer_list<const char*> extra_end) const {
    const Token& t = cur();
    if (t.type == Token::Type::kVarEnd || t.type == Token::Type::kBlockEnd ||
        t.type == Token::Type::kEof) {
      return true;
    }
    if (t.type == Token::Type::kOperator && t.text == ")") return true;
    for (const char* end : extra_end) {
      if (token_is_name(t, end)) return true;
    }
    return false;
  }

  ExprPtr parse_tuple(bool simplified, bool with_condexpr,
                      std::initializer_list<const char*> extra_end, bool explicit_parens) {
    const int line = cur().line;
    std::vector<ExprPtr> items;
    bool is_tuple = false;
    while (true) {
      if (!items.empty()) expect_op(",");
      if (is_tuple_end(extra_end)) break;
      if (simplified) {
        items.push_back(parse_primary());
      } else {
        items.push_back(parse_expression(with_condexpr));
      }
      if (is_op(",")) {
        is_tuple = true;
      } else {
        break;
      }
    }
    if (!is_tuple) {
      if (!items.empty()) return std::move(items[0]);
      if (!explicit_parens) unexpected("an expression");
    }
    auto e = node(ExprKind::kTuple, line);
    e->items = std::move(items);
    return finish(std::move(e));
  }

  ExprPtr parse_expression(bool with_condexpr) {
    NestingGuard guard(*this);
    if (!with_condexpr) return parse_or();
    ExprPtr e = parse_or();
    while (is_name("if")) {
      const int line = cur().line;
      advance();
      auto cond = node(ExprKind::kCond, line);
      cond->a = std::move(e);
      cond->b = parse_or();
      if (skip_name("else")) cond->c = parse_expression(true);
      e = finish(std::move(cond));
    }
    return e;
  }

  ExprPtr parse_or() {
    ExprPtr left = parse_and();
    while (is_name("or")) {
      auto e = node(ExprKind::kOr, cur().line);
      advance();
      e->a = std::move(left);
      e->b = parse_and();
      left = finish(std::move(e));
    }
    return left;
  }

  ExprPtr parse_and() {
    ExprPtr left = parse_not();
    while (is_name("and")) {
      auto e = node(ExprKind::kAnd, cur().line);
      advance();
      e->a = std::move(left);
      e->b = parse_not();
      left = finish(std::move(e));
    }
    return left;
  }

  ExprPtr parse_not() {
    NestingGuard guard(*this);
    if (is_name("not")) {
      auto e = node(ExprKind::kNot, cur().line);
      advance();
      e->a = parse_not();
      return finish(std::move(e));
    }
    return parse_compare();
  }

  ExprPtr parse_compare() {
    const int line = cur().line;
    ExprPtr first = parse_math1();
    std::vector<CmpOp> ops;
    std::vector<ExprPtr> operands;
    while (true) {
      const Token& t = cur();
      CmpOp op;
      if (t.type == Token::Type::kOperator && t.text == "==") {
        op = CmpOp::kEq;
      } else if (t.type == Token::Type::kOperator && t.text == "!=") {
        op = CmpOp::kNe;
      } else if (t.type == Token::Type::kOperator && t.text == "<") {
        op = CmpOp::kLt;
      } else if (t.type == Token::Type::kOperator && t.text == "<=") {
        op = CmpOp::kLe;
      } else if (t.type == Token::Type::kOperator && t.text == ">") {
        op = CmpOp::kGt;
      } else if (t.type == Token::Type::kOperator && t.text == ">=") {
        op = CmpOp::kGe;
      } else if (token_is_name(t, "in")) {
        op = CmpOp::kIn;
      } else if (token_is_name(t, "not") && token_is_name(peek(), "in")) {
        advance();
        op = CmpOp::kNotIn;
      } else {
        break;
      }
      advance();
      ops.push_back(op);
      operands.push_back(parse_math1());
    }
    if (ops.empty()) return first;
    auto e = node(ExprKind::kCompare, line);
    e->a = std::move(first);
    e->cmp = std::move(ops);
    e->items = std::move(operands);
    return finish(std::move(e));
  }

  ExprPtr binary(BinOp op, ExprPtr left, ExprPtr right, int line) {
    auto e = node(ExprKind::kBinary, line);
    e->op = op;
    e->a = std::move(left);
    e->b = std::move(right);
    return finish(std::move(e));
  }

  ExprPtr parse_math1() {
    ExprPtr left = parse_concat();
    while (is_op("+") || is_op("-")) {
      const BinOp op = is_op("+") ? BinOp::kAdd : BinOp::kSub;
      const int line = cur().line;
      advance();
      left = binary(op, std::move(left), parse_concat(), line);
    }
    return left;
  }

  ExprPtr parse_concat() {
    const int line = cur().line;
    ExprPtr first = parse_math2();
    if (!is_op("~")) return first;
    auto e = node(ExprKind::kConcat, line);
    e->items.push_back(std::move(first));
    while (skip_op("~")) e->items.push_back(parse_math2());
    return finish(std::move(e));
  }

  ExprPtr parse_math2() {
    ExprPtr left = parse_pow();
    while (true) {
      BinOp op;
      if (is_op("*")) {
        op = BinOp::kMul;
      } else if (is_op("/")) {
        op = BinOp::kDiv;
      } else if (is_op("//")) {
        op = BinOp::kFloorDiv;
      } else if (is_op("%")) {
        op = BinOp::kMod;
      } else {
        break;
      }
      const int line = cur().line;
      advance();
      left = binary(op, std::move(left), parse_pow(), line);
    }
    return left;
  }

  ExprPtr parse_pow() {
    ExprPtr left = parse_unary(true);
    while (is_op("**")) {
      const int line = cur().line;
      advance();
      left = binary(BinOp::kPow, std::move(left), parse_unary(true), line);
    }
    return left;
  }

  ExprPtr parse_unary(bool with_filter) {
    NestingGuard guard(*this);
    ExprPtr e;
    if (is_op("-") || is_op("+")) {
      e = node(is_op("-") ? ExprKind::kNeg : ExprKind::kPos, cur().line);
      advance();
      e->a = parse_unary(false);
      e = finish(std::move(e));
    } else {
      e = parse_primary();
    }
    e = parse_postfix(std::move(e));
    if (with_filter) e = parse_filter_expr(std::move(e));
    return e;
  }

  ExprPtr constant(Value v, int line) {
    auto e = node(ExprKind::kConst, line);
    e->value = std::move(v);
    return e;
  }

  ExprPtr parse_primary() {
    NestingGuard guard(*this);
    const Token& t = cur();
    const int line = t.line;
    switch (t.type) {
      case Token::Type::kName: {
        const std::string& n = t.text;
        ExprPtr e;
        if (n == "true" || n == "True") {
          e = constant(Value::boolean(true), line);
        } else if (n == "false" || n == "False") {
          e = constant(Value::boolean(false), line);
        } else if (n == "none" || n == "None") {
          e = constant(Value::none(), line);
        } else {
          e = node(ExprKind::kName, line);
          e->name = n;
          e->slot = slot_for(n);
          if (macro_) {
            if (n == "varargs") macro_->uses_varargs = true;
            if (n == "kwargs") macro_->uses_kwargs = true;
            if (n == "caller") macro_->uses_caller = true;
          }
        }
        advance();
        return e;
      }
      case Token::Type::kString: {
        std::string s;
        while (cur().type == Token::Type::kString) {
          s += cur().text;
          advance();
        }
        return constant(Value::string(std::move(s)), line);
      }
      case Token::Type::kInt: {
        ExprPtr e = constant(Value::integer(t.int_value), line);
        advance();
        return e;
      }
      case Token::Type::kFloat: {
        ExprPtr e = constant(Value::number(t.float_value), line);
        advance();
        return e;
      }
      case Token::Type::kOperator:
        if (t.text == "(") {
          advance();
          ExprPtr e = parse_tuple(false, true, {}, true);
          expect_op(")");
          return e;
        }
        if (t.text == "[") return parse_list();
        if (t.text == "{") return parse_dict();
        break;
      default: break;
    }
    unexpected("an expression");
  }

  ExprPtr parse_list() {
    auto e = node(ExprKind::kList, cur().line);
    expect_op("[");
    while (!is_op("]")) {
      if (!e->items.empty()) expect_op(",");
      if (is_op("]")) break;
      e->items.push_back(parse_expression(true));
    }
    advance();
    return finish(std::move(e));
  }

  ExprPtr parse_dict() {
    auto e = node(ExprKind::kDict, cur().line);
    expect_op("{");
    while (!is_op("}")) {
      if (!e->items.empty()) expect_op(",");
      if (is_op("}")) break;
      e->items.push_back(parse_expression(true));
      expect_op(":");
      e->items.push_back(parse_expression(true));
    }
    advance();
    return finish(std::move(e));
  }

  ExprPtr parse_postfix(ExprPtr e) {
    while (true) {
      if (is_op(".") || is_op("[")) {
        e = parse_subscript(std::move(e));
      } else if (is_op("(")) {
        e = parse_call(std::move(e));
      } else {
        return e;
      }
    }
  }

  ExprPtr parse_filter_expr(ExprPtr e) {
    while (true) {
      if (is_op("|")) {
        e = parse_filter(std::move(e), false);
      } else if (is_name("is")) {
        e = parse_test(std::move(e));
      } else if (is_op("(")) {
        e = parse_call(std::move(e));
      } else {
        return e;
      }
    }
  }

  ExprPtr parse_subscript(ExprPtr obj) {
    const int line = cur().line;
    if (skip_op(".")) {
      if (cur().type == Token::Type::kName) {
        auto e = node(ExprKind::kGetattr, line);
        e->a = std::move(obj);
        e->name = cur().text;
        advance();
        return finish(std::move(e));
      }
      if (cur().type == Token::Type::kInt) {
        auto e = node(ExprKind::kGetitem, line);
        e->a = std::move(obj);
        e->b = constant(Value::integer(cur().int_value), line);
        advance();
        return finish(std::move(e));
      }
      unexpected("an attribute name");
    }
    expect_op("[");
    ExprPtr start, stop, step;
    bool is_slice = false;
    if (!is_op(":")) start = parse_expression(true);
    if (skip_op(":")) {
      is_slice = true;
      if (!is_op(":") && !is_op("]")) stop = parse_expression(true);
      if (skip_op(":")) {
        if (!is_op("]")) step = parse_expression(true);
      }
    }
    if (!is_slice && is_op(",")) {
      // a[x, y] subscripts with the tuple (x, y).
      auto key = node(ExprKind::kTuple, line);
      key->items.push_back(std::move(start));
      while (skip_op(",")) {
        if (is_op("]")) break;
        key->items.push_back(parse_expression(true));
      }
      start = finish(std::move(key));
    }
    expect_op("]");
    if (!is_slice) {
      auto e = node(ExprKind::kGetitem, line);
      e->a = std::move(obj);
      e->b = std::move(start);
      return finish(std::move(e));
    }
    auto e = node(ExprKind::kSlice, line);
    e->a = std::move(obj);
    e->b = std::move(start);
    e->c = std::move(stop);
    e->d = std::move(step);
    return finish(std::move(e));
  }

  void parse_call_args(std::vector<Arg>& args) {
    expect_op("(");
    bool seen_keyword = false;
    while (!is_op(")")) {
      if (!args.empty()) expect_op(",");
      if (is_op(")")) break;
      if (is_op("*") || is_op("**")) error("'*args' and '**kwargs' in calls are not supported");
      Arg arg;
      if (cur().type == Token::Type::kName && peek().type == Token::Type::kOperator &&
          peek().text == "=") {
        arg.name = cur().text;
        advance();
        advance();
        seen_keyword = true;
      } else if (seen_keyword) {
        error("positional argument follows keyword argument");
      }
      arg.value = parse_expression(true);
      args.push_back(std::move(arg));
    }
    advance();
  }

  ExprPtr parse_call(ExprPtr callee) {
    auto e = node(ExprKind::kCall, cur().line);
    e->a = std::move(callee);
    parse_call_args(e->args);
    return finish(std::move(e));
  }

  std::string parse_dotted_name(const char* what) {
    std::string name = expect_name(what);
    while (is_op(".")) {
      advance();
      name += "." + expect_name(what);
    }
    return name;
  }

  // `| name(args)`; with start_inline the first filter has no leading '|'
  // (filter blocks).
  ExprPtr parse_filter(ExprPtr input, bool start_inline) {
    const int line = cur().line;
    if (!start_inline) expect_op("|");
    auto e = node(ExprKind::kFilter, line);
    e->a = std::move(input);
    e->name = parse_dotted_name("a filter name");
    e->filter = find_filter(e->name);
    if (!e->filter) throw TemplateError(line, "unknown filter '" + e->name + "'");
    if (is_op("(")) parse_call_args(e->args);
    return finish(std::move(e));
  }

  ExprPtr parse_filter_chain(ExprPtr input, bool start_inline) {
    ExprPtr e = parse_filter(std::move(input), start_inline);
    while (is_op("|")) e = parse_filter(std::move(e), false);
    return e;
  }

  ExprPtr parse_test(ExprPtr input) {
    const int line = cur().line;
    advance();  // is
    auto e = node(ExprKind::kTest, line);
    e->a = std::move(input);
    e->negated = skip_name("not");
    e->name = parse_dotted_name("a test name");
    e->test = find_test(e->name);
    if (!e->test) throw TemplateError(line, "unknown test '" + e->name + "'");
    const Token& t = cur();
    if (is_op("(")) {
      parse_call_args(e->args);
    } else if ((t.type == Token::Type::kName || t.type == Token::Type::kString ||
                t.type == Token::Type::kInt || t.type == Token::Type::kFloat ||
                is_op("[") || is_op("{")) &&
               !is_name("else") && !is_name("or") && !is_name("and") && !is_name("if")) {
      if (is_name("is")) error("tests cannot be chained ('x is a is b')");
      // One argument without parentheses: `x is divisibleby 3`.
      Arg arg;
      arg.value = parse_postfix(parse_primary());
      e->args.push_back(std::move(arg));
    }
    return finish(std::move(e));
  }

  std::vector<Token> toks_;
  size_t pos_ = 0;
  Template::Impl& impl_;
  int nesting_ = 0;
  int loop_depth_ = 0;
  MacroDef* macro_ = nullptr;
  std::vector<std::pair<std::string, int>> open_blocks_;  // statement, line
};

}  // namespace

void parse_template(std::string_view source, Template::Impl& impl) {
  LexOptions lex;
  lex.trim_blocks = impl.options.trim_blocks;
  lex.lstrip_blocks = impl.options.lstrip_blocks;
  lex.keep_trailing_newline = impl.options.keep_trailing_newline;
  Parser parser(tokenize(source, lex), impl);
  impl.body = parser.parse();
}

}  // namespace pocket::jinja
