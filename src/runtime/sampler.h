// Token sampling with a reproducible random stream.
//
// Order of the transforms applied to one step's raw logits:
//   1. logit bias      l[id] += bias[id]
//   2. penalties over the last `penalty_last_n` tokens of the history
//      (prompt and generated tokens passed to accept()), for each distinct
//      token with count c in that window:
//        repetition  l = l > 0 ? l / repeat_penalty : l * repeat_penalty
//        presence    l -= presence_penalty            (once)
//        frequency   l -= frequency_penalty * c
//   3. temperature <= 0: greedy, the largest logit (ties: lowest id); stop here.
//   4. temperature     l /= temperature
//   5. top-k           keep the k largest logits (ties: lower id first); 0 = off
//   6. softmax         over the kept tokens
//   7. top-p           keep the smallest prefix of the tokens sorted by
//                      probability whose mass reaches top_p (at least one); 1 = off
//   8. min-p           keep tokens with p >= min_p * p_max; 0 = off
//   9. renormalise and draw one token with the sampler's PRNG.
// Temperature before the truncations (as Hugging Face and vLLM do) means top-p
// and min-p act on the distribution that is actually sampled.
//
// The PRNG is xoshiro256** seeded through splitmix64, and draws turn 53 random
// bits into a double in [0, 1): the same seed gives the same tokens on every
// platform and standard library.
#pragma once

#include <cstdint>
#include <span>
#include <utility>
#include <vector>

namespace pocket::runtime {

struct SamplingParams {
  float temperature = 1.0f;  // <= 0: greedy
  int32_t top_k = 0;         // 0: off
  float top_p = 1.0f;        // >= 1: off
  float min_p = 0.0f;        // <= 0: off
  float repeat_penalty = 1.0f;    // 1: off
  float presence_penalty = 0.0f;  // 0: off
  float frequency_penalty = 0.0f;
  int32_t penalty_last_n = 64;  // window of the history the penalties look at; -1 = all
  std::vector<std::pair<int32_t, float>> logit_bias;  // (token id, added to its logit)
  uint64_t seed = 0;
};

// xoshiro256** (Blackman and Vigna), seeded with splitmix64.
class Rng {
 public:
  explicit Rng(uint64_t seed);
  uint64_t next();
  double uniform();  // [0, 1) with 53 random bits
 private:
  uint64_t s_[4];
};

class Sampler {
 public:
  explicit Sampler(SamplingParams params);

  const SamplingParams& params() const { return params_; }
  // Adds a token to the history the penalties look at.
  void accept(int32_t token);
  void accept(std::span<const int32_t> tokens);
  const std::vector<int32_t>& history() const { return history_; }
  void reset(uint64_t seed);  // clears the history and restarts the random stream

  // One draw from n_vocab raw logits.
  int32_t sample(std::span<const float> logits);

  // The final distribution of steps 1-8 (ids with their probabilities, sorted
  // by probability, then id), or the single greedy token with probability 1.
  // Valid until the next call.
  const std::vector<std::pair<int32_t, double>>& distribution(std::span<const float> logits);

 private:
  SamplingParams params_;
  Rng rng_;
  std::vector<int32_t> history_;
  // Scratch reused between steps.
  std::vector<float> work_;
  std::vector<std::pair<int32_t, double>> candidates_;
};

// log-softmax of raw logits (in double) of one token and the k most likely
// ones: what `pocket run --json` reports.
struct TokenLogprobs {
  double logprob = 0.0;
  std::vector<std::pair<int32_t, double>> top;  // (id, logprob), most likely first
};
TokenLogprobs logprobs(std::span<const float> logits, int32_t token, int32_t top_k);

// Index of the largest logit (lowest id among ties).
int32_t argmax(std::span<const float> logits);

}  // namespace pocket::runtime
