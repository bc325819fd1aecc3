// What one forward call works on: a batch of segments, each a run of new tokens
// for one sequence (design/engine.md section 3). A prefill chunk is a segment of
// many tokens, a decode step a segment of one; a batch may mix both, from many
// sequences.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "kernels/ops.h"

namespace pocket::model {

// What the forward pass needs from one sequence's state. The runtime implements
// it (runtime::Sequence: paged KV cache, conv and recurrent state); the model
// only reads and writes through these calls.
class SequenceMemory {
 public:
  virtual ~SequenceMemory() = default;

  // Tokens already in the state; the next token goes to this position.
  virtual int64_t n_tokens() const = 0;
  // Makes positions [n_tokens(), n_tokens() + n) writable in every attention
  // layer (allocating or unsharing pages). Throws pocket::Error, leaving the
  // state unchanged, when that would pass the context length or the memory limit.
  virtual void reserve(int64_t n) = 0;
  // Records that n more tokens were processed (after a successful forward).
  virtual void commit(int64_t n) = 0;

  // Attention layer `index` (counting attention layers only).
  virtual kernels::KvView kv(int64_t index) = 0;
  // Delta-net layer `index` (counting delta-net layers only):
  // conv state, (conv_kernel - 1) rows of conv_dim raw inputs, oldest first;
  // recurrent state, n_v matrices S[d_k][d_v]. Both f32.
  virtual float* conv_state(int64_t index) = 0;
  virtual float* recurrent_state(int64_t index) = 0;
};

// Which of a segment's positions want next-token logits.
enum class Logits : uint8_t {
  kLast,  // the last token only (the usual case)
  kAll,   // every token (scoring, speculative verification)
  kNone,  // none (a prefill chunk that is not the end of the prompt)
};

// New tokens for one sequence. They take positions n_tokens() .. n_tokens() +
// tokens.size() - 1 of that sequence (text-only: the rope position equals the
// position in the sequence).
struct Segment {
  SequenceMemory* seq = nullptr;
  std::span<const int32_t> tokens;
  Logits logits = Logits::kLast;
};

struct Batch {
  std::vector<Segment> segments;
  int64_t n_tokens() const {
    int64_t n = 0;
    for (const Segment& s : segments) n += int64_t(s.tokens.size());
    return n;
  }
};

}  // namespace pocket::model
