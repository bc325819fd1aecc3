// Chat formatting: OpenAI-shaped messages -> prompt text, by running the
// model's Jinja chat template (tokenizer.chat_template) the way Hugging Face
// transformers does (apply_chat_template). Independent of the tokenizer: the
// caller tokenizes the returned text.
//
//   pocket::chat::ChatTemplate tpl(source, {.eos = "<|im_end|>"});
//   pocket::chat::ChatKwargs kw;
//   kw.add_generation_prompt = true;
//   kw.enable_thinking = false;
//   std::string prompt = tpl.render(messages, tools, kw);
//
// Template variables, as transformers sets them: `messages`, `tools` (null
// when there are none), `add_generation_prompt`, `enable_thinking` (defined
// only when given), the special tokens that are set (bos_token, eos_token,
// pad_token, unk_token), and any extra kwargs (chat_template_kwargs).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "text/jinja.h"

namespace pocket::chat {

struct SpecialTokens {
  std::optional<std::string> bos;
  std::optional<std::string> eos;
  std::optional<std::string> pad;
  std::optional<std::string> unk;
};

struct ChatKwargs {
  bool add_generation_prompt = false;
  // Absent, true and false differ: Qwen3.5 thinks unless it is exactly false.
  std::optional<bool> enable_thinking;
  // Further template variables (an OpenAI request's chat_template_kwargs), a
  // JSON object. They may not set messages, tools or add_generation_prompt;
  // enable_thinking above, when set, wins over a value here.
  nlohmann::ordered_json extra = nlohmann::ordered_json::object();
};

class ChatTemplate {
 public:
  // Parses the template once (throws jinja::TemplateError on syntax errors or
  // unsupported constructs).
  explicit ChatTemplate(std::string_view source, SpecialTokens tokens = {},
                        const jinja::Options& options = {});

  // Renders a conversation. `messages` is a JSON array of OpenAI messages
  // (prepared with prepare_messages() first); `tools` is null or a JSON array
  // of tool definitions. Throws pocket::Error for malformed input and
  // jinja::TemplateError when the template fails (e.g. raise_exception(), for
  // which raised() is true and message() is the template's own text).
  std::string render(const nlohmann::ordered_json& messages, const nlohmann::ordered_json& tools,
                     const ChatKwargs& kwargs, const jinja::RenderOptions& options = {}) const;

  // Converts OpenAI request messages into what chat templates expect:
  //  - an assistant message's tool_calls[i].function.arguments (and a bare
  //    tool_calls[i].arguments) that is a JSON *string*, as OpenAI sends it,
  //    is parsed into a JSON object: templates iterate it with `|items`
  //    (Qwen3.5 renders one <parameter=...> block per key). An empty string
  //    becomes {}. A string that is not a JSON object is an error.
  //  - everything else is passed through unchanged (content may be a string,
  //    null, or a list of parts; the template decides how to render it).
  // Throws pocket::Error naming the message for malformed input (not an array,
  // a message without a string "role", tool_calls that is not a list).
  static nlohmann::ordered_json prepare_messages(const nlohmann::ordered_json& messages);

  const std::string& source() const { return source_; }

 private:
  std::string source_;
  SpecialTokens tokens_;
  jinja::Template template_;
};

}  // namespace pocket::chat
