#include "server/http_server.h"

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>

#include "kernels/fast_ops.h"
#include "kernels/ops.h"
#include "model/model.h"
#include "server/engine.h"
#include "server/metrics.h"
#include "server/output_parser.h"
#include "server/peer_socket.h"
#include "text/chat.h"
#include "text/jinja.h"
#include "text/tokenizer.h"
#include "util/error.h"
#include "util/thread_pool.h"

namespace pocket::server {

using json = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

namespace {

// An OpenAI-shaped error: {"error": {"message", "type", "param", "code"}}.
struct ApiError {
  ApiError(int status, std::string message, std::string type = "invalid_request_error", std::string param = "",
           std::string code = "")
      : status(status), message(std::move(message)), type(std::move(type)), param(std::move(param)), code(std::move(code)) {}
  int status;
  std::string message;
  std::string type;
  std::string param;
  std::string code;
};

[[noreturn]] void bad_param(const std::string& param, const std::string& message) {
  throw ApiError{400, message, "invalid_request_error", param, ""};
}

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

json error_json(const ApiError& e) {
  json err = {{"message", e.message}, {"type", e.type}, {"param", nullptr}, {"code", nullptr}};
  if (!e.param.empty()) err["param"] = e.param;
  if (!e.code.empty()) err["code"] = e.code;
  return {{"error", err}};
}

void send_error(httplib::Response& res, const ApiError& e) {
  res.status = e.status;
  res.set_content(dump(error_json(e)), "application/json");
}

// ---- typed access to request fields; every error names the field ----

const json* field(const json& body, const char* name) {
  auto it = body.find(name);
  return it == body.end() || it->is_null() ? nullptr : &*it;
}

double number_field(const json& body, const char* name, double dflt, double lo, double hi) {
  const json* v = field(body, name);
  if (!v) return dflt;
  if (!v->is_number()) bad_param(name, str("'", name, "' must be a number"));
  const double x = v->get<double>();
  if (!(x >= lo && x <= hi)) bad_param(name, str("'", name, "' must be between ", lo, " and ", hi, ", got ", x));
  return x;
}

int64_t int_field(const json& body, const char* name, int64_t dflt, int64_t lo, int64_t hi) {
  const json* v = field(body, name);
  if (!v) return dflt;
  if (v->is_number_float() && std::floor(v->get<double>()) == v->get<double>() && std::abs(v->get<double>()) < 9e15)
    return int_field(json{{name, int64_t(v->get<double>())}}, name, dflt, lo, hi);
  if (!v->is_number_integer()) bad_param(name, str("'", name, "' must be an integer"));
  const int64_t x = v->is_number_unsigned() && v->get<uint64_t>() > uint64_t(INT64_MAX) ? INT64_MAX : v->get<int64_t>();
  if (x < lo || x > hi) bad_param(name, str("'", name, "' must be between ", lo, " and ", hi, ", got ", x));
  return x;
}

bool bool_field(const json& body, const char* name, bool dflt) {
  const json* v = field(body, name);
  if (!v) return dflt;
  if (!v->is_boolean()) bad_param(name, str("'", name, "' must be a boolean"));
  return v->get<bool>();
}

std::string random_hex(size_t n) {
  thread_local std::mt19937_64 rng(std::random_device{}());
  static const char* digits = "0123456789abcdef";
  std::string s(n, '0');
  for (auto& c : s) c = digits[rng() & 15];
  return s;
}

int64_t unix_time() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// Everything about a request that the engine and the response need.
struct Prepared {
  bool chat = true;
  GenerationRequest base;  // prompt, sampling, limits (index/out/cancel filled per choice)
  int n = 1;
  bool seed_given = false;
  bool stream = false;
  bool include_usage = false;
  OutputParserOptions parser;
  std::string forced_prefix;  // prompt text the parser must see first (forced tool call)
};

}  // namespace

struct HttpServer::State {
  ServerSettings settings;
  httplib::Server http;
  Metrics metrics;
  std::atomic<bool> ready{false};
  std::unique_ptr<model::Model> model;
  std::optional<text::Tokenizer> tokenizer;
  std::unique_ptr<chat::ChatTemplate> chat_template;
  std::unique_ptr<Engine> engine;
  std::string model_id;
  int64_t created = unix_time();
  std::thread loader;
  std::exception_ptr load_error;
  std::atomic<int> port{0};

