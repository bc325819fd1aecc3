// Unit tests of the streamed-output processing: stop strings, the think /
// tool-call parser and argument typing.
#include "server/output_parser.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "text/chat.h"

namespace pocket::server {
namespace {

using json = nlohmann::ordered_json;

struct Collected {
  std::string reasoning, content;
  std::vector<ToolCall> calls;
};

OutputParserOptions opts(bool reasoning, json tools = nullptr, bool calls = true) {
  OutputParserOptions o;
  o.start_in_reasoning = reasoning;
  o.tools = std::move(tools);
  o.parse_tool_calls = calls;
  return o;
}

// Feeds `text` in pieces of `step` bytes (0: all at once) and collects everything.
Collected parse(const std::string& text, size_t step, OutputParserOptions options = opts(false)) {
  OutputParser parser(std::move(options));
  Collected c;
  auto add = [&](const ParsedDelta& d) {
    c.reasoning += d.reasoning;
    c.content += d.content;
    for (const auto& call : d.tool_calls) c.calls.push_back(call);
  };
  if (step == 0) step = text.size() + 1;
  for (size_t i = 0; i < text.size(); i += step) add(parser.push(text.substr(i, step)));
  add(parser.finish());
  return c;
}

const json kTools = json::parse(R"([{"type": "function", "function": {"name": "get_weather", "parameters": {
  "type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"},
  "metric": {"type": "boolean"}, "zip": {"type": "string"}, "opts": {"type": "object"}}}}}])");

TEST(StopMatcher, CutsAtTheFirstStopString) {
  StopMatcher m({"END", "\n\n"});
  std::string out = m.push("hello E");
  EXPECT_EQ(out, "hello ");  // "E" might start "END"
  out += m.push("N");
  EXPECT_EQ(out, "hello ");
  out += m.push("D and more");
  EXPECT_EQ(out, "hello ");
  EXPECT_TRUE(m.stopped());
  EXPECT_EQ(m.push("x"), "");
  EXPECT_EQ(m.finish(), "");
}

TEST(StopMatcher, ReleasesAFalseStart) {
  StopMatcher m({"END"});
  EXPECT_EQ(m.push("EN"), "");
  EXPECT_EQ(m.push("x"), "ENx");
  EXPECT_EQ(m.push("E"), "");
  EXPECT_EQ(m.finish(), "E");
  EXPECT_FALSE(m.stopped());
}

TEST(StopMatcher, EarliestOfSeveralAndByteWise) {
  for (size_t step = 1; step <= 4; step++) {
    StopMatcher m({"cd", "bcde"});
    const std::string text = "abcdef";
    std::string out;
    for (size_t i = 0; i < text.size(); i += step) out += m.push(text.substr(i, step));
    out += m.finish();
    EXPECT_EQ(out, "ab") << step;  // "cd" completes first
  }
}

TEST(StopMatcher, NoStopsPassesThrough) {
  StopMatcher m({});
  EXPECT_EQ(m.push("abc"), "abc");
  EXPECT_EQ(m.finish(), "");
}

TEST(OutputParser, ReasoningThenContent) {
  const std::string out = "Let me think.\nIt is 42.\n</think>\n\nThe answer is 42.";
  for (size_t step : {0, 1, 2, 3, 7}) {
    Collected c = parse(out, step, opts(true));
    EXPECT_EQ(c.reasoning, "Let me think.\nIt is 42.") << step;
    EXPECT_EQ(c.content, "The answer is 42.") << step;
    EXPECT_TRUE(c.calls.empty());
  }
}

TEST(OutputParser, NoThinking) {
  Collected c = parse("Hello there!\n", 1);
  EXPECT_EQ(c.reasoning, "");
  EXPECT_EQ(c.content, "Hello there!");
}

TEST(OutputParser, UnclosedThinkIsAllReasoning) {
  Collected c = parse("still thinking <thi", 2, opts(true));
  EXPECT_EQ(c.reasoning, "still thinking <thi");
  EXPECT_EQ(c.content, "");
}

