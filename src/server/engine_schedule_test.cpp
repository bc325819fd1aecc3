// Scheduling: a long prompt is prefilled in chunks beside the running decodes,
// so a stream that is already generating keeps getting one token per step.
#include <gtest/gtest.h>

#include "server/engine.h"

namespace pocket::server {
namespace {

TEST(ServerEngineSchedule, LongPrefillDoesNotStallRunningStreams) {
  auto model = model::Model::load(std::string(POCKET_SHARED_DIR) +
                                  "/golden/tiny-qwen35-dense-tied-f32.gguf");
  const text::Tokenizer tokenizer = text::Tokenizer::from_gguf(model->file());
  Metrics metrics;
  EngineOptions options;
  options.parallel = 2;
  options.step_tokens = 64;
  Engine engine(*model, tokenizer, options, metrics);

  // Both requests share one channel, so its order is the engine's order.
  auto channel = std::make_shared<Channel>();
  auto make = [&](std::vector<int32_t> prompt, int64_t max_tokens, int index) {
    GenerationRequest r;
    r.prompt = std::move(prompt);
    r.sampling.temperature = 0;
    r.max_tokens = max_tokens;
    r.ignore_eos = true;
    r.index = index;
    r.out = channel;
    r.cancelled = std::make_shared<std::atomic<bool>>(false);
    return r;
  };
  const int64_t long_prompt = 1000;
  std::vector<int32_t> prompt;
  for (int64_t k = 0; k < long_prompt; k++) prompt.push_back(int32_t((k * 53) % 1900 + 3));
  ASSERT_TRUE(engine.submit({make({5, 6, 7}, 200, 0)}));
  std::vector<Event> events;
  while (events.empty()) channel->wait(events, std::chrono::milliseconds(1000));  // the stream runs
  ASSERT_TRUE(engine.submit({make(prompt, 1, 1)}));

  // Tokens of stream 0 between the long request's arrival and its first token.
  int64_t stream_tokens = 0;
  bool long_done = false;
  while (!long_done) {
    events.clear();
    ASSERT_TRUE(channel->wait(events, std::chrono::milliseconds(10000)));
    for (const auto& e : events) {
      ASSERT_NE(e.kind, Event::Kind::kError) << e.error;
      if (e.index == 1)
        long_done = true;
      else if (!long_done && e.kind == Event::Kind::kText)
        stream_tokens++;
    }
  }
  // The prompt needs ceil(1000 / 63) steps of 63 prompt tokens beside the one
  // decode token; the stream gets a token in each (one step of slack for timing).
  const int64_t prefill_steps = (long_prompt + options.step_tokens - 2) / (options.step_tokens - 1);
  EXPECT_GE(stream_tokens, prefill_steps - 1);
}

// Once every slot is taken, only max_queue requests may wait: a free slot is not
// counted twice.
TEST(ServerEngineSchedule, QueueBoundCountsBusySlots) {
  auto model = model::Model::load(std::string(POCKET_SHARED_DIR) +
                                  "/golden/tiny-qwen35-dense-tied-f32.gguf");
  const text::Tokenizer tokenizer = text::Tokenizer::from_gguf(model->file());
  Metrics metrics;
  EngineOptions options;
  options.parallel = 1;
  options.max_queue = 1;
  Engine engine(*model, tokenizer, options, metrics);
  auto make = [](int64_t max_tokens) {
    GenerationRequest r;
    r.prompt = {5, 6, 7};
    r.sampling.temperature = 0;
    r.max_tokens = max_tokens;
    r.ignore_eos = true;
    r.out = std::make_shared<Channel>();
    r.cancelled = std::make_shared<std::atomic<bool>>(false);
    return r;
  };
  GenerationRequest running = make(100000);
  auto out = running.out;
  auto cancel = running.cancelled;
  ASSERT_TRUE(engine.submit({running}));
  std::vector<Event> events;
  while (events.empty()) out->wait(events, std::chrono::milliseconds(1000));  // it holds the slot
  GenerationRequest waiting = make(1);
  ASSERT_TRUE(engine.submit({waiting}));   // the one place in the queue
  EXPECT_FALSE(engine.submit({make(1)}));  // no room left
  *waiting.cancelled = true;               // its client left: the place is free again
  GenerationRequest next = make(1);
  EXPECT_TRUE(engine.submit({next}));
  *cancel = true;
  *next.cancelled = true;
}

}  // namespace
}  // namespace pocket::server
