// `pocket template -m FILE --messages conv.json [--tools tools.json]
//                  [--template FILE.jinja] [--kwargs JSON] [--add-generation-prompt]`
// Renders a conversation with the model's chat template and prints the prompt
// exactly (no newline added).
//
// -m is a GGUF model (template from `tokenizer.chat_template`, special tokens
// from the vocabulary) or a tokenizer JSON: a tokenizer_config.json-style file
// with "chat_template" and bos/eos/pad/unk tokens, or a tokenizer.json, for
// which a tokenizer_config.json beside it is consulted. --template always
// overrides the template. conv.json is a list of messages or an object
// {"messages": [...], "tools": [...], "chat_template_kwargs": {...}}.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "cli/args.h"
#include "cli/commands.h"
#include "gguf/gguf.h"
#include "text/chat.h"
#include "util/error.h"

namespace pocket::cli {

namespace {

using json = nlohmann::ordered_json;

constexpr const char* kUsage =
    "usage: pocket template [-m MODEL.gguf|tokenizer.json] --messages conv.json\n"
    "                       [--template FILE.jinja] [--tools tools.json]\n"
    "                       [--kwargs '{\"enable_thinking\": false}'] [--add-generation-prompt]\n"
    "\n"
    "Renders the conversation with the chat template and prints the prompt exactly.\n"
    "  -m, --model FILE         GGUF model (tokenizer.chat_template) or tokenizer JSON\n"
    "  --template FILE          Jinja template file (overrides the model's)\n"
    "  --messages FILE          JSON list of messages, or {\"messages\": [...], \"tools\": [...]}\n"
    "  --tools FILE             JSON list of tool definitions\n"
    "  --kwargs JSON            extra template variables (chat_template_kwargs)\n"
    "  --add-generation-prompt  end with the assistant turn opener\n";

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, ": cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

json parse_json(const std::string& text, const std::string& what) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) fail(what, ": not valid JSON");
  return j;
}

bool is_gguf(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  return in.read(magic, 4) && std::string(magic, 4) == "GGUF";
}

struct ModelTemplate {
  std::string source;  // empty when the model has none
  chat::SpecialTokens tokens;
};

ModelTemplate from_gguf(const std::string& path) {
  ModelTemplate m;
  gguf::File f = gguf::File::open(path);
  m.source = f.get_string_or("tokenizer.chat_template", "");
  const gguf::Value* tokens = f.find("tokenizer.ggml.tokens");
  if (!tokens || !tokens->is_array() || tokens->elem_type() != gguf::ValueType::STRING) return m;
  const std::vector<std::string>& vocab = tokens->string_items();
  auto token = [&](const char* key) -> std::optional<std::string> {
    if (!f.has(key)) return std::nullopt;
    uint64_t id = f.get_u64(key);
    if (id >= vocab.size()) fail(path, ": ", key, " = ", id, " is outside the vocabulary");
    return vocab[id];
  };
  // transformers only defines bos_token when the tokenizer has one; GGUF
  // conversions of models without one (Qwen) still record an id, so only use
  // it when the file says a BOS is added.
  if (f.get_bool_or("tokenizer.ggml.add_bos_token", false)) m.tokens.bos = token("tokenizer.ggml.bos_token_id");
  m.tokens.eos = token("tokenizer.ggml.eos_token_id");
  m.tokens.pad = token("tokenizer.ggml.padding_token_id");
  m.tokens.unk = token("tokenizer.ggml.unknown_token_id");
  return m;
}

// A special token in tokenizer_config.json: a string or {"content": "..."}.
std::optional<std::string> config_token(const json& config, const char* key) {
  auto it = config.find(key);
  if (it == config.end()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) {
    return (*it)["content"].get<std::string>();
  }
  return std::nullopt;
}

// "chat_template" is a string, or a list of {"name", "template"} (use "default").
std::string config_template(const json& config, const std::string& path) {
  auto it = config.find("chat_template");
  if (it == config.end() || it->is_null()) return "";
  if (it->is_string()) return it->get<std::string>();
  if (it->is_array()) {
    for (const json& entry : *it) {
      if (entry.is_object() && entry.value("name", "") == "default" && entry.contains("template")) {
        return entry["template"].get<std::string>();
      }
    }
  }
  fail(path, ": chat_template must be a string or a list with a \"default\" entry");
}