TEST(OutputParser, ExplicitThinkOpenInContent) {
  Collected c = parse("<think>\nhmm\n</think>\n\nok", 1);
  EXPECT_EQ(c.reasoning, "hmm");
  EXPECT_EQ(c.content, "ok");
}

TEST(OutputParser, ToolCallWithTypedArguments) {
  const std::string out =
      "I will check.\n\n<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n"
      "<parameter=days>\n3\n</parameter>\n<parameter=metric>\ntrue\n</parameter>\n<parameter=zip>\n75001\n</parameter>\n"
      "<parameter=opts>\n{\"a\": [1, 2]}\n</parameter>\n</function>\n</tool_call>";
  for (size_t step : {0, 1, 5}) {
    Collected c = parse(out, step, opts(false, kTools));
    EXPECT_EQ(c.content, "I will check.") << step;
    ASSERT_EQ(c.calls.size(), 1u) << step;
    EXPECT_EQ(c.calls[0].name, "get_weather");
    EXPECT_EQ(json::parse(c.calls[0].arguments),
              json::parse(R"({"city": "Paris", "days": 3, "metric": true, "zip": "75001", "opts": {"a": [1, 2]}})"));
  }
}

TEST(OutputParser, SeveralCallsAndMultilineValues) {
  const std::string out =
      "<tool_call>\n<function=a>\n<parameter=text>\nline 1\nline 2\n</parameter>\n</function>\n</tool_call>\n"
      "<tool_call>\n<function=b>\n</function>\n</tool_call>";
  Collected c = parse(out, 3);
  EXPECT_EQ(c.content, "");
  ASSERT_EQ(c.calls.size(), 2u);
  EXPECT_EQ(c.calls[0].name, "a");
  EXPECT_EQ(json::parse(c.calls[0].arguments)["text"], "line 1\nline 2");
  EXPECT_EQ(c.calls[1].name, "b");
  EXPECT_EQ(c.calls[1].arguments, "{}");
}

TEST(OutputParser, CallInsideTheThinkSection) {
  const std::string out =
      "need weather\n<tool_call>\n<function=get_weather>\n<parameter=city>\nRome\n</parameter>\n</function>\n</tool_call>";
  Collected c = parse(out, 1, opts(true, kTools));
  EXPECT_EQ(c.reasoning, "need weather");
  ASSERT_EQ(c.calls.size(), 1u);
  EXPECT_EQ(json::parse(c.calls[0].arguments)["city"], "Rome");
}

TEST(OutputParser, ReasoningThenCall) {
  const std::string out =
      "plan\n</think>\n\n<tool_call>\n<function=get_weather>\n<parameter=days>\n2\n</parameter>\n</function>\n</tool_call>";
  Collected c = parse(out, 2, opts(true, kTools));
  EXPECT_EQ(c.reasoning, "plan");
  EXPECT_EQ(c.content, "");
  ASSERT_EQ(c.calls.size(), 1u);
  EXPECT_EQ(json::parse(c.calls[0].arguments)["days"], 2);
}

TEST(OutputParser, UnfinishedCallBecomesContent) {
  Collected c = parse("x <tool_call>\n<function=f>\n<para", 1);
  EXPECT_TRUE(c.calls.empty());
  EXPECT_EQ(c.content, "x <tool_call>\n<function=f>\n<para");
}

TEST(OutputParser, ToolCallsOffLeavesText) {
  const std::string out = "<tool_call>\n<function=f>\n</function>\n</tool_call>";
  Collected c = parse(out, 1, opts(false, nullptr, false));
  EXPECT_TRUE(c.calls.empty());
  EXPECT_EQ(c.content, out);
}

TEST(OutputParser, JsonStyleCall) {
  Collected c = parse("<tool_call>\n{\"name\": \"f\", \"arguments\": {\"x\": 1}}\n</tool_call>", 4);
  ASSERT_EQ(c.calls.size(), 1u);
  EXPECT_EQ(c.calls[0].name, "f");
  EXPECT_EQ(json::parse(c.calls[0].arguments), json::parse(R"({"x": 1})"));
}