  void load();
  void routes();
  void check_model(const json& body);
  void parse_sampling(const json& body, Prepared& p);
  Prepared prepare_chat(const json& body);
  Prepared prepare_completion(const json& body);
  void generate(const httplib::Request& req, httplib::Response& res, Prepared p);
  json token_logprob(int32_t id, double lp) const;
};

namespace {

// One request in flight: the choices' accumulated output, turned into OpenAI
// chunks (streaming) or the final response object.
class Job {
 public:
  struct Choice {
    std::unique_ptr<OutputParser> parser;
    std::string content, reasoning;
    std::vector<ToolCall> calls;
    std::vector<std::string> call_ids;
    json logprobs = json::array();  // chat: content entries
    json legacy = {{"tokens", json::array()}, {"token_logprobs", json::array()}, {"top_logprobs", json::array()},
                   {"text_offset", json::array()}};  // completions
    std::string finish_reason;
    bool done = false;
    bool role_sent = false;
    int64_t prompt_tokens = 0, completion_tokens = 0;
    double engine_s = 0;  // engine time spent on this choice (token share of each step)
  };

  Job(HttpServer::State& state, const Prepared& p)
      : state_(state), chat_(p.chat), logprobs_(p.base.logprobs), id_((p.chat ? "chatcmpl-" : "cmpl-") + random_hex(24)) {
    choices_.resize(size_t(p.n));
    for (auto& c : choices_) {
      if (!chat_) continue;
      c.parser = std::make_unique<OutputParser>(p.parser);
      // Text the prompt already holds (a forced tool call opening) is model output.
      if (!p.forced_prefix.empty()) c.parser->push(p.forced_prefix);
    }
  }

  bool all_done() const {
    for (const auto& c : choices_)
      if (!c.done) return false;
    return true;
  }
  const std::optional<std::string>& error() const { return error_; }

  // Applies one engine event; streaming chunks it produces go to `chunks`.
  void consume(const Event& e, std::vector<json>* chunks) {
    if (e.kind == Event::Kind::kError) {
      error_ = e.error;
      for (auto& c : choices_) c.done = true;
      return;
    }
    Choice& c = choices_[size_t(e.index)];
    json token_lps = json::array();
    if (e.kind == Event::Kind::kText && logprobs_) {
      for (const auto& t : e.tokens) {
        if (chat_) {
          json entry = state_.token_logprob(t.id, t.logprob);
          entry["top_logprobs"] = json::array();
          for (const auto& [id, lp] : t.top) entry["top_logprobs"].push_back(state_.token_logprob(id, lp));
          c.logprobs.push_back(entry);
          token_lps.push_back(entry);
        } else {
          std::string piece(state_.tokenizer->token_bytes(t.id));
          json top = json::object();
          for (const auto& [id, lp] : t.top) top[std::string(state_.tokenizer->token_bytes(id))] = lp;
          c.legacy["tokens"].push_back(piece);
          c.legacy["token_logprobs"].push_back(t.logprob);
          c.legacy["top_logprobs"].push_back(top);
          c.legacy["text_offset"].push_back(c.content.size());
        }
      }
    }
    ParsedDelta d;
    if (chat_) {
      d = e.kind == Event::Kind::kText ? c.parser->push(e.text) : c.parser->finish();
    } else {
      d.content = e.text;
    }
    const size_t first_new_call = c.calls.size();
    c.content += d.content;
    c.reasoning += d.reasoning;
    for (auto& call : d.tool_calls) {
      c.calls.push_back(call);
      c.call_ids.push_back("call_" + random_hex(24));
    }
    if (e.kind == Event::Kind::kDone) {
      c.done = true;
      c.prompt_tokens = e.prompt_tokens;
      c.completion_tokens = e.completion_tokens;
      c.engine_s = e.engine_s;
      c.finish_reason = !c.calls.empty() && e.finish_reason == "stop" ? "tool_calls" : e.finish_reason;
    }
    if (!chunks) return;

    if (!chat_) {
      if (!d.content.empty() || e.kind == Event::Kind::kDone || !token_lps.empty()) {
        json choice = {{"index", e.index}, {"text", d.content}, {"logprobs", nullptr}, {"finish_reason", nullptr}};
        if (logprobs_) choice["logprobs"] = c.legacy;  // cumulative is simplest for legacy clients
        if (c.done) choice["finish_reason"] = c.finish_reason;
        chunks->push_back(chunk({choice}));
      }
      return;
    }
    if (!c.role_sent) {
      c.role_sent = true;
      chunks->push_back(chunk({{{"index", e.index}, {"delta", {{"role", "assistant"}, {"content", ""}}},
                                {"logprobs", nullptr}, {"finish_reason", nullptr}}}));
    }
    json delta = json::object();
    if (!d.reasoning.empty()) delta["reasoning_content"] = d.reasoning;
    if (!d.content.empty()) delta["content"] = d.content;
    if (first_new_call < c.calls.size()) {
      delta["tool_calls"] = json::array();
      for (size_t i = first_new_call; i < c.calls.size(); i++)
        delta["tool_calls"].push_back({{"index", i}, {"id", c.call_ids[i]}, {"type", "function"},
                                       {"function", {{"name", c.calls[i].name}, {"arguments", c.calls[i].arguments}}}});
    }
    if (!delta.empty() || !token_lps.empty()) {
      json choice = {{"index", e.index}, {"delta", delta}, {"logprobs", nullptr}, {"finish_reason", nullptr}};
      if (!token_lps.empty()) choice["logprobs"] = {{"content", token_lps}, {"refusal", nullptr}};
      chunks->push_back(chunk({choice}));
    }
    if (c.done)
      chunks->push_back(chunk({{{"index", e.index}, {"delta", json::object()}, {"logprobs", nullptr},
                                {"finish_reason", c.finish_reason}}}));
  }

