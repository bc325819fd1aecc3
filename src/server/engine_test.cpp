// The engine batches many sequences per forward call; batching must not change
// results, and a cancelled request must leave within one step.
#include "server/engine.h"

#include <gtest/gtest.h>

#include <thread>

namespace pocket::server {
namespace {

struct Fixture {
  std::unique_ptr<model::Model> model = model::Model::load(std::string(POCKET_SHARED_DIR) + "/golden/tiny-qwen35-dense-tied-f32.gguf");
  text::Tokenizer tokenizer = text::Tokenizer::from_gguf(model->file());
  Metrics metrics;
};

GenerationRequest greedy(std::vector<int32_t> prompt, int64_t max_tokens) {
  GenerationRequest r;
  r.prompt = std::move(prompt);
  r.sampling.temperature = 0;
  r.max_tokens = max_tokens;
  r.out = std::make_shared<Channel>();
  r.cancelled = std::make_shared<std::atomic<bool>>(false);
  return r;
}

// Token ids a request produced, read from its channel until done.
std::vector<int32_t> collect(Channel& ch) {
  std::vector<int32_t> ids;
  std::vector<Event> events;
  for (;;) {
    events.clear();
    ch.wait(events, std::chrono::milliseconds(1000));
    for (const auto& e : events) {
      if (e.kind == Event::Kind::kError) ADD_FAILURE() << e.error;
      if (e.kind != Event::Kind::kText) return ids;
      for (const auto& t : e.tokens) ids.push_back(t.id);
    }
  }
}

TEST(ServerEngine, BatchingDoesNotChangeGreedyTokens) {
  Fixture f;
  EngineOptions options;
  options.parallel = 8;
  options.step_tokens = 48;  // long prompts are prefilled in chunks beside decode steps
  options.kv.kv_type = runtime::KvType::F32;
  Engine engine(*f.model, f.tokenizer, options, f.metrics);
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < 8; i++) {
    std::vector<int32_t> p;
    for (int k = 0; k < 1 + 23 * i; k++) p.push_back((k * 37 + i * 11) % 1900 + 3);
    prompts.push_back(p);
  }
  std::vector<std::vector<int32_t>> alone;
  for (const auto& p : prompts) {
    GenerationRequest r = greedy(p, 24);
    auto ch = r.out;
    ASSERT_TRUE(engine.submit({r}));
    alone.push_back(collect(*ch));
  }
  std::vector<std::shared_ptr<Channel>> channels;
  std::vector<GenerationRequest> all;
  for (const auto& p : prompts) {
    all.push_back(greedy(p, 24));
    channels.push_back(all.back().out);
  }
  for (auto& r : all) ASSERT_TRUE(engine.submit({r}));
  for (size_t i = 0; i < prompts.size(); i++) EXPECT_EQ(collect(*channels[i]), alone[i]) << "prompt " << i;
}

TEST(ServerEngine, CancelledRequestLeavesWithinAStep) {
  Fixture f;
  EngineOptions options;
  options.parallel = 2;
  Engine engine(*f.model, f.tokenizer, options, f.metrics);
  GenerationRequest r = greedy({5, 6, 7}, 100000);
  r.ignore_eos = true;
  auto ch = r.out;
  auto cancel = r.cancelled;
  ASSERT_TRUE(engine.submit({r}));
  std::vector<Event> events;
  while (events.size() < 3) ch->wait(events, std::chrono::milliseconds(1000));
  *cancel = true;
  for (int i = 0; i < 200 && f.metrics.render().find("pocket_active_sequences 0\n") == std::string::npos; i++)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_NE(f.metrics.render().find("pocket_active_sequences 0\n"), std::string::npos);
  EXPECT_NE(f.metrics.render().find("pocket_cancelled_requests_total 1\n"), std::string::npos);
}

// The done event of a request, read from its channel.
Event done_event(Channel& ch) {
  std::vector<Event> events;
  for (;;) {
    events.clear();
    ch.wait(events, std::chrono::milliseconds(1000));
    for (const auto& e : events)
      if (e.kind != Event::Kind::kText) return e;
  }
}

// Engine time is shared by token share: two prompts prefilled in one step (10 and 30 tokens,
// one generated token each) get 1/4 and 3/4 of that step; with decode steps after it, both
// get equal halves of each decode step on top.
TEST(ServerEngine, EngineTimeIsSharedByTokens) {
  Fixture f;
  EngineOptions options;
  options.parallel = 2;
  options.step_tokens = 64;
  options.kv.kv_type = runtime::KvType::F32;
  Engine engine(*f.model, f.tokenizer, options, f.metrics);
  auto prompt = [](int n, int salt) {
    std::vector<int32_t> p;
    for (int k = 0; k < n; k++) p.push_back((k * 31 + salt) % 1900 + 3);
    return p;
  };
  std::vector<GenerationRequest> pair = {greedy(prompt(10, 1), 1), greedy(prompt(30, 2), 1)};
  auto a = pair[0].out, b = pair[1].out;
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(engine.submit(pair));  // admitted together: one step prefills both
  const Event ea = done_event(*a), eb = done_event(*b);
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_EQ(ea.kind, Event::Kind::kDone);
  ASSERT_EQ(eb.kind, Event::Kind::kDone);
  EXPECT_GT(ea.engine_s, 0);
  EXPECT_NEAR(eb.engine_s / ea.engine_s, 3.0, 1e-9);
  EXPECT_LE(ea.engine_s + eb.engine_s, wall);

  std::vector<GenerationRequest> two = {greedy(prompt(10, 3), 4), greedy(prompt(30, 4), 4)};
  two[0].ignore_eos = two[1].ignore_eos = true;
  auto c = two[0].out, d = two[1].out;
  ASSERT_TRUE(engine.submit(two));
  const Event ec = done_event(*c), ed = done_event(*d);
  // d - c = half of the prefill step (30 - 10 of its 40 tokens); the 3 decode steps split evenly.
  const double prefill_step = 2 * (ed.engine_s - ec.engine_s);
  EXPECT_GT(prefill_step, 0);
  EXPECT_GT(ec.engine_s, prefill_step / 4);  // c had decode time beyond its prefill share
}

TEST(ServerEngine, FullQueueRejects) {
  Fixture f;
  EngineOptions options;
  options.parallel = 1;
  options.max_queue = 0;
  Engine engine(*f.model, f.tokenizer, options, f.metrics);
  std::vector<GenerationRequest> two = {greedy({1}, 4), greedy({2}, 4)};
  EXPECT_FALSE(engine.submit(two));  // more than one slot + no queue
  GenerationRequest one = greedy({1}, 4);
  auto ch = one.out;
  EXPECT_TRUE(engine.submit({one}));
  EXPECT_EQ(collect(*ch).size(), 4u);
}

}  // namespace
}  // namespace pocket::server
