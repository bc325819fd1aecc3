#include "runtime/generate.h"

#include <algorithm>
#include <chrono>

#include "util/error.h"

namespace pocket::runtime {

namespace {
double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

void prefill(const model::Model& model, Sequence& seq, std::span<const int32_t> tokens,
             int64_t chunk, model::Workspace& ws) {
  if (chunk <= 0) fail("prefill: chunk size must be positive");
  for (size_t i = 0; i < tokens.size(); i += size_t(chunk)) {
    const size_t len = std::min(size_t(chunk), tokens.size() - i);
    const bool last = i + len == tokens.size();
    model::Batch batch;
    batch.segments.push_back({&seq, tokens.subspan(i, len), last ? model::Logits::kLast : model::Logits::kNone});
    model.forward(batch, ws);
  }
}

GenerateResult generate(const model::Model& model, Sequence& seq, std::span<const int32_t> prompt,
                        const GenerateOptions& options,
                        const std::function<bool(const GeneratedToken&)>& on_token) {
  if (prompt.empty()) fail("generate: the prompt is empty");
  GenerateResult result;
  result.prompt_tokens = int64_t(prompt.size());
  model::Workspace ws;
  Sampler sampler(options.sampling);
  sampler.accept(prompt);

  const auto t0 = std::chrono::steady_clock::now();
  prefill(model, seq, prompt, options.prefill_chunk, ws);
  result.prefill_ms = ms_since(t0);

  const auto t1 = std::chrono::steady_clock::now();
  const int64_t n_vocab = model.config().n_vocab;
  GeneratedToken tok;
  int32_t next[1];
  model::Batch decode;  // one token: the previous one
  decode.segments.push_back({&seq, std::span<const int32_t>(next, 1), model::Logits::kLast});
  for (int64_t step = 0; step < options.max_tokens; step++) {
    if (step > 0) model.forward(decode, ws);  // its logits land in ws.logits(0)
    const std::span<const float> logits(ws.logits(0), size_t(n_vocab));
    tok.id = sampler.sample(logits);
    sampler.accept(tok.id);
    tok.end_of_generation =
        std::find(options.stop_ids.begin(), options.stop_ids.end(), tok.id) != options.stop_ids.end();
    if (options.logprobs) {
      TokenLogprobs lp = logprobs(logits, tok.id, options.top_logprobs);
      tok.logprob = lp.logprob;
      tok.top = std::move(lp.top);
    }
    result.generated_tokens++;
    const bool at_limit = step + 1 == options.max_tokens;
    // The next step would need one more position than the context holds.
    const bool context_full = seq.n_tokens() >= seq.n_ctx();
    tok.last = tok.end_of_generation || at_limit || context_full;
    const bool go_on = on_token(tok);
    if (tok.end_of_generation) {
      result.stopped_by_eog = true;
      break;
    }
    if (at_limit || !go_on) break;
    if (context_full) {
      result.stopped_by_context = true;
      break;
    }
    next[0] = tok.id;
  }
  result.decode_ms = ms_since(t1);
  return result;
}

}  // namespace pocket::runtime
