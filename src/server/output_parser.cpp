#include "server/output_parser.h"

#include <algorithm>

namespace pocket::server {

using json = nlohmann::ordered_json;

namespace {

// Length of the longest suffix of `text` that is a proper prefix of `marker`.
size_t partial_suffix(std::string_view text, std::string_view marker) {
  for (size_t k = std::min(text.size(), marker.size() - 1); k > 0; k--)
    if (text.substr(text.size() - k) == marker.substr(0, k)) return k;
  return 0;
}

bool is_space(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

constexpr std::string_view kThinkOpen = "<think>";
constexpr std::string_view kThinkClose = "</think>";
constexpr std::string_view kCallOpen = "<tool_call>";
constexpr std::string_view kCallClose = "</tool_call>";

}  // namespace

// ---------------------------------------------------------------- StopMatcher

StopMatcher::StopMatcher(std::vector<std::string> stops) {
  for (auto& s : stops)
    if (!s.empty()) stops_.push_back(std::move(s));
}

std::string StopMatcher::push(std::string_view piece) {
  if (stopped_) return {};
  held_ += piece;
  // The stop string that completes first wins (the same however the text is split).
  size_t first = std::string::npos, first_end = std::string::npos;
  for (const auto& s : stops_) {
    const size_t at = held_.find(s);
    if (at != std::string::npos && at + s.size() < first_end) first = at, first_end = at + s.size();
  }
  if (first != std::string::npos) {
    stopped_ = true;
    std::string out = held_.substr(0, first);
    held_.clear();
    return out;
  }
  size_t keep = 0;
  for (const auto& s : stops_) keep = std::max(keep, partial_suffix(held_, s));
  std::string out = held_.substr(0, held_.size() - keep);
  held_.erase(0, held_.size() - keep);
  return out;
}

std::string StopMatcher::finish() {
  std::string out;
  if (!stopped_) out.swap(held_);
  held_.clear();
  return out;
}

// --------------------------------------------------------------- OutputParser

OutputParser::OutputParser(OutputParserOptions options)
    : options_(std::move(options)),
      mode_(options_.start_in_reasoning ? Mode::kReasoning : Mode::kContent) {}

ParsedDelta OutputParser::push(std::string_view text) {
  ParsedDelta out;
  buffer_ += text;
  run(out, false);
  return out;
}

ParsedDelta OutputParser::finish() {
  ParsedDelta out;
  run(out, true);
  if (mode_ == Mode::kToolCall) {  // never closed: give the text back as it was
    mode_ = Mode::kContent;
    emit_text(out, space_before_call_ + std::string(kCallOpen) + buffer_);
    buffer_.clear();
  }
  pending_space_.clear();  // trailing whitespace of the answer is dropped
  return out;
}

void OutputParser::run(ParsedDelta& out, bool at_end) {
  for (;;) {
    if (mode_ == Mode::kToolCall) {
      const size_t end = buffer_.find(kCallClose);
      if (end == std::string::npos) return;  // wait for the whole block
      out.tool_calls.push_back(parse_call(std::string_view(buffer_).substr(0, end)));
      buffer_.erase(0, end + kCallClose.size());
      mode_ = mode_before_call_;
      continue;
    }
    // Markers that end the current text mode.
    std::vector<std::string_view> markers;
    if (mode_ == Mode::kReasoning) markers.push_back(kThinkClose);
    else markers.push_back(kThinkOpen);
    if (options_.parse_tool_calls) markers.push_back(kCallOpen);

    size_t at = std::string::npos;
    std::string_view found;
    for (auto m : markers) {
      const size_t p = buffer_.find(m);
      if (p < at) at = p, found = m;
    }
    if (at == std::string::npos) {
      size_t keep = 0;
      if (!at_end)
        for (auto m : markers) keep = std::max(keep, partial_suffix(buffer_, m));
      emit_text(out, std::string_view(buffer_).substr(0, buffer_.size() - keep));
      buffer_.erase(0, buffer_.size() - keep);
      return;
    }
    emit_text(out, std::string_view(buffer_).substr(0, at));
    buffer_.erase(0, at + found.size());
    space_before_call_.swap(pending_space_);
    pending_space_.clear();  // whitespace between a text and a marker is layout
    if (found == kThinkClose) {
      mode_ = Mode::kContent;
    } else if (found == kThinkOpen) {
      mode_ = Mode::kReasoning;
    } else {
      mode_before_call_ = mode_;
      mode_ = Mode::kToolCall;
    }
  }
}

// Text of the current mode. Leading newlines of a section and whitespace at
// its end are layout from the template (spec 7.2), not part of the text: the
// whitespace is held until non-space text follows it.
void OutputParser::emit_text(ParsedDelta& out, std::string_view text) {
  if (text.empty()) return;
  const bool reasoning = mode_ == Mode::kReasoning;
  bool& started = reasoning ? reasoning_started_ : content_started_;
  std::string all = pending_space_ + std::string(text);
  pending_space_.clear();
  size_t begin = 0;
  if (!started)
    while (begin < all.size() && is_space(all[begin])) begin++;
  size_t end = all.size();
  while (end > begin && is_space(all[end - 1])) end--;
  pending_space_ = all.substr(end);
  if (end == begin) return;
  started = true;
  (reasoning ? out.reasoning : out.content) += all.substr(begin, end - begin);
}

ToolCall OutputParser::parse_call(std::string_view block) const {
  ToolCall call;
  json args = json::object();
  const std::string_view body = trim(block);
  // Qwen3-style JSON calls {"name": ..., "arguments": {...}} are accepted too.
  if (!body.empty() && body.front() == '{') {
    try {
      json j = json::parse(body);
      call.name = j.value("name", "");
      if (j.contains("arguments")) args = j["arguments"].is_string() ? json::parse(j["arguments"].get<std::string>()) : j["arguments"];
      call.arguments = args.dump();
      return call;
    } catch (const std::exception&) {
    }
  }
  constexpr std::string_view kFunction = "<function=";
  constexpr std::string_view kParam = "<parameter=";
  constexpr std::string_view kParamClose = "</parameter>";
  size_t pos = body.find(kFunction);
  if (pos != std::string_view::npos) {
    const size_t name_end = body.find('>', pos);
    if (name_end != std::string_view::npos) {
      call.name = std::string(trim(body.substr(pos + kFunction.size(), name_end - pos - kFunction.size())));
      pos = name_end + 1;
    }
  }
  // The schema of the called tool's parameters, if the request declared it.
  const json* properties = nullptr;
  if (options_.tools.is_array())
    for (const auto& tool : options_.tools) {
      const json* fn = tool.contains("function") ? &tool["function"] : &tool;
      if (fn->is_object() && fn->value("name", "") == call.name && fn->contains("parameters") &&
          (*fn)["parameters"].is_object() && (*fn)["parameters"].contains("properties"))
        properties = &(*fn)["parameters"]["properties"];
    }
  while (pos != std::string_view::npos) {
    const size_t p = body.find(kParam, pos);
    if (p == std::string_view::npos) break;
    const size_t name_end = body.find('>', p);
    if (name_end == std::string_view::npos) break;
    const std::string name(trim(body.substr(p + kParam.size(), name_end - p - kParam.size())));
    size_t value_end = body.find(kParamClose, name_end);
    // A missing </parameter>: the value runs to the next parameter or </function>.
    if (value_end == std::string_view::npos) value_end = std::min(body.find(kParam, name_end), body.find("</function>", name_end));
    if (value_end == std::string_view::npos) value_end = body.size();
    std::string_view raw = body.substr(name_end + 1, value_end - name_end - 1);
    // The template writes "\n" + value + "\n" (spec 7.2).
    if (!raw.empty() && raw.front() == '\n') raw.remove_prefix(1);
    if (!raw.empty() && raw.back() == '\n') raw.remove_suffix(1);
    const json* schema = properties && properties->is_object() && properties->contains(name) ? &(*properties)[name] : nullptr;
    args[name] = convert_argument(raw, schema);
    pos = value_end;
  }
  call.arguments = args.dump();
  return call;
}

// ------------------------------------------------------------ argument types

json convert_argument(std::string_view raw, const json* schema) {
  std::vector<std::string> types;
  if (schema && schema->is_object() && schema->contains("type")) {
    const json& t = (*schema)["type"];
    if (t.is_string()) types.push_back(t.get<std::string>());
    if (t.is_array())
      for (const auto& x : t)
        if (x.is_string()) types.push_back(x.get<std::string>());
  }
  const bool is_string_only = types.size() == 1 && types[0] == "string";
  if (is_string_only) return std::string(raw);
  const std::string_view text = trim(raw);
  try {
    json v = json::parse(text);
    if (types.empty()) return v;
    for (const auto& t : types) {
      if ((t == "integer" && v.is_number_integer()) || (t == "number" && v.is_number()) ||
          (t == "boolean" && v.is_boolean()) || (t == "object" && v.is_object()) ||
          (t == "array" && v.is_array()) || (t == "null" && v.is_null()))
        return v;
    }
  } catch (const std::exception&) {
  }
  // Python-style booleans are common in model output.
  if (std::find(types.begin(), types.end(), "boolean") != types.end()) {
    if (text == "True") return true;
    if (text == "False") return false;
  }
  return std::string(raw);
}

}  // namespace pocket::server