  json usage() const {
    int64_t prompt = 0, completion = 0;
    double engine_s = 0;
    for (const auto& c : choices_) {
      prompt = std::max(prompt, c.prompt_tokens);  // the prompt is counted once, as OpenAI does
      completion += c.completion_tokens;
      engine_s += c.engine_s;
    }
    // engine_time_s: what this request cost the engine (its token share of every step), so a
    // gateway can price measured work rather than wall time.
    return {{"prompt_tokens", prompt}, {"completion_tokens", completion}, {"total_tokens", prompt + completion},
            {"prompt_tokens_details", {{"cached_tokens", 0}}}, {"engine_time_s", engine_s}};
  }

  json usage_chunk() const {
    json j = chunk(json::array());
    j["usage"] = usage();
    return j;
  }

  json response() const {
    json choices = json::array();
    for (size_t i = 0; i < choices_.size(); i++) {
      const Choice& c = choices_[i];
      if (!chat_) {
        choices.push_back({{"index", i}, {"text", c.content}, {"logprobs", logprobs_ ? c.legacy : json(nullptr)},
                           {"finish_reason", c.finish_reason}});
        continue;
      }
      json message = {{"role", "assistant"}};
      message["content"] = c.content.empty() && !c.calls.empty() ? json(nullptr) : json(c.content);
      if (!c.reasoning.empty()) message["reasoning_content"] = c.reasoning;
      if (!c.calls.empty()) {
        message["tool_calls"] = json::array();
        for (size_t k = 0; k < c.calls.size(); k++)
          message["tool_calls"].push_back({{"id", c.call_ids[k]}, {"type", "function"},
                                           {"function", {{"name", c.calls[k].name}, {"arguments", c.calls[k].arguments}}}});
      }
      json choice = {{"index", i}, {"message", message}, {"logprobs", nullptr}, {"finish_reason", c.finish_reason}};
      if (logprobs_) choice["logprobs"] = {{"content", c.logprobs}, {"refusal", nullptr}};
      choices.push_back(choice);
    }
    return {{"id", id_},
            {"object", chat_ ? "chat.completion" : "text_completion"},
            {"created", unix_time()},
            {"model", state_.model_id},
            {"system_fingerprint", "pocket"},
            {"choices", choices},
            {"usage", usage()}};
  }

 private:
  json chunk(json choices) const {
    return {{"id", id_},
            {"object", chat_ ? "chat.completion.chunk" : "text_completion"},
            {"created", unix_time()},
            {"model", state_.model_id},
            {"system_fingerprint", "pocket"},
            {"choices", std::move(choices)}};
  }

