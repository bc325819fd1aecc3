#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>

#include "util/error.h"

namespace pocket::runtime {

// ---- Rng ----------------------------------------------------------------------

namespace {
uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
}  // namespace

Rng::Rng(uint64_t seed) {
  for (uint64_t& s : s_) s = splitmix64(seed);
}

uint64_t Rng::next() {
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

double Rng::uniform() { return double(next() >> 11) * (1.0 / 9007199254740992.0); }

// ---- Sampler ------------------------------------------------------------------

Sampler::Sampler(SamplingParams params) : params_(std::move(params)), rng_(params_.seed) {
  if (params_.top_k < 0) fail("sampling: top_k must be >= 0, got ", params_.top_k);
  if (!(params_.top_p > 0.0f)) fail("sampling: top_p must be > 0, got ", params_.top_p);
  if (params_.min_p < 0.0f || params_.min_p > 1.0f)
    fail("sampling: min_p must be in [0, 1], got ", params_.min_p);
  if (!(params_.repeat_penalty > 0.0f))
    fail("sampling: repeat_penalty must be > 0, got ", params_.repeat_penalty);
}

void Sampler::accept(int32_t token) { history_.push_back(token); }

void Sampler::accept(std::span<const int32_t> tokens) {
  history_.insert(history_.end(), tokens.begin(), tokens.end());
}

void Sampler::reset(uint64_t seed) {
  history_.clear();
  rng_ = Rng(seed);
}

int32_t argmax(std::span<const float> logits) {
  int32_t best = 0;
  for (size_t i = 1; i < logits.size(); i++)
    if (logits[i] > logits[size_t(best)]) best = int32_t(i);
  return best;
}

const std::vector<std::pair<int32_t, double>>& Sampler::distribution(std::span<const float> logits) {
  const SamplingParams& p = params_;
  const int64_t n_vocab = int64_t(logits.size());
  work_.assign(logits.begin(), logits.end());

  // 1. Logit bias.
  for (const auto& [id, bias] : p.logit_bias)
    if (id >= 0 && id < n_vocab) work_[size_t(id)] += bias;

  // 2. Penalties over the recent history.
  const bool penalise =
      p.repeat_penalty != 1.0f || p.presence_penalty != 0.0f || p.frequency_penalty != 0.0f;
  if (penalise && !history_.empty()) {
    const size_t window = p.penalty_last_n < 0
                              ? history_.size()
                              : std::min(history_.size(), size_t(p.penalty_last_n));
    std::vector<int32_t> recent(history_.end() - ptrdiff_t(window), history_.end());
    std::sort(recent.begin(), recent.end());
    for (size_t i = 0; i < recent.size();) {
      size_t j = i;
      while (j < recent.size() && recent[j] == recent[i]) j++;
      const int32_t id = recent[i];
      const float count = float(j - i);
      i = j;
      if (id < 0 || id >= n_vocab) continue;
      float& l = work_[size_t(id)];
      l = l > 0.0f ? l / p.repeat_penalty : l * p.repeat_penalty;
      l -= p.presence_penalty + p.frequency_penalty * count;
    }
  }

  // 3. Greedy.
  if (p.temperature <= 0.0f) {
    candidates_.assign(1, {argmax(work_), 1.0});
    return candidates_;
  }

  // 4. Temperature; candidates are all tokens with a finite logit.
  candidates_.clear();
  for (int64_t id = 0; id < n_vocab; id++)
    if (std::isfinite(work_[size_t(id)]))
      candidates_.push_back({int32_t(id), double(work_[size_t(id)]) / double(p.temperature)});
  if (candidates_.empty()) fail("sampling: every logit is -inf or NaN");
  const auto by_logit = [](const std::pair<int32_t, double>& a, const std::pair<int32_t, double>& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  };

  // 5. Top-k, then sort what is left (most likely first).
  if (p.top_k > 0 && size_t(p.top_k) < candidates_.size()) {
    std::nth_element(candidates_.begin(), candidates_.begin() + p.top_k, candidates_.end(), by_logit);
    candidates_.resize(size_t(p.top_k));
  }
  std::sort(candidates_.begin(), candidates_.end(), by_logit);

  // 6. Softmax.
  const double max = candidates_[0].second;
  double sum = 0.0;
  for (auto& c : candidates_) sum += (c.second = std::exp(c.second - max));
  for (auto& c : candidates_) c.second /= sum;

  // 7. Top-p: the smallest prefix with mass >= top_p.
  if (p.top_p < 1.0f) {
    double mass = 0.0;
    size_t keep = 0;
    while (keep < candidates_.size()) {
      mass += candidates_[keep++].second;
      if (mass >= double(p.top_p)) break;
    }
    candidates_.resize(keep);
  }

  // 8. Min-p relative to the most likely token.
  if (p.min_p > 0.0f) {
    const double threshold = double(p.min_p) * candidates_[0].second;
    size_t keep = 1;
    while (keep < candidates_.size() && candidates_[keep].second >= threshold) keep++;
    candidates_.resize(keep);
  }

  // Renormalise.
  sum = 0.0;
  for (const auto& c : candidates_) sum += c.second;
  for (auto& c : candidates_) c.second /= sum;
  return candidates_;
}

int32_t Sampler::sample(std::span<const float> logits) {
  const std::vector<std::pair<int32_t, double>>& dist = distribution(logits);
  if (dist.size() == 1) return dist[0].first;
  const double u = rng_.uniform();
  double cum = 0.0;
  for (const auto& [id, prob] : dist) {
    cum += prob;
    if (u < cum) return id;
  }
  return dist.back().first;  // rounding left u just above the total
}

TokenLogprobs logprobs(std::span<const float> logits, int32_t token, int32_t top_k) {
  double max = -INFINITY;
  for (float l : logits) max = std::max(max, double(l));
  double sum = 0.0;
  for (float l : logits) sum += std::exp(double(l) - max);
  const double log_z = max + std::log(sum);

  TokenLogprobs out;
  out.logprob = double(logits[size_t(token)]) - log_z;
  const size_t k = std::min(logits.size(), size_t(std::max(top_k, 0)));
  std::vector<int32_t> ids(logits.size());
  for (size_t i = 0; i < ids.size(); i++) ids[i] = int32_t(i);
  std::partial_sort(ids.begin(), ids.begin() + ptrdiff_t(k), ids.end(), [&](int32_t a, int32_t b) {
    return logits[size_t(a)] != logits[size_t(b)] ? logits[size_t(a)] > logits[size_t(b)] : a < b;
  });
  for (size_t i = 0; i < k; i++) out.top.push_back({ids[i], double(logits[size_t(ids[i])]) - log_z});
  return out;
}

}  // namespace pocket::runtime
