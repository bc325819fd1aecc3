#include "server/engine.h"

#include <algorithm>
#include <span>

#include "server/output_parser.h"
#include "util/error.h"

namespace pocket::server {

using Clock = std::chrono::steady_clock;

namespace {
Event error_event(int index, std::string message) {
  Event e;
  e.kind = Event::Kind::kError;
  e.index = index;
  e.error = std::move(message);
  return e;
}
}  // namespace

void Channel::push(Event e) {
  {
    std::lock_guard lock(mutex_);
    events_.push_back(std::move(e));
  }
  cv_.notify_all();
}

bool Channel::wait(std::vector<Event>& out, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  if (!cv_.wait_for(lock, timeout, [&] { return !events_.empty(); })) return false;
  while (!events_.empty()) {
    out.push_back(std::move(events_.front()));
    events_.pop_front();
  }
  return true;
}

struct Engine::Slot {
  Slot(GenerationRequest r, const model::Model& model, runtime::KvPool& pool, int64_t n_ctx,
       const text::Tokenizer& tok)
      : req(std::move(r)),
        seq(model, pool, n_ctx),
        sampler(req.sampling),
        decoder(tok),
        stop(req.stop),
        in_reasoning(req.starts_in_reasoning) {
    sampler.accept(req.prompt);
  }
  GenerationRequest req;
  runtime::Sequence seq;
  runtime::Sampler sampler;
  text::StreamingDecoder decoder;
  StopMatcher stop;
  size_t prefilled = 0;     // prompt tokens already in seq
  int32_t next_token = -1;  // sampled, to be fed at the next step
  int64_t generated = 0;
  double engine_s = 0;  // token share of the steps so far
  int64_t reasoning_tokens = 0;
  bool in_reasoning = false;
  std::deque<int32_t> forced;  // tokens to emit instead of sampling
  Clock::time_point last_token;
  bool decoding() const { return prefilled == req.prompt.size(); }
};

Engine::Engine(const model::Model& model, const text::Tokenizer& tokenizer, EngineOptions options,
               Metrics& metrics)
    : model_(model), tokenizer_(tokenizer), options_(options), metrics_(metrics), pool_(model, options.kv) {
  if (options_.parallel < 1) fail("parallel must be at least 1");
  // Every running sequence's decode token fits in a step, with room for prefill.
  options_.step_tokens = std::max<int64_t>(options_.step_tokens, options_.parallel + 1);
  if (tokenizer_.eos_id() >= 0) stop_ids_.push_back(tokenizer_.eos_id());
  for (const char* s : {"<|endoftext|>", "<|im_end|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>"})
    if (auto id = tokenizer_.find_token(s); id && std::find(stop_ids_.begin(), stop_ids_.end(), *id) == stop_ids_.end())
      stop_ids_.push_back(*id);
  if (auto id = tokenizer_.find_token("</think>")) {
    think_close_id_ = *id;
    close_think_tokens_ = tokenizer_.encode("\n");
    close_think_tokens_.push_back(*id);
    for (int32_t t : tokenizer_.encode("\n\n")) close_think_tokens_.push_back(t);
  }
  publish_state();
  thread_ = std::thread([this] { loop(); });
}

Engine::~Engine() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

bool Engine::submit(std::vector<GenerationRequest> requests) {
  {
    std::lock_guard lock(mutex_);
    // Requests whose clients left while waiting give their place up now, not at admission.
    const size_t queued = queue_.size();
    std::erase_if(queue_, [](const GenerationRequest& r) { return r.cancelled && *r.cancelled; });
    for (size_t i = queue_.size(); i < queued; i++) metrics_.count_cancelled();
    // Room: the slots that are free now (filled at the next step) plus the queue bound.
    const size_t free_slots = size_t(options_.parallel) - std::min(running_, size_t(options_.parallel));
    if (queue_.size() + requests.size() > options_.max_queue + free_slots) return false;
    for (auto& r : requests) queue_.push_back(std::move(r));
  }
  cv_.notify_all();
  return true;
}

void Engine::loop() {
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty() || !slots_.empty(); });
      if (stopping_) break;
    }
    try {
      step();
    } catch (const std::exception& e) {
      // A failed forward call (e.g. KV memory exhausted): the batch's requests
      // end with an error; the engine carries on.
      for (auto& s : slots_) s->req.out->push(error_event(s->req.index, e.what()));
      slots_.clear();
      std::lock_guard lock(mutex_);
      running_ = 0;
    }
    publish_state();
  }
  for (auto& s : slots_) s->req.out->push(error_event(s->req.index, "server shutting down"));
  std::lock_guard lock(mutex_);
  for (auto& r : queue_) r.out->push(error_event(r.index, "server shutting down"));
}

void Engine::admit() {
  std::lock_guard lock(mutex_);
  while (int(slots_.size()) < options_.parallel && !queue_.empty()) {
    GenerationRequest r = std::move(queue_.front());
    queue_.pop_front();
    if (r.cancelled && *r.cancelled) {
      metrics_.count_cancelled();
      continue;
    }
    slots_.push_back(std::make_unique<Slot>(std::move(r), model_, pool_, options_.n_ctx, tokenizer_));
  }
  running_ = slots_.size();
}