  HttpServer::State& state_;
  bool chat_;
  bool logprobs_;
  std::string id_;
  std::vector<Choice> choices_;
  std::optional<std::string> error_;
};

}  // namespace

json HttpServer::State::token_logprob(int32_t id, double lp) const {
  const std::string piece(tokenizer->token_bytes(id));
  json bytes = json::array();
  for (unsigned char ch : piece) bytes.push_back(int(ch));
  return {{"token", piece}, {"logprob", lp}, {"bytes", bytes}};
}

void HttpServer::State::load() {
  try {
    if (settings.threads > 0) set_thread_count(settings.threads);
    kernels::use_best_ops();
    FileBacking backing = FileBacking::kMap;
    if (!file_backing_from_name(settings.weights, backing))
      fail("weights must be map, copy or hugepages, got '", settings.weights, "'");
    model = model::Model::load(settings.model, backing);
    tokenizer.emplace(text::Tokenizer::from_gguf(model->file()));
    if (const gguf::Value* tmpl = model->file().find("tokenizer.chat_template"); tmpl && tmpl->is_string()) {
      chat::SpecialTokens special;
      if (tokenizer->bos_id() >= 0) special.bos = tokenizer->token_text(tokenizer->bos_id());
      if (tokenizer->eos_id() >= 0) special.eos = tokenizer->token_text(tokenizer->eos_id());
      if (tokenizer->pad_id() >= 0) special.pad = tokenizer->token_text(tokenizer->pad_id());
      chat_template = std::make_unique<chat::ChatTemplate>(tmpl->as_string(), special);
    }
    EngineOptions eo;
    eo.parallel = settings.parallel;
    eo.n_ctx = std::min<int64_t>(settings.ctx, model->config().n_ctx_train > 0 ? model->config().n_ctx_train : settings.ctx);
    eo.step_tokens = settings.step_tokens;
    eo.max_queue = size_t(settings.max_queue);
    if (!kernels::kv_type_from_name(settings.kv_type, eo.kv.kv_type))
      fail("kv_type must be f16, f32 or q8_0, got '", settings.kv_type, "'");
    engine = std::make_unique<Engine>(*model, *tokenizer, eo, metrics);
    metrics.set_loading(false);
    ready = true;
    std::fprintf(stderr, "pocket serve: model %s ready (%s), %d parallel sequences, context %lld\n",
                 model_id.c_str(), model->config().summary().c_str(), settings.parallel, (long long)eo.n_ctx);
  } catch (...) {
    load_error = std::current_exception();
    http.stop();
  }
}

void HttpServer::State::check_model(const json& body) {
  const json* m = field(body, "model");
  if (!m) bad_param("model", "you must provide a model parameter");
  if (!m->is_string()) bad_param("model", "'model' must be a string");
  const std::string name = m->get<std::string>();
  if (name != model_id && name != model_id + ".gguf")
    throw ApiError{404, str("The model '", name, "' does not exist (this server serves '", model_id, "')"),
                   "invalid_request_error", "model", "model_not_found"};
}

void HttpServer::State::parse_sampling(const json& body, Prepared& p) {
  runtime::SamplingParams& sp = p.base.sampling;
  sp.temperature = float(number_field(body, "temperature", 1.0, 0.0, 2.0));
  sp.top_p = float(number_field(body, "top_p", 1.0, 0.0, 1.0));
  sp.top_k = int32_t(int_field(body, "top_k", 0, 0, 1 << 20));
  sp.min_p = float(number_field(body, "min_p", 0.0, 0.0, 1.0));
  sp.presence_penalty = float(number_field(body, "presence_penalty", 0.0, -2.0, 2.0));
  sp.frequency_penalty = float(number_field(body, "frequency_penalty", 0.0, -2.0, 2.0));
  sp.repeat_penalty = float(number_field(body, "repetition_penalty", 1.0, 0.01, 10.0));
  sp.penalty_last_n = -1;  // OpenAI penalties look at the whole text so far
  if (const json* seed = field(body, "seed")) {
    if (!seed->is_number_integer()) bad_param("seed", "'seed' must be an integer");
    sp.seed = seed->is_number_unsigned() ? seed->get<uint64_t>() : uint64_t(seed->get<int64_t>());
    p.seed_given = true;
  } else {
    sp.seed = std::random_device{}() * 0x9E3779B97F4A7C15ull ^ uint64_t(Clock::now().time_since_epoch().count());
  }
  if (const json* bias = field(body, "logit_bias")) {
    if (!bias->is_object()) bad_param("logit_bias", "'logit_bias' must be an object of token id -> bias");
    for (const auto& [key, value] : bias->items()) {
      char* end = nullptr;
      const long id = std::strtol(key.c_str(), &end, 10);
      if (key.empty() || *end || id < 0 || id >= long(model->config().n_vocab))
        bad_param("logit_bias", str("logit_bias: '", key, "' is not a token id of this model"));
      if (!value.is_number() || value.get<double>() < -100 || value.get<double>() > 100)
        bad_param("logit_bias", str("logit_bias[", key, "] must be a number in [-100, 100]"));
      sp.logit_bias.push_back({int32_t(id), value.get<float>()});
    }
  }
  const int64_t max_tokens = int_field(body, "max_tokens", -1, 1, int64_t(1) << 30);
  const int64_t max_completion = int_field(body, "max_completion_tokens", -1, 1, int64_t(1) << 30);
  p.base.max_tokens = max_completion > 0 ? max_completion : max_tokens > 0 ? max_tokens : settings.default_max_tokens;
  p.n = int(int_field(body, "n", 1, 1, 16));
  if (const json* stop = field(body, "stop")) {
    if (stop->is_string()) p.base.stop.push_back(stop->get<std::string>());
    else if (stop->is_array() && stop->size() <= 16) {
      for (const auto& s : *stop) {
        if (!s.is_string()) bad_param("stop", "'stop' must be a string or an array of strings");
        p.base.stop.push_back(s.get<std::string>());
      }
    } else {
      bad_param("stop", "'stop' must be a string or an array of up to 16 strings");
    }
  }
  p.stream = bool_field(body, "stream", false);
  if (const json* so = field(body, "stream_options")) {
    if (!so->is_object()) bad_param("stream_options", "'stream_options' must be an object");
    p.include_usage = bool_field(*so, "include_usage", false);
  }
  if (const json* user = field(body, "user"); user && !user->is_string()) bad_param("user", "'user' must be a string");
  p.base.ignore_eos = bool_field(body, "ignore_eos", false);
}

Prepared HttpServer::State::prepare_chat(const json& body) {
  Prepared p;
  p.chat = true;
  check_model(body);
  const json* messages = field(body, "messages");
  if (!messages) bad_param("messages", "you must provide a messages parameter");
  if (!messages->is_array() || messages->empty()) bad_param("messages", "'messages' must be a non-empty array");
  for (size_t i = 0; i < messages->size(); i++) {
    const json& m = (*messages)[i];
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string())
      bad_param(str("messages[", i, "].role"), str("messages[", i, "] must be an object with a string 'role'"));
  }
  parse_sampling(body, p);
  p.base.logprobs = bool_field(body, "logprobs", false);
  p.base.top_logprobs = int32_t(int_field(body, "top_logprobs", 0, 0, 20));
  if (p.base.top_logprobs > 0 && !p.base.logprobs) bad_param("top_logprobs", "'top_logprobs' needs 'logprobs': true");

