// Single-sequence generation: prefill a prompt in chunks, then decode one token
// per forward call until a limit or an end-of-generation token. Used by
// `pocket run`; the server builds its own batches from the same parts.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <utility>
#include <vector>

#include "model/model.h"
#include "runtime/sampler.h"
#include "runtime/sequence.h"

namespace pocket::runtime {

// Feeds tokens into seq in forward calls of at most `chunk` tokens. Only the
// last chunk asks for logits (of its last token), which are left in ws.logits(0).
void prefill(const model::Model& model, Sequence& seq, std::span<const int32_t> tokens,
             int64_t chunk, model::Workspace& ws);

struct GenerateOptions {
  int64_t max_tokens = 128;
  SamplingParams sampling;
  std::vector<int32_t> stop_ids;  // end-of-generation tokens (reported, then stop)
  int32_t top_logprobs = 0;       // alternatives reported per token
  bool logprobs = false;          // compute GeneratedToken::logprob / top
  int64_t prefill_chunk = 512;    // prompt tokens per forward call
};

struct GeneratedToken {
  int32_t id = 0;
  bool end_of_generation = false;  // one of stop_ids
  bool last = false;               // generation ends after this token (eog, limit, context)
  // log-softmax of the raw logits (before any sampling transform), if asked.
  double logprob = 0.0;
  std::vector<std::pair<int32_t, double>> top;
};

struct GenerateResult {
  int64_t prompt_tokens = 0;
  int64_t generated_tokens = 0;  // including a final end-of-generation token
  bool stopped_by_eog = false;
  bool stopped_by_context = false;  // the sequence's context length was reached
  double prefill_ms = 0.0;
  double decode_ms = 0.0;  // from the first to the last generated token
};

// Prefills `prompt` (which may be empty if seq already holds tokens and the
// logits of its last token are in ws; not the usual case) and generates. The
// prompt also enters the sampler's penalty history. on_token is called for
// every generated token; returning false stops generation after it.
GenerateResult generate(const model::Model& model, Sequence& seq, std::span<const int32_t> prompt,
                        const GenerateOptions& options,
                        const std::function<bool(const GeneratedToken&)>& on_token);

}  // namespace pocket::runtime