void Engine::step() {
  // Cancelled requests leave first: their state is freed before this step runs.
  for (size_t i = 0; i < slots_.size();) {
    if (slots_[i]->req.cancelled && *slots_[i]->req.cancelled) {
      metrics_.count_cancelled();
      metrics_.add_tokens(int64_t(slots_[i]->prefilled), slots_[i]->generated);
      slots_.erase(slots_.begin() + ptrdiff_t(i));
    } else {
      i++;
    }
  }
  admit();
  if (slots_.empty()) return;

  // The batch: decode tokens of running sequences, then prefill chunks.
  model::Batch batch;
  std::vector<Slot*> owner;          // per segment
  std::vector<int64_t> prefill_len;  // per segment: prompt tokens it carries (0 = decode)
  int64_t budget = options_.step_tokens;
  for (auto& s : slots_) {
    if (!s->decoding()) continue;
    batch.segments.push_back({&s->seq, std::span<const int32_t>(&s->next_token, 1), model::Logits::kLast});
    owner.push_back(s.get());
    prefill_len.push_back(0);
    budget--;
  }
  for (auto& s : slots_) {
    if (s->decoding() || budget <= 0) continue;
    const int64_t left = int64_t(s->req.prompt.size() - s->prefilled);
    const int64_t n = std::min(left, budget);
    batch.segments.push_back({&s->seq, std::span<const int32_t>(s->req.prompt).subspan(s->prefilled, size_t(n)),
                              n == left ? model::Logits::kLast : model::Logits::kNone});
    owner.push_back(s.get());
    prefill_len.push_back(n);
    budget -= n;
  }
  const auto step_start = Clock::now();
  model_.forward(batch, ws_);
  metrics_.count_step(batch.n_tokens());
  // The step's time, shared by the sequences in proportion to the tokens each brought.
  const double step_s = std::chrono::duration<double>(Clock::now() - step_start).count();
  const double step_tokens = double(batch.n_tokens());
  for (size_t i = 0; i < owner.size(); i++) {
    owner[i]->prefilled += size_t(prefill_len[i]);
    owner[i]->engine_s += step_s * double(prefill_len[i] > 0 ? prefill_len[i] : 1) / step_tokens;
  }

  std::vector<Slot*> finished;
  for (int64_t i = 0; i < ws_.n_logits(); i++) {
    Slot* s = owner[size_t(ws_.row(i).segment)];
    if (handle_token(*s, ws_.logits(i))) finished.push_back(s);
  }
  if (!finished.empty()) {
    std::erase_if(slots_, [&](const std::unique_ptr<Slot>& s) {
      return std::find(finished.begin(), finished.end(), s.get()) != finished.end();
    });
    std::lock_guard lock(mutex_);
    running_ = slots_.size();
  }
}

bool Engine::handle_token(Slot& s, const float* logits) {
  const std::span<const float> row(logits, size_t(ws_.n_vocab()));
  int32_t tok;
  if (!s.forced.empty()) {
    tok = s.forced.front();
    s.forced.pop_front();
  } else {
    tok = s.sampler.sample(row);
  }
  s.sampler.accept(tok);
  s.generated++;
  TokenInfo info;
  info.id = tok;
  if (s.req.logprobs) {
    runtime::TokenLogprobs lp = runtime::logprobs(row, tok, s.req.top_logprobs);
    info.logprob = lp.logprob;
    info.top = std::move(lp.top);
  }
  // The reasoning budget: close a runaway think section.
  if (s.in_reasoning) {
    if (tok == think_close_id_) {
      s.in_reasoning = false;
      s.forced.clear();
    } else if (s.req.max_reasoning_tokens >= 0 && ++s.reasoning_tokens >= s.req.max_reasoning_tokens &&
               s.forced.empty() && !close_think_tokens_.empty()) {
      s.forced.assign(close_think_tokens_.begin(), close_think_tokens_.end());
    }
  }

  const bool eog = !s.req.ignore_eos && std::find(stop_ids_.begin(), stop_ids_.end(), tok) != stop_ids_.end();
  std::string finish_reason;
  if (eog) finish_reason = "stop";
  else if (s.generated >= s.req.max_tokens || s.seq.n_tokens() >= s.seq.n_ctx()) finish_reason = "length";

  std::string text = eog ? std::string() : s.decoder.push(tok);
  if (!finish_reason.empty()) text += s.decoder.finish();
  std::string emitted = s.stop.push(text);
  if (s.stop.stopped()) finish_reason = "stop";
  else if (!finish_reason.empty()) emitted += s.stop.finish();

  const auto now = Clock::now();
  if (s.generated == 1) metrics_.observe_ttft(std::chrono::duration<double>(now - s.req.arrival).count());
  else metrics_.observe_inter_token(std::chrono::duration<double>(now - s.last_token).count());
  s.last_token = now;

  Event ev;
  ev.index = s.req.index;
  ev.text = std::move(emitted);
  ev.tokens.push_back(std::move(info));
  s.req.out->push(std::move(ev));
  if (finish_reason.empty()) {
    s.next_token = tok;
    return false;
  }
  metrics_.add_tokens(int64_t(s.req.prompt.size()), s.generated);
  Event done;
  done.kind = Event::Kind::kDone;
  done.index = s.req.index;
  done.finish_reason = finish_reason;
  done.prompt_tokens = int64_t(s.req.prompt.size());
  done.completion_tokens = s.generated;
  done.engine_s = s.engine_s;
  s.req.out->push(std::move(done));
  return true;
}

void Engine::publish_state() {
  size_t waiting;
  {
    std::lock_guard lock(mutex_);
    waiting = queue_.size();
  }
  uint64_t recurrent = 0;
  for (auto& s : slots_) recurrent += s->seq.recurrent_bytes();
  metrics_.set_engine_state(int64_t(waiting), int64_t(slots_.size()), pool_.bytes_in_use(), pool_.bytes_allocated(),
                            recurrent);
}

}  // namespace pocket::server