  json tools = nullptr;
  if (const json* t = field(body, "tools")) {
    if (!t->is_array()) bad_param("tools", "'tools' must be an array");
    for (size_t i = 0; i < t->size(); i++) {
      const json& tool = (*t)[i];
      if (!tool.is_object() || !tool.contains("function") || !tool["function"].is_object() ||
          !tool["function"].contains("name") || !tool["function"]["name"].is_string())
        bad_param(str("tools[", i, "]"), str("tools[", i, "] must be {\"type\": \"function\", \"function\": {\"name\": ...}}"));
    }
    if (!t->empty()) tools = *t;
  }
  // tool_choice: "auto" (default), "none", "required", or a named function.
  std::string forced;
  bool parse_calls = true;
  if (const json* tc = field(body, "tool_choice")) {
    if (tc->is_string()) {
      const std::string v = tc->get<std::string>();
      if (v == "none") parse_calls = false, tools = nullptr;
      else if (v == "required") forced = "<tool_call>\n";
      else if (v != "auto") bad_param("tool_choice", "'tool_choice' must be \"auto\", \"none\", \"required\" or a function");
    } else if (tc->is_object() && tc->contains("function") && (*tc)["function"].is_object() &&
               (*tc)["function"].contains("name") && (*tc)["function"]["name"].is_string()) {
      forced = "<tool_call>\n<function=" + (*tc)["function"]["name"].get<std::string>() + ">\n";
    } else {
      bad_param("tool_choice", "'tool_choice' must be \"auto\", \"none\", \"required\" or {\"type\": \"function\", \"function\": {\"name\": ...}}");
    }
    if (!forced.empty() && tools.is_null()) bad_param("tool_choice", "'tool_choice' requires 'tools'");
  }

  chat::ChatKwargs kwargs;
  kwargs.add_generation_prompt = true;
  kwargs.enable_thinking = settings.think;
  if (const json* kw = field(body, "chat_template_kwargs")) {
    if (!kw->is_object()) bad_param("chat_template_kwargs", "'chat_template_kwargs' must be an object");
    for (const auto& [k, v] : kw->items()) {
      if (k == "messages" || k == "tools" || k == "add_generation_prompt")
        bad_param("chat_template_kwargs", str("chat_template_kwargs may not set '", k, "'"));
      if (k == "enable_thinking") {
        if (!v.is_boolean()) bad_param("chat_template_kwargs.enable_thinking", "'enable_thinking' must be a boolean");
        kwargs.enable_thinking = v.get<bool>();
      } else {
        kwargs.extra[k] = v;
      }
    }
  }
  if (const json* effort = field(body, "reasoning_effort")) {
    if (!effort->is_string()) bad_param("reasoning_effort", "'reasoning_effort' must be a string");
    if (effort->get<std::string>() == "none") kwargs.enable_thinking = false;
  }
  p.base.max_reasoning_tokens = int_field(body, "max_reasoning_tokens", -1, 0, int64_t(1) << 30);
  // A forced tool call starts right after the generation prompt: no thinking first.
  if (!forced.empty()) kwargs.enable_thinking = false;

