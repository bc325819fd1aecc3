// Text-side processing of a model's streamed output, independent of HTTP and
// of the engine:
//  - StopMatcher: cuts the text at the first OpenAI `stop` string, holding back
//    any tail that could still become one, so a stop string split over several
//    tokens is never partly streamed;
//  - OutputParser: splits Qwen3.5 output (spec/qwen35.md section 7.3) into
//    reasoning (inside <think>...</think>), visible content and <tool_call> XML
//    blocks, which become OpenAI tool calls with JSON-string arguments typed by
//    the tool's JSON schema.
// Both take text in arbitrary pieces and give the same result however the text
// is split.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace pocket::server {

class StopMatcher {
 public:
  explicit StopMatcher(std::vector<std::string> stops);
  // Text that is safe to emit now. After a stop string was found, stopped() is
  // true, the text before it has been returned and everything after is dropped.
  std::string push(std::string_view piece);
  // The held-back tail (at the end of generation).
  std::string finish();
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stops_;
  std::string held_;
  bool stopped_ = false;
};

// One OpenAI tool call as parsed from a <tool_call> block.
struct ToolCall {
  std::string name;
  std::string arguments;  // a JSON object, serialized
};

// What the parser produced from one push (in order: text first, then calls).
struct ParsedDelta {
  std::string reasoning;
  std::string content;
  std::vector<ToolCall> tool_calls;
  bool empty() const { return reasoning.empty() && content.empty() && tool_calls.empty(); }
};

struct OutputParserOptions {
  // The prompt ends inside the think section (generation prompt "<think>\n").
  bool start_in_reasoning = false;
  // Parse <tool_call> blocks (false: they stay text, e.g. tool_choice "none").
  bool parse_tool_calls = true;
  // The request's tool definitions (OpenAI shape) for argument types; may be null.
  nlohmann::ordered_json tools;
};

class OutputParser {
 public:
  explicit OutputParser(OutputParserOptions options);
  ParsedDelta push(std::string_view text);
  // End of output: releases held-back text; an unfinished tool call is
  // returned as content.
  ParsedDelta finish();

 private:
  enum class Mode { kReasoning, kContent, kToolCall };
  void run(ParsedDelta& out, bool at_end);
  void emit_text(ParsedDelta& out, std::string_view text);
  ToolCall parse_call(std::string_view block) const;

  OutputParserOptions options_;
  Mode mode_;
  Mode mode_before_call_ = Mode::kContent;
  std::string buffer_;            // unprocessed text
  std::string pending_space_;     // whitespace held until more text follows
  std::string space_before_call_; // dropped before <tool_call>; restored if it never closes
  bool content_started_ = false;  // leading newlines of content are dropped
  bool reasoning_started_ = false;
};

// Converts a tool-call parameter's raw text to JSON by the parameter's schema
// type (string: as is; number/integer/boolean/object/array/null: parsed as
// JSON, falling back to the string when it does not parse). Without a schema,
// valid JSON scalars/containers are parsed and anything else stays a string.
nlohmann::ordered_json convert_argument(std::string_view raw, const nlohmann::ordered_json* schema);

}  // namespace pocket::server