TEST(OutputParser, InnerWhitespaceIsKept) {
  Collected c = parse("a\n\nb  c\n", 1);
  EXPECT_EQ(c.content, "a\n\nb  c");
}

TEST(ConvertArgument, BySchemaType) {
  const json str_t = {{"type", "string"}}, int_t = {{"type", "integer"}}, num_t = {{"type", "number"}},
             bool_t = {{"type", "boolean"}}, arr_t = {{"type", "array"}}, multi = {{"type", {"integer", "null"}}};
  EXPECT_EQ(convert_argument("007", &str_t), "007");
  EXPECT_EQ(convert_argument("7", &int_t), 7);
  EXPECT_EQ(convert_argument("2.5", &num_t), 2.5);
  EXPECT_EQ(convert_argument("seven", &int_t), "seven");  // kept as text rather than lost
  EXPECT_EQ(convert_argument("True", &bool_t), true);
  EXPECT_EQ(convert_argument("[1, 2]", &arr_t), json::parse("[1, 2]"));
  EXPECT_EQ(convert_argument("null", &multi), nullptr);
  EXPECT_EQ(convert_argument("Paris", nullptr), "Paris");
  EXPECT_EQ(convert_argument("3", nullptr), 3);
}


// What the model wrote, parsed into an OpenAI assistant message (reasoning,
// content, two tool calls with JSON-string arguments) and sent back as
// history, renders through the Qwen3.5 template to exactly the model's text.
TEST(OutputParser, ParsedTurnRendersBackExactly) {
  std::ifstream in(std::string(POCKET_SHARED_DIR) + "/golden/qwen3.5-chat-template.jinja");
  ASSERT_TRUE(in) << "golden chat template missing";
  std::stringstream source;
  source << in.rdbuf();
  const chat::ChatTemplate tmpl(source.str());
  const json user = {{"role", "user"}, {"content", "Weather in Paris and Rome?"}};
  chat::ChatKwargs kwargs;
  kwargs.add_generation_prompt = true;
  const std::string prompt = tmpl.render(chat::ChatTemplate::prepare_messages(json::array({user})), kTools, kwargs);
  ASSERT_TRUE(prompt.ends_with("<|im_start|>assistant\n<think>\n"));

  const std::string output =
      "The user wants two cities.\n</think>\n\nLet me check.\n\n"
      "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n<parameter=days>\n3\n</parameter>\n"
      "</function>\n</tool_call>\n"
      "<tool_call>\n<function=get_weather>\n<parameter=city>\nRome\n</parameter>\n</function>\n</tool_call>";
  const Collected c = parse(output, 3, opts(true, kTools));
  ASSERT_EQ(c.calls.size(), 2u);
  json assistant = {{"role", "assistant"}, {"content", c.content}, {"reasoning_content", c.reasoning}};
  assistant["tool_calls"] = json::array();
  for (size_t i = 0; i < c.calls.size(); i++)
    assistant["tool_calls"].push_back({{"id", "call_" + std::to_string(i)},
                                       {"type", "function"},
                                       {"function", {{"name", c.calls[i].name}, {"arguments", c.calls[i].arguments}}}});
  const json history = json::array({user, assistant, {{"role", "tool"}, {"tool_call_id", "call_0"}, {"content", "sunny"}},
                                    {{"role", "tool"}, {"tool_call_id", "call_1"}, {"content", "rain"}}});
  const std::string rendered = tmpl.render(chat::ChatTemplate::prepare_messages(history), kTools, kwargs);
  const std::string expected = prompt + output + "<|im_end|>\n";
  EXPECT_EQ(rendered.substr(0, expected.size()), expected);
  EXPECT_NE(rendered.find("<tool_response>\nsunny\n</tool_response>\n<tool_response>\nrain\n</tool_response>"),
            std::string::npos);
}

}  // namespace
}  // namespace pocket::server