  if (!chat_template) throw ApiError{400, "this model has no chat template; use /v1/completions", "invalid_request_error", "messages", ""};
  std::string prompt_text;
  try {
    prompt_text = chat_template->render(chat::ChatTemplate::prepare_messages(*messages), tools, kwargs);
  } catch (const jinja::TemplateError& e) {
    bad_param("messages", str("the chat template rejected the messages: ", e.raised() ? e.message() : std::string(e.what())));
  } catch (const Error& e) {
    bad_param("messages", e.what());
  }
  p.base.starts_in_reasoning = prompt_text.size() >= 8 && prompt_text.ends_with("<think>\n");
  prompt_text += forced;
  p.forced_prefix = forced;
  p.parser.start_in_reasoning = p.base.starts_in_reasoning;
  p.parser.parse_tool_calls = parse_calls;
  p.parser.tools = tools;
  text::EncodeOptions enc;
  enc.parse_special = true;  // the template's own markers
  enc.lenient_utf8 = true;
  p.base.prompt = tokenizer->encode(prompt_text, enc);
  return p;
}

Prepared HttpServer::State::prepare_completion(const json& body) {
  Prepared p;
  p.chat = false;
  check_model(body);
  const json* prompt = field(body, "prompt");
  if (!prompt) bad_param("prompt", "you must provide a prompt parameter");
  parse_sampling(body, p);
  // Legacy logprobs: an integer, the number of alternatives (0-5).
  if (const json* lp = field(body, "logprobs")) {
    if (!lp->is_number_integer() || lp->get<int64_t>() < 0 || lp->get<int64_t>() > 20)
      bad_param("logprobs", "'logprobs' must be an integer between 0 and 20");
    p.base.logprobs = true;
    p.base.top_logprobs = int32_t(lp->get<int64_t>());
  }
  const json* one = prompt;
  if (prompt->is_array() && prompt->size() == 1 && ((*prompt)[0].is_string() || (*prompt)[0].is_array())) one = &(*prompt)[0];
  if (one->is_string()) {
    text::EncodeOptions enc;
    enc.parse_special = true;
    enc.lenient_utf8 = true;
    p.base.prompt = tokenizer->encode(one->get<std::string>(), enc);
  } else if (one->is_array()) {
    for (const auto& id : *one) {
      if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= model->config().n_vocab)
        bad_param("prompt", str("'prompt' token ids must be integers in [0, ", model->config().n_vocab, ")"));
      p.base.prompt.push_back(int32_t(id.get<int64_t>()));
    }
  } else {
    bad_param("prompt", "'prompt' must be a string, an array of token ids, or an array with one of those");
  }
  return p;
}

void HttpServer::State::generate(const httplib::Request& req, httplib::Response& res, Prepared p) {
  const int64_t n_ctx = engine->options().n_ctx;
  const int64_t n_prompt = int64_t(p.base.prompt.size());
  if (n_prompt == 0) bad_param(p.chat ? "messages" : "prompt", "the prompt is empty");
  if (n_prompt >= n_ctx)
    throw ApiError{400,
                   str("This model's maximum context length is ", n_ctx, " tokens. However, your ",
                       p.chat ? "messages" : "prompt", " resulted in ", n_prompt, " tokens."),
                   "invalid_request_error", p.chat ? "messages" : "prompt", "context_length_exceeded"};

  auto channel = std::make_shared<Channel>();
  auto cancelled = std::make_shared<std::atomic<bool>>(false);
  std::vector<GenerationRequest> choices;
  for (int i = 0; i < p.n; i++) {
    GenerationRequest r = p.base;
    r.index = i;
    r.out = channel;
    r.cancelled = cancelled;
    r.arrival = Clock::now();
    if (i > 0) r.sampling.seed = p.base.sampling.seed + uint64_t(i);  // distinct but reproducible choices
    choices.push_back(std::move(r));
  }
  auto job = std::make_shared<Job>(*this, p);
  if (!engine->submit(std::move(choices))) {
    throw ApiError{503, "the server is overloaded: too many requests are waiting; retry later", "server_error", "",
                   "server_overloaded"};
  }

  // The connection's socket, polled while waiting: a client that goes away
  // cancels its generation at once (streaming or not).
  const int sock = find_tcp_socket(req.local_addr, req.local_port, req.remote_addr, req.remote_port);
  if (!p.stream) {
    std::vector<Event> events;
    while (!job->all_done()) {
      events.clear();
      channel->wait(events, std::chrono::milliseconds(50));
      for (const auto& e : events) job->consume(e, nullptr);
      if (!job->all_done() && sock >= 0 && peer_closed(sock)) {
        *cancelled = true;  // the engine frees the slot at its next step
        throw ApiError{499, "the client closed the connection", "invalid_request_error", "", "client_closed_request"};
      }
    }
    if (job->error()) throw ApiError{500, *job->error(), "server_error", "", ""};
    res.set_content(dump(job->response()), "application/json");
    return;
  }

  const bool include_usage = p.include_usage;
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      "text/event-stream",
      [job, channel, cancelled, include_usage, sock](size_t, httplib::DataSink& sink) {
        std::vector<Event> events;
        std::vector<json> chunks;
        auto last_write = Clock::now();
        auto send = [&](const std::string& payload) {
          last_write = Clock::now();
          return sink.write(payload.data(), payload.size());
        };
        while (!job->all_done()) {
          events.clear();
          chunks.clear();
          const bool got = channel->wait(events, std::chrono::milliseconds(50));
          if (sock >= 0 && peer_closed(sock)) {
            *cancelled = true;
            return false;
          }
          if (!got) {
            // No output for a while (queued or a long prefill) and no socket to
            // poll: an SSE comment finds out whether the client is still there.
            if (Clock::now() - last_write > std::chrono::milliseconds(500) && !send(": ping\n\n")) {
              *cancelled = true;
              return false;
            }
            continue;
          }
          for (const auto& e : events) job->consume(e, &chunks);
          for (const auto& c : chunks)
            if (!send("data: " + dump(c) + "\n\n")) {
              *cancelled = true;  // the client went away: the engine frees the slot next step
              return false;
            }
        }
        if (job->error()) {
          send("data: " + dump(error_json(ApiError{500, *job->error(), "server_error", "", ""})) + "\n\n");
        } else if (include_usage) {
          send("data: " + dump(job->usage_chunk()) + "\n\n");
        }
        send("data: [DONE]\n\n");
        sink.done();
        return true;
      },
      [cancelled](bool) { *cancelled = true; });
}

