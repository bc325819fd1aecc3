// The serving engine (design/engine.md section 7): one thread owns the model's
// state pools and the scheduler. Each step it admits waiting requests into free
// sequence slots, drops cancelled ones, and runs ONE forward call over a batch
// made of every running sequence's decode token followed by prefill chunks of
// the newly admitted prompts (up to a token budget per step). It samples each
// sequence, detects end-of-generation, limits and stop strings, and pushes the
// new text to the request's output channel. HTTP handlers only enqueue and then
// read their channel.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "model/model.h"
#include "runtime/sampler.h"
#include "runtime/sequence.h"
#include "server/metrics.h"
#include "text/tokenizer.h"

namespace pocket::server {

struct TokenInfo {
  int32_t id = 0;
  double logprob = 0.0;                          // log-softmax of the raw logits
  std::vector<std::pair<int32_t, double>> top;  // most likely first
};

// What the engine tells a request. Events of all choices of a request share one
// channel, told apart by `index`.
struct Event {
  enum class Kind { kText, kDone, kError } kind = Kind::kText;
  int index = 0;
  std::string text;               // kText: new text (well-formed UTF-8, stop strings removed)
  std::vector<TokenInfo> tokens;  // kText: the tokens that produced it (logprobs if asked)
  std::string finish_reason;      // kDone: "stop" or "length"
  int64_t prompt_tokens = 0;      // kDone
  int64_t completion_tokens = 0;  // kDone
  // kDone: seconds of engine time spent on this sequence: of every step it was in, the
  // step's time × its share of the step's tokens (what a cost model prices).
  double engine_s = 0;
  std::string error;              // kError
};

class Channel {
 public:
  void push(Event e);
  // Moves every queued event into `out`, waiting up to `timeout` for one.
  // Returns false when nothing arrived in time.
  bool wait(std::vector<Event>& out, std::chrono::milliseconds timeout);

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Event> events_;
};

// One sequence to generate (one `choice` of an OpenAI request).
struct GenerationRequest {
  std::vector<int32_t> prompt;
  runtime::SamplingParams sampling;
  int64_t max_tokens = 256;
  std::vector<std::string> stop;
  bool logprobs = false;
  int32_t top_logprobs = 0;
  bool ignore_eos = false;
  // The prompt ends inside a think section; after max_reasoning_tokens (>= 0)
  // tokens without "</think>", the engine forces "\n</think>\n\n".
  bool starts_in_reasoning = false;
  int64_t max_reasoning_tokens = -1;
  int index = 0;
  std::shared_ptr<Channel> out;
  std::shared_ptr<std::atomic<bool>> cancelled;
  std::chrono::steady_clock::time_point arrival = std::chrono::steady_clock::now();
};

struct EngineOptions {
  int parallel = 4;            // sequences decoded together
  int64_t n_ctx = 4096;        // context length per sequence
  int64_t step_tokens = 512;   // token budget of one forward call (decode + prefill)
  size_t max_queue = 64;       // waiting requests beyond the slots; more -> rejected
  runtime::KvPoolOptions kv;
};

class Engine {
 public:
  Engine(const model::Model& model, const text::Tokenizer& tokenizer, EngineOptions options, Metrics& metrics);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Enqueues all choices of one request together. False (nothing enqueued)
  // when the waiting queue has no room for them.
  bool submit(std::vector<GenerationRequest> requests);
  const EngineOptions& options() const { return options_; }
  // End-of-generation token ids (the Qwen end tokens present in the vocabulary).
  const std::vector<int32_t>& stop_ids() const { return stop_ids_; }

 private:
  struct Slot;
  void loop();
  void step();
  void admit();
  // Samples the slot's next token from `logits`; true when the slot is finished.
  bool handle_token(Slot& slot, const float* logits);
  void publish_state();

  const model::Model& model_;
  const text::Tokenizer& tokenizer_;
  EngineOptions options_;
  Metrics& metrics_;
  runtime::KvPool pool_;
  model::Workspace ws_;
  std::vector<int32_t> stop_ids_;
  int32_t think_close_id_ = -1;
  std::vector<int32_t> close_think_tokens_;  // forced at the reasoning budget

  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<GenerationRequest> queue_;
  size_t running_ = 0;  // slots_.size() as of the last admission or release, for submit()
  bool stopping_ = false;

  std::vector<std::unique_ptr<Slot>> slots_;  // engine thread only
  std::thread thread_;
};

}  // namespace pocket::server
