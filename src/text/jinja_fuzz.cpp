// libFuzzer target: parses and renders arbitrary template text against a
// small fixed chat context. Any pocket::Error (syntax errors, runtime errors,
// limits) is an expected outcome; crashes, sanitizer reports, other exception
// types and slow inputs are bugs. Limits are lowered so that every input
// finishes quickly.
//
//   CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DPOCKET_FUZZ=ON
//   ninja -C build-fuzz jinja_fuzz
//   build-fuzz/jinja_fuzz -max_total_time=60 -timeout=5 fuzz/jinja_seeds
#include <cstddef>
#include <cstdint>
#include <string_view>

#include <nlohmann/json.hpp>

#include "text/jinja.h"

namespace {

const nlohmann::ordered_json& context() {
  static const nlohmann::ordered_json ctx = nlohmann::ordered_json::parse(R"({
    "messages": [
      {"role": "system", "content": "You are helpful."},
      {"role": "user", "content": [{"type": "text", "text": "Hi "}, {"type": "image"}]},
      {"role": "assistant", "content": "<think>\nhmm\n</think>\n\nHello", "reasoning_content": null,
       "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": {"a": 1, "b": [true, null, 0.5]}}}]},
      {"role": "tool", "content": "ok"},
      {"role": "user", "content": "Bye é 😀"}
    ],
    "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
    "add_generation_prompt": true,
    "enable_thinking": false,
    "eos_token": "<|im_end|>",
    "n": 3, "f": 2.5, "s": "text", "l": [3, 1, 2], "d": {"k": "v", "n": {"x": [1]}}
  })");
  return ctx;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view source(reinterpret_cast<const char*>(data), size);
  pocket::jinja::Options options;
  options.limits.max_output_bytes = 1 << 20;
  options.limits.max_work_bytes = 32u << 20;
  options.limits.max_loop_iterations = 20000;
  options.limits.max_depth = 120;
  try {
    pocket::jinja::Template tpl(source, options);
    pocket::jinja::RenderOptions render;
    render.now = 1700000000;
    tpl.render(context(), render);
  } catch (const pocket::Error&) {
    // Rejected template or failed render: expected.
  }
  return 0;
}