void HttpServer::State::routes() {
  http.set_payload_max_length(size_t(settings.max_body_bytes));
  // The engine's queue must fill (and answer 503) before the HTTP pool runs out, or requests
  // would wait, unbounded and unseen, in cpp-httplib's own task queue. A thread for every running
  // and waiting request, as many again for idle keep-alive connections (each holds a thread
  // until it times out), and a few for /health and /metrics.
  const int n_threads = settings.http_threads > 0 ? settings.http_threads
                                                  : 2 * (settings.parallel + settings.max_queue) + 8;
  http.new_task_queue = [n_threads] { return new httplib::ThreadPool(size_t(n_threads)); };
  // Small responses would otherwise wait for the client's delayed ACK (about 40 ms each).
  http.set_tcp_nodelay(true);
  // cpp-httplib closes a keep-alive connection after 5 requests by default; a gateway's
  // pooled connections would be re-opened every 5 requests. Bounded still: a connection
  // holds a worker thread for its lifetime, and closing it now and then lets waiting ones in.
  http.set_keep_alive_max_count(1000);

  // Authentication for the API routes (health and metrics stay open).
  http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (settings.api_key.empty() || req.path == "/health" || req.path == "/metrics") return httplib::Server::HandlerResponse::Unhandled;
    const std::string auth = req.get_header_value("Authorization");
    if (auth.empty()) {
      send_error(res, {401, "You didn't provide an API key. Send it as 'Authorization: Bearer KEY'.", "invalid_request_error", "", "missing_api_key"});
      return httplib::Server::HandlerResponse::Handled;
    }
    if (auth != "Bearer " + settings.api_key) {
      send_error(res, {401, "Incorrect API key provided.", "invalid_request_error", "", "invalid_api_key"});
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  // Errors httplib produces itself (unknown route, body too large) in the OpenAI shape.
  http.set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    ApiError e{res.status, str("HTTP ", res.status), "invalid_request_error", "", ""};
    if (res.status == 404) e.message = str("Unknown request URL: ", req.method, " ", req.path), e.code = "unknown_url";
    if (res.status == 413) e.message = "the request body is too large", e.code = "request_too_large";
    send_error(res, e);
    return httplib::Server::HandlerResponse::Handled;
  }));
  http.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    static const char* known[] = {"/v1/chat/completions", "/v1/completions", "/v1/models", "/health", "/metrics", "/tokenize", "/detokenize"};
    std::string endpoint = "other";
    for (const char* k : known)
      if (req.path == k) endpoint = k;
    metrics.count_request(endpoint, res.status);
  });

  // Runs a JSON endpoint: parses the body, maps every failure to an OpenAI error.
  auto api = [this](auto handler) {
    return [this, handler](const httplib::Request& req, httplib::Response& res) {
      try {
        if (!ready) throw ApiError{503, "the model is loading; retry shortly", "server_error", "", "model_loading"};
        json body;
        try {
          body = json::parse(req.body);
        } catch (const json::exception& e) {
          throw ApiError{400, str("We could not parse the JSON body of your request: ", e.what()), "invalid_request_error", "", "invalid_json"};
        }
        if (!body.is_object()) throw ApiError{400, "the request body must be a JSON object", "invalid_request_error", "", "invalid_json"};
        handler(body, req, res);
      } catch (const ApiError& e) {
        if (e.status == 503) res.set_header("Retry-After", "1");
        send_error(res, e);
      } catch (const json::exception& e) {
        send_error(res, ApiError{400, str("invalid request: ", e.what())});
      } catch (const Error& e) {
        send_error(res, ApiError{400, e.what()});
      } catch (const std::exception& e) {
        send_error(res, ApiError{500, e.what(), "server_error"});
      }
    };
  };

  http.Post("/v1/chat/completions", api([this](const json& body, const httplib::Request& req, httplib::Response& res) {
              generate(req, res, prepare_chat(body));
            }));
  http.Post("/v1/completions", api([this](const json& body, const httplib::Request& req, httplib::Response& res) {
              generate(req, res, prepare_completion(body));
            }));
  http.Post("/tokenize", api([this](const json& body, const httplib::Request&, httplib::Response& res) {
              const json* content = field(body, "content");
              if (!content || !content->is_string()) bad_param("content", "'content' must be a string");
              text::EncodeOptions enc;
              enc.parse_special = bool_field(body, "add_special", false) || bool_field(body, "parse_special", false);
              enc.lenient_utf8 = true;
              json tokens = tokenizer->encode(content->get<std::string>(), enc);
              res.set_content(dump({{"tokens", tokens}}), "application/json");
            }));
  http.Post("/detokenize", api([this](const json& body, const httplib::Request&, httplib::Response& res) {
              const json* tokens = field(body, "tokens");
              if (!tokens || !tokens->is_array()) bad_param("tokens", "'tokens' must be an array of token ids");
              std::vector<int32_t> ids;
              for (const auto& t : *tokens) {
                if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() >= int64_t(tokenizer->n_vocab()))
                  bad_param("tokens", str("'tokens' must hold token ids in [0, ", tokenizer->n_vocab(), ")"));
                ids.push_back(int32_t(t.get<int64_t>()));
              }
              text::StreamingDecoder dec(*tokenizer);
              std::string out;
              for (int32_t id : ids) out += dec.push(id);
              out += dec.finish();
              res.set_content(dump({{"content", out}}), "application/json");
            }));
  auto models = [this](const httplib::Request&, httplib::Response& res) {
    json model = {{"id", model_id}, {"object", "model"}, {"created", created}, {"owned_by", "pocket"}};
    res.set_content(dump({{"object", "list"}, {"data", {model}}}), "application/json");
  };
  http.Get("/v1/models", models);
  http.Get(R"(/v1/models/(.+))", [this](const httplib::Request& req, httplib::Response& res) {
    if (req.matches[1] != model_id) {
      send_error(res, {404, str("The model '", std::string(req.matches[1]), "' does not exist"), "invalid_request_error", "model", "model_not_found"});
      return;
    }
    res.set_content(dump({{"id", model_id}, {"object", "model"}, {"created", created}, {"owned_by", "pocket"}}), "application/json");
  });
  http.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    if (!ready) {
      res.status = 503;
      res.set_content(R"({"status":"loading"})", "application/json");
      return;
    }
    res.set_content(R"({"status":"ok"})", "application/json");
  });
  http.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics.render(), "text/plain; version=0.0.4");
  });
}

