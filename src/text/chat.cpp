#include "text/chat.h"

#include "util/error.h"

namespace pocket::chat {

using json = nlohmann::ordered_json;

ChatTemplate::ChatTemplate(std::string_view source, SpecialTokens tokens,
                           const jinja::Options& options)
    : source_(source), tokens_(std::move(tokens)), template_(source, options) {}

namespace {

// Parses an OpenAI-style JSON-string `arguments` into an object in place.
void parse_arguments(json& holder, const std::string& where) {
  auto it = holder.find("arguments");
  if (it == holder.end() || !it->is_string()) return;
  const std::string& text = it->get_ref<const std::string&>();
  if (text.find_first_not_of(" \t\r\n") == std::string::npos) {
    *it = json::object();
    return;
  }
  json parsed = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) fail(where, ".arguments: not valid JSON: ", text.substr(0, 200));
  if (!parsed.is_object()) fail(where, ".arguments: expected a JSON object, got ", parsed.type_name());
  *it = std::move(parsed);
}

}  // namespace

json ChatTemplate::prepare_messages(const json& messages) {
  if (!messages.is_array()) fail("messages: expected a JSON array, got ", messages.type_name());
  json out = messages;
  for (size_t i = 0; i < out.size(); i++) {
    json& m = out[i];
    const std::string where = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) fail(where, ": expected an object, got ", m.type_name());
    auto role = m.find("role");
    if (role == m.end() || !role->is_string()) fail(where, ": missing string \"role\"");
    auto calls = m.find("tool_calls");
    if (calls == m.end() || calls->is_null()) continue;
    if (!calls->is_array()) fail(where, ".tool_calls: expected a list, got ", calls->type_name());
    for (size_t j = 0; j < calls->size(); j++) {
      json& call = (*calls)[j];
      const std::string call_where = where + ".tool_calls[" + std::to_string(j) + "]";
      if (!call.is_object()) fail(call_where, ": expected an object, got ", call.type_name());
      parse_arguments(call, call_where);
      auto fn = call.find("function");
      if (fn != call.end() && fn->is_object()) parse_arguments(*fn, call_where + ".function");
    }
  }
  return out;
}

std::string ChatTemplate::render(const json& messages, const json& tools, const ChatKwargs& kwargs,
                                 const jinja::RenderOptions& options) const {
  if (!messages.is_array()) fail("messages: expected a JSON array, got ", messages.type_name());
  if (!tools.is_null() && !tools.is_array()) fail("tools: expected a JSON array or null, got ", tools.type_name());
  if (!kwargs.extra.is_object() && !kwargs.extra.is_null()) {
    fail("chat template kwargs: expected a JSON object, got ", kwargs.extra.type_name());
  }
  json context = json::object();
  if (tokens_.bos) context["bos_token"] = *tokens_.bos;
  if (tokens_.eos) context["eos_token"] = *tokens_.eos;
  if (tokens_.pad) context["pad_token"] = *tokens_.pad;
  if (tokens_.unk) context["unk_token"] = *tokens_.unk;
  if (kwargs.extra.is_object()) {
    for (const auto& [key, value] : kwargs.extra.items()) {
      if (key == "messages" || key == "tools" || key == "add_generation_prompt") {
        fail("chat template kwargs may not set '", key, "'");
      }
      context[key] = value;
    }
  }
  context["messages"] = messages;
  context["tools"] = tools;
  context["add_generation_prompt"] = kwargs.add_generation_prompt;
  if (kwargs.enable_thinking) context["enable_thinking"] = *kwargs.enable_thinking;
  return template_.render(context, options);
}

}  // namespace pocket::chat