ModelTemplate from_tokenizer_json(const std::string& path) {
  ModelTemplate m;
  json config = parse_json(read_file(path), path);
  if (!config.is_object()) fail(path, ": expected a JSON object");
  std::string config_path = path;
  if (!config.contains("chat_template")) {
    // A tokenizer.json: its template and special tokens live in the
    // tokenizer_config.json next to it, when there is one.
    std::filesystem::path sibling = std::filesystem::path(path).parent_path() / "tokenizer_config.json";
    if (std::filesystem::exists(sibling) && sibling != std::filesystem::path(path)) {
      config = parse_json(read_file(sibling.string()), sibling.string());
      config_path = sibling.string();
    }
  }
  if (!config.is_object()) return m;
  m.source = config_template(config, config_path);
  m.tokens.bos = config_token(config, "bos_token");
  m.tokens.eos = config_token(config, "eos_token");
  m.tokens.pad = config_token(config, "pad_token");
  m.tokens.unk = config_token(config, "unk_token");
  return m;
}

}  // namespace

int cmd_template(int argc, char** argv) {
  Args args(argc, argv);
  if (args.flag("--help", "-h")) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  std::optional<std::string> model = args.value("-m", "--model");
  std::optional<std::string> template_path = args.value("--template");
  std::optional<std::string> messages_path = args.value("--messages");
  std::optional<std::string> tools_path = args.value("--tools");
  std::optional<std::string> kwargs_text = args.value("--kwargs");
  chat::ChatKwargs kwargs;
  kwargs.add_generation_prompt = args.flag("--add-generation-prompt");
  args.finish();
  if (!messages_path) fail("--messages FILE is required\n", kUsage);
  if (!model && !template_path) fail("need -m MODEL or --template FILE\n", kUsage);

  ModelTemplate m;
  if (model) m = is_gguf(*model) ? from_gguf(*model) : from_tokenizer_json(*model);
  if (template_path) m.source = read_file(*template_path);
  if (m.source.empty()) {
    fail(*model, ": no chat template (tokenizer.chat_template / chat_template); pass --template FILE");
  }

  json conv = parse_json(read_file(*messages_path), *messages_path);
  json messages, tools = nullptr;
  if (conv.is_array()) {
    messages = conv;
  } else if (conv.is_object() && conv.contains("messages")) {
    messages = conv["messages"];
    if (conv.contains("tools")) tools = conv["tools"];
    if (conv.contains("chat_template_kwargs")) {
      if (!conv["chat_template_kwargs"].is_object()) fail(*messages_path, ": chat_template_kwargs must be an object");
      kwargs.extra = conv["chat_template_kwargs"];
    }
  } else {
    fail(*messages_path, ": expected a list of messages or an object with \"messages\"");
  }
  if (tools_path) {
    json t = parse_json(read_file(*tools_path), *tools_path);
    tools = t.is_object() && t.contains("tools") ? t["tools"] : t;
  }
  if (kwargs_text) {
    json extra = parse_json(*kwargs_text, "--kwargs");
    if (!extra.is_object()) fail("--kwargs: expected a JSON object");
    for (const auto& [key, value] : extra.items()) kwargs.extra[key] = value;
  }
  // Convenience: these two may also come through the kwargs object.
  if (auto it = kwargs.extra.find("add_generation_prompt"); it != kwargs.extra.end()) {
    if (!it->is_boolean()) fail("add_generation_prompt must be true or false");
    kwargs.add_generation_prompt = it->get<bool>();
    kwargs.extra.erase(it);
  }
  if (auto it = kwargs.extra.find("enable_thinking"); it != kwargs.extra.end() && it->is_boolean()) {
    kwargs.enable_thinking = it->get<bool>();
  }

  chat::ChatTemplate tpl(m.source, m.tokens);
  std::string prompt = tpl.render(chat::ChatTemplate::prepare_messages(messages), tools, kwargs);
  std::fwrite(prompt.data(), 1, prompt.size(), stdout);
  std::fflush(stdout);
  return 0;
}

}  // namespace pocket::cli