HttpServer::HttpServer(ServerSettings settings) : state_(std::make_unique<State>()) {
  validate_settings(settings);
  state_->settings = std::move(settings);
  const auto& s = state_->settings;
  state_->model_id = s.model_alias.empty() ? std::filesystem::path(s.model).stem().string() : s.model_alias;
}

HttpServer::~HttpServer() {
  stop();
  if (state_->loader.joinable()) state_->loader.join();
}

void HttpServer::run() {
  State& st = *state_;
  st.routes();
  const auto& s = st.settings;
  int port = s.port;
  if (port == 0) port = st.http.bind_to_any_port(s.host);
  else if (!st.http.bind_to_port(s.host, port)) port = -1;
  if (port <= 0) fail("cannot listen on ", s.host, ":", s.port);
  st.port = port;
  std::fprintf(stderr, "pocket serve: listening on http://%s:%d (loading %s)\n", s.host.c_str(), port, s.model.c_str());
  st.loader = std::thread([&st] { st.load(); });
  st.http.listen_after_bind();
  if (st.loader.joinable()) st.loader.join();
  if (st.load_error) std::rethrow_exception(st.load_error);
}

int HttpServer::port() const { return state_->port; }

void HttpServer::stop() { state_->http.stop(); }

}  // namespace pocket::server
